//! The frames of a node-to-node link. A relaying node (where the client is
//! connected) speaks for each of its connections, per document, to the
//! document's owner node; the owner answers the same way. Each frame names
//! the relaying node's connection and the document, so one link carries
//! every connection and document between two nodes.
//!
//! Binary: a kind byte, the connection (u64, little endian), the document's
//! 16 bytes, then the kind's fields. Payloads (a client's sync data, a frame
//! for the client) are the rest of the frame, never copied into another
//! encoding.

use konsens_sync::{ConnectionId, DocumentId, PeerId, StorageId};

use crate::error::ServerError;

/// One frame on a node-to-node link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Envelope {
    /// Relaying node → owner: this connection talks about this document from
    /// now on, as the member of `token_id` (verified by the relaying node;
    /// the owner reads the member's current record itself).
    Open { conn: ConnectionId, document: DocumentId, peer: PeerId, storage: Option<StorageId>, token_id: String },
    /// Relaying node → owner: a `sync` (or `request`) payload.
    Sync { conn: ConnectionId, document: DocumentId, request: bool, data: Vec<u8> },
    /// Relaying node → owner: an encoded `ephemeral` message.
    Ephemeral { conn: ConnectionId, document: DocumentId, frame: Vec<u8> },
    /// Relaying node → owner: the connection synced this document with an
    /// earlier owner; start afresh (see `DocInput::Resync`).
    Resync { conn: ConnectionId, document: DocumentId },
    /// Relaying node → owner: the connection is gone (or went elsewhere).
    Leave { conn: ConnectionId, document: DocumentId },
    /// Owner → relaying node: a frame for the client.
    Out { conn: ConnectionId, document: DocumentId, frame: Vec<u8> },
    /// Owner → relaying node: the owner closed this connection's document.
    /// `moved`: not the client's doing (the owner lost the document, failed
    /// to store it, or shuts down): the relaying node finds the new owner and
    /// the client stays connected. Otherwise the client is closed with this
    /// code and reason, as the owner would have closed it.
    Closed { conn: ConnectionId, document: DocumentId, moved: bool, code: u16, reason: String },
}

const OPEN: u8 = 1;
const SYNC: u8 = 2;
const EPHEMERAL: u8 = 3;
const RESYNC: u8 = 4;
const LEAVE: u8 = 5;
const OUT: u8 = 6;
const CLOSED: u8 = 7;

/// Kind, connection, document.
const HEADER: usize = 1 + 8 + 16;

impl Envelope {
    pub fn encode(&self) -> Vec<u8> {
        let (kind, conn, document) = match self {
            Envelope::Open { conn, document, .. } => (OPEN, conn, document),
            Envelope::Sync { conn, document, .. } => (SYNC, conn, document),
            Envelope::Ephemeral { conn, document, .. } => (EPHEMERAL, conn, document),
            Envelope::Resync { conn, document } => (RESYNC, conn, document),
            Envelope::Leave { conn, document } => (LEAVE, conn, document),
            Envelope::Out { conn, document, .. } => (OUT, conn, document),
            Envelope::Closed { conn, document, .. } => (CLOSED, conn, document),
        };
        let mut out = Vec::with_capacity(HEADER + self.payload_len());
        out.push(kind);
        out.extend_from_slice(&conn.0.to_le_bytes());
        out.extend_from_slice(document.as_bytes());
        match self {
            Envelope::Open { peer, storage, token_id, .. } => {
                put_text(&mut out, &peer.0);
                match storage {
                    Some(storage) => {
                        out.push(1);
                        put_text(&mut out, &storage.0);
                    }
                    None => out.push(0),
                }
                put_text(&mut out, token_id);
            }
            Envelope::Sync { request, data, .. } => {
                out.push(u8::from(*request));
                out.extend_from_slice(data);
            }
            Envelope::Ephemeral { frame, .. } | Envelope::Out { frame, .. } => out.extend_from_slice(frame),
            Envelope::Resync { .. } | Envelope::Leave { .. } => {}
            Envelope::Closed { moved, code, reason, .. } => {
                out.push(u8::from(*moved));
                out.extend_from_slice(&code.to_le_bytes());
                out.extend_from_slice(reason.as_bytes());
            }
        }
        out
    }

