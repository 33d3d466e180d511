//! What the store's test files share.

use konsens_store::{TokenKind, TokenRecord, TokenRole};
use konsens_sync::DocumentId;

/// A member's token record in process [7; 16].
pub fn member(id: &str, role: TokenRole) -> TokenRecord {
    TokenRecord {
        id: id.into(),
        kind: TokenKind::Member,
        process: Some(DocumentId::from_bytes([7; 16])),
        participant: format!("p-{id}"),
        name: id.into(),
        organisation: "O".into(),
        role,
        created_at: 1,
        expires_at: None,
        revoked: false,
        created_by: None,
        joined_at: None,
        last_seen: None,
        email: None,
    }
}
