//! Word-level, paragraph-aware diffs of a text field, and hunks that can be
//! taken or left one by one.
//!
//! A field is read as *units*: characters with their marks, and block markers
//! (paragraphs, headings, list items). Units are grouped into tokens the way
//! the web app's `wordDiff` (`server/web/src/history.js`) groups plain text:
//! a run of line breaks (block markers count as line breaks), a run of other
//! white space, or a run of anything else. A *hunk* is one maximal run of
//! changed tokens. Because hunks are ranges of units on both sides, a text can
//! be rebuilt taking the new side of some hunks and the old side of others
//! ([`choose`]), marks and block markers included.

use std::ops::Range;
use std::sync::Arc;

use automerge::hydrate;
use automerge::iter::Span;
use automerge::marks::MarkSet;
use similar::{Algorithm, DiffOp};

/// One unit of a text field.
#[derive(Debug, Clone, PartialEq)]
pub enum Unit {
    /// A character and the marks on it.
    Char(char, Option<Arc<MarkSet>>),
    /// A block marker, which reads as a line break.
    Block(hydrate::Map),
}

impl Unit {
    fn class(&self) -> Class {
        match self {
            Unit::Block(_) | Unit::Char('\n', _) => Class::Break,
            Unit::Char(c, _) if c.is_whitespace() => Class::Space,
            Unit::Char(..) => Class::Word,
        }
    }

    fn push_text(&self, out: &mut String) {
        match self {
            Unit::Char(c, _) => out.push(*c),
            Unit::Block(_) => out.push('\n'),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Break,
    Space,
    Word,
}

/// The units of a rich-text field's spans.
pub fn units_of_spans(spans: &[Span]) -> Vec<Unit> {
    let mut out = Vec::new();
    for span in spans {
        match span {
            Span::Text { text, marks } => out.extend(text.chars().map(|c| Unit::Char(c, marks.clone()))),
            Span::Block(block) => out.push(Unit::Block(block.clone())),
        }
    }
    out
}

/// The units of a plain text (a title).
pub fn units_of_text(text: &str) -> Vec<Unit> {
    text.chars().map(|c| Unit::Char(c, None)).collect()
}

/// Spans again: runs of characters with the same marks, and the block markers.
pub fn spans_of_units(units: &[Unit]) -> Vec<Span> {
    let mut out: Vec<Span> = Vec::new();
    for unit in units {
        match unit {
            Unit::Block(block) => out.push(Span::Block(block.clone())),
            Unit::Char(c, marks) => match out.last_mut() {
                Some(Span::Text { text, marks: last }) if last == marks => text.push(*c),
                _ => out.push(Span::Text { text: c.to_string(), marks: marks.clone() }),
            },
        }
    }
    out
}

/// The text of units, block markers as line breaks.
pub fn text_of_units(units: &[Unit]) -> String {
    let mut out = String::new();
    for unit in units {
        unit.push_text(&mut out);
    }
    out
}

/// Token boundaries over units, as ranges.
fn tokens(units: &[Unit]) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    for (i, unit) in units.iter().enumerate() {
        match out.last_mut() {
            Some(last) if units[last.start].class() == unit.class() => last.end = i + 1,
            _ => out.push(i..i + 1),
        }
    }
    out
}

/// One maximal run of changed tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hunk {
    /// Its place among the field's hunks, from 0 in reading order.
    pub index: usize,
    /// The units it replaces on the old side.
    pub before: Range<usize>,
    /// The units it brings on the new side.
    pub after: Range<usize>,
}

/// The hunks that turn `before` into `after`, word by word.
pub fn hunks(before: &[Unit], after: &[Unit]) -> Vec<Hunk> {
    let (a, b) = (tokens(before), tokens(after));
    let key = |units: &[Unit], r: &Range<usize>| text_of_units(&units[r.clone()]);
    let keys_a: Vec<String> = a.iter().map(|r| key(before, r)).collect();
    let keys_b: Vec<String> = b.iter().map(|r| key(after, r)).collect();
    let mut out: Vec<Hunk> = Vec::new();
    // The hunk being gathered, in tokens: (old range, new range).
    let mut open: Option<(Range<usize>, Range<usize>)> = None;
    let unit_range = |tokens: &[Range<usize>], r: &Range<usize>, len: usize| -> Range<usize> {
        // An empty token range sits before the token at its start.
        let start = tokens.get(r.start).map_or(len, |t| t.start);
        let end = if r.end > r.start { tokens[r.end - 1].end } else { start };
        start..end
    };
    let close = |open: &mut Option<(Range<usize>, Range<usize>)>, out: &mut Vec<Hunk>| {
        if let Some((ra, rb)) = open.take() {
            let index = out.len();
            out.push(Hunk { index, before: unit_range(&a, &ra, before.len()), after: unit_range(&b, &rb, after.len()) });
        }
    };
    for op in similar::capture_diff_slices(Algorithm::Myers, &keys_a, &keys_b) {
        let (old, new) = match op {
            DiffOp::Equal { .. } => {
                close(&mut open, &mut out);
                continue;
            }
            DiffOp::Delete { old_index, old_len, new_index } => (old_index..old_index + old_len, new_index..new_index),
            DiffOp::Insert { old_index, new_index, new_len } => (old_index..old_index, new_index..new_index + new_len),
            DiffOp::Replace { old_index, old_len, new_index, new_len } => (old_index..old_index + old_len, new_index..new_index + new_len),
        };
        open = Some(match open.take() {
            Some((ra, rb)) => (ra.start..old.end.max(ra.end), rb.start..new.end.max(rb.end)),
            None => (old, new),
        });
    }
    close(&mut open, &mut out);
    out
}