    fn payload_len(&self) -> usize {
        match self {
            Envelope::Sync { data, .. } => 1 + data.len(),
            Envelope::Ephemeral { frame, .. } | Envelope::Out { frame, .. } => frame.len(),
            _ => 64,
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, ServerError> {
        if bytes.len() < HEADER {
            return Err(ServerError::BadRelayFrame("shorter than its header"));
        }
        let kind = bytes[0];
        let conn = ConnectionId(u64::from_le_bytes(bytes[1..9].try_into().map_err(|_| ServerError::BadRelayFrame("connection"))?));
        let document = DocumentId::from_bytes(bytes[9..HEADER].try_into().map_err(|_| ServerError::BadRelayFrame("document"))?);
        let mut rest = Reader(&bytes[HEADER..]);
        Ok(match kind {
            OPEN => {
                let peer = PeerId(rest.text()?);
                let storage = match rest.byte()? {
                    0 => None,
                    _ => Some(StorageId(rest.text()?)),
                };
                let token_id = rest.text()?;
                Envelope::Open { conn, document, peer, storage, token_id }
            }
            SYNC => {
                let request = rest.byte()? != 0;
                Envelope::Sync { conn, document, request, data: rest.0.to_vec() }
            }
            EPHEMERAL => Envelope::Ephemeral { conn, document, frame: rest.0.to_vec() },
            RESYNC => Envelope::Resync { conn, document },
            LEAVE => Envelope::Leave { conn, document },
            OUT => Envelope::Out { conn, document, frame: rest.0.to_vec() },
            CLOSED => {
                let moved = rest.byte()? != 0;
                let code = u16::from_le_bytes([rest.byte()?, rest.byte()?]);
                let reason = String::from_utf8(rest.0.to_vec()).map_err(|_| ServerError::BadRelayFrame("reason is not UTF-8"))?;
                Envelope::Closed { conn, document, moved, code, reason }
            }
            _ => return Err(ServerError::BadRelayFrame("unknown kind")),
        })
    }
}

/// A length-prefixed (u16) UTF-8 string.
fn put_text(out: &mut Vec<u8>, text: &str) {
    // Peer ids, storage ids and token ids are short; a longer one is cut
    // rather than written with a wrong length.
    let len = text.len().min(usize::from(u16::MAX));
    out.extend_from_slice(&(len as u16).to_le_bytes());
    out.extend_from_slice(&text.as_bytes()[..len]);
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, ServerError> {
        let (&first, rest) = self.0.split_first().ok_or(ServerError::BadRelayFrame("ends early"))?;
        self.0 = rest;
        Ok(first)
    }

    fn text(&mut self) -> Result<String, ServerError> {
        let len = usize::from(u16::from_le_bytes([self.byte()?, self.byte()?]));
        if self.0.len() < len {
            return Err(ServerError::BadRelayFrame("ends inside a string"));
        }
        let (text, rest) = self.0.split_at(len);
        self.0 = rest;
        String::from_utf8(text.to_vec()).map_err(|_| ServerError::BadRelayFrame("string is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_comes_back_as_it_went() {
        let (conn, document) = (ConnectionId(u64::MAX - 3), DocumentId::from_random([5; 16]));
        let all = [
            Envelope::Open { conn, document, peer: PeerId("browser-ü".into()), storage: Some(StorageId("laptop".into())), token_id: "tok_1".into() },
            Envelope::Open { conn, document, peer: PeerId("p".into()), storage: None, token_id: String::new() },
            Envelope::Sync { conn, document, request: true, data: vec![0, 1, 2, 255] },
            Envelope::Sync { conn, document, request: false, data: Vec::new() },
            Envelope::Ephemeral { conn, document, frame: vec![9; 40] },
            Envelope::Resync { conn, document },
            Envelope::Leave { conn, document },
            Envelope::Out { conn, document, frame: vec![1] },
            Envelope::Closed { conn, document, moved: false, code: 1008, reason: "Zugriff verweigert".into() },
        ];
        for envelope in all {
            assert_eq!(Envelope::decode(&envelope.encode()).expect("decodes"), envelope);
        }
    }

    #[test]
    fn bad_frames_are_typed_errors() {
        let good = Envelope::Open { conn: ConnectionId(1), document: DocumentId::from_random([1; 16]), peer: PeerId("p".into()), storage: None, token_id: "t".into() }.encode();
        for cut in 0..good.len() {
            assert!(matches!(Envelope::decode(&good[..cut]), Err(ServerError::BadRelayFrame(_))), "cut at {cut}");
        }
        let mut unknown = good.clone();
        unknown[0] = 99;
        assert!(matches!(Envelope::decode(&unknown), Err(ServerError::BadRelayFrame("unknown kind"))));
    }
}
