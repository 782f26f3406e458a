//! Equivalence: an install script run in a root shell of the base image (`bash -e -o pipefail`,
//! how the platform reads a pasted script) and the Dockerfile trythis converts it into, built by
//! the real engine's classic builder, end in the same state: the same outcome (success or
//! failure), and after success the same working directory, `PATH`, exported variables and files
//! a visitor's shell sees. Needs Docker: fails without it.
use std::process::{Command, Stdio};

fn base() -> String {
    std::env::var("TRYTHIS_TEST_BASE_IMAGE").unwrap_or_else(|_| "trythis/base:bookworm".into())
}

/// What a visitor's shell sees, printed by the shell it runs in.
const DUMP: &str = r#"echo "pwd=$PWD"; echo "path=$PATH"; env | sort | grep '^TT_' || true; find /root /opt/tt -xdev -type f 2>/dev/null | sort | while read -r f; do echo "$f $(sha256sum < "$f" | cut -c1-16)"; done"#;

/// `Err(status)` when the script fails, else the state it leaves.
fn run_script(script: &str) -> Result<String, i32> {
    // A pasted script runs in a root terminal in /root.
    let out = Command::new("docker")
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "-w",
            "/root",
            &base(),
            "bash",
            "-e",
            "-o",
            "pipefail",
            "-c",
        ])
        .arg(format!("{script}\n{DUMP}"))
        .output()
        .expect("docker run (Docker is required for this test)");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(out.status.code().unwrap_or(-1))
    }
}

/// `Err(log)` when the build fails, else the state a shell in the built image sees.
fn build_and_look(dockerfile: &str, tag: &str) -> Result<String, String> {
    let mut child = Command::new("docker")
        // A failed step's container goes too (the legacy builder keeps it by default).
        .args([
            "build",
            "-q",
            "--force-rm",
            "--network",
            "none",
            "-t",
            tag,
            "-",
        ])
        .env("DOCKER_BUILDKIT", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("docker build (Docker is required for this test)");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(dockerfile.as_bytes()).expect("dockerfile");
    }
    let built = child.wait_with_output().expect("docker build");
    if !built.status.success() {
        return Err(String::from_utf8_lossy(&built.stderr).into_owned());
    }
    let out = Command::new("docker")
        .args(["run", "--rm", "--network", "none", tag, "bash", "-c", DUMP])
        .output()
        .expect("docker run");
    let _ = Command::new("docker").args(["rmi", "-f", tag]).output();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Scripts of the kind READMEs carry, each exercising one rule; `true` when they must succeed.
const SCRIPTS: &[(&str, &str, bool)] = &[
    (
        "a failing stage of a pipeline fails the script",
        "mkdir -p /opt/tt\nfalse | cat\necho after > /opt/tt/after\n",
        false,
    ),
    (
        "a script that ends in exit 1 fails",
        "mkdir -p /opt/tt && echo hi > /opt/tt/x\nexit 1\n",
        false,
    ),
    (
        "a failing command in the middle stops there",
        "mkdir -p /opt/tt\nls /does-not-exist\ntouch /opt/tt/never\n",
        false,
    ),
    (
        "set +e lets later failures pass",
        "set +e\nmkdir -p /opt/tt\nfalse\nls /nope | cat\necho survived > /opt/tt/s.txt\n",
        true,
    ),
    (
        "a function defined once is called by later lines",
        "greet() {\n  echo \"hi $1\" >> /opt/tt/greet.txt\n}\nmkdir -p /opt/tt\ngreet you\ngreet again\n",
        true,
    ),
    (
        "cd, exported variables, PATH and a here-document carry over",
        "mkdir -p /opt/tt/bin && cd /opt/tt\ncat > bin/tool <<'EOF'\n#!/bin/sh\necho \"tool $TT_MODE\"\nEOF\nchmod +x bin/tool\nexport PATH=\"/opt/tt/bin:$PATH\"\nexport TT_MODE=demo\ntool > /opt/tt/tool.txt\n",
        true,
    ),
    (
        "subshells, || fallbacks and set -u",
        "set -u\nmkdir -p /opt/tt\n( cd /tmp && echo sub > /opt/tt/sub.txt )\ntest -f /nope || echo fallback > /opt/tt/fb.txt\nexport TT_WHERE=\"$(pwd)\"\nLEN=$(printf %s \"$TT_WHERE\" | wc -c)\necho \"$LEN\" > /opt/tt/len.txt\n",
        true,
    ),
];

#[test]
fn converted_scripts_build_what_the_script_does_in_a_root_shell() {
    let mut mismatches = Vec::new();
    for (n, (name, script, succeeds)) in SCRIPTS.iter().enumerate() {
        let converted = recipe::convert_script(script, &base())
            .unwrap_or_else(|p| panic!("{name}: the converter refused it: {p:?}"));
        let tag = format!("trythis-fidelity-{}-{n}", std::process::id());
        let shell = run_script(script);
        let built = build_and_look(&converted.dockerfile, &tag);
        assert_eq!(
            shell.is_ok(),
            *succeeds,
            "{name}: the script itself: {shell:?}"
        );
        match (&shell, &built) {
            (Ok(a), Ok(b)) if a == b => {}
            (Err(_), Err(_)) => {}
            _ => mismatches.push(format!(
                "{name}\n  script: {shell:?}\n  build:  {built:?}\n{}",
                converted.dockerfile
            )),
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n\n"));
}
