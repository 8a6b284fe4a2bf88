//! Messages on a QUIC stream (sync messages, raft RPCs): 4-byte big-endian length, then the message through the
//! bounded codec. A length over the cap ends the stream before anything is allocated for it.

use proto::codec::{self, MAX_FRAME_BYTES};
use proto::wire::SyncMsg;
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
    write_frame(send, codec::frame(&body)?.into()).await
}

/// Read one message (`Closed` at a clean end of stream between messages).
pub async fn read<T: DeserializeOwned>(recv: &mut quinn::RecvStream) -> Result<T, FrameError> {
    Ok(codec::decode_frame_payload(&read_body(recv).await?)?)
}

/// Write one sync message, a batch's entries as the bytes they are stored as.
pub async fn write_sync(send: &mut quinn::SendStream, msg: &SyncMsg) -> Result<usize, FrameError> {
    write_frame(send, msg.to_frame()?).await
}

/// Read one sync message; a batch's entries share the frame's buffer.
pub async fn read_sync(recv: &mut quinn::RecvStream) -> Result<SyncMsg, FrameError> {
    Ok(SyncMsg::decode(read_body(recv).await?.into())?)
}

/// Write one frame made already (length and message); returns the bytes written.
pub async fn write_frame(send: &mut quinn::SendStream, framed: bytes::Bytes) -> Result<usize, FrameError> {
    let len = framed.len();
    // Handed over whole: quinn keeps the buffer rather than copying it.
    send.write_chunk(framed).await.map_err(|e| FrameError::Write(e.to_string()))?;
    Ok(len)
}

/// The body of the next frame, its length checked against the cap before anything is
/// allocated for it.
async fn read_body(recv: &mut quinn::RecvStream) -> Result<Vec<u8>, FrameError> {
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
    Ok(body)
}
