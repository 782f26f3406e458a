//! Malformed and hostile inputs for both functions: each gets its exact problem and line.

mod common;

use common::BASE;
use recipe::{convert_script, validate_dockerfile, Problem};

fn at(line: usize, message: &str) -> Problem {
    Problem {
        line: Some(line),
        message: message.to_string(),
    }
}

fn general(message: &str) -> Problem {
    Problem {
        line: None,
        message: message.to_string(),
    }
}

fn dockerfile_problems(text: &str) -> Vec<Problem> {
    match validate_dockerfile(text) {
        Ok(ok) => panic!("accepted:\n{text}\n{ok:#?}"),
        Err(problems) => problems,
    }
}

fn script_problems(text: &str) -> Vec<Problem> {
    match convert_script(text, BASE) {
        Ok(ok) => panic!("converted:\n{text}\n{}", ok.dockerfile),
        Err(problems) => problems,
    }
}

const NO_CONTEXT: &str = "there is no build context beyond the Dockerfile; download files in a RUN step or use a multi-stage COPY --from=<stage>";

// ---- validate_dockerfile -------------------------------------------------------------------

#[test]
fn dockerfile_empty() {
    assert_eq!(
        dockerfile_problems(""),
        [at(1, "The Dockerfile is empty: start with FROM <image>")]
    );
}

#[test]
fn dockerfile_whitespace_only() {
    assert_eq!(
        dockerfile_problems("  \n\t\n\r\n"),
        [at(1, "The Dockerfile is empty: start with FROM <image>")]
    );
}

#[test]
fn dockerfile_binary_with_nul() {
    assert_eq!(
        dockerfile_problems("FROM debian\nRUN echo \0\u{1}\n"),
        [at(2, "the Dockerfile contains binary content (control character U+0000); only text is accepted")]
    );
}

#[test]
fn dockerfile_of_one_megabyte() {
    let text = format!("FROM debian\n{}", "#".repeat(1024 * 1024 - 12));
    assert_eq!(
        dockerfile_problems(&text),
        [at(
            2,
            "The Dockerfile is 1048576 bytes, over the limit of 65536 bytes (64 KiB) from this line on"
        )]
    );
}

#[test]
fn dockerfile_with_3000_lines() {
    let text = format!("FROM debian\n{}", "RUN true\n".repeat(2999));
    assert_eq!(
        dockerfile_problems(&text),
        [general("The Dockerfile has 3000 lines; the limit is 2000")]
    );
}

#[test]
fn dockerfile_with_a_line_of_100k_characters() {
    let text = format!("FROM debian\nRUN echo {}\n", "a".repeat(100_000));
    assert_eq!(
        dockerfile_problems(&text),
        [at(
            2,
            "The Dockerfile is 100022 bytes, over the limit of 65536 bytes (64 KiB) from this line on"
        )]
    );
}

#[test]
fn dockerfile_without_from() {
    assert_eq!(
        dockerfile_problems("# a comment\nRUN echo hi\n"),
        [
            general("The Dockerfile has no FROM instruction"),
            at(
                2,
                "the first instruction must be FROM (only ARG may come before it), not RUN"
            ),
        ]
    );
}

#[test]
fn dockerfile_arg_before_from_but_nothing_after() {
    assert_eq!(
        dockerfile_problems("ARG VERSION=1.0\n"),
        [general("The Dockerfile has no FROM instruction")]
    );
}

#[test]
fn dockerfile_from_scratch() {
    assert_eq!(
        dockerfile_problems("FROM scratch\nCOPY --from=busybox /bin/busybox /busybox\n"),
        [
            at(1, "FROM scratch has nothing to run a shell in: visitors get bash inside the image, so start from an image that has one (for example debian:bookworm-slim)"),
            at(2, "COPY --from=busybox: there is no earlier stage called busybox (name one with FROM image AS busybox); as written, the engine would pull an image called busybox"),
        ]
    );
}

