//! Request bodies parsed at the edge into typed inputs. Every field at fault is named in
//! the error map (`{"gender": "must be one of male, female"}`); unknown fields are
//! ignored. Once an input is built, the rest of the program trusts it.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::ids::{ElectorId, Index, PartyId, PollOfficeId};
use super::source::Status;
use super::time::{self, Timestamp};
use super::vote::{Age, Gender, VoteAttrs};

pub type FieldErrors = BTreeMap<String, String>;

#[derive(Debug, PartialEq)]
pub enum InputError {
    /// The body is not JSON at all.
    Json,
    /// JSON, but a field is missing, of the wrong type or out of range.
    Fields(FieldErrors),
}

fn one(field: &str, msg: &str) -> InputError {
    InputError::Fields(BTreeMap::from([(field.to_owned(), msg.to_owned())]))
}

/// Parses a body as a JSON object, whatever its content type said.
pub fn object(body: &[u8]) -> Result<Map<String, Value>, InputError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(one("body", "must be a JSON object")),
        Err(_) => Err(InputError::Json),
    }
}

/// Reads fields out of a JSON object, remembering every fault.
pub struct Fields<'a> {
    map: &'a Map<String, Value>,
    errors: FieldErrors,
}

const TEXT_MAX: usize = 200;

impl<'a> Fields<'a> {
    pub fn new(map: &'a Map<String, Value>) -> Self {
        Self { map, errors: FieldErrors::new() }
    }

    fn fail<T>(&mut self, field: &str, msg: &str) -> Option<T> {
        self.errors.insert(field.to_owned(), msg.to_owned());
        None
    }

    /// The field's value, treating JSON `null` as absent.
    fn get(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    fn required_str(&mut self, field: &str) -> Option<&'a str> {
        match self.get(field) {
            None => self.fail(field, "is required"),
            Some(Value::String(s)) => Some(s),
            Some(_) => self.fail(field, "must be a string"),
        }
    }

    /// An optional string; an empty one counts as absent.
    pub fn optional_text(&mut self, field: &str, max: usize) -> Option<String> {
        match self.get(field) {
            None => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) if s.chars().count() > max => {
                self.fail(field, &format!("must be at most {max} characters"))
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => self.fail(field, "must be a string"),
        }
    }

    /// An optional full name or organisation: NFC, without control or format characters.
    pub fn optional_name(&mut self, field: &str) -> Option<String> {
        let text = self.optional_text(field, TEXT_MAX)?;
        match super::source::name_text(&text) {
            Ok(t) => Some(t),
            Err(msg) => self.fail(field, msg),
        }
    }

    pub fn identifier<T>(&mut self, field: &str, parse: fn(&str) -> Result<T, &'static str>) -> Option<T> {
        let s = self.required_str(field)?;
        match parse(s) {
            Ok(v) => Some(v),
            Err(msg) => self.fail(field, msg),
        }
    }

    /// An index from 1 to `max` (`limits.max_index`).
    pub fn index(&mut self, field: &str, max: u32) -> Option<Index> {
        let n = match self.get(field) {
            None => return self.fail(field, "is required"),
            Some(v) => v.as_i64(),
        };
        match n.filter(|n| *n <= i64::from(max)).map(Index::new) {
            Some(Ok(i)) => Some(i),
            _ => self.fail(field, &format!("must be an integer from 1 to {max}")),
        }
    }

    pub fn choice<T>(&mut self, field: &str, parse: fn(&str) -> Option<T>, expected: &str) -> Option<T> {
        let s = match self.get(field) {
            None => return self.fail(field, "is required"),
            Some(Value::String(s)) => s,
            Some(_) => return self.fail(field, expected),
        };
        match parse(s) {
            Some(v) => Some(v),
            None => self.fail(field, expected),
        }
    }

    pub fn optional_choice<T>(&mut self, field: &str, parse: fn(&str) -> Option<T>, expected: &str) -> Option<T> {
        self.get(field)?;
        self.choice(field, parse, expected)
    }

    pub fn bool_or(&mut self, field: &str, default: bool) -> Option<bool> {
        match self.get(field) {
            None => Some(default),
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => self.fail(field, "must be true or false"),
        }
    }

