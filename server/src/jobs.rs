//! Background work, registered in one place (`compose`) and started by one runner: periodic jobs
//! (the reaper, the warm-pool refill, the orphan sweep, registry garbage collection, the purge of
//! expired sessions and links) and long-running workers (the build queue, the mail outbox). Each
//! job has a name and a period; every run is counted, timed and, when it fails, logged and
//! counted as a failure (`trythis_job_*` metrics). Nothing else in the server spawns background
//! work; per-request and per-sandbox tasks belong to what they serve.
use crate::metrics::Metrics;
use futures::future::BoxFuture;
use std::{fmt::Display, future::Future, sync::Arc, time::Duration};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What a periodic run reports: how many things it did (logged when not zero), or why it failed.
pub type RunResult = Result<usize, String>;

type Periodic = Arc<dyn Fn() -> BoxFuture<'static, RunResult> + Send + Sync>;

/// Whether a job runs on a period or for as long as the server does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Periodic,
    Worker,
}

enum Work {
    Periodic { every: Duration, run: Periodic },
    Worker(BoxFuture<'static, ()>),
}

struct Job {
    name: &'static str,
    work: Work,
}

/// The registered jobs, not yet running.
pub struct Jobs {
    jobs: Vec<Job>,
    metrics: Arc<Metrics>,
}

impl Jobs {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            jobs: Vec::new(),
            metrics,
        }
    }

    /// Runs `run` every `every`, the first run one period after start.
    pub fn every<F, Fut, E>(&mut self, name: &'static str, every: Duration, run: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<usize, E>> + Send + 'static,
        E: Display,
    {
        let run: Periodic = Arc::new(move || {
            let fut = run();
            Box::pin(async move { fut.await.map_err(|e| e.to_string()) })
        });
        self.jobs.push(Job {
            name,
            work: Work::Periodic { every, run },
        });
    }

    /// Runs `work` until it returns or the runner stops.
    pub fn worker(&mut self, name: &'static str, work: impl Future<Output = ()> + Send + 'static) {
        self.jobs.push(Job {
            name,
            work: Work::Worker(Box::pin(work)),
        });
    }

    /// The registered jobs: name, kind and period (workers have none).
    pub fn list(&self) -> Vec<(&'static str, Kind, Option<Duration>)> {
        self.jobs
            .iter()
            .map(|j| match &j.work {
                Work::Periodic { every, .. } => (j.name, Kind::Periodic, Some(*every)),
                Work::Worker(_) => (j.name, Kind::Worker, None),
            })
            .collect()
    }

    /// Starts every job.
    pub fn start(self) -> Running {
        self.start_only(&[Kind::Periodic, Kind::Worker])
    }

    /// Starts the jobs of the given kinds; the others are dropped. Integration tests start the
    /// workers only and run the periodic passes themselves, at the moment they choose.
    pub fn start_only(self, kinds: &[Kind]) -> Running {
        let stop = CancellationToken::new();
        let mut handles = Vec::new();
        for job in self.jobs {
            let kind = match job.work {
                Work::Periodic { .. } => Kind::Periodic,
                Work::Worker(_) => Kind::Worker,
            };
            if !kinds.contains(&kind) {
                continue;
            }
            let stop = stop.clone();
            let metrics = self.metrics.clone();
            handles.push(tokio::spawn(async move {
                match job.work {
                    Work::Worker(work) => {
                        tokio::select! {
                            _ = work => tracing::info!(job = job.name, "worker ended"),
                            _ = stop.cancelled() => {}
                        }
                    }
                    Work::Periodic { every, run } => {
                        periodic(job.name, every, run, &metrics, &stop).await
                    }
                }
            }));
        }
        Running { stop, handles }
    }
}

async fn periodic(
    name: &'static str,
    every: Duration,
    run: Periodic,
    metrics: &Metrics,
    stop: &CancellationToken,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
        let started = std::time::Instant::now();
        let result = tokio::select! {
            biased;
            r = run() => r,
            // A pass cut short by shutdown is neither a success nor a failure.
            _ = stop.cancelled() => return,
        };
        metrics.observe_job(name, started.elapsed(), result.is_ok());
        match result {
            Ok(0) => {}
            Ok(n) => tracing::info!(job = name, count = n, "background job done"),
            Err(e) => tracing::warn!(job = name, error = %e, "background job failed"),
        }
    }
}

/// The running jobs. Dropping this leaves them running; `stop` ends them.
pub struct Running {
    stop: CancellationToken,
    handles: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops every job (a periodic pass under way is cut at its next await) and waits for them.
    pub async fn stop(self) {
        self.stop.cancel();
        for h in self.handles {
            let _ = h.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn periodic_jobs_run_on_their_period_and_count_failures() {
        let metrics = Arc::new(Metrics::default());
        let mut jobs = Jobs::new(metrics.clone());
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        jobs.every("flaky", Duration::from_millis(5), move || {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                if n.is_multiple_of(2) {
                    Err("engine gone")
                } else {
                    Ok(1)
                }
            }
        });
        let running = jobs.start();
        while runs.load(Ordering::SeqCst) < 4 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        running.stop().await;
        let n = runs.load(Ordering::SeqCst);
        let text = metrics.render(0, 0);
        assert!(
            text.contains(&format!("trythis_job_runs_total{{job=\"flaky\"}} {n}\n")),
            "{n} runs: {text}"
        );
        let failed = n.div_ceil(2);
        assert!(
            text.contains(&format!(
                "trythis_job_failures_total{{job=\"flaky\"}} {failed}\n"
            )),
            "{failed} failures: {text}"
        );
    }

    #[tokio::test]
    async fn start_only_leaves_the_other_kind_unstarted() {
        let mut jobs = Jobs::new(Arc::new(Metrics::default()));
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        jobs.every("pass", Duration::from_millis(1), move || {
            counted.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, String>(0) }
        });
        let (tx, rx) = tokio::sync::oneshot::channel();
        jobs.worker("worker", async move {
            let _ = tx.send(());
        });
        let running = jobs.start_only(&[Kind::Worker]);
        assert!(rx.await.is_ok(), "the worker ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
        running.stop().await;
        assert_eq!(runs.load(Ordering::SeqCst), 0);
    }
}