/// `after`, with the hunks `keep` says no to taken from `before` instead.
pub fn choose(before: &[Unit], after: &[Unit], hunks: &[Hunk], keep: impl Fn(usize) -> bool) -> Vec<Unit> {
    let mut out = Vec::with_capacity(after.len());
    let mut at = 0;
    for hunk in hunks {
        out.extend_from_slice(&after[at..hunk.after.start]);
        if keep(hunk.index) {
            out.extend_from_slice(&after[hunk.after.clone()]);
        } else {
            out.extend_from_slice(&before[hunk.before.clone()]);
        }
        at = hunk.after.end;
    }
    out.extend_from_slice(&after[at..]);
    out
}

/// `[-removed-]{+added+}` at word granularity, for the CLI's plain-text diffs.
pub fn word_diff(before: &str, after: &str) -> String {
    let diff = similar::TextDiff::from_words(before, after);
    let mut out = String::new();
    for change in diff.iter_all_changes() {
        let value = change.value();
        match change.tag() {
            similar::ChangeTag::Equal => out.push_str(value),
            similar::ChangeTag::Delete => {
                out.push_str("[-");
                out.push_str(value);
                out.push_str("-]");
            }
            similar::ChangeTag::Insert => {
                out.push_str("{+");
                out.push_str(value);
                out.push_str("+}");
            }
        }
    }
    out.replace("-][-", "").replace("+}{+", "")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(units: &[Unit], r: &Range<usize>) -> String {
        text_of_units(&units[r.clone()])
    }

    #[test]
    fn hunks_are_maximal_runs_of_changed_words() {
        let a = units_of_text("Die Gebühren tragen die Arbeitgeber.\nSonst niemand.");
        let b = units_of_text("Die Kosten tragen allein die Arbeitgeber.\nSonst niemand, nie.");
        let found = hunks(&a, &b);
        let shown: Vec<(String, String)> = found.iter().map(|h| (text(&a, &h.before), text(&b, &h.after))).collect();
        assert_eq!(
            shown,
            vec![
                ("Gebühren".into(), "Kosten".into()),
                ("".into(), "allein ".into()),
                ("niemand.".into(), "niemand, nie.".into()),
            ]
        );
        assert_eq!(found.iter().map(|h| h.index).collect::<Vec<_>>(), vec![0, 1, 2]);
    }

    #[test]
    fn choosing_takes_each_hunk_from_its_side() {
        let a = units_of_text("eins zwei drei");
        let b = units_of_text("one zwei three");
        let found = hunks(&a, &b);
        assert_eq!(found.len(), 2);
        assert_eq!(text_of_units(&choose(&a, &b, &found, |i| i == 0)), "one zwei drei");
        assert_eq!(text_of_units(&choose(&a, &b, &found, |i| i == 1)), "eins zwei three");
        assert_eq!(text_of_units(&choose(&a, &b, &found, |_| true)), "one zwei three");
        assert_eq!(text_of_units(&choose(&a, &b, &found, |_| false)), "eins zwei drei");
    }

    #[test]
    fn a_paragraph_break_is_a_token_of_its_own() {
        let block = Unit::Block(hydrate::Map::default());
        let mut a = vec![block.clone()];
        a.extend(units_of_text("Erster Satz. Zweiter Satz."));
        let mut b = vec![block.clone()];
        b.extend(units_of_text("Erster Satz."));
        b.push(block);
        b.extend(units_of_text("Zweiter Satz."));
        let found = hunks(&a, &b);
        assert_eq!(found.len(), 1);
        assert_eq!(text(&b, &found[0].after), "\n");
        assert_eq!(text(&a, &found[0].before), " ");
        let spans = spans_of_units(&b);
        assert_eq!(spans.iter().filter(|s| matches!(s, Span::Block(_))).count(), 2);
    }

    #[test]
    fn word_diff_marks_what_came_and_went() {
        assert_eq!(word_diff("a b c", "a x c"), "a [-b-]{+x+} c");
    }
}
