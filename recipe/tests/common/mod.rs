//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use dockerfile_parser::{Dockerfile, Instruction};

/// The default base used in tests.
pub const BASE: &str = "debian:bookworm";

/// Converts, then checks the contract every output must keep: it passes
/// `validate_dockerfile` and `dockerfile-parser` reads it.
pub fn convert(script: &str) -> recipe::Converted {
    let converted = recipe::convert_script(script, BASE)
        .unwrap_or_else(|problems| panic!("conversion failed for\n{script}\n{problems:#?}"));
    assert_valid(&converted.dockerfile);
    converted
}

/// The generated Dockerfile passes our validation and the parser.
pub fn assert_valid(dockerfile: &str) {
    if let Err(problems) = recipe::validate_dockerfile(dockerfile) {
        panic!("generated Dockerfile is invalid:\n{dockerfile}\n{problems:#?}");
    }
    if let Err(error) = Dockerfile::parse(dockerfile) {
        panic!("dockerfile-parser refuses:\n{dockerfile}\n{error}");
    }
}

/// Each expected block appears as whole lines, in this order.
pub fn assert_lines(dockerfile: &str, expected: &[&str]) {
    let haystack = format!("\n{dockerfile}");
    let mut from = 0;
    for block in expected {
        let needle = format!("\n{block}\n");
        match haystack[from..].find(&needle) {
            Some(at) => from += at + needle.len() - 1,
            None => panic!(
                "expected (in order) the lines\n{block}\nin\n{dockerfile}\n(searching after byte {from})"
            ),
        }
    }
}

/// The shell commands of the RUN steps, as the builder hands them to `/bin/sh -c`.
pub fn run_commands(dockerfile: &str) -> Vec<String> {
    Dockerfile::parse(dockerfile)
        .expect("parses")
        .instructions
        .iter()
        .filter_map(|instruction| match instruction {
            Instruction::Run(run) => Some(run.as_shell().expect("shell form").to_string()),
            _ => None,
        })
        .collect()
}

/// A fresh empty directory under the system temp dir.
pub fn temp_dir() -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "recipe-test-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Runs `command` with `/bin/sh -c` in `dir`, with `VAR=value` in the environment.
pub fn sh(command: &str, dir: &PathBuf) {
    let output = Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .env("VAR", "value")
        .output()
        .expect("run /bin/sh");
    assert!(
        output.status.success(),
        "sh -c failed: {command}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
