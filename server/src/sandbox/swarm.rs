//! `SwarmRuntime`: sandboxes spread over the sandbox nodes of a Docker Swarm (docs/SCALING.md).
//! Swarm gives membership, node health and the operator's controls (the `trythis.sandbox=true`
//! label, drain); the platform places each sandbox as a plain container on a node Swarm reports
//! `ready` and `active`, through that node's own engine, with every rule of the single host (a
//! `DockerRuntime` per node: gVisor without network, the limits, the relay, the session holders).
//! A sandbox never moves: when Swarm marks its node down, `wait_exit` answers `NodeLost` and the
//! service ends the row with that reason. Sandboxes that need the network (egress through the
//! platform's proxy) run on the platform host's own engine, beside the proxy ("platform").
use super::docker::DockerRuntime;
use super::runtime::{
    Exit, LaunchSpec, Launched, Listed, NodeInfo, Runtime, RuntimeError, TerminalUpstream, Usage,
};
use crate::config::{Config, SwarmConfig};
use crate::engine::Isolation;
use bollard::{
    models::{NodeSpecAvailabilityEnum, NodeState},
    query_parameters::{ListNodesOptions, UpdateNodeOptions},
    Docker,
};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::watch;

/// How long a node's engine may take to list its containers before it counts as not answering.
const ENGINE_ANSWER: std::time::Duration = std::time::Duration::from_secs(2);

/// The rows' node name of sandboxes on the platform host's own engine (egress sandboxes).
pub const PLATFORM_NODE: &str = "platform";
/// The label that makes a Swarm node a sandbox node.
pub const SANDBOX_NODE_LABEL: &str = "trythis.sandbox";
/// The node's name for the platform (else its host name).
pub const NODE_NAME_LABEL: &str = "trythis.node";

/// A sandbox node as last read from the manager, and the platform's connection to its engine.
struct Node {
    info: NodeInfo,
    runtime: Option<Arc<DockerRuntime>>,
    /// Why the platform cannot use the node's engine (connection refused, wrong isolation).
    unusable: Option<String>,
}

impl Node {
    fn placeable(&self) -> bool {
        self.info.state == "ready"
            && self.info.availability == "active"
            && self.runtime.is_some()
            && self.unusable.is_none()
    }
}

pub struct SwarmRuntime {
    manager: Docker,
    swarm: SwarmConfig,
    config: Config,
    instance: String,
    /// The platform host's engine: egress sandboxes, and the isolation every node must match.
    local: Arc<DockerRuntime>,
    memory_per_sandbox: u64,
    nodes: RwLock<HashMap<String, Node>>,
    /// Sandbox id → node name, for the sandboxes this server placed, listed or was told of.
    placed: Mutex<HashMap<String, String>>,
    /// Launches under way per node (they are not in the node's container list yet).
    launching: Mutex<HashMap<String, u64>>,
    /// The nodes Swarm reports down or that left the swarm: their sandboxes are lost.
    down: watch::Sender<HashSet<String>>,
    /// Whether the manager answered the last node read (a restarting manager changes nothing).
    manager_ok: std::sync::atomic::AtomicBool,
}

/// The node's name: its `trythis.node` label, else its host name; only `[A-Za-z0-9._-]` (it
/// becomes part of an engine socket path).
fn node_name(n: &bollard::models::Node) -> Option<String> {
    let label = n
        .spec
        .as_ref()
        .and_then(|s| s.labels.as_ref())
        .and_then(|l| l.get(NODE_NAME_LABEL))
        .cloned();
    let host = n.description.as_ref().and_then(|d| d.hostname.clone());
    let name = label.or(host)?;
    let ok = !name.is_empty()
        && name.len() <= 64
        && name != PLATFORM_NODE
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && !name.starts_with('.');
    ok.then_some(name)
}

