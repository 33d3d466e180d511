//! With `--open` nothing is checked, but new processes are still indexed
//! (which process each new document belongs to), so the start page can list them.

use konsens_model::access;
use konsens_sync::{DocEngine, DocumentId};

use crate::auth::{Auth, Principal};

/// Remember which process a newly created document belongs to.
pub(super) fn index_new_document(auth: &Auth, id: DocumentId, engine: &DocEngine, sync: &automerge::sync::Message) {
    // An empty document has nothing deferred: its applied document is all of it.
    if !engine.is_empty() || auth.is_registered(&id) {
        return;
    }
    let Ok(changes) = access::incoming_changes(engine.applied_doc(), sync) else { return };
    if changes.is_empty() {
        return;
    }
    let everyone = Principal::open().sender();
    let nobody = |_: &automerge::ActorId| None;
    if let Ok(admitted) = access::admit(id, engine.applied_doc(), &changes, &everyone, &nobody)
        && let Some(process) = admitted.creates_in
        && let Err(e) = auth.store.set_document_process(&id, &process)
    {
        tracing::error!(document = %id, error = %e, "cannot index the new document");
    }
}
