//! Where every command's result goes: one [`Output`], one [`Render`] trait.
//! A result is written as text for people, or as pretty JSON with `--json`;
//! commands never look at the flag themselves.
//!
//! stdout may be a pipe that closes early (`konsens rec list P | head -1`):
//! then the rest of the output is dropped quietly and the command finishes
//! its work and exits as it would have. Nothing here uses `println!`, which
//! panics on a closed pipe.

use std::cell::Cell;
use std::io::{self, Write};

use anyhow::Result;
use serde::Serialize;

/// A command's result.
pub trait Render: Serialize {
    /// `false` for results that only people need (e.g. "no changes"):
    /// `--json` writes nothing for them.
    const JSON: bool = true;

    /// The text form, to stdout.
    fn text(&self, out: &mut dyn Write) -> io::Result<()>;
}

/// Writes results to stdout and notes to stderr, as text or as JSON.
#[derive(Debug)]
pub struct Output {
    json: bool,
    /// stdout was closed by its reader: write nothing more to it.
    closed: Cell<bool>,
}

impl Output {
    pub fn new(json: bool) -> Self {
        Self { json, closed: Cell::new(false) }
    }

    /// Write a result.
    pub fn show<T: Render + ?Sized>(&self, result: &T) -> Result<()> {
        if self.json && !T::JSON {
            return Ok(());
        }
        let text = if self.json {
            let mut text = serde_json::to_string_pretty(result)?;
            text.push('\n');
            text.into_bytes()
        } else {
            let mut text = Vec::new();
            result.text(&mut text)?;
            text
        };
        self.raw(&text)
    }

    /// Write bytes as they are (a report, in any mode).
    pub fn raw(&self, bytes: &[u8]) -> Result<()> {
        if self.closed.get() {
            return Ok(());
        }
        let mut stdout = io::stdout().lock();
        match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed.set(true);
                Ok(())
            }
            other => Ok(other?),
        }
    }

    /// A progress bar on stderr: shown to people at a terminal, hidden
    /// otherwise and with `--json`.
    pub fn progress(&self) -> indicatif::ProgressBar {
        if !self.json && io::IsTerminal::is_terminal(&io::stderr()) {
            indicatif::ProgressBar::new(0)
        } else {
            indicatif::ProgressBar::hidden()
        }
    }

    /// A line for people on stderr, in text mode only (`--json` readers
    /// get everything they need in the JSON).
    pub fn note(&self, line: impl std::fmt::Display) {
        if !self.json {
            warn(line);
        }
    }
}

/// A line on stderr in every mode (warnings). A closed stderr is ignored.
pub fn warn(line: impl std::fmt::Display) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

/// A text-only result: a line for people, nothing in `--json`.
#[derive(Debug, Serialize)]
pub struct Said(pub String);

impl Render for Said {
    const JSON: bool = false;
    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "{}", self.0)
    }
}

/// A result whose text is one line and whose JSON is the value itself.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct Line<T: Serialize> {
    pub value: T,
    #[serde(skip)]
    pub text: String,
}

impl<T: Serialize> Line<T> {
    pub fn new(value: T, text: impl Into<String>) -> Self {
        Self { value, text: text.into() }
    }
}

impl<T: Serialize> Render for Line<T> {
    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "{}", self.text)
    }
}

/// A list rendered item by item.
impl<T: Render> Render for [T] {
    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        self.iter().try_for_each(|item| item.text(out))
    }
}

impl<T: Render> Render for Vec<T> {
    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        self.as_slice().text(out)
    }
}
