//! `konsens join`, `invite`, `members`, `revoke`: membership, through the
//! server's JSON API.

use std::io::{self, Write};

use anyhow::Result;
use clap::Args;
use konsens_model::api::{Invited, Me, MemberEntry, Revoked};

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
    process: String,
    #[arg(long, value_enum)]
    role: RoleArg,
    #[arg(long)]
    name: String,
    #[arg(long)]
    org: String,
}

#[derive(Debug, Args)]
pub struct MembersArgs {
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
    let invited = cx.ws.invite(doc_id(&args.process)?, args.role.into(), &args.name, &args.org).await?;
    cx.out.note(format_args!("token id {} (for `konsens revoke`)", invited.token_id));
    cx.out.show(&invited)
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

impl Render for MemberEntry {
    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        let token = self.token_id.as_ref().map(|t| format!("  token {t}")).unwrap_or_default();
        writeln!(out, "{:<12} {} ({}){token}", self.role.as_str(), self.name, self.organisation)
    }
}

impl Render for Revoked {
    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "revoked {}; closed {} connection(s)", self.revoked, self.closed_connections)
    }
}
