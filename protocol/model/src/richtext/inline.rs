//! Inline content, shared by the Markdown and HTML renderers.


use super::*;

// ---------------------------------------------------------------------------
// Inline content, shared by the Markdown and HTML renderers.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum InlineMark<'a> {
    Link(&'a Link),
    Strong,
    Em,
}

pub(super) fn has_mark(marks: &Marks, mark: InlineMark<'_>) -> bool {
    match mark {
        InlineMark::Link(link) => marks.link.as_ref() == Some(link),
        InlineMark::Strong => marks.strong,
        InlineMark::Em => marks.em,
    }
}

pub(super) trait InlineSink {
    fn open(&mut self, mark: InlineMark<'_>);
    fn close(&mut self, mark: InlineMark<'_>);
    fn text(&mut self, text: &str);
}

/// Turn runs into properly nested open/text/close events. A mark that lasts
/// longer is opened first, so `***a* b**` nests as strong(em(a), b).
pub(super) fn walk_inline(runs: &[Run], sink: &mut dyn InlineSink) {
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
pub(super) fn normalise_runs(runs: &[Run], trim_block: bool) -> Vec<Run> {
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

