//! Whose a sandbox, a build or a project is.
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The owner of sandboxes and builds and the maintainer of projects. Stored (and sent) as text:
/// `v:<visitor id>`, `u:<user id>`, `gone:<random>`, `pool` or `catalogue`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "sea-orm", derive(sea_orm::DeriveValueType))]
#[cfg_attr(feature = "sea-orm", sea_orm(value_type = "String"))]
pub enum OwnerKey {
    /// A browser without an account (its signed cookie's id).
    Visitor(String),
    /// An account.
    User(i32),
    /// A deleted account's rows, kept for statistics under a key nothing links back.
    Gone(String),
    /// An unassigned warm-pool member.
    Pool,
    /// The site's starter catalogue (`trythis seed` builds).
    Catalogue,
}

/// Text that is no owner key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadOwnerKey(pub String);

impl std::fmt::Display for BadOwnerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} is no owner key", self.0)
    }
}

impl std::error::Error for BadOwnerKey {}

impl OwnerKey {
    /// The account's id, if this is an account's key.
    pub fn user_id(&self) -> Option<i32> {
        match self {
            OwnerKey::User(id) => Some(*id),
            _ => None,
        }
    }

    pub fn parse(s: &str) -> Result<Self, BadOwnerKey> {
        let bad = || BadOwnerKey(s.to_string());
        let word = |rest: &str| {
            (!rest.is_empty() && !rest.chars().any(|c| c.is_control() || c.is_whitespace()))
                .then(|| rest.to_string())
        };
        if s == "pool" {
            Ok(OwnerKey::Pool)
        } else if s == "catalogue" {
            Ok(OwnerKey::Catalogue)
        } else if let Some(rest) = s.strip_prefix("v:") {
            word(rest).map(OwnerKey::Visitor).ok_or_else(bad)
        } else if let Some(rest) = s.strip_prefix("gone:") {
            word(rest).map(OwnerKey::Gone).ok_or_else(bad)
        } else if let Some(rest) = s.strip_prefix("u:") {
            match rest.parse::<i32>() {
                // Only the canonical spelling, so one account has one key.
                Ok(id) if id.to_string() == rest => Ok(OwnerKey::User(id)),
                _ => Err(bad()),
            }
        } else {
            Err(bad())
        }
    }
}

impl std::fmt::Display for OwnerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OwnerKey::Visitor(id) => write!(f, "v:{id}"),
            OwnerKey::User(id) => write!(f, "u:{id}"),
            OwnerKey::Gone(id) => write!(f, "gone:{id}"),
            OwnerKey::Pool => f.write_str("pool"),
            OwnerKey::Catalogue => f.write_str("catalogue"),
        }
    }
}

impl std::str::FromStr for OwnerKey {
    type Err = BadOwnerKey;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OwnerKey::parse(s)
    }
}

/// Lets a query compare a column with a borrowed key.
#[cfg(feature = "sea-orm")]
impl From<&OwnerKey> for sea_orm::Value {
    fn from(key: &OwnerKey) -> Self {
        key.to_string().into()
    }
}

impl Serialize for OwnerKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for OwnerKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        OwnerKey::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::OwnerKey;

    #[test]
    fn keys_round_trip_through_their_text() {
        for (text, key) in [
            ("v:abc123", OwnerKey::Visitor("abc123".into())),
            ("v:page-cache", OwnerKey::Visitor("page-cache".into())),
            ("u:42", OwnerKey::User(42)),
            ("gone:zz9", OwnerKey::Gone("zz9".into())),
            ("pool", OwnerKey::Pool),
            ("catalogue", OwnerKey::Catalogue),
        ] {
            assert_eq!(OwnerKey::parse(text), Ok(key.clone()));
            assert_eq!(key.to_string(), text);
            assert_eq!(serde_json::to_value(&key).ok(), Some(text.into()));
            assert_eq!(
                serde_json::from_value::<OwnerKey>(text.into()).ok(),
                Some(key)
            );
        }
        assert_eq!(OwnerKey::User(7).user_id(), Some(7));
        assert_eq!(OwnerKey::Visitor("7".into()).user_id(), None);
    }

    #[test]
    fn junk_is_no_key() {
        for junk in [
            "", "v:", "u:", "gone:", "u:abc", "u:07", "u:+7", "u:1 ", "x:1", "pool2", "Pool",
            "v:a b", "v:a\nb", "V:abc", " v:abc",
        ] {
            assert!(OwnerKey::parse(junk).is_err(), "{junk:?}");
        }
        assert!(serde_json::from_value::<OwnerKey>("u:x".into()).is_err());
    }
}
