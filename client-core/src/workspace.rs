//! The facilitator's [`Workspace`]: a repo on a local store, the store's
//! identity and the server it joined. Processes, workshops and
//! recommendations, drafts, local history, the report and dossier import
//! live here; the sync-everything walk is in `sync_all.rs`, what goes through
//! the server's JSON API (join, invite, members, revoke, verified history) in
//! `membership.rs`.
//!
//! Every change is made as the store's identity (one Automerge actor per
//! store), carries a one-line message and a time, and records
//! `authors[actor] = {participant, name, organisation}` in the same change, so
//! history can name who did what.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

use automerge::transaction::{CommitOptions, Transactable, Transaction};
use automerge::{ActorId, Automerge, ChangeHash, ObjType, ROOT, ReadDoc, Value};
use konsens_model::access::AccessRole;
use konsens_model::report::{Language, Report, ReportKind, ReportOptions};
use konsens_model::schema::{self, Endorsement, Member, MemberRole, Process, Recommendation, SchemaError, Stance, Status, Workshop};
use konsens_sync::{AutomergeUrl, DocumentId};
use konsens_store::ChunkStore;
use serde::{Deserialize, Serialize};

pub use crate::clock::now_millis;
use crate::error::ClientError;
use crate::repo::{Repo, RepoConfig};

/// Who the changes made from this store belong to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Stable participant id (random, kept with the store).
    pub participant: String,
    pub name: String,
    pub organisation: String,
    /// Hex Automerge actor id used for every change from this store.
    pub actor: String,
}

/// A document argument: an `automerge:` URL (optionally with `#heads`), a bare
/// document id, or `draft:NAME` for a local draft.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocRef {
    Doc { id: DocumentId, heads: Option<Vec<ChangeHash>> },
    Draft(String),
}

impl FromStr for DocRef {
    type Err = ClientError;
    fn from_str(s: &str) -> Result<Self, ClientError> {
        if let Some(name) = s.strip_prefix("draft:") {
            return Ok(DocRef::Draft(name.to_owned()));
        }
        if s.starts_with("automerge:") {
            let url: AutomergeUrl = s.parse()?;
            return Ok(DocRef::Doc { id: url.document_id, heads: url.heads });
        }
        let id: DocumentId = s.parse().map_err(|_| {
            ClientError::Protocol(konsens_sync::ProtocolError::InvalidUrl {
                url: s.chars().take(200).collect(),
                reason: "expected automerge:<id>, a bare document id, or draft:<name>".into(),
            })
        })?;
        Ok(DocRef::Doc { id, heads: None })
    }
}

/// One entry of a document's history.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    pub hash: String,
    /// Seconds since the Unix epoch (0 when the writer recorded none).
    pub time: i64,
    pub actor: String,
    pub name: Option<String>,
    pub organisation: Option<String>,
    pub summary: String,
}

/// How one field differs.
#[derive(Debug, Clone, Serialize)]
pub struct FieldDiff {
    pub field: String,
    pub before: String,
    pub after: String,
    /// Word-level diff for text fields: `[-removed-]{+added+}`.
    pub words: Option<String>,
}

/// A draft read for publishing: its upstream, the heads it forked at, its
/// document, and its own actor (hex) if it has one.
pub(crate) struct LoadedDraft {
    pub upstream: DocumentId,
    pub base: Vec<ChangeHash>,
    pub doc: Automerge,
    pub actor: Option<String>,
}

/// A draft: a local branch of a recommendation.
#[derive(Debug, Clone, Serialize)]
pub struct DraftInfo {
    pub name: String,
    pub upstream: String,
    pub title: String,
}

/// What `draft diff` shows.
#[derive(Debug, Clone, Serialize)]
pub struct DraftDiff {
    pub draft: Vec<FieldDiff>,
    /// Changes upstream made since the fork (kept by a merge).
    pub upstream_changes: usize,
    /// Fields both sides changed; a merge keeps both values as a conflict.
    pub conflicts: Vec<ConflictView>,
}

/// A field with concurrent values (first: the one Automerge shows).
#[derive(Debug, Clone, Serialize)]
pub struct ConflictView {
    pub field: String,
    pub values: Vec<String>,
}

impl From<schema::Conflict> for ConflictView {
    fn from(c: schema::Conflict) -> Self {
        Self { field: c.field, values: c.values }
    }
}

const IDENTITY_KEY: &str = "identity";
const SESSION_KEY: &str = "session";

/// The server this store joined through an invitation link, and the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// `http://host:port`
    pub base: String,
    /// `ws://host:port/sync`
    pub sync_url: String,
    pub token: String,
    pub participant: String,
    /// `admin` or a member role, as the server named it (`/api/me`); kept
    /// in `meta` by that name, as the server's JSON has it.
    pub role: AccessRole,
    pub process: Option<String>,
}

/// What a member may be allowed to do, by role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Change a document's text, comments, endorsements, or add a recommendation.
    Write,
    /// Adopt, reject or re-open a recommendation.
    Decide,
    /// Accept, reject or ask for changes to an amendment.
    DecideAmendment,
    /// Invite or revoke members.
    ManageMembers,
    AddWorkshop,
    CreateProcess,
}

