//! A list of people to invite, as a facilitator keeps it in a spreadsheet:
//! CSV with a header row naming the columns `name`, `organisation`, `role`
//! and, optionally, `e-mail` (German or English column names and role names
//! alike), separated by semicolons (what Excel writes in Germany) or commas,
//! UTF-8 with or without a byte-order mark.
//!
//! Parsing is all or nothing: [`parse`] returns every invitation, or every
//! problem with its line, so the facilitator fixes the file once instead of
//! finding the next error after each upload. The server parses (the web app
//! and the CLI send the file as it is), so both accept exactly the same files.

use std::collections::BTreeSet;


pub use crate::api::{InvitationRequest, RosterError, RosterProblem};
use crate::schema::MemberRole;

/// More rows than this are refused: a process has about forty organisations,
/// and a file of thousands is a mistake (or an attack on the token store).
pub const MAX_ROWS: usize = 500;

/// One person to invite, with the line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterEntry {
    pub line: usize,
    pub invitation: InvitationRequest,
}

/// A role as people write it: the schema's names, and the German ones the
/// app shows, in a few common forms (any case).
pub fn role_from_name(name: &str) -> Option<MemberRole> {
    let lower = name.trim().to_lowercase();
    match lower.as_str() {
        "participant" | "participants" | "teilnehmende" | "teilnehmender" | "teilnehmer" | "teilnehmerin" | "teilnahme" => {
            Some(MemberRole::Participant)
        }
        "observer" | "observers" | "beobachtende" | "beobachtender" | "beobachter" | "beobachterin" | "beobachtung" => {
            Some(MemberRole::Observer)
        }
        "facilitator" | "facilitators" | "moderation" | "moderator" | "moderatorin" | "moderierende" => Some(MemberRole::Facilitator),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Name,
    Organisation,
    Role,
    Email,
}

fn column(header: &str) -> Option<Column> {
    let lower = header.trim().to_lowercase().replace(['-', '_', ' '], "");
    match lower.as_str() {
        "name" | "person" => Some(Column::Name),
        "organisation" | "organization" | "org" | "institution" => Some(Column::Organisation),
        "role" | "rolle" => Some(Column::Role),
        "email" | "mail" | "emailadresse" => Some(Column::Email),
        _ => None,
    }
}

/// Split CSV text into records of fields (RFC 4180 quoting: `"a;b"`, `""`
/// for a quote), each with the line it starts on. Blank lines are skipped.
fn records(text: &str, separator: char) -> Result<Vec<(usize, Vec<String>)>, RosterError> {
    let mut out = Vec::new();
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut line = 1;
    let mut start = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    field.push('\n');
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.trim().is_empty() => {
                field.clear();
                quoted = true;
            }
            c if c == separator => fields.push(std::mem::take(&mut field)),
            '\r' => {}
            '\n' => {
                fields.push(std::mem::take(&mut field));
                if fields.iter().any(|f| !f.trim().is_empty()) {
                    out.push((start, std::mem::take(&mut fields)));
                }
                fields.clear();
                line += 1;
                start = line;
            }
            _ => field.push(c),
        }
    }
    if quoted {
        return Err(RosterError { line: start, problem: RosterProblem::UnclosedQuote });
    }
    fields.push(field);
    if fields.iter().any(|f| !f.trim().is_empty()) {
        out.push((start, fields));
    }
    Ok(out)
}

/// The separator of the header line: a semicolon if it has more of those
/// than commas (outside quotes), else a comma.
fn separator(text: &str) -> char {
    let header = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let (mut semicolons, mut commas, mut quoted) = (0, 0, false);
    for c in header.chars() {
        match c {
            '"' => quoted = !quoted,
            ';' if !quoted => semicolons += 1,
            ',' if !quoted => commas += 1,
            _ => {}
        }
    }
    if semicolons > commas { ';' } else { ',' }
}

