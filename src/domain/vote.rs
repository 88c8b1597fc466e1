//! What a reporter says about a voter (gender, age bracket, torn ballot) and what the
//! backend accepts after cross-checking, where gender and age may stay `undecided`.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Gender {
    Male,
    Female,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Age {
    Less30,
    Less60,
    More60,
}

impl Gender {
    pub const ALL: [Gender; 2] = [Gender::Male, Gender::Female];
    pub const EXPECTED: &'static str = "must be one of male, female";

    pub fn as_str(self) -> &'static str {
        match self {
            Gender::Male => "male",
            Gender::Female => "female",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

impl Age {
    pub const ALL: [Age; 3] = [Age::Less30, Age::Less60, Age::More60];
    pub const EXPECTED: &'static str = "must be one of less_30, less_60, more_60";

    pub fn as_str(self) -> &'static str {
        match self {
            Age::Less30 => "less_30",
            Age::Less60 => "less_60",
            Age::More60 => "more_60",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// One proposal's (or one verification's) attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VoteAttrs {
    pub gender: Gender,
    pub age: Age,
    pub has_torn: bool,
}

impl VoteAttrs {
    /// The attributes as an audit-log object (no floats, no personal data).
    pub fn to_json(self) -> serde_json::Value {
        serde_json::json!({
            "gender": self.gender.as_str(),
            "age": self.age.as_str(),
            "has_torn": self.has_torn,
        })
    }
}

/// An accepted attribute: a value, or `undecided` when a tie left it open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Decided<T> {
    Value(T),
    Undecided,
}

pub const UNDECIDED: &str = "undecided";

impl Decided<Gender> {
    pub fn as_str(self) -> &'static str {
        match self {
            Decided::Value(g) => g.as_str(),
            Decided::Undecided => UNDECIDED,
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        if s == UNDECIDED {
            Some(Decided::Undecided)
        } else {
            Gender::parse(s).map(Decided::Value)
        }
    }
}

impl Decided<Age> {
    pub fn as_str(self) -> &'static str {
        match self {
            Decided::Value(a) => a.as_str(),
            Decided::Undecided => UNDECIDED,
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        if s == UNDECIDED {
            Some(Decided::Undecided)
        } else {
            Age::parse(s).map(Decided::Value)
        }
    }
}

/// The attributes retained for a counted vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Accepted {
    pub gender: Decided<Gender>,
    pub age: Decided<Age>,
    /// A tie on `has_torn` is accepted as `false`, so it is never undecided.
    pub has_torn: bool,
}

impl fmt::Display for Gender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Age {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_through_their_wire_names() {
        for g in Gender::ALL {
            assert_eq!(Gender::parse(g.as_str()), Some(g));
        }
        for a in Age::ALL {
            assert_eq!(Age::parse(a.as_str()), Some(a));
        }
        assert_eq!(Gender::parse("Male"), None);
        assert_eq!(Age::parse("less_31"), None);
        assert_eq!(Decided::<Gender>::parse("undecided"), Some(Decided::Undecided));
    }
}
