//! The kind header of mesh streams. A node keeps one connection per neighbour, and several
//! protocols share it (replication now; raft and control later), so every bidirectional stream
//! starts with a one-byte [`StreamKind`] written by the side that opens it. The accepting side
//! reads that byte before anything else — within [`HEADER_TIMEOUT`], so a peer that opens
//! streams and never writes holds nothing for long — and serves the stream or refuses it with
//! a [`StreamRefusal`] code.

use proto::wire::{StreamKind, StreamRefusal};
use std::time::Duration;

/// How long an accepted stream may take to say what it carries.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open a stream: {0}")]
    Open(#[from] quinn::ConnectionError),
    #[error("cannot write the stream header: {0}")]
    Write(#[from] quinn::WriteError),
}

#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("no stream header within {0:?}")]
    Timeout(Duration),
    #[error("cannot read the stream header: {0}")]
    Read(#[from] quinn::ReadExactError),
    #[error("unknown stream kind {0}")]
    Unknown(u8),
}

/// Open a bidirectional stream of `kind` on `conn` and write its header. (The peer learns of
/// a QUIC stream only when data arrives on it; the header is that data.)
pub async fn open(
    conn: &quinn::Connection,
    kind: StreamKind,
) -> Result<(quinn::SendStream, quinn::RecvStream), OpenError> {
    let (mut send, recv) = conn.open_bi().await?;
    send.write_all(&[kind.to_byte()]).await?;
    Ok((send, recv))
}

/// Read the header of a stream the peer opened, giving up after `limit` for the whole of it.
pub async fn read_kind(recv: &mut quinn::RecvStream, limit: Duration) -> Result<StreamKind, HeaderError> {
    let mut byte = [0u8; 1];
    tokio::time::timeout(limit, recv.read_exact(&mut byte)).await.map_err(|_| HeaderError::Timeout(limit))??;
    StreamKind::from_byte(byte[0]).ok_or(HeaderError::Unknown(byte[0]))
}

/// Refuse a stream: stop reading it and reset our side of it with `why`'s code, so the peer
/// learns at once, and why.
pub fn refuse(send: &mut quinn::SendStream, recv: &mut quinn::RecvStream, why: StreamRefusal) {
    let code = quinn::VarInt::from_u32(why.code());
    // Either half may already be closed by the peer or the connection; nothing is left to
    // tell then.
    let _ = recv.stop(code);
    let _ = send.reset(code);
}
