//! The intermediate model both directions go through: blocks of runs.



// ---------------------------------------------------------------------------
// The intermediate model both directions go through.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum ListKind {
    Ordered,
    Unordered,
}

impl ListKind {
    pub(super) fn block_type(self) -> &'static str {
        match self {
            ListKind::Ordered => "ordered-list-item",
            ListKind::Unordered => "unordered-list-item",
        }
    }
}

/// What a block is nested in; the `parents` of its block marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Container {
    Quote,
    Item(ListKind),
}

impl Container {
    pub(super) fn block_type(self) -> &'static str {
        match self {
            Container::Quote => "blockquote",
            Container::Item(kind) => kind.block_type(),
        }
    }

    pub(super) fn from_block_type(name: &str) -> Option<Self> {
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
pub(super) enum BlockKind {
    Paragraph,
    Heading(u8),
    Item(ListKind),
    Code,
}

impl BlockKind {
    pub(super) fn block_type(self) -> &'static str {
        match self {
            BlockKind::Paragraph => "paragraph",
            BlockKind::Heading(_) => "heading",
            BlockKind::Item(kind) => kind.block_type(),
            BlockKind::Code => "code-block",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Link {
    pub(super) href: String,
    pub(super) title: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Marks {
    pub(super) strong: bool,
    pub(super) em: bool,
    pub(super) link: Option<Link>,
}

#[derive(Debug, Clone)]
pub(super) struct Run {
    pub(super) text: String,
    pub(super) marks: Marks,
}

#[derive(Debug, Clone)]
pub(super) struct Block {
    pub(super) kind: BlockKind,
    pub(super) parents: Vec<Container>,
    pub(super) runs: Vec<Run>,
}

impl Block {
    pub(super) fn new(kind: BlockKind, parents: Vec<Container>) -> Self {
        Block { kind, parents, runs: Vec::new() }
    }

    /// Append text, merging with the previous run when the marks agree, so
    /// that the spans are in the canonical form Automerge itself returns.
    pub(super) fn push(&mut self, text: &str, marks: Marks) {
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

    pub(super) fn is_blank(&self) -> bool {
        self.runs.iter().all(|r| r.text.trim().is_empty())
    }

    pub(super) fn trim_end_newlines(&mut self) {
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

