//! Argument values: the closed sets of the domain as `clap::ValueEnum`s, so
//! `--help` lists them and clap refuses anything else (a usage error, exit
//! 2), and document references.
//!
//! `konsens-model` knows nothing of clap; each enum here mirrors one of its
//! enums variant for variant, and a test checks that the names agree.

use anyhow::{Result, anyhow, bail};
use konsens_client::DocRef;
use konsens_model::report::{Language, ReportFormat, ReportKind};
use konsens_model::schema::{MemberRole, Stance, Status};
use konsens_sync::DocumentId;

macro_rules! mirror {
    ($(#[$meta:meta])* $name:ident => $domain:ident { $($(#[$vmeta:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl From<$name> for $domain {
            fn from(value: $name) -> Self {
                match value { $($name::$variant => $domain::$variant),+ }
            }
        }
    };
}

mirror!(
    /// A member's role in a process.
    RoleArg => MemberRole {
        /// Runs the process: workshops, decisions, members.
        Facilitator,
        /// Writes, comments and endorses.
        Participant,
        /// Reads only.
        Observer,
    }
);

mirror!(
    /// An organisation's position on a recommendation.
    StanceArg => Stance {
        /// The organisation supports the recommendation.
        Support,
        /// Supports it with concerns (say which in --note).
        Concerns,
        /// Objects to it.
        Object,
    }
);

mirror!(
    /// Where a recommendation stands.
    StatusArg => Status {
        /// Being written.
        Draft,
        /// Open for discussion in the workshop.
        Discussion,
        /// The workshop agrees; ready for a decision.
        Consensus,
        /// Adopted by the facilitators: the wording is fixed and goes into the report.
        Adopted,
        /// Rejected by the facilitators.
        Rejected,
    }
);

mirror!(
    /// A report format.
    FormatArg => ReportFormat {
        /// Markdown (alias: md).
        #[value(alias = "md")]
        Markdown,
        /// A standalone HTML page.
        Html,
        /// JSON, for further processing.
        Json,
        Pdf,
        Docx,
    }
);

mirror!(
    /// A report's language.
    LanguageArg => Language { De, En }
);

mirror!(
    /// Which report.
    KindArg => ReportKind {
        /// The adopted recommendations at their adopted wording.
        Final,
        /// Every recommendation as it stands, with its status.
        Interim,
    }
);

/// A document argument: `automerge:<id>[#heads]`, a bare id, or `draft:NAME`.
pub fn doc_ref(text: &str) -> Result<DocRef> {
    text.parse::<DocRef>().map_err(|e| anyhow!(e))
}

/// A document argument that must name a current document.
pub fn doc_id(text: &str) -> Result<DocumentId> {
    match doc_ref(text)? {
        DocRef::Doc { id, heads: None } => Ok(id),
        _ => bail!("{text:?} must name a document (automerge:<id>), not a draft or a past version"),
    }
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum;

    use super::*;

    fn names<T: ValueEnum>() -> Vec<String> {
        T::value_variants().iter().filter_map(|v| v.to_possible_value()).map(|p| p.get_name().to_owned()).collect()
    }

    #[test]
    fn argument_names_are_the_domain_names() {
        let domain = |all: &[&str]| all.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(names::<RoleArg>(), domain(&MemberRole::ALL.iter().map(|r| r.as_str()).collect::<Vec<_>>()));
        assert_eq!(names::<StanceArg>(), domain(&Stance::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>()));
        assert_eq!(names::<StatusArg>(), domain(&Status::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>()));
        for format in FormatArg::value_variants() {
            let name = format.to_possible_value().map(|p| p.get_name().to_owned());
            assert_eq!(name.as_deref(), Some(ReportFormat::from(*format).as_str()));
        }
        assert_eq!(FormatArg::from_str("md", false), Ok(FormatArg::Markdown));
        assert_eq!(names::<LanguageArg>(), domain(&Language::ALL.iter().map(|l| l.as_str()).collect::<Vec<_>>()));
        assert_eq!(names::<KindArg>(), domain(&ReportKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>()));
    }
}
