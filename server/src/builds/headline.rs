//! A failed build in the maintainer's words: the failing step's own last error lines (e.g.
//! `E: Unable to locate package no-such-package-xyz`), then the line of their recipe that ran it
//! (`line 2: RUN apt-get install -y no-such-package-xyz`; for an install script, the script's own
//! line), and the engine's sentence ("… returned a non-zero code: 100") last.
//!
//! Also the step numbers people see: the platform adds instructions after every `FROM` (a
//! `LABEL` for clean-up, the CA bundle's `COPY` and an `ARG`), which the engine counts as steps;
//! the log and the progress count only the maintainer's.

/// The engine's steps mapped to the maintainer's recipe.
#[derive(Debug, Clone, Default)]
pub struct StepMap {
    /// For each engine step (index = step − 1): the maintainer's step number, or None for a step
    /// the platform added.
    engine: Vec<Option<usize>>,
    /// The maintainer's steps: the line to name (in their Dockerfile, or in their script) and its
    /// text as they wrote it.
    own: Vec<OwnStep>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct OwnStep {
    line: Option<usize>,
    text: String,
}

/// Most characters of one quoted line (a long RUN, a long error line).
const MAX_LINE_CHARS: usize = 240;
/// Most error lines in a headline.
const MAX_ERROR_LINES: usize = 3;

fn clip(s: &str) -> String {
    let s = s.trim();
    if s.chars().count() <= MAX_LINE_CHARS {
        s.to_string()
    } else {
        let cut: String = s.chars().take(MAX_LINE_CHARS).collect();
        format!("{cut}…")
    }
}

impl StepMap {
    /// `dockerfile`: what the maintainer's build runs (before the platform's additions);
    /// `injected_after_from`: how many instructions the platform adds after each `FROM`;
    /// `trailing`: how many steps the engine adds at the end (its `labels` option is a last
    /// `LABEL` step); `script`: the install script it was converted from, with the script line
    /// of each line of `dockerfile` (`recipe::Converted::script_lines`).
    pub fn new(
        dockerfile: &str,
        injected_after_from: usize,
        trailing: usize,
        script: Option<(&str, &[Option<usize>])>,
    ) -> Self {
        let script_text: Vec<&str> = script.map(|(s, _)| s.lines().collect()).unwrap_or_default();
        let mut map = StepMap::default();
        for instruction in recipe::instructions(dockerfile) {
            let own = match script {
                Some((_, lines)) => match lines.get(instruction.line - 1).copied().flatten() {
                    Some(n) => OwnStep {
                        line: Some(n),
                        text: clip(script_text.get(n - 1).copied().unwrap_or_default()),
                    },
                    // What the conversion added (FROM, SHELL, WORKDIR): no line of theirs.
                    None => OwnStep {
                        line: None,
                        text: clip(&instruction.text),
                    },
                },
                None => OwnStep {
                    line: Some(instruction.line),
                    text: clip(&instruction.text),
                },
            };
            map.own.push(own);
            map.engine.push(Some(map.own.len()));
            if instruction.keyword == "FROM" {
                map.engine
                    .extend(std::iter::repeat_n(None, injected_after_from));
            }
        }
        map.engine.extend(std::iter::repeat_n(None, trailing));
        map
    }

    /// The maintainer's step count.
    pub fn total(&self) -> usize {
        self.own.len()
    }

    /// The maintainer's step at engine step `step` of `steps` (a platform step counts as the
    /// maintainer's step before it, the `FROM`). None when the engine's count is not the one
    /// this map expects (the numbers are then left as the engine gives them).
    pub fn own_step(&self, step: i32, steps: i32) -> Option<usize> {
        if steps as usize != self.engine.len() || step < 1 {
            return None;
        }
        self.engine[..(step as usize).min(self.engine.len())]
            .iter()
            .rev()
            .find_map(|s| *s)
    }

    /// Whether engine step `step` is one the platform added.
    fn is_platform(&self, step: i32) -> bool {
        step >= 1 && matches!(self.engine.get(step as usize - 1), Some(None))
    }

    /// A log line with the step numbers as the maintainer counts them: `Step 5/9 : RUN x`
    /// becomes `Step 3/6 : RUN x`, and a step the platform added `Platform step : LABEL …`.
    /// Other lines stay as they are.
    pub fn log_line(&self, line: &str, step: Option<(i32, i32)>) -> String {
        let Some((n, m)) = step else {
            return line.to_string();
        };
        let rest = line.split_once(" : ").map_or("", |(_, r)| r);
        if self.is_platform(n) && m as usize == self.engine.len() {
            return format!("Platform step : {rest}");
        }
        match self.own_step(n, m) {
            Some(k) => format!("Step {k}/{} : {rest}", self.total()),
            None => line.to_string(),
        }
    }

