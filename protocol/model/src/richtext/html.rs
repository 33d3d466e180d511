//! Blocks → HTML.


use super::*;

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

pub(super) fn safe_href(href: &str) -> bool {
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

pub(super) struct HtmlInline {
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

pub(super) fn inline_html(runs: &[Run]) -> String {
    let runs = normalise_runs(runs, true);
    let mut sink = HtmlInline { out: String::new() };
    walk_inline(&runs, &mut sink);
    sink.out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HtmlOpen {
    Quote,
    List(ListKind),
    Item,
}

pub(super) fn close_html(element: HtmlOpen, out: &mut String) {
    out.push_str(match element {
        HtmlOpen::Quote => "</blockquote>\n",
        HtmlOpen::List(ListKind::Ordered) => "</ol>\n",
        HtmlOpen::List(ListKind::Unordered) => "</ul>\n",
        HtmlOpen::Item => "</li>\n",
    });
}

pub(super) fn blocks_to_html(blocks: &[Block], heading_offset: u8) -> String {
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

