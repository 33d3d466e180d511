//! Helpers for hostile-input tests: the property the codec fuzz target
//! checks (shared with the test that replays the committed corpus,
//! `protocol/sync/fuzz/corpus/decode_message`), and a LEB128 writer for
//! hand-built Automerge chunks (run-length bombs and the like).

use crate::Message;

/// Decoding arbitrary bytes never panics; whatever decodes re-encodes to
/// something that decodes to the same message.
pub fn check_decode(data: &[u8]) {
    if let Ok(message) = Message::decode(data, 1 << 20) {
        let again = Message::decode(&message.encode(), usize::MAX);
        assert_eq!(again.ok().as_ref(), Some(&message), "re-encoding changed the message");
    }
}

/// Append `v` as unsigned LEB128, the integer encoding of Automerge's columns.
pub fn write_uleb128(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}
