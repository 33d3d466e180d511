//! A peer session: the connection protocol after the handshake, sans-IO, as
//! samod-core splits it from its runtime.
//!
//! The runtime reads a binary frame, decodes it ([`Message::decode`]) and
//! hands the result to [`PeerSession::receive`]; what comes back is plain
//! data ([`SessionAction`]): route this to that document's owner, answer with
//! this `error`, close for this reason, or nothing. Rate limits, access
//! rules, read limits on sync payloads and which documents are loaded stay
//! with the runtime; text frames and ping/pong stay in the WebSocket adapter.
//!
//! The rules, in one place for server and client:
//! - `join` and `peer` belong to the handshake: once joined, another one is
//!   answered with an `error` and otherwise ignored (the connection stays).
//! - A frame that does not decode closes the connection as a protocol
//!   violation, after an `error` saying why (a server); a message type we do
//!   not know is answered and skipped, since a newer peer may speak it.
//!   A client only logs what it cannot decode: the server is the one peer
//!   it has, and a newer server should not cut it off.
//! - The sender of a `sync`/`request` is who joined, whatever the message
//!   claims (the server rewrites it); the target is not checked, since
//!   automerge-repo peers address the server by whatever id it announced.
//! - An `ephemeral` naming another sender is not relayed: the server is every
//!   client's only relay, so that is an echo of what we relayed or a forgery.
//! - `leave` ends the session normally.
//! - Gossip of other storages' heads (`remote-subscription-change`,
//!   `remote-heads-changed`) is optional; we neither need nor relay it.

use crate::close::CloseReason;
use crate::engine::Role;
use crate::message::{DocMessage, EphemeralMessage, Message, PeerId, WireRefusal};
use crate::{DocumentId, ProtocolError};

/// What the runtime does with one incoming frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionAction {
    /// Hand a `sync` (or, to a server, a `request`) to the document's owner.
    Sync { document_id: DocumentId, message: DocMessage, request: bool },
    /// Hand an `ephemeral` message to the document's owner to relay.
    Ephemeral { document_id: DocumentId, message: EphemeralMessage },
    /// The server has no content for this document (client side).
    Unavailable { document_id: DocumentId },
    /// The peer reported an error; a refusal tells a client which of its
    /// changes to set aside.
    PeerError { message: String, refusal: Option<WireRefusal> },
    /// Send this `error` and carry on.
    Answer(Message),
    /// Send `reply` (if any), then close with `reason`.
    Close { reply: Option<Message>, reason: CloseReason },
    /// The peer left: close normally.
    Leave,
    /// Nothing to do.
    Ignore(Ignored),
}

/// Why a frame needs nothing done, for the runtime's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ignored {
    /// An `ephemeral` under another peer's id (an echo or a forgery).
    ForeignEphemeral,
    /// A message this side has no use for (gossip, or one addressed to the other role).
    Unneeded(&'static str),
    /// A client skips what it cannot decode (see the module documentation).
    Undecodable(ProtocolError),
}

/// One joined peer's session.
#[derive(Debug, Clone)]
pub struct PeerSession {
    role: Role,
    our_peer_id: PeerId,
    their_peer_id: PeerId,
}

impl PeerSession {
    /// A session with `their_peer_id`, who completed the handshake
    /// ([`crate::Handshake::accept`] on a server, the `peer` reply on a client).
    pub fn new(role: Role, our_peer_id: PeerId, their_peer_id: PeerId) -> Self {
        Self { role, our_peer_id, their_peer_id }
    }

    pub fn peer_id(&self) -> &PeerId {
        &self.their_peer_id
    }

    /// Decide what one incoming frame means. `frame` is what
    /// [`Message::decode`] made of it.
    pub fn receive(&mut self, frame: Result<Message, ProtocolError>) -> SessionAction {
        let message = match frame {
            Ok(message) => message,
            Err(error) => return self.undecodable(error),
        };
        match message {
            Message::Sync(message) => self.route(message, false),
            Message::Request(message) => self.route(message, true),
            Message::Ephemeral(message) => match self.role {
                Role::Server if message.sender_id != self.their_peer_id => SessionAction::Ignore(Ignored::ForeignEphemeral),
                Role::Server => SessionAction::Ephemeral { document_id: message.document_id, message },
                // A client shows no presence of others today.
                Role::Client => SessionAction::Ignore(Ignored::Unneeded("ephemeral")),
            },
            Message::DocUnavailable { document_id, .. } => match self.role {
                Role::Client => SessionAction::Unavailable { document_id },
                Role::Server => SessionAction::Ignore(Ignored::Unneeded("doc-unavailable")),
            },
            Message::Error { message, refusal, .. } => SessionAction::PeerError { message, refusal },
            Message::Leave { .. } => match self.role {
                Role::Server => SessionAction::Leave,
                // A server ends a session with a close frame, not `leave`.
                Role::Client => SessionAction::Ignore(Ignored::Unneeded("leave")),
            },
            Message::RemoteSubscriptionChange { .. } | Message::RemoteHeadsChanged { .. } => {
                SessionAction::Ignore(Ignored::Unneeded(message.type_name()))
            }
            Message::Join { .. } | Message::Peer { .. } => match self.role {
                Role::Server => SessionAction::Answer(self.error(&ProtocolError::UnexpectedMessage {
                    message_type: message.type_name(),
                    state: "after the handshake",
                })),
                Role::Client => SessionAction::Ignore(Ignored::Unneeded(message.type_name())),
            },
        }
    }