    /// The headline of a step that failed: `output` is what the step printed (newest last),
    /// `engine` the engine's sentence, `step` the engine's step number when known.
    pub fn headline(&self, output: &[String], engine: &str, step: Option<(i32, i32)>) -> Headline {
        let (line, instruction) = match step {
            Some((n, m)) if !self.is_platform(n) => match self.own_step(n, m) {
                Some(k) => {
                    let own = &self.own[k - 1];
                    (own.line, Some(own.text.clone()))
                }
                None => (None, None),
            },
            _ => (None, None),
        };
        Headline {
            errors: error_lines(output),
            line,
            instruction,
            engine: engine
                .trim()
                .trim_start_matches("A build step failed: ")
                .to_string(),
        }
    }
}

/// A failed step, as the build page heads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Headline {
    /// The step's own last error lines.
    pub errors: Vec<String>,
    /// The line of the maintainer's recipe (Dockerfile or script) that ran the step.
    pub line: Option<usize>,
    /// That line's text (the instruction, or the script's line).
    pub instruction: Option<String>,
    /// The engine's sentence ("The command '…' returned a non-zero code: 100").
    pub engine: String,
}

/// One part a line, in the order the page shows them; the engine's sentence is always last.
impl std::fmt::Display for Headline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for e in &self.errors {
            writeln!(f, "{e}")?;
        }
        match (self.line, &self.instruction) {
            (Some(n), Some(text)) => writeln!(f, "line {n}: {text}")?,
            (None, Some(text)) => writeln!(f, "in: {text}")?,
            _ => {}
        }
        f.write_str(&self.engine)
    }
}

/// Whether a line of output reads as an error (apt's `E:`, `error:`, `fatal:`, a missing command
/// or file, a Python traceback's last line…).
fn looks_like_error(line: &str) -> bool {
    let l = line.trim_start();
    let lower = l.to_ascii_lowercase();
    l.starts_with("E: ")
        || lower.starts_with("error")
        || lower.starts_with("fatal")
        || lower.starts_with("err!")
        || lower.starts_with("npm err")
        || lower.contains("error:")
        || lower.contains("error[")
        || lower.contains("not found")
        || lower.contains("no such file or directory")
        || lower.contains("permission denied")
        || lower.contains("unable to")
        || lower.contains("could not")
        || lower.contains("cannot ")
        || lower.ends_with("exception")
        || lower.contains("exception:")
}

/// Lines the engine prints about a step, not the step's own output.
fn is_engine_chatter(line: &str) -> bool {
    let l = line.trim_start();
    l.starts_with("---> ")
        || l.starts_with("Removing intermediate container")
        || l.starts_with("Step ")
        || l.starts_with("Platform step :")
}

/// A line whose progress text was cut short by an error on the other stream: apt prints
/// `Building dependency tree...` and appends ` Done` only on success, so its `E: …` on stderr
/// can land on the same line. The error is what follows the last `...`.
fn after_unfinished_progress(line: &str) -> &str {
    match line.rfind("...") {
        Some(i) if looks_like_error(&line[i + 3..]) => line[i + 3..].trim_start(),
        _ => line,
    }
}

