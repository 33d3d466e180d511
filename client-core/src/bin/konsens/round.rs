//! `konsens round …`: consent rounds on a recommendation (open, answer,
//! close, show) and the process setting that makes adoption wait for one.
//! Like every edit, they change the local store; `konsens sync` sends them.

use std::collections::BTreeMap;
use std::io::{self, Write};

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use konsens_client::consent::Rounds;
use konsens_model::schema::Answer;
use serde::Serialize;

use crate::Context;
use crate::output::{Line, Render};
use crate::values::{doc_id, doc_ref};

#[derive(Debug, Subcommand)]
pub enum RoundCommand {
    /// Open a consent round on the recommendation's current wording (facilitators).
    Open(OpenArgs),
    /// Give or change your organisation's answer in the open round.
    Answer(AnswerArgs),
    /// Close the open round with an outcome statement (facilitators).
    Close(CloseArgs),
    /// The rounds: tally, who has not answered, answers with reasons, outcome.
    Show(ShowArgs),
    /// Whether adopting in a process needs a closed round without a block (facilitators).
    Require(RequireArgs),
}

#[derive(Debug, Args)]
pub struct OpenArgs {
    /// The recommendation: its URL (`automerge:…`), its bare id, or `draft:NAME`.
    rec: String,
    /// When answers are due: `YYYY-MM-DD` (end of that day, UTC),
    /// `YYYY-MM-DDTHH:MM` (UTC) or milliseconds since the Unix epoch.
    #[arg(long)]
    deadline: String,
    /// The question or proposal put to the organisations.
    #[arg(long, default_value = "")]
    question: String,
}

#[derive(Debug, Args)]
pub struct AnswerArgs {
    rec: String,
    /// Your organisation's answer.
    #[arg(value_enum)]
    answer: AnswerArg,
    /// Why (shown to everyone with the answer).
    #[arg(long, default_value = "")]
    reason: String,
}

#[derive(Debug, Args)]
pub struct CloseArgs {
    rec: String,
    /// The outcome statement.
    #[arg(long)]
    outcome: String,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    rec: String,
}

#[derive(Debug, Args)]
pub struct RequireArgs {
    /// The process (`automerge:…` or its bare id).
    process: String,
    #[arg(value_enum)]
    setting: OnOff,
}

/// An organisation's answer (mirrors `konsens_model::schema::Answer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AnswerArg {
    /// Agrees with the wording.
    Agree,
    /// Stands aside.
    Abstain,
    /// Disagrees, but does not stop it.
    Disagree,
    /// Blocks it (stops an adoption where the process requires consent).
    Block,
}

