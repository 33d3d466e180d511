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

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use automerge::ScalarValue;
use automerge::hydrate;
use automerge::iter::Span;
use automerge::marks::{ExpandMark, MarkSet, UpdateSpansConfig};
use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};
use serde::{Deserialize, Serialize};

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

/// Plain text (no Markdown syntax) as spans: paragraphs where the text has
/// blank lines, hard breaks at single newlines. For rendering plain fields
/// such as a process description with the same escaping as rich text.
pub(crate) fn plain_text_spans(text: &str) -> Vec<Span> {
    let normalised = text.replace("\r\n", "\n");
    let mut spans = Vec::new();
    for paragraph in normalised.split("\n\n") {
        let paragraph = paragraph.trim_matches('\n');
        if paragraph.trim().is_empty() {
            continue;
        }
        spans.push(Span::Block(block_marker(BlockKind::Paragraph, &[])));
        spans.push(Span::Text { text: paragraph.to_owned(), marks: None });
    }
    spans
}

/// Escape a plain one-line string (a title, a name) for use inside a line of
/// Markdown; line breaks become spaces.
pub(crate) fn escape_markdown_inline(text: &str) -> String {
    let mut out = String::new();
    escape_inline(&text.replace(['\r', '\n'], " "), &mut out);
    out
}

// ---------------------------------------------------------------------------
// The intermediate model both directions go through.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum ListKind {
    Ordered,
    Unordered,
}

impl ListKind {
    fn block_type(self) -> &'static str {
        match self {
            ListKind::Ordered => "ordered-list-item",
            ListKind::Unordered => "unordered-list-item",
        }
    }
}

/// What a block is nested in; the `parents` of its block marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Container {
    Quote,
    Item(ListKind),
}