/// The step's last error lines: the last run of error-looking lines (at most three), or, when
/// nothing looks like an error, its last two lines.
pub fn error_lines(output: &[String]) -> Vec<String> {
    let lines: Vec<&str> = output
        .iter()
        .map(|l| after_unfinished_progress(l.trim_end()))
        .filter(|l| !l.trim().is_empty() && !is_engine_chatter(l))
        .collect();
    let picked: Vec<&str> = match lines.iter().rposition(|l| looks_like_error(l)) {
        Some(last) => {
            let mut first = last;
            while first > 0
                && looks_like_error(lines[first - 1])
                && last - first + 1 < MAX_ERROR_LINES
            {
                first -= 1;
            }
            lines[first..=last].to_vec()
        }
        None => lines[lines.len().saturating_sub(2)..].to_vec(),
    };
    picked.into_iter().map(clip).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|s| s.to_string()).collect()
    }

    const DF: &str = "FROM trythis/base:bookworm\n# tools\nRUN apt-get update && \\\n    apt-get install -y no-such-package-xyz\nWORKDIR /root\n";

    #[test]
    fn engine_steps_map_to_the_maintainers() {
        // LABEL, COPY and ARG after the FROM, the image's LABEL at the end: the engine counts
        // 7 steps, the maintainer 3.
        let map = StepMap::new(DF, 3, 1, None);
        assert_eq!(map.total(), 3);
        assert_eq!(map.own_step(1, 7), Some(1));
        assert_eq!(
            map.own_step(2, 7),
            Some(1),
            "a platform step counts as the FROM"
        );
        assert_eq!(map.own_step(5, 7), Some(2));
        assert_eq!(map.own_step(6, 7), Some(3));
        assert_eq!(map.own_step(7, 7), Some(3), "the engine's last LABEL");
        assert_eq!(map.own_step(5, 6), None, "another count: left alone");
        assert_eq!(
            map.log_line("Step 5/7 : RUN apt-get update", Some((5, 7))),
            "Step 2/3 : RUN apt-get update"
        );
        assert_eq!(
            map.log_line("Step 2/7 : LABEL trythis.build=x", Some((2, 7))),
            "Platform step : LABEL trythis.build=x"
        );
        assert_eq!(
            map.log_line("Step 7/7 : LABEL trythis.build=x", Some((7, 7))),
            "Platform step : LABEL trythis.build=x"
        );
        assert_eq!(
            map.log_line(" ---> Running in 1", None),
            " ---> Running in 1"
        );
    }

    #[test]
    fn every_stage_gets_its_platform_steps() {
        let map = StepMap::new("FROM a AS x\nRUN one\nFROM b\nRUN two\n", 1, 0, None);
        assert_eq!(map.own_step(6, 6), Some(4));
        assert_eq!(map.own_step(5, 6), Some(3));
        assert_eq!(map.own_step(4, 6), Some(3));
    }

    #[test]
    fn a_failed_step_names_its_error_and_the_recipe_line() {
        let map = StepMap::new(DF, 3, 1, None);
        let h = map.headline(
            &out(&[
                " ---> Running in 0123",
                "Reading package lists...",
                "Building dependency tree...",
                "Reading state information...",
                "E: Unable to locate package no-such-package-xyz",
            ]),
            "A build step failed: The command '/bin/sh -c apt-get update &&     apt-get install -y no-such-package-xyz' returned a non-zero code: 100",
            Some((5, 7)),
        );
        assert_eq!(
            h.errors,
            ["E: Unable to locate package no-such-package-xyz"]
        );
        assert_eq!(h.line, Some(3));
        assert_eq!(
            h.instruction.as_deref(),
            Some("RUN apt-get update &&     apt-get install -y no-such-package-xyz")
        );
        let text = h.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "E: Unable to locate package no-such-package-xyz");
        assert!(lines[1].starts_with("line 3: RUN apt-get update"), "{text}");
        assert!(lines[2].starts_with("The command '/bin/sh -c"), "{text}");
        assert!(
            lines[2].ends_with("returned a non-zero code: 100"),
            "{text}"
        );
    }

    #[test]
    fn a_script_step_names_the_scripts_own_line() {
        let script = "#!/bin/sh\n# install\nsudo apt install no-such-package-xyz\n";
        let c = recipe::convert_script(script, "trythis/base:bookworm").expect("converts");
        let map = StepMap::new(&c.dockerfile, 1, 1, Some((script, &c.script_lines)));
        // FROM, LABEL, SHELL, WORKDIR, ENV DEBIAN_FRONTEND, RUN …, the image's LABEL: the RUN is
        // the step before the last.
        let steps = recipe::instructions(&c.dockerfile).len() as i32 + 2;
        let h = map.headline(
            &out(&["E: Unable to locate package no-such-package-xyz"]),
            "The command returned a non-zero code: 100",
            Some((steps - 1, steps)),
        );
        assert_eq!(h.line, Some(3), "{c:?}");
        assert_eq!(
            h.instruction.as_deref(),
            Some("sudo apt install no-such-package-xyz")
        );
    }

    #[test]
    fn an_error_that_lands_on_an_unfinished_progress_line_stands_alone() {
        // Seen in CI: stdout's unfinished line and stderr's error merged by the engine.
        assert_eq!(
            error_lines(&out(&[
                "Reading package lists...",
                "Building dependency tree...E: Unable to locate package no-such-package-xyz",
            ])),
            ["E: Unable to locate package no-such-package-xyz"]
        );
        // A line that merely contains an ellipsis is left whole.
        assert_eq!(
            error_lines(&out(&["Fetching... done", "error: the fetch failed"])),
            ["error: the fetch failed"]
        );
    }

    #[test]
    fn error_lines_are_the_last_error_block_or_the_last_lines() {
        assert_eq!(
            error_lines(&out(&[
                "error: first",
                "ok line",
                "npm ERR! code E404",
                "npm ERR! 404 Not Found - GET https://registry/x",
                "npm ERR! 404 'x' is not in this registry.",
                "npm ERR! 404 more",
                "Removing intermediate container 1",
            ])),
            [
                "npm ERR! 404 Not Found - GET https://registry/x",
                "npm ERR! 404 'x' is not in this registry.",
                "npm ERR! 404 more"
            ]
        );
        assert_eq!(
            error_lines(&out(&["one", "two", "three"])),
            ["two", "three"]
        );
        assert!(error_lines(&[]).is_empty());
        let long = "E: ".to_string() + &"x".repeat(1000);
        assert_eq!(error_lines(&[long])[0].chars().count(), MAX_LINE_CHARS + 1);
    }
}
