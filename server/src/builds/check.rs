//! Smoke checks: a build's promise tested before it goes live. Once the image is in the sandbox
//! engine, the check's command is typed into a sandbox of it — the same runtime, isolation,
//! limits, terminal and interactive shell (PATH included) as a visitor's Try, without network —
//! and the build succeeds only if the command exits 0 and its output contains the expected text.
//! A check cannot pass while the terminal a visitor gets is broken.
use crate::sandbox::runtime::{
    CommandOutput, LaunchSpec, Runtime, RuntimeError, MAX_COMMAND_OUTPUT,
};
use crate::sandbox::terminal::{proto, Terminals};
use bytes::Bytes;
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

/// Checks in real sandboxes, through the sandbox runtime and its terminals.
pub struct SandboxChecks {
    runtime: Arc<dyn Runtime>,
    terminals: Terminals,
}

impl SandboxChecks {
    pub fn new(runtime: Arc<dyn Runtime>) -> Arc<Self> {
        Arc::new(Self {
            terminals: Terminals::new(runtime.clone()),
            runtime,
        })
    }
}

/// Types `command` into the sandbox's shell as a visitor would and reads the screen until it
/// ends (or `timeout`): its output (what the terminal showed after the typed line) and status.
/// Pagers print instead of waiting for a key, and a command ending in a comment or an open quote
/// cannot swallow the status line (the subshell closes on a line of its own).
pub async fn run_typed(
    terminals: &Terminals,
    sandbox_id: &str,
    command: &str,
    timeout: Duration,
) -> Result<CommandOutput, RuntimeError> {
    let mut attached = terminals
        .attach(sandbox_id, 200, 50)
        .await
        .map_err(|e| RuntimeError::NotReady(e.to_string()))?;
    let token = hex::encode(rand::random::<[u8; 8]>());
    let typed = format!(
        "( export PAGER=cat GIT_PAGER=cat MANPAGER=cat SYSTEMD_PAGER=cat; {command}\r) ; printf '\\n__TRYTHIS_DONE_%s_%s__\\n' {token} \"$?\"\r"
    );
    let mut frame = vec![proto::INPUT];
    frame.extend_from_slice(typed.as_bytes());
    if !attached.session.send(Bytes::from(frame)).await {
        return Err(RuntimeError::NotReady("the shell ended".into()));
    }
    let done = format!("__TRYTHIS_DONE_{token}_");
    let echoed = format!("' {token} \"$?\"");
    let mut screen = String::new();
    for f in attached.first_frames.drain(..) {
        if f.first() == Some(&proto::OUTPUT) {
            screen.push_str(&String::from_utf8_lossy(&f[1..]));
        }
    }
    let reading = async {
        loop {
            if let Some(at) = screen.find(&done) {
                let rest = &screen[at + done.len()..];
                if let Some(end) = rest.find("__") {
                    return Some((at, rest[..end].parse::<i64>().ok()));
                }
            }
            match attached.live.next().await {
                Some(f) if f.first() == Some(&proto::OUTPUT) => {
                    screen.push_str(&String::from_utf8_lossy(&f[1..]))
                }
                Some(_) => {}
                None => return None,
            }
        }
    };
    let ended = tokio::time::timeout(timeout, reading).await;
    terminals.close(sandbox_id);
    let (output, exit_code) = match ended {
        Ok(Some((at, code))) => (&screen[..at], code),
        // Cut off, or still running: what it printed so far, and no status.
        Ok(None) | Err(_) => (screen.as_str(), None),
    };
    // What the command printed starts after the echo of the typed line.
    let output = output
        .rfind(&echoed)
        .map(|i| &output[i..])
        .and_then(|rest| rest.find('\n').map(|nl| &rest[nl + 1..]))
        .unwrap_or("");
    let text = output
        .split('\n')
        .map(crate::builds::readable)
        .collect::<Vec<_>>()
        .join("\n");
    let text = text.trim_end().to_string();
    let truncated = text.len() > MAX_COMMAND_OUTPUT;
    let mut cut = text.len().min(MAX_COMMAND_OUTPUT);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    Ok(CommandOutput {
        exit_code,
        output: text[..cut].to_string(),
        truncated,
    })
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
            Ok(_) => run_typed(&self.terminals, &sandbox_id, command, CHECK_TIMEOUT).await,
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