impl SwarmRuntime {
    /// Connects to the manager, reads the nodes once and keeps following them (every
    /// `swarm.poll`) for as long as the runtime lives.
    pub async fn start(
        config: &Config,
        swarm: SwarmConfig,
        instance: String,
        local: Arc<DockerRuntime>,
    ) -> Result<Arc<Self>, crate::engine::EngineError> {
        let manager = crate::engine::connect_engine(&swarm.manager).await?;
        let this = Arc::new(Self {
            manager,
            memory_per_sandbox: config.limits.memory_mb.max(1) * 1024 * 1024,
            swarm,
            config: config.clone(),
            instance,
            local,
            nodes: RwLock::default(),
            placed: Mutex::default(),
            launching: Mutex::default(),
            down: watch::Sender::new(HashSet::new()),
            // True: the first read that fails is reported.
            manager_ok: std::sync::atomic::AtomicBool::new(true),
        });
        // A manager that does not answer yet is retried every period (logged by `refresh`).
        let _ = this.refresh().await;
        let weak = Arc::downgrade(&this);
        let period = this.swarm.poll;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(this) = weak.upgrade() else { return };
                // Errors are logged by `refresh`, once per outage.
                let _ = this.refresh().await;
            }
        });
        Ok(this)
    }

    /// Reads the sandbox nodes from the manager: state, availability, resources; connects to
    /// the engines of new ready nodes; counts each node's sandboxes; publishes the down set.
    async fn refresh(&self) -> Result<(), RuntimeError> {
        let opts = ListNodesOptions {
            filters: Some(HashMap::from([(
                "node.label".to_string(),
                vec![format!("{SANDBOX_NODE_LABEL}=true")],
            )])),
        };
        use std::sync::atomic::Ordering::Relaxed;
        let listed = match self.manager.list_nodes(Some(opts)).await {
            Ok(l) => l,
            Err(e) => {
                // Said once per outage: the last node list stands meanwhile.
                if self.manager_ok.swap(false, Relaxed) {
                    tracing::warn!(error = %e, "the swarm manager does not answer; the last node list stands");
                }
                return Err(e.into());
            }
        };
        if !self.manager_ok.swap(true, Relaxed) {
            tracing::info!(nodes = listed.len(), "the swarm manager answers");
        }
        let mut seen = HashSet::new();
        let mut fresh: Vec<(String, NodeInfo)> = Vec::new();
        for n in &listed {
            let Some(name) = node_name(n) else {
                tracing::warn!(node = ?n.id, "a sandbox node without a usable name is skipped");
                continue;
            };
            let status = n.status.clone().unwrap_or_default();
            let resources = n
                .description
                .as_ref()
                .and_then(|d| d.resources.clone())
                .unwrap_or_default();
            let memory = resources.memory_bytes.unwrap_or(0);
            let usable = (memory as u64).saturating_sub(self.swarm.reserve_mb * 1024 * 1024);
            fresh.push((
                name.clone(),
                NodeInfo {
                    name: name.clone(),
                    id: n.id.clone().unwrap_or_default(),
                    address: status.addr.unwrap_or_default(),
                    state: status.state.unwrap_or(NodeState::UNKNOWN).to_string(),
                    availability: n
                        .spec
                        .as_ref()
                        .and_then(|s| s.availability)
                        .unwrap_or(NodeSpecAvailabilityEnum::ACTIVE)
                        .to_string(),
                    placeable: false,
                    sandboxes: 0,
                    slots: usable / self.memory_per_sandbox,
                    memory_bytes: memory,
                    cpus: resources.nano_cpus.unwrap_or(0) as f64 / 1e9,
                    isolation: None,
                },
            ));
            seen.insert(name);
        }
        // Connect to the engines of ready nodes the platform has no connection to yet, and count
        // this installation's sandboxes on each (a node that stopped answering is unusable until
        // it answers again). All nodes at once, each bounded: one slow node must not hold up
        // the others' news.
        let probes = fresh.iter().map(|(name, info)| async move {
            let have = self
                .nodes
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(name)
                .and_then(|n| n.runtime.clone());
            let runtime = match have {
                Some(r) => Ok(r),
                None if info.state == "ready" => {
                    match tokio::time::timeout(ENGINE_ANSWER, self.connect(name)).await {
                        Ok(connected) => connected,
                        Err(_) => Err("its engine did not answer in time".to_string()),
                    }
                }
                None => Err("not ready".to_string()),
            };
            let counted = match &runtime {
                Ok(r) => match tokio::time::timeout(ENGINE_ANSWER, r.list()).await {
                    Ok(listed) => listed
                        .map(|l| l.len() as u64)
                        .map_err(|e| format!("its engine: {e}")),
                    Err(_) => Err("its engine did not answer in time".into()),
                },
                Err(e) => Err(e.clone()),
            };
            (name.clone(), (runtime.ok(), counted))
        });
        let mut connected: HashMap<String, _> = futures::future::join_all(probes)
            .await
            .into_iter()
            .collect();
        let mut nodes = self.nodes.write().unwrap_or_else(|p| p.into_inner());
        let mut down: HashSet<String> = nodes
            .keys()
            .filter(|n| !seen.contains(*n))
            .cloned()
            .collect();
        nodes.retain(|name, _| seen.contains(name));
        for (name, mut info) in fresh {
            let (runtime, counted) = connected.remove(&name).unwrap_or((None, Ok(0)));
            // Lost: Swarm says down and the node's engine does not answer either. A manager
            // that has just restarted reports every node down until it reports in again (seen
            // here: 2 s), while the node and its sandboxes run on; the engine's answer tells
            // the two apart. A node down in Swarm takes no new sandbox either way.
            if matches!(info.state.as_str(), "down" | "disconnected") && counted.is_err() {
                down.insert(name.clone());
            }
            let unusable = match (&runtime, &counted) {
                (Some(r), Ok(_)) if r.isolation() != self.local.isolation() => Some(format!(
                    "its engine runs sandboxes under {}, the platform under {}",
                    r.isolation().as_str(),
                    self.local.isolation().as_str()
                )),
                (_, Err(e)) => Some(e.clone()),
                _ => None,
            };
            info.sandboxes = *counted.as_ref().unwrap_or(&0);
            info.isolation = runtime.as_ref().map(|r| r.isolation().as_str().to_string());
            let mut node = Node {
                info,
                runtime,
                unusable,
            };
            node.info.placeable = node.placeable();
            nodes.insert(name, node);
        }
        drop(nodes);
        self.down.send_if_modified(|d| {
            let changed = *d != down;
            if changed {
                tracing::warn!(down = ?down, "sandbox nodes down");
            }
            *d = down;
            changed
        });
        Ok(())
    }

    /// A connection to `name`'s engine, checked: its isolation must be the platform's.
    async fn connect(&self, name: &str) -> Result<Arc<DockerRuntime>, String> {
        let endpoint = self.swarm.node_engine.replace("{node}", name);
        let docker = crate::engine::connect_engine(&endpoint)
            .await
            .map_err(|e| format!("its engine at {endpoint}: {e}"))?;
        let isolation = crate::engine::detect_isolation(&docker, self.config.sandbox_runtime)
            .await
            .map_err(|e| format!("its engine at {endpoint}: {e}"))?;
        let version = crate::engine::runtime_version(&docker, isolation.0).await;
        tracing::info!(node = name, %endpoint, isolation = isolation.0.as_str(), "connected to a sandbox node");
        Ok(Arc::new(
            DockerRuntime::new(
                docker,
                &endpoint,
                &self.config,
                self.instance.clone(),
                isolation,
            )
            .with_version(version),
        ))
    }
}

