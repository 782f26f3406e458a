//! Caps on long-lived connections (build-log streams, terminal sockets) per key: one page that
//! opens hundreds of them cannot hold the server's sockets, tasks and memory. A held slot is
//! given back when its guard drops, that is when the connection ends.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

#[derive(Clone)]
pub struct Caps {
    limit: usize,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

/// One open connection under a key; dropping it frees the slot.
pub struct Held {
    key: String,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

impl Caps {
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            open: Arc::default(),
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
}

impl Default for StreamCaps {
    fn default() -> Self {
        Self {
            terminals_per_identity: Caps::new(8),
            logs_per_identity: Caps::new(8),
            logs_per_build: Caps::new(64),
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
}
