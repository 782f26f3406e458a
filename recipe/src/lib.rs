//! Recipes for trythis images: checking a maintainer's Dockerfile, and turning the install
//! script from a README into one.
//!
//! Every project on trythis is a Docker image built by Docker's **classic builder** (the one
//! that prints `Step 3/9 : RUN …`) from **the Dockerfile alone**: there is no build context, no
//! BuildKit, and no way to pass build arguments. Visitors then get `bash` (interactive,
//! non-login, so `~/.bashrc` is read) inside a container of the image, in its `WORKDIR`, as its
//! `USER`; the image's `CMD`/`ENTRYPOINT` never run. This crate turns those facts into early,
//! line-numbered answers instead of failed builds. Both functions are pure: no I/O, no Docker.
//!
//! # Dockerfiles: [`validate_dockerfile`]
//!
//! All problems are collected (not just the first), each with its 1-based line:
//!
//! | Dockerfile | verdict |
//! |---|---|
//! | empty, binary (NUL or other control characters), over [`MAX_DOCKERFILE_BYTES`] or [`MAX_LINES`] | refused |
//! | a line the parser cannot read, `FORM ubuntu` (unknown instruction) | refused |
//! | no `FROM`, or an instruction other than `ARG` before the first `FROM` | refused |
//! | final stage `FROM scratch` | refused: nothing to run a shell in |
//! | `FROM $BASE` with no `ARG BASE=default` | refused: build arguments cannot be passed |
//! | `COPY app /app`, `ADD app.tar.gz /` | refused: no build context |
//! | `COPY --from=builder /out /usr/local/bin/`, `ADD https://example.com/x.tgz /opt/` | accepted |
//! | `# syntax=docker/dockerfile:1` | refused: custom BuildKit frontends are not available |
//! | `# escape=\`, `` # escape=` `` | accepted |
//! | `RUN --mount=…`, `--network=…`, `--security=…`, `COPY --chmod`/`--link` | refused: BuildKit only |
//! | `RUN <<EOF` (Dockerfile here-documents) | refused: BuildKit only |
//! | `CMD ["echo", "hi"` (broken JSON form), `CMD ['echo']` (JSON needs double quotes) | refused |
//! | last line ends with `\` | refused |
//! | `HEALTHCHECK CMD …` | refused: it would probe a service that never runs (`HEALTHCHECK NONE` is fine) |
//! | `ONBUILD …`, `VOLUME …`, `CMD …`, `ENTRYPOINT …` | accepted with a warning |
//! | `RUN :(){ :\|:& };:`, `RUN while true; do :; done` | accepted: build limits stop them |
//!
//! Every instruction must also be readable by `dockerfile-parser` (the platform's parser), which
//! is stricter than Docker in two rare spots: `ENV A="\$x"` (write `ENV A='$x'`) and a shell
//! command starting with `[ "…" ]` (write `test "…"`); both are reported on their line.
//! [`Problem`] displays as `line 3: could not parse this RUN instruction`.
//!
//! ```
//! let ok = recipe::validate_dockerfile("FROM debian:bookworm\nRUN apt-get update\nCMD [\"bash\"]\n")
//!     .expect("valid");
//! assert_eq!(ok.base_image, "debian:bookworm");
//! assert_eq!(ok.steps, 3); // the classic builder prints Step 1/3 … Step 3/3
//! assert_eq!(ok.warnings[0].line, Some(3)); // CMD is not run for visitors
//!
//! let problems = recipe::validate_dockerfile("FROM debian\nCOPY . /app\n").expect_err("no context");
//! assert_eq!(problems[0].line, Some(2));
//! ```
//!
//! # Install scripts: [`convert_script`]
//!
//! A README's install snippet becomes a Dockerfile that behaves like running the snippet in a
//! root terminal in `/root`. One `RUN` per command keeps build logs readable. What a shell
//! would carry from one line to the next becomes an instruction that Docker carries from one
//! step to the next (and into the visitor's shell):
//!
//! | you write | trythis emits |
//! |---|---|
//! | `# trythis: base=python:3.12` (before the first command) | `FROM python:3.12` instead of the default base |
//! | `# trythis: workdir=/srv` | `WORKDIR /srv` first (default `WORKDIR /root`) |
//! | `#!/bin/bash`, `set -euo pipefail` | dropped: every `RUN` already stops the build on failure |
//! | `$ npm install -g cowsay` (copied prompt) | `RUN npm install -g cowsay` |
//! | `sudo apt install jq` | `ENV DEBIAN_FRONTEND=noninteractive` once, then `RUN apt-get install -y jq` |
//! | `cd ~/src/app`, `git clone … && cd repo` | `WORKDIR /root/src/app`, `RUN git clone …` + `WORKDIR /root/repo` |
//! | `export PATH="$HOME/.cargo/bin:$PATH"` | `ENV PATH="/root/.cargo/bin:$PATH"` |
//! | `VERSION=1.2.3` | `ARG VERSION="1.2.3"` (seen by later steps, not by visitors) |
//! | `source .venv/bin/activate` | `ENV VIRTUAL_ENV="/root/.venv"` and `ENV PATH="/root/.venv/bin:$PATH"` |
//! | `source ~/.cargo/env` | `ENV PATH="/root/.cargo/bin:$PATH"` |
//! | `source ~/.bashrc` | dropped: the visitor's shell reads it |
//! | `cat <<'EOF' > app.conf` … `EOF` | `RUN printf '%s\n' 'line' … > app.conf` (unquoted `EOF`: `"…$VAR…"`) |
//! | `curl https://sh.rustup.rs -sSf \| sh` | `… \| sh -s -- -y` and `ENV PATH="/root/.cargo/bin:$PATH"` |
//! | `pip install --user x`, `pipx`, `cargo install`, `go install` | `RUN …` and their bin directory on `PATH` |
//! | multi-line `if`/`for`/`case`, multi-line quotes, several here-documents | `RUN eval "$(printf '%s\n' 'line' …)"`: the lines as written, run by `/bin/sh` |
//! | `docker run …`, `cd -`, `# trythis: base=$(rm -rf /)`, an unterminated quote, here-document or `\` | refused, with the line |
//!
//! `cd dir && make` becomes `WORKDIR dir` then `RUN make`, because in a script the directory
//! change lasts for the following lines too. In other combinations (`cd dir; make`,
//! `(cd dir && make)`, `cd a || exit`) the line stays one `RUN`, and the directory change lasts
//! only for that step.
//!
//! ```
//! let out = recipe::convert_script(
//!     "#!/bin/sh\nset -e\nsudo apt update && sudo apt install ripgrep\n",
//!     "debian:bookworm",
//! )
//! .expect("converts");
//! assert!(out.dockerfile.contains("\nENV DEBIAN_FRONTEND=noninteractive\n"));
//! assert!(out.dockerfile.contains("\nRUN apt-get update -y && apt-get install -y ripgrep\n"));
//! assert!(recipe::validate_dockerfile(&out.dockerfile).is_ok());
//! ```

