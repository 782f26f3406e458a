//! What a shell carries from one line to the next, carried into the Dockerfile: shell options,
//! functions and computed values (through `BASH_ENV`), the directory, variables, virtualenvs.

use super::*;

/// The name of the function a unit defines (`name() {`, `function name {`), if it starts with one.
pub(super) fn defines_function(text: &str) -> Option<String> {
    let t = text.trim_start();
    let keyword = t.strip_prefix("function ").map(str::trim_start);
    let rest = keyword.unwrap_or(t);
    let len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(rest.len());
    if len == 0 || rest[..len].chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let after = rest[len..].trim_start();
    let parens = after.starts_with("()")
        || after
            .strip_prefix('(')
            .is_some_and(|a| a.trim_start().starts_with(')'));
    (parens || (keyword.is_some() && after.starts_with('{'))).then(|| rest[..len].to_string())
}

/// `set -e`, `set -euo pipefail`, `set +x`: shell options only.
pub(super) fn set_options(args: &[&str]) -> bool {
    let mut i = 0;
    if args.is_empty() {
        return false;
    }
    while let Some(arg) = args.get(i) {
        let option = (arg.starts_with('-') || arg.starts_with('+'))
            && arg.len() > 1
            && arg[1..].chars().all(|c| c.is_ascii_alphabetic());
        if !option {
            return false;
        }
        i += if arg.ends_with('o') && args.get(i + 1).is_some() {
            2
        } else {
            1
        };
    }
    true
}

