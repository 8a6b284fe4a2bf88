#![no_main]
//! The messages peers send each other on mesh streams, decoded with the bounds the mesh uses:
//! a stream's header byte (`StreamKind::from_byte`), sync messages (`SyncMsg::decode`, as
//! `node::mesh::frames::read_sync` does: a batch's entries cut out of the frame by their
//! headers), control messages and the sanctions lists feed's requests and replies
//! (`codec::decode_frame_payload`, as `node::mesh::frames::read` does), feed entries (`codec::decode`, as the publisher and the
//! lists feed do) and lists snapshots (`codec::decode_snapshot`). Anything that decodes must
//! re-encode to bytes that decode to the same encoding.

use libfuzzer_sys::fuzz_target;
use node::sanctions::feed::{FeedEntry, FeedReply, FeedRequest};
use node::sanctions::Lists;
use proto::codec::{self, CodecError};
use proto::wire::{ControlMsg, StreamKind, SyncMsg};
use proto::Entry;
use serde::de::DeserializeOwned;
use serde::Serialize;

fn round_trip<T: Serialize + DeserializeOwned>(
    bytes: &[u8],
    decode: fn(&[u8]) -> Result<T, CodecError>,
    encode: fn(&T) -> Result<Vec<u8>, CodecError>,
) -> Option<T> {
    let value = decode(bytes).ok()?;
    let once = encode(&value).expect("a decoded message must encode");
    let again = decode(&once).expect("the encoding of a decoded message must decode");
    assert_eq!(encode(&again).expect("re-encode"), once, "encoding is not stable across a round trip");
    Some(value)
}

fn message<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    round_trip::<T>(bytes, codec::decode_frame_payload::<T>, |v| codec::encode_frame_payload(v))
}

/// A sync message read from a frame's body: it frames again to the same bytes, which read back
/// as the same message, and each of a batch's entries is the entry the codec reads from its
/// bytes.
fn sync_message(body: &[u8]) {
    let Ok(msg) = SyncMsg::decode(bytes::Bytes::copy_from_slice(body)) else { return };
    let frame = msg.to_frame().expect("a decoded message must frame");
    let again = SyncMsg::decode(frame.slice(4..)).expect("a message's frame must read back");
    assert_eq!(again, msg);
    assert_eq!(again.to_frame().unwrap(), frame, "framing is not stable across a round trip");
    if let SyncMsg::Batch { entries, .. } = &msg {
        for e in entries {
            assert_eq!(codec::decode::<Entry>(e.as_bytes()).expect("an entry the codec reads"), e.to_entry());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    // The byte that opens every stream.
    if let Some(kind) = StreamKind::from_byte(selector) {
        assert_eq!(kind.to_byte(), selector);
        let _ = kind.as_str();
    }
    match selector % 6 {
        0 => {
            sync_message(rest);
        }
        1 => {
            if let Some(msg) = message::<ControlMsg>(rest) {
                let bytes = codec::encode_frame_payload(&msg).unwrap();
                assert_eq!(codec::decode_frame_payload::<ControlMsg>(&bytes).unwrap(), msg);
            }
        }
        2 => drop(message::<FeedRequest>(rest)),
        3 => drop(message::<FeedReply>(rest)),
        4 => drop(round_trip::<FeedEntry>(rest, codec::decode::<FeedEntry>, |v| codec::encode(v))),
        _ => drop(round_trip::<Lists>(rest, codec::decode_snapshot::<Lists>, |v| codec::encode_snapshot(v))),
    }
});
