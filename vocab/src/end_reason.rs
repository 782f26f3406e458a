//! Why a sandbox ended: one variant per event, one stored spelling each.
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a sandbox ended. Stored in `sandboxes.end_reason` and sent as its spelling (`as_str`);
/// pages show `sentence()`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "sea-orm", derive(sea_orm::DeriveValueType))]
#[cfg_attr(feature = "sea-orm", sea_orm(value_type = "String"))]
pub enum EndReason {
    /// Its owner started another Try, which replaced it.
    Replaced,
    /// Its owner pressed Stop.
    StoppedByOwner,
    /// An admin stopped it.
    StoppedByAdmin,
    /// An admin banned its owner.
    OwnerBanned,
    /// Its owner deleted their account.
    AccountDeleted,
    /// Its project was deleted (by the maintainer or an admin).
    ProjectDeleted,
    /// Its time ran out.
    Expired,
    /// Nobody typed in it for the idle timeout.
    Idle,
    /// It used more memory than its limit (under gVisor, files count too).
    OutOfMemory,
    /// Its processes ended by themselves.
    Exited,
    /// A stop that had not finished, completed by the reaper.
    Stopped,
    /// It did not become ready in time.
    StartTimedOut,
    /// Its launch failed (the error is in the server's log).
    LaunchFailed,
    /// A warm-pool member the pool no longer needed.
    PoolNotNeeded,
    /// The server shut down (warm-pool members, tests, benchmarks).
    ServerStopping,
    /// The server restarted before it was ready.
    ServerRestarted,
    /// Its container was gone when the server restarted.
    ContainerLost,
    /// The machine (sandbox node) running it stopped or left the cluster.
    NodeLost,
    /// A reason this build does not know (written by a newer server).
    Other,
}

impl EndReason {
    pub const ALL: [EndReason; 19] = [
        EndReason::Replaced,
        EndReason::StoppedByOwner,
        EndReason::StoppedByAdmin,
        EndReason::OwnerBanned,
        EndReason::AccountDeleted,
        EndReason::ProjectDeleted,
        EndReason::Expired,
        EndReason::Idle,
        EndReason::OutOfMemory,
        EndReason::Exited,
        EndReason::Stopped,
        EndReason::StartTimedOut,
        EndReason::LaunchFailed,
        EndReason::PoolNotNeeded,
        EndReason::ServerStopping,
        EndReason::ServerRestarted,
        EndReason::ContainerLost,
        EndReason::NodeLost,
        EndReason::Other,
    ];

    /// Spellings older servers stored, with what they meant. A failed launch stored its error's
    /// text, so any other text on a failed sandbox is `LaunchFailed` (the migration does that).
    pub const OLD_SPELLINGS: [(&'static str, EndReason); 12] = [
        ("stopped by owner", EndReason::StoppedByOwner),
        ("stopped by admin", EndReason::StoppedByAdmin),
        ("admin_stopped", EndReason::StoppedByAdmin),
        ("time limit", EndReason::Expired),
        ("out of memory", EndReason::OutOfMemory),
        ("its processes ended", EndReason::Exited),
        ("start timed out", EndReason::StartTimedOut),
        ("pool member not needed", EndReason::PoolNotNeeded),
        ("server stopping", EndReason::ServerStopping),
        ("server restarted", EndReason::ServerRestarted),
        ("container lost", EndReason::ContainerLost),
        ("test over", EndReason::ServerStopping),
    ];

    /// The stored spelling (also the JSON value).
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Replaced => "replaced",
            EndReason::StoppedByOwner => "stopped_by_owner",
            EndReason::StoppedByAdmin => "stopped_by_admin",
            EndReason::OwnerBanned => "owner_banned",
            EndReason::AccountDeleted => "account_deleted",
            EndReason::ProjectDeleted => "project_deleted",
            EndReason::Expired => "expired",
            EndReason::Idle => "idle",
            EndReason::OutOfMemory => "out_of_memory",
            EndReason::Exited => "exited",
            EndReason::Stopped => "stopped",
            EndReason::StartTimedOut => "start_timed_out",
            EndReason::LaunchFailed => "launch_failed",
            EndReason::PoolNotNeeded => "pool_not_needed",
            EndReason::ServerStopping => "server_stopping",
            EndReason::ServerRestarted => "server_restarted",
            EndReason::ContainerLost => "container_lost",
            EndReason::NodeLost => "node_lost",
            EndReason::Other => "other",
        }
    }

    /// Reads any spelling, this build's or an older server's; unknown text is `Other`.
    pub fn parse(s: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .or_else(|| {
                Self::OLD_SPELLINGS
                    .iter()
                    .find(|(old, _)| *old == s)
                    .map(|(_, r)| *r)
            })
            .unwrap_or(EndReason::Other)
    }

    /// What the sandbox's owner reads.
    pub fn sentence(self) -> &'static str {
        match self {
            EndReason::Replaced => "This sandbox was replaced by a newer one.",
            EndReason::StoppedByOwner => "You stopped this sandbox.",
            EndReason::StoppedByAdmin | EndReason::OwnerBanned => {
                "An admin stopped this sandbox."
            }
            EndReason::AccountDeleted => "This sandbox ended with the account it belonged to.",
            EndReason::ProjectDeleted => "This project was deleted, so its sandbox has ended.",
            EndReason::Expired => "Time is up: this sandbox has ended.",
            EndReason::Idle => {
                "This sandbox ended because nobody typed in it for a while (idle)."
            }
            EndReason::OutOfMemory => {
                "This sandbox ran out of memory and has ended (everything in it, files included, lives in its memory)."
            }
            EndReason::Exited => "Everything running in this sandbox exited, so it has ended.",
            EndReason::Stopped => "This sandbox was stopped.",
            EndReason::StartTimedOut => "This sandbox took too long to start.",
            EndReason::LaunchFailed => "This sandbox could not be started.",
            EndReason::PoolNotNeeded | EndReason::ServerStopping => {
                "This sandbox ended when the server shut down."
            }
            EndReason::ServerRestarted => "This sandbox ended when the server restarted.",
            EndReason::ContainerLost => "This sandbox's container was lost.",
            EndReason::NodeLost => {
                "The machine running this sandbox stopped, so the sandbox has ended. Try again starts a new one on another machine."
            }
            EndReason::Other => "This sandbox has ended.",
        }
    }
}

