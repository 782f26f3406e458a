//! Prometheus metrics, rendered in the text exposition format. Hand-rolled (a few counters and one
//! histogram) to keep the build lean.
use std::sync::{
    atomic::{AtomicU64, Ordering},
    Mutex,
};

/// Upper bounds (seconds) of the launch-time histogram buckets.
const LAUNCH_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0,
];

/// The phases of a launch: the engine creates and starts the container; then the relay is
/// exec'd, ttyd answers and the shell prints its first byte.
const LAUNCH_PHASES: [&str; 2] = ["engine", "shell"];

#[derive(Default)]
pub struct Metrics {
    launch_counts: [AtomicU64; LAUNCH_BUCKETS.len()],
    launch_sum_micros: AtomicU64,
    launch_total: AtomicU64,
    launch_failures: AtomicU64,
    /// Time in each phase of every launch (a Try's or the warm pool's): see `LAUNCH_PHASES`.
    phase_micros: [AtomicU64; LAUNCH_PHASES.len()],
    phase_launches: AtomicU64,
    rate_limited: AtomicU64,
    /// Web preview requests (until the response head) and their time.
    preview_micros: AtomicU64,
    preview_requests: AtomicU64,
    http: Mutex<std::collections::BTreeMap<(String, u16), u64>>,
    /// Background jobs by name: runs, failed runs, seconds spent.
    jobs: Mutex<std::collections::BTreeMap<&'static str, JobStats>>,
    pub builds_queued: Gauge,
    pub builds_running: Gauge,
    pub builds_succeeded: Gauge,
    pub builds_failed: Gauge,
}

/// A value that goes up and down (also used for monotonic counts, which only call `inc`).
#[derive(Default)]
pub struct Gauge(std::sync::atomic::AtomicI64);

impl Gauge {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Default, Clone, Copy)]
struct JobStats {
    runs: u64,
    failures: u64,
    micros: u64,
}

impl Metrics {
    /// One run of background job `name` (`jobs::Jobs`).
    pub fn observe_job(&self, name: &'static str, took: std::time::Duration, ok: bool) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let stats = jobs.entry(name).or_default();
        stats.runs += 1;
        stats.failures += u64::from(!ok);
        stats.micros += took.as_micros() as u64;
    }

