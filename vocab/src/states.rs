//! The life cycles of a sandbox, a build and a project: stored as text, typed here, and with the
//! allowed moves in one table each. The database writes through `comes_from` (a compare-and-set
//! in SQL, `db::states`), so a late writer can never move a finished record back.
use serde::{Deserialize, Serialize};

/// A Try's sandbox.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(
    feature = "sea-orm",
    derive(sea_orm::EnumIter, sea_orm::DeriveActiveEnum),
    sea_orm(
        rs_type = "String",
        db_type = "String(sea_orm::sea_query::StringLen::None)"
    )
)]
#[serde(rename_all = "lowercase")]
pub enum SandboxState {
    /// Row written, container being created and started.
    #[cfg_attr(feature = "sea-orm", sea_orm(string_value = "starting"))]
    Starting,
    /// The shell answers.
    #[cfg_attr(feature = "sea-orm", sea_orm(string_value = "ready"))]
    Ready,
    /// Being removed.
    #[cfg_attr(feature = "sea-orm", sea_orm(string_value = "stopping"))]
    Stopping,
    #[cfg_attr(feature = "sea-orm", sea_orm(string_value = "ended"))]
    Ended,
    /// Never became ready.
    #[cfg_attr(feature = "sea-orm", sea_orm(string_value = "failed"))]
    Failed,
}

impl SandboxState {
    /// Every state, in the order of a life.
    pub const ALL: [Self; 5] = [
        Self::Starting,
        Self::Ready,
        Self::Stopping,
        Self::Ended,
        Self::Failed,
    ];

    /// The state of its stored (and JSON) text.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// The states a sandbox may move to `self` from.
    pub fn comes_from(self) -> &'static [Self] {
        use SandboxState::*;
        match self {
            Starting => &[],
            Ready => &[Starting],
            Stopping => &[Starting, Ready],
            Ended => &[Starting, Ready, Stopping],
            Failed => &[Starting, Stopping],
        }
    }

    pub fn can_become(self, next: Self) -> bool {
        next.comes_from().contains(&self)
    }

    /// Holds a container (or is about to).
    pub fn is_running(self) -> bool {
        matches!(self, Self::Starting | Self::Ready)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Ready => "ready",
            Self::Stopping => "stopping",
            Self::Ended => "ended",
            Self::Failed => "failed",
        }
    }
}

/// A build of a project's image.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(
    feature = "sea-orm",
    derive(sea_orm::EnumIter, sea_orm::DeriveActiveEnum),
    sea_orm(
        rs_type = "String",
        db_type = "String(sea_orm::sea_query::StringLen::None)"
    )
)]
#[serde(rename_all = "lowercase")]
pub enum BuildState {
    #[cfg_attr(feature = "sea-orm", sea_orm(string_value = "queued"))]
    Queued,
    #[cfg_attr(feature = "sea-orm", sea_orm(string_value = "running"))]
    Running,
    #[cfg_attr(feature = "sea-orm", sea_orm(string_value = "pushing"))]
    Pushing,
    /// Pushed and pulled; its smoke check runs in a sandbox of the new image.
    #[cfg_attr(feature = "sea-orm", sea_orm(string_value = "checking"))]
    Checking,
    #[cfg_attr(feature = "sea-orm", sea_orm(string_value = "succeeded"))]
    Succeeded,
    #[cfg_attr(feature = "sea-orm", sea_orm(string_value = "failed"))]
    Failed,
    #[cfg_attr(feature = "sea-orm", sea_orm(string_value = "cancelled"))]
    Cancelled,
}

impl BuildState {
    /// Every state, in the order of a life.
    pub const ALL: [Self; 7] = [
        Self::Queued,
        Self::Running,
        Self::Pushing,
        Self::Checking,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
    ];

