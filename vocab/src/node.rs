//! A sandbox node of the cluster runtime, as the runtime reads it from the Swarm and the admin
//! page shows it (`GET /api/admin/sandboxes`'s `nodes`).
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SandboxNode {
    /// The node's name (its `trythis.node` label, else its host name).
    pub name: String,
    /// Swarm's node id (drain and activate use it).
    #[serde(default)]
    pub id: String,
    pub address: String,
    /// Swarm's view: `ready`, `down`, `unknown`, `disconnected`.
    pub state: String,
    /// The operator's: `active`, `drain` or `pause`.
    pub availability: String,
    /// Whether new sandboxes may land on it now (ready, active, and its engine answers).
    pub placeable: bool,
    /// Sandbox containers of this installation on it (Tries, warm-pool members, smoke checks).
    pub sandboxes: u64,
    /// How many sandboxes fit: (memory − reserve) ÷ a sandbox's memory limit.
    pub slots: u64,
    pub memory_bytes: i64,
    pub cpus: f64,
    /// The node engine's sandbox isolation (`gvisor`, …), once connected.
    #[serde(default)]
    pub isolation: Option<String>,
}
