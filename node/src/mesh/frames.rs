//! Messages on a QUIC stream (sync messages, raft RPCs): 4-byte big-endian length, then the message through the
//! bounded codec. A length over the cap ends the stream before anything is allocated for it.

use proto::codec::{self, MAX_FRAME_BYTES};
use serde::de::DeserializeOwned;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("stream closed")]
    Closed,
    #[error("read failed: {0}")]
    Read(String),
    #[error("write failed: {0}")]
    Write(String),
    #[error("frame of {0} bytes is over the {MAX_FRAME_BYTES}-byte cap")]
    TooLarge(usize),
    #[error("undecodable message: {0}")]
    Codec(#[from] proto::CodecError),
}

impl FrameError {
    pub fn reason(&self) -> &'static str {
        match self {
            FrameError::Closed => "closed",
            FrameError::Read(_) => "read",
            FrameError::Write(_) => "write",
            FrameError::TooLarge(_) => "frame_too_large",
            FrameError::Codec(c) => c.reason(),
        }
    }
}

/// Encode and write one message; returns the bytes written.
pub async fn write<T: Serialize>(send: &mut quinn::SendStream, msg: &T) -> Result<usize, FrameError> {
    let body = proto::codec::encode_frame_payload(msg)?;
    let framed = codec::frame(&body)?;
    send.write_all(&framed).await.map_err(|e| FrameError::Write(e.to_string()))?;
    Ok(framed.len())
}

/// Read one message (`Closed` at a clean end of stream between messages).
pub async fn read<T: DeserializeOwned>(recv: &mut quinn::RecvStream) -> Result<T, FrameError> {
    let mut header = [0u8; 4];
    match recv.read_exact(&mut header).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Err(FrameError::Closed),
        Err(e) => return Err(FrameError::Read(e.to_string())),
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge(len));
    }
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body).await.map_err(|e| FrameError::Read(e.to_string()))?;
    Ok(codec::decode_frame_payload(&body)?)
}
