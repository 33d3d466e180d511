//! `konsens identity`: who the changes from this store belong to.

use std::io::{self, Write};

use anyhow::{Result, bail};
use clap::Args;
use konsens_client::Identity;

use crate::Context;
use crate::output::Render;

#[derive(Debug, Args)]
pub struct IdentityArgs {
    /// Your name (give it with --org to set the identity).
    #[arg(long)]
    name: Option<String>,
    /// Your organisation; endorsements speak for it.
    #[arg(long)]
    org: Option<String>,
}

impl Render for Identity {
    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "{} ({}), participant {}", self.name, self.organisation, self.participant)
    }
}

pub async fn run(args: IdentityArgs, cx: &mut Context) -> Result<()> {
    let identity = match (args.name, args.org) {
        (Some(name), Some(org)) => cx.ws.set_identity(&name, &org)?,
        (None, None) => cx.ws.identity()?.clone(),
        _ => bail!("give both --name and --org"),
    };
    cx.out.show(&identity)
}