    pub fn observe_launch(&self, secs: f64) {
        for (i, le) in LAUNCH_BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.launch_counts[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.launch_sum_micros
            .fetch_add((secs * 1e6) as u64, Ordering::Relaxed);
        self.launch_total.fetch_add(1, Ordering::Relaxed);
    }

    /// One launch's phases (see `LAUNCH_PHASES`), in order.
    pub fn observe_launch_phases(&self, engine: std::time::Duration, shell: std::time::Duration) {
        for (slot, d) in self.phase_micros.iter().zip([engine, shell]) {
            slot.fetch_add(d.as_micros() as u64, Ordering::Relaxed);
        }
        self.phase_launches.fetch_add(1, Ordering::Relaxed);
    }

    pub fn launch_failed(&self) {
        self.launch_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// One web preview request, from arrival to the response head (the body streams after).
    pub fn preview(&self, took: std::time::Duration) {
        self.preview_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        self.preview_requests.fetch_add(1, Ordering::Relaxed);
    }

    pub fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request. Labels are bounded: any client can send any method name, and each
    /// new label value would be a new series kept forever.
    pub fn http(&self, method: &str, status: u16) {
        let method = match method {
            "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => method,
            _ => "other",
        };
        let status = if (100..600).contains(&status) {
            status
        } else {
            0
        };
        if let Ok(mut m) = self.http.lock() {
            *m.entry((method.to_string(), status)).or_default() += 1;
        }
    }

    /// The exposition text; gauges that live in the database are passed in.
    pub fn render(&self, sandboxes_running: u64, queue_length: u64) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# HELP trythis_sandbox_launch_seconds Time from Try request to a ready terminal."
        );
        let _ = writeln!(s, "# TYPE trythis_sandbox_launch_seconds histogram");
        for (i, le) in LAUNCH_BUCKETS.iter().enumerate() {
            let n = self.launch_counts[i].load(Ordering::Relaxed);
            let _ = writeln!(
                s,
                "trythis_sandbox_launch_seconds_bucket{{le=\"{le}\"}} {n}"
            );
        }
        let total = self.launch_total.load(Ordering::Relaxed);
        let _ = writeln!(
            s,
            "trythis_sandbox_launch_seconds_bucket{{le=\"+Inf\"}} {total}"
        );
        let sum = self.launch_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(s, "trythis_sandbox_launch_seconds_sum {sum}");
        let _ = writeln!(s, "trythis_sandbox_launch_seconds_count {total}");
        let _ = writeln!(
            s,
            "# HELP trythis_sandbox_launch_phase_seconds Time in each phase of the sandbox launches (Tries and the warm pool): engine = create and start the container; shell = relay, ttyd and the shell up to its first byte."
        );
        let _ = writeln!(s, "# TYPE trythis_sandbox_launch_phase_seconds summary");
        let launches = self.phase_launches.load(Ordering::Relaxed);
        for (phase, micros) in LAUNCH_PHASES.iter().zip(&self.phase_micros) {
            let secs = micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(
                s,
                "trythis_sandbox_launch_phase_seconds_sum{{phase=\"{phase}\"}} {secs}"
            );
            let _ = writeln!(
                s,
                "trythis_sandbox_launch_phase_seconds_count{{phase=\"{phase}\"}} {launches}"
            );
        }
        let _ = writeln!(
            s,
            "# HELP trythis_preview_request_seconds Web preview requests, from arrival to the response head."
        );
        let _ = writeln!(s, "# TYPE trythis_preview_request_seconds summary");
        let _ = writeln!(
            s,
            "trythis_preview_request_seconds_sum {}",
            self.preview_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(
            s,
            "trythis_preview_request_seconds_count {}",
            self.preview_requests.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "# HELP trythis_sandbox_launch_failures_total Try launches that failed."
        );
        let _ = writeln!(s, "# TYPE trythis_sandbox_launch_failures_total counter");
        let _ = writeln!(
            s,
            "trythis_sandbox_launch_failures_total {}",
            self.launch_failures.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "# HELP trythis_try_rate_limited_total Try requests answered 429."
        );
        let _ = writeln!(s, "# TYPE trythis_try_rate_limited_total counter");
        let _ = writeln!(
            s,
            "trythis_try_rate_limited_total {}",
            self.rate_limited.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "# HELP trythis_sandboxes_running Sandboxes holding a slot (starting or ready)."
        );
        let _ = writeln!(s, "# TYPE trythis_sandboxes_running gauge");
        let _ = writeln!(s, "trythis_sandboxes_running {sandboxes_running}");
        let _ = writeln!(
            s,
            "# HELP trythis_try_queue_length Try requests waiting for capacity."
        );
        let _ = writeln!(s, "# TYPE trythis_try_queue_length gauge");
        let _ = writeln!(s, "trythis_try_queue_length {queue_length}");
        let _ = writeln!(s, "# HELP trythis_builds_total Image builds by outcome.");
        let _ = writeln!(s, "# TYPE trythis_builds_total counter");
        for (outcome, g) in [
            ("succeeded", &self.builds_succeeded),
            ("failed", &self.builds_failed),
        ] {
            let _ = writeln!(
                s,
                "trythis_builds_total{{outcome=\"{outcome}\"}} {}",
                g.get()
            );
        }
        let _ = writeln!(s, "# HELP trythis_builds Builds waiting and running.");
        let _ = writeln!(s, "# TYPE trythis_builds gauge");
        let _ = writeln!(
            s,
            "trythis_builds{{state=\"queued\"}} {}",
            self.builds_queued.get().max(0)
        );
        let _ = writeln!(
            s,
            "trythis_builds{{state=\"running\"}} {}",
            self.builds_running.get().max(0)
        );
        let jobs: Vec<_> = self
            .jobs
            .lock()
            .map(|j| j.iter().map(|(k, v)| (*k, *v)).collect())
            .unwrap_or_default();
        for (metric, help, kind) in [
            (
                "trythis_job_runs_total",
                "Runs of each background job.",
                "counter",
            ),
            (
                "trythis_job_failures_total",
                "Runs of each background job that failed (each is logged).",
                "counter",
            ),
            (
                "trythis_job_seconds_total",
                "Time spent in each background job.",
                "counter",
            ),
        ] {
            let _ = writeln!(s, "# HELP {metric} {help}");
            let _ = writeln!(s, "# TYPE {metric} {kind}");
            for (job, st) in &jobs {
                let value = match metric {
                    "trythis_job_runs_total" => st.runs.to_string(),
                    "trythis_job_failures_total" => st.failures.to_string(),
                    _ => (st.micros as f64 / 1e6).to_string(),
                };
                let _ = writeln!(s, "{metric}{{job=\"{job}\"}} {value}");
            }
        }
        let _ = writeln!(
            s,
            "# HELP trythis_http_requests_total HTTP requests by method and status."
        );
        let _ = writeln!(s, "# TYPE trythis_http_requests_total counter");
        if let Ok(m) = self.http.lock() {
            for ((method, status), n) in m.iter() {
                let _ = writeln!(
                    s,
                    "trythis_http_requests_total{{method=\"{method}\",status=\"{status}\"}} {n}"
                );
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let m = Metrics::default();
        m.observe_launch(0.15);
        m.observe_launch(3.0);
        let text = m.render(2, 0);
        assert!(
            text.contains("trythis_sandbox_launch_seconds_bucket{le=\"0.1\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("trythis_sandbox_launch_seconds_bucket{le=\"0.2\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("trythis_sandbox_launch_seconds_bucket{le=\"5\"} 2"),
            "{text}"
        );
        assert!(text.contains("trythis_sandbox_launch_seconds_count 2"));
        assert!(text.contains("trythis_sandboxes_running 2"));
    }

    #[test]
    fn launch_phases_add_up_per_phase() {
        let m = Metrics::default();
        let ms = std::time::Duration::from_millis;
        m.observe_launch_phases(ms(300), ms(200));
        m.observe_launch_phases(ms(100), ms(50));
        let text = m.render(0, 0);
        for line in [
            "trythis_sandbox_launch_phase_seconds_sum{phase=\"engine\"} 0.4\n",
            "trythis_sandbox_launch_phase_seconds_sum{phase=\"shell\"} 0.25\n",
            "trythis_sandbox_launch_phase_seconds_count{phase=\"shell\"} 2\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }

    #[test]
    fn request_labels_are_bounded() {
        let m = Metrics::default();
        for i in 0..1000 {
            m.http(&format!("M{i}"), 405);
        }
        m.http("GET", 200);
        let text = m.render(0, 0);
        let series = text
            .lines()
            .filter(|l| l.starts_with("trythis_http_requests_total{"))
            .count();
        assert_eq!(series, 2, "{text}");
        assert!(
            text.contains("method=\"other\",status=\"405\"} 1000"),
            "{text}"
        );
    }
}