impl SwarmRuntime {
    /// The engine of node `name` (the platform host's for `PLATFORM_NODE`).
    fn runtime_of(&self, name: &str) -> Option<Arc<DockerRuntime>> {
        if name == PLATFORM_NODE {
            return Some(self.local.clone());
        }
        self.nodes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .and_then(|n| n.runtime.clone())
    }

    /// Every engine the platform can reach now: the platform host's and the nodes'.
    fn engines(&self) -> Vec<(String, Arc<DockerRuntime>)> {
        let nodes = self.nodes.read().unwrap_or_else(|p| p.into_inner());
        std::iter::once((PLATFORM_NODE.to_string(), self.local.clone()))
            .chain(
                nodes
                    .iter()
                    .filter(|(_, n)| n.info.state == "ready")
                    .filter_map(|(name, n)| Some((name.clone(), n.runtime.clone()?))),
            )
            .collect()
    }

    /// The node `sandbox_id` runs on: as placed or told, else found by asking every engine.
    async fn node_of(&self, sandbox_id: &str) -> Option<String> {
        if let Some(n) = self
            .placed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(sandbox_id)
        {
            return Some(n.clone());
        }
        let probes = self.engines().into_iter().map(|(name, rt)| async move {
            rt.has(sandbox_id).await.unwrap_or(false).then_some(name)
        });
        let found = futures::future::join_all(probes)
            .await
            .into_iter()
            .flatten()
            .next()?;
        self.locate(sandbox_id, &found);
        Some(found)
    }