impl Converter {
    /// Whether the steps run under bash (every base image but Alpine's and BusyBox's has it).
    pub(super) fn uses_bash(&self) -> bool {
        let base = self.base.as_deref().unwrap_or(&self.default_base);
        let name = base.rsplit('/').next().unwrap_or(base);
        !(name.contains("alpine") || name.starts_with("busybox"))
    }
    /// A step with the shell options the script changed: the build's shell stops at the first
    /// failing command of any pipeline unless the script said otherwise.
    pub(super) fn with_options(&self, entry: String) -> String {
        let Some(cmd) = entry.strip_prefix("RUN ") else {
            return entry;
        };
        let mut prefix = String::new();
        if self.errexit_off {
            prefix.push_str("set +e; ");
        }
        if self.pipefail_off {
            prefix.push_str("set +o pipefail; ");
        }
        if self.nounset {
            prefix.push_str("set -u; ");
        }
        let mut out = format!("RUN {prefix}{cmd}");
        if self.errexit_off {
            let tail = out.trim_end();
            out.push_str(if tail.ends_with('&') || tail.ends_with(';') {
                " true"
            } else {
                " || true"
            });
        }
        out
    }
    /// A variable computed by a command (`ARCH=$(uname -m)`): computed in its step, as in the
    /// script, and its value kept in the functions file that bash reads before every later step.
    pub(super) fn keep_computed(
        &mut self,
        name: &str,
        raw: &str,
        export: bool,
        line: usize,
    ) -> Special {
        let keyword = if export { "export " } else { "" };
        let mut lines = vec![format!(
            "RUN {name}={raw}; printf '{keyword}%s=%q\\n' {name} \"${name}\" >> {FUNCTIONS_FILE}"
        )];
        if !self.functions_env {
            self.functions_env = true;
            lines.push(format!("ENV BASH_ENV={FUNCTIONS_FILE}"));
        }
        self.note(
            line,
            format!("{name} is computed by a command: its value at this point is kept in {FUNCTIONS_FILE}, which bash reads before every later step (BASH_ENV)"),
        );
        if export {
            self.env_names.insert(name.to_string());
        }
        self.vars.insert(name.to_string(), None);
        Special::Lines(lines)
    }
    /// A function definition: appended to the functions file, which bash reads before every
    /// later step (`BASH_ENV`), so the script's later lines can call it as in the script.
    pub(super) fn keep_function(&mut self, text: &str, name: &str, line: usize) {
        let mut out = String::from("RUN printf '%s\\n' \\\n");
        for l in text.trim_end_matches('\n').split('\n') {
            out.push_str(&format!("      {} \\\n", shell::single_quote(l)));
        }
        out.push_str(&format!("    >> {FUNCTIONS_FILE}"));
        self.body.push(out);
        // After the first write: bash complains about a BASH_ENV file that does not exist.
        if !self.functions_env {
            self.functions_env = true;
            self.body.push(format!("ENV BASH_ENV={FUNCTIONS_FILE}"));
        }
        self.note(
            line,
            format!("the function {name} is kept in {FUNCTIONS_FILE}, which bash reads before every later step (BASH_ENV), so later lines can call it"),
        );
    }
    /// `set` with options: errexit, pipefail and nounset carry over to every later step (the
    /// steps run under `bash -e -o pipefail` until the script says otherwise); tracing is
    /// dropped.
    pub(super) fn set(&mut self, args: &[&str], line: usize) {
        let mut i = 0;
        let mut changed = Vec::new();
        while let Some(arg) = args.get(i) {
            i += 1;
            let on = arg.starts_with('-');
            for c in arg[1..].chars() {
                let option = match c {
                    'o' => {
                        i += 1;
                        args.get(i - 1).copied().unwrap_or_default()
                    }
                    'e' => "errexit",
                    'u' => "nounset",
                    'x' => "xtrace",
                    'v' => "verbose",
                    _ => "",
                };
                match option {
                    "errexit" => self.errexit_off = !on,
                    "pipefail" => self.pipefail_off = !on,
                    "nounset" if !self.body.iter().any(|l| l.starts_with("RUN ")) => {
                        self.shell_nounset = on;
                        self.nounset = false;
                    }
                    "nounset" => self.nounset = on && !self.shell_nounset,
                    "xtrace" | "verbose" => {
                        self.note(
                            line,
                            "set -x / -v (tracing) dropped: the build log shows every step",
                        );
                        continue;
                    }
                    other => {
                        self.problem(
                            line,
                            format!(
                                "set {}{} cannot be carried over to the build's steps; remove it",
                                if on { '-' } else { '+' },
                                if other.is_empty() {
                                    c.to_string()
                                } else {
                                    format!("o {other}")
                                }
                            ),
                        );
                        continue;
                    }
                }
                changed.push(format!("{}{option}", if on { "-" } else { "+" }));
            }
        }
        if !changed.is_empty() {
            let shell = if self.uses_bash() { "bash" } else { "sh" };
            let default =
                !(self.errexit_off || self.pipefail_off || self.nounset || self.shell_nounset);
            let message = if default {
                format!("set {} dropped: every step already runs under {shell} -e -o pipefail, which stops at the first failing command", args.join(" "))
            } else {
                format!(
                    "set {}: every later step runs with it ({shell} -e -o pipefail otherwise)",
                    args.join(" ")
                )
            };
            self.note(line, message);
        }
    }
    /// `NAME=value` lines: `ARG` (seen by later steps only) or `ENV` for variables that are
    /// already in the environment (`PATH`, or set by an earlier export).
    pub(super) fn assignments(&mut self, lexer: &Lexer, cmd: &Cmd, line: usize) -> Option<Special> {
        let mut lines = Vec::new();
        let mut updates = Vec::new();
        for &tok in &cmd.words {
            let (name, raw) = shell::assignment(word(lexer, tok))?;
            match self.value(raw) {
                Ok((value, literal)) => {
                    let env = self.env_names.contains(name)
                        || matches!(name, "PATH" | "HOME" | "LANG" | "USER" | "SHELL")
                        || name.starts_with("LC_");
                    let keyword = if env { "ENV" } else { "ARG" };
                    lines.push(format!("{keyword} {name}={value}"));
                    updates.push((name.to_string(), literal, value));
                }
                Err(_) if self.uses_bash() && cmd.words.len() == 1 && cmd.name.is_none() => {
                    return Some(self.keep_computed(name, raw, false, line));
                }
                Err(reason) => {
                    self.note(line, format!("{name} is {reason}; later steps will not see it (only this step does): compute it in the step that uses it, or write the value"));
                    return None;
                }
            }
        }
        for (name, literal, value) in updates {
            self.track(&name, literal, &value);
        }
        Some(Special::Lines(lines))
    }
    pub(super) fn track(&mut self, name: &str, literal: Option<String>, docker_value: &str) {
        if name == "PATH" {
            for dir in docker_value.trim_matches('"').split(':') {
                if !dir.contains('$') {
                    self.on_path.insert(dir.to_string());
                }
            }
        }
        self.vars.insert(name.to_string(), literal);
    }
    pub(super) fn cd(&mut self, args: &[&str], line: usize) -> Option<Special> {
        let paths: Vec<&str> = args
            .iter()
            .copied()
            .filter(|a| !matches!(*a, "-P" | "-L" | "-e"))
            .collect();
        let raw = match paths.as_slice() {
            [] => "~",
            [one] => one,
            _ => return None,
        };
        if raw == "-" {
            self.problem(
                line,
                "cd - (back to the previous directory) is not supported; write the directory",
            );
            return Some(Special::Drop);
        }
        let Some(parsed) = shell::parse_word(raw, false) else {
            self.problem(line, "cd into a directory computed by a command cannot carry over to later steps; write the directory, or join the commands that need it with &&");
            return Some(Special::Drop);
        };
        if parsed.glob {
            self.problem(
                line,
                format!("cd {raw}: a wildcard cannot become WORKDIR; write the directory name"),
            );
            return Some(Special::Drop);
        }
        let mut path = String::new();
        let mut known = true;
        for piece in parsed.pieces {
            match piece {
                Piece::Lit(text) => path.push_str(&text),
                Piece::Home => path.push_str(HOME),
                Piece::Pwd => match &self.cwd {
                    Some(cwd) => path.push_str(cwd),
                    None => return None,
                },
                Piece::Var { name, raw } => match self.vars.get(&name) {
                    Some(Some(value)) => path.push_str(value),
                    _ => {
                        known = false;
                        path.push_str(&raw);
                    }
                },
            }
        }
        if path.is_empty() || path.contains(['\\', '"', '\'']) {
            return None;
        }
        let absolute = path.starts_with('/');
        let path = match (&self.cwd, absolute) {
            (_, true) => path,
            (Some(cwd), false) => format!("{cwd}/{path}"),
            (None, false) => {
                known = false;
                path
            }
        };
        let path = if known { normalize_path(&path) } else { path };
        self.cwd = known.then(|| path.clone());
        Some(Special::Lines(vec![format!("WORKDIR {path}")]))
    }
    pub(super) fn export(&mut self, args: &[&str], line: usize) -> Option<Special> {
        if args.is_empty() || args.iter().any(|a| a.starts_with('-')) {
            return None;
        }
        let mut pairs = Vec::new();
        let mut updates = Vec::new();
        for &arg in args {
            if let Some((name, raw)) = shell::assignment(arg) {
                match self.value(raw) {
                    Ok((value, literal)) => {
                        pairs.push(format!("{name}={value}"));
                        updates.push((name.to_string(), literal, value));
                    }
                    Err(_) if self.uses_bash() && args.len() == 1 => {
                        return Some(self.keep_computed(name, raw, true, line));
                    }
                    Err(reason) => {
                        self.note(line, format!("{name} is {reason}, so it cannot become ENV; it only lasts for this step: compute it in the step that uses it, or write the value"));
                        return None;
                    }
                }
            } else if shell::valid_name(arg) {
                if self.vars.contains_key(arg) {
                    pairs.push(format!("{arg}=\"${{{arg}}}\""));
                    updates.push((
                        arg.to_string(),
                        self.vars.get(arg).cloned().flatten(),
                        String::new(),
                    ));
                } else {
                    self.note(line, format!("export {arg} without a value was dropped: {arg} is not set earlier in the script"));
                }
            } else {
                return None;
            }
        }
        for (name, literal, value) in updates {
            self.env_names.insert(name.clone());
            self.track(&name, literal, &value);
        }
        if pairs.is_empty() {
            return Some(Special::Drop);
        }
        Some(Special::Lines(vec![format!("ENV {}", pairs.join(" "))]))
    }
    pub(super) fn source(&mut self, args: &[&str], line: usize) -> Option<Special> {
        let [raw] = args else {
            return None;
        };
        let parsed = shell::parse_word(raw, false)?;
        let mut path = String::new();
        for piece in parsed.pieces {
            match piece {
                Piece::Lit(text) => path.push_str(&text),
                Piece::Home => path.push_str(HOME),
                Piece::Pwd => path.push_str(self.cwd.as_deref()?),
                Piece::Var { name, .. } => path.push_str(self.vars.get(&name)?.as_deref()?),
            }
        }
        if let Some(venv) = path.strip_suffix("bin/activate") {
            let venv = venv.trim_end_matches('/');
            let venv = match (venv.starts_with('/'), &self.cwd) {
                (true, _) => normalize_path(venv),
                (false, Some(cwd)) => normalize_path(&format!("{cwd}/{venv}")),
                (false, None) => {
                    self.problem(line, "the virtual environment's absolute path is unknown here (after a cd into a variable); activate it with an absolute path");
                    return Some(Special::Drop);
                }
            };
            self.venv = true;
            self.env_names.insert("VIRTUAL_ENV".into());
            self.on_path.insert(format!("{venv}/bin"));
            return Some(Special::Lines(vec![
                format!("ENV VIRTUAL_ENV=\"{venv}\""),
                format!("ENV PATH=\"{venv}/bin:$PATH\""),
            ]));
        }
        if path == format!("{HOME}/.cargo/env") {
            let dir = format!("{HOME}/.cargo/bin");
            if self.on_path.insert(dir.clone()) {
                self.note(line, format!("source {raw} became ENV PATH with {dir}, so later steps and visitors find cargo"));
                return Some(Special::Lines(vec![format!("ENV PATH=\"{dir}:$PATH\"")]));
            }
            self.note(
                line,
                format!("source {raw} dropped: {dir} is already on PATH"),
            );
            return Some(Special::Drop);
        }
        let rc_files = [
            ".bashrc",
            ".profile",
            ".bash_profile",
            ".zshrc",
            ".zprofile",
        ];
        if rc_files.iter().any(|f| path == format!("{HOME}/{f}")) {
            self.note(line, format!("source {raw} dropped: the visitor's shell reads ~/.bashrc itself, and later build steps do not see what it sets (use export for that)"));
            return Some(Special::Drop);
        }
        self.note(
            line,
            format!("source {raw} only affects this step; later steps do not see what it sets"),
        );
        None
    }
    /// A shell value as a Dockerfile `ENV`/`ARG` value, and its text when it is plain.
    pub(super) fn value(&self, raw: &str) -> Result<(String, Option<String>), &'static str> {
        let parsed =
            shell::parse_word(raw, true).ok_or("computed by a command or uses $1, $? or `…`")?;
        let mut text = String::new();
        let mut literal = String::new();
        let mut vars = false;
        let mut dollar = false;
        let pieces = parsed.pieces;
        for (i, piece) in pieces.iter().enumerate() {
            match piece {
                Piece::Lit(lit) => {
                    dollar |= lit.contains('$');
                    literal.push_str(lit);
                    text.push_str(&lit.replace('\\', "\\\\").replace('"', "\\\""));
                }
                Piece::Home => {
                    literal.push_str(HOME);
                    text.push_str(HOME);
                }
                Piece::Pwd => {
                    let cwd = self
                        .cwd
                        .as_deref()
                        .ok_or("relative to an unknown directory")?;
                    literal.push_str(cwd);
                    text.push_str(cwd);
                }
                Piece::Var { name, raw } => {
                    vars = true;
                    let glued = matches!(pieces.get(i + 1), Some(Piece::Lit(next))
                        if next.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_'));
                    if glued && !raw.starts_with("${") {
                        text.push_str(&format!("${{{name}}}"));
                    } else {
                        text.push_str(raw);
                    }
                }
            }
        }
        match (vars, dollar) {
            (true, true) => Err("a mix of a literal $ and variables"),
            (true, false) => Ok((format!("\"{text}\""), None)),
            (false, true) if literal.contains(['\'', '\\']) => {
                Err("a mix of a literal $ and quotes")
            }
            (false, true) => Ok((format!("'{literal}'"), Some(literal))),
            (false, false) => Ok((format!("\"{text}\""), Some(literal))),
        }
    }
}
