//! Admission: may a `sync` or `request` reach the engine? The access rules
//! and limits decide for the changes it brings; refused changes are
//! remembered per connection; accepted ones are recorded with who delivered
//! them (provenance), written by the group commit ahead of the document.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use automerge::ChangeHash;
use konsens_model::access;
use konsens_store::{Provenance, Record, StoreError};
use konsens_sync::{ConnectionId, DocEngine, DocumentId, Message};

use crate::document::context::DocumentContext;
use crate::handle::ConnectionHandle;
use crate::reply;
use crate::util::now_millis;

/// Where a message goes after admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pass {
    /// To the engine.
    Engine,
    /// To the engine, which answers `doc-unavailable`; the connection waits
    /// for the document's creation (see `Peers::awaiting_creation`).
    EngineAwaitingCreation,
    /// Nowhere: the sender has been answered, or is ignored.
    Dropped,
}

/// Why a message's changes do not go to the engine.
#[derive(Debug)]
enum Verdict {
    /// A document the connection may not read: answered as if missing.
    Unavailable,
    /// Refused by the access rules or limits; the sender is told.
    Refused(access::Refused),
    /// It offers changes refused before (or built on them); dropped silently.
    AlreadyRefused,
    /// Our own failure; the sender is told, nothing stored.
    Failed(AdmissionError),
}

/// Our own failures while admitting changes.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AdmissionError {
    /// Authorship (actor claims, provenance) could not be recorded.
    #[error("cannot record authorship: {0}")]
    Authorship(#[from] StoreError),
}

/// The admission state of one document.
#[derive(Debug)]
pub(super) struct Admission {
    ctx: Arc<DocumentContext>,
    id: DocumentId,
    /// Changes refused from each connection, and their dependents seen since.
    /// A client that does not recover from a refusal keeps offering them;
    /// such messages are dropped without a reply, so no loop of refusals
    /// starts and the refusal is logged once.
    refused: HashMap<ConnectionId, HashSet<ChangeHash>>,
}

impl Admission {
    pub fn new(ctx: Arc<DocumentContext>, id: DocumentId) -> Self {
        Self { ctx, id, refused: HashMap::new() }
    }

    pub fn forget(&mut self, conn: ConnectionId) {
        self.refused.remove(&conn);
    }

    /// Decide where a sync message goes; answers the sender itself when not to the engine.
    pub fn screen(&mut self, engine: &mut DocEngine, stored_bytes: usize, conn: &ConnectionHandle, message: &automerge::sync::Message, request: bool) -> Pass {
        let verdict = match self.check(engine, stored_bytes, conn, message, request) {
            Ok(pass) => return pass,
            Err(verdict) => verdict,
        };
        let ours = &self.ctx.our_peer_id;
        match verdict {
            Verdict::Unavailable => {
                // Exactly what a document that does not exist gets.
                let reply = Message::DocUnavailable { sender_id: ours.clone(), target_id: conn.peer_id.clone(), document_id: self.id };
                conn.send(reply.encode());
            }
            Verdict::AlreadyRefused => {
                tracing::debug!(document = %self.id, conn = ?conn.id, "dropped a message offering changes refused before");
            }
            Verdict::Refused(refused) => {
                tracing::warn!(document = %self.id, participant = %conn.principal.participant, role = conn.principal.role_name(), code = %refused.reason.code(), reason = %refused.reason, "refused changes");
                self.refused.entry(conn.id).or_default().extend(refused.changes.iter().copied());
                conn.send(reply::refusal(ours, &conn.peer_id, &refused, self.id).encode());
            }
            Verdict::Failed(error) => {
                tracing::error!(document = %self.id, %error, "cannot admit changes");
                let text = format!("changes to {} not stored: {error}", self.id);
                conn.send(reply::error(ours, Some(&conn.peer_id), text).encode());
            }
        }
        Pass::Dropped
    }

    fn check(&mut self, engine: &mut DocEngine, stored_bytes: usize, conn: &ConnectionHandle, message: &automerge::sync::Message, request: bool) -> Result<Pass, Verdict> {
        let auth = &self.ctx.auth;
        let readable = auth.can_read(&conn.principal, &self.id);
        let missing = engine.is_empty() && !auth.is_registered(&self.id);
        // A `sync` for a document nobody has yet may create it; admission decides.
        let creating = !request && missing;
        if !readable && request && missing {
            // Nobody has it yet. The engine answers `doc-unavailable` (as for
            // any missing document) and sends the document once it exists,
            // if this connection may read it then: a recommendation linked a
            // moment before it reached the server still arrives.
            return Ok(Pass::EngineAwaitingCreation);
        }
        if !readable && !creating {
            return Err(Verdict::Unavailable);
        }
        self.admit(engine, stored_bytes, conn, message)?;
        Ok(Pass::Engine)
    }

