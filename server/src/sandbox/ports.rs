//! Which TCP ports listen in a sandbox (the Try panel's "Open preview"): one `relay ports watch`
//! exec per sandbox while someone asks, printing a line whenever the set changes. It stops after
//! `IDLE` without a question, or when the sandbox ends.
use super::runtime::Runtime;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;
use tokio::sync::watch;

const IDLE: Duration = Duration::from_secs(120);
/// How long the first question waits for the first answer.
const FIRST_ANSWER: Duration = Duration::from_millis(1500);

struct Watch {
    ports: watch::Receiver<Option<Vec<u16>>>,
    asked: Arc<Mutex<Instant>>,
    generation: u64,
}

pub struct PortWatches {
    runtime: Arc<dyn Runtime>,
    watches: Arc<Mutex<HashMap<String, Watch>>>,
    next_generation: Mutex<u64>,
}

/// `ports 8000 8765` → [8000, 8765]
fn parse(line: &str) -> Option<Vec<u16>> {
    let mut words = line.split_whitespace();
    (words.next()? == "ports").then(|| words.filter_map(|w| w.parse().ok()).collect())
}

impl PortWatches {
    pub fn new(runtime: Arc<dyn Runtime>) -> Self {
        Self {
            runtime,
            watches: Arc::default(),
            next_generation: Mutex::new(0),
        }
    }

    /// The sandbox's listening ports now (empty when they are not known yet or it ended).
    pub async fn ports(&self, sandbox_id: &str) -> Vec<u16> {
        let mut rx = self.watch(sandbox_id);
        if rx.borrow().is_none() {
            let _ = tokio::time::timeout(FIRST_ANSWER, rx.wait_for(Option::is_some)).await;
        }
        let now = rx.borrow().clone().unwrap_or_default();
        now
    }

    fn watch(&self, sandbox_id: &str) -> watch::Receiver<Option<Vec<u16>>> {
        let mut watches = self.watches.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = watches.get(sandbox_id) {
            *w.asked.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
            return w.ports.clone();
        }
        let generation = {
            let mut g = self
                .next_generation
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            *g += 1;
            *g
        };
        let (tx, rx) = watch::channel(None);
        let asked = Arc::new(Mutex::new(Instant::now()));
        watches.insert(
            sandbox_id.to_string(),
            Watch {
                ports: rx.clone(),
                asked: asked.clone(),
                generation,
            },
        );
        let (runtime, all, id) = (
            self.runtime.clone(),
            self.watches.clone(),
            sandbox_id.to_string(),
        );
        tokio::spawn(async move {
            if let Ok(io) = runtime.relay(&id, &["ports", "watch"]).await {
                let mut lines = tokio::io::BufReader::new(io).lines();
                let mut tick = tokio::time::interval(Duration::from_secs(5));
                loop {
                    tokio::select! {
                        line = lines.next_line() => match line {
                            Ok(Some(l)) => if let Some(p) = parse(&l) { tx.send_replace(Some(p)); },
                            _ => break,
                        },
                        _ = tick.tick() => {
                            if asked.lock().unwrap_or_else(|p| p.into_inner()).elapsed() > IDLE {
                                break;
                            }
                        }
                    }
                }
            }
            let mut all = all.lock().unwrap_or_else(|p| p.into_inner());
            if all.get(&id).is_some_and(|w| w.generation == generation) {
                all.remove(&id);
            }
        });
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn lines_of_ports() {
        assert_eq!(parse("ports 8000 8765"), Some(vec![8000, 8765]));
        assert_eq!(parse("ports"), Some(vec![]));
        assert_eq!(parse("error x"), None);
    }
}