mod check;
mod dockerfile;
mod image;
mod script;
mod shell;

use std::fmt;

pub use check::{propose_check, ProposedCheck};
pub use dockerfile::{instructions, validate_dockerfile};
pub use script::convert_script;

/// Largest Dockerfile accepted. Real Dockerfiles are a few KiB; the bound keeps parsing cheap
/// and a hostile upload small.
pub const MAX_DOCKERFILE_BYTES: usize = 64 * 1024;

/// Largest install script accepted, for the same reasons as [`MAX_DOCKERFILE_BYTES`].
pub const MAX_SCRIPT_BYTES: usize = 64 * 1024;

/// Most lines accepted in a Dockerfile or a script: far above any real recipe, low enough that
/// line-by-line work and the resulting step list stay small.
pub const MAX_LINES: usize = 2000;

/// One thing wrong with (or worth knowing about) an input, where possible with its line.
///
/// Why a struct and not an error enum: the messages are shown verbatim to maintainers next to
/// their text, so the line and a plain sentence are all the callers need.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// 1-based line in the input, `None` when it is about the whole input.
    pub line: Option<usize>,
    /// A sentence for the maintainer, without the line number (see the `Display` impl).
    pub message: String,
}

impl Problem {
    pub(crate) fn at(line: usize, message: impl Into<String>) -> Self {
        Problem {
            line: Some(line),
            message: message.into(),
        }
    }

    pub(crate) fn general(message: impl Into<String>) -> Self {
        Problem {
            line: None,
            message: message.into(),
        }
    }
}

/// `line 3: could not parse this RUN instruction`, or just the message.
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// A Dockerfile that passed [`validate_dockerfile`], with what the build page needs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Validated {
    /// The text to build: the input with a leading byte-order mark removed, CRLF turned into
    /// LF and a final newline ensured (the classic builder reads it the same either way).
    pub dockerfile: String,
    /// The image the final stage starts from (through `FROM <stage>` aliases and global `ARG`
    /// defaults), shown to visitors as "based on".
    pub base_image: String,
    /// Every image a `FROM` starts from (line, reference), stages aside: the platform checks
    /// that each is available before building (builds never pull from Docker Hub silently).
    pub images: Vec<(usize, String)>,
    /// Every image a `COPY --from=<image>` reads (line, reference): the engine fetches it as it
    /// fetches a `FROM` image, so the platform holds it to the same policy.
    pub copied_images: Vec<(usize, String)>,
    /// How many instructions the classic builder will count as `Step n/m` (every instruction,
    /// in every stage, including `ARG`s before the first `FROM`), for the progress bar.
    pub steps: usize,
    /// Accepted things that will not do what the author may expect (`CMD`, `VOLUME`, …).
    pub warnings: Vec<Problem>,
}

