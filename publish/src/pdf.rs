//! PDF through Typst: a `World` with one main file (the template), one data
//! file (the report as JSON) and Typst's embedded fonts, compiled and
//! exported in memory.

use std::sync::OnceLock;

use konsens_model::report::Report;
use typst::diag::{FileError, FileResult, SourceDiagnostic};
use typst::foundations::{Bytes, Datetime, Duration};
use typst_layout::PagedDocument;
use typst::syntax::{FileId, RootedPath, Source, VirtualPath, VirtualRoot};
use typst::text::{Font, FontBook};
use typst::utils::LazyHash;
use typst::{Library, LibraryExt, World};

use crate::error::PublishError;

/// The layout. It reads `report.json` and never evaluates report text.
const TEMPLATE: &str = include_str!("template.typ");
const MAIN: &str = "/main.typ";
const DATA: &str = "/report.json";

/// The standard library and the fonts, built once per process: parsing the
/// fonts and building the library cost more than a small report's layout.
struct Shared {
    library: LazyHash<Library>,
    book: LazyHash<FontBook>,
    fonts: Vec<Font>,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let fonts: Vec<Font> = typst_assets::fonts().flat_map(|data| Font::iter(Bytes::new(data))).collect();
        Shared {
            library: LazyHash::new(Library::builder().build()),
            book: LazyHash::new(FontBook::from_fonts(&fonts)),
            fonts,
        }
    })
}

fn file_id(path: &str) -> Result<FileId, PublishError> {
    let vpath = VirtualPath::new(path).map_err(|e| PublishError::Typeset(format!("{path}: {e:?}")))?;
    Ok(RootedPath::new(VirtualRoot::Project, vpath).intern())
}

struct ReportWorld {
    shared: &'static Shared,
    main: Source,
    data_id: FileId,
    data: Bytes,
}

impl World for ReportWorld {
    fn library(&self) -> &LazyHash<Library> {
        &self.shared.library
    }

    fn book(&self) -> &LazyHash<FontBook> {
        &self.shared.book
    }

    fn main(&self) -> FileId {
        self.main.id()
    }

    fn source(&self, id: FileId) -> FileResult<Source> {
        if id == self.main.id() {
            Ok(self.main.clone())
        } else {
            Err(FileError::NotSource)
        }
    }

    fn file(&self, id: FileId) -> FileResult<Bytes> {
        if id == self.data_id {
            Ok(self.data.clone())
        } else if id == self.main.id() {
            Ok(Bytes::from_string(self.main.clone()))
        } else {
            Err(FileError::AccessDenied)
        }
    }

    fn font(&self, index: usize) -> Option<Font> {
        self.shared.fonts.get(index).cloned()
    }

    /// The template shows the report's own date; "today" would make the
    /// output depend on the clock.
    fn today(&self, _offset: Option<Duration>) -> Option<Datetime> {
        None
    }
}

fn diagnostics(errors: &[SourceDiagnostic]) -> String {
    errors.iter().map(|e| e.message.to_string()).collect::<Vec<_>>().join("; ")
}

pub(crate) fn render(report: &Report) -> Result<Vec<u8>, PublishError> {
    let json = serde_json::to_vec(report).map_err(|e| PublishError::Typeset(format!("report as JSON: {e}")))?;
    let world = ReportWorld {
        shared: shared(),
        main: Source::new(file_id(MAIN)?, TEMPLATE.to_owned()),
        data_id: file_id(DATA)?,
        data: Bytes::new(json),
    };
    let document =
        typst::compile::<PagedDocument>(&world).output.map_err(|errors| PublishError::Typeset(diagnostics(errors.as_slice())))?;
    typst_pdf::pdf(&document, &typst_pdf::PdfOptions::default())
        .map_err(|errors| PublishError::Typeset(diagnostics(errors.as_slice())))
}
