//! Markdown ↔ Automerge rich text.
//!
//! The CLI edits the rich-text fields of a recommendation as Markdown, the
//! browser edits the same Automerge text object with `@automerge/prosemirror`.
//! For both to meet in one text, [`to_spans`] writes exactly the block markers
//! and marks that `@automerge/prosemirror`'s `basicSchema` reads and writes,
//! and [`from_spans`] reads them back (plus the variants the browser produces).
//!
//! # The mapping
//!
//! Verified against automerge/automerge-prosemirror: `src/basicSchema.ts`
//! (node and mark specs with their `automerge` keys), `src/traversal.ts`
//! (`traverseNode`/`findParents`/`blocksFromNode`, `nodesForBlock`),
//! `src/types.ts` (`BlockMarker`, `isImmutableString`) and
//! `test/traversal.spec.ts` (nested lists, blockquotes).
//!
//! | Markdown            | Automerge                                                                    |
//! |---------------------|------------------------------------------------------------------------------|
//! | paragraph           | block `{type: "paragraph", parents: [], attrs: {}, isEmbed: false}`          |
//! | `#` … `######`      | block `{type: "heading", parents: [], attrs: {level: 1..6}, isEmbed: false}` |
//! | `- item`            | block `{type: "unordered-list-item", parents: [], attrs: {}, …}` + its text  |
//! | `1. item`           | block `{type: "ordered-list-item", parents: [], attrs: {}, …}` + its text    |
//! | nested item         | `parents` lists the enclosing items: `["unordered-list-item"]`, …            |
//! | 2nd paragraph in item | `{type: "paragraph", parents: ["unordered-list-item"]}`                    |
//! | `> quote`           | `{type: "paragraph", parents: ["blockquote"]}` (quoted items likewise)       |
//! | fenced/indented code | block `{type: "code-block", parents: [], attrs: {}}`, text without marks    |
//! | `**strong**`        | mark `strong` = `true`                                                       |
//! | `*em*`              | mark `em` = `true`                                                           |
//! | `[t](href "title")` | mark `link` = the JSON *string* `{"href":"…","title":"…"}` (`title: null` when absent), as `JSON.stringify` writes it |
//! | `` `code` ``        | plain text: basicSchema's `code` mark has no `automerge` key, so the browser never syncs it |
//!
//! `type` and the entries of `parents` are scalar strings (`RawString` /
//! `ImmutableString` in JS; the browser ignores Text objects there), `level`
//! is an integer scalar, `isEmbed` a boolean. Block markers with
//! `isEmbed: true` (images) carry no text and are skipped on reading.
//!
//! Everything else (tables are not enabled, thematic breaks, images, HTML,
//! footnotes) degrades to plain text or is dropped; nothing panics.
//!
//! # Normalised Markdown
//!
//! [`from_spans`] writes one canonical spelling, so `from_spans(&to_spans(md))`
//! equals `md` exactly when `md` is already normalised:
//!
//! - emphasis is `*…*`, strong is `**…**` (`_`/`__` come back as `*`/`**`);
//!   whitespace at the edges of emphasis moves outside it;
//! - ATX headings (`## Title`), setext headings become ATX;
//! - bullets are `-`, ordered lists are renumbered `1.`, `2.`, … and lists are
//!   tight; nested items are indented by the width of their parent's marker;
//! - a paragraph is one line: soft breaks become spaces, hard breaks are `\`
//!   at the end of the line; leading/trailing whitespace of a block is dropped;
//! - code blocks are fenced with backticks and lose their info string
//!   (`code-block` has no language attribute);
//! - blocks are separated by one blank line (`>` on it inside quotes), empty
//!   paragraphs are dropped, the text ends with one newline (empty text: `""`);
//! - links are inline (`[t](url)`, references and autolinks resolved);
//! - Markdown syntax characters inside text are backslash-escaped.

mod blocks;
mod html;
pub use html::escape_html;
mod inline;
mod markdown;
mod outline;
pub use outline::{OutlineBlock, OutlineKind, OutlineRun, to_outline};
mod parse;
mod read;
#[cfg(test)]
mod tests;

use automerge::iter::Span;
use automerge::marks::{ExpandMark, UpdateSpansConfig};

use blocks::*;
use html::*;
use inline::*;
use markdown::*;
use parse::*;
use read::*;

/// Parse Markdown into Automerge spans (block markers and marked text) in the
/// `@automerge/prosemirror` representation. Never fails: what has no
/// representation degrades to plain text.
pub fn to_spans(markdown: &str) -> Vec<Span> {
    blocks_to_spans(&parse_blocks(markdown))
}

/// Render Automerge spans as normalised Markdown (see the module docs).
pub fn from_spans(spans: &[Span]) -> String {
    from_spans_shifted(spans, 0)
}

/// Like [`from_spans`], with every heading moved down `heading_offset` levels
/// (capped at 6), for embedding the text under headings of its own.
pub fn from_spans_shifted(spans: &[Span], heading_offset: u8) -> String {
    blocks_to_markdown(&spans_to_blocks(spans), heading_offset)
}

/// Render Automerge spans as an HTML fragment: every piece of text is escaped,
/// and only `http`, `https`, `mailto` and relative links become `<a>`
/// elements (a `javascript:` link in a published report would be an attack).
pub fn to_html(spans: &[Span], heading_offset: u8) -> String {
    blocks_to_html(&spans_to_blocks(spans), heading_offset)
}

/// The mark expansion the browser uses: ProseMirror's `link` mark is
/// `inclusive: false` (typing after a link does not extend it), while
/// `strong` and `em` are inclusive. Pass this to `update_spans` so that text
/// typed at the edge of a mark behaves the same on both sides.
pub fn update_spans_config() -> UpdateSpansConfig {
    UpdateSpansConfig::default()
        .with_default_expand(ExpandMark::After)
        .with_mark_expand(LINK, ExpandMark::None)
}

const STRONG: &str = "strong";
const EM: &str = "em";
const LINK: &str = "link";

/// Escape a plain one-line string (a title, a name) for use inside a line of
/// Markdown; line breaks become spaces.
pub(crate) fn escape_markdown_inline(text: &str) -> String {
    let mut out = String::new();
    escape_inline(&text.replace(['\r', '\n'], " "), &mut out);
    out
}

