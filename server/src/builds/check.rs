//! Smoke checks: a build's promise tested before it goes live. Once the image is in the sandbox
//! engine, the check's command runs in a sandbox of it — the same runtime, isolation, limits and
//! shell (PATH included) as a visitor's Try, without network — and the build succeeds only if
//! the command exits 0 and its output contains the expected text.
use crate::sandbox::runtime::{CommandOutput, LaunchSpec, Runtime, RuntimeError};
use std::{sync::Arc, time::Duration};

/// Longest a check may run; it is a smoke test, not a test suite.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest command and expected text a maintainer may declare.
pub const MAX_CHECK_COMMAND: usize = 1000;
pub const MAX_CHECK_EXPECT: usize = 200;

/// A declared check: `expect` empty means the exit status alone decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmokeCheck {
    pub command: String,
    pub expect: Option<String>,
}

/// Where checks run: sandboxes (`SandboxChecks`), or a fake in the fast tests.
#[async_trait::async_trait]
pub trait SmokeRunner: Send + Sync {
    /// Runs the job's command in a fresh sandbox of its image and removes the sandbox.
    async fn run(&self, job: &CheckJob<'_>) -> Result<CommandOutput, RuntimeError>;
}

/// One check to run: `command` in a sandbox of `image` (`repo@digest`), for build `build_id` of
/// `project` (the sandbox's owner and labels).
#[derive(Debug, Clone, Copy)]
pub struct CheckJob<'a> {
    pub build_id: &'a str,
    pub project: &'a str,
    pub image: &'a str,
    pub command: &'a str,
}

/// Checks in real sandboxes, through the sandbox runtime.
pub struct SandboxChecks {
    runtime: Arc<dyn Runtime>,
}

impl SandboxChecks {
    pub fn new(runtime: Arc<dyn Runtime>) -> Arc<Self> {
        Arc::new(Self { runtime })
    }
}

#[async_trait::async_trait]
impl SmokeRunner for SandboxChecks {
    async fn run(&self, job: &CheckJob<'_>) -> Result<CommandOutput, RuntimeError> {
        let CheckJob {
            build_id,
            project,
            image,
            command,
        } = *job;
        // No row in `sandboxes`: if this process dies mid-check, the next start's reconcile
        // removes the container.
        let sandbox_id = format!("check-{build_id}");
        let spec = LaunchSpec {
            sandbox_id: sandbox_id.clone(),
            owner: format!("build:{build_id}"),
            project: project.to_string(),
            image: image.to_string(),
            expires_unix: chrono::Utc::now().timestamp() + CHECK_TIMEOUT.as_secs() as i64 + 60,
            egress: None,
            welcome: None,
        };
        let result = match self.runtime.launch(&spec).await {
            Ok(_) => {
                self.runtime
                    .run_command(&sandbox_id, command, CHECK_TIMEOUT)
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = self.runtime.destroy(&sandbox_id).await {
            tracing::warn!(sandbox = %sandbox_id, error = %e, "a smoke check's sandbox was not removed");
        }
        result
    }
}

/// Why a check failed, or None when it passed.
pub fn verdict(check: &SmokeCheck, run: &CommandOutput) -> Option<String> {
    let expect = check.expect.as_deref().filter(|e| !e.is_empty());
    match run.exit_code {
        None => Some(format!(
            "`{}` did not finish within {} s.",
            check.command,
            CHECK_TIMEOUT.as_secs()
        )),
        Some(code) if code != 0 => Some(format!(
            "`{}` exited with status {code}{}.",
            check.command,
            if code == 127 {
                " (command not found: is it installed, and on PATH?)"
            } else {
                ""
            }
        )),
        Some(_) => match expect {
            Some(e) if !run.output.contains(e) => Some(format!(
                "the output of `{}` does not contain {e:?}.",
                check.command
            )),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(exit_code: Option<i64>, output: &str) -> CommandOutput {
        CommandOutput {
            exit_code,
            output: output.into(),
            truncated: false,
        }
    }

    fn check(expect: Option<&str>) -> SmokeCheck {
        SmokeCheck {
            command: "cowsay hi".into(),
            expect: expect.map(String::from),
        }
    }

    #[test]
    fn a_check_passes_only_on_status_zero_with_the_expected_text() {
        assert_eq!(
            verdict(&check(Some("< hi >")), &run(Some(0), " < hi >\n")),
            None
        );
        assert_eq!(verdict(&check(None), &run(Some(0), "")), None);
        assert_eq!(verdict(&check(Some("")), &run(Some(0), "x")), None);
        let missing = verdict(&check(Some("< hi >")), &run(Some(0), "moo"));
        assert!(missing.is_some_and(|m| m.contains("does not contain")));
        let not_found = verdict(&check(None), &run(Some(127), "cowsay: not found"));
        assert!(not_found.is_some_and(|m| m.contains("status 127 (command not found")));
        // The expected text does not rescue a failing command.
        assert!(verdict(&check(Some("hi")), &run(Some(1), "hi")).is_some());
        let late = verdict(&check(None), &run(None, ""));
        assert!(late.is_some_and(|m| m.contains("did not finish")));
    }
}