/// One instruction of a Dockerfile (see [`instructions`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Instruction {
    /// 1-based line it starts on.
    pub line: usize,
    /// The keyword in upper case.
    pub keyword: String,
    /// Keyword and arguments, continuation lines joined.
    pub text: String,
}

/// An install script turned into a Dockerfile by [`convert_script`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Converted {
    /// The generated Dockerfile; it always passes [`validate_dockerfile`].
    pub dockerfile: String,
    /// The image it starts from (`# trythis: base=…` or the caller's default).
    pub base_image: String,
    /// What was changed or dropped and why, with the script's line numbers.
    pub notes: Vec<Problem>,
    /// For each line of `dockerfile`, the line of the script it comes from (None for what the
    /// conversion adds: the header, FROM, SHELL, the first WORKDIR), so a failed build can
    /// name the maintainer's own line.
    pub script_lines: Vec<Option<usize>>,
}

/// Which kind of input the shared checks are looking at, for their messages.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    Dockerfile,
    Script,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Dockerfile => "Dockerfile",
            Kind::Script => "script",
        }
    }

    fn max_bytes(self) -> usize {
        match self {
            Kind::Dockerfile => MAX_DOCKERFILE_BYTES,
            Kind::Script => MAX_SCRIPT_BYTES,
        }
    }
}

/// Removes a byte-order mark and carriage returns before newlines; ends with a newline.
pub(crate) fn normalize(text: &str) -> String {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = text.replace("\r\n", "\n");
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// The checks that come before reading the text at all: size, binary content, emptiness and
/// line count. They stop at the first failure because nothing else is worth saying then.
pub(crate) fn precheck(original: &str, text: &str, kind: Kind) -> Result<(), Vec<Problem>> {
    let noun = kind.noun();
    if original.len() > kind.max_bytes() {
        // The line where the limit is crossed: a file of one huge line gets its line too.
        let mut seen = 0;
        let line = original
            .split_inclusive('\n')
            .position(|l| {
                seen += l.len();
                seen > kind.max_bytes()
            })
            .map_or(1, |i| i + 1);
        return Err(vec![Problem::at(
            line,
            format!(
                "The {noun} is {} bytes, over the limit of {} bytes ({} KiB) from this line on",
                original.len(),
                kind.max_bytes(),
                kind.max_bytes() / 1024
            ),
        )]);
    }
    for (index, line) in text.lines().enumerate() {
        if let Some(c) = line
            .chars()
            .find(|&c| c.is_control() && c != '\t' && c != '\r')
        {
            return Err(vec![Problem::at(
                index + 1,
                format!(
                    "the {noun} contains binary content (control character U+{:04X}); only text is accepted",
                    u32::from(c)
                ),
            )]);
        }
    }
    if text.trim().is_empty() {
        return Err(vec![match kind {
            Kind::Dockerfile => Problem::at(1, "The Dockerfile is empty: start with FROM <image>"),
            Kind::Script => Problem::general("The script has no commands"),
        }]);
    }
    if let Some(problem) = foreign(text, kind) {
        return Err(vec![problem]);
    }
    let lines = text.lines().count();
    if lines > MAX_LINES {
        return Err(vec![Problem::general(format!(
            "The {noun} has {lines} lines; the limit is {MAX_LINES}"
        ))]);
    }
    Ok(())
}

/// Input of the wrong kind, answered at once instead of at build time: PowerShell or a Windows
/// `cmd` snippet (trythis runs Linux shells), a Dockerfile in the script box, a shell script in
/// the Dockerfile box.
fn foreign(text: &str, kind: Kind) -> Option<Problem> {
    let lines = || {
        text.lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty())
    };
    let windows = "trythis runs Linux shell scripts (bash); paste the project's Linux or macOS install commands instead";
    for (n, line) in lines() {
        let lower = line.to_ascii_lowercase();
        let powershell = [
            "write-host",
            "write-output",
            "invoke-webrequest",
            "invoke-restmethod",
            "invoke-expression",
            "set-executionpolicy",
            "install-module",
            "new-item ",
            "get-childitem",
            "start-process",
            "$env:",
        ]
        .iter()
        .any(|p| lower.starts_with(p) || lower.contains(&format!("| {}", p.trim_end())))
            || lower.contains("| iex")
            || lower.starts_with("iwr ")
            || lower.starts_with("irm ");
        if powershell {
            return Some(Problem::at(
                n,
                format!(
                    "this looks like PowerShell ({}): {windows}",
                    first_word(line)
                ),
            ));
        }
        let cmd = lower == "@echo off"
            || lower.starts_with("rem ")
            || ["choco ", "winget ", "scoop "]
                .iter()
                .any(|p| lower.starts_with(p))
            || windows_path(line)
            || percent_variable(line);
        if cmd {
            return Some(Problem::at(
                n,
                format!(
                    "this looks like a Windows command prompt (cmd) line ({}): {windows}",
                    first_word(line)
                ),
            ));
        }
    }
    let first = lines().find(|(_, l)| !l.starts_with('#'));
    match kind {
        Kind::Script => {
            let (n, line) = first?;
            let word = first_word(line);
            let dockerfile_like = word == "FROM"
                && line.split_whitespace().count() >= 2
                && lines().skip(1).any(|(_, l)| {
                    ["RUN ", "COPY ", "WORKDIR ", "ENV ", "CMD ", "ENTRYPOINT "]
                        .iter()
                        .any(|k| l.starts_with(k))
                });
            dockerfile_like.then(|| Problem::at(n, "this looks like a Dockerfile (FROM, RUN, …): paste it in the Dockerfile box instead of the install-script box"))
        }
        Kind::Dockerfile => {
            let shebang = text.trim_start().starts_with("#!");
            let (n, line) = first?;
            let keyword = first_word(line).to_ascii_uppercase();
            let known = dockerfile::INSTRUCTIONS.contains(&keyword.as_str());
            (!known && (shebang || looks_like_command(line))).then(|| {
                Problem::at(n, format!("this looks like a shell script ({}), not a Dockerfile: paste it in the install-script box, which converts it into a Dockerfile", first_word(line)))
            })
        }
    }
}

