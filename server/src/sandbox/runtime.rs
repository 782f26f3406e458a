//! Where sandboxes run: the `Runtime` trait, what a launch needs and returns, and its errors.
//! `sandbox::docker::DockerRuntime` is the real one (the Engine API through bollard); another
//! engine is another file beside it implementing `Runtime`, and the unit tests use fakes.
use crate::engine::{EngineError, Isolation};
use std::pin::Pin;
use tokio::io::{AsyncRead, AsyncWrite};

pub const LABEL_SANDBOX: &str = "trythis.sandbox";
pub const LABEL_OWNER: &str = "trythis.owner";
pub const LABEL_PROJECT: &str = "trythis.project";
pub const LABEL_EXPIRES: &str = "trythis.expires";
/// The installation a container belongs to: reconciliation only ever touches its own.
pub const LABEL_INSTANCE: &str = "trythis.instance";

/// A byte stream to the platform's ttyd.
pub trait TerminalIo: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> TerminalIo for T {}
pub type TerminalStream = Pin<Box<dyn TerminalIo>>;

/// Where a sandbox's terminal is: a stream to ttyd and the WebSocket path that names the sandbox.
pub struct TerminalUpstream {
    pub io: TerminalStream,
    pub path: String,
}

impl TerminalUpstream {
    /// A stream that is itself the sandbox's ttyd (fakes in tests and benches).
    pub fn direct(io: impl TerminalIo + 'static) -> Self {
        Self {
            io: Box::pin(io),
            path: "/ws".into(),
        }
    }
}

/// Egress for one sandbox: the proxy it must use and the CA bundle it should trust.
#[derive(Debug, Clone)]
pub struct Egress {
    pub network: String,
    pub proxy_url: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("the image {0} is not available")]
    ImageMissing(String),
    #[error("the container engine is not answering: {0}")]
    EngineDown(String),
    #[error("the sandbox did not become ready: {0}")]
    NotReady(String),
    #[error("container engine error: {0}")]
    Engine(String),
}

impl From<EngineError> for RuntimeError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Down(m) => RuntimeError::EngineDown(m),
            EngineError::Unsuitable(m) => RuntimeError::Engine(m),
        }
    }
}

/// Everything needed to start one sandbox.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    pub sandbox_id: String,
    pub owner: String,
    pub project: String,
    /// `repo@sha256:…`
    pub image: String,
    pub expires_unix: i64,
    /// `Some` for projects that opted into egress: the network and proxy they go out through.
    pub egress: Option<Egress>,
    pub welcome: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Launched {
    pub container_id: String,
    /// The sandbox node it was placed on (cluster runtime); None on a single engine.
    pub node: Option<String>,
}

/// One sandbox node as the cluster runtime sees it (the admin page shows the same).
pub use vocab::SandboxNode as NodeInfo;

/// A container found by label (reconciliation).
#[derive(Debug, Clone)]
pub struct Listed {
    pub sandbox_id: String,
    pub container_id: String,
}

#[async_trait::async_trait]
pub trait Runtime: Send + Sync {
    /// Creates and starts the sandbox (idle until a terminal execs a shell in it).
    async fn launch(&self, spec: &LaunchSpec) -> Result<Launched, RuntimeError>;
    /// Kills and removes the container and its volumes. Idempotent.
    async fn destroy(&self, sandbox_id: &str) -> Result<(), RuntimeError>;
    /// A connection to a ttyd that starts a new shell in the running sandbox per WebSocket.
    async fn open_terminal(&self, sandbox_id: &str) -> Result<TerminalUpstream, RuntimeError>;
    /// A connection that joins the sandbox's open shell for watchers: it never starts a shell and
    /// never sets the shell's size (the owner's browsers do).
    async fn join_terminal(&self, sandbox_id: &str) -> Result<TerminalUpstream, RuntimeError> {
        self.open_terminal(sandbox_id).await
    }
    /// Ends the sandbox's shell as a closing terminal would (its session gets SIGHUP); the
    /// shell outlives the terminal connections otherwise.
    async fn hang_up_shell(&self, _sandbox_id: &str) {}
    /// Whether the sandbox's shell is still open although this server's terminal connection to
    /// it ended (its holder outlives the server's ttyd): then a browser reconnects to it.
    async fn shell_held(&self, _sandbox_id: &str) -> bool {
        false
    }
    /// How sandboxes are isolated (`/healthz` reports it).
    fn isolation(&self) -> Isolation;
    /// The runtime's version line (`/healthz` and the admin page).
    fn version(&self) -> String {
        self.isolation().as_str().to_string()
    }
    /// Resolves when the sandbox's container has stopped (or is gone). Under gVisor a sandbox
    /// that dies (out of memory) can leave its exec streams open; this is how sessions notice.
    async fn wait_exit(&self, _sandbox_id: &str) -> Exit {
        std::future::pending::<Exit>().await
    }
    /// Every container of this installation carrying the sandbox label.
    async fn list(&self) -> Result<Vec<Listed>, RuntimeError>;
    /// How many more sandboxes the machines take now (cluster runtime: the free slots of the
    /// nodes that take new sandboxes); None: only the configured ceiling counts.
    async fn room(&self) -> Option<u64> {
        None
    }
    /// Whether `node` takes new sandboxes (warm-pool members elsewhere are not handed out).
    fn node_accepts(&self, _node: &str) -> bool {
        true
    }
    /// The nodes that take no new sandboxes now (drained, down or unreachable).
    fn avoided_nodes(&self) -> Vec<String> {
        Vec::new()
    }
    /// Tells the runtime where a sandbox runs, from its row (a sandbox another app server
    /// launched, or one launched before a restart).
    fn locate(&self, _sandbox_id: &str, _node: &str) {}
    /// The sandbox nodes (None: a single engine, no nodes).
    async fn nodes(&self) -> Option<Vec<NodeInfo>> {
        None
    }
    /// Drains (`true`) or re-activates a node through the cluster's manager.
    async fn set_node_drained(&self, _node: &str, _drained: bool) -> Result<(), RuntimeError> {
        Err(RuntimeError::Engine(
            "this runtime has no nodes to drain".into(),
        ))
    }
    async fn ping(&self) -> Result<(), RuntimeError>;
    /// Runs the platform's relay in the running sandbox with `args` (`forward PORT`, `ports
    /// watch`, `put PATH SIZE`, `get PATH`): its stdin and stdout as one byte stream, no TTY.
    async fn relay(
        &self,
        _sandbox_id: &str,
        _args: &[&str],
    ) -> Result<super::exec_io::ExecIo, RuntimeError> {
        Err(RuntimeError::Engine(
            "this runtime cannot run the relay in a sandbox".into(),
        ))
    }
    /// Live CPU and memory use of a running sandbox (None: not running, or not measurable).
    async fn usage(&self, _sandbox_id: &str) -> Result<Option<Usage>, RuntimeError> {
        Ok(None)
    }
}

/// How a sandbox's container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Killed for exceeding its memory limit (under gVisor: any write, files included).
    OutOfMemory,
    /// Its processes ended (or it is gone).
    Ended,
    /// The machine (sandbox node) running it left the cluster (Swarm marks it down).
    NodeLost,
}

/// A running sandbox's resource use, for the admin page.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Usage {
    /// Percent of one CPU over the engine's sampling interval (~1 s).
    pub cpu_percent: f64,
    /// Memory in use without the page cache (what counts towards the limit's pressure).
    pub memory_bytes: u64,
    pub memory_limit_bytes: u64,
}
