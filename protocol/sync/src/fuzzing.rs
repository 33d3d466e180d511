//! Helpers for hostile-input tests: the property the codec fuzz target
//! checks (shared with the test that replays the committed corpus,
//! `protocol/sync/fuzz/corpus/decode_message`), a LEB128 writer, and a
//! hand-built Automerge change that claims far more operations than its bytes.

use crate::Message;

/// Decoding arbitrary bytes never panics; the in-place decoder of the
/// common frames agrees with the general one; whatever decodes re-encodes to
/// something that decodes to the same message.
pub fn check_decode(data: &[u8]) {
    if data.len() <= 1 << 20 {
        assert_eq!(
            Message::decode(data, 1 << 20).ok(),
            Message::decode_general(data).ok(),
            "the in-place decoder and the general one disagree"
        );
    }
    if let Ok(message) = Message::decode(data, 1 << 20) {
        let again = Message::decode(&message.encode(), usize::MAX);
        assert_eq!(again.ok().as_ref(), Some(&message), "re-encoding changed the message");
    }
}

/// The general decoder alone (a CBOR value tree), which `Message::decode`
/// falls back to for all but the common frames: for comparing the two.
pub fn decode_general(data: &[u8]) -> Result<Message, crate::ProtocolError> {
    Message::decode_general(data)
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

/// A change whose columns claim `n` operations in a few bytes each: runs
/// of one value, which Automerge would expand one operation at a time.
pub fn run_length_bomb(n: u64) -> Vec<u8> {
    let leb = write_uleb128;
    let mut body = Vec::new();
    leb(&mut body, 0); // no dependencies
    leb(&mut body, 16);
    body.extend([7u8; 16]); // actor
    leb(&mut body, 1); // seq
    leb(&mut body, 1); // start op
    leb(&mut body, 0); // time
    leb(&mut body, 0); // no message
    leb(&mut body, 0); // no other actors
    let run = |v: u64| {
        let mut c = Vec::new();
        leb(&mut c, n); // positive: a run of n (sLEB of a value below 2^62 has the same bytes when bit 6 of the last byte is clear)
        leb(&mut c, v);
        c
    };
    let mut bool_run = Vec::new();
    leb(&mut bool_run, 0);
    leb(&mut bool_run, n);
    // key string (id 1, string), insert (id 3, boolean), action (id 4, integer), value meta (id 5, value metadata)
    let columns = [((1u64 << 4) | 5, {
        let mut c = Vec::new();
        leb(&mut c, n);
        leb(&mut c, 1);
        c.push(b'k');
        c
    }), ((3 << 4) | 4, bool_run), ((4 << 4) | 2, run(1)), ((5 << 4) | 6, run(0))];
    leb(&mut body, columns.len() as u64);
    for (spec, data) in &columns {
        leb(&mut body, *spec);
        leb(&mut body, data.len() as u64);
    }
    for (_, data) in &columns {
        body.extend(data);
    }
    let mut chunk = crate::limits::MAGIC.to_vec();
    chunk.extend([0; 4]);
    chunk.push(1);
    leb(&mut chunk, body.len() as u64);
    chunk.extend(body);
    chunk
}
