//! Spans → blocks.

use std::sync::Arc;
use automerge::ScalarValue;
use automerge::hydrate;
use automerge::iter::Span;
use automerge::marks::MarkSet;

use super::*;

// ---------------------------------------------------------------------------
// Spans → blocks.

pub(super) fn scalar_str(value: &hydrate::Value) -> Option<String> {
    match value {
        hydrate::Value::Scalar(ScalarValue::Str(s)) => Some(s.to_string()),
        // Tolerate a writer that stored a Text object where a string belongs.
        hydrate::Value::Text(t) => Some(String::from(t)),
        _ => None,
    }
}

pub(super) fn read_block(map: &hydrate::Map) -> Option<Block> {
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

pub(super) fn truthy(value: &ScalarValue) -> bool {
    !matches!(value, ScalarValue::Null | ScalarValue::Boolean(false))
}

pub(super) fn read_link(value: &ScalarValue) -> Option<Link> {
    let ScalarValue::Str(s) = value else { return None };
    let (href, title) = match serde_json::from_str::<LinkValue>(s) {
        Ok(v) => (v.href.unwrap_or_default(), v.title),
        // Not JSON: take the whole string as the target rather than lose it.
        Err(_) => (s.to_string(), None),
    };
    (!href.is_empty()).then(|| Link { href, title: title.filter(|t| !t.is_empty()) })
}

pub(super) fn read_marks(marks: Option<&Arc<MarkSet>>) -> Marks {
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

pub(super) fn spans_to_blocks(spans: &[Span]) -> Vec<Block> {
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

