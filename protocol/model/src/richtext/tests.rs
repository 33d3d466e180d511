use super::*;
use std::collections::HashMap;
use std::sync::Arc;
use automerge::marks::MarkSet;
use automerge::{ScalarValue, hydrate};
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
