//! A smoke check proposed from an install script: the last thing the script installs should be a
//! command a visitor can run. The proposal asks the visitor's shell for it (`command -v`), which
//! fails exactly when a Try would answer "command not found".

/// A command to run in a sandbox of the built image, and text its output must contain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProposedCheck {
    pub command: String,
    pub expect: String,
}

/// Packages whose command has another name. Debian's own renames first (`fd-find` installs
/// `fdfind`), then the common cases where a project and its command differ.
const COMMAND_OF: &[(&str, &str)] = &[
    ("ripgrep", "rg"),
    ("fortune-mod", "fortune"),
    ("fd-find", "fdfind"),
    ("neovim", "nvim"),
    ("nodejs", "node"),
    ("golang", "go"),
    ("golang-go", "go"),
    ("build-essential", "gcc"),
    ("httpie", "http"),
    ("silversearcher-ag", "ag"),
    ("the_silver_searcher", "ag"),
    ("imagemagick", "convert"),
    ("postgresql-client", "psql"),
    ("redis-tools", "redis-cli"),
    ("sqlite3", "sqlite3"),
    ("python3-pip", "pip3"),
    ("python3", "python3"),
    ("default-jdk", "java"),
    ("openjdk-17-jdk", "java"),
    ("bat", "batcat"),
    ("du-dust", "dust"),
    ("bottom", "btm"),
    ("tealdeer", "tldr"),
    ("git-delta", "delta"),
];

/// Proposes a check for `script`: `command -v <cmd>` expecting `/<cmd>`, where `<cmd>` is the
/// command of the last package the script installs (apt, pip, pipx, npm -g, cargo, go, gem).
/// None when the script installs nothing recognisable.
pub fn propose_check(script: &str) -> Option<ProposedCheck> {
    let mut last = None;
    for line in script.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("$ ").unwrap_or(line);
        for command in line.split(['&', ';', '|']) {
            if let Some(package) = installed_package(command) {
                last = Some(package);
            }
        }
    }
    let package = last?;
    let command = COMMAND_OF
        .iter()
        .find(|(p, _)| *p == package)
        .map_or(package.as_str(), |(_, c)| c);
    Some(ProposedCheck {
        command: format!("command -v {command}"),
        expect: format!("/{command}"),
    })
}

/// The last package named by one simple command, if it installs any.
fn installed_package(command: &str) -> Option<String> {
    let words: Vec<&str> = command.split_whitespace().collect();
    // `sudo`, and variables set for one command (`DEBIAN_FRONTEND=noninteractive apt-get …`).
    let is_prefix = |w: &&str| {
        matches!(*w, "sudo" | "env" | "command" | "exec")
            || (w.contains('=') && !w.starts_with('-'))
    };
    let start = words.iter().position(|w| !is_prefix(w))?;
    let (tool, rest) = words[start..].split_first()?;
    let args: &[&str] = match (*tool, rest) {
        ("apt" | "apt-get" | "aptitude", [sub, args @ ..]) if *sub == "install" => args,
        ("apt" | "apt-get", _) => {
            // Options may come before the subcommand (`apt-get -y install x`).
            let at = rest.iter().position(|w| *w == "install")?;
            &rest[at + 1..]
        }
        ("pip" | "pip3" | "pipx" | "cargo" | "gem", [sub, args @ ..]) if *sub == "install" => args,
        ("python" | "python3", ["-m", "pip", "install", args @ ..]) => args,
        ("npm" | "pnpm", [sub, args @ ..])
            if matches!(*sub, "install" | "i" | "add")
                && args.iter().any(|a| matches!(*a, "-g" | "--global")) =>
        {
            args
        }
        ("go", ["install", args @ ..]) => args,
        _ => return None,
    };
    let package = args.iter().rev().find(|a| !a.starts_with('-'))?;
    let name = package_name(tool, package);
    (!name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+')))
    .then_some(name)
}

/// The command-ish name of a package argument: versions, paths and scopes removed.
fn package_name(tool: &str, arg: &str) -> String {
    let arg = arg.trim_matches(['"', '\'']);
    let name = match tool {
        // `golang.org/x/tools/cmd/goimports@latest` → goimports
        "go" => arg
            .split('@')
            .next()
            .and_then(|p| p.rsplit('/').next())
            .unwrap_or(arg),
        // `@scope/tool@1.2` → tool; `cowsay@1` → cowsay
        "npm" | "pnpm" => {
            let unscoped = arg.rsplit('/').next().unwrap_or(arg);
            let unscoped = if arg.starts_with('@') && !arg.contains('/') {
                arg
            } else {
                unscoped
            };
            unscoped.split('@').next().unwrap_or(unscoped)
        }
        // `httpie==3.2`, `black>=24`, `rich[all]`
        "pip" | "pip3" | "pipx" | "python" | "python3" => arg
            .split(['=', '<', '>', '~', '!', '[', ';'])
            .next()
            .unwrap_or(arg),
        // `jq=1.6-2`, `cowsay:amd64`
        _ => arg.split(['=', ':']).next().unwrap_or(arg),
    };
    name.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proposed(script: &str) -> Option<String> {
        propose_check(script).map(|c| format!("{} => {}", c.command, c.expect))
    }

    #[test]
    fn the_last_installed_package_is_checked_under_its_command_name() {
        assert_eq!(
            proposed("sudo apt update && sudo apt install -y cowsay\n").as_deref(),
            Some("command -v cowsay => /cowsay")
        );
        assert_eq!(
            proposed("apt-get -y install jq ripgrep\n").as_deref(),
            Some("command -v rg => /rg")
        );
        assert_eq!(
            proposed("DEBIAN_FRONTEND=noninteractive apt-get install -y fortune-mod=1:1.99\n")
                .as_deref(),
            Some("command -v fortune => /fortune")
        );
        assert_eq!(
            proposed("$ npm install -g @mermaid-js/mermaid-cli@10\n").as_deref(),
            Some("command -v mermaid-cli => /mermaid-cli")
        );
        assert_eq!(
            proposed("pip install --user 'httpie==3.2'\n").as_deref(),
            Some("command -v http => /http")
        );
        assert_eq!(
            proposed("go install golang.org/x/tools/cmd/goimports@latest\n").as_deref(),
            Some("command -v goimports => /goimports")
        );
        assert_eq!(
            proposed("apt-get install -y git\ncargo install --locked bottom\n").as_deref(),
            Some("command -v btm => /btm")
        );
    }

    #[test]
    fn scripts_that_install_nothing_known_get_no_proposal() {
        for script in [
            "",
            "echo hello\n",
            "# apt-get install -y cowsay\n",
            "npm install cowsay\n", // local, not on PATH
            "apt-get update\n",
            "apt-get install -y $(cat list)\n",
        ] {
            assert_eq!(proposed(script), None, "{script:?}");
        }
    }
}