    /// The state of its stored (and JSON) text.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    pub fn comes_from(self) -> &'static [Self] {
        use BuildState::*;
        match self {
            Queued => &[],
            Running => &[Queued],
            Pushing => &[Running],
            Checking => &[Pushing],
            // Straight from pushing when the build declares no smoke check.
            Succeeded => &[Pushing, Checking],
            // A restart fails builds it interrupted, queued ones included.
            Failed | Cancelled => &[Queued, Running, Pushing, Checking],
        }
    }

    pub fn can_become(self, next: Self) -> bool {
        next.comes_from().contains(&self)
    }

    pub fn is_finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Pushing => "pushing",
            Self::Checking => "checking",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// A project in the catalogue.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(
    feature = "sea-orm",
    derive(sea_orm::EnumIter, sea_orm::DeriveActiveEnum),
    sea_orm(
        rs_type = "String",
        db_type = "String(sea_orm::sea_query::StringLen::None)"
    )
)]
#[serde(rename_all = "lowercase")]
pub enum ProjectStatus {
    /// Its first image is being built: not in the catalogue yet.
    #[cfg_attr(feature = "sea-orm", sea_orm(string_value = "building"))]
    Building,
    /// Has an image and is listed.
    #[cfg_attr(feature = "sea-orm", sea_orm(string_value = "live"))]
    Live,
    /// Its first build failed.
    #[cfg_attr(feature = "sea-orm", sea_orm(string_value = "failed"))]
    Failed,
    /// Hidden by an admin (or its maintainer's account was deleted).
    #[cfg_attr(feature = "sea-orm", sea_orm(string_value = "hidden"))]
    Hidden,
}

impl ProjectStatus {
    /// Every state, in the order of a life.
    pub const ALL: [Self; 4] = [Self::Building, Self::Live, Self::Failed, Self::Hidden];

    /// The state of its stored (and JSON) text.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    pub fn comes_from(self) -> &'static [Self] {
        use ProjectStatus::*;
        match self {
            // A failed first build is retried.
            Building => &[Failed],
            // A build succeeded, or an admin shows it (a hidden project stays hidden when its
            // maintainer rebuilds: `projects::set_image`).
            Live => &[Building, Failed, Hidden],
            Failed => &[Building],
            Hidden => &[Building, Live, Failed],
        }
    }

    pub fn can_become(self, next: Self) -> bool {
        next.comes_from().contains(&self)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Building => "building",
            Self::Live => "live",
            Self::Failed => "failed",
            Self::Hidden => "hidden",
        }
    }
}

impl std::fmt::Display for SandboxState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for BuildState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for ProjectStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every allowed move, written out: the table above must equal this list exactly.
    #[test]
    fn sandbox_moves() {
        use SandboxState::*;
        let allowed = [
            (Starting, Ready),
            (Starting, Stopping),
            (Starting, Ended),
            (Starting, Failed),
            (Ready, Stopping),
            (Ready, Ended),
            (Stopping, Ended),
            (Stopping, Failed),
        ];
        for from in SandboxState::ALL {
            for to in SandboxState::ALL {
                assert_eq!(
                    from.can_become(to),
                    allowed.contains(&(from, to)),
                    "{from} → {to}"
                );
            }
        }
    }

    #[test]
    fn build_moves() {
        use BuildState::*;
        let allowed = [
            (Queued, Running),
            (Queued, Failed),
            (Queued, Cancelled),
            (Running, Pushing),
            (Running, Failed),
            (Running, Cancelled),
            (Pushing, Checking),
            (Pushing, Succeeded),
            (Pushing, Failed),
            (Pushing, Cancelled),
            (Checking, Succeeded),
            (Checking, Failed),
            (Checking, Cancelled),
        ];
        for from in BuildState::ALL {
            for to in BuildState::ALL {
                assert_eq!(
                    from.can_become(to),
                    allowed.contains(&(from, to)),
                    "{from} → {to}"
                );
            }
            // A finished build never moves again.
            assert!(
                !from.is_finished() || BuildState::ALL.into_iter().all(|to| !from.can_become(to))
            );
        }
    }

    #[test]
    fn project_moves() {
        use ProjectStatus::*;
        let allowed = [
            (Building, Live),
            (Building, Failed),
            (Building, Hidden),
            (Failed, Building),
            (Failed, Live),
            (Failed, Hidden),
            (Live, Hidden),
            (Hidden, Live),
        ];
        for from in ProjectStatus::ALL {
            for to in ProjectStatus::ALL {
                assert_eq!(
                    from.can_become(to),
                    allowed.contains(&(from, to)),
                    "{from} → {to}"
                );
            }
        }
    }

    #[test]
    fn the_text_is_the_json_and_parses_back() {
        for s in SandboxState::ALL {
            assert_eq!(serde_json::to_value(s).ok(), Some(s.as_str().into()));
            assert_eq!(SandboxState::parse(s.as_str()), Some(s));
        }
        for s in BuildState::ALL {
            assert_eq!(serde_json::to_value(s).ok(), Some(s.as_str().into()));
            assert_eq!(BuildState::parse(s.as_str()), Some(s));
        }
        for s in ProjectStatus::ALL {
            assert_eq!(serde_json::to_value(s).ok(), Some(s.as_str().into()));
            assert_eq!(ProjectStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(SandboxState::parse("running"), None);
    }
}