impl Container {
    fn block_type(self) -> &'static str {
        match self {
            Container::Quote => "blockquote",
            Container::Item(kind) => kind.block_type(),
        }
    }

    fn from_block_type(name: &str) -> Option<Self> {
        match name {
            "blockquote" => Some(Container::Quote),
            "ordered-list-item" => Some(Container::Item(ListKind::Ordered)),
            "unordered-list-item" => Some(Container::Item(ListKind::Unordered)),
            // "paragraph" (parent of inline embeds), "aside" and unknown
            // parents have no Markdown form; their text still shows.
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    Paragraph,
    Heading(u8),
    Item(ListKind),
    Code,
}

impl BlockKind {
    fn block_type(self) -> &'static str {
        match self {
            BlockKind::Paragraph => "paragraph",
            BlockKind::Heading(_) => "heading",
            BlockKind::Item(kind) => kind.block_type(),
            BlockKind::Code => "code-block",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Link {
    href: String,
    title: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Marks {
    strong: bool,
    em: bool,
    link: Option<Link>,
}

#[derive(Debug, Clone)]
struct Run {
    text: String,
    marks: Marks,
}

#[derive(Debug, Clone)]
struct Block {
    kind: BlockKind,
    parents: Vec<Container>,
    runs: Vec<Run>,
}

impl Block {
    fn new(kind: BlockKind, parents: Vec<Container>) -> Self {
        Block { kind, parents, runs: Vec::new() }
    }

    /// Append text, merging with the previous run when the marks agree, so
    /// that the spans are in the canonical form Automerge itself returns.
    fn push(&mut self, text: &str, marks: Marks) {
        if text.is_empty() {
            return;
        }
        if let Some(last) = self.runs.last_mut()
            && last.marks == marks
        {
            last.text.push_str(text);
            return;
        }
        self.runs.push(Run { text: text.to_owned(), marks });
    }

    fn is_blank(&self) -> bool {
        self.runs.iter().all(|r| r.text.trim().is_empty())
    }

    fn trim_end_newlines(&mut self) {
        while let Some(last) = self.runs.last_mut() {
            let trimmed = last.text.trim_end_matches('\n').len();
            last.text.truncate(trimmed);
            if last.text.is_empty() {
                self.runs.pop();
            } else {
                break;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Markdown → blocks → spans.

#[derive(Default)]
struct Builder {
    blocks: Vec<Block>,
    path: Vec<Container>,
    lists: Vec<ListKind>,
    /// The last block still takes text.
    open: bool,
    /// The last block is a list item whose first paragraph has not come yet:
    /// that paragraph's text belongs to the item's own block marker, as
    /// prosemirror writes it (a list item's first paragraph is implicit).
    item_pending: bool,
    strong: usize,
    em: usize,
    links: Vec<Option<Link>>,
}

impl Builder {
    fn new_block(&mut self, kind: BlockKind) {
        self.blocks.push(Block::new(kind, self.path.clone()));
        self.open = true;
        self.item_pending = false;
    }

    fn close_block(&mut self) {
        self.open = false;
        self.item_pending = false;
    }

    fn marks(&self) -> Marks {
        Marks { strong: self.strong > 0, em: self.em > 0, link: self.links.last().cloned().flatten() }
    }

    fn text(&mut self, text: &str) {
        if !self.open {
            self.new_block(BlockKind::Paragraph);
        }
        self.item_pending = false;
        let marks = match self.blocks.last() {
            // ProseMirror's code_block allows no marks.
            Some(b) if b.kind == BlockKind::Code => Marks::default(),
            _ => self.marks(),
        };
        if let Some(block) = self.blocks.last_mut() {
            block.push(text, marks);
        }
    }

    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(t) | Event::Code(t) | Event::InlineHtml(t) | Event::Html(t) => self.text(&t),
            Event::InlineMath(t) | Event::DisplayMath(t) | Event::FootnoteReference(t) => self.text(&t),
            Event::SoftBreak => self.text(" "),
            Event::HardBreak => {
                // Headings are one line in Markdown.
                let in_heading = matches!(self.blocks.last(), Some(b) if matches!(b.kind, BlockKind::Heading(_)));
                self.text(if in_heading { " " } else { "\n" })
            }
            // No prosemirror node maps a thematic break to Automerge.
            Event::Rule => self.close_block(),
            Event::TaskListMarker(done) => self.text(if done { "[x] " } else { "[ ] " }),
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Paragraph => {
                if self.item_pending {
                    self.item_pending = false;
                    self.open = true;
                } else {
                    self.new_block(BlockKind::Paragraph);
                }
            }
            Tag::Heading { level, .. } => self.new_block(BlockKind::Heading(level as u8)),
            Tag::CodeBlock(_) => self.new_block(BlockKind::Code),
            Tag::HtmlBlock => self.new_block(BlockKind::Paragraph),
            Tag::BlockQuote(_) => {
                self.close_block();
                self.path.push(Container::Quote);
            }
            Tag::List(start) => {
                self.close_block();
                self.lists.push(if start.is_some() { ListKind::Ordered } else { ListKind::Unordered });
            }
            Tag::Item => {
                let kind = self.lists.last().copied().unwrap_or(ListKind::Unordered);
                self.new_block(BlockKind::Item(kind));
                self.path.push(Container::Item(kind));
                self.item_pending = true;
            }
            Tag::Emphasis => self.em += 1,
            Tag::Strong => self.strong += 1,
            Tag::Link { dest_url, title, .. } => {
                // A link without a target has nothing to point to.
                let link = (!dest_url.is_empty()).then(|| Link {
                    href: dest_url.to_string(),
                    title: (!title.is_empty()).then(|| title.to_string()),
                });
                self.links.push(link);
            }
            // Images keep their alt text (the inner text events) only.
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Paragraph | TagEnd::Heading(_) => self.close_block(),
            TagEnd::CodeBlock | TagEnd::HtmlBlock => {
                // The parser ends code and HTML blocks with a newline that is
                // the line end, not content.
                if self.open
                    && let Some(block) = self.blocks.last_mut()
                {
                    block.trim_end_newlines();
                }
                self.close_block();
            }
            TagEnd::BlockQuote(_) => {
                self.path.pop();
                self.close_block();
            }
            TagEnd::List(_) => {
                self.lists.pop();
                self.close_block();
            }
            TagEnd::Item => {
                self.path.pop();
                self.close_block();
            }
            TagEnd::Emphasis => self.em = self.em.saturating_sub(1),
            TagEnd::Strong => self.strong = self.strong.saturating_sub(1),
            TagEnd::Link => {
                self.links.pop();
            }
            _ => {}
        }
    }
}

fn parse_blocks(markdown: &str) -> Vec<Block> {
    let mut builder = Builder::default();
    // Plain CommonMark: no tables or strikethrough, which have no
    // prosemirror counterpart; their syntax stays literal text.
    for event in Parser::new_ext(markdown, Options::empty()) {
        builder.event(event);
    }
    builder.blocks
}

fn str_value(s: &str) -> hydrate::Value {
    hydrate::Value::Scalar(ScalarValue::Str(s.into()))
}

fn block_marker(kind: BlockKind, parents: &[Container]) -> hydrate::Map {
    let mut attrs: HashMap<&str, hydrate::Value> = HashMap::new();
    if let BlockKind::Heading(level) = kind {
        attrs.insert("level", hydrate::Value::Scalar(ScalarValue::Int(i64::from(level))));
    }
    let parents: Vec<hydrate::Value> = parents.iter().map(|p| str_value(p.block_type())).collect();
    let mut map: HashMap<&str, hydrate::Value> = HashMap::new();
    map.insert("type", str_value(kind.block_type()));
    map.insert("parents", hydrate::Value::List(parents.into()));
    map.insert("attrs", hydrate::Value::Map(attrs.into()));
    map.insert("isEmbed", hydrate::Value::Scalar(ScalarValue::Boolean(false)));
    map.into()
}

/// The link mark value as `JSON.stringify({href, title})` writes it in the
/// browser: field order href, title; `null` for no title.
#[derive(Serialize, Deserialize)]
struct LinkValue {
    #[serde(default)]
    href: Option<String>,
    #[serde(default)]
    title: Option<String>,
}

fn link_value(link: &Link) -> String {
    let value = LinkValue { href: Some(link.href.clone()), title: link.title.clone() };
    // Serialising two optional strings cannot fail; fall back to the bare
    // href rather than panicking all the same.
    serde_json::to_string(&value).unwrap_or_else(|_| link.href.clone())
}

fn mark_set(marks: &Marks) -> Option<Arc<MarkSet>> {
    let mut set: Vec<(String, ScalarValue)> = Vec::new();
    if marks.strong {
        set.push((STRONG.to_owned(), ScalarValue::Boolean(true)));
    }
    if marks.em {
        set.push((EM.to_owned(), ScalarValue::Boolean(true)));
    }
    if let Some(link) = &marks.link {
        set.push((LINK.to_owned(), ScalarValue::Str(link_value(link).into())));
    }
    if set.is_empty() { None } else { Some(Arc::new(set.into_iter().collect())) }
}

fn blocks_to_spans(blocks: &[Block]) -> Vec<Span> {
    let mut spans = Vec::new();
    for block in blocks {
        spans.push(Span::Block(block_marker(block.kind, &block.parents)));
        for run in &block.runs {
            spans.push(Span::Text { text: run.text.clone(), marks: mark_set(&run.marks) });
        }
    }
    spans
}

// ---------------------------------------------------------------------------
// Spans → blocks.

fn scalar_str(value: &hydrate::Value) -> Option<String> {
    match value {
        hydrate::Value::Scalar(ScalarValue::Str(s)) => Some(s.to_string()),
        // Tolerate a writer that stored a Text object where a string belongs.
        hydrate::Value::Text(t) => Some(String::from(t)),
        _ => None,
    }
}

fn read_block(map: &hydrate::Map) -> Option<Block> {
    if let Some(hydrate::Value::Scalar(ScalarValue::Boolean(true))) = map.get("isEmbed") {
        return None;
    }
    let mut parents: Vec<Container> = match map.get("parents") {
        Some(hydrate::Value::List(list)) => list
            .iter()
            .filter_map(|item| scalar_str(&item.value))
            .filter_map(|name| Container::from_block_type(&name))
            .collect(),
        _ => Vec::new(),
    };
    let type_name = map.get("type").and_then(scalar_str).unwrap_or_default();
    let kind = match type_name.as_str() {
        "heading" => {
            let level = match map.get("attrs") {
                Some(hydrate::Value::Map(attrs)) => match attrs.get("level") {
                    Some(hydrate::Value::Scalar(ScalarValue::Int(n))) => *n,
                    Some(hydrate::Value::Scalar(ScalarValue::Uint(n))) => i64::try_from(*n).unwrap_or(6),
                    Some(hydrate::Value::Scalar(ScalarValue::F64(n))) => *n as i64,
                    _ => 1,
                },
                _ => 1,
            };
            // prosemirror's heading defaults to level 1.
            BlockKind::Heading(level.clamp(1, 6) as u8)
        }
        "ordered-list-item" => BlockKind::Item(ListKind::Ordered),
        "unordered-list-item" => BlockKind::Item(ListKind::Unordered),
        "code-block" => BlockKind::Code,
        "blockquote" => {
            // A bare blockquote marker opens a quote whose first paragraph is implicit.
            parents.push(Container::Quote);
            BlockKind::Paragraph
        }
        _ => BlockKind::Paragraph,
    };
    Some(Block::new(kind, parents))
}

fn truthy(value: &ScalarValue) -> bool {
    !matches!(value, ScalarValue::Null | ScalarValue::Boolean(false))
}

fn read_link(value: &ScalarValue) -> Option<Link> {
    let ScalarValue::Str(s) = value else { return None };
    let (href, title) = match serde_json::from_str::<LinkValue>(s) {
        Ok(v) => (v.href.unwrap_or_default(), v.title),
        // Not JSON: take the whole string as the target rather than lose it.
        Err(_) => (s.to_string(), None),
    };
    (!href.is_empty()).then(|| Link { href, title: title.filter(|t| !t.is_empty()) })
}

fn read_marks(marks: Option<&Arc<MarkSet>>) -> Marks {
    let mut out = Marks::default();
    if let Some(set) = marks {
        for (name, value) in set.iter() {
            match name {
                STRONG => out.strong = truthy(value),
                EM => out.em = truthy(value),
                LINK => out.link = read_link(value),
                // Comments, highlights and other marks of other tools have no
                // Markdown form; their text shows unmarked.
                _ => {}
            }
        }
    }
    out
}

fn spans_to_blocks(spans: &[Span]) -> Vec<Block> {
    let mut blocks: Vec<Block> = Vec::new();
    for span in spans {
        match span {
            Span::Block(map) => {
                // An embed sits inside the current block; the text after it continues that block.
                let Some(mut block) = read_block(map) else { continue };
                if let (BlockKind::Paragraph, Some(Container::Item(kind))) = (block.kind, block.parents.last().copied()) {
                    let outer = &block.parents[..block.parents.len() - 1];
                    // Like the browser's traversal: a paragraph whose parents
                    // end in a list item joins the item that is open, and is
                    // that item's first paragraph if the item has no text yet;
                    // with no such item open it starts one.
                    let open_path = blocks.last().map(|prev| {
                        let mut path = prev.parents.clone();
                        if let BlockKind::Item(k) = prev.kind {
                            path.push(Container::Item(k));
                        }
                        path
                    });
                    let joins = open_path.as_ref().is_some_and(|p| p.starts_with(&block.parents));
                    if !joins {
                        block = Block::new(BlockKind::Item(kind), outer.to_vec());
                    } else if let Some(prev) = blocks.last()
                        && prev.kind == BlockKind::Item(kind)
                        && prev.parents == outer
                        && prev.runs.is_empty()
                    {
                        continue;
                    }
                }
                blocks.push(block);
            }
            Span::Text { text, marks } => {
                if blocks.is_empty() {
                    // Text before the first marker is an implicit paragraph.
                    blocks.push(Block::new(BlockKind::Paragraph, Vec::new()));
                }
                let marks = read_marks(marks.as_ref());
                if let Some(block) = blocks.last_mut() {
                    block.push(text, marks);
                }
            }
        }
    }
    blocks
}

// ---------------------------------------------------------------------------
// Inline content, shared by the Markdown and HTML renderers.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InlineMark<'a> {
    Link(&'a Link),
    Strong,
    Em,
}

fn has_mark(marks: &Marks, mark: InlineMark<'_>) -> bool {
    match mark {
        InlineMark::Link(link) => marks.link.as_ref() == Some(link),
        InlineMark::Strong => marks.strong,
        InlineMark::Em => marks.em,
    }
}

trait InlineSink {
    fn open(&mut self, mark: InlineMark<'_>);
    fn close(&mut self, mark: InlineMark<'_>);
    fn text(&mut self, text: &str);
}

/// Turn runs into properly nested open/text/close events. A mark that lasts
/// longer is opened first, so `***a* b**` nests as strong(em(a), b).
fn walk_inline(runs: &[Run], sink: &mut dyn InlineSink) {
    let mut stack: Vec<InlineMark<'_>> = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        if let Some(first_gone) = stack.iter().position(|m| !has_mark(&run.marks, *m)) {
            // Closing an outer mark closes the inner ones too; those still
            // wanted are reopened below.
            while stack.len() > first_gone {
                if let Some(m) = stack.pop() {
                    sink.close(m);
                }
            }
        }
        let mut wanted: Vec<InlineMark<'_>> = Vec::new();
        if let Some(link) = &run.marks.link {
            wanted.push(InlineMark::Link(link));
        }
        if run.marks.strong {
            wanted.push(InlineMark::Strong);
        }
        if run.marks.em {
            wanted.push(InlineMark::Em);
        }
        wanted.retain(|m| !stack.contains(m));
        let extent = |m: InlineMark<'_>| -> usize {
            runs[i..].iter().take_while(|r| has_mark(&r.marks, m)).map(|r| r.text.chars().count()).sum()
        };
        // Stable sort: on equal extent the order stays link, strong, em.
        wanted.sort_by_key(|m| std::cmp::Reverse(extent(*m)));
        for m in wanted {
            sink.open(m);
            stack.push(m);
        }
        sink.text(&run.text);
    }
    while let Some(m) = stack.pop() {
        sink.close(m);
    }
}

/// Markdown emphasis cannot start or end with whitespace (`** a**` is not
/// strong), so strong and em give up whitespace at their edges, and a block
/// loses leading and trailing whitespace.
fn normalise_runs(runs: &[Run], trim_block: bool) -> Vec<Run> {
    let mut chars: Vec<(char, usize, bool, bool)> = Vec::new();
    for (index, run) in runs.iter().enumerate() {
        for c in run.text.chars() {
            chars.push((c, index, run.marks.strong, run.marks.em));
        }
    }
    if trim_block {
        while chars.first().is_some_and(|c| c.0.is_whitespace()) {
            chars.remove(0);
        }
        while chars.last().is_some_and(|c| c.0.is_whitespace()) {
            chars.pop();
        }
    }
    for field in [2usize, 3] {
        let get = |c: &(char, usize, bool, bool)| if field == 2 { c.2 } else { c.3 };
        let mut i = 0;
        while i < chars.len() {
            if !get(&chars[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < chars.len() && get(&chars[i]) {
                i += 1;
            }
            let (mut a, mut b) = (start, i);
            while a < b && chars[a].0.is_whitespace() {
                a += 1;
            }
            while b > a && chars[b - 1].0.is_whitespace() {
                b -= 1;
            }
            for (k, c) in chars.iter_mut().enumerate().take(i).skip(start) {
                if k < a || k >= b {
                    if field == 2 {
                        c.2 = false;
                    } else {
                        c.3 = false;
                    }
                }
            }
        }
    }
    let mut out: Vec<Run> = Vec::new();
    for (c, index, strong, em) in chars {
        let link = runs.get(index).and_then(|r| r.marks.link.clone());
        let marks = Marks { strong, em, link };
        match out.last_mut() {
            Some(last) if last.marks == marks => last.text.push(c),
            _ => out.push(Run { text: c.to_string(), marks }),
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Blocks → Markdown.

/// `&` starts a character reference only when followed by `name;`, `#123;`
/// or `#x1F;`; only then does it need escaping.
fn looks_like_entity(rest: &str) -> bool {
    let body: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '#').collect();
    !body.is_empty() && rest[body.len()..].starts_with(';')
}

fn escape_inline(text: &str, out: &mut String) {
    let chars: Vec<char> = text.chars().collect();
    let mut byte = 0;
    for (i, &c) in chars.iter().enumerate() {
        let escape = match c {
            '\\' | '`' | '*' | '[' | ']' | '<' => true,
            // An underscore inside a word never delimits emphasis.
            '_' => {
                let before = i.checked_sub(1).and_then(|j| chars.get(j)).is_some_and(|p| p.is_alphanumeric());
                let after = chars.get(i + 1).is_some_and(|n| n.is_alphanumeric());
                !(before && after)
            }
            '&' => looks_like_entity(&text[byte + 1..]),
            _ => false,
        };
        if escape {
            out.push('\\');
        }
        out.push(c);
        byte += c.len_utf8();
    }
}

/// Escape what would make a line start a block of its own: a heading, quote,
/// list item, thematic break, setext underline or code fence.
fn escape_line_start(text: &str, out: &mut String) {
    let first = text.chars().next();
    let rest_after = |n: usize| text.get(n..).unwrap_or("");
    let ends_marker = |s: &str| s.is_empty() || s.starts_with(' ') || s.starts_with('\t');
    let hashes = text.chars().take_while(|c| *c == '#').count();
    let digits = text.chars().take_while(|c| c.is_ascii_digit()).count();
    let only = |c: char| text.chars().all(|x| x == c || x == ' ' || x == '\t');
    let prefix_escape = match first {
        Some('#') => hashes <= 6 && ends_marker(rest_after(hashes)),
        Some('>') => true,
        Some('-') | Some('+') => ends_marker(rest_after(1)) || only('-'),
        Some('=') => only('='),
        Some('~') => text.starts_with("~~~"),
        _ => false,
    };
    if prefix_escape {
        out.push('\\');
        escape_inline(text, out);
        return;
    }
    if (1..=9).contains(&digits) {
        let after = rest_after(digits);
        if (after.starts_with('.') || after.starts_with(')')) && ends_marker(&after[1..]) {
            out.push_str(&text[..digits]);
            out.push('\\');
            escape_inline(after, out);
            return;
        }
    }
    escape_inline(text, out);
}

fn link_destination(href: &str) -> String {
    let mut out = String::new();
    let needs_brackets = href.chars().any(|c| c.is_whitespace() || matches!(c, '(' | ')' | '<' | '>'));
    if needs_brackets {
        out.push('<');
    }
    let mut byte = 0;
    for c in href.chars() {
        match c {
            '\n' => out.push_str("%0A"),
            '\r' => out.push_str("%0D"),
            '\\' | '<' | '>' => {
                out.push('\\');
                out.push(c);
            }
            '&' if looks_like_entity(&href[byte + 1..]) => out.push_str("\\&"),
            _ => out.push(c),
        }
        byte += c.len_utf8();
    }
    if needs_brackets {
        out.push('>');
    }
    out
}

struct MarkdownInline<'a> {
    out: String,
    line_start: bool,
    /// Written after a hard break: the block's indentation and quote markers.
    continuation: &'a str,
    one_line: bool,
}

impl InlineSink for MarkdownInline<'_> {
    fn open(&mut self, mark: InlineMark<'_>) {
        self.line_start = false;
        self.out.push_str(match mark {
            InlineMark::Link(_) => "[",
            InlineMark::Strong => "**",
            InlineMark::Em => "*",
        });
    }

    fn close(&mut self, mark: InlineMark<'_>) {
        match mark {
            InlineMark::Link(link) => {
                self.out.push_str("](");
                self.out.push_str(&link_destination(&link.href));
                if let Some(title) = &link.title {
                    self.out.push_str(" \"");
                    for c in title.chars() {
                        if matches!(c, '"' | '\\') {
                            self.out.push('\\');
                        }
                        self.out.push(c);
                    }
                    self.out.push('"');
                }
                self.out.push(')');
            }
            InlineMark::Strong => self.out.push_str("**"),
            InlineMark::Em => self.out.push('*'),
        }
    }

    fn text(&mut self, text: &str) {
        for (n, line) in text.split('\n').enumerate() {
            if n > 0 {
                if self.one_line {
                    self.out.push(' ');
                } else {
                    self.out.push_str("\\\n");
                    self.out.push_str(self.continuation);
                    self.line_start = true;
                }
            }
            let line = if self.line_start { line.trim_start() } else { line };
            if line.is_empty() {
                continue;
            }
            if self.line_start {
                escape_line_start(line, &mut self.out);
            } else {
                escape_inline(line, &mut self.out);
            }
            self.line_start = false;
        }
    }
}

fn inline_markdown(runs: &[Run], continuation: &str, one_line: bool) -> String {
    let runs = normalise_runs(runs, true);
    let mut sink = MarkdownInline { out: String::new(), line_start: true, continuation, one_line };
    walk_inline(&runs, &mut sink);
    sink.out
}

fn marker_width(kind: ListKind, number: u64) -> usize {
    match kind {
        ListKind::Unordered => 2,
        ListKind::Ordered => number.to_string().len() + 2,
    }
}

fn blocks_to_markdown(blocks: &[Block], heading_offset: u8) -> String {
    // For each list (keyed by the path its items sit in): the kind, number
    // and marker width of its last item.
    let mut lists: BTreeMap<Vec<Container>, (ListKind, u64, usize)> = BTreeMap::new();
    let mut out = String::new();
    // The previous block: its kind, parents, prefix and whether it is a list
    // item without text.
    let mut previous: Option<(BlockKind, Vec<Container>, String, bool)> = None;
    for block in blocks {
        if matches!(block.kind, BlockKind::Paragraph) && block.is_blank() {
            continue;
        }
        // The indentation and quote markers the block's parents call for.
        let mut prefix = String::new();
        for (i, parent) in block.parents.iter().enumerate() {
            match parent {
                Container::Quote => prefix.push_str("> "),
                Container::Item(kind) => {
                    let width = match lists.get(&block.parents[..i]) {
                        Some((_, _, width)) => *width,
                        None => marker_width(*kind, 1),
                    };
                    prefix.push_str(&" ".repeat(width));
                }
            }
        }
        let mut same_path_other_kind = false;
        let marker = if let BlockKind::Item(kind) = block.kind {
            let number = match lists.get(&block.parents) {
                Some((k, n, _)) if *k == kind => n + 1,
                Some(_) => {
                    same_path_other_kind = true;
                    1
                }
                None => 1,
            };
            lists.retain(|path, _| block.parents.starts_with(path));
            lists.insert(block.parents.clone(), (kind, number, marker_width(kind, number)));
            match kind {
                ListKind::Unordered => "- ".to_owned(),
                ListKind::Ordered => format!("{number}. "),
            }
        } else {
            lists.retain(|path, _| path.len() < block.parents.len() && block.parents.starts_with(path));
            String::new()
        };

        if let Some((prev_kind, prev_parents, prev_prefix, prev_empty_item)) = &previous {
            let tight = matches!(prev_kind, BlockKind::Item(_))
                && matches!(block.kind, BlockKind::Item(_))
                && !same_path_other_kind;
            // An item without text must not be followed by a blank line:
            // that would end it, and its content would fall out of it.
            let inside_empty_item = *prev_empty_item
                && matches!(prev_kind, BlockKind::Item(k)
                    if block.parents.len() > prev_parents.len()
                        && block.parents.starts_with(prev_parents)
                        && block.parents[prev_parents.len()] == Container::Item(*k));
            let tight = tight || inside_empty_item;
            if !tight {
                let common: String = prev_prefix
                    .chars()
                    .zip(prefix.chars())
                    .take_while(|(a, b)| a == b)
                    .map(|(a, _)| a)
                    .collect();
                out.push('\n');
                out.push_str(common.trim_end());
            }
            out.push('\n');
        }

        let mut empty_item = false;
        match block.kind {
            BlockKind::Paragraph => {
                out.push_str(&prefix);
                out.push_str(&inline_markdown(&block.runs, &prefix, false));
            }
            BlockKind::Heading(level) => {
                let level = usize::from(level.saturating_add(heading_offset).clamp(1, 6));
                out.push_str(&prefix);
                out.push_str(&"#".repeat(level));
                let text = inline_markdown(&block.runs, &prefix, true);
                if !text.is_empty() {
                    out.push(' ');
                    out.push_str(&text);
                }
            }
            BlockKind::Item(_) => {
                let continuation = format!("{prefix}{}", " ".repeat(marker.len()));
                let text = inline_markdown(&block.runs, &continuation, false);
                out.push_str(&prefix);
                if text.is_empty() {
                    empty_item = true;
                    out.push_str(marker.trim_end());
                } else {
                    out.push_str(&marker);
                    out.push_str(&text);
                }
            }
            BlockKind::Code => {
                let text: String = block.runs.iter().map(|r| r.text.as_str()).collect();
                let longest = longest_run_of(&text, '`');
                let fence = "`".repeat(longest.max(2) + 1);
                out.push_str(&prefix);
                out.push_str(&fence);
                for line in text.split('\n') {
                    out.push('\n');
                    if line.is_empty() {
                        out.push_str(prefix.trim_end());
                    } else {
                        out.push_str(&prefix);
                        out.push_str(line);
                    }
                }
                out.push('\n');
                out.push_str(&prefix);
                out.push_str(&fence);
            }
        }
        previous = Some((block.kind, block.parents.clone(), prefix, empty_item));
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

fn longest_run_of(text: &str, wanted: char) -> usize {
    let (mut longest, mut current) = (0, 0);
    for c in text.chars() {
        if c == wanted {
            current += 1;
            longest = longest.max(current);
        } else {
            current = 0;
        }
    }
    longest
}

// ---------------------------------------------------------------------------
// Blocks → HTML.

/// Escape text for HTML element content and attribute values alike.
pub fn escape_html(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
}

fn safe_href(href: &str) -> bool {
    let lower = href.trim_start().to_ascii_lowercase();
    match lower.find(':') {
        // A colon before any `/`, `?` or `#` names a scheme.
        Some(colon) if !lower[..colon].contains(['/', '?', '#']) => {
            let scheme = &lower[..colon];
            matches!(scheme, "http" | "https" | "mailto")
        }
        _ => true,
    }
}

struct HtmlInline {
    out: String,
}

impl InlineSink for HtmlInline {
    fn open(&mut self, mark: InlineMark<'_>) {
        match mark {
            InlineMark::Link(link) if safe_href(&link.href) => {
                self.out.push_str("<a href=\"");
                escape_html(&link.href, &mut self.out);
                self.out.push('"');
                if let Some(title) = &link.title {
                    self.out.push_str(" title=\"");
                    escape_html(title, &mut self.out);
                    self.out.push('"');
                }
                self.out.push('>');
            }
            InlineMark::Link(_) => {}
            InlineMark::Strong => self.out.push_str("<strong>"),
            InlineMark::Em => self.out.push_str("<em>"),
        }
    }

    fn close(&mut self, mark: InlineMark<'_>) {
        match mark {
            InlineMark::Link(link) if safe_href(&link.href) => self.out.push_str("</a>"),
            InlineMark::Link(_) => {}
            InlineMark::Strong => self.out.push_str("</strong>"),
            InlineMark::Em => self.out.push_str("</em>"),
        }
    }

    fn text(&mut self, text: &str) {
        for (n, line) in text.split('\n').enumerate() {
            if n > 0 {
                self.out.push_str("<br>\n");
            }
            escape_html(line, &mut self.out);
        }
    }
}

fn inline_html(runs: &[Run]) -> String {
    let runs = normalise_runs(runs, true);
    let mut sink = HtmlInline { out: String::new() };
    walk_inline(&runs, &mut sink);
    sink.out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HtmlOpen {
    Quote,
    List(ListKind),
    Item,
}

fn close_html(element: HtmlOpen, out: &mut String) {
    out.push_str(match element {
        HtmlOpen::Quote => "</blockquote>\n",
        HtmlOpen::List(ListKind::Ordered) => "</ol>\n",
        HtmlOpen::List(ListKind::Unordered) => "</ul>\n",
        HtmlOpen::Item => "</li>\n",
    });
}

fn blocks_to_html(blocks: &[Block], heading_offset: u8) -> String {
    let mut out = String::new();
    let mut open: Vec<HtmlOpen> = Vec::new();
    for block in blocks {
        if matches!(block.kind, BlockKind::Paragraph) && block.is_blank() {
            continue;
        }
        let mut target: Vec<HtmlOpen> = Vec::new();
        for parent in &block.parents {
            match parent {
                Container::Quote => target.push(HtmlOpen::Quote),
                Container::Item(kind) => target.extend([HtmlOpen::List(*kind), HtmlOpen::Item]),
            }
        }
        // A list item always opens a fresh <li>, though maybe in the open list.
        let reusable = target.len();
        if let BlockKind::Item(kind) = block.kind {
            target.extend([HtmlOpen::List(kind), HtmlOpen::Item]);
        }
        let limit = if matches!(block.kind, BlockKind::Item(_)) { reusable + 1 } else { reusable };
        let common = open.iter().zip(target.iter()).take(limit).take_while(|(a, b)| a == b).count();
        while open.len() > common {
            if let Some(element) = open.pop() {
                close_html(element, &mut out);
            }
        }
        for element in &target[common..] {
            out.push_str(match element {
                HtmlOpen::Quote => "<blockquote>\n",
                HtmlOpen::List(ListKind::Ordered) => "<ol>\n",
                HtmlOpen::List(ListKind::Unordered) => "<ul>\n",
                HtmlOpen::Item => "<li>",
            });
            open.push(*element);
        }
        match block.kind {
            BlockKind::Paragraph => {
                out.push_str("<p>");
                out.push_str(&inline_html(&block.runs));
                out.push_str("</p>\n");
            }
            BlockKind::Heading(level) => {
                let level = level.saturating_add(heading_offset).clamp(1, 6);
                out.push_str(&format!("<h{level}>{}</h{level}>\n", inline_html(&block.runs)));
            }
            BlockKind::Item(_) => {
                out.push_str(&inline_html(&block.runs));
                out.push('\n');
            }
            BlockKind::Code => {
                let text: String = block.runs.iter().map(|r| r.text.as_str()).collect();
                out.push_str("<pre><code>");
                escape_html(&text, &mut out);
                out.push_str("</code></pre>\n");
            }
        }
    }
    while let Some(element) = open.pop() {
        close_html(element, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;
    use automerge::{Automerge, ObjType, ROOT, ReadDoc};

    /// Apply spans to a fresh text object and read them back through Automerge.
    fn through_automerge(steps: &[&str]) -> Vec<Span> {
        let mut doc = Automerge::new();
        let mut tx = doc.transaction();
        let obj = tx.put_object(ROOT, "text", ObjType::Text).expect("text object");
        for md in steps {
            tx.update_spans(&obj, update_spans_config(), to_spans(md)).expect("update_spans accepts our spans");
        }
        tx.commit();
        doc.spans(&obj).expect("spans").collect()
    }

    const NORMALISED: &[&str] = &[
        "",
        "Plain text.\n",
        "Agencies must publish **all** fees and *every* charge.\n",
        "# Title\n\n## Sub\n\n###### Deep\n",
        "First paragraph.\n\nSecond paragraph with a [link](https://example.org/a?b=1&c=2).\n",
        "A [titled link](https://example.org \"The title\") and [**bold link**](https://x.org).\n",
        "- one\n- two\n  - nested *em*\n  - nested two\n- three\n",
        "1. first\n2. second\n   1. inner\n3. third\n",
        "- bullet\n\n1. then numbered\n",
        "Intro:\n\n- item\n\n  continued paragraph in the item\n\n- next\n\nAfter the list.\n",
        "> Quoted words.\n>\n> Second quoted paragraph.\n",
        "Line one\\\nline two\n",
        "***both*** and ***a* b** and ***a** b*\n",
        "Escapes: \\*not em\\*, 5 \\< 6, snake_case, \\_x\\_, \\[x\\], \\`tick\\`, \\&amp; & R&D.\n",
        "\\# not a heading\n\n\\- not a list\n\n1\\. not a list\n",
        "```\nfn main() {}\n\nlet x = 1;\n```\n",
        "Ünïcödé — “quotes” and emoji 🎉.\n",
        "[spaced link](<https://example.org/a b>)\n",
    ];

    #[test]
    fn normalised_markdown_round_trips() {
        for md in NORMALISED {
            assert_eq!(&from_spans(&to_spans(md)), md, "round trip of {md:?}");
        }
    }

    #[test]
    fn normalised_markdown_round_trips_through_automerge() {
        for md in NORMALISED {
            let spans = through_automerge(&[md]);
            assert_eq!(spans, to_spans(md), "automerge keeps our spans for {md:?}");
            assert_eq!(&from_spans(&spans), md);
        }
    }

    #[test]
    fn update_spans_from_one_text_to_another_gives_the_second() {
        let pairs = [
            ("Agencies must publish fees.\n", "Agencies must publish **all** fees.\n"),
            ("# Old\n\n- a\n- b\n", "## New\n\n1. a\n2. b\n   - c\n\nEnd.\n"),
            ("**bold** text\n", "text *now em*\n"),
            ("See [a](https://a.org).\n", "See [a](https://b.org \"B\") and more.\n"),
            ("> quote\n", "Not a quote any more.\n"),
            ("One.\n\nTwo.\n\nThree.\n", "One.\n\nThree.\n"),
        ];
        for (a, b) in pairs {
            let spans = through_automerge(&[a, b]);
            assert_eq!(spans, to_spans(b), "{a:?} then {b:?}");
            assert_eq!(from_spans(&spans), b);
        }
    }

    #[test]
    fn other_spellings_normalise() {
        let cases = [
            ("_em_ and __strong__\n", "*em* and **strong**\n"),
            // Two adjacent lists of one kind are one list in the spans.
            ("* a\n+ b\n", "- a\n- b\n"),
            ("* a\n* b\n\n\n* c\n", "- a\n- b\n- c\n"),
            ("3. a\n4. b\n", "1. a\n2. b\n"),
            ("Title\n=====\n\nSub\n---\n", "# Title\n\n## Sub\n"),
            ("soft\nbreak\n", "soft break\n"),
            ("hard  \nbreak\n", "hard\\\nbreak\n"),
            ("** spaced **\n", "\\*\\* spaced \\*\\*\n"),
            ("`code` stays text\n", "code stays text\n"),
            ("<https://example.org>\n", "[https://example.org](https://example.org)\n"),
            ("[ref][r]\n\n[r]: https://r.org\n", "[ref](https://r.org)\n"),
            ("    indented code\n", "```\nindented code\n```\n"),
            ("a\n\n---\n\nb\n", "a\n\nb\n"),
            ("![alt text](pic.png)\n", "alt text\n"),
            ("&amp; &copy;\n", "& ©\n"),
        ];
        for (input, expected) in cases {
            assert_eq!(from_spans(&to_spans(input)), expected, "normalising {input:?}");
        }
    }

    #[test]
    fn normalising_is_idempotent_on_odd_input() {
        let odd = [
            "<div>\n*html*\n</div>\n",
            "| a | b |\n|---|---|\n| 1 | 2 |\n",
            "- [ ] task\n",
            "> - quoted item\n>   - nested\n",
            "1. > quote in item\n",
            "- \n- \n",
            "***\n",
            "**unclosed\n",
            "[link with `code`](https://x.org)\n",
            "# heading with trailing #s ##\n",
            "```rust\ncode with ``` inside\n```\n",
            "x\u{fffc}y\n",
            "\n\n\n",
            "\\",
            "- a\n\n  b\n\n  c\n- d\n",
        ];
        for input in odd {
            let once = from_spans(&to_spans(input));
            let twice = from_spans(&to_spans(&once));
            assert_eq!(once, twice, "idempotence for {input:?}");
        }
    }

    #[test]
    fn block_markers_match_prosemirror() {
        let spans = to_spans("## Head\n\n- a\n  1. b\n\n> q\n");
        let blocks: Vec<&hydrate::Map> = spans
            .iter()
            .filter_map(|s| match s {
                Span::Block(m) => Some(m),
                Span::Text { .. } => None,
            })
            .collect();
        let kind = |m: &hydrate::Map| m.get("type").and_then(scalar_str).unwrap_or_default();
        let parents = |m: &hydrate::Map| match m.get("parents") {
            Some(hydrate::Value::List(l)) => l.iter().filter_map(|v| scalar_str(&v.value)).collect::<Vec<_>>(),
            _ => Vec::new(),
        };
        assert_eq!(blocks.len(), 4);
        assert_eq!(kind(blocks[0]), "heading");
        assert_eq!(
            blocks[0].get("attrs"),
            Some(&hydrate::Value::Map(HashMap::from([("level", hydrate::Value::Scalar(ScalarValue::Int(2)))]).into()))
        );
        assert_eq!(blocks[0].get("isEmbed"), Some(&hydrate::Value::Scalar(ScalarValue::Boolean(false))));
        assert!(matches!(blocks[0].get("type"), Some(hydrate::Value::Scalar(ScalarValue::Str(_)))));
        assert_eq!((kind(blocks[1]), parents(blocks[1])), ("unordered-list-item".to_owned(), vec![]));
        assert_eq!(
            (kind(blocks[2]), parents(blocks[2])),
            ("ordered-list-item".to_owned(), vec!["unordered-list-item".to_owned()])
        );
        assert_eq!((kind(blocks[3]), parents(blocks[3])), ("paragraph".to_owned(), vec!["blockquote".to_owned()]));
    }

    #[test]
    fn marks_match_prosemirror() {
        let spans = to_spans("**b** *e* [l](https://x.org)");
        let marks: Vec<Vec<(String, ScalarValue)>> = spans
            .iter()
            .filter_map(|s| match s {
                Span::Text { marks: Some(m), .. } => {
                    Some(m.iter().map(|(k, v)| (k.to_owned(), v.clone())).collect())
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            marks,
            vec![
                vec![("strong".to_owned(), ScalarValue::Boolean(true))],
                vec![("em".to_owned(), ScalarValue::Boolean(true))],
                vec![("link".to_owned(), ScalarValue::Str(r#"{"href":"https://x.org","title":null}"#.into()))],
            ]
        );
    }

    fn block(kind: &str, parents: &[&str], level: Option<i64>) -> Span {
        let mut attrs: HashMap<&str, hydrate::Value> = HashMap::new();
        if let Some(level) = level {
            attrs.insert("level", hydrate::Value::Scalar(ScalarValue::F64(level as f64)));
        }
        let mut map: HashMap<&str, hydrate::Value> = HashMap::new();
        map.insert("type", str_value(kind));
        map.insert("parents", hydrate::Value::List(parents.iter().map(|p| str_value(p)).collect::<Vec<_>>().into()));
        map.insert("attrs", hydrate::Value::Map(attrs.into()));
        Span::Block(map.into())
    }

    fn text(t: &str, marks: &[(&str, ScalarValue)]) -> Span {
        let marks = (!marks.is_empty())
            .then(|| Arc::new(marks.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect::<MarkSet>()));
        Span::Text { text: t.to_owned(), marks }
    }

    #[test]
    fn reads_what_the_browser_writes() {
        // As the browser writes them: leading text without a block, a list
        // item whose paragraph is explicit, an image embed, unknown marks, a
        // link whose value is not JSON and a heading level stored as a float.
        let spans = vec![
            text("Leading text", &[]),
            block("heading", &[], Some(3)),
            text("Head", &[]),
            block("unordered-list-item", &[], None),
            block("paragraph", &["unordered-list-item"], None),
            text("item text ", &[("strong", ScalarValue::Boolean(true))]),
            text("commented", &[("comment-123", ScalarValue::Str("x".into()))]),
            block("paragraph", &[], None),
            text("before ", &[]),
            Span::Block(
                HashMap::from([
                    ("type", str_value("image")),
                    ("parents", hydrate::Value::List(vec![str_value("paragraph")].into())),
                    ("attrs", hydrate::Value::Map(HashMap::<&str, hydrate::Value>::new().into())),
                    ("isEmbed", hydrate::Value::Scalar(ScalarValue::Boolean(true))),
                ])
                .into(),
            ),
            text("after", &[("link", ScalarValue::Str("https://plain.org".into()))]),
            block("mystery", &["aside"], None),
            text("unknown block", &[("em", ScalarValue::Null)]),
            block("paragraph", &[], None),
        ];
        assert_eq!(
            from_spans(&spans),
            "Leading text\n\n### Head\n\n- **item text** commented\n\nbefore [after](https://plain.org)\n\nunknown block\n"
        );
        assert_eq!(from_spans_shifted(&spans[1..3], 4), "###### Head\n");
    }

    #[test]
    fn a_list_item_paragraph_without_an_item_marker_is_an_item() {
        // The form in automerge-prosemirror's own traversal tests.
        let spans = vec![
            block("paragraph", &[], None),
            text("Intro", &[]),
            block("paragraph", &["ordered-list-item"], None),
            text("item 1", &[]),
            block("paragraph", &["ordered-list-item"], None),
            text("still item 1", &[]),
            block("ordered-list-item", &[], None),
            text("item 2", &[]),
        ];
        assert_eq!(from_spans(&spans), "Intro\n\n1. item 1\n\n   still item 1\n\n2. item 2\n");
    }

    #[test]
    fn html_is_escaped_and_nested() {
        let html = to_html(
            &to_spans(
                "# T <x>\n\nA & B's \"q\" [ok](https://x.org?a=1&b=2) [bad](javascript:alert(1))\n\n- a\n  1. b\n- c\n\n> q\\\nr\n",
            ),
            2,
        );
        assert_eq!(
            html,
            "<h3>T &lt;x&gt;</h3>\n\
             <p>A &amp; B&#39;s &quot;q&quot; <a href=\"https://x.org?a=1&amp;b=2\">ok</a> bad</p>\n\
             <ul>\n<li>a\n<ol>\n<li>b\n</li>\n</ol>\n</li>\n<li>c\n</li>\n</ul>\n\
             <blockquote>\n<p>q<br>\nr</p>\n</blockquote>\n"
        );
    }

    #[test]
    fn nothing_panics_on_garbage() {
        let inputs = [
            "[", "**", "*a**b*", "<", "&", "&#", "&#x;", "\\\n", "- - - -", "1.", "> > > >", "```", "~~~\n",
            "[a](", "[a]: ", "\u{0}", "#######", "*\n*", "<!-- comment -->", "\t\t- x",
        ];
        for input in inputs {
            let spans = to_spans(input);
            let _ = from_spans(&spans);
            let _ = to_html(&spans, 6);
        }
    }
}
