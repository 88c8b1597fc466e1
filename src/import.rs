//! Directory imports (`ufrecs import poll-offices|parties FILE.csv`): CSV with a header
//! row, columns in any order, unknown columns ignored. Re-importing updates rows by
//! identifier. A bad row is reported with its line number and nothing of that file is
//! imported. Parsing is pure; storing is a write operation like any other.

use std::collections::HashMap;
use std::io::Read;

use crate::domain::directory::{OfficeRow, PartyRow};
use crate::domain::ids::{check_identifier, check_poll_office, PartyId, PollOfficeId};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ImportError {
    #[error("line {line}: {message}")]
    Row { line: u64, message: String },
    #[error("the header has no {0} column")]
    MissingColumn(&'static str),
    #[error("line {line}: identifier {id} appears twice")]
    Duplicate { line: u64, id: String },
    #[error("not a CSV file: {0}")]
    Csv(String),
}

const TEXT_MAX: usize = 500;

struct Table {
    columns: HashMap<String, usize>,
    records: Vec<(u64, csv::StringRecord)>,
}

fn read_table(input: impl Read) -> Result<Table, ImportError> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(input);
    let headers = reader.headers().map_err(|e| ImportError::Csv(e.to_string()))?.clone();
    let columns =
        headers.iter().enumerate().map(|(i, h)| (h.trim_start_matches('\u{feff}').to_ascii_lowercase(), i)).collect();
    let mut records = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| match e.position() {
            Some(p) => ImportError::Row { line: p.line(), message: e.to_string() },
            None => ImportError::Csv(e.to_string()),
        })?;
        let line = record.position().map_or(0, |p| p.line());
        if record.iter().all(str::is_empty) {
            continue;
        }
        records.push((line, record));
    }
    Ok(Table { columns, records })
}

impl Table {
    fn field<'r>(&self, record: &'r csv::StringRecord, column: &str) -> Option<&'r str> {
        self.columns.get(column).and_then(|i| record.get(*i)).filter(|s| !s.is_empty())
    }

    fn text(&self, record: &csv::StringRecord, column: &str, line: u64) -> Result<Option<String>, ImportError> {
        match self.field(record, column) {
            Some(s) if s.chars().count() > TEXT_MAX => {
                Err(ImportError::Row { line, message: format!("{column} is longer than {TEXT_MAX} characters") })
            }
            other => Ok(other.map(str::to_owned)),
        }
    }

    fn identifier(
        &self,
        record: &csv::StringRecord,
        line: u64,
        seen: &mut HashMap<String, u64>,
        check: fn(&str) -> Result<(), &'static str>,
    ) -> Result<String, ImportError> {
        let id = self
            .field(record, "identifier")
            .ok_or(ImportError::Row { line, message: "identifier is required".into() })?;
        check(id).map_err(|m| ImportError::Row { line, message: format!("identifier {id:?} {m}") })?;
        if seen.insert(id.to_owned(), line).is_some() {
            return Err(ImportError::Duplicate { line, id: id.to_owned() });
        }
        Ok(id.to_owned())
    }
}

pub fn parse_poll_offices(input: impl Read) -> Result<Vec<OfficeRow>, ImportError> {
    let t = read_table(input)?;
    for c in ["identifier", "name"] {
        if !t.columns.contains_key(c) {
            return Err(ImportError::MissingColumn(c));
        }
    }
    let mut seen = HashMap::new();
    let mut rows = Vec::with_capacity(t.records.len());
    for (line, r) in &t.records {
        let line = *line;
        let identifier = PollOfficeId::parse(&t.identifier(r, line, &mut seen, check_poll_office)?).expect("checked");
        let name = t.text(r, "name", line)?.ok_or(ImportError::Row { line, message: "name is required".into() })?;
        let voters_count = match t.field(r, "voters_count") {
            None => None,
            Some(s) => Some(s.parse::<i64>().ok().filter(|n| *n >= 0).ok_or(ImportError::Row {
                line,
                message: format!("voters_count {s:?} is not a non-negative integer"),
            })?),
        };
        rows.push(OfficeRow {
            identifier,
            name,
            country: t.text(r, "country", line)?,
            state: t.text(r, "state", line)?,
            region: t.text(r, "region", line)?,
            city: t.text(r, "city", line)?,
            county: t.text(r, "county", line)?,
            district: t.text(r, "district", line)?,
            voters_count,
        });
    }
    Ok(rows)
}

pub fn parse_parties(input: impl Read) -> Result<Vec<PartyRow>, ImportError> {
    let t = read_table(input)?;
    if !t.columns.contains_key("identifier") {
        return Err(ImportError::MissingColumn("identifier"));
    }
    let mut seen = HashMap::new();
    let mut rows = Vec::with_capacity(t.records.len());
    for (line, r) in &t.records {
        let line = *line;
        rows.push(PartyRow {
            identifier: PartyId::parse(&t.identifier(r, line, &mut seen, check_identifier)?).expect("checked"),
            party_name: t.text(r, "party_name", line)?,
            candidate_name: t.text(r, "candidate_name", line)?,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_come_in_any_order_and_unknown_ones_are_ignored() {
        let csv = "name,extra,identifier,voters_count\nÉcole Yaoundé,x,CM-1,300\nMairie,y,CM-2,\n";
        let rows = parse_poll_offices(csv.as_bytes()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].name, "École Yaoundé");
        assert_eq!(rows[0].voters_count, Some(300));
        assert_eq!(rows[1].voters_count, None);
        assert_eq!(rows[1].city, None);
    }

    #[test]
    fn a_bad_row_is_reported_with_its_line() {
        let e = parse_poll_offices("identifier,name\nCM-1,A\nCM/2,B\n".as_bytes()).unwrap_err();
        assert!(matches!(e, ImportError::Row { line: 3, .. }), "{e}");
        let e = parse_poll_offices("identifier,name,voters_count\nCM-1,A,many\n".as_bytes()).unwrap_err();
        assert!(e.to_string().starts_with("line 2:"), "{e}");
        let e = parse_poll_offices("identifier,name\nCM-1,A\nCM-1,B\n".as_bytes()).unwrap_err();
        assert_eq!(e, ImportError::Duplicate { line: 3, id: "CM-1".into() });
        let e = parse_poll_offices("identifier\nCM-1\n".as_bytes()).unwrap_err();
        assert_eq!(e, ImportError::MissingColumn("name"));
        let e = parse_poll_offices("identifier,name\nCM-1,\n".as_bytes()).unwrap_err();
        assert!(matches!(e, ImportError::Row { line: 2, .. }));
    }

    #[test]
    fn the_demo_files_parse() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/");
        let offices = parse_poll_offices(std::fs::File::open(format!("{dir}poll-offices-demo.csv")).unwrap()).unwrap();
        assert_eq!(offices.len(), 20);
        assert!(offices.iter().any(|o| o.name.contains('é')), "accents survive");
        let parties = parse_parties(std::fs::File::open(format!("{dir}parties-cm.csv")).unwrap()).unwrap();
        assert_eq!(parties.len(), 10);
    }
}