/// Every person in a roster, or every problem in it.
pub fn parse(text: &str) -> Result<Vec<RosterEntry>, Vec<RosterError>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let rows = records(text, separator(text)).map_err(|e| vec![e])?;
    let Some(((header_line, header), rows)) = rows.split_first() else {
        return Err(vec![RosterError { line: 1, problem: RosterProblem::Empty }]);
    };
    let columns: Vec<Option<Column>> = header.iter().map(|h| column(h)).collect();
    let index = |wanted: Column| columns.iter().position(|c| *c == Some(wanted));
    let mut errors = Vec::new();
    let mut required = |wanted: Column, name: &str| {
        let found = index(wanted);
        if found.is_none() {
            errors.push(RosterError { line: *header_line, problem: RosterProblem::MissingColumn { column: name.to_owned() } });
        }
        found
    };
    let (name_at, organisation_at, role_at) =
        (required(Column::Name, "name"), required(Column::Organisation, "organisation"), required(Column::Role, "role"));
    let (Some(name_at), Some(organisation_at), Some(role_at)) = (name_at, organisation_at, role_at) else {
        return Err(errors);
    };
    let email_at = index(Column::Email);
    if rows.len() > MAX_ROWS {
        return Err(vec![RosterError { line: rows[MAX_ROWS].0, problem: RosterProblem::TooManyRows { max: MAX_ROWS } }]);
    }
    let mut entries = Vec::new();
    let mut seen: Vec<(String, String, usize)> = Vec::new();
    for (line, fields) in rows {
        let line = *line;
        let get = |i: usize| fields.get(i).map(|f| f.trim()).unwrap_or("");
        let (name, organisation, role) = (get(name_at), get(organisation_at), get(role_at));
        let mut problems = Vec::new();
        if name.is_empty() {
            problems.push(RosterProblem::EmptyName);
        }
        if organisation.is_empty() {
            problems.push(RosterProblem::EmptyOrganisation);
        }
        let role = role_from_name(role);
        if role.is_none() {
            problems.push(RosterProblem::UnknownRole { role: get(role_at).to_owned() });
        }
        let email = email_at.map(get).filter(|e| !e.is_empty());
        if let Some(e) = email
            && !looks_like_email(e)
        {
            problems.push(RosterProblem::BadEmail { value: e.to_owned() });
        }
        let key = (name.to_lowercase(), organisation.to_lowercase());
        if !name.is_empty()
            && let Some((_, _, first)) = seen.iter().find(|(n, o, _)| (n, o) == (&key.0, &key.1))
        {
            problems.push(RosterProblem::Duplicate { name: name.to_owned(), organisation: organisation.to_owned(), first: *first });
        }
        seen.push((key.0, key.1, line));
        match (problems.is_empty(), role) {
            (true, Some(role)) => entries.push(RosterEntry {
                line,
                invitation: InvitationRequest {
                    role,
                    name: name.to_owned(),
                    organisation: organisation.to_owned(),
                    expires_in_days: None,
                    email: email.map(str::to_owned),
                },
            }),
            _ => errors.extend(problems.into_iter().map(|problem| RosterError { line, problem })),
        }
    }
    if errors.is_empty() { Ok(entries) } else { Err(errors) }
}

/// A file's bytes as text: UTF-8 (with or without a byte-order mark) when
/// they are, else Windows-1252, which Excel on German Windows writes for
/// "CSV (Trennzeichen-getrennt)" (its "CSV UTF-8" is the other choice).
pub fn decode_text(bytes: &[u8]) -> String {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return text.to_owned();
    }
    // 0x80–0x9F are Windows-1252's own; the rest is Latin-1.
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž', '\u{8f}', '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜',
        '™', 'š', '›', 'œ', '\u{9d}', 'ž', 'Ÿ',
    ];
    bytes.iter().map(|&b| if (0x80..0xa0).contains(&b) { HIGH[usize::from(b - 0x80)] } else { char::from(b) }).collect()
}

/// Enough of a check to catch a column mix-up (a name in the e-mail column);
/// whether the address works is for the mail server to say.
fn looks_like_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else { return false };
    !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.') && !text.chars().any(char::is_whitespace)
}

