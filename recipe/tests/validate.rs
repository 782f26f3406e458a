//! Dockerfiles that are accepted, and what the build page learns from them.

use recipe::{validate_dockerfile, Problem};

fn at(line: usize, message: &str) -> Problem {
    Problem {
        line: Some(line),
        message: message.to_string(),
    }
}

#[test]
fn multi_stage_build_with_copy_from() {
    let ok = validate_dockerfile(
        "# Build the tool, then ship it on Debian.\nARG GO_VERSION=1.22\nFROM golang:${GO_VERSION} AS build\nRUN go install github.com/charmbracelet/glow@latest\n\nFROM debian:bookworm-slim\nCOPY --from=build /go/bin/glow /usr/local/bin/glow\nRUN glow --version\nWORKDIR /root\n",
    )
    .expect("valid");
    assert_eq!(ok.base_image, "debian:bookworm-slim");
    assert_eq!(ok.steps, 7);
    assert!(ok.warnings.is_empty());
}

#[test]
fn base_image_follows_stage_names_and_arg_defaults() {
    let ok = validate_dockerfile(
        "ARG BASE=python:3.12-slim\nFROM $BASE AS base\nRUN pip install httpie\nFROM base\nRUN http --version\n",
    )
    .expect("valid");
    assert_eq!(ok.base_image, "python:3.12-slim");
    assert_eq!(ok.steps, 5);
}

#[test]
fn accepted_instructions_with_warnings() {
    let ok = validate_dockerfile(
        "FROM nginx:1.27\nEXPOSE 80\nVOLUME /data\nONBUILD RUN echo child\nUSER nginx\nENTRYPOINT [\"nginx\"]\nCMD [\"-g\", \"daemon off;\"]\nHEALTHCHECK NONE\nSTOPSIGNAL SIGQUIT\n",
    )
    .expect("valid");
    assert_eq!(ok.steps, 9);
    assert_eq!(
        ok.warnings,
        [
            at(3, "VOLUME is ignored: a sandbox's writable places are set by the platform (the home directory, WORKDIR and /tmp)"),
            at(4, "ONBUILD only runs when another image is built FROM this one; it has no effect here"),
            at(6, "ENTRYPOINT is not run for visitors: they get the platform's shell (bash) in the image's WORKDIR; put setup in RUN steps"),
            at(7, "CMD is not run for visitors: they get the platform's shell (bash) in the image's WORKDIR; put setup in RUN steps"),
        ]
    );
}

/// The engine fetches ADD's URLs on the host's network (it read the host's loopback registry
/// into a public build log): refused with its line, never handed to the engine.
#[test]
fn add_from_a_url_is_refused_with_the_way_out() {
    for (src, url) in [
        (
            "FROM debian\nRUN true\nADD http://127.0.0.1:5000/v2/_catalog /c\n",
            "http://127.0.0.1:5000/v2/_catalog",
        ),
        (
            "FROM debian\nRUN true\nADD --chown=1:1 https://169.254.169.254/latest/meta-data/ /m\n",
            "https://169.254.169.254/latest/meta-data/",
        ),
        (
            "FROM debian\nRUN true\nADD [\"https://github.com/x/y.tar.gz\", \"/opt/\"]\n",
            "https://github.com/x/y.tar.gz",
        ),
        (
            "FROM debian\nRUN true\nONBUILD ADD http://10.0.0.1/x /x\n",
            "http://10.0.0.1/x",
        ),
    ] {
        let problems = validate_dockerfile(src).expect_err(src);
        let adds: Vec<_> = problems
            .iter()
            .filter(|p| p.message.starts_with("ADD with a URL"))
            .collect();
        assert_eq!(adds.len(), 1, "{src}: {problems:?}");
        assert_eq!(adds[0].line, Some(3), "{src}");
        assert_eq!(
            adds[0].message,
            format!("ADD with a URL is not possible: the engine would download {url} on the host's own network, outside the build's egress proxy; download it in a RUN step instead (RUN curl -fsSLo DEST URL)")
        );
    }
}