    /// Check the changes a message brings against the access rules and limits,
    /// and record who delivered them.
    fn admit(&mut self, engine: &mut DocEngine, stored_bytes: usize, conn: &ConnectionHandle, sync: &automerge::sync::Message) -> Result<(), Verdict> {
        // A client that does not recover keeps advertising refused changes;
        // answering would make the engine ask for them again and again (a
        // loop of hundreds of frames a second). It hears nothing until it
        // stops, and still receives others' edits.
        if let Some(refused) = self.refused.get(&conn.id)
            && sync.heads.iter().any(|h| refused.contains(h))
        {
            return Err(Verdict::AlreadyRefused);
        }
        if sync.changes.is_empty() {
            return Ok(());
        }
        // Which changes are new, counting those the engine has deferred;
        // a chunk that does not split cheaply is loaded onto the whole document.
        let changes = match access::incoming_changes_by(sync, |h| engine.has_change(h)) {
            Some(changes) => changes,
            None => access::incoming_changes(engine.doc(), sync)
                .map_err(|reason| Verdict::Refused(access::Refused { reason, changes: Vec::new() }))?,
        };
        if changes.is_empty() {
            return Ok(());
        }
        // Changes refused before, or built on them, are not looked at again.
        if let Some(refused) = self.refused.get_mut(&conn.id) {
            let mut tainted = false;
            for change in &changes {
                if refused.contains(&change.hash()) || change.deps().iter().any(|d| refused.contains(d)) {
                    refused.insert(change.hash());
                    tainted = true;
                }
            }
            if tainted {
                return Err(Verdict::AlreadyRefused);
            }
        }
        let refuse_all = |reason| Verdict::Refused(access::Refused { reason, changes: changes.iter().map(|c| c.hash()).collect() });
        let ctx = &self.ctx;
        let size: usize = changes.iter().map(|c| c.raw_bytes().len()).sum();
        if stored_bytes + size > ctx.max_document_bytes {
            return Err(refuse_all(access::Refusal::DocumentTooLarge { limit: ctx.max_document_bytes }));
        }
        // Typing is judged on the document without the engine's deferred
        // changes (see `access::is_typing`); anything else on the whole
        // document, applying what was deferred.
        let doc = if access::is_typing(engine.applied_doc(), &changes) { engine.applied_doc() } else { engine.doc() };
        let store = &ctx.auth.store;
        let owner_of = |actor: &automerge::ActorId| store.actor_owner(actor.to_bytes()).ok().flatten();
        let policy = || process_policy(ctx, &self.id);
        // An amendment's branch is judged on its recommendation's entry.
        let amended = |rec: &DocumentId| load_flushed(ctx, rec, "the amended recommendation");
        let admitted = access::admit_amendable(self.id, doc, &changes, &conn.principal.sender(), &owner_of, &policy, &amended).map_err(Verdict::Refused)?;
        if doc.is_empty() && !ctx.creations.allow(&conn.principal.participant) {
            return Err(refuse_all(access::Refusal::CreationLimit { per_hour: ctx.creations.per_hour }));
        }
        // Claims are decided in memory at once; everything is written and
        // flushed by the group-commit thread, ahead of the document write it
        // precedes, never on this async worker.
        let failed = |e: StoreError| Verdict::Failed(AdmissionError::from(e));
        let mut records = Vec::new();
        for actor in &admitted.new_actors {
            let owner = store.claim_actor(actor.to_bytes(), &conn.principal.participant).map_err(failed)?;
            if owner != conn.principal.participant {
                let hashes = admitted.changes.iter().filter(|c| &c.actor == actor).map(|c| c.hash).collect();
                let reason = access::Refusal::ForeignActor { change: admitted.changes[0].hash, actor: actor.to_hex_string() };
                return Err(Verdict::Refused(access::Refused { reason, changes: hashes }));
            }
            records.push(Record::BindActor { actor: actor.to_bytes().to_vec(), participant: conn.principal.participant.clone() });
        }
        if let Some(process) = admitted.creates_in {
            records.push(Record::DocumentProcess { document: self.id, process });
        }
        let at = now_millis();
        for change in &admitted.changes {
            records.push(Record::Provenance {
                document: self.id,
                change: change.hash.0,
                provenance: Provenance {
                    author: change.author.clone(),
                    delivered_by: conn.principal.participant.clone(),
                    merged_by: change.merged_by.clone(),
                    at,
                },
            });
        }
        ctx.commit.submit_records(records).map_err(failed)
    }
}

/// The policy of the document's process, read from the process as flushed
/// (what the server has acknowledged). Asked only when changes adopt a
/// recommendation, so this rare read of sled stays on the owner's worker.
/// A process that cannot be read sets no policy.
fn process_policy(ctx: &DocumentContext, document: &DocumentId) -> access::Policy {
    let Ok(Some(process)) = ctx.auth.store.document_process(document) else { return access::Policy::default() };
    match load_flushed(ctx, &process, "the process for its consent policy") {
        Some(doc) => access::Policy::of_process(&doc),
        None => access::Policy::default(),
    }
}

/// Another document as flushed, read on the owner's worker: the process (for
/// its policy, when adopting) or the recommendation an amendment's branch
/// amends (for every change to the branch; a branch is small and edited by a
/// few). `None` (logged) when it cannot be read.
fn load_flushed(ctx: &DocumentContext, id: &DocumentId, what: &str) -> Option<automerge::Automerge> {
    let mut doc = automerge::Automerge::new();
    match ctx.store.load(id) {
        Ok(chunks) => {
            for chunk in chunks {
                if let Err(error) = doc.load_incremental(&chunk.bytes) {
                    tracing::error!(document = %id, %error, "cannot read {what}");
                    return None;
                }
            }
            Some(doc)
        }
        Err(error) => {
            tracing::error!(document = %id, %error, "cannot load {what}");
            None
        }
    }
}