impl From<AnswerArg> for Answer {
    fn from(value: AnswerArg) -> Self {
        match value {
            AnswerArg::Agree => Answer::Agree,
            AnswerArg::Abstain => Answer::Abstain,
            AnswerArg::Disagree => Answer::Disagree,
            AnswerArg::Block => Answer::Block,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

pub async fn run(command: RoundCommand, cx: &Context) -> Result<()> {
    let ws = &cx.ws;
    match command {
        RoundCommand::Open(args) => {
            let deadline = parse_deadline(&args.deadline)?;
            let id = ws.open_round(&doc_ref(&args.rec)?, &args.question, deadline).await?;
            cx.out.show(&Line::new(Opened { round: id.clone(), deadline }, format!("opened round {id}")))
        }
        RoundCommand::Answer(args) => {
            let answer = Answer::from(args.answer);
            let organisation = ws.answer_round(&doc_ref(&args.rec)?, answer, &args.reason).await?;
            let text = format!("{organisation}: {answer}");
            cx.out.show(&Line::new(Answered { organisation, answer }, text))
        }
        RoundCommand::Close(args) => {
            ws.close_round(&doc_ref(&args.rec)?, &args.outcome).await?;
            cx.out.show(&Line::new(Closed { outcome: args.outcome.clone() }, "round closed"))
        }
        RoundCommand::Show(args) => {
            let rounds = ws.rounds(&doc_ref(&args.rec)?).await?;
            cx.out.show(&Shown::from(rounds))
        }
        RoundCommand::Require(args) => {
            let on = args.setting == OnOff::On;
            ws.set_adoption_requires_consent(doc_id(&args.process)?, on).await?;
            let text = if on { "adoption requires a consent round without a block" } else { "adoption does not require a consent round" };
            cx.out.show(&Line::new(Required { adoption_requires_consent: on }, text))
        }
    }
}

/// `YYYY-MM-DD` (the end of that day, UTC), `YYYY-MM-DDTHH:MM[:SS]` (UTC),
/// or milliseconds since the Unix epoch.
fn parse_deadline(text: &str) -> Result<i64> {
    let text = text.trim();
    if let Ok(millis) = text.parse::<i64>() {
        return Ok(millis);
    }
    let (date, time) = match text.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t.trim_end_matches('Z'))),
        None => (text, None),
    };
    let parts: Vec<&str> = date.split('-').collect();
    let number = |s: &str| s.parse::<i64>().ok();
    let (Some(y), Some(m), Some(d)) = (parts.first().and_then(|s| number(s)), parts.get(1).and_then(|s| number(s)), parts.get(2).and_then(|s| number(s)))
    else {
        bail!("{text:?} is not a deadline: give YYYY-MM-DD, YYYY-MM-DDTHH:MM or milliseconds");
    };
    if parts.len() != 3 || !(1..=12).contains(&m) || !(1..=days_in_month(y, m)).contains(&d) {
        bail!("{text:?} is not a date");
    }
    let seconds_of_day = match time {
        None => 24 * 3600 - 1,
        Some(t) => {
            let hms: Vec<Option<i64>> = t.split(':').map(number).collect();
            match hms.as_slice() {
                [Some(h), Some(min)] if *h < 24 && *min < 60 => h * 3600 + min * 60,
                [Some(h), Some(min), Some(s)] if *h < 24 && *min < 60 && *s < 60 => h * 3600 + min * 60 + s,
                _ => bail!("{t:?} is not a time: give HH:MM"),
            }
        }
    };
    Ok((days_from_civil(y, m, d) * 86_400 + seconds_of_day) * 1000)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[derive(Debug, Serialize)]
struct Opened {
    round: String,
    /// Milliseconds since the Unix epoch.
    deadline: i64,
}

#[derive(Debug, Serialize)]
struct Answered {
    organisation: String,
    answer: Answer,
}

#[derive(Debug, Serialize)]
struct Closed {
    outcome: String,
}

#[derive(Debug, Serialize)]
struct Required {
    adoption_requires_consent: bool,
}

/// `round show`.
#[derive(Debug, Serialize)]
struct Shown {
    adoption_requires_consent: bool,
    /// `null` when adoption is possible, else why not.
    adoption_blocked: Option<String>,
    rounds: Vec<RoundShown>,
}

#[derive(Debug, Serialize)]
struct RoundShown {
    id: String,
    question: String,
    heads: Vec<String>,
    deadline: i64,
    opened_by: String,
    opened_at: i64,
    tally: BTreeMap<Answer, usize>,
    /// `null` when the members are unknown (no server joined).
    not_answered: Option<Vec<String>>,
    answers: Vec<AnswerShown>,
    wording_changed: bool,
    closed: Option<ClosedShown>,
}

#[derive(Debug, Serialize)]
struct AnswerShown {
    organisation: String,
    answer: Answer,
    reason: String,
    by: String,
    at: i64,
}

#[derive(Debug, Serialize)]
struct ClosedShown {
    at: i64,
    by: String,
    outcome: String,
}

impl From<Rounds> for Shown {
    fn from(r: Rounds) -> Self {
        Shown {
            adoption_requires_consent: r.requires_consent,
            adoption_blocked: r.may_adopt.err().map(|e| e.to_string()),
            rounds: r
                .rounds
                .into_iter()
                .map(|v| RoundShown {
                    id: v.round.id.0.clone(),
                    question: v.round.question.0.clone(),
                    heads: v.round.heads.clone(),
                    deadline: v.round.deadline,
                    opened_by: v.round.opened_by.0.clone(),
                    opened_at: v.round.opened_at,
                    tally: v.tally,
                    not_answered: v.not_answered,
                    answers: v
                        .round
                        .answers
                        .iter()
                        .map(|(org, a)| AnswerShown { organisation: org.clone(), answer: a.answer, reason: a.reason.0.clone(), by: a.by.0.clone(), at: a.at })
                        .collect(),
                    wording_changed: v.wording_changed,
                    closed: v.round.closed.as_ref().map(|c| ClosedShown { at: c.at, by: c.by.0.clone(), outcome: c.outcome.0.clone() }),
                })
                .collect(),
        }
    }
}

impl Render for Shown {
    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        if self.rounds.is_empty() {
            writeln!(out, "no consent rounds")?;
        }
        for (i, r) in self.rounds.iter().enumerate() {
            let state = if r.closed.is_some() { "closed" } else { "open" };
            writeln!(out, "round {} ({}, {state}, deadline {})", i + 1, r.id, r.deadline)?;
            if !r.question.is_empty() {
                writeln!(out, "  question: {}", r.question)?;
            }
            let tally: Vec<String> = r.tally.iter().map(|(a, n)| format!("{a} {n}")).collect();
            writeln!(out, "  tally: {}", tally.join(", "))?;
            for a in &r.answers {
                let reason = if a.reason.is_empty() { String::new() } else { format!(" – {}", a.reason) };
                writeln!(out, "  {}: {}{reason}", a.organisation, a.answer)?;
            }
            match &r.not_answered {
                Some(list) if !list.is_empty() => writeln!(out, "  not answered: {}", list.join(", "))?,
                Some(_) => writeln!(out, "  every organisation has answered")?,
                None => {}
            }
            if r.wording_changed {
                writeln!(out, "  the wording changed since this round opened")?;
            }
            if let Some(c) = &r.closed {
                writeln!(out, "  outcome: {}", c.outcome)?;
            }
        }
        let requirement = if self.adoption_requires_consent { "required" } else { "not required" };
        match &self.adoption_blocked {
            None => writeln!(out, "consent for adoption ({requirement}): given"),
            Some(why) => writeln!(out, "consent for adoption ({requirement}): {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum;

    use super::*;

    #[test]
    fn answer_names_are_the_domain_names() {
        let names: Vec<String> = AnswerArg::value_variants().iter().filter_map(|v| v.to_possible_value()).map(|p| p.get_name().to_owned()).collect();
        let domain: Vec<String> = Answer::ALL.iter().map(|a| a.as_str().to_owned()).collect();
        assert_eq!(names, domain);
        for a in AnswerArg::value_variants() {
            assert_eq!(a.to_possible_value().map(|p| p.get_name().to_owned()), Some(Answer::from(*a).as_str().to_owned()));
        }
    }

    #[test]
    fn deadlines_are_read_as_utc() {
        assert_eq!(parse_deadline("1970-01-01T00:01").ok(), Some(60_000));
        assert_eq!(parse_deadline("2027-01-20").ok(), Some(1_800_489_599_000));
        assert_eq!(parse_deadline("1800489599000").ok(), Some(1_800_489_599_000));
        assert!(parse_deadline("2027-02-30").is_err());
        assert!(parse_deadline("20. Januar").is_err());
        assert!(parse_deadline("2027-01-20T25:00").is_err());
    }
}
