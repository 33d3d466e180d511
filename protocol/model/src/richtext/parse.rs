//! Markdown → blocks → spans.

use std::collections::HashMap;
use std::sync::Arc;
use automerge::ScalarValue;
use automerge::hydrate;
use automerge::iter::Span;
use automerge::marks::MarkSet;
use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};
use serde::{Deserialize, Serialize};

use super::*;

// ---------------------------------------------------------------------------
// Markdown → blocks → spans.

#[derive(Default)]
pub(super) struct Builder {
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

pub(super) fn parse_blocks(markdown: &str) -> Vec<Block> {
    let mut builder = Builder::default();
    // Plain CommonMark: no tables or strikethrough, which have no
    // prosemirror counterpart; their syntax stays literal text.
    for event in Parser::new_ext(markdown, Options::empty()) {
        builder.event(event);
    }
    builder.blocks
}

pub(super) fn str_value(s: &str) -> hydrate::Value {
    hydrate::Value::Scalar(ScalarValue::Str(s.into()))
}

pub(super) fn block_marker(kind: BlockKind, parents: &[Container]) -> hydrate::Map {
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
pub(super) struct LinkValue {
    #[serde(default)]
    pub(super) href: Option<String>,
    #[serde(default)]
    pub(super) title: Option<String>,
}

pub(super) fn link_value(link: &Link) -> String {
    let value = LinkValue { href: Some(link.href.clone()), title: link.title.clone() };
    // Serialising two optional strings cannot fail; fall back to the bare
    // href rather than panicking all the same.
    serde_json::to_string(&value).unwrap_or_else(|_| link.href.clone())
}

pub(super) fn mark_set(marks: &Marks) -> Option<Arc<MarkSet>> {
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

pub(super) fn blocks_to_spans(blocks: &[Block]) -> Vec<Span> {
    let mut spans = Vec::new();
    for block in blocks {
        spans.push(Span::Block(block_marker(block.kind, &block.parents)));
        for run in &block.runs {
            spans.push(Span::Text { text: run.text.clone(), marks: mark_set(&run.marks) });
        }
    }
    spans
}