    async fn sandbox_runtime(
        &self,
        sandbox_id: &str,
    ) -> Result<(String, Arc<DockerRuntime>), RuntimeError> {
        let gone = || RuntimeError::ImageMissing(format!("trythis-{sandbox_id} is not running"));
        let node = self.node_of(sandbox_id).await.ok_or_else(gone)?;
        let rt = self.runtime_of(&node).ok_or_else(gone)?;
        Ok((node, rt))
    }

    /// The image as the nodes pull it: the platform registry's address replaced by the
    /// cluster's (same repository and digest).
    fn node_image(&self, image: &str) -> String {
        match &self.swarm.registry {
            Some(cluster) => {
                let own = format!("{}/", self.config.registry.address);
                match image.strip_prefix(&own) {
                    Some(rest) => format!("{cluster}/{rest}"),
                    None => image.to_string(),
                }
            }
            None => image.to_string(),
        }
    }

    /// The placeable nodes, most free slots first (fresh counts from their engines, plus the
    /// launches under way there); only nodes with a free slot.
    async fn candidates(&self) -> Vec<(String, Arc<DockerRuntime>)> {
        let nodes: Vec<(String, Arc<DockerRuntime>, u64)> = {
            let nodes = self.nodes.read().unwrap_or_else(|p| p.into_inner());
            nodes
                .iter()
                .filter(|(_, n)| n.placeable())
                .filter_map(|(name, n)| Some((name.clone(), n.runtime.clone()?, n.info.slots)))
                .collect()
        };
        let counted =
            futures::future::join_all(nodes.into_iter().map(|(name, rt, slots)| async move {
                let count = rt.list().await.map(|l| l.len() as u64);
                (name, rt, slots, count)
            }))
            .await;
        let launching = self
            .launching
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut free: Vec<(u64, u64, String, Arc<DockerRuntime>)> = counted
            .into_iter()
            .filter_map(|(name, rt, slots, count)| {
                let used = count.ok()? + launching.get(&name).copied().unwrap_or(0);
                (used < slots).then(|| (slots - used, used, name, rt))
            })
            .collect();
        // Most free slots first; then the emptier; then by name (a stable order).
        free.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        free.into_iter().map(|(_, _, n, rt)| (n, rt)).collect()
    }

    fn count_launch(&self, node: &str, by: i64) {
        let mut l = self.launching.lock().unwrap_or_else(|p| p.into_inner());
        let n = l.entry(node.to_string()).or_default();
        *n = n.saturating_add_signed(by);
        if *n == 0 {
            l.remove(node);
        }
    }
}