#[test]
fn steps_count_instructions_not_lines_comments_or_directives() {
    let ok = validate_dockerfile(
        "# escape=\\\n# A comment\nFROM debian\n\nRUN apt-get update \\\n    # a comment inside the continuation\n    && apt-get install -y \\\n\n       jq\nENV A=1 \\\n    B=2\n",
    )
    .expect("valid");
    assert_eq!(ok.steps, 3);
}

#[test]
fn backtick_escape_directive() {
    let ok = validate_dockerfile("# escape=`\nFROM debian\nRUN echo a `\n    b\nRUN echo C:\\\n")
        .expect("valid");
    assert_eq!(ok.steps, 3);
}

#[test]
fn crlf_and_byte_order_mark_are_normalized() {
    let ok = validate_dockerfile("\u{feff}FROM debian\r\nRUN echo hi\r\n").expect("valid");
    assert_eq!(ok.dockerfile, "FROM debian\nRUN echo hi\n");
    assert_eq!(ok.base_image, "debian");
}

#[test]
fn shell_tests_in_brackets_are_not_json() {
    let ok = validate_dockerfile(
        "FROM debian\nRUN [ \"$(uname -m)\" = x86_64 ] && echo amd64 || echo other\nRUN [ -d /etc ] && echo yes\n",
    )
    .expect("valid");
    assert_eq!(ok.steps, 3);
}

#[test]
fn a_here_string_or_shift_is_not_a_heredoc() {
    let ok = validate_dockerfile(
        "FROM debian\nRUN bash -c 'cat <<< hi'\nRUN echo $((1 << 4)) \"<<EOF\"\n",
    )
    .expect("valid");
    assert_eq!(ok.steps, 3);
}

#[test]
fn lower_case_instructions_and_platform_flag() {
    let ok =
        validate_dockerfile("from --platform=linux/amd64 alpine:3.20 as base\nrun apk add bash\n")
            .expect("valid");
    assert_eq!(ok.base_image, "alpine:3.20");
}

#[test]
fn env_escapes_the_parser_cannot_read_are_read_like_the_engine() {
    // Docker accepts `\$` in a double-quoted value and backslash-escaped spaces; the parser
    // library (dockerfile-parser 0.9) fails on both, trythis's own reader takes them.
    for text in [
        "FROM debian\nENV PRICE=\"\\$5\"\n",
        "FROM debian\nENV C=three\\ words D=x\n",
        "FROM debian\nLABEL title=a\\ b\nARG V=1\\ 2\n",
    ] {
        validate_dockerfile(text).unwrap_or_else(|p| panic!("{text}: {p:?}"));
    }
    // Still refused: an unterminated quote.
    assert!(validate_dockerfile("FROM debian\nENV A=\"x\\ y\n").is_err());
}

#[test]
fn what_the_engine_would_trip_on_later_is_answered_with_its_line() {
    let problems = |text: &str| validate_dockerfile(text).expect_err("refused");
    assert_eq!(
        problems("FROM debian AS build\nRUN make\nFROM debian\nCOPY --from=biuld /out /out\n"),
        [at(4, "COPY --from=biuld: there is no earlier stage called biuld (earlier stages: build); as written, the engine would pull an image called biuld")]
    );
    // Stages by name or number, and explicit image references, are fine.
    validate_dockerfile("FROM debian AS build\nRUN make\nFROM debian\nCOPY --from=build /a /a\nCOPY --from=0 /b /b\nCOPY --from=ghcr.io/o/i:1 /c /c\n").expect("valid");
    let port = "a port is a number from 1 to 65535 (or a range like 8000-8010), optionally followed by /tcp, /udp or /sctp";
    assert_eq!(
        problems("FROM debian\nEXPOSE 80/tcp 8000-8010/udp $PORT\nEXPOSE 99999 80/http abc\n"),
        [
            at(3, &format!("EXPOSE 99999: {port}")),
            at(3, &format!("EXPOSE 80/http: {port}")),
            at(3, &format!("EXPOSE abc: {port}")),
        ]
    );
    assert_eq!(
        problems("FROM debian\nONBUILD ONBUILD RUN x\nONBUILD FROM alpine\n"),
        [
            at(2, "ONBUILD ONBUILD is not allowed (the engine refuses it)"),
            at(3, "ONBUILD FROM is not allowed (the engine refuses it)"),
        ]
    );
    let many = format!("FROM debian\n{}", "RUN true\n".repeat(101));
    assert_eq!(
        problems(&many),
        [at(102, "this stage adds more than 100 layers (RUN, COPY, ADD and WORKDIR each add one) from here; the engine fails near 125 layers, the base image's included, after minutes of work: join RUN steps with &&")]
    );
    // A new stage starts counting again.
    let two = format!(
        "FROM debian AS a\n{0}FROM debian\n{0}",
        "RUN true\n".repeat(60)
    );
    validate_dockerfile(&two).expect("two stages of 60");
}