/// The distinct organisations of a roster, for a summary line.
pub fn organisations(entries: &[RosterEntry]) -> BTreeSet<&str> {
    entries.iter().map(|e| e.invitation.organisation.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<(usize, RosterProblem)> {
        parse(text).expect_err("invalid").into_iter().map(|e| (e.line, e.problem)).collect()
    }

    #[test]
    fn a_german_excel_file_with_bom_semicolons_and_german_roles_reads() {
        let text = "\u{feff}Name;Organisation;Rolle;E-Mail\r\nAnna Schmidt;Caritas;Teilnehmende;anna@caritas.de\r\n\"Müller; Jörg\";\"Verband \"\"Pflege\"\"\";Beobachtende;\r\nFatma Yılmaz;BMAS;Moderation;\r\n";
        let entries = parse(text).expect("valid");
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].invitation.role, MemberRole::Participant);
        assert_eq!(entries[0].invitation.email.as_deref(), Some("anna@caritas.de"));
        assert_eq!(entries[1].invitation.name, "Müller; Jörg");
        assert_eq!(entries[1].invitation.organisation, "Verband \"Pflege\"");
        assert_eq!(entries[1].invitation.role, MemberRole::Observer);
        assert_eq!(entries[1].invitation.email, None);
        assert_eq!((entries[2].invitation.role, entries[2].line), (MemberRole::Facilitator, 4));
    }

    #[test]
    fn an_english_comma_file_with_columns_in_any_order_reads() {
        let text = "role,organization,name\nparticipant,Union,Bora\n\nObserver,\"Employers, Inc.\",Olga\n";
        let entries = parse(text).expect("valid");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].invitation.organisation, "Employers, Inc.");
        assert_eq!(entries[1].line, 4, "blank lines still count");
    }

    #[test]
    fn every_problem_is_reported_with_its_line_and_nothing_is_invited() {
        let text = "name;organisation;role;email\nAnna;Caritas;Königin;\n;Caritas;participant;\nBora;;observer;not-an-address\nanna;caritas;participant;\n";
        assert_eq!(
            problems(text),
            vec![
                (2, RosterProblem::UnknownRole { role: "Königin".into() }),
                (3, RosterProblem::EmptyName),
                (4, RosterProblem::EmptyOrganisation),
                (4, RosterProblem::BadEmail { value: "not-an-address".into() }),
                (5, RosterProblem::Duplicate { name: "anna".into(), organisation: "caritas".into(), first: 2 }),
            ]
        );
    }

    #[test]
    fn a_header_without_required_columns_or_no_header_is_refused() {
        assert_eq!(
            problems("Name;Firma\nA;B\n"),
            vec![
                (1, RosterProblem::MissingColumn { column: "organisation".into() }),
                (1, RosterProblem::MissingColumn { column: "role".into() })
            ]
        );
        assert_eq!(problems("\u{feff}\n\n"), vec![(1, RosterProblem::Empty)]);
        assert_eq!(problems("name;organisation;role\n\"Anna;Caritas;participant\n"), vec![(2, RosterProblem::UnclosedQuote)]);
    }

    #[test]
    fn a_windows_1252_file_reads_with_its_umlauts() {
        let bytes = b"Name;Organisation;Rolle\r\nJ\xf6rg M\xfcller;Stra\xdfenbau \x80 GmbH;Teilnehmende\r\n";
        let entries = parse(&decode_text(bytes)).expect("valid");
        assert_eq!(entries[0].invitation.name, "Jörg Müller");
        assert_eq!(entries[0].invitation.organisation, "Straßenbau € GmbH");
        assert_eq!(decode_text("\u{feff}Grüße".as_bytes()), "\u{feff}Grüße");
    }

    #[test]
    fn too_many_rows_are_refused() {
        let mut text = String::from("name,organisation,role\n");
        for i in 0..=MAX_ROWS {
            text.push_str(&format!("P{i},O{i},participant\n"));
        }
        assert_eq!(problems(&text), vec![(MAX_ROWS + 2, RosterProblem::TooManyRows { max: MAX_ROWS })]);
    }

    #[test]
    fn problems_travel_as_json_with_a_code() -> Result<(), serde_json::Error> {
        let error = RosterError { line: 3, problem: RosterProblem::UnknownRole { role: "king".into() } };
        assert_eq!(serde_json::to_value(&error)?, serde_json::json!({"line": 3, "problem": "unknown-role", "role": "king"}));
        Ok(())
    }
}