#[test]
fn dockerfile_invalid_instruction_name() {
    assert_eq!(
        dockerfile_problems("FORM ubuntu\nRUN true\n"),
        [
            general("The Dockerfile has no FROM instruction"),
            at(1, "unknown instruction FORM (did you mean FROM?)"),
        ]
    );
}

#[test]
fn dockerfile_broken_json_array() {
    assert_eq!(
        dockerfile_problems("FROM debian\nRUN [\"echo\", \"hi\"\n"),
        [at(2, "this RUN looks like a JSON array but is not valid JSON (the array is never closed with ]); write [\"executable\", \"argument\"] with double quotes, or leave out the brackets for the shell form")]
    );
}

#[test]
fn dockerfile_json_with_single_quotes() {
    assert_eq!(
        dockerfile_problems("FROM debian\nCMD ['bash', '-l']\n"),
        [at(2, "this CMD looks like a JSON array but is not valid JSON (JSON strings need double quotes, not single quotes); write [\"executable\", \"argument\"] with double quotes, or leave out the brackets for the shell form")]
    );
}

#[test]
fn dockerfile_unterminated_continuation() {
    assert_eq!(
        dockerfile_problems(
            "FROM debian\nRUN apt-get update && \\\n    apt-get install -y jq \\\n"
        ),
        [at(
            3,
            "the last line ends with a line continuation (\\) but no line follows"
        )]
    );
}

#[test]
fn dockerfile_copy_of_a_local_file() {
    assert_eq!(
        dockerfile_problems("FROM debian\nCOPY requirements.txt /app/\n"),
        [at(
            2,
            &format!("COPY of local files is not possible: {NO_CONTEXT}")
        )]
    );
}

#[test]
fn dockerfile_add_of_a_local_file() {
    assert_eq!(
        dockerfile_problems("FROM debian\nADD app.tar.gz /opt/\n"),
        [at(
            2,
            &format!("ADD of local files is not possible: {NO_CONTEXT}")
        )]
    );
}

#[test]
fn dockerfile_syntax_directive() {
    assert_eq!(
        dockerfile_problems("# syntax=docker/dockerfile:1\nFROM debian\n"),
        [at(1, "custom BuildKit frontends are not available (# syntax=…): the platform builds with Docker's classic builder; remove this line")]
    );
}

#[test]
fn dockerfile_run_mount_network_security() {
    assert_eq!(
        dockerfile_problems("FROM debian\nRUN --mount=type=cache,target=/var/cache/apt apt-get update\nRUN --network=host --security=insecure true\n"),
        [
            at(2, "RUN --mount needs BuildKit, and there is no build context or cache to mount; download what you need inside the RUN step"),
            at(3, "RUN --network needs BuildKit; the build's network is decided by the platform"),
            at(3, "RUN --security needs BuildKit, and insecure builds are never allowed"),
        ]
    );
}

#[test]
fn dockerfile_heredoc_needs_buildkit() {
    assert_eq!(
        dockerfile_problems("FROM debian\nRUN <<EOF\napt-get update\nEOF\nCOPY <<-'CONF' /etc/app.conf\nkey=value\nCONF\nRUN true\n"),
        [at(5, "here-documents in a Dockerfile (COPY <<EOF) need BuildKit, which the platform's classic builder does not have; write the file with printf in a RUN step")]
    );
}

#[test]
fn dockerfile_from_variable_without_default() {
    assert_eq!(
        dockerfile_problems("ARG BASE\nFROM $BASE\n"),
        [at(2, "FROM uses $BASE, which has no default value (build arguments cannot be passed to the build); give it one with ARG BASE=<value> before FROM")]
    );
}

#[test]
fn dockerfile_healthcheck() {
    assert_eq!(
        dockerfile_problems("FROM nginx\nHEALTHCHECK CMD curl -f http://localhost/ || exit 1\n"),
        [at(2, "HEALTHCHECK is not supported: a sandbox runs a shell, not your service, so the check would only fail and spend the sandbox's CPU and processes (HEALTHCHECK NONE is accepted)")]
    );
}

