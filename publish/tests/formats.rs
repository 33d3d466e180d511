//! PDF and DOCX of the report fixture (the model's, `#[path]`-included),
//! compared by their text with golden files in `tests/golden/`:
//! the PDF's text as `pdftotext` (Debian's poppler-utils) extracts it, the
//! DOCX's as `word/document.xml` holds it, whitespace normalised. Page 1 of
//! each PDF is rendered (`pdftoppm`) and must show text.
//!
//! After an intended change, regenerate the golden files with
//!
//! ```sh
//! UPDATE_GOLDEN=1 cargo test -p konsens-publish --test formats
//! ```
//!
//! and review the diff.

#[path = "../../protocol/model/tests/support/report_fixture.rs"]
mod fixture;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use konsens_model::report::{self, Language, Report, ReportFormat, ReportKind, ReportOptions};
use konsens_model::schema::{Process, Str};

fn build(process: &Process, kind: ReportKind, language: Language) -> Report {
    let (_, docs) = fixture::documents();
    let recommendations = match kind {
        ReportKind::Final => fixture::as_adopted(&docs),
        ReportKind::Interim => fixture::as_they_are(&docs),
    };
    report::build(process, &recommendations, &ReportOptions { kind, language, date: fixture::REPORT_DATE })
}

fn fixture_report(kind: ReportKind, language: Language) -> Report {
    build(&fixture::documents().0, kind, language)
}

fn normalise(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn check_golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    // Whitespace is normalised; one sentence-ish piece a line keeps diffs readable.
    let actual = normalise(actual).replace(". ", ".\n") + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().expect("golden dir")).expect("create golden dir");
        std::fs::write(&path, &actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}; run with UPDATE_GOLDEN=1 to create it", path.display()));
    assert!(
        normalise(&expected) == normalise(&actual),
        "{name} differs from the golden file; if the change is intended, rerun with UPDATE_GOLDEN=1 \
         and review the diff.\n--- actual ---\n{actual}"
    );
}

fn tool(name: &str) -> Command {
    Command::new(name)
}

/// The text of a PDF, as `pdftotext` reads it.
pub fn pdf_text(pdf: &Path) -> String {
    let out = tool("pdftotext")
        .args(["-enc", "UTF-8"])
        .arg(pdf)
        .arg("-")
        .output()
        .expect("pdftotext runs (apt-get install poppler-utils)");
    assert!(out.status.success(), "pdftotext: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("pdftotext writes UTF-8")
}

/// The share of dark pixels on page 1, rendered at 50 dpi.
fn dark_share_of_first_page(pdf: &Path, dir: &Path) -> f64 {
    let prefix = dir.join("page");
    let status = tool("pdftoppm")
        .args(["-png", "-r", "50", "-f", "1", "-l", "1", "-singlefile"])
        .arg(pdf)
        .arg(&prefix)
        .status()
        .expect("pdftoppm runs");
    assert!(status.success());
    let file = std::fs::File::open(prefix.with_extension("png")).expect("page 1 as PNG");
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("PNG size")];
    let info = reader.next_frame(&mut buf).expect("a frame");
    let channels = info.color_type.samples();
    let pixels = &buf[..info.buffer_size()];
    let total = pixels.len() / channels;
    let dark = pixels.chunks(channels).filter(|p| p.iter().take(3.min(channels)).all(|c| *c < 128)).count();
    dark as f64 / total as f64
}

/// The text of a DOCX: the runs of `word/document.xml`, a paragraph a line.
pub fn docx_text(bytes: &[u8]) -> String {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a DOCX is a zip");
    let mut xml = String::new();
    archive.by_name("word/document.xml").expect("word/document.xml").read_to_string(&mut xml).expect("UTF-8 XML");
    let mut out = String::new();
    let mut rest = xml.as_str();
    while let Some(start) = rest.find('<') {
        let Some(end) = rest[start..].find('>') else { break };
        let tag = &rest[start + 1..start + end];
        rest = &rest[start + end + 1..];
        if tag == "w:t" || tag.starts_with("w:t ") {
            let close = rest.find("</w:t>").expect("closed w:t");
            out.push_str(&rest[..close]);
            rest = &rest[close..];
        } else if tag == "w:tab/" {
            out.push(' ');
        } else if tag == "/w:p" {
            out.push('\n');
        }
    }
    out.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
}

#[test]
fn pdf_text_matches_golden_and_page_one_shows_text() {
    let dir = tempfile::tempdir().expect("temp dir");
    for kind in ReportKind::ALL {
        for language in Language::ALL {
            let report = fixture_report(*kind, *language);
            let pdf = konsens_publish::render(&report, ReportFormat::Pdf).expect("PDF");
            assert!(pdf.starts_with(b"%PDF-"), "a PDF");
            let path = dir.path().join(format!("{kind}-{language}.pdf"));
            std::fs::write(&path, &pdf).expect("write PDF");
            let text = pdf_text(&path);
            check_golden(&format!("report-{kind}-{language}.pdf.txt"), &text);
            let dark = dark_share_of_first_page(&path, dir.path());
            assert!(dark > 0.01, "{kind} {language}: page 1 shows text ({dark:.4} dark)");
        }
    }
}

#[test]
fn docx_text_matches_golden() {
    for kind in ReportKind::ALL {
        for language in Language::ALL {
            let report = fixture_report(*kind, *language);
            let docx = konsens_publish::render(&report, ReportFormat::Docx).expect("DOCX");
            check_golden(&format!("report-{kind}-{language}.docx.txt"), &docx_text(&docx));
        }
    }
}

#[test]
fn report_text_is_data_to_the_template_never_markup() {
    let (mut process, _) = fixture::documents();
    let hostile = "#panic(\"boom\") ] [ \" \\ $x$ <label> @ref // kein Kommentar";
    process.title = Str(hostile.to_owned());
    let report = build(&process, ReportKind::Final, Language::De);
    let pdf = konsens_publish::render(&report, ReportFormat::Pdf).expect("a hostile title still typesets");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("hostile.pdf");
    std::fs::write(&path, pdf).expect("write PDF");
    assert!(normalise(&pdf_text(&path)).contains(&normalise(hostile)), "the title is printed as written");
    let docx = konsens_publish::render(&report, ReportFormat::Docx).expect("DOCX");
    assert!(docx_text(&docx).contains(hostile));
}

#[test]
fn text_formats_come_from_the_model() {
    let report = fixture_report(ReportKind::Final, Language::En);
    let md = konsens_publish::render(&report, ReportFormat::Markdown).expect("Markdown");
    assert_eq!(md, report::render_text(&report, ReportFormat::Markdown).expect("Markdown").into_bytes());
}
