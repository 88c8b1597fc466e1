//! How the domain's typed values are stored in and read from columns: identifiers as
//! their text (checked again when read, so a row an integrator edited by hand cannot bring
//! an invalid identifier into memory), timestamps as RFC 3339 text with second precision.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::Row;

use crate::domain::ids::{ElectorId, PartyId, PollOfficeId};
use crate::domain::time::{self, Timestamp};

macro_rules! identifier_column {
    ($name:ident, $read:path) => {
        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                $read(value.as_str()?).map_err(|e| FromSqlError::Other(e.into()))
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }
    };
}

identifier_column!(ElectorId, ElectorId::parse);
identifier_column!(PollOfficeId, PollOfficeId::stored);
identifier_column!(PartyId, PartyId::parse);

/// A text column that may be NULL, read in place (no copy).
pub fn opt_text<'r>(r: &'r Row, i: usize) -> rusqlite::Result<Option<&'r str>> {
    r.get_ref(i)?
        .as_str_or_null()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e)))
}

/// A text column, read in place.
pub fn text<'r>(r: &'r Row, i: usize) -> rusqlite::Result<&'r str> {
    opt_text(r, i)?.ok_or_else(|| rusqlite::Error::InvalidColumnType(i, "NULL".into(), rusqlite::types::Type::Null))
}

/// A timestamp column.
pub fn timestamp(r: &Row, i: usize) -> rusqlite::Result<Timestamp> {
    opt_timestamp(r, i)?.ok_or_else(|| not_a_time(i, "NULL"))
}

/// A timestamp column that may be NULL (read in place: no copy of its text).
pub fn opt_timestamp(r: &Row, i: usize) -> rusqlite::Result<Option<Timestamp>> {
    match opt_text(r, i)? {
        None => Ok(None),
        Some(text) => time::parse(text).map(Some).ok_or_else(|| not_a_time(i, text)),
    }
}

fn not_a_time(i: usize, text: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, format!("not a timestamp: {text}").into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_times_round_trip_and_bad_rows_are_refused() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let office = PollOfficeId::parse("PO-1").unwrap();
        let back: PollOfficeId = conn.query_row("SELECT ?1", [&office], |r| r.get(0)).unwrap();
        assert_eq!(back, office);
        assert!(conn.query_row("SELECT 'a/b'", [], |r| r.get::<_, PollOfficeId>(0)).is_err());
        // An office stored before a name was reserved still loads.
        assert!(conn.query_row("SELECT 'backups'", [], |r| r.get::<_, PollOfficeId>(0)).is_ok());
        let at = conn.query_row("SELECT '2025-08-15T14:02:11Z'", [], |r| timestamp(r, 0)).unwrap();
        assert_eq!(time::format(at), "2025-08-15T14:02:11Z");
        assert!(conn.query_row("SELECT 'soon'", [], |r| timestamp(r, 0)).is_err());
        assert_eq!(conn.query_row("SELECT NULL", [], |r| opt_timestamp(r, 0)).unwrap(), None);
    }
}
