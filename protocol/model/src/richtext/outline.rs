//! Blocks → a plain, serialisable outline, for renderers outside this crate
//! (the PDF and DOCX of `konsens-publish`) that lay text out themselves.

use serde::Serialize;

use super::*;

/// What a block of an [`OutlineBlock`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutlineKind {
    Paragraph,
    Heading,
    Bullet,
    Numbered,
    Code,
}

/// One block: a paragraph, heading, list item or code block, with its runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutlineBlock {
    pub kind: OutlineKind,
    /// A heading's level (1–6); otherwise 0.
    pub level: u8,
    /// How many list items enclose this block (a nested item: 1 or more).
    pub depth: usize,
    /// An ordered item's number within its list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<usize>,
    /// Inside a block quote.
    pub quote: bool,
    pub runs: Vec<OutlineRun>,
}

/// A run of text with its marks. `link` is set only for safe targets
/// (`http`, `https`, `mailto`, relative), as in the HTML rendering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutlineRun {
    pub text: String,
    pub strong: bool,
    pub em: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// The blocks of a rich text, blank ones dropped, ordered items numbered.
pub fn to_outline(spans: &[Span]) -> Vec<OutlineBlock> {
    let mut out: Vec<OutlineBlock> = Vec::new();
    // Per depth, the number of the last ordered item seen at that depth in the
    // current list run; any other block at or above that depth ends the run.
    let mut counters: Vec<usize> = Vec::new();
    for block in spans_to_blocks(spans) {
        if block.is_blank() {
            continue;
        }
        let depth = block.parents.iter().filter(|p| matches!(p, Container::Item(_))).count();
        let quote = block.parents.contains(&Container::Quote);
        let (kind, level) = match block.kind {
            BlockKind::Paragraph => (OutlineKind::Paragraph, 0),
            BlockKind::Heading(level) => (OutlineKind::Heading, level.clamp(1, 6)),
            BlockKind::Item(ListKind::Unordered) => (OutlineKind::Bullet, 0),
            BlockKind::Item(ListKind::Ordered) => (OutlineKind::Numbered, 0),
            BlockKind::Code => (OutlineKind::Code, 0),
        };
        let number = if kind == OutlineKind::Numbered {
            counters.resize(depth + 1, 0);
            counters[depth] += 1;
            Some(counters[depth])
        } else {
            // Anything else at this depth ends the numbered lists at it and below.
            counters.truncate(depth);
            None
        };
        let runs = block
            .runs
            .iter()
            .map(|r| OutlineRun {
                text: r.text.clone(),
                strong: r.marks.strong,
                em: r.marks.em,
                link: r.marks.link.as_ref().map(|l| l.href.clone()).filter(|h| safe_href(h)),
            })
            .collect();
        out.push(OutlineBlock { kind, level, depth, number, quote, runs });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_numbered_and_unsafe_links_dropped() {
        let spans = to_spans("Intro [x](javascript:alert(1)) and [y](https://a.example).\n\n1. one\n2. two\n\n- a\n- b\n\n1. again");
        let outline = to_outline(&spans);
        let kinds: Vec<(OutlineKind, Option<usize>)> = outline.iter().map(|b| (b.kind, b.number)).collect();
        assert_eq!(
            kinds,
            [
                (OutlineKind::Paragraph, None),
                (OutlineKind::Numbered, Some(1)),
                (OutlineKind::Numbered, Some(2)),
                (OutlineKind::Bullet, None),
                (OutlineKind::Bullet, None),
                (OutlineKind::Numbered, Some(1)),
            ]
        );
        let links: Vec<Option<&str>> = outline[0].runs.iter().map(|r| r.link.as_deref()).collect();
        assert!(links.contains(&Some("https://a.example")));
        assert!(!links.iter().flatten().any(|l| l.starts_with("javascript")));
    }
}
