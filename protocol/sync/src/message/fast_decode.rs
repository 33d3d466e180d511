//! The common frames, decoded without building a CBOR value tree.
//!
//! Nearly every frame a server reads is a `sync` (a change, or an
//! acknowledgement of one) or an `ephemeral` (presence). The general decoder
//! builds a `ciborium::Value` tree, copies every key into a map and clones
//! every field out of it: about twenty allocations for a 74-byte
//! acknowledgement, which a profile with official automerge-repo clients put
//! at a seventh of the server's CPU per keystroke. This reads the same map in
//! place, borrowing its text and bytes, and builds only the message.
//!
//! It decides nothing on its own: it answers only for a well-formed `sync`,
//! `request` or `ephemeral` whose fields all have the expected shapes, and
//! says "not mine" (`None`) for everything else, which then goes to the
//! general decoder and gets its typed error or its message there. So both
//! decoders agree wherever this one answers, which `fuzzing::check_decode`
//! asserts for the committed fuzz corpus and the fuzz target.

use minicbor::Decoder;
use minicbor::data::Type;

use super::{DocMessage, EphemeralMessage, MAX_ID_BYTES, Message, PeerId};

/// One top-level value, as far as the fields read here need it.
#[derive(Clone, Copy)]
enum Field<'a> {
    Text(&'a str),
    Bytes(&'a [u8]),
    Unsigned(u64),
    /// `null` or `undefined`: treated as absent, as the general decoder does.
    Absent,
    /// Any other shape: the general decoder decides what it means.
    Other,
}

/// The fields of a document message, each the last one of its name (as a
/// map built from the entries in order would keep it).
#[derive(Default)]
struct DocFields<'a> {
    message_type: Option<Field<'a>>,
    sender_id: Option<Field<'a>>,
    target_id: Option<Field<'a>>,
    document_id: Option<Field<'a>>,
    data: Option<Field<'a>>,
    session_id: Option<Field<'a>>,
    count: Option<Field<'a>>,
}

/// The message in `bytes` when it is a well-formed `sync`, `request` or
/// `ephemeral`; `None` when the general decoder must look at it.
pub(super) fn decode(bytes: &[u8]) -> Option<Message> {
    let fields = read_fields(bytes)?;
    let doc_message = |fields: &DocFields<'_>| -> Option<DocMessage> {
        Some(DocMessage {
            sender_id: PeerId(id(fields.sender_id)?.to_owned()),
            target_id: PeerId(id(fields.target_id)?.to_owned()),
            document_id: text(fields.document_id)?.parse().ok()?,
            data: bytes_of(fields.data)?.to_vec(),
        })
    };
    match text(fields.message_type)? {
        "sync" => Some(Message::Sync(doc_message(&fields)?)),
        "request" => Some(Message::Request(doc_message(&fields)?)),
        "ephemeral" => {
            let Some(Field::Unsigned(count)) = fields.count else {
                return None;
            };
            let doc = doc_message(&fields)?;
            Some(Message::Ephemeral(EphemeralMessage {
                sender_id: doc.sender_id,
                target_id: doc.target_id,
                document_id: doc.document_id,
                session_id: id(fields.session_id)?.to_owned(),
                count,
                data: doc.data,
            }))
        }
        _ => None,
    }
}

/// The top-level map's fields, or `None` for anything but one definite-length
/// map with text keys and nothing after it.
fn read_fields(bytes: &[u8]) -> Option<DocFields<'_>> {
    let mut decoder = Decoder::new(bytes);
    let entries = decoder.map().ok()??;
    let mut fields = DocFields::default();
    for _ in 0..entries {
        if decoder.datatype().ok()? != Type::String {
            return None;
        }
        let key = decoder.str().ok()?;
        let slot = match key {
            "type" => &mut fields.message_type,
            "senderId" => &mut fields.sender_id,
            "targetId" => &mut fields.target_id,
            "documentId" => &mut fields.document_id,
            "data" => &mut fields.data,
            "sessionId" => &mut fields.session_id,
            "count" => &mut fields.count,
            _ => {
                decoder.skip().ok()?;
                continue;
            }
        };
        *slot = Some(read_value(&mut decoder)?);
    }
    (decoder.position() == bytes.len()).then_some(fields)
}

fn read_value<'a>(decoder: &mut Decoder<'a>) -> Option<Field<'a>> {
    Some(match decoder.datatype().ok()? {
        Type::String => Field::Text(decoder.str().ok()?),
        Type::Bytes => Field::Bytes(decoder.bytes().ok()?),
        // cbor-x may wrap a byte array in a typed-array tag.
        Type::Tag => {
            decoder.tag().ok()?;
            if decoder.datatype().ok()? != Type::Bytes {
                return None;
            }
            Field::Bytes(decoder.bytes().ok()?)
        }
        Type::Null => {
            decoder.null().ok()?;
            Field::Absent
        }
        Type::Undefined => {
            decoder.undefined().ok()?;
            Field::Absent
        }
        Type::U8 | Type::U16 | Type::U32 | Type::U64 => Field::Unsigned(decoder.u64().ok()?),
        _ => {
            decoder.skip().ok()?;
            Field::Other
        }
    })
}