#[async_trait::async_trait]
impl Runtime for SwarmRuntime {
    async fn launch(&self, spec: &LaunchSpec) -> Result<Launched, RuntimeError> {
        if spec.egress.is_some() {
            // Beside the egress proxy, on the platform host's engine.
            let launched = self.local.launch(spec).await?;
            self.locate(&spec.sandbox_id, PLATFORM_NODE);
            return Ok(Launched {
                node: Some(PLATFORM_NODE.into()),
                ..launched
            });
        }
        let spec = LaunchSpec {
            image: self.node_image(&spec.image),
            ..spec.clone()
        };
        let candidates = self.candidates().await;
        if candidates.is_empty() {
            return Err(RuntimeError::EngineDown(
                "no sandbox node has room (or none is ready)".into(),
            ));
        }
        let mut last = None;
        // A node Swarm calls ready whose engine fails now is skipped for this launch.
        for (name, rt) in candidates.into_iter().take(2) {
            self.count_launch(&name, 1);
            let result = rt.launch(&spec).await;
            self.count_launch(&name, -1);
            match result {
                Ok(launched) => {
                    self.locate(&spec.sandbox_id, &name);
                    return Ok(Launched {
                        node: Some(name),
                        ..launched
                    });
                }
                Err(e @ RuntimeError::EngineDown(_)) => {
                    tracing::warn!(node = %name, error = %e, "a sandbox node failed a launch; trying another");
                    let _ = rt.destroy(&spec.sandbox_id).await;
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| RuntimeError::EngineDown("no sandbox node answered".into())))
    }

    async fn destroy(&self, sandbox_id: &str) -> Result<(), RuntimeError> {
        let node = self.node_of(sandbox_id).await;
        let result = match node.as_deref().and_then(|n| self.runtime_of(n)) {
            Some(rt) => rt.destroy(sandbox_id).await,
            None => Ok(()),
        };
        if result.is_ok() {
            self.placed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(sandbox_id);
        }
        // A node that is down keeps the container until it comes back: the sweep removes it
        // then (it has no live row), so the row may end now.
        match (result, node) {
            (Err(RuntimeError::EngineDown(_)), Some(n)) if self.down.borrow().contains(&n) => {
                Ok(())
            }
            (r, _) => r,
        }
    }

    async fn open_terminal(&self, sandbox_id: &str) -> Result<TerminalUpstream, RuntimeError> {
        self.sandbox_runtime(sandbox_id)
            .await?
            .1
            .open_terminal(sandbox_id)
            .await
    }

    async fn join_terminal(&self, sandbox_id: &str) -> Result<TerminalUpstream, RuntimeError> {
        self.sandbox_runtime(sandbox_id)
            .await?
            .1
            .join_terminal(sandbox_id)
            .await
    }

    async fn hang_up_shell(&self, sandbox_id: &str) {
        if let Ok((_, rt)) = self.sandbox_runtime(sandbox_id).await {
            rt.hang_up_shell(sandbox_id).await;
        }
    }

    async fn shell_held(&self, sandbox_id: &str) -> bool {
        match self.sandbox_runtime(sandbox_id).await {
            Ok((_, rt)) => rt.shell_held(sandbox_id).await,
            Err(_) => false,
        }
    }

    fn isolation(&self) -> Isolation {
        self.local.isolation()
    }

    fn version(&self) -> String {
        let nodes = self.nodes.read().unwrap_or_else(|p| p.into_inner());
        let ready = nodes.values().filter(|n| n.placeable()).count();
        format!(
            "{} · Swarm, {ready} of {} sandbox nodes taking sandboxes",
            self.local.version(),
            nodes.len()
        )
    }

    async fn wait_exit(&self, sandbox_id: &str) -> Exit {
        // Not found on any engine that answers: it may be on one that does not answer this
        // moment; only a sandbox missing for a while has ended.
        let mut tries = 0;
        let node = loop {
            if let Some(node) = self.node_of(sandbox_id).await {
                break node;
            }
            tries += 1;
            if tries >= 15 {
                return Exit::Ended;
            }
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        };
        let Some(rt) = self.runtime_of(&node) else {
            return Exit::NodeLost;
        };
        let mut down = self.down.subscribe();
        tokio::select! {
            exit = rt.wait_exit(sandbox_id) => exit,
            _ = down.wait_for(|d| d.contains(&node)) => Exit::NodeLost,
        }
    }

    async fn list(&self) -> Result<Vec<Listed>, RuntimeError> {
        let engines = self.engines();
        let lists = futures::future::join_all(
            engines
                .iter()
                .map(|(name, rt)| async move { (name.clone(), rt.list().await) }),
        )
        .await;
        let mut all = Vec::new();
        for (name, listed) in lists {
            match listed {
                Ok(l) => {
                    for s in &l {
                        self.locate(&s.sandbox_id, &name);
                    }
                    all.extend(l);
                }
                // The platform host's engine must answer; a node that does not is skipped (its
                // containers are listed again once it answers).
                Err(e) if name == PLATFORM_NODE => return Err(e),
                Err(e) => tracing::warn!(node = %name, error = %e, "a sandbox node did not list"),
            }
        }
        Ok(all)
    }

    async fn room(&self) -> Option<u64> {
        let launching = self
            .launching
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let nodes = self.nodes.read().unwrap_or_else(|p| p.into_inner());
        Some(
            nodes
                .iter()
                .filter(|(_, n)| n.placeable())
                .map(|(name, n)| {
                    let used = n.info.sandboxes + launching.get(name).copied().unwrap_or(0);
                    n.info.slots.saturating_sub(used)
                })
                .sum(),
        )
    }

    fn node_accepts(&self, node: &str) -> bool {
        node == PLATFORM_NODE
            || self
                .nodes
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(node)
                .is_some_and(Node::placeable)
    }

    fn avoided_nodes(&self) -> Vec<String> {
        let nodes = self.nodes.read().unwrap_or_else(|p| p.into_inner());
        let mut avoided: Vec<String> = nodes
            .iter()
            .filter(|(_, n)| !n.placeable())
            .map(|(name, _)| name.clone())
            .collect();
        avoided.extend(self.down.borrow().iter().cloned());
        avoided
    }

    fn locate(&self, sandbox_id: &str, node: &str) {
        self.placed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(sandbox_id.to_string(), node.to_string());
    }

    async fn nodes(&self) -> Option<Vec<NodeInfo>> {
        let nodes = self.nodes.read().unwrap_or_else(|p| p.into_inner());
        let mut list: Vec<NodeInfo> = nodes.values().map(|n| n.info.clone()).collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        Some(list)
    }

    async fn set_node_drained(&self, node: &str, drained: bool) -> Result<(), RuntimeError> {
        let id = self
            .nodes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(node)
            .map(|n| n.info.id.clone())
            .ok_or_else(|| RuntimeError::ImageMissing(format!("no sandbox node {node}")))?;
        let current = self.manager.inspect_node(&id).await?;
        let version = current
            .version
            .and_then(|v| v.index)
            .ok_or_else(|| RuntimeError::Engine("the node has no version".into()))?;
        let mut spec = current.spec.unwrap_or_default();
        spec.availability = Some(if drained {
            NodeSpecAvailabilityEnum::DRAIN
        } else {
            NodeSpecAvailabilityEnum::ACTIVE
        });
        self.manager
            .update_node(
                &id,
                spec,
                UpdateNodeOptions {
                    version: version as i64,
                },
            )
            .await?;
        self.refresh().await
    }

    async fn ping(&self) -> Result<(), RuntimeError> {
        self.manager
            .ping()
            .await
            .map(|_| ())
            .map_err(|e| RuntimeError::EngineDown(format!("swarm manager: {e}")))
    }

    async fn relay(
        &self,
        sandbox_id: &str,
        args: &[&str],
    ) -> Result<super::exec_io::ExecIo, RuntimeError> {
        self.sandbox_runtime(sandbox_id)
            .await?
            .1
            .relay(sandbox_id, args)
            .await
    }

    async fn usage(&self, sandbox_id: &str) -> Result<Option<Usage>, RuntimeError> {
        match self.sandbox_runtime(sandbox_id).await {
            Ok((_, rt)) => rt.usage(sandbox_id).await,
            Err(_) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(label: Option<&str>, host: &str) -> bollard::models::Node {
        bollard::models::Node {
            spec: Some(bollard::models::NodeSpec {
                labels: label.map(|l| HashMap::from([(NODE_NAME_LABEL.to_string(), l.into())])),
                ..Default::default()
            }),
            description: Some(bollard::models::NodeDescription {
                hostname: Some(host.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_node_is_named_by_its_label_then_its_host_and_only_with_safe_characters() {
        assert_eq!(node_name(&node(Some("c2"), "h")).as_deref(), Some("c2"));
        assert_eq!(
            node_name(&node(None, "host-1.lan")).as_deref(),
            Some("host-1.lan")
        );
        // The name becomes part of a socket path: nothing that could leave its directory.
        for bad in ["../x", "a/b", "", ".hidden", "platform", "sp ace"] {
            assert_eq!(node_name(&node(Some(bad), "")), None, "{bad:?}");
        }
    }
}
