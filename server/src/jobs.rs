//! Background work, registered in one place (`compose`) and started by one runner: periodic jobs
//! (the reaper, the warm-pool refill, the orphan sweep, registry garbage collection, the purge of
//! expired sessions and links) and long-running workers (the build queue, the mail outbox). Each
//! job has a name and a period; every run is counted, timed and, when it fails, logged and
//! counted as a failure (`trythis_job_*` metrics). Nothing else in the server spawns background
//! work; per-request and per-sandbox tasks belong to what they serve.
//!
//! Several replicas over one database: a periodic job is cluster-wide (`every`) or per replica
//! (`every_here`). A cluster-wide job runs only on the replica holding its lease (`leases` table,
//! `db::cluster::acquire_lease`, taken or renewed in one atomic statement before each run, for
//! two periods): once per period in the whole cluster, and a dead holder's job resumes on
//! another replica within two periods. Workers (build queue, mail outbox) run on every replica.
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
    Periodic {
        every: Duration,
        run: Periodic,
        /// Runs on the lease holder only (when the runner has a database to hold leases in).
        cluster_wide: bool,
    },
    Worker(BoxFuture<'static, ()>),
}

/// Where cluster-wide jobs take their leases, and under which holder name.
#[derive(Clone)]
struct Leases {
    db: db::DatabaseConnection,
    holder: String,
}

struct Job {
    name: &'static str,
    work: Work,
}

/// The registered jobs, not yet running.
pub struct Jobs {
    jobs: Vec<Job>,
    metrics: Arc<Metrics>,
    leases: Option<Leases>,
}

impl Jobs {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            jobs: Vec::new(),
            metrics,
            leases: None,
        }
    }

    /// Cluster-wide jobs run only on the replica `holder` while it holds their lease in `db`
    /// (without this, every job runs here: one process, or a test).
    pub fn in_cluster(mut self, db: db::DatabaseConnection, holder: &str) -> Self {
        self.leases = Some(Leases {
            db,
            holder: holder.to_string(),
        });
        self
    }

    /// Runs `run` every `every`, the first run one period after start, on one replica of the
    /// cluster at a time (the holder of the job's lease).
    pub fn every<F, Fut, E>(&mut self, name: &'static str, every: Duration, run: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<usize, E>> + Send + 'static,
        E: Display,
    {
        self.periodic(name, every, run, true);
    }

    /// Runs `run` every `every` on every replica (work that is this replica's own, or safe to
    /// do from several at once).
    pub fn every_here<F, Fut, E>(&mut self, name: &'static str, every: Duration, run: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<usize, E>> + Send + 'static,
        E: Display,
    {
        self.periodic(name, every, run, false);
    }

    fn periodic<F, Fut, E>(&mut self, name: &'static str, every: Duration, run: F, cluster: bool)
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
            work: Work::Periodic {
                every,
                run,
                cluster_wide: cluster,
            },
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
            let leases = self.leases.clone();
            handles.push(tokio::spawn(async move {
                match job.work {
                    Work::Worker(work) => {
                        tokio::select! {
                            _ = work => tracing::info!(job = job.name, "worker ended"),
                            _ = stop.cancelled() => {}
                        }
                    }
                    Work::Periodic {
                        every,
                        run,
                        cluster_wide,
                    } => {
                        let leases = leases.filter(|_| cluster_wide);
                        periodic(job.name, every, run, leases, &metrics, &stop).await
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
    leases: Option<Leases>,
    metrics: &Metrics,
    stop: &CancellationToken,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
        if let Some(l) = &leases {
            // Two periods: the holder renews every period (plus its run's length), so it keeps
            // the lease while it lives; another replica takes over within two periods of its end.
            match db::cluster::acquire_lease(&l.db, name, &l.holder, every * 2).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(job = name, error = %e, "job lease not taken; run skipped");
                    continue;
                }
            }
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
    async fn a_cluster_wide_job_runs_on_one_replica_and_a_per_replica_job_on_each() {
        let db = db::connect_and_migrate("sqlite::memory:")
            .await
            .unwrap_or_else(|e| panic!("db: {e}"));
        let cluster = Arc::new(AtomicUsize::new(0));
        let here = Arc::new(AtomicUsize::new(0));
        let mut replicas = Vec::new();
        for (i, name) in ["a", "b"].into_iter().enumerate() {
            let mut jobs = Jobs::new(Arc::new(Metrics::default())).in_cluster(db.clone(), name);
            let c = cluster.clone();
            // Each replica counts in its own bits: which replicas ran shows in the total.
            let bit = 1 << (8 * i);
            jobs.every("purge", Duration::from_millis(200), move || {
                c.fetch_add(bit, Ordering::SeqCst);
                async { Ok::<_, String>(0) }
            });
            let h = here.clone();
            jobs.every_here("takeover", Duration::from_millis(200), move || {
                h.fetch_add(bit, Ordering::SeqCst);
                async { Ok::<_, String>(0) }
            });
            replicas.push(jobs.start());
        }
        while here.load(Ordering::SeqCst) & 0xff < 3 || here.load(Ordering::SeqCst) >> 8 < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for r in replicas {
            r.stop().await;
        }
        let ran = cluster.load(Ordering::SeqCst);
        let (a, b) = (ran & 0xff, ran >> 8);
        assert!(
            (a > 0) != (b > 0),
            "the cluster-wide job ran {a} times on a and {b} on b"
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