fn first_word(line: &str) -> &str {
    line.split_whitespace().next().unwrap_or(line)
}

/// `C:\…` or `%USERPROFILE%\…`.
fn windows_path(line: &str) -> bool {
    let b = line.as_bytes();
    (0..b.len().saturating_sub(3)).any(|i| {
        let starts_word = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'$');
        starts_word
            && b[i].is_ascii_alphabetic()
            && b[i + 1] == b':'
            && b[i + 2] == b'\\'
            && b[i + 3].is_ascii_alphanumeric()
    })
}

/// `%NAME%`, cmd's variables.
fn percent_variable(line: &str) -> bool {
    line.split('%').skip(1).step_by(2).any(|name| {
        // `%PATH%`, not `date +%Y%m%d` or `printf '%s%s'`.
        name.len() >= 3
            && name.len() <= 40
            && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    }) && line.matches('%').count() >= 2
}

/// A first line that is a shell command, not an instruction (`sudo apt-get …`, `curl … | sh`).
fn looks_like_command(line: &str) -> bool {
    let word = first_word(line).trim_start_matches("$ ");
    let word = if word == "$" {
        line.split_whitespace().nth(1).unwrap_or("")
    } else {
        word
    };
    matches!(
        word,
        "sudo"
            | "apt"
            | "apt-get"
            | "curl"
            | "wget"
            | "git"
            | "pip"
            | "pip3"
            | "npm"
            | "npx"
            | "yarn"
            | "cargo"
            | "go"
            | "brew"
            | "cd"
            | "export"
            | "make"
            | "sh"
            | "bash"
            | "python"
            | "python3"
            | "mkdir"
            | "echo"
            | "dnf"
            | "yum"
            | "apk"
            | "snap"
            | "pipx"
            | "gem"
            | "composer"
            | "rustup"
    )
}

/// Orders problems by line (whole-input ones first), keeping discovery order within a line.
pub(crate) fn sort(mut problems: Vec<Problem>) -> Vec<Problem> {
    problems.sort_by_key(|p| p.line);
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_display_their_line() {
        assert_eq!(
            Problem::at(3, "could not parse this RUN instruction").to_string(),
            "line 3: could not parse this RUN instruction"
        );
        assert_eq!(
            Problem::general("The Dockerfile is empty").to_string(),
            "The Dockerfile is empty"
        );
    }

    #[test]
    fn normalize_strips_bom_and_crlf() {
        assert_eq!(normalize("\u{feff}FROM a\r\nRUN b"), "FROM a\nRUN b\n");
    }
}
