//! A script and its Dockerfile leave the same files behind. The Dockerfile is "built" by a tiny
//! emulation of the classic builder (RUN with `/bin/sh -c`, WORKDIR, ENV and ARG with `$VAR`
//! expansion), with `/root` mapped to a temporary directory; the script runs with `/bin/sh` in
//! that directory as its home.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use dockerfile_parser::{Dockerfile, Instruction};

/// Docker's `$NAME` / `${NAME}` expansion in ENV, ARG and WORKDIR values.
fn expand(value: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, used) = match after.strip_prefix('{') {
            Some(braced) => {
                let close = braced.find('}').expect("closed ${");
                (&braced[..close], close + 2)
            }
            None => {
                let len = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..len], len)
            }
        };
        out.push_str(env.get(name).map(String::as_str).unwrap_or_default());
        rest = &after[used..];
    }
    out.push_str(rest);
    out
}

fn map_root(path: &str, root: &Path) -> String {
    match path.strip_prefix("/root") {
        Some(rest) => format!("{}{rest}", root.display()),
        None => path.to_string(),
    }
}

fn sh(command: &str, cwd: &Path, env: &BTreeMap<String, String>) {
    let output = Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .current_dir(cwd)
        .env_clear()
        .envs(env)
        .output()
        .expect("run /bin/sh");
    assert!(
        output.status.success(),
        "sh -c {command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// "Builds" the Dockerfile: only what the converter emits after FROM.
fn build(dockerfile: &str, root: &Path) {
    let mut env = BTreeMap::from([
        (
            "PATH".to_string(),
            "/usr/local/bin:/usr/bin:/bin".to_string(),
        ),
        ("HOME".to_string(), root.display().to_string()),
    ]);
    let mut cwd = PathBuf::from("/");
    for instruction in Dockerfile::parse(dockerfile).expect("parses").instructions {
        match instruction {
            // The emulation runs every step with /bin/sh -e; the real harness (server's
            // tests/fidelity.rs) builds with the engine, SHELL included.
            Instruction::From(_) => {}
            Instruction::Misc(misc) if misc.instruction.content == "SHELL" => {}
            Instruction::Run(run) => {
                sh(&run.as_shell().expect("shell form").to_string(), &cwd, &env)
            }
            Instruction::Env(instruction) => {
                let values: Vec<(String, String)> = instruction
                    .vars
                    .iter()
                    .map(|var| {
                        let value = map_root(&expand(&var.value.to_string(), &env), root);
                        (var.key.content.clone(), value)
                    })
                    .collect();
                env.extend(values);
            }
            Instruction::Arg(arg) => {
                let value = arg.value.map(|v| v.content).unwrap_or_default();
                let value = map_root(&expand(&value, &env), root);
                env.insert(arg.name.content, value);
            }
            Instruction::Misc(misc) if misc.instruction.content == "WORKDIR" => {
                let path = map_root(&expand(misc.arguments.to_string().trim(), &env), root);
                cwd = cwd.join(path);
                std::fs::create_dir_all(&cwd).expect("WORKDIR");
            }
            other => panic!("not emulated: {other:?}"),
        }
    }
}

/// Every file under `dir`, by relative path, with its content.
fn files(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path
                    .strip_prefix(dir)
                    .expect("inside")
                    .display()
                    .to_string();
                out.insert(relative, std::fs::read_to_string(&path).expect("text"));
            }
        }
    }
    out
}

/// Runs the script and its Dockerfile; returns the files both left in the home directory.
fn same_files(script: &str) -> BTreeMap<String, String> {
    let original = common::temp_dir();
    let env = BTreeMap::from([
        (
            "PATH".to_string(),
            "/usr/local/bin:/usr/bin:/bin".to_string(),
        ),
        ("HOME".to_string(), original.display().to_string()),
    ]);
    sh(script, &original, &env);
    let converted = common::convert(script);
    let root = common::temp_dir();
    build(&converted.dockerfile, &root);
    let want = files(&original);
    let got = files(&root);
    assert_eq!(got, want, "{script}\n{}", converted.dockerfile);
    let _ = std::fs::remove_dir_all(original);
    let _ = std::fs::remove_dir_all(root);
    got
}

#[test]
fn directories_variables_and_heredocs_behave_as_in_the_script() {
    let files = same_files(
        "#!/bin/sh\nset -eu\nmkdir -p proj/sub\ncd proj\nbasename \"$PWD\" > where.txt\nNAME=world\nexport GREETING=\"hello $NAME\" TOOLS=~/tools\ncd sub && echo \"$GREETING\" > greet.txt && cd ..\necho \"$TOOLS\" | sed \"s|^$HOME|~|\" > tools.txt\ncat <<EOF > conf.txt\nname=$NAME\nliteral=\\$NAME\nEOF\ncd ~\necho done > done.txt\n",
    );
    assert_eq!(files["proj/where.txt"], "proj\n");
    assert_eq!(files["proj/sub/greet.txt"], "hello world\n");
    assert_eq!(files["proj/tools.txt"], "~/tools\n");
    assert_eq!(files["proj/conf.txt"], "name=world\nliteral=$NAME\n");
    assert_eq!(files["done.txt"], "done\n");
}

#[test]
fn path_exports_and_virtualenv_activation_reach_later_steps() {
    // The fake `activate` does what venv's does: set VIRTUAL_ENV to the absolute path, export
    // it, and put its bin directory first on PATH (it is removed at the end because it holds
    // the temporary directory's name).
    let files = same_files(
        "mkdir -p bin venv/bin\nprintf '#!/bin/sh\\necho from-bin\\n' > bin/hello && chmod +x bin/hello\nexport PATH=\"$HOME/bin:$PATH\"\nhello > hello.txt\nprintf 'VIRTUAL_ENV=%s\\nexport VIRTUAL_ENV\\nPATH=\"$VIRTUAL_ENV/bin:$PATH\"\\n' \"$PWD/venv\" > venv/bin/activate\nprintf '#!/bin/sh\\necho from-venv\\n' > venv/bin/tool && chmod +x venv/bin/tool\n. venv/bin/activate\ntool > tool.txt\necho \"${VIRTUAL_ENV##*/}\" > venv.txt\nrm venv/bin/activate\n",
    );
    assert_eq!(files["hello.txt"], "from-bin\n");
    assert_eq!(files["tool.txt"], "from-venv\n");
    assert_eq!(files["venv.txt"], "venv\n");
}
