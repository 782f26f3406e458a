//! Per-tool rewrites: `sudo` removed, `apt` made non-interactive, rustup's installer told `-y`,
//! tools' install directories put on `PATH`.

use super::*;

/// `-y`, `--yes`, `--assume-yes` or a short-option cluster with `y` (`-qy`).
pub(super) fn is_yes(word: &str) -> bool {
    matches!(word, "--yes" | "--assume-yes")
        || (word.starts_with('-')
            && !word.starts_with("--")
            && word.len() > 1
            && word[1..].chars().all(|c| c.is_ascii_alphabetic())
            && word.contains('y'))
}

impl Converter {
    /// Skips `NAME=value` and `sudo …` prefixes to find the command name; removes the sudo.
    pub(super) fn resolve_name(&mut self, lexer: &Lexer, cmd: &mut Cmd, edits: &mut Vec<Edit>) {
        if reserved(lexer, cmd) {
            return;
        }
        let mut k = 0;
        while let Some(&tok) = cmd.words.get(k) {
            let text = word(lexer, tok);
            if shell::assignment(text).is_some() {
                k += 1;
                continue;
            }
            if text != "sudo" {
                cmd.name = Some(k);
                return;
            }
            cmd.sudo = true;
            let line = lexer.toks[tok].line();
            let mut j = k + 1;
            while let Some(&option_tok) = cmd.words.get(j) {
                let option = word(lexer, option_tok);
                if option == "--" {
                    j += 1;
                    break;
                }
                if !option.starts_with('-') || option == "-" {
                    break;
                }
                j += 1;
                let user = if let Some(user) = option.strip_prefix("--user=") {
                    Some(user.to_string())
                } else if option == "--user" || option == "-u" {
                    let user = cmd.words.get(j).map(|&t| word(lexer, t).to_string());
                    j += 1;
                    user
                } else if let Some(user) = option.strip_prefix("-u") {
                    Some(user.to_string())
                } else if matches!(option, "--preserve-env" | "--login" | "--shell")
                    || option.starts_with("--preserve-env=")
                    || (option.len() > 1
                        && !option.starts_with("--")
                        && option[1..].chars().all(|c| "EHnSkPisb".contains(c)))
                {
                    None
                } else {
                    self.problem(
                        line,
                        format!("sudo {option} is not understood; the build already runs as root, so write the command without sudo"),
                    );
                    None
                };
                if let Some(user) = user {
                    if !matches!(user.as_str(), "root" | "0" | "#0") {
                        self.problem(
                            line,
                            format!("sudo as another user ({user}) is not supported; the build runs as root"),
                        );
                    }
                }
            }
            // Delete `sudo` and its options with the blanks after them, up to whatever token
            // follows (a redirection stays).
            let last_option = cmd.words.get(j.saturating_sub(1)).copied().unwrap_or(tok);
            let end = match lexer.toks.get(last_option + 1) {
                Some(next) if last_option < cmd.last => next.start(),
                _ => lexer.toks[last_option].end(),
            };
            edits.push(Edit::new(lexer.toks[tok].start(), end, ""));
            k = j;
        }
    }
    /// Rewrites and notes that apply wherever a command appears (also inside eval'd blocks).
    pub(super) fn features(
        &mut self,
        lexer: &Lexer,
        cmds: &[Cmd],
        edits: &mut Vec<Edit>,
        pre: &mut Vec<String>,
        post: &mut Vec<String>,
    ) {
        let activates = cmds.iter().any(|c| {
            (word_is(lexer, c, "source") || word_is(lexer, c, "."))
                && args(lexer, c)
                    .first()
                    .is_some_and(|a| a.ends_with("bin/activate"))
        });
        for (index, cmd) in cmds.iter().enumerate() {
            let Some(k) = cmd.name else {
                continue;
            };
            let name_tok = cmd.words[k];
            let name = word(lexer, name_tok);
            let line = lexer.toks[name_tok].line();
            let rest: Vec<&str> = cmd.words[k + 1..].iter().map(|&t| word(lexer, t)).collect();
            match name {
                "docker" | "docker-compose" | "podman" | "nerdctl" => self.problem(
                    line,
                    format!("{name} is not available inside the build (there is no container engine in it); remove this command"),
                ),
                "apt" | "apt-get" => {
                    let changes_packages = self.apt(lexer, cmd, k, edits);
                    if changes_packages && !self.apt_env {
                        self.apt_env = true;
                        pre.push("ENV DEBIAN_FRONTEND=noninteractive".into());
                    }
                }
                "add-apt-repository" if !rest.iter().any(|w| is_yes(w)) => {
                    let end = lexer.toks[name_tok].end();
                    edits.push(Edit::new(end, end, " -y"));
                }
                "pip" | "pip3" | "python" | "python3" => {
                    let install = match name {
                        "pip" | "pip3" => rest.first() == Some(&"install"),
                        _ => rest.starts_with(&["-m", "pip", "install"]),
                    };
                    if install {
                        if rest.contains(&"--user") {
                            self.add_path("/root/.local/bin", "pip install --user puts commands in ~/.local/bin", line, post);
                        }
                        if !self.venv && !activates && !self.pip_env {
                            self.pip_env = true;
                            pre.push("ENV PIP_BREAK_SYSTEM_PACKAGES=1".into());
                            self.note(line, "pip installs outside a virtual environment are refused by Debian-based images (PEP 668); PIP_BREAK_SYSTEM_PACKAGES=1 allows them");
                        }
                    }
                }
                "pipx" if rest.first() == Some(&"install") => {
                    self.add_path("/root/.local/bin", "pipx puts commands in ~/.local/bin", line, post)
                }
                "cargo" if rest.first() == Some(&"install") => {
                    self.add_path("/root/.cargo/bin", "cargo install puts commands in ~/.cargo/bin", line, post)
                }
                "go" if rest.first() == Some(&"install") => {
                    self.add_path("/root/go/bin", "go install puts commands in ~/go/bin", line, post)
                }
                "sh" | "bash" | "zsh" | "dash" if cmd.sep == Some(Op::Pipe) => {
                    let fetcher = index
                        .checked_sub(1)
                        .and_then(|i| cmds.get(i))
                        .filter(|p| word_is(lexer, p, "curl") || word_is(lexer, p, "wget"));
                    if let Some(fetcher) = fetcher {
                        self.note(line, "this downloads a script and runs it: the build needs network access");
                        let url_words = fetcher.words.iter().map(|&t| word(lexer, t));
                        if url_words.clone().any(|w| w.contains("sh.rustup.rs")) {
                            self.rustup(lexer, cmd, k, edits, line, post);
                        }
                    }
                }
                "systemctl" | "service" => self.note(
                    line,
                    format!("{name} needs an init system, which a build (and a sandbox) does not have; this step will probably fail"),
                ),
                "source" => edits.push(Edit::new(
                    lexer.toks[name_tok].start(),
                    lexer.toks[name_tok].end(),
                    ".",
                )),
                _ => {}
            }
        }
    }
    /// `apt`/`apt-get` → non-interactive `apt-get … -y`; whether it is a package change.
    pub(super) fn apt(
        &mut self,
        lexer: &Lexer,
        cmd: &Cmd,
        k: usize,
        edits: &mut Vec<Edit>,
    ) -> bool {
        let name_tok = cmd.words[k];
        let mut sub = None;
        let mut i = k + 1;
        while let Some(&tok) = cmd.words.get(i) {
            let text = word(lexer, tok);
            if matches!(text, "-o" | "-c" | "-t") {
                i += 2;
                continue;
            }
            if !text.starts_with('-') {
                sub = Some((tok, text));
                break;
            }
            i += 1;
        }
        let Some((sub_tok, sub)) = sub else {
            return false;
        };
        const CHANGES: [&str; 8] = [
            "install",
            "update",
            "upgrade",
            "remove",
            "purge",
            "autoremove",
            "dist-upgrade",
            "full-upgrade",
        ];
        if !CHANGES.contains(&sub) {
            return false;
        }
        if word(lexer, name_tok) == "apt" {
            edits.push(Edit::new(
                lexer.toks[name_tok].start(),
                lexer.toks[name_tok].end(),
                "apt-get",
            ));
            if sub == "full-upgrade" {
                edits.push(Edit::new(
                    lexer.toks[sub_tok].start(),
                    lexer.toks[sub_tok].end(),
                    "dist-upgrade",
                ));
            }
        }
        let has_yes = cmd.words[k + 1..].iter().any(|&t| is_yes(word(lexer, t)));
        if !has_yes {
            let end = lexer.toks[sub_tok].end();
            edits.push(Edit::new(end, end, " -y"));
        }
        true
    }
    /// `curl … sh.rustup.rs | sh` → `| sh -s -- -y` (rustup-init cannot ask in a build).
    pub(super) fn rustup(
        &mut self,
        lexer: &Lexer,
        cmd: &Cmd,
        k: usize,
        edits: &mut Vec<Edit>,
        line: usize,
        post: &mut Vec<String>,
    ) {
        let args: Vec<&str> = cmd.words[k + 1..].iter().map(|&t| word(lexer, t)).collect();
        if !args.contains(&"-y") {
            let last = cmd.words.last().copied().unwrap_or(cmd.words[k]);
            let end = lexer.toks[last].end();
            let added = if args.is_empty() {
                " -s -- -y"
            } else if args.contains(&"--") {
                " -y"
            } else {
                " -- -y"
            };
            edits.push(Edit::new(end, end, added));
            self.note(
                line,
                "rustup's installer gets -y: nobody can answer its questions during a build",
            );
        }
        self.add_path(
            "/root/.cargo/bin",
            "rustup puts cargo and rustc in ~/.cargo/bin",
            line,
            post,
        );
    }
    pub(super) fn add_path(&mut self, dir: &str, why: &str, line: usize, post: &mut Vec<String>) {
        if self.on_path.insert(dir.to_string()) {
            post.push(format!("ENV PATH=\"{dir}:$PATH\""));
            self.note(
                line,
                format!("{why}; it is put on PATH for later steps and for visitors"),
            );
        }
    }
}
