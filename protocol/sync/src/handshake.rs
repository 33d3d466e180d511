//! The server side of the connection handshake: `join` in, `peer` (or `error`) out.

use crate::message::{Message, PeerId, PeerMetadata, StorageId, PROTOCOL_VERSION};
use crate::ProtocolError;

/// What the server says about itself to every joining peer.
#[derive(Clone, Debug)]
pub struct Handshake {
    pub our_peer_id: PeerId,
    pub storage_id: StorageId,
}

/// A peer that completed the handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Joined {
    pub peer_id: PeerId,
    pub metadata: PeerMetadata,
    /// The `peer` reply to send.
    pub reply: Message,
}

impl Handshake {
    /// Answer the first message of a connection. On error, the returned
    /// message (an `error`) is to be sent before closing.
    pub fn accept(&self, first: Message) -> Result<Joined, (ProtocolError, Message)> {
        let error_reply = |error: ProtocolError, target: Option<PeerId>| {
            let message = Message::error(Some(self.our_peer_id.clone()), target, error.to_string());
            (error, message)
        };
        match first {
            Message::Join {
                sender_id,
                peer_metadata,
                supported_protocol_versions,
            } => {
                let speaks_v1 = supported_protocol_versions
                    .as_ref()
                    .is_none_or(|versions| versions.iter().any(|v| v == PROTOCOL_VERSION));
                if !speaks_v1 {
                    return Err(error_reply(
                        ProtocolError::UnsupportedProtocolVersion {
                            offered: supported_protocol_versions.unwrap_or_default(),
                        },
                        Some(sender_id),
                    ));
                }
                let reply = Message::Peer {
                    sender_id: self.our_peer_id.clone(),
                    target_id: sender_id.clone(),
                    peer_metadata: Some(PeerMetadata {
                        storage_id: Some(self.storage_id.clone()),
                        is_ephemeral: false,
                    }),
                    selected_protocol_version: PROTOCOL_VERSION.to_owned(),
                };
                Ok(Joined {
                    peer_id: sender_id,
                    metadata: peer_metadata.unwrap_or_default(),
                    reply,
                })
            }
            other => Err(error_reply(
                ProtocolError::UnexpectedMessage {
                    message_type: other.type_name(),
                    state: "before join",
                },
                None,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handshake() -> Handshake {
        Handshake {
            our_peer_id: PeerId::from("server"),
            storage_id: StorageId("store".into()),
        }
    }

    #[test]
    fn join_gets_peer_with_storage_id() {
        let joined = handshake()
            .accept(Message::Join {
                sender_id: PeerId::from("c"),
                peer_metadata: None,
                supported_protocol_versions: None,
            })
            .expect("accepted");
        assert_eq!(joined.peer_id, PeerId::from("c"));
        match joined.reply {
            Message::Peer {
                target_id,
                peer_metadata: Some(meta),
                selected_protocol_version,
                ..
            } => {
                assert_eq!(target_id, PeerId::from("c"));
                assert_eq!(meta.storage_id, Some(StorageId("store".into())));
                assert!(!meta.is_ephemeral);
                assert_eq!(selected_protocol_version, "1");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unsupported_version_and_missing_join_are_errors() {
        let (err, reply) = handshake()
            .accept(Message::Join {
                sender_id: PeerId::from("c"),
                peer_metadata: None,
                supported_protocol_versions: Some(vec!["2".into()]),
            })
            .expect_err("refused");
        assert!(matches!(err, ProtocolError::UnsupportedProtocolVersion { .. }));
        assert!(matches!(reply, Message::Error { message, .. } if message.contains("unsupported protocol version")));
        assert!(handshake().accept(Message::Leave { sender_id: PeerId::from("c") }).is_err());
    }
}
