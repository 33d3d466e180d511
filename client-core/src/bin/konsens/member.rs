//! `konsens join`, `invite`, `members`, `revoke`, `reissue`: membership,
//! through the server's JSON API. `invite --csv FILE` invites a whole list
//! (the server parses it; see `konsens_model::roster`): everyone or nobody.

use std::io::{self, Write};

use anyhow::Result;
use clap::Args;
use anyhow::Context as _;
use konsens_model::api::{BulkInvited, Invited, Me, MemberEntry, MemberStatus, Revoked};

use crate::Context;
use crate::output::Render;
use crate::values::{RoleArg, doc_id};

#[derive(Debug, Args)]
pub struct JoinArgs {
    /// Your personal invitation link, http://host:port/join/<token> (from
    /// your facilitator, or the administrator link the server printed).
    link: String,
}

#[derive(Debug, Args)]
pub struct InviteArgs {
    /// The process to invite into: its id or `automerge:` URL.
    #[arg(value_name = "PROCESS")]
    process: String,
    /// What the invited person may do in the process.
    #[arg(long, value_enum, required_unless_present = "csv")]
    role: Option<RoleArg>,
    /// The person's name, as everyone will see it.
    #[arg(long, required_unless_present = "csv")]
    name: Option<String>,
    /// The person's organisation, as everyone will see it.
    #[arg(long, required_unless_present = "csv")]
    org: Option<String>,
    /// Invite everyone of a CSV file instead: a header row with the columns
    /// name, organisation, role and (optionally) e-mail; semicolons or commas;
    /// German or English role names. Everyone is invited, or nobody.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["role", "name", "org"])]
    csv: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReissueArgs {
    /// The token id (from `konsens members`).
    token_id: String,
}

#[derive(Debug, Args)]
pub struct MembersArgs {
    /// The process: its id or `automerge:` URL.
    #[arg(value_name = "PROCESS")]
    process: String,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The token id (from `konsens members` or `invite`).
    token_id: String,
}

pub async fn join(args: JoinArgs, cx: &mut Context) -> Result<()> {
    let me = cx.ws.join(&args.link).await?;
    cx.out.show(&Joined { sync_url: cx.ws.session().map(|s| s.sync_url.clone()).unwrap_or_default(), me })
}

pub async fn invite(args: InviteArgs, cx: &Context) -> Result<()> {
    let process = doc_id(&args.process)?;
    if let Some(path) = &args.csv {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let csv = konsens_model::roster::decode_text(&bytes);
        let invited = cx.ws.invite_roster(process, &csv).await?;
        cx.out.note(format_args!("{} member(s) invited", invited.invited.len()));
        return cx.out.show(&invited);
    }
    let (Some(role), Some(name), Some(org)) = (args.role, args.name, args.org) else {
        anyhow::bail!("give --role, --name and --org, or --csv FILE");
    };
    let invited = cx.ws.invite(process, role.into(), &name, &org).await?;
    cx.out.note(format_args!("token id {} (for `konsens revoke`)", invited.token_id));
    cx.out.show(&invited)
}

pub async fn reissue(args: ReissueArgs, cx: &Context) -> Result<()> {
    cx.out.show(&cx.ws.reissue(&args.token_id).await?)
}

pub async fn members(args: MembersArgs, cx: &Context) -> Result<()> {
    cx.out.show(&cx.ws.members(doc_id(&args.process)?).await?)
}

pub async fn revoke(args: RevokeArgs, cx: &Context) -> Result<()> {
    cx.out.show(&cx.ws.revoke(&args.token_id).await?)
}

/// `join`: the server's `Me`, and where this store now syncs.
#[derive(Debug, serde::Serialize)]
#[serde(transparent)]
struct Joined {
    me: Me,
    #[serde(skip)]
    sync_url: String,
}

impl Render for Joined {
    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        let me = &self.me;
        writeln!(out, "joined {} as {} ({}), {}", self.sync_url, me.name, me.organisation, me.role)?;
        if let Some(process) = &me.process {
            writeln!(out, "process: {process}  (run `konsens sync --doc {process}`)")?;
        }
        Ok(())
    }
}

impl Render for Invited {
    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "{}", self.link)
    }
}

impl Render for BulkInvited {
    /// One line a member: the link, then who it is for (tab-separated, so it
    /// pastes into a spreadsheet).
    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        for invited in &self.invited {
            writeln!(out, "{}\t{}\t{}\t{}", invited.link, invited.name, invited.organisation, invited.role)?;
        }
        Ok(())
    }
}

impl Render for MemberEntry {
    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        let token = self.token_id.as_ref().map(|t| format!("  token {t}")).unwrap_or_default();
        let status = match self.status {
            Some(MemberStatus::Invited) => "  invited",
            Some(MemberStatus::Joined) => "  joined",
            Some(MemberStatus::Revoked) => "  revoked",
            None => "",
        };
        writeln!(out, "{:<12} {} ({}){token}{status}", self.role.as_str(), self.name, self.organisation)
    }
}

impl Render for Revoked {
    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "revoked {}; closed {} connection(s)", self.revoked, self.closed_connections)
    }
}
