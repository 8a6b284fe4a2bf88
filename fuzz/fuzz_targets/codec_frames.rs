#![no_main]
//! The bounded bincode codec (`proto::codec`) and the mesh's stream framing.
//!
//! The first byte picks what the rest is decoded as: an entry, a batch of entries, the
//! store flusher's `decode_prefix` stamp, one of the records that travel as entry payloads,
//! or a stream of length-prefixed frames cut both the way `node::mesh::frames::read` does (it
//! reads from a `quinn::RecvStream`, so its steps are repeated here over the slice) and with
//! `proto::codec::FrameDecoder`; the two must agree. Anything that decodes must re-encode, and
//! its encoding must decode to a value with the same encoding.

use libfuzzer_sys::fuzz_target;
use proto::codec::{self, CodecError, FrameDecoder, MAX_FRAME_BYTES};
use proto::wire::{ControlMsg, SyncMsg};
use proto::{Entry, Hlc, NodeId};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// If `bytes` decode as a `T`, its encoding decodes again to the same encoding.
fn round_trip<T: Serialize + DeserializeOwned>(
    bytes: &[u8],
    decode: fn(&[u8]) -> Result<T, CodecError>,
    encode: fn(&T) -> Result<Vec<u8>, CodecError>,
) {
    let Ok(value) = decode(bytes) else { return };
    let once = encode(&value).expect("a decoded value must encode");
    let again = decode(&once).expect("the encoding of a decoded value must decode");
    assert_eq!(encode(&again).expect("re-encode"), once, "encoding is not stable across a round trip");
}

fn value<T: Serialize + DeserializeOwned>(bytes: &[u8]) {
    round_trip::<T>(bytes, codec::decode::<T>, |v| codec::encode(v));
}

fn frame_payload<T: Serialize + DeserializeOwned>(bytes: &[u8]) {
    round_trip::<T>(bytes, codec::decode_frame_payload::<T>, |v| codec::encode_frame_payload(v));
}

/// A sync message read as `node::mesh::frames::read_sync` reads one: if it reads, it frames
/// again to bytes that read back as the same message.
fn sync_message(body: &[u8]) {
    let Ok(msg) = SyncMsg::decode(bytes::Bytes::copy_from_slice(body)) else { return };
    let frame = msg.to_frame().expect("a decoded message must frame");
    assert_eq!(SyncMsg::decode(frame.slice(4..)).expect("its frame must read back"), msg);
}

/// The frames `node::mesh::frames::read` would take from a stream holding `bytes`, in order:
/// 4-byte big-endian length, refused over `MAX_FRAME_BYTES`, then that many bytes.
fn frames_as_read(mut bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    loop {
        let Some((header, rest)) = bytes.split_first_chunk::<4>() else { break };
        let len = u32::from_be_bytes(*header) as usize;
        if len > MAX_FRAME_BYTES || rest.len() < len {
            break; // FrameError::TooLarge, or the stream ended inside the body.
        }
        out.push(&rest[..len]);
        bytes = &rest[len..];
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    match selector % 16 {
        0 => value::<Entry>(rest),
        1 => value::<Vec<Entry>>(rest),
        2 => {
            // The store flusher reads an entry key's stamp off the front of a value.
            if let Ok((stamp, used)) = codec::decode_prefix::<(NodeId, u64, Hlc)>(rest) {
                assert!(used <= rest.len());
                let bytes = codec::encode(&stamp).unwrap();
                assert_eq!(codec::decode_prefix::<(NodeId, u64, Hlc)>(&bytes).unwrap(), (stamp, bytes.len()));
            }
        }
        3 => value::<node::records::Detection>(rest),
        4 => value::<node::records::Alert>(rest),
        5 => value::<node::records::AuditRecord>(rest),
        6 => value::<node::events::summary::Summary>(rest),
        7 => value::<node::events::changes::CommandEntry>(rest),
        8 => value::<node::events::changes::EscalationEntry>(rest),
        9 => value::<node::lists::crdt::WatchOp>(rest),
        10 => value::<node::vessels::VesselState>(rest),
        11 => value::<node::feeds::viid::objects::Place>(rest),
        12 => value::<String>(rest),
        _ => {
            // A stream of frames, as a sync or control stream carries them.
            let as_read = frames_as_read(rest);
            let chunk = usize::from(selector / 16) + 1;
            let mut decoder = FrameDecoder::new(MAX_FRAME_BYTES);
            let mut split = Vec::new();
            'feed: for piece in rest.chunks(chunk) {
                decoder.push(piece);
                loop {
                    match decoder.next_frame() {
                        Ok(Some(f)) => split.push(f),
                        Ok(None) => break,
                        Err(_) => break 'feed,
                    }
                }
            }
            assert_eq!(split.len(), as_read.len(), "FrameDecoder and frames::read cut the stream differently");
            let mut at = 0;
            for (a, b) in split.iter().zip(&as_read) {
                assert_eq!(&a[..], *b);
                // Framing the payload again gives back the bytes it came from.
                let framed = codec::frame(b).unwrap();
                assert_eq!(&framed[..], &rest[at..at + 4 + b.len()]);
                at += framed.len();
                if selector & 1 == 0 {
                    sync_message(b);
                } else {
                    frame_payload::<ControlMsg>(b);
                }
            }
        }
    }
});
