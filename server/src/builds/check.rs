//! Smoke checks: a build's promise tested before it goes live. Once the image is in the sandbox
//! engine, the check's command is typed into a sandbox of it — the same runtime, isolation,
//! limits, terminal and interactive shell (PATH included) as a visitor's Try, without network —
//! and the build succeeds only if the command exits 0 and its output contains the expected text.
//! A check cannot pass while the terminal a visitor gets is broken. Here: what a check is and how
//! its output is judged; the sandbox domain runs it (`SmokeRunner`, `SandboxChecks`).
use std::time::Duration;

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
    async fn run(&self, job: &CheckJob<'_>) -> Result<CheckOutput, CheckError>;
}

/// Most output kept from a check's command (the rest is counted, not stored).
pub const MAX_CHECK_OUTPUT: usize = 16 * 1024;

/// A check's command as it ran: what the screen showed (the first `MAX_CHECK_OUTPUT` bytes, as
/// plain text) and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOutput {
    /// None when it did not end in time (it was killed with the sandbox).
    pub exit_code: Option<i64>,
    pub output: String,
    pub truncated: bool,
}

/// Why a check could not run (its sandbox did not start or its terminal failed): the runner's
/// error, its words and cause kept.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct CheckError(Box<dyn std::error::Error + Send + Sync>);

impl CheckError {
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Box::new(e))
    }
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

/// Why a check failed, or None when it passed.
pub fn verdict(check: &SmokeCheck, run: &CheckOutput) -> Option<String> {
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

    fn run(exit_code: Option<i64>, output: &str) -> CheckOutput {
        CheckOutput {
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