#[test]
fn run_heredocs_are_rewritten_for_the_classic_builder() {
    let ok = validate_dockerfile(
        "FROM debian\nRUN <<EOF\nset -e\necho hi > /a\nEOF\nRUN <<-'END'\n\tmkdir /b\nEND\nWORKDIR /b\n",
    )
    .expect("accepted");
    assert_eq!(
        ok.dockerfile,
        "FROM debian\nRUN eval \"$(printf '%s\\n' \\\n      'set -e' \\\n      'echo hi > /a' \\\n    )\"\nRUN eval \"$(printf '%s\\n' \\\n      'mkdir /b' \\\n    )\"\nWORKDIR /b\n"
    );
    assert_eq!(ok.warnings[0].line, Some(2));
    // Feeding a here-document to a command is still BuildKit's.
    assert_eq!(
        validate_dockerfile("FROM debian\nRUN python3 <<EOF\nprint(1)\nEOF\n").expect_err("refused"),
        [at(2, "this here-document form needs BuildKit, which the platform's classic builder does not have: only RUN <<EOF (the lines are the script) is rewritten for it; write files with printf '%s\\n' 'line 1' 'line 2' > file instead")]
    );
}

#[test]
fn input_of_the_wrong_kind_is_named_at_once() {
    let dockerfile = |text: &str| validate_dockerfile(text).expect_err("refused")[0].to_string();
    let script = |text: &str| {
        recipe::convert_script(text, "debian:bookworm").expect_err("refused")[0].to_string()
    };
    assert_eq!(
        dockerfile("#!/bin/bash\nsudo apt-get install -y jq\n"),
        "line 2: this looks like a shell script (sudo), not a Dockerfile: paste it in the install-script box, which converts it into a Dockerfile"
    );
    assert_eq!(
        dockerfile("curl -fsSL https://x.example/i.sh | sh\n"),
        "line 1: this looks like a shell script (curl), not a Dockerfile: paste it in the install-script box, which converts it into a Dockerfile"
    );
    assert_eq!(
        script("FROM debian:bookworm\nRUN apt-get install -y jq\n"),
        "line 1: this looks like a Dockerfile (FROM, RUN, …): paste it in the Dockerfile box instead of the install-script box"
    );
    let windows = "trythis runs Linux shell scripts (bash); paste the project's Linux or macOS install commands instead";
    assert_eq!(
        script("iwr https://get.example/install.ps1 -useb | iex\n"),
        format!("line 1: this looks like PowerShell (iwr): {windows}")
    );
    assert_eq!(
        script("# install\nWrite-Host \"Installing\"\n"),
        format!("line 2: this looks like PowerShell (Write-Host): {windows}")
    );
    assert_eq!(
        script("@echo off\nset PATH=%PATH%;C:\\tools\n"),
        format!("line 1: this looks like a Windows command prompt (cmd) line (@echo): {windows}")
    );
    assert_eq!(
        script("choco install jq\n"),
        format!("line 1: this looks like a Windows command prompt (cmd) line (choco): {windows}")
    );
    // Not fooled by a shell's own % and : (date formats, PATH with an escaped $).
    recipe::convert_script(
        "date +%Y%m%d > d\nprintf '%s%s' a b\nexport PATH=\"$HOME/bin:\\$PATH\"\n",
        "debian:bookworm",
    )
    .expect("a shell script");
}
