//! The egress proxy: the only way from a build container or an egress-enabled sandbox to the
//! outside world.
//!
//! Strangers' Dockerfiles run `RUN` steps we do not control. Their networks have no route out
//! except to this proxy (reached as `HTTP_PROXY`/`HTTPS_PROXY`), so every outbound connection is
//! decided here, where the container cannot interfere:
//!
//! * each build or sandbox gets its own [`Grant`] (proxy Basic credentials); dropping it revokes
//!   access and closes that grant's open tunnels;
//! * the destination port and host are checked against a [`Policy`] before any DNS lookup, so a
//!   refused name is never even resolved;
//! * an allowed name is resolved once, here, and every address must be public and not this host's
//!   own; the connection goes to exactly those checked addresses, never a second lookup, so DNS
//!   rebinding cannot swap in 127.0.0.1 or 169.254.169.254 after the check;
//! * mirrors (an internal package cache) are the one, literal, exception to the address check.
//!
//! Only `CONNECT host:port` tunnels and absolute-form `http://` requests are served; anything else
//! is refused, as is every request over the size, time and concurrency bounds below.

mod addr;
mod conn;
mod policy;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};

pub use policy::Policy;

/// Why the proxy would never connect to `ip`, as a noun phrase ("a loopback address", "a private
/// address", "this host's own address"), or `None` if it may: for callers that refuse an address
/// written as such before any connection is tried (the image import's form check).
pub fn address_refusal(ip: std::net::IpAddr) -> Option<&'static str> {
    addr::forbidden(ip)
}

/// Connections one grant may hold open at once; more would let one build starve the others.
const MAX_CONNS_PER_GRANT: usize = 64;
/// Connections overall, including ones that have not authenticated yet.
const MAX_CONNS_TOTAL: usize = 1024;
/// Connections one source address may hold before authenticating (each may wait 10 s for its
/// head): without it, one silent client could hold every one of the 1,024 slots.
pub const MAX_UNAUTHENTICATED_PER_SOURCE: usize = 64;
/// Refusals queued per grant before new ones are dropped (the reader may be slow or absent).
const REFUSAL_QUEUE: usize = 256;

/// A request the proxy refused on policy grounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The destination as the client wrote it, `host:port`.
    pub target: String,
    /// Why, e.g. "is a loopback address".
    pub reason: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "blocked: {} {}", self.target, self.reason)
    }
}

/// A running proxy. Dropping the last `Arc` stops it accepting, like [`EgressProxy::shutdown`].
pub struct EgressProxy {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
}

impl fmt::Debug for EgressProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EgressProxy")
            .field("local_addr", &self.local_addr)
            .field("policy", &self.shared.policy)
            .finish_non_exhaustive()
    }
}

impl EgressProxy {
    /// Binds the listener (e.g. the build network's gateway IP, or 127.0.0.1:0 in tests) and
    /// spawns the accept loop on the current tokio runtime.
    pub async fn start(addr: SocketAddr, policy: Policy) -> std::io::Result<Arc<EgressProxy>> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            policy: policy.normalized(),
            grants: Mutex::default(),
            next_id: AtomicU64::new(1),
            unauthenticated: Arc::default(),
        });
        let (shutdown, stop) = watch::channel(false);
        tokio::spawn(accept_loop(listener, Arc::clone(&shared), stop));
        tracing::info!(%local_addr, "egress proxy listening");
        Ok(Arc::new(EgressProxy {
            local_addr,
            shared,
            shutdown,
        }))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A credential for one build or sandbox (name like "build-01H..."): requests must carry it
    /// as proxy Basic auth. Dropping the [`Grant`] revokes it (later requests get 407) and closes
    /// the connections it opened.
    pub fn grant(&self, name: &str) -> Grant {
        let token: String = rand::random::<[u8; 32]>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (refusal_tx, refusal_rx) = mpsc::channel(REFUSAL_QUEUE);
        let (revoke, _) = watch::channel(());
        self.shared.grants().insert(
            id,
            GrantEntry {
                name: name.to_string(),
                token: token.clone(),
                refusals: refusal_tx,
                active: Arc::new(AtomicUsize::new(0)),
                revoke,
            },
        );
        Grant {
            id,
            name: name.to_string(),
            token,
            port: self.local_addr.port(),
            shared: Arc::downgrade(&self.shared),
            refusals: refusal_rx,
        }
    }

    /// Stops accepting new connections (tests/shutdown). Open tunnels run on until they end.
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }
}

/// One build's or sandbox's right to use the proxy. Revoked when dropped.
pub struct Grant {
    id: u64,
    name: String,
    token: String,
    port: u16,
    shared: Weak<Shared>,
    refusals: mpsc::Receiver<Refusal>,
}