    pub fn optional_timestamp(&mut self, field: &str) -> Option<Timestamp> {
        match self.get(field) {
            None => None,
            Some(Value::String(s)) => match time::parse(s) {
                Some(t) => Some(t),
                None => self.fail(field, "must be an RFC 3339 time"),
            },
            Some(_) => self.fail(field, "must be an RFC 3339 time"),
        }
    }

    pub fn has(&self, field: &str) -> bool {
        self.get(field).is_some()
    }

    pub fn finish<T>(self, value: Option<T>) -> Result<T, InputError> {
        match value {
            Some(v) if self.errors.is_empty() => Ok(v),
            _ => Err(InputError::Fields(self.errors)),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct AuthInput {
    pub elector_id: ElectorId,
    pub poll_office_id: PollOfficeId,
    /// `None` when absent or empty.
    pub password: Option<String>,
}

pub const PASSWORD_MAX: usize = 1024;

impl AuthInput {
    pub fn parse(map: &Map<String, Value>) -> Result<Self, InputError> {
        let mut f = Fields::new(map);
        let elector_id = f.identifier("elector_id", ElectorId::parse);
        let poll_office_id = f.identifier("poll_office_id", PollOfficeId::parse);
        let password = f.optional_text("password", PASSWORD_MAX);
        let v = elector_id.zip(poll_office_id).map(|(elector_id, poll_office_id)| Self {
            elector_id,
            poll_office_id,
            password,
        });
        f.finish(v)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct VoteInput {
    pub index: Index,
    pub attrs: VoteAttrs,
    pub observed_at: Option<Timestamp>,
}

impl VoteInput {
    pub fn parse(map: &Map<String, Value>, max_index: u32) -> Result<Self, InputError> {
        let mut f = Fields::new(map);
        let index = f.index("index", max_index);
        let gender = f.choice("gender", Gender::parse, Gender::EXPECTED);
        let age = f.choice("age", Age::parse, Age::EXPECTED);
        let has_torn = f.bool_or("has_torn", false);
        let observed_at = f.optional_timestamp("observed_at");
        let v = (|| {
            Some(Self {
                index: index?,
                attrs: VoteAttrs { gender: gender?, age: age?, has_torn: has_torn? },
                observed_at,
            })
        })();
        f.finish(v)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct BallotInput {
    pub index: Index,
    pub party_id: PartyId,
}

impl BallotInput {
    pub fn parse(map: &Map<String, Value>, max_index: u32) -> Result<Self, InputError> {
        let mut f = Fields::new(map);
        let index = f.index("index", max_index);
        let party_id = f.identifier("party_id", PartyId::parse);
        let v = index.zip(party_id).map(|(index, party_id)| Self { index, party_id });
        f.finish(v)
    }
}

/// `POST /api/reporters/`.
#[derive(Clone, Debug, PartialEq)]
pub struct NewSource {
    pub elector_id: ElectorId,
    pub status: Status,
    pub full_name: Option<String>,
    pub official_org: Option<String>,
    pub email: Option<String>,
    pub phone_number: Option<String>,
    pub password: Option<String>,
}

impl NewSource {
    pub fn parse(map: &Map<String, Value>) -> Result<Self, InputError> {
        let mut f = Fields::new(map);
        let elector_id = f.identifier("elector_id", ElectorId::parse);
        let status = f.choice("type", Status::parse, Status::EXPECTED);
        let v = (|| {
            Some(Self {
                elector_id: elector_id?,
                status: status?,
                full_name: None,
                official_org: None,
                email: None,
                phone_number: None,
                password: None,
            })
        })();
        let full_name = f.optional_name("full_name");
        let official_org = f.optional_name("official_org");
        let email = f.optional_text("email", TEXT_MAX);
        let phone_number = f.optional_text("phone_number", TEXT_MAX);
        let password = f.optional_text("password", PASSWORD_MAX);
        f.finish(v.map(|s| Self { full_name, official_org, email, phone_number, password, ..s }))
    }
}

/// `PATCH /api/sources/{elector_id}/`: any of these; at least one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SourcePatch {
    pub status: Option<Status>,
    pub password: Option<String>,
    pub full_name: Option<String>,
    pub official_org: Option<String>,
}

impl SourcePatch {
    pub fn parse(map: &Map<String, Value>) -> Result<Self, InputError> {
        let mut f = Fields::new(map);
        let status = f.optional_choice("status", Status::parse, Status::EXPECTED);
        let password = f.optional_text("password", PASSWORD_MAX);
        let full_name = f.optional_name("full_name");
        let official_org = f.optional_name("official_org");
        let any = ["status", "password", "full_name", "official_org"].iter().any(|k| f.has(k));
        if !any {
            return Err(one("body", "give at least one of status, password, full_name, official_org"));
        }
        f.finish(Some(Self { status, password, full_name, official_org }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn fields(err: InputError) -> FieldErrors {
        match err {
            InputError::Fields(f) => f,
            InputError::Json => panic!("expected field errors"),
        }
    }

    #[test]
    fn a_body_that_is_not_json_is_told_apart_from_a_bad_object() {
        assert_eq!(object(b"{nope"), Err(InputError::Json));
        assert!(matches!(object(b"[1]"), Err(InputError::Fields(_))));
        assert!(object(br#"{"a":1}"#).is_ok());
    }

    #[test]
    fn a_vote_defaults_has_torn_to_false_and_ignores_unknown_fields() {
        let v = VoteInput::parse(&map(json!({"index": 3, "gender": "male", "age": "less_30", "extra": 1})), 10_000)
            .unwrap();
        assert_eq!(v.index.get(), 3);
        assert!(!v.attrs.has_torn);
        assert_eq!(v.observed_at, None);
    }

    #[test]
    fn every_bad_vote_field_is_named() {
        let e = fields(
            VoteInput::parse(
                &map(json!({"index": 1.5, "gender": "M", "age": 3, "has_torn": "yes", "observed_at": "noon"})),
                10_000,
            )
            .unwrap_err(),
        );
        assert_eq!(e.keys().collect::<Vec<_>>(), ["age", "gender", "has_torn", "index", "observed_at"]);
        assert_eq!(e["gender"], "must be one of male, female");
        let e = fields(VoteInput::parse(&map(json!({})), 10_000).unwrap_err());
        assert_eq!(e["index"], "is required");
        let e = fields(
            VoteInput::parse(&map(json!({"index": "1", "gender": "male", "age": "less_30"})), 10_000).unwrap_err(),
        );
        assert!(e.contains_key("index"));
        let e = fields(
            VoteInput::parse(&map(json!({"index": 10_001, "gender": "male", "age": "less_30"})), 10_000).unwrap_err(),
        );
        assert_eq!(e["index"], "must be an integer from 1 to 10000");
    }

    #[test]
    fn an_empty_password_is_no_password() {
        let a = AuthInput::parse(&map(json!({"elector_id": "E1", "poll_office_id": "PO-1", "password": ""}))).unwrap();
        assert_eq!(a.password, None);
        let e = fields(AuthInput::parse(&map(json!({"elector_id": "E/1", "poll_office_id": 7}))).unwrap_err());
        assert!(e.contains_key("elector_id") && e.contains_key("poll_office_id"));
    }

    #[test]
    fn a_source_patch_needs_at_least_one_field() {
        assert!(SourcePatch::parse(&map(json!({}))).is_err());
        let p = SourcePatch::parse(&map(json!({"status": "official"}))).unwrap();
        assert_eq!(p.status, Some(Status::Official));
        assert!(SourcePatch::parse(&map(json!({"status": "boss"}))).is_err());
    }

    #[test]
    fn a_new_source_needs_an_id_and_a_type() {
        let s = NewSource::parse(&map(json!({"elector_id": "E1", "type": "official", "full_name": "A B"}))).unwrap();
        assert_eq!(s.status, Status::Official);
        assert_eq!(s.full_name.as_deref(), Some("A B"));
        let e = fields(NewSource::parse(&map(json!({"elector_id": "E1"}))).unwrap_err());
        assert_eq!(e["type"], "is required");
    }
}