impl std::fmt::Display for EndReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Never fails: unknown text is `Other` (the database's column reader uses it).
impl std::str::FromStr for EndReason {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(EndReason::parse(s))
    }
}

impl Serialize for EndReason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EndReason {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(EndReason::parse(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::EndReason;

    #[test]
    fn every_reason_round_trips_through_its_spelling() {
        for r in EndReason::ALL {
            assert_eq!(EndReason::parse(r.as_str()), r, "{r}");
            let json = serde_json::to_value(r).ok();
            assert_eq!(json, Some(r.as_str().into()));
            assert_eq!(
                serde_json::from_value::<EndReason>(r.as_str().into()).ok(),
                Some(r)
            );
            // One spelling each: snake_case, no two alike.
            assert!(r
                .as_str()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_'));
            assert_eq!(
                EndReason::ALL
                    .iter()
                    .filter(|o| o.as_str() == r.as_str())
                    .count(),
                1
            );
        }
    }

    #[test]
    fn every_old_spelling_maps_to_its_reason() {
        let expected = [
            ("stopped by owner", EndReason::StoppedByOwner),
            ("stopped by admin", EndReason::StoppedByAdmin),
            ("admin_stopped", EndReason::StoppedByAdmin),
            ("owner_banned", EndReason::OwnerBanned),
            ("account_deleted", EndReason::AccountDeleted),
            ("project_deleted", EndReason::ProjectDeleted),
            ("replaced", EndReason::Replaced),
            ("idle", EndReason::Idle),
            ("stopped", EndReason::Stopped),
            ("time limit", EndReason::Expired),
            ("out of memory", EndReason::OutOfMemory),
            ("its processes ended", EndReason::Exited),
            ("start timed out", EndReason::StartTimedOut),
            ("pool member not needed", EndReason::PoolNotNeeded),
            ("server stopping", EndReason::ServerStopping),
            ("server restarted", EndReason::ServerRestarted),
            ("container lost", EndReason::ContainerLost),
        ];
        for (old, r) in expected {
            assert_eq!(EndReason::parse(old), r, "{old}");
        }
        for (old, r) in EndReason::OLD_SPELLINGS {
            assert_eq!(EndReason::parse(old), r, "{old}");
            assert_ne!(old, r.as_str());
        }
        assert_eq!(
            EndReason::parse("Docker responded with status code 500"),
            EndReason::Other
        );
        assert_eq!(EndReason::parse(""), EndReason::Other);
    }

    #[test]
    fn the_admins_stop_reads_as_a_sentence() {
        assert_eq!(
            EndReason::parse("admin_stopped").sentence(),
            "An admin stopped this sandbox."
        );
        for r in EndReason::ALL {
            assert!(r.sentence().ends_with('.'), "{r}");
            assert_ne!(r.sentence(), r.as_str());
        }
    }
}