#[test]
fn dockerfile_collects_every_problem() {
    let problems = dockerfile_problems(
        "# syntax=docker/dockerfile:1.4\nFROM debian\nCOPY . /src\nRUN --mount=type=ssh git clone x\nWORKDIR\nCMD [\"a\",\n",
    );
    let lines: Vec<Option<usize>> = problems.iter().map(|p| p.line).collect();
    assert_eq!(
        lines,
        [Some(1), Some(3), Some(4), Some(5), Some(6)],
        "{problems:#?}"
    );
    assert_eq!(
        problems[3],
        at(5, "could not parse this WORKDIR instruction")
    );
}

#[test]
fn dockerfile_fork_bomb_is_accepted_because_build_limits_stop_it() {
    let ok = validate_dockerfile("FROM debian\nRUN :(){ :|:& };:\n").expect("accepted");
    assert_eq!(ok.steps, 2);
    assert!(ok.warnings.is_empty());
}

#[test]
fn dockerfile_endless_loop_is_accepted_because_build_limits_stop_it() {
    let ok = validate_dockerfile("FROM debian\nRUN while true; do :; done\n").expect("accepted");
    assert_eq!(ok.steps, 2);
}

// ---- convert_script ------------------------------------------------------------------------

#[test]
fn script_empty() {
    assert_eq!(script_problems(""), [general("The script has no commands")]);
    assert_eq!(
        script_problems(" \n \n"),
        [general("The script has no commands")]
    );
}

#[test]
fn script_only_comments() {
    assert_eq!(
        script_problems("#!/bin/bash\n# just a comment\n\n# trythis: base=alpine\n"),
        [general("The script has no commands")]
    );
}

#[test]
fn script_binary_with_nul() {
    assert_eq!(
        script_problems("echo hi\necho \0\n"),
        [at(
            2,
            "the script contains binary content (control character U+0000); only text is accepted"
        )]
    );
}

#[test]
fn script_of_one_megabyte() {
    assert_eq!(
        script_problems(&"echo x\n".repeat(1024 * 1024 / 7 + 1)),
        [at(
            9363,
            "The script is 1048579 bytes, over the limit of 65536 bytes (64 KiB) from this line on"
        )]
    );
}

#[test]
fn script_with_3000_lines() {
    assert_eq!(
        script_problems(&"true\n".repeat(3000)),
        [general("The script has 3000 lines; the limit is 2000")]
    );
}

#[test]
fn script_with_a_line_of_100k_characters() {
    assert_eq!(
        script_problems(&format!("echo {}\n", "a".repeat(100_000))),
        [at(
            1,
            "The script is 100006 bytes, over the limit of 65536 bytes (64 KiB) from this line on"
        )]
    );
}

#[test]
fn script_unterminated_heredoc() {
    assert_eq!(
        script_problems("echo start\ncat <<EOF > /etc/app.conf\nkey=value\nEOF \n"),
        [at(
            2,
            "the here-document started here never ends: no line reads exactly EOF"
        )]
    );
}

#[test]
fn script_unterminated_quote() {
    assert_eq!(
        script_problems("echo ok\necho \"hello\nworld\n"),
        [at(2, "this \" is never closed")]
    );
}

#[test]
fn script_unterminated_continuation() {
    assert_eq!(
        script_problems("apt-get install -y \\\n  git \\\n"),
        [at(
            2,
            "the last line ends with a line continuation (\\) but no line follows"
        )]
    );
}

#[test]
fn script_trailing_operator() {
    assert_eq!(
        script_problems("make &&\n"),
        [at(1, "the command ends with && but no command follows")]
    );
}

#[test]
fn script_unclosed_block() {
    assert_eq!(
        script_problems("ls\nfor f in *.sh; do\n  chmod +x \"$f\"\n"),
        [at(2, "for is never closed (missing done)")]
    );
}

