//! One HTTP/1.1 request on its own connection, with hyper's connection-level client driven in
//! the caller's task (nothing spawned, so the caller owns everything it started): the ONVIF
//! subscriber's requests to cameras and `yiwangctl`'s calls to the control plane.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::StatusCode;

#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the answer could not be read: {0}")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Send `request` on `stream` and read the answer's status and body (at most `max_body`
/// bytes). The caller puts a deadline around it.
pub async fn exchange(
    stream: tokio::net::TcpStream,
    request: hyper::Request<Full<Bytes>>,
    max_body: usize,
) -> Result<(StatusCode, Bytes), ExchangeError> {
    let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    let exchange = async {
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = Limited::new(response.into_body(), max_body).collect().await.map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                ExchangeError::TooLarge(max_body)
            } else {
                ExchangeError::Body(e)
            }
        })?;
        Ok::<_, ExchangeError>((status, body.to_bytes()))
    };
    // The connection is driven here, beside the exchange, rather than in a spawned task. It may
    // finish first (the server closes after answering): then only the exchange is left.
    tokio::pin!(connection, exchange);
    let mut connection_done = false;
    loop {
        tokio::select! {
            biased;
            r = &mut exchange => return r,
            r = &mut connection, if !connection_done => {
                r?;
                connection_done = true;
            }
        }
    }
}
