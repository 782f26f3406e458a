//! Small closed sets: an account's role, what happens to a leaving account's projects, and what a
//! mailed link is.
use serde::{Deserialize, Serialize};

/// What an account may do. Stored as its text in `users.role`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "sea-orm", derive(sea_orm::DeriveValueType))]
#[cfg_attr(feature = "sea-orm", sea_orm(value_type = "String"))]
pub enum Role {
    #[default]
    User,
    Admin,
}

impl Role {
    pub const ALL: [Role; 2] = [Role::User, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// What becomes of a leaving account's projects (`POST /api/me/delete {projects}`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProjectFate {
    /// Hidden from the catalogue (admins can bring them back).
    #[default]
    Hide,
    /// Given to the account of another address, when there is one (else hidden).
    HandOver,
}

impl ProjectFate {
    pub const ALL: [ProjectFate; 2] = [ProjectFate::Hide, ProjectFate::HandOver];

    pub fn as_str(self) -> &'static str {
        match self {
            ProjectFate::Hide => "hide",
            ProjectFate::HandOver => "hand_over",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

/// What a mailed link is for (`GET /api/auth/link`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    Signup,
    Reset,
    Verify,
}

impl LinkKind {
    pub const ALL: [LinkKind; 3] = [LinkKind::Signup, LinkKind::Reset, LinkKind::Verify];

    pub fn as_str(self) -> &'static str {
        match self {
            LinkKind::Signup => "signup",
            LinkKind::Reset => "reset",
            LinkKind::Verify => "verify",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Whether a mailed link can still be used.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    Valid,
    Used,
    Expired,
}

macro_rules! display_as_str {
    ($($t:ty),*) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}
display_as_str!(Role, ProjectFate, LinkKind);

/// Reads the stored text back (the database's column reader uses it).
impl std::str::FromStr for Role {
    type Err = UnknownWord;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::parse(s).ok_or(UnknownWord)
    }
}

/// A stored word this build does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownWord;

impl std::fmt::Display for UnknownWord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not a known word")
    }
}

impl std::error::Error for UnknownWord {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_are_their_json() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
            assert_eq!(serde_json::to_value(r).ok(), Some(r.as_str().into()));
        }
        for f in ProjectFate::ALL {
            assert_eq!(ProjectFate::parse(f.as_str()), Some(f));
            assert_eq!(serde_json::to_value(f).ok(), Some(f.as_str().into()));
        }
        for k in LinkKind::ALL {
            assert_eq!(LinkKind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).ok(), Some(k.as_str().into()));
        }
        assert_eq!(Role::parse("root"), None);
        assert_eq!(
            serde_json::to_value(LinkState::Expired).ok(),
            Some("expired".into())
        );
    }
}