#[test]
fn script_bad_base_directive() {
    assert_eq!(
        script_problems("# trythis: base=$(rm -rf /)\nls\n"),
        [at(1, "base=$(rm -rf /) is not a valid image reference (for example debian:bookworm or ghcr.io/owner/image:tag)")]
    );
}

#[test]
fn script_base_scratch_and_bad_workdir() {
    assert_eq!(
        script_problems("# trythis: base=scratch\n# trythis: workdir=relative/dir\nls\n"),
        [
            at(
                1,
                "base=scratch has nothing to run a shell in; choose an image with /bin/sh"
            ),
            at(
                2,
                "workdir=relative/dir must be an absolute path without spaces, quotes or $"
            ),
        ]
    );
}

#[test]
fn script_unknown_directive() {
    assert_eq!(
        script_problems("# trythis: colour=red\nls\n"),
        [at(
            1,
            "unknown trythis directive colour (known: base, workdir)"
        )]
    );
}

#[test]
fn script_directive_after_a_command() {
    assert_eq!(
        script_problems("ls\n# trythis: base=alpine\n"),
        [at(
            2,
            "trythis directives must come before the first command of the script"
        )]
    );
}

#[test]
fn script_cd_dash() {
    assert_eq!(
        script_problems("cd /tmp\ncd -\n"),
        [at(
            2,
            "cd - (back to the previous directory) is not supported; write the directory"
        )]
    );
}

#[test]
fn script_cd_into_a_wildcard_or_a_computed_directory() {
    assert_eq!(
        script_problems("tar xzf node-v20.tar.gz\ncd node-v*\ncd \"$(mktemp -d)\"\n"),
        [
            at(2, "cd node-v*: a wildcard cannot become WORKDIR; write the directory name"),
            at(3, "cd into a directory computed by a command cannot carry over to later steps; write the directory, or join the commands that need it with &&"),
        ]
    );
}

#[test]
fn script_docker_inside() {
    assert_eq!(
        script_problems("git clone https://github.com/x/y\ncd y && sudo docker compose up -d\n"),
        [at(2, "docker is not available inside the build (there is no container engine in it); remove this command")]
    );
}

#[test]
fn script_sudo_as_another_user() {
    assert_eq!(
        script_problems("sudo -u postgres createdb app\n"),
        [at(
            1,
            "sudo as another user (postgres) is not supported; the build runs as root"
        )]
    );
}

#[test]
fn script_exit_in_the_middle() {
    assert_eq!(
        script_problems("echo one\nexit 0\necho two\n"),
        [at(
            2,
            "exit stops the script here, but commands follow; remove it"
        )]
    );
}

#[test]
fn script_fork_bomb_is_accepted_because_build_limits_stop_it() {
    let converted = convert_script(":(){ :|:& };:\n", BASE).expect("accepted");
    assert!(
        converted.dockerfile.ends_with("\nRUN :(){ :|:& };:\n"),
        "{}",
        converted.dockerfile
    );
    common::assert_valid(&converted.dockerfile);
}

#[test]
fn script_endless_loop_is_accepted_because_build_limits_stop_it() {
    let converted = convert_script("while true; do :; done\n", BASE).expect("accepted");
    assert!(converted
        .dockerfile
        .ends_with("\nRUN while true; do :; done\n"));
    common::assert_valid(&converted.dockerfile);
}

#[test]
fn script_invalid_default_base() {
    assert_eq!(
        convert_script("ls\n", "not an image").expect_err("refused"),
        [general(
            "the default base image \"not an image\" is not usable"
        )]
    );
}

#[test]
fn script_collects_every_problem() {
    let problems = script_problems("# trythis: nope=1\ncd -\ndocker ps\necho \"open\n");
    let lines: Vec<Option<usize>> = problems.iter().map(|p| p.line).collect();
    assert_eq!(lines, [Some(1), Some(2), Some(3), Some(4)], "{problems:#?}");
}
