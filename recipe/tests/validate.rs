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
fn env_escapes_the_parser_cannot_read_are_reported_on_their_line() {
    // Docker accepts `\$` in a double-quoted ENV value, dockerfile-parser 0.9 does not; the
    // line is reported instead of failing later in an unclear way.
    assert_eq!(
        validate_dockerfile("FROM debian\nENV PRICE=\"\\$5\"\n").expect_err("refused"),
        [at(
            2,
            "could not parse this ENV instruction (error unescaping string: UnrecognizedEscape)"
        )]
    );
}
