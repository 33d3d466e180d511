//! The property the codec fuzz target checks, shared with the test that
//! replays the committed corpus (`protocol/fuzz/corpus/decode_message`).

use crate::Message;

/// Decoding arbitrary bytes never panics; whatever decodes re-encodes to
/// something that decodes to the same message.
pub fn check_decode(data: &[u8]) {
    if let Ok(message) = Message::decode(data, 1 << 20) {
        let again = Message::decode(&message.encode(), usize::MAX);
        assert_eq!(again.ok().as_ref(), Some(&message), "re-encoding changed the message");
    }
}
