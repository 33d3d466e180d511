//! Blocks → Markdown.

use std::collections::BTreeMap;

use super::*;

// ---------------------------------------------------------------------------
// Blocks → Markdown.

/// `&` starts a character reference only when followed by `name;`, `#123;`
/// or `#x1F;`; only then does it need escaping.
pub(super) fn looks_like_entity(rest: &str) -> bool {
    let body: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '#').collect();
    !body.is_empty() && rest[body.len()..].starts_with(';')
}

pub(super) fn escape_inline(text: &str, out: &mut String) {
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
pub(super) fn escape_line_start(text: &str, out: &mut String) {
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

pub(super) fn link_destination(href: &str) -> String {
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

pub(super) struct MarkdownInline<'a> {
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

pub(super) fn inline_markdown(runs: &[Run], continuation: &str, one_line: bool) -> String {
    let runs = normalise_runs(runs, true);
    let mut sink = MarkdownInline { out: String::new(), line_start: true, continuation, one_line };
    walk_inline(&runs, &mut sink);
    sink.out
}

pub(super) fn marker_width(kind: ListKind, number: u64) -> usize {
    match kind {
        ListKind::Unordered => 2,
        ListKind::Ordered => number.to_string().len() + 2,
    }
}

pub(super) fn blocks_to_markdown(blocks: &[Block], heading_offset: u8) -> String {
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

pub(super) fn longest_run_of(text: &str, wanted: char) -> usize {
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