impl Action {
    fn describe(self) -> &'static str {
        match self {
            Action::Write => "change documents",
            Action::Decide => "adopt, reject or re-open a recommendation",
            Action::DecideAmendment => "accept, reject or ask for changes to an amendment",
            Action::ManageMembers => "invite or revoke members",
            Action::AddWorkshop => "add workshops",
            Action::CreateProcess => "create processes",
        }
    }
}

/// The facilitator's workspace: a repo on a local store, and an identity.
#[derive(Debug)]
pub struct Workspace {
    repo: Repo,
    identity: Option<Identity>,
    session: Option<Session>,
}

impl Workspace {
    /// Open the store at `dir`; with `server`, the repo also syncs with it.
    pub fn open(dir: &Path, server: Option<&str>) -> Result<Self, ClientError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| ClientError::Store(konsens_store::StoreError::Sled(sled::Error::Io(e))))?;
        let store = ChunkStore::open(dir)?;
        let identity = match store.get_meta(IDENTITY_KEY)? {
            Some(bytes) => Some(serde_json::from_slice::<Identity>(&bytes).map_err(|e| ClientError::Corrupt(format!("identity: {e}")))?),
            None => None,
        };
        let session = match store.get_meta(SESSION_KEY)? {
            Some(bytes) => Some(serde_json::from_slice::<Session>(&bytes).map_err(|e| ClientError::Corrupt(format!("session: {e}")))?),
            None => None,
        };
        let mut config = RepoConfig::new(dir);
        config.actor = identity.as_ref().and_then(|i| ActorId::from_str(&i.actor).ok());
        let repo = Repo::with_store(config, store)?;
        let workspace = Self { repo, identity, session };
        if let Some(url) = server {
            workspace.connect(url);
        }
        Ok(workspace)
    }

    /// Start syncing with `url`, with the session's token when it is that server.
    pub fn connect(&self, url: &str) {
        let token = self.session.as_ref().filter(|s| s.sync_url == url).map(|s| s.token.clone());
        self.repo.connect(url.to_owned(), token);
    }

    pub fn disconnect(&self) {
        self.repo.disconnect();
    }

    pub fn session(&self) -> Option<&Session> {
        self.session.as_ref()
    }

    /// Remember the server and token this store joined with.
    pub fn set_session(&mut self, session: Session) -> Result<(), ClientError> {
        let bytes = serde_json::to_vec(&session).map_err(|e| ClientError::Corrupt(e.to_string()))?;
        self.repo.store().put_meta(SESSION_KEY, &bytes)?;
        self.session = Some(session);
        Ok(())
    }

    /// The server's API, as the joined member.
    pub fn api(&self) -> Result<crate::api::ApiClient, ClientError> {
        let session = self.session.as_ref().ok_or(ClientError::NoSession)?;
        Ok(crate::api::ApiClient::new(session.base.clone(), session.token.clone()))
    }

    /// Refuse here, before any change is made, what the member's role (from
    /// the server, at `join`) does not allow: the server would refuse it, and
    /// a refused change is work the member has to redo. A store that never
    /// joined a server works on its own and may do everything.
    pub fn allow(&self, action: Action) -> Result<(), ClientError> {
        let Some(role) = self.session.as_ref().map(|s| s.role) else {
            return Ok(());
        };
        let allowed = match role {
            AccessRole::Admin => true,
            AccessRole::Member(MemberRole::Facilitator) => action != Action::CreateProcess,
            AccessRole::Member(MemberRole::Participant) => action == Action::Write,
            AccessRole::Member(MemberRole::Observer) => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(ClientError::NotAllowed { role, action: action.describe() })
        }
    }

    /// Refusals kept in this store, oldest first.
    pub fn refusals(&self) -> Result<Vec<crate::repo::RefusalReport>, ClientError> {
        let mut out = Vec::new();
        for (_, value) in self.repo.store().scan_meta(crate::repo::REFUSALS_META_PREFIX)? {
            out.push(serde_json::from_slice(&value).map_err(|e| ClientError::Corrupt(format!("refusal record: {e}")))?);
        }
        Ok(out)
    }

    pub fn repo(&self) -> &Repo {
        &self.repo
    }

    pub fn identity(&self) -> Result<&Identity, ClientError> {
        self.identity.as_ref().ok_or(ClientError::NoIdentity)
    }

    /// Take the identity the server verified at `join`. A store that joins as
    /// another member (re-invited with another role, say) gets a fresh actor:
    /// the server binds each actor to one member, so changes made with the
    /// old one would be refused as someone else's.
    pub fn adopt_server_identity(&mut self, participant: &str, name: &str, organisation: &str) -> Result<Identity, ClientError> {
        let actor = match &self.identity {
            Some(existing) if existing.participant == participant => existing.actor.clone(),
            _ => ActorId::random().to_hex_string(),
        };
        let identity = Identity { participant: participant.to_owned(), name: name.to_owned(), organisation: organisation.to_owned(), actor };
        let bytes = serde_json::to_vec(&identity).map_err(|e| ClientError::Corrupt(e.to_string()))?;
        self.repo.store().put_meta(IDENTITY_KEY, &bytes)?;
        self.identity = Some(identity.clone());
        Ok(identity)
    }

    /// Set who changes from this store belong to. The participant id and actor
    /// stay the same when only the name or organisation changes.
    pub fn set_identity(&mut self, name: &str, organisation: &str) -> Result<Identity, ClientError> {
        let (participant, actor) = match &self.identity {
            Some(existing) => (existing.participant.clone(), existing.actor.clone()),
            None => (format!("p-{:016x}", rand::random::<u64>()), ActorId::random().to_hex_string()),
        };
        let identity = Identity { participant, name: name.to_owned(), organisation: organisation.to_owned(), actor };
        let bytes = serde_json::to_vec(&identity).map_err(|e| ClientError::Corrupt(e.to_string()))?;
        self.repo.store().put_meta(IDENTITY_KEY, &bytes)?;
        self.identity = Some(identity.clone());
        Ok(identity)
    }

    // -- processes ---------------------------------------------------------

    pub async fn create_process(&self, title: &str, description: &str) -> Result<DocumentId, ClientError> {
        self.allow(Action::CreateProcess)?;
        let identity = self.identity()?.clone();
        let id = self.repo.create().await?;
        let (title, description) = (title.to_owned(), description.to_owned());
        self.repo
            .change(id, move |doc| {
                write(doc, &identity, format!("create process {title:?}"), |tx, identity| {
                    schema::init_process(tx, &title, &description)?;
                    schema::put_member(
                        tx,
                        &identity.participant,
                        &Member { name: identity.name.clone(), organisation: identity.organisation.clone(), role: MemberRole::Facilitator },
                    )
                })
            })
            .await??;
        Ok(id)
    }

    /// The process document and its model.
    pub async fn process(&self, id: DocumentId) -> Result<(Automerge, Process), ClientError> {
        let doc = self.repo.find(id).await?;
        let process = Process::from_doc(&doc)?;
        Ok((doc, process))
    }

    /// Set the language the process publishes in (its reports' default).
    pub async fn set_process_language(&self, process: DocumentId, code: &'static str) -> Result<(), ClientError> {
        // Facilitators organise the process (as they add workshops).
        self.allow(Action::AddWorkshop)?;
        self.modify_process(process, format!("language {code}"), move |tx, _| schema::set_language(tx, code)).await
    }

    /// Apply an operation to a process document (the caller checks the role).
    pub(crate) async fn modify_process<T: Send + 'static, E: From<SchemaError> + Send + 'static>(
        &self,
        process: DocumentId,
        message: String,
        op: impl FnOnce(&mut Transaction<'_>, &Identity) -> Result<T, E> + Send + 'static,
    ) -> Result<T, ClientError>
    where
        ClientError: From<E>,
    {
        let identity = self.identity()?.clone();
        self.process(process).await?;
        Ok(self.repo.change(process, move |doc| write(doc, &identity, message, op)).await??)
    }

    /// Add a workshop; returns its id (a slug of the title, unique in the process).
    pub async fn add_workshop(
        &self,
        process: DocumentId,
        title: &str,
        theme: &str,
        sectors: Vec<String>,
        date: Option<String>,
    ) -> Result<String, ClientError> {
        self.allow(Action::AddWorkshop)?;
        let identity = self.identity()?.clone();
        let (_, current) = self.process(process).await?;
        let base = slug(title);
        let mut id = base.clone();
        let mut n = 2;
        while current.workshops.iter().any(|w| w.id == id) {
            id = format!("{base}-{n}");
            n += 1;
        }
        let workshop = Workshop { id: id.clone(), title: title.to_owned(), theme: theme.to_owned(), sectors, date };
        self.repo
            .change(process, move |doc| {
                Process::from_doc(doc)?;
                write(doc, &identity, format!("add workshop {:?}", workshop.title), |tx, _| schema::add_workshop(tx, &workshop))
            })
            .await??;
        Ok(id)
    }

    /// Create a recommendation in a workshop and link it from the process.
    pub async fn new_recommendation(&self, process: DocumentId, workshop: &str, title: &str) -> Result<DocumentId, ClientError> {
        self.allow(Action::Write)?;
        let identity = self.identity()?.clone();
        let (_, current) = self.process(process).await?;
        let found = current.workshop(workshop).ok_or_else(|| SchemaError::UnknownWorkshop(workshop.to_owned()))?;
        let (workshop_id, sectors) = (found.id.clone(), found.sectors.clone());
        let id = self.repo.create().await?;
        let (process_url, title_owned, identity2, wid) = (process.url(), title.to_owned(), identity.clone(), workshop_id.clone());
        self.repo
            .change(id, move |doc| {
                write(doc, &identity2, format!("create recommendation {title_owned:?}"), |tx, _| {
                    schema::init_recommendation(tx, &process_url, &wid, &title_owned, &sectors)
                })
            })
            .await??;
        let url = id.url();
        self.repo
            .change(process, move |doc| {
                write(doc, &identity, "add recommendation".into(), |tx, _| schema::link_recommendation(tx, &workshop_id, &url))
            })
            .await??;
        Ok(id)
    }

    /// The process's recommendations available locally (optionally of one
    /// status), and the ids of those not in the local store.
    pub async fn recommendations(
        &self,
        process: DocumentId,
        status: Option<Status>,
    ) -> Result<(Vec<(DocumentId, Recommendation)>, Vec<String>), ClientError> {
        self.local_recommendations(process, status, true).await
    }

    /// Like [`Self::recommendations`]; `as_adopted` reads adopted ones at
    /// their adopted wording, otherwise every one is read as it is now.
    async fn local_recommendations(
        &self,
        process: DocumentId,
        status: Option<Status>,
        as_adopted: bool,
    ) -> Result<(Vec<(DocumentId, Recommendation)>, Vec<String>), ClientError> {
        let (_, process_model) = self.process(process).await?;
        let local: std::collections::HashSet<DocumentId> = self.repo.local_documents()?.into_iter().collect();
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for workshop in &process_model.workshops {
            for url in process_model.recommendations.get(&workshop.id).into_iter().flatten() {
                let Ok(parsed) = url.parse::<AutomergeUrl>() else {
                    missing.push(url.clone());
                    continue;
                };
                if !local.contains(&parsed.document_id) {
                    missing.push(url.clone());
                    continue;
                }
                let doc = self.repo.find(parsed.document_id).await?;
                let rec = if as_adopted { Recommendation::from_doc_as_adopted(&doc)? } else { Recommendation::from_doc(&doc)? };
                if status.is_none_or(|s| s == rec.status) {
                    found.push((parsed.document_id, rec));
                }
            }
        }
        Ok((found, missing))
    }

    // -- report and dossier ------------------------------------------------

    /// The process's report (final: adopted wording; interim: as it
    /// stands), in `language` or the process's own, dated `date` (Unix
    /// milliseconds), from the recommendations in the local store; also the
    /// URLs of those that are not (left out).
    pub async fn report(
        &self,
        process: DocumentId,
        kind: ReportKind,
        language: Option<Language>,
        date: i64,
    ) -> Result<(Report, Vec<String>), ClientError> {
        let (_, model) = self.process(process).await?;
        let (recs, missing) = self.local_recommendations(process, None, kind == ReportKind::Final).await?;
        let recs: Vec<(String, Recommendation)> = recs.into_iter().map(|(id, r)| (id.url(), r)).collect();
        let options = ReportOptions { kind, language: language.unwrap_or_else(|| Language::of(&model)), date };
        Ok((konsens_model::report::build(&model, &recs, &options), missing))
    }

    /// Start a recommendation in `workshop` for each `##` section of a
    /// Markdown dossier; returns the new documents with their titles. Nothing
    /// is created when the dossier does not parse or the workshop is unknown.
    pub async fn import_dossier(
        &self,
        process: DocumentId,
        workshop: &str,
        markdown: &str,
    ) -> Result<Vec<(DocumentId, String)>, ClientError> {
        let entries = konsens_model::dossier::parse(markdown)?;
        let (_, model) = self.process(process).await?;
        if model.workshop(workshop).is_none() {
            return Err(SchemaError::UnknownWorkshop(workshop.to_owned()).into());
        }
        let mut created = Vec::new();
        for entry in entries {
            let id = self.new_recommendation(process, workshop, &entry.title).await?;
            let r = DocRef::Doc { id, heads: None };
            if let Some(problem) = &entry.problem {
                self.set_field(&r, "problem", problem).await?;
            }
            self.set_field(&r, "recommendation", &entry.recommendation).await?;
            if let Some(rationale) = &entry.rationale {
                self.set_field(&r, "rationale", rationale).await?;
            }
            created.push((id, entry.title));
        }
        Ok(created)
    }

    // -- recommendations ---------------------------------------------------

    /// The document behind a reference, at its heads if the reference has some.
    pub async fn document(&self, r: &DocRef) -> Result<Automerge, ClientError> {
        match r {
            DocRef::Doc { id, heads } => {
                let doc = self.repo.find(*id).await?;
                match heads {
                    Some(heads) => Ok(doc.fork_at(heads)?),
                    None => Ok(doc),
                }
            }
            DocRef::Draft(name) => self.load_draft(name).map(|(_, _, doc)| doc),
        }
    }

    /// A field as the member edits it: the title as text, a rich-text field
    /// as Markdown.
    pub async fn field_text(&self, r: &DocRef, field: &str) -> Result<String, ClientError> {
        let (_, rec) = self.recommendation(r).await?;
        Ok(match field {
            "title" => rec.title.0,
            f => konsens_model::richtext::from_spans(&rec.text(f).ok_or_else(|| SchemaError::UnknownField(f.to_owned()))?.0),
        })
    }

    pub async fn recommendation(&self, r: &DocRef) -> Result<(Automerge, Recommendation), ClientError> {
        let doc = self.document(r).await?;
        let rec = Recommendation::from_doc(&doc)?;
        Ok((doc, rec))
    }

    /// Apply an operation to a recommendation (in the repo, or in a draft).
    async fn modify<T: Send + 'static>(
        &self,
        r: &DocRef,
        message: String,
        op: impl FnOnce(&mut Transaction<'_>, &Identity) -> Result<T, SchemaError> + Send + 'static,
    ) -> Result<T, ClientError> {
        self.modify_with(r, message, op).await
    }

    /// [`Self::modify`] with an operation of another error type (consent rounds).
    pub(crate) async fn modify_with<T: Send + 'static, E: From<SchemaError> + Send + 'static>(
        &self,
        r: &DocRef,
        message: String,
        op: impl FnOnce(&mut Transaction<'_>, &Identity) -> Result<T, E> + Send + 'static,
    ) -> Result<T, ClientError>
    where
        ClientError: From<E>,
    {
        self.allow(Action::Write)?;
        let identity = self.identity()?.clone();
        match r {
            DocRef::Doc { heads: Some(_), .. } => Err(ClientError::ReadOnlyVersion),
            DocRef::Doc { id, heads: None } => {
                // Nothing changes a document that is not a recommendation.
                self.recommendation(r).await?;
                let id = *id;
                Ok(self
                    .repo
                    .change(id, move |doc| {
                        let identity = branch_writer(&identity, doc, id);
                        write(doc, &identity, message, op)
                    })
                    .await??)
            }
            DocRef::Draft(name) => {
                let (upstream, base, mut doc) = self.load_draft(name)?;
                // A draft writes with its own actor (see `amendments`); drafts
                // forked before that have none and use the store's.
                let actor = self.repo.store().get_meta(&format!("draft/{name}/actor"))?;
                let identity = match actor {
                    Some(actor) => Identity { actor: String::from_utf8_lossy(&actor).into_owned(), ..identity },
                    None => identity,
                };
                let out = write(&mut doc, &identity, message, op)?;
                self.save_draft(name, upstream, &base, &doc)?;
                Ok(out)
            }
        }
    }

    /// Set a field: `title` (text, minimal diff), `problem`/`recommendation`/
    /// `rationale` (Markdown, minimal diff of text, blocks and marks),
    /// `sectors`/`addressees` (comma-separated), or `workshop`.
    pub async fn set_field(&self, r: &DocRef, field: &str, value: &str) -> Result<(), ClientError> {
        let (field, value) = (field.to_owned(), value.to_owned());
        let message = format!("set {field}");
        self.modify(r, message, move |tx, _| match field.as_str() {
            "title" => schema::set_title(tx, value.trim()),
            f if schema::TEXT_FIELDS.contains(&f) => schema::set_rich_text(tx, f, konsens_model::richtext::to_spans(&value)),
            "sectors" | "addressees" => {
                let list: Vec<String> = value.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
                schema::set_list(tx, &field, &list)
            }
            "workshop" => Ok(tx.put(ROOT, "workshop", value.trim()).map(|_| ())?),
            other => Err(SchemaError::UnknownField(other.to_owned())),
        })
        .await
    }

    pub async fn set_status(&self, r: &DocRef, to: Status, note: &str) -> Result<schema::StatusChange, ClientError> {
        let (_, current) = self.recommendation(r).await?;
        if current.status.is_decision() || to.is_decision() {
            self.allow(Action::Decide)?;
        }
        let note = note.to_owned();
        self.modify(r, format!("status → {to}"), move |tx, identity| {
            schema::change_status(tx, to, &identity.participant, now_millis(), &note)
        })
        .await
    }

    /// Comment on the first text field that contains `quote`.
    pub async fn comment(&self, r: &DocRef, quote: &str, body: &str) -> Result<(String, schema::Comment), ClientError> {
        let (_, rec) = self.recommendation(r).await?;
        let field = std::iter::once(("title", rec.title.0.clone()))
            .chain(schema::TEXT_FIELDS.iter().map(|f| (*f, rec.text(f).map(|t| t.plain()).unwrap_or_default())))
            .find(|(_, text)| text.contains(quote))
            .map(|(f, _)| f.to_owned())
            .ok_or_else(|| SchemaError::QuoteNotFound { field: "any text field".into(), quote: quote.to_owned() })?;
        let id = format!("c-{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff);
        let (quote, body, cid) = (quote.to_owned(), body.to_owned(), id.clone());
        let comment = self
            .modify(r, format!("comment on {field}"), move |tx, identity| {
                schema::add_comment(tx, &cid, &field, &quote, &body, &identity.participant, now_millis())
            })
            .await?;
        Ok((id, comment))
    }

    /// Endorse on behalf of the identity's organisation.
    pub async fn endorse(&self, r: &DocRef, stance: Stance, note: &str) -> Result<Endorsement, ClientError> {
        let note = note.to_owned();
        self.modify(r, format!("endorse: {stance}"), move |tx, identity| {
            let endorsement = Endorsement { stance, note, by: identity.participant.clone(), at: now_millis() };
            schema::endorse(tx, &identity.organisation, &endorsement)?;
            Ok(endorsement)
        })
        .await
    }

    // -- history -----------------------------------------------------------

    pub async fn history(&self, r: &DocRef) -> Result<Vec<HistoryEntry>, ClientError> {
        let doc = self.document(r).await?;
        let authors = authors(&doc);
        Ok(doc
            .get_changes(&[])
            .into_iter()
            .map(|change| {
                let actor = change.actor_id().to_hex_string();
                let who = authors.get(&actor);
                HistoryEntry {
                    hash: change.hash().to_string(),
                    time: change.timestamp(),
                    name: who.map(|a| a.name.clone()),
                    organisation: who.map(|a| a.organisation.clone()),
                    actor,
                    summary: change.message().map(str::to_owned).unwrap_or_else(|| touched(&doc, &change)),
                }
            })
            .collect())
    }

    /// The history in sessions, with the authors the document declares.
    pub async fn local_sessions(&self, r: &DocRef) -> Result<Vec<konsens_model::api::HistorySession>, ClientError> {
        let doc = self.document(r).await?;
        Ok(konsens_model::history::declared_sessions(&doc))
    }

    // -- drafts ------------------------------------------------------------

    fn load_draft(&self, name: &str) -> Result<(DocumentId, Vec<ChangeHash>, Automerge), ClientError> {
        let store = self.repo.store();
        let missing = || ClientError::NoDraft(name.to_owned());
        let upstream = store.get_meta(&format!("draft/{name}/upstream"))?.ok_or_else(missing)?;
        let upstream: DocumentId = String::from_utf8_lossy(&upstream).parse()?;
        let base = store.get_meta(&format!("draft/{name}/base"))?.ok_or_else(missing)?;
        let base: Vec<ChangeHash> = String::from_utf8_lossy(&base)
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|h| h.parse().map_err(|_| ClientError::Corrupt(format!("draft {name}: bad head {h}"))))
            .collect::<Result<_, _>>()?;
        let bytes = store.get_meta(&format!("draft/{name}/doc"))?.ok_or_else(missing)?;
        let doc = Automerge::load(&bytes)?;
        Ok((upstream, base, doc))
    }

    fn save_draft(&self, name: &str, upstream: DocumentId, base: &[ChangeHash], doc: &Automerge) -> Result<(), ClientError> {
        let store = self.repo.store();
        let base: Vec<String> = base.iter().map(|h| h.to_string()).collect();
        store.put_meta(&format!("draft/{name}/doc"), &doc.save())?;
        store.put_meta(&format!("draft/{name}/base"), base.join(",").as_bytes())?;
        store.put_meta(&format!("draft/{name}/upstream"), upstream.to_string().as_bytes())?;
        Ok(())
    }

    /// Fork a recommendation into a local draft that never syncs.
    pub async fn fork_draft(&self, r: &DocRef, name: &str) -> Result<(), ClientError> {
        let DocRef::Doc { id, heads: None } = r else {
            return Err(ClientError::ReadOnlyVersion);
        };
        if name.is_empty() || name.contains('/') {
            return Err(ClientError::BadDraftName(name.to_owned()));
        }
        if self.repo.store().get_meta(&format!("draft/{name}/upstream"))?.is_some() {
            return Err(ClientError::DraftExists(name.to_owned()));
        }
        let (doc, _) = self.recommendation(r).await?;
        let base = doc.get_heads();
        self.repo.store().put_meta(&format!("draft/{name}/actor"), draft_actor().as_bytes())?;
        self.save_draft(name, *id, &base, &doc.fork())
    }

    /// A draft as `draft propose` publishes it.
    pub(crate) fn load_draft_for_amendment(&self, name: &str) -> Result<LoadedDraft, ClientError> {
        let (upstream, base, doc) = self.load_draft(name)?;
        let actor = self.repo.store().get_meta(&format!("draft/{name}/actor"))?.map(|a| String::from_utf8_lossy(&a).into_owned());
        Ok(LoadedDraft { upstream, base, doc, actor })
    }

    /// Forget a draft (merged, or published as an amendment).
    pub(crate) fn remove_draft(&self, name: &str) -> Result<(), ClientError> {
        let store = self.repo.store();
        for part in ["doc", "base", "upstream", "actor"] {
            store.remove_meta(&format!("draft/{name}/{part}"))?;
        }
        Ok(())
    }

    pub async fn drafts(&self) -> Result<Vec<DraftInfo>, ClientError> {
        let mut out = Vec::new();
        for (key, value) in self.repo.store().scan_meta("draft/")? {
            let Some(name) = key.strip_prefix("draft/").and_then(|k| k.strip_suffix("/upstream")) else {
                continue;
            };
            let title = match self.load_draft(name) {
                Ok((_, _, doc)) => Recommendation::from_doc(&doc).map(|r| r.title.0).unwrap_or_default(),
                Err(_) => String::new(),
            };
            out.push(DraftInfo { name: name.to_owned(), upstream: format!("automerge:{}", String::from_utf8_lossy(&value)), title });
        }
        Ok(out)
    }

    /// What the draft changed since the fork, and what would conflict.
    pub async fn diff_draft(&self, name: &str) -> Result<DraftDiff, ClientError> {
        let (upstream_id, base, draft) = self.load_draft(name)?;
        let upstream = self.repo.find(upstream_id).await?;
        let base_doc = draft.fork_at(&base)?;
        let before = Recommendation::from_doc(&base_doc)?;
        let after = Recommendation::from_doc(&draft)?;
        let upstream_now = Recommendation::from_doc(&upstream)?;
        let draft_fields = field_diffs(&before, &after);
        let upstream_fields = field_diffs(&before, &upstream_now);
        let mut merged = upstream.clone();
        let mut draft_copy = draft.clone();
        merged.merge(&mut draft_copy)?;
        let mut conflicts: Vec<ConflictView> = schema::conflicts(&merged)?.into_iter().map(Into::into).collect();
        // Scalar conflicts come from Automerge; a field both sides rewrote
        // (say, the same sentence) is worth flagging too.
        for d in &draft_fields {
            if upstream_fields.iter().any(|u| u.field == d.field && u.after != d.after) && !conflicts.iter().any(|c| c.field == d.field) {
                let mine = d.after.clone();
                let theirs = upstream_fields.iter().find(|u| u.field == d.field).map(|u| u.after.clone()).unwrap_or_default();
                conflicts.push(ConflictView { field: d.field.clone(), values: vec![theirs, mine] });
            }
        }
        let upstream_changes = upstream.get_changes(&base).len();
        Ok(DraftDiff { draft: draft_fields, upstream_changes, conflicts })
    }

    /// Merge a draft into its upstream and delete it; returns the conflicts left.
    pub async fn merge_draft(&self, name: &str) -> Result<(DocumentId, Vec<ConflictView>), ClientError> {
        let (upstream, _, draft) = self.load_draft(name)?;
        let conflicts = self
            .repo
            .change(upstream, move |doc| {
                let mut draft = draft;
                doc.merge(&mut draft)?;
                schema::conflicts(doc)
            })
            .await??
            .into_iter()
            .map(Into::into)
            .collect();
        self.remove_draft(name)?;
        Ok((upstream, conflicts))
    }
}

/// A summary for changes without a message (browsers send none): the
/// top-level fields the change touched, read from the change's own patches.
fn touched(doc: &Automerge, change: &automerge::Change) -> String {
    let mut fields = std::collections::BTreeSet::new();
    for patch in doc.diff(change.deps(), &[change.hash()]) {
        let key = match patch.path.first() {
            Some((_, automerge::Prop::Map(key))) => Some(key.clone()),
            Some(_) => None,
            None => match patch.action {
                automerge::PatchAction::PutMap { key, .. } | automerge::PatchAction::DeleteMap { key } => Some(key),
                _ => None,
            },
        };
        fields.extend(key);
    }
    fields.remove("authors");
    if fields.is_empty() {
        format!("{} operation(s)", change.len())
    } else {
        format!("edited {}", fields.into_iter().collect::<Vec<_>>().join(", "))
    }
}

/// Run `op` in one transaction as `identity`, with a message and the time,
/// recording the identity in `authors` in the same change.
pub(crate) fn write<T, E: From<SchemaError>>(
    doc: &mut Automerge,
    identity: &Identity,
    message: String,
    op: impl FnOnce(&mut Transaction<'_>, &Identity) -> Result<T, E>,
) -> Result<T, E> {
    if let Ok(actor) = ActorId::from_str(&identity.actor) {
        doc.set_actor(actor);
    }
    let seconds = now_millis() / 1000;
    doc.transact_with(
        |_| CommitOptions::default().with_message(message).with_time(seconds),
        |tx| {
            let out = op(tx, identity)?;
            record_author(tx, identity)?;
            Ok(out)
        },
    )
    .map(|success| success.result)
    .map_err(|failure| failure.error)
}

fn record_author(tx: &mut Transaction<'_>, identity: &Identity) -> Result<(), SchemaError> {
    let authors = match tx.get(ROOT, "authors")? {
        Some((Value::Object(ObjType::Map), id)) => id,
        _ => tx.put_object(ROOT, "authors", ObjType::Map)?,
    };
    let current = tx.get(&authors, identity.actor.as_str())?;
    let wanted = AuthorRecord { participant: identity.participant.clone(), name: identity.name.clone(), organisation: identity.organisation.clone() };
    if current.is_none() || authors_entry(tx, &authors, &identity.actor).as_ref() != Some(&wanted) {
        let entry = tx.put_object(&authors, identity.actor.as_str(), ObjType::Map)?;
        tx.put(&entry, "participant", identity.participant.as_str())?;
        tx.put(&entry, "name", identity.name.as_str())?;
        tx.put(&entry, "organisation", identity.organisation.as_str())?;
    }
    Ok(())
}

/// One `authors` entry: who an actor belongs to, as the writer declared it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthorRecord {
    pub participant: String,
    pub name: String,
    pub organisation: String,
}

fn authors_entry<D: ReadDoc>(doc: &D, authors: &automerge::ObjId, actor: &str) -> Option<AuthorRecord> {
    let (_, entry) = doc.get(authors, actor).ok()??;
    let text = |key: &str| -> Option<String> {
        match doc.get(&entry, key).ok()?? {
            (Value::Scalar(s), _) => s.as_str().map(str::to_owned),
            (Value::Object(ObjType::Text), id) => doc.text(&id).ok(),
            _ => None,
        }
    };
    Some(AuthorRecord { participant: text("participant").unwrap_or_default(), name: text("name")?, organisation: text("organisation")? })
}

/// actor hex → author, as the document records it.
pub fn authors(doc: &Automerge) -> BTreeMap<String, AuthorRecord> {
    let Ok(Some((Value::Object(ObjType::Map), map))) = doc.get(ROOT, "authors") else {
        return BTreeMap::new();
    };
    doc.keys(&map)
        .filter_map(|actor| authors_entry(doc, &map, &actor).map(|entry| (actor, entry)))
        .collect()
}

/// "Name (Organisation)" for a participant id, or the id itself when unknown.
pub fn participant_label(doc: &Automerge, participant: &str) -> String {
    authors(doc)
        .into_values()
        .find(|a| a.participant == participant)
        .map(|a| format!("{} ({})", a.name, a.organisation))
        .unwrap_or_else(|| participant.to_owned())
}

fn field_diffs(before: &Recommendation, after: &Recommendation) -> Vec<FieldDiff> {
    let mut out = Vec::new();
    let mut scalar = |field: &str, a: String, b: String, words: bool| {
        if a != b {
            let words = words.then(|| word_diff(&a, &b));
            out.push(FieldDiff { field: field.to_owned(), before: a, after: b, words });
        }
    };
    scalar("title", before.title.0.clone(), after.title.0.clone(), true);
    scalar("status", before.status.to_string(), after.status.to_string(), false);
    scalar("workshop", before.workshop.clone(), after.workshop.clone(), false);
    scalar("sectors", before.sectors.join(", "), after.sectors.join(", "), false);
    scalar("addressees", before.addressees.join(", "), after.addressees.join(", "), false);
    for field in schema::TEXT_FIELDS {
        let a = before.text(field).map(|t| konsens_model::richtext::from_spans(&t.0)).unwrap_or_default();
        let b = after.text(field).map(|t| konsens_model::richtext::from_spans(&t.0)).unwrap_or_default();
        scalar(field, a, b, true);
    }
    scalar("comments", before.comments.len().to_string(), after.comments.len().to_string(), false);
    let endorsements = |r: &Recommendation| {
        r.endorsements.iter().map(|(org, e)| format!("{org}: {}", e.stance)).collect::<Vec<_>>().join("; ")
    };
    scalar("endorsements", endorsements(before), endorsements(after), false);
    out
}

/// `[-removed-]{+added+}` at word granularity.
pub fn word_diff(before: &str, after: &str) -> String {
    konsens_model::diff::word_diff(before, after)
}

fn slug(title: &str) -> String {
    let mut out = String::new();
    for c in title.to_lowercase().chars() {
        if c.is_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let trimmed = out.trim_end_matches('-').to_owned();
    if trimmed.is_empty() { "workshop".to_owned() } else { trimmed }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session as every version so far kept it in `meta`: the role by name.
    const KEPT: &str = r#"{"base":"http://127.0.0.1:1","sync_url":"ws://127.0.0.1:1/sync","token":"t","participant":"p-1","role":"facilitator","process":null}"#;

    #[tokio::test]
    async fn a_kept_session_reads_with_its_role_typed_and_is_written_in_the_same_form() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = ChunkStore::open(dir.path()).expect("open");
            store.put_meta(SESSION_KEY, KEPT.as_bytes()).expect("put");
            store.flush().expect("flush");
        }
        let mut ws = Workspace::open(dir.path(), None).expect("workspace");
        let session = ws.session().expect("session read").clone();
        assert_eq!(session.role, AccessRole::Member(MemberRole::Facilitator));
        assert!(ws.allow(Action::Decide).is_ok());
        assert!(matches!(ws.allow(Action::CreateProcess), Err(ClientError::NotAllowed { role: AccessRole::Member(MemberRole::Facilitator), .. })));
        // Written back byte for byte as it was read.
        ws.set_session(session).expect("set");
        let stored = ws.repo().store().get_meta(SESSION_KEY).expect("get").expect("kept");
        assert_eq!(String::from_utf8(stored).expect("utf-8"), KEPT);
        let admin: Session = serde_json::from_str(&KEPT.replace("facilitator", "admin")).expect("admin reads");
        assert_eq!(admin.role, AccessRole::Admin);
        assert!(serde_json::from_str::<Session>(&KEPT.replace("facilitator", "king")).is_err(), "an unknown role is not a session");
    }
}

/// The identity to write `doc` (document `id`) with: for an amendment's
/// branch, the store's actor extended by the branch's id, so that every
/// branch this store writes has an actor of its own and sequence numbers
/// never collide when branches are merged into their recommendation.
pub(crate) fn branch_writer(identity: &Identity, doc: &Automerge, id: DocumentId) -> Identity {
    if konsens_model::amendment::branch_of(doc).is_none() {
        return identity.clone();
    }
    let mut actor = identity.actor.clone();
    actor.push_str(&hex(id.as_bytes()));
    Identity { actor, ..identity.clone() }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh actor for a new draft, as hex.
pub(crate) fn draft_actor() -> String {
    automerge::ActorId::random().to_hex_string()
}
