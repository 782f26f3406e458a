//! Inputs at the limits stay fast and work on small thread stacks (tokio's workers have 2 MiB).

mod common;

use std::time::{Duration, Instant};

/// Runs `f` on a thread with a 2 MiB stack, like a tokio worker.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("no panic")
}

/// The whole-file check of the tests' helper: dockerfile-parser itself recurses once per
/// continuation line, so it gets a big stack here (the crate only parses joined lines).
fn assert_valid_with_big_stack(dockerfile: String) {
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || common::assert_valid(&dockerfile))
        .expect("spawn")
        .join()
        .expect("valid");
}

#[test]
fn a_dockerfile_of_2000_continuation_lines() {
    let text = format!(
        "FROM debian\nRUN true \\\n{}  && true\n",
        "  && true \\\n".repeat(1997)
    );
    let started = Instant::now();
    let ok = on_small_stack(move || recipe::validate_dockerfile(&text)).expect("valid");
    assert_eq!(ok.steps, 2);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_script_of_1990_continuation_lines_and_one_of_1990_commands() {
    let started = Instant::now();
    let long = format!("echo \\\n{}end\n", "  x \\\n".repeat(1988));
    let converted =
        on_small_stack(move || recipe::convert_script(&long, common::BASE)).expect("converts");
    assert_eq!(converted.dockerfile.lines().count(), 4 + 1990);
    assert_valid_with_big_stack(converted.dockerfile);
    let many = "sudo apt-get install -y x\n".repeat(90);
    let converted =
        on_small_stack(move || recipe::convert_script(&many, common::BASE)).expect("converts");
    assert_eq!(common::run_commands(&converted.dockerfile).len(), 90);
    // Past the engine's layer limit: one clear problem, before any build.
    let too_many = "sudo apt-get install -y x\n".repeat(1990);
    let problems = on_small_stack(move || recipe::convert_script(&too_many, common::BASE))
        .expect_err("too many layers");
    assert!(
        problems[0].message.contains("1991 steps that add layers"),
        "{problems:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_script_whose_dockerfile_would_be_too_big_gets_a_clear_problem() {
    let many = "cd /tmp && make && export A=1\n".repeat(1000);
    assert_eq!(
        recipe::convert_script(&many, common::BASE).expect_err("too long"),
        [recipe::Problem {
            line: None,
            message: "The generated Dockerfile would be 32161 bytes and 3004 lines; a Dockerfile may have at most 65536 bytes and 2000 lines: shorten the script".into(),
        }]
    );
    // 700 lines of 70 single quotes: 50 KB of script, each quote becomes '\'' in printf.
    let quotes = format!(
        "cat <<'EOF' > f\n{}EOF\n",
        ("'".repeat(70) + "\n").repeat(700)
    );
    let problems = recipe::convert_script(&quotes, common::BASE).expect_err("too big");
    assert!(
        problems[0]
            .message
            .starts_with("The generated Dockerfile would be "),
        "{problems:?}"
    );
}

#[test]
fn a_script_with_a_1500_line_heredoc_and_deep_nesting() {
    let heredoc = format!(
        "cat <<'EOF' > f\n{}EOF\n",
        "line 'with' \"quotes\" \\ $x\n".repeat(1500)
    );
    let converted =
        on_small_stack(move || recipe::convert_script(&heredoc, common::BASE)).expect("converts");
    assert!(converted
        .dockerfile
        .contains("\n      'line '\\''with'\\'' \"quotes\" \\ $x' \\\n"));
    assert_valid_with_big_stack(converted.dockerfile);
    let nested = format!("echo {}x{}\n", "\"$(".repeat(3000), ")\"".repeat(3000));
    let converted =
        on_small_stack(move || recipe::convert_script(&nested, common::BASE)).expect("converts");
    assert_valid_with_big_stack(converted.dockerfile);
}
