//! Document identifiers and `automerge:` URLs, as automerge-repo spells them.

use std::fmt;
use std::str::FromStr;

use automerge::ChangeHash;

use crate::ProtocolError;

/// A document's identity: 16 random bytes (a UUID v4), written as bs58check.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocumentId([u8; 16]);

impl DocumentId {
    /// A fresh id from caller-supplied randomness (the protocol crate never
    /// reads a random source itself). The version and variant bits make it a
    /// valid UUID v4, as automerge-repo's own ids are.
    pub fn from_random(mut bytes: [u8; 16]) -> Self {
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        Self(bytes)
    }

    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The `automerge:` URL of this document.
    pub fn url(&self) -> String {
        format!("automerge:{self}")
    }
}

impl fmt::Display for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&bs58::encode(&self.0).with_check().into_string())
    }
}

impl fmt::Debug for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DocumentId({self})")
    }
}

impl FromStr for DocumentId {
    type Err = ProtocolError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: String| ProtocolError::InvalidDocumentId {
            id: s.chars().take(64).collect(),
            reason,
        };
        let bytes = bs58::decode(s)
            .with_check(None)
            .into_vec()
            .map_err(|e| invalid(e.to_string()))?;
        let bytes: [u8; 16] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| invalid(format!("decodes to {} bytes, expected 16", b.len())))?;
        Ok(Self(bytes))
    }
}

/// A parsed `automerge:<id>[#<head>|<head>…]` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutomergeUrl {
    pub document_id: DocumentId,
    /// The version the URL points at; `None` means "the latest".
    pub heads: Option<Vec<ChangeHash>>,
}

impl AutomergeUrl {
    pub fn new(document_id: DocumentId) -> Self {
        Self {
            document_id,
            heads: None,
        }
    }
}

impl fmt::Display for AutomergeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "automerge:{}", self.document_id)?;
        if let Some(heads) = &self.heads {
            let encoded: Vec<String> = heads
                .iter()
                .map(|h| bs58::encode(h.0).with_check().into_string())
                .collect();
            write!(f, "#{}", encoded.join("|"))?;
        }
        Ok(())
    }
}

impl FromStr for AutomergeUrl {
    type Err = ProtocolError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| ProtocolError::InvalidUrl {
            url: s.chars().take(200).collect(),
            reason: reason.to_owned(),
        };
        let rest = s
            .strip_prefix("automerge:")
            .ok_or_else(|| invalid("does not start with \"automerge:\""))?;
        let (id, heads) = match rest.split_once('#') {
            Some((id, heads)) => (id, Some(heads)),
            None => (rest, None),
        };
        let document_id: DocumentId = id.parse().map_err(|e: ProtocolError| ProtocolError::InvalidUrl {
            url: s.chars().take(200).collect(),
            reason: e.to_string(),
        })?;
        let heads = match heads {
            None => None,
            Some(list) => {
                let mut parsed = Vec::new();
                for head in list.split('|').filter(|h| !h.is_empty()) {
                    let bytes = bs58::decode(head)
                        .with_check(None)
                        .into_vec()
                        .map_err(|_| invalid("a head is not bs58check"))?;
                    let hash = ChangeHash::try_from(bytes.as_slice())
                        .map_err(|_| invalid("a head is not 32 bytes"))?;
                    parsed.push(hash);
                }
                Some(parsed)
            }
        };
        Ok(Self { document_id, heads })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_id_round_trips_through_text_and_url() {
        let id = DocumentId::from_random([7; 16]);
        let text = id.to_string();
        assert_eq!(text.parse::<DocumentId>().expect("parses"), id);
        let url: AutomergeUrl = id.url().parse().expect("url parses");
        assert_eq!(url.document_id, id);
        assert_eq!(url.heads, None);
    }

    #[test]
    fn url_with_heads_round_trips() {
        let id = DocumentId::from_random([1; 16]);
        let url = AutomergeUrl {
            document_id: id,
            heads: Some(vec![ChangeHash([3; 32]), ChangeHash([4; 32])]),
        };
        let parsed: AutomergeUrl = url.to_string().parse().expect("parses");
        assert_eq!(parsed, url);
    }

    #[test]
    fn bad_ids_and_urls_are_typed_errors() {
        assert!("not-an-id".parse::<DocumentId>().is_err());
        // valid bs58check, wrong length
        let short = bs58::encode([1u8; 8]).with_check().into_string();
        assert!(short.parse::<DocumentId>().is_err());
        assert!("http://x".parse::<AutomergeUrl>().is_err());
        assert!("automerge:abc#zz".parse::<AutomergeUrl>().is_err());
    }
}