fn text(field: Option<Field<'_>>) -> Option<&str> {
    match field? {
        Field::Text(t) => Some(t),
        _ => None,
    }
}

/// A peer-chosen id: text of at most [`MAX_ID_BYTES`].
fn id(field: Option<Field<'_>>) -> Option<&str> {
    text(field).filter(|t| t.len() <= MAX_ID_BYTES)
}

fn bytes_of(field: Option<Field<'_>>) -> Option<&[u8]> {
    match field? {
        Field::Bytes(b) => Some(b),
        _ => None,
    }
}

/// The general decoder's answer where this one answers: for the benchmark's
/// and the fuzz corpus' inputs see `fuzzing::check_decode`; these are the
/// shapes a hostile or unusual client sends on purpose.
#[cfg(test)]
mod tests {
    use ciborium::Value;

    use super::super::Message;
    use super::decode;
    use crate::DocumentId;

    fn frame(entries: Vec<(&str, Value)>) -> Vec<u8> {
        let map = entries.into_iter().map(|(k, v)| (Value::Text(k.to_owned()), v)).collect();
        let mut out = Vec::new();
        ciborium::ser::into_writer(&Value::Map(map), &mut out).expect("encodes");
        out
    }

    fn text(s: &str) -> Value {
        Value::Text(s.to_owned())
    }

    fn sync_entries() -> Vec<(&'static str, Value)> {
        vec![
            ("type", text("sync")),
            ("senderId", text("peer-a")),
            ("targetId", text("server")),
            ("documentId", text(&DocumentId::from_random([3; 16]).to_string())),
            ("data", Value::Bytes(vec![0x42, 1, 2, 3])),
        ]
    }

    /// Both decoders on one frame: where the fast one answers, it says what
    /// the general one says; returns whether it answered.
    fn agree(bytes: &[u8]) -> bool {
        let general = Message::decode_general(bytes);
        match decode(bytes) {
            Some(fast) => {
                assert_eq!(general.as_ref().ok(), Some(&fast), "the fast decoder disagrees on {bytes:02x?}");
                true
            }
            None => false,
        }
    }

    #[test]
    fn a_plain_sync_and_request_are_decoded_in_place() {
        assert!(agree(&frame(sync_entries())));
        let mut request = sync_entries();
        request[0].1 = text("request");
        assert!(agree(&frame(request)));
    }

    #[test]
    fn an_ephemeral_with_an_integer_count_is_decoded_in_place() {
        let mut entries = sync_entries();
        entries[0].1 = text("ephemeral");
        entries.push(("sessionId", text("session-1")));
        entries.push(("count", Value::Integer(7.into())));
        assert!(agree(&frame(entries.clone())));
        // A count that arrived as a float is the general decoder's case.
        entries.last_mut().expect("count").1 = Value::Float(7.0);
        assert!(!agree(&frame(entries)));
    }

    #[test]
    fn unknown_fields_tags_and_null_extras_are_read_like_the_general_decoder() {
        let mut entries = sync_entries();
        entries.push(("extra", Value::Array(vec![Value::Map(vec![(text("x"), Value::Float(1.5))])])));
        entries.push(("alsoExtra", Value::Null));
        entries[4].1 = Value::Tag(64, Box::new(Value::Bytes(vec![9, 9])));
        assert!(agree(&frame(entries)));
    }

    #[test]
    fn the_last_of_a_repeated_field_counts_in_both() {
        let mut entries = sync_entries();
        entries.push(("senderId", text("peer-b")));
        let bytes = frame(entries);
        assert!(agree(&bytes));
        let Some(Message::Sync(m)) = decode(&bytes) else { panic!("not a sync") };
        assert_eq!(m.sender_id.0, "peer-b");
    }

    #[test]
    fn anything_malformed_or_missing_is_left_to_the_general_decoder() {
        let without = |field: &str| frame(sync_entries().into_iter().filter(|(k, _)| *k != field).collect());
        for field in ["type", "senderId", "targetId", "documentId", "data"] {
            assert!(!agree(&without(field)), "without {field}");
        }
        let with = |field: &str, value: Value| {
            frame(sync_entries().into_iter().map(|(k, v)| if k == field { (k, value.clone()) } else { (k, v) }).collect())
        };
        assert!(!agree(&with("senderId", text(&"x".repeat(257)))));
        assert!(!agree(&with("senderId", Value::Null)));
        assert!(!agree(&with("data", text("not bytes"))));
        assert!(!agree(&with("documentId", text("not-a-document-id"))));
        assert!(!agree(&with("type", text("join"))));
        assert!(!agree(&with("type", Value::Integer(1.into()))));
        // Trailing bytes, a non-text key, a truncated frame.
        let mut trailing = frame(sync_entries());
        trailing.push(0);
        assert!(!agree(&trailing));
        let mut keyed = Vec::new();
        let mut map: Vec<(Value, Value)> = sync_entries().into_iter().map(|(k, v)| (text(k), v)).collect();
        map.push((Value::Integer(1.into()), text("x")));
        ciborium::ser::into_writer(&Value::Map(map), &mut keyed).expect("encodes");
        assert!(!agree(&keyed));
        let whole = frame(sync_entries());
        for cut in 0..whole.len() {
            assert!(!agree(&whole[..cut]), "cut at {cut}");
        }
    }
}
