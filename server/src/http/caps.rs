//! Caps on long-lived connections (build-log streams, terminal sockets) per key: one page that
//! opens hundreds of them cannot hold the server's sockets, tasks and memory. A held slot is
//! given back when its guard drops, that is when the connection ends. A server that drains
//! (SIGTERM) ends them all through their guards: `Held::closed` completes.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct Caps {
    limit: usize,
    open: Arc<Mutex<HashMap<String, usize>>>,
    closing: CancellationToken,
}

/// One open connection under a key; dropping it frees the slot.
pub struct Held {
    key: String,
    open: Arc<Mutex<HashMap<String, usize>>>,
    closing: CancellationToken,
}

impl Held {
    /// Completes when the server ends every open connection (it is draining).
    pub async fn closed(&self) {
        self.closing.cancelled().await
    }
}

impl Caps {
    pub fn new(limit: usize) -> Self {
        Self::closed_by(limit, CancellationToken::new())
    }

    /// Caps whose connections all end when `closing` is cancelled.
    pub fn closed_by(limit: usize, closing: CancellationToken) -> Self {
        Self {
            limit,
            open: Arc::default(),
            closing,
        }
    }

    /// A slot under `key`, if fewer than the limit are open.
    pub fn hold(&self, key: &str) -> Option<Held> {
        let mut open = self.open.lock().ok()?;
        let n = open.entry(key.to_string()).or_default();
        if *n >= self.limit {
            return None;
        }
        *n += 1;
        Some(Held {
            key: key.to_string(),
            open: self.open.clone(),
            closing: self.closing.clone(),
        })
    }

    /// Connections one key may hold at once.
    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn open(&self, key: &str) -> usize {
        self.open
            .lock()
            .map(|o| o.get(key).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Ok(mut open) = self.open.lock() {
            if let Some(n) = open.get_mut(&self.key) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&self.key);
                }
            }
        }
    }
}

/// The server's connection caps.
#[derive(Clone)]
pub struct StreamCaps {
    /// Terminal WebSockets per identity (each sandbox also caps its viewers).
    pub terminals_per_identity: Caps,
    /// Build-log event streams per identity and per build.
    pub logs_per_identity: Caps,
    pub logs_per_build: Caps,
    closing: CancellationToken,
}

impl StreamCaps {
    /// Ends every open terminal socket and log stream (the server drains); new ones still open
    /// until the listener closes, and end at once.
    pub fn close_all(&self) {
        self.closing.cancel();
    }
}

impl Default for StreamCaps {
    fn default() -> Self {
        let closing = CancellationToken::new();
        Self {
            terminals_per_identity: Caps::closed_by(8, closing.clone()),
            logs_per_identity: Caps::closed_by(8, closing.clone()),
            logs_per_build: Caps::closed_by(64, closing.clone()),
            closing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_come_back_when_connections_end() {
        let caps = Caps::new(2);
        let a = caps.hold("k").expect("first");
        let b = caps.hold("k").expect("second");
        assert!(caps.hold("k").is_none());
        assert!(caps.hold("other").is_some());
        drop(a);
        let _c = caps.hold("k").expect("freed");
        drop(b);
        assert_eq!(caps.open("k"), 1);
    }

    #[tokio::test]
    async fn closing_ends_every_held_connection() {
        let caps = StreamCaps::default();
        let terminal = caps.terminals_per_identity.hold("k").expect("terminal");
        let log = caps.logs_per_build.hold("b").expect("log");
        let pending = tokio::time::timeout(std::time::Duration::from_millis(50), terminal.closed());
        assert!(pending.await.is_err(), "open before the drain");
        caps.close_all();
        terminal.closed().await;
        log.closed().await;
    }
}
