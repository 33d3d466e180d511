//! What changed in a member's process since they last looked: decisions on
//! recommendations, amendments proposed and decided, consent rounds opened,
//! closing within a day or closed, and replies to the member's comments.
//!
//! A pure function of the process, its recommendations, the member, when
//! they last looked (`seen`), and now: the server reads the documents and
//! resolves participant ids to verified names; the app draws the list. Each
//! item says whether it is *new* (after `seen`); older items stay in the list
//! for a while (`window_start`), so the member can find what they saw.
//! Nothing a member did themselves is listed.

use serde::{Deserialize, Serialize};

use crate::consent;
use crate::schema::{Process, Recommendation};

/// How long before its deadline a round counts as closing soon.
pub const CLOSING_SOON_MS: i64 = 24 * 60 * 60 * 1000;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NotificationKind {
    /// A recommendation's status changed (`value`: the new status).
    Status,
    /// A consent round was opened (`value`: its deadline, ms as text).
    RoundOpened,
    /// An open round's deadline is within a day (`at`: the deadline).
    RoundClosing,
    /// A round was closed (`value`: its outcome statement).
    RoundClosed,
    /// Somebody replied to one of the member's comments (`value`: the reply).
    Reply,
    /// Somebody proposed an amendment (`value`: the amendment's title).
    AmendmentOpened,
    /// A facilitator decided on an amendment (`value`: `accepted`,
    /// `rejected` or `changes-requested`).
    AmendmentDecided,
}

/// One item of the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub kind: NotificationKind,
    /// The recommendation's `automerge:` URL.
    pub recommendation: String,
    pub title: String,
    /// Milliseconds since the epoch: when it happened (for a round closing
    /// soon, its deadline).
    pub at: i64,
    /// The participant who did it (the caller resolves the name).
    pub by: Option<String>,
    pub value: Option<String>,
    /// Whether it happened after the member last looked.
    pub new: bool,
}

/// What the list is about: whose it is and which moments matter.
#[derive(Debug, Clone, Copy)]
pub struct Moments<'a> {
    /// The member's participant id.
    pub me: &'a str,
    /// Up to when the member has seen the list (ms; 0: never).
    pub seen: i64,
    /// Older items are left out (ms).
    pub window_start: i64,
    pub now: i64,
}

