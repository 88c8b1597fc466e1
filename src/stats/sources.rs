//! What the aggregates know of sources: their trust (which proposals count where) and
//! their public display names (the keys of the compatibility forms).

use std::borrow::Cow;
use std::collections::HashMap;

use crate::domain::change::SourceRow;
use crate::domain::crosscheck;
use crate::domain::source::{self, display_names, DisplayNames};

#[derive(Default)]
pub(super) struct SourceBook {
    rows: HashMap<i64, SourceRow>,
    names: DisplayNames,
    /// Bumped when an existing source changes (a name or a status): bodies rendered
    /// before may show stale names or counts.
    pub generation: u64,
}

impl SourceBook {
    pub fn apply(&mut self, row: &SourceRow) {
        match self.rows.get(&row.n) {
            Some(old) if old == row => return,
            // A new source, numbered after every other: it takes its name without renaming anyone.
            None if row.n > self.names.last() => {
                self.names.push(row.n, row.full_name.as_deref(), row.official_org.as_deref());
                self.rows.insert(row.n, row.clone());
                return;
            }
            _ => {}
        }
        self.rows.insert(row.n, row.clone());
        self.names =
            display_names(self.rows.values().map(|r| (r.n, r.full_name.as_deref(), r.official_org.as_deref())));
        self.generation += 1;
    }

    pub fn trusted(&self, n: i64) -> bool {
        self.rows.get(&n).is_some_and(|r| r.status.is_trusted())
    }

    pub fn name(&self, n: i64) -> Cow<'_, str> {
        self.names.get(n).map_or_else(|| Cow::Owned(source::actor(n)), Cow::Borrowed)
    }

    /// The entries whose source counts at an office (section 6: where any source is
    /// trusted, only trusted ones count).
    pub fn counted<'a, T>(&'a self, lasts: &'a HashMap<i64, T>) -> impl Iterator<Item = (i64, &'a T)> + 'a {
        let office_trusted = lasts.keys().any(|n| self.trusted(*n));
        lasts.iter().filter(move |(n, _)| crosscheck::counts(office_trusted, self.trusted(**n))).map(|(n, v)| (*n, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::source::Status;

    fn row(n: i64, status: Status, full_name: Option<&str>) -> SourceRow {
        SourceRow { n, status, full_name: full_name.map(str::to_owned), official_org: None }
    }

    #[test]
    fn a_new_source_keeps_the_generation_and_a_rename_bumps_it() {
        let mut book = SourceBook::default();
        book.apply(&row(1, Status::Unverified, Some("Awa")));
        book.apply(&row(2, Status::Official, Some("Awa")));
        assert_eq!((book.name(1).as_ref(), book.name(2).as_ref(), book.generation), ("Awa", "Awa (2)", 0));
        book.apply(&row(2, Status::Official, Some("Awa")));
        assert_eq!(book.generation, 0);
        book.apply(&row(1, Status::Unverified, Some("Bintou")));
        assert_eq!((book.name(1).as_ref(), book.name(2).as_ref(), book.generation), ("Bintou", "Awa", 1));
        assert_eq!(book.name(9), "source-9");
    }

    #[test]
    fn only_trusted_sources_count_where_one_is_trusted() {
        let mut book = SourceBook::default();
        book.apply(&row(1, Status::Unverified, None));
        book.apply(&row(2, Status::Independent, None));
        let lasts: HashMap<i64, ()> = [(1, ()), (2, ())].into();
        assert_eq!(book.counted(&lasts).map(|(n, _)| n).collect::<Vec<_>>(), [2]);
        let lasts: HashMap<i64, ()> = [(1, ())].into();
        assert_eq!(book.counted(&lasts).map(|(n, _)| n).collect::<Vec<_>>(), [1]);
    }
}