impl fmt::Debug for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the token: grants end up in logs.
        f.debug_struct("Grant")
            .field("name", &self.name)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Grant {
    /// `http://NAME:TOKEN@HOST:PORT` where HOST is what clients use to reach the proxy (the
    /// gateway IP as seen from containers). An IPv6 HOST is bracketed; NAME is percent-encoded.
    pub fn proxy_url(&self, host: &str) -> String {
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        format!(
            "http://{}:{}@{host}:{}",
            percent_encode(&self.name),
            self.token,
            self.port
        )
    }

    /// Refusals of requests made with this grant, as they happen (bounded; overflow is dropped).
    pub fn refusals(&mut self) -> &mut mpsc::Receiver<Refusal> {
        &mut self.refusals
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            // Dropping the entry drops its revoke sender, which ends the grant's open tunnels.
            shared.grants().remove(&self.id);
        }
    }
}

/// Userinfo may only hold unreserved characters and escapes; clients decode it before sending.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub(crate) struct Shared {
    pub(crate) policy: Policy,
    grants: Mutex<HashMap<u64, GrantEntry>>,
    next_id: AtomicU64,
    /// Connections per source address that have not authenticated yet.
    unauthenticated: Arc<Mutex<HashMap<std::net::IpAddr, usize>>>,
}

/// A connection's place among its source's unauthenticated ones, given back on drop.
pub(crate) struct Unauthenticated {
    source: std::net::IpAddr,
    counts: Arc<Mutex<HashMap<std::net::IpAddr, usize>>>,
}

impl Unauthenticated {
    pub(crate) fn take(shared: &Shared, source: std::net::IpAddr) -> Option<Self> {
        let mut counts = shared
            .unauthenticated
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(source).or_insert(0);
        if *n >= MAX_UNAUTHENTICATED_PER_SOURCE {
            return None;
        }
        *n += 1;
        Some(Self {
            source,
            counts: Arc::clone(&shared.unauthenticated),
        })
    }
}

impl Drop for Unauthenticated {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.source);
            }
        }
    }
}

struct GrantEntry {
    name: String,
    token: String,
    refusals: mpsc::Sender<Refusal>,
    active: Arc<AtomicUsize>,
    revoke: watch::Sender<()>,
}

/// What an authenticated connection carries along from its grant.
pub(crate) struct Session {
    pub(crate) name: String,
    pub(crate) refusals: mpsc::Sender<Refusal>,
    pub(crate) active: Arc<AtomicUsize>,
    /// `changed()` fails once the grant is dropped.
    pub(crate) revoked: watch::Receiver<()>,
}

impl Shared {
    fn grants(&self) -> MutexGuard<'_, HashMap<u64, GrantEntry>> {
        // Nothing panics while holding the lock, but a poisoned map is still a valid map.
        self.grants.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The session for `name`/`token`, if a live grant matches.
    pub(crate) fn authenticate(&self, name: &str, token: &str) -> Option<Session> {
        let grants = self.grants();
        // Names are not secret; only the token comparison must not leak timing.
        let entry = grants
            .values()
            .filter(|g| g.name == name)
            .find(|g| constant_time_eq(g.token.as_bytes(), token.as_bytes()))?;
        Some(Session {
            name: entry.name.clone(),
            refusals: entry.refusals.clone(),
            active: Arc::clone(&entry.active),
            revoked: entry.revoke.subscribe(),
        })
    }
}

/// Compares every byte whatever the first difference; only the (fixed) length leaks.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNS_TOTAL));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            // Also fires when the EgressProxy is dropped (the sender goes away).
            _ = stop.wait_for(|stopped| *stopped) => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                    tracing::warn!(%peer, "egress proxy at its connection limit; dropping");
                    continue;
                };
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    conn::handle(stream, peer, &shared).await;
                    drop(permit);
                });
            }
            Err(e) => {
                // Usually EMFILE: back off instead of spinning on the error.
                tracing::warn!(error = %e, "egress proxy accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    tracing::info!(local_addr = ?listener.local_addr().ok(), "egress proxy stopped accepting");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_display() {
        let r = Refusal {
            target: "127.0.0.1:5000".into(),
            reason: "is a loopback address".into(),
        };
        assert_eq!(
            r.to_string(),
            "blocked: 127.0.0.1:5000 is a loopback address"
        );
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"abcd", b"abcd"));
        assert!(!constant_time_eq(b"abcd", b"abce"));
        assert!(!constant_time_eq(b"abcd", b"abc"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn names_are_percent_encoded() {
        assert_eq!(percent_encode("build-01H_x.y~z"), "build-01H_x.y~z");
        assert_eq!(percent_encode("a:b@c d"), "a%3Ab%40c%20d");
    }
}