    fn route(&self, mut message: DocMessage, request: bool) -> SessionAction {
        let document_id = message.document_id;
        match self.role {
            Role::Server => {
                // The sender is who joined, whatever the message claims.
                message.sender_id = self.their_peer_id.clone();
                SessionAction::Sync { document_id, message, request }
            }
            // We hold our documents ourselves: a server's `request` is
            // answered like a `sync` (never with doc-unavailable).
            Role::Client => SessionAction::Sync { document_id, message, request: false },
        }
    }

    fn undecodable(&self, error: ProtocolError) -> SessionAction {
        match (self.role, &error) {
            (Role::Client, _) => SessionAction::Ignore(Ignored::Undecodable(error)),
            // A newer peer may speak types we do not know: say so, carry on.
            (Role::Server, ProtocolError::UnknownType(_)) => SessionAction::Answer(self.error(&error)),
            (Role::Server, _) => SessionAction::Close { reply: Some(self.error(&error)), reason: CloseReason::ProtocolViolation(error) },
        }
    }

    fn error(&self, error: &ProtocolError) -> Message {
        Message::error(Some(self.our_peer_id.clone()), Some(self.their_peer_id.clone()), error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> DocumentId {
        DocumentId::from_bytes([7; 16])
    }

    fn server() -> PeerSession {
        PeerSession::new(Role::Server, PeerId::from("server"), PeerId::from("alice"))
    }

    fn client() -> PeerSession {
        PeerSession::new(Role::Client, PeerId::from("alice"), PeerId::from("server"))
    }

    fn doc_message(sender: &str) -> DocMessage {
        DocMessage { sender_id: PeerId::from(sender), target_id: PeerId::from("server"), document_id: doc(), data: vec![1] }
    }

    fn ephemeral(sender: &str) -> EphemeralMessage {
        EphemeralMessage {
            sender_id: PeerId::from(sender),
            target_id: PeerId::from("server"),
            document_id: doc(),
            session_id: "s".into(),
            count: 1,
            data: vec![],
        }
    }

    #[test]
    fn sync_and_request_route_to_the_document_with_the_joined_sender() {
        match server().receive(Ok(Message::Sync(doc_message("mallory")))) {
            SessionAction::Sync { document_id, message, request } => {
                assert_eq!(document_id, doc());
                assert_eq!(message.sender_id, PeerId::from("alice"), "the sender is who joined");
                assert!(!request);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(server().receive(Ok(Message::Request(doc_message("alice")))), SessionAction::Sync { request: true, .. }));
        // A client takes the server's request like a sync.
        assert!(matches!(client().receive(Ok(Message::Request(doc_message("server")))), SessionAction::Sync { request: false, .. }));
    }

    #[test]
    fn a_second_join_is_answered_and_the_session_stays() {
        let join = Message::Join { sender_id: PeerId::from("alice"), peer_metadata: None, supported_protocol_versions: None };
        match server().receive(Ok(join)) {
            SessionAction::Answer(Message::Error { target_id, message, .. }) => {
                assert_eq!(target_id, Some(PeerId::from("alice")));
                assert!(message.contains("after the handshake"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn ephemeral_under_another_id_is_not_relayed() {
        assert_eq!(server().receive(Ok(Message::Ephemeral(ephemeral("bob")))), SessionAction::Ignore(Ignored::ForeignEphemeral));
        assert!(matches!(server().receive(Ok(Message::Ephemeral(ephemeral("alice")))), SessionAction::Ephemeral { .. }));
    }

    #[test]
    fn undecodable_frames_close_a_server_session_but_unknown_types_are_answered() {
        match server().receive(Err(ProtocolError::MalformedCbor("eof".into()))) {
            SessionAction::Close { reply: Some(Message::Error { .. }), reason } => {
                assert_eq!(reason.close_code(), 1002);
                assert!(reason.is_peer_fault());
            }
            other => panic!("unexpected {other:?}"),
        }
        match server().receive(Err(ProtocolError::TooLarge { size: 10, limit: 5 })) {
            SessionAction::Close { reason, .. } => assert_eq!(reason.close_code(), 1009),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(server().receive(Err(ProtocolError::UnknownType("new".into()))), SessionAction::Answer(_)));
        assert!(matches!(client().receive(Err(ProtocolError::MalformedCbor("eof".into()))), SessionAction::Ignore(Ignored::Undecodable(_))));
    }

    #[test]
    fn leave_errors_unavailable_and_gossip() {
        assert_eq!(server().receive(Ok(Message::Leave { sender_id: PeerId::from("alice") })), SessionAction::Leave);
        let error = Message::error(Some(PeerId::from("server")), None, "no");
        assert!(matches!(client().receive(Ok(error)), SessionAction::PeerError { refusal: None, .. }));
        let unavailable = Message::DocUnavailable { sender_id: PeerId::from("server"), target_id: PeerId::from("alice"), document_id: doc() };
        assert_eq!(client().receive(Ok(unavailable.clone())), SessionAction::Unavailable { document_id: doc() });
        assert!(matches!(server().receive(Ok(unavailable)), SessionAction::Ignore(_)));
        let gossip = Message::RemoteSubscriptionChange { sender_id: PeerId::from("alice"), target_id: PeerId::from("server"), add: vec![], remove: vec![] };
        assert!(matches!(server().receive(Ok(gossip)), SessionAction::Ignore(Ignored::Unneeded("remote-subscription-change"))));
    }
}
