//! What a shared session lets its viewers do.
use serde::{Deserialize, Serialize};

/// The mode of a share link (`POST /api/sandboxes/{id}/shares {"mode"}`). Stored as its text in
/// `shares.mode`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "sea-orm", derive(sea_orm::DeriveValueType))]
#[cfg_attr(feature = "sea-orm", sea_orm(value_type = "String"))]
pub enum ShareMode {
    /// Viewers watch the owner's terminal; everything they send is dropped by the server.
    #[default]
    View,
    /// Viewers type into the owner's shell too.
    Control,
}

impl ShareMode {
    pub const ALL: [ShareMode; 2] = [ShareMode::View, ShareMode::Control];

    pub fn as_str(self) -> &'static str {
        match self {
            ShareMode::View => "view",
            ShareMode::Control => "control",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// Whether a viewer's keys reach the shell.
    pub fn can_type(self) -> bool {
        self == ShareMode::Control
    }

    /// The badge a viewer's page shows.
    pub fn badge(self) -> &'static str {
        match self {
            ShareMode::View => "View only",
            ShareMode::Control => "You can type",
        }
    }
}

impl std::fmt::Display for ShareMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reads the stored text back (the database's column reader uses it).
impl std::str::FromStr for ShareMode {
    type Err = crate::UnknownWord;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ShareMode::parse(s).ok_or(crate::UnknownWord)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_round_trip_and_are_their_json() {
        for m in ShareMode::ALL {
            assert_eq!(ShareMode::parse(m.as_str()), Some(m));
            assert_eq!(m.as_str().parse::<ShareMode>(), Ok(m));
            assert_eq!(serde_json::to_value(m).ok(), Some(m.as_str().into()));
        }
        assert_eq!(ShareMode::parse("admin"), None);
        assert!(serde_json::from_str::<ShareMode>("\"edit\"").is_err());
        assert!(ShareMode::Control.can_type() && !ShareMode::View.can_type());
    }
}
