//! Bad input at scale (issue 10), as properties: whatever bytes arrive, the JSON and CSV
//! parsers answer (a typed value or an error naming the field or line) and never panic;
//! what they accept is exactly what the spec allows.

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use ufrecs::domain::ids::check_identifier;
use ufrecs::domain::input::{object, AuthInput, BallotInput, InputError, NewSource, SourcePatch, VoteInput};
use ufrecs::domain::vote::{Age, Gender};
use ufrecs::import::{parse_parties, parse_poll_offices, ImportError};

/// `limits.max_index` at its default.
const MAX: u32 = 10_000;

/// The spec's identifier rule, written independently of `check_identifier`.
fn allowed(s: &str) -> bool {
    let chars: Vec<char> = s.chars().collect();
    (1..=64).contains(&chars.len())
        && chars.iter().all(|c| c.is_ascii_alphanumeric() || ".-_".contains(*c))
        && chars[0] != '.'
        && !s.contains("..")
}

/// Any JSON value, nested a little.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e12f64..1e12).prop_map(Value::from),
        "[a-zA-Z0-9_.\\- ]{0,10}".prop_map(Value::from),
        prop_oneof![
            Just("male"),
            Just("female"),
            Just("less_30"),
            Just("more_60"),
            Just("PA"),
            Just("2025-08-15T14:02:11Z")
        ]
        .prop_map(Value::from),
        "\\PC{0,70}".prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An object with the fields the inputs read, each present or not, with any value.
fn body() -> impl Strategy<Value = Map<String, Value>> {
    let keys = [
        "index",
        "gender",
        "age",
        "has_torn",
        "observed_at",
        "party_id",
        "elector_id",
        "password",
        "poll_office_id",
        "type",
        "status",
        "full_name",
        "official_org",
        "email",
        "phone_number",
    ];
    prop::collection::vec((prop::sample::select(keys.to_vec()), json_value()), 0..8)
        .prop_map(|pairs| pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

fn fields(e: InputError) -> Vec<String> {
    match e {
        InputError::Json => vec![],
        InputError::Fields(m) => m.into_keys().collect(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn identifiers_are_accepted_exactly_when_the_spec_allows_them(s in prop_oneof!["[a-zA-Z0-9._\\-]{0,70}", "\\PC{0,70}"]) {
        prop_assert_eq!(check_identifier(&s).is_ok(), allowed(&s), "{:?}", s);
    }

    #[test]
    fn any_bytes_are_an_object_or_an_error(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(map) = object(&bytes) {
            let _ = VoteInput::parse(&map, MAX);
        }
    }

    #[test]
    fn every_input_parses_any_object_into_a_value_or_named_faults(map in body()) {
        let named = |r: Result<(), InputError>| match r {
            Ok(()) => true,
            Err(e) => !fields(e).is_empty(),
        };
        prop_assert!(named(VoteInput::parse(&map, MAX).map(|_| ())));
        prop_assert!(named(BallotInput::parse(&map, MAX).map(|_| ())));
        prop_assert!(named(AuthInput::parse(&map).map(|_| ())));
        prop_assert!(named(NewSource::parse(&map).map(|_| ())));
        prop_assert!(named(SourcePatch::parse(&map).map(|_| ())));
        if let Ok(v) = VoteInput::parse(&map, MAX) {
            let index = map["index"].as_i64().unwrap();
            prop_assert!((1..=i64::from(MAX)).contains(&index));
            prop_assert_eq!(i64::from(v.index.get()), index);
            prop_assert_eq!(Some(v.attrs.gender), map["gender"].as_str().and_then(Gender::parse));
            prop_assert_eq!(Some(v.attrs.age), map["age"].as_str().and_then(Age::parse));
        }
        if let Ok(b) = BallotInput::parse(&map, MAX) {
            prop_assert!(allowed(map["party_id"].as_str().unwrap()));
            prop_assert_eq!(i64::from(b.index.get()), map["index"].as_i64().unwrap());
        }
    }

    #[test]
    fn a_valid_vote_always_parses_to_what_was_sent(
        index in 1..=i64::from(MAX), male in any::<bool>(), age in 0..3usize, torn in any::<bool>(),
        extra in "[a-z]{1,6}",
    ) {
        // An unknown key, not one of the vote's own.
        prop_assume!(!["index", "gender", "age", "has_torn"].contains(&extra.as_str()));
        let (g, a) = (if male { "male" } else { "female" }, ["less_30", "less_60", "more_60"][age]);
        let body = json!({"index": index, "gender": g, "age": a, "has_torn": torn, extra: "ignored"});
        let v = VoteInput::parse(body.as_object().unwrap(), MAX).unwrap();
        prop_assert_eq!(i64::from(v.index.get()), index);
        prop_assert_eq!(v.attrs.gender, Gender::parse(g).unwrap());
        prop_assert_eq!(v.attrs.age, Age::parse(a).unwrap());
        prop_assert_eq!(v.attrs.has_torn, torn);
    }

    #[test]
    fn any_bytes_as_a_directory_file_import_or_fail_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse_poll_offices(&bytes[..]);
        let _ = parse_parties(&bytes[..]);
    }

    #[test]
    fn a_directory_file_imports_whole_or_names_its_first_bad_line(
        rows in prop::collection::vec((prop_oneof![4 => "[A-Z]{2}-[0-9]{3}", 1 => "\\PC{0,8}"], "[a-zA-Zé ]{0,12}",
                                       prop_oneof![4 => (0..5000i64).prop_map(|n| n.to_string()), 1 => "[a-z-]{1,3}"]), 0..12),
    ) {
        let mut file = String::from("voters_count,name,identifier,ignored\n");
        for (id, name, count) in &rows {
            file.push_str(&format!("{count},\"{name}\",\"{}\",x\n", id.replace('"', "\"\"")));
        }
        let result = parse_poll_offices(file.as_bytes());
        let mut seen = std::collections::HashSet::new();
        let first_bad = rows.iter().position(|(id, name, count)| {
            !allowed(id.trim()) || name.trim().is_empty() || count.parse::<i64>().is_err() || !seen.insert(id.trim().to_owned())
        });
        match (result, first_bad) {
            (Ok(parsed), None) => prop_assert_eq!(parsed.len(), rows.len()),
            (Err(ImportError::Row { line, .. } | ImportError::Duplicate { line, .. }), Some(i)) => {
                prop_assert_eq!(line, i as u64 + 2, "the header is line 1");
            }
            (other, expected) => prop_assert!(false, "{:?} for {:?} (first bad row {:?})", other, rows, expected),
        }
    }
}