/// The notifications of a process for one member, newest first.
/// `recommendations` are `(URL, recommendation)`; archived ones are skipped.
pub fn collect(process: &Process, recommendations: &[(String, Recommendation)], m: Moments<'_>) -> Vec<Notification> {
    let mut out = Vec::new();
    let shown = |at: i64| at > m.window_start;
    let by_other = |by: &str| by != m.me;
    for (url, rec) in recommendations {
        if process.archived_recommendations.get(url).copied().unwrap_or(false) {
            continue;
        }
        let item = |kind, at: i64, by: Option<&str>, value: Option<String>, new: bool| Notification {
            kind,
            recommendation: url.clone(),
            title: rec.title.0.trim().to_owned(),
            at,
            by: by.map(str::to_owned),
            value,
            new,
        };
        for change in &rec.status_log {
            if shown(change.at) && by_other(&change.by) {
                out.push(item(NotificationKind::Status, change.at, Some(&change.by), Some(change.to.as_str().to_owned()), change.at > m.seen));
            }
        }
        for round in &rec.rounds {
            let opened_by = round.opened_by.0.as_str();
            if shown(round.opened_at) && by_other(opened_by) {
                let value = Some(round.deadline.to_string());
                out.push(item(NotificationKind::RoundOpened, round.opened_at, Some(opened_by), value, round.opened_at > m.seen));
            }
            if let Some(closed) = &round.closed
                && shown(closed.at)
                && by_other(&closed.by.0)
            {
                let value = Some(closed.outcome.0.trim().to_owned()).filter(|o| !o.is_empty());
                out.push(item(NotificationKind::RoundClosed, closed.at, Some(&closed.by.0), value, closed.at > m.seen));
            }
        }
        // Closing soon is a state, not an event: new once it entered the last
        // day after the member last looked.
        if let Some(round) = consent::open_round(&rec.rounds)
            && round.deadline >= m.now
            && round.deadline - m.now <= CLOSING_SOON_MS
        {
            let entered = round.deadline - CLOSING_SOON_MS;
            out.push(item(NotificationKind::RoundClosing, round.deadline, None, None, entered > m.seen));
        }
        for amendment in rec.amendments.values() {
            let by = amendment.by.0.as_str();
            if shown(amendment.opened) && by_other(by) {
                let value = Some(amendment.title.0.trim().to_owned());
                out.push(item(NotificationKind::AmendmentOpened, amendment.opened, Some(by), value, amendment.opened > m.seen));
            }
            if let Some(decision) = &amendment.decision
                && shown(decision.at)
                && by_other(&decision.by.0)
            {
                let value = Some(decision.state.as_str().to_owned());
                out.push(item(NotificationKind::AmendmentDecided, decision.at, Some(&decision.by.0), value, decision.at > m.seen));
            }
        }
        for comment in rec.comments.values().filter(|c| c.author == m.me) {
            for reply in comment.replies.iter().filter(|r| shown(r.at) && by_other(&r.author)) {
                out.push(item(NotificationKind::Reply, reply.at, Some(&reply.author), Some(reply.body.clone()), reply.at > m.seen));
            }
        }
    }
    // Newest first; ties in a stable order.
    out.sort_by(|a, b| (b.at, a.kind, &a.recommendation).cmp(&(a.at, b.kind, &b.recommendation)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{self, Answer, SchemaError, Status};
    use automerge::Automerge;
    use automerge::transaction::Transaction;

    const H: i64 = 3_600_000;

    fn change(doc: &mut Automerge, f: impl FnOnce(&mut Transaction<'_>) -> Result<(), SchemaError>) {
        doc.transact(f).map(|_| ()).map_err(|f| f.error).expect("change");
    }

    fn rec(title: &str) -> Automerge {
        let mut doc = Automerge::new();
        change(&mut doc, |tx| schema::init_recommendation(tx, "automerge:p", "w", title, &[]));
        doc
    }

    /// A reply as the web app writes it (the Rust model has no operation for it).
    fn reply(doc: &mut Automerge, comment: &str, body: &str, author: &str, at: i64) {
        use automerge::transaction::Transactable;
        use automerge::{ObjType, ROOT, ReadDoc, Value};
        change(doc, |tx| {
            let Some((Value::Object(_), comments)) = tx.get(ROOT, "comments")? else { panic!("comments") };
            let Some((Value::Object(_), c)) = tx.get(&comments, comment)? else { panic!("comment") };
            let list = match tx.get(&c, "replies")? {
                Some((Value::Object(ObjType::List), list)) => list,
                _ => tx.put_object(&c, "replies", ObjType::List)?,
            };
            let n = tx.length(&list);
            let entry = tx.insert_object(&list, n, ObjType::Map)?;
            tx.put(&entry, "author", author)?;
            tx.put(&entry, "at", at)?;
            tx.put(&entry, "body", body)?;
            Ok(())
        });
    }

    fn process() -> Process {
        let mut doc = Automerge::new();
        change(&mut doc, |tx| schema::init_process(tx, "P", ""));
        Process::from_doc(&doc).expect("process")
    }

    fn read(docs: &[(&str, &Automerge)]) -> Vec<(String, Recommendation)> {
        docs.iter().map(|(u, d)| ((*u).to_owned(), Recommendation::from_doc(d).expect("reads"))).collect()
    }

    fn kinds(items: &[Notification]) -> Vec<(NotificationKind, &str, bool)> {
        items.iter().map(|n| (n.kind, n.title.as_str(), n.new)).collect()
    }

    #[test]
    fn decisions_rounds_and_replies_since_the_last_look_are_new_and_own_actions_are_left_out() {
        let mut a = rec("Gebühren");
        change(&mut a, |tx| schema::change_status(tx, Status::Discussion, "fac", 10 * H, "").map(|_| ()));
        change(&mut a, |tx| schema::change_status(tx, Status::Consensus, "fac", 30 * H, "").map(|_| ()));
        change(&mut a, |tx| schema::change_status(tx, Status::Adopted, "fac", 40 * H, "").map(|_| ()));
        let mut b = rec("Anerkennung");
        b.transact(|tx| consent::open(tx, "r1", "", 90 * H, "fac", 35 * H)).map_err(|f| f.error).expect("open");
        b.transact(|tx| consent::answer(tx, "Gewerkschaft", Answer::Agree, "", "me", 36 * H)).map_err(|f| f.error).expect("answer");
        change(&mut b, |tx| schema::set_rich_text(tx, "recommendation", crate::richtext::to_spans("Binnen drei Monaten.")));
        change(&mut b, |tx| schema::add_comment(tx, "c1", "recommendation", "drei", "Warum?", "me", 20 * H).map(|_| ()));
        change(&mut b, |tx| schema::add_comment(tx, "c2", "recommendation", "Monaten", "Und?", "other", 21 * H).map(|_| ()));
        reply(&mut b, "c1", "Darum.", "fac", 37 * H);
        reply(&mut b, "c1", "Danke.", "me", 38 * H);
        reply(&mut b, "c2", "Nicht an mich.", "fac", 39 * H);

        let recs = read(&[("automerge:a", &a), ("automerge:b", &b)]);
        // Seen up to 32 h, now 41 h, window from 20 h: the discussion move at
        // 10 h is out, the consensus at 30 h is listed but not new.
        let items = collect(&process(), &recs, Moments { me: "me", seen: 32 * H, window_start: 20 * H, now: 41 * H });
        assert_eq!(
            kinds(&items),
            vec![
                (NotificationKind::Status, "Gebühren", true),
                (NotificationKind::Reply, "Anerkennung", true),
                (NotificationKind::RoundOpened, "Anerkennung", true),
                (NotificationKind::Status, "Gebühren", false),
            ]
        );
        assert_eq!(items[0].value.as_deref(), Some("adopted"));
        assert_eq!(items[1].by.as_deref(), Some("fac"));
        assert_eq!(items[1].value.as_deref(), Some("Darum."));

        // At 70 h the round (due at 90 h) closes within a day: listed, new if
        // the member last looked before it entered the last day (66 h).
        let later = collect(&process(), &recs, Moments { me: "me", seen: 32 * H, window_start: 20 * H, now: 70 * H });
        assert!(later.iter().any(|n| n.kind == NotificationKind::RoundClosing && n.new && n.at == 90 * H));
        let looked = collect(&process(), &recs, Moments { me: "me", seen: 67 * H, window_start: 20 * H, now: 70 * H });
        assert!(looked.iter().any(|n| n.kind == NotificationKind::RoundClosing && !n.new));
        assert!(!looked.iter().any(|n| n.kind == NotificationKind::RoundOpened && n.new), "opened before the last look");

        // The facilitator's own actions are not news to the facilitator.
        let theirs = collect(&process(), &recs, Moments { me: "fac", seen: 0, window_start: 0, now: 41 * H });
        assert!(theirs.iter().all(|n| n.by.as_deref() != Some("fac")), "{theirs:?}");
    }

    #[test]
    fn a_closed_round_is_a_decision_and_archived_recommendations_are_quiet() {
        let mut a = rec("Gebühren");
        a.transact(|tx| consent::open(tx, "r1", "", 5 * H, "fac", H)).map_err(|f| f.error).expect("open");
        a.transact(|tx| consent::close(tx, "Konsens ohne Veto.", "fac", 2 * H)).map_err(|f| f.error).expect("close");
        let recs = read(&[("automerge:a", &a)]);
        let items = collect(&process(), &recs, Moments { me: "me", seen: 0, window_start: 0, now: 3 * H });
        assert_eq!(kinds(&items), vec![(NotificationKind::RoundClosed, "Gebühren", true), (NotificationKind::RoundOpened, "Gebühren", true)]);
        assert_eq!(items[0].value.as_deref(), Some("Konsens ohne Veto."));
        let mut archived = process();
        archived.archived_recommendations.insert("automerge:a".into(), true);
        assert!(collect(&archived, &recs, Moments { me: "me", seen: 0, window_start: 0, now: 3 * H }).is_empty());
    }

    #[test]
    fn amendments_proposed_and_decided_are_news_except_to_whoever_did_it() {
        use crate::amendment::{self, AmendmentState};
        use konsens_sync::DocumentId;
        let mut a = rec("Gebühren");
        let branch = DocumentId::from_bytes([7; 16]);
        a.transact(|tx| amendment::add(tx, branch, "Frist kürzen", "other", 5 * H, &[])).map_err(|f| f.error).expect("add");
        amendment::answer(&mut a, branch, AmendmentState::Rejected, "Zu kurz.", "fac", 6 * H).expect("answer");
        let recs = read(&[("automerge:a", &a)]);
        let mine = collect(&process(), &recs, Moments { me: "me", seen: 0, window_start: 0, now: 7 * H });
        assert_eq!(kinds(&mine), vec![(NotificationKind::AmendmentDecided, "Gebühren", true), (NotificationKind::AmendmentOpened, "Gebühren", true)]);
        assert_eq!(mine[0].value.as_deref(), Some("rejected"));
        assert_eq!(mine[1].value.as_deref(), Some("Frist kürzen"));
        let authors = collect(&process(), &recs, Moments { me: "other", seen: 0, window_start: 0, now: 7 * H });
        assert_eq!(kinds(&authors), vec![(NotificationKind::AmendmentDecided, "Gebühren", true)]);
    }
}
