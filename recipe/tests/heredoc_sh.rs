//! Here-documents and multi-line commands keep their meaning: the original script and the
//! generated RUN steps are both run with `/bin/sh -c` and must write the same files, with the
//! exact content expected.

mod common;

use common::{convert, run_commands, sh, temp_dir};

/// Runs the script as written and the converted RUN steps in two fresh directories; returns
/// the content of `files` after checking both runs wrote the same.
fn run_both(script: &str, files: &[&str]) -> (String, Vec<String>) {
    let original = temp_dir();
    sh(script, &original);
    let converted = convert(script);
    let generated = temp_dir();
    for command in run_commands(&converted.dockerfile) {
        sh(&command, &generated);
    }
    let contents = files
        .iter()
        .map(|file| {
            let want = std::fs::read_to_string(original.join(file)).expect("original wrote it");
            let got = std::fs::read_to_string(generated.join(file)).expect("RUN steps wrote it");
            assert_eq!(
                got, want,
                "{file} differs for\n{script}\n{}",
                converted.dockerfile
            );
            got
        })
        .collect();
    let _ = std::fs::remove_dir_all(original);
    let _ = std::fs::remove_dir_all(generated);
    (converted.dockerfile, contents)
}

#[test]
fn quoted_heredoc_stays_literal() {
    let (dockerfile, contents) = run_both(
        "cat <<'EOF' > out.txt\nplain line\nit's 'single' and \"double\"\n$VAR ${VAR} $(echo no) `echo no`\nback\\slash \\\\ and \\$ end\\\n\ttab-indented\nEOF\n",
        &["out.txt"],
    );
    assert!(
        dockerfile.contains("RUN printf '%s\\n' \\\n"),
        "{dockerfile}"
    );
    assert_eq!(
        contents[0],
        "plain line\nit's 'single' and \"double\"\n$VAR ${VAR} $(echo no) `echo no`\nback\\slash \\\\ and \\$ end\\\n\ttab-indented\n"
    );
}

#[test]
fn unquoted_heredoc_expands_like_the_shell() {
    let (dockerfile, contents) = run_both(
        "cat <<EOF > out.txt\nplain $VAR and ${VAR}\nit's 'single' and \"double\"\nescaped \\$VAR and \\\\ here\narith $((1 + 2))\nback\\slash stays\nEOF\n",
        &["out.txt"],
    );
    assert!(!dockerfile.contains("eval"), "{dockerfile}");
    assert_eq!(
        contents[0],
        "plain value and value\nit's 'single' and \"double\"\nescaped $VAR and \\ here\narith 3\nback\\slash stays\n"
    );
}

#[test]
fn dash_heredoc_strips_leading_tabs() {
    let (_, contents) = run_both(
        "cat <<-EOF > tabs.txt\n\tindented $VAR\n\t\ttwice\n  spaces stay\n\tEOF\n",
        &["tabs.txt"],
    );
    assert_eq!(contents[0], "indented value\ntwice\n  spaces stay\n");
}

#[test]
fn quoted_dash_heredoc_through_tee_in_a_chain() {
    let (dockerfile, contents) = run_both(
        "mkdir -p conf && tee conf/app.ini <<-'END' > /dev/null && chmod 600 conf/app.ini\n\t[main]\n\tuser = $USER\n\tEND\n",
        &["conf/app.ini"],
    );
    assert!(
        dockerfile.contains("    | tee conf/app.ini > /dev/null && chmod 600 conf/app.ini"),
        "{dockerfile}"
    );
    assert_eq!(contents[0], "[main]\nuser = $USER\n");
}

#[test]
fn appending_heredoc_and_empty_heredoc() {
    let (_, contents) = run_both(
        "echo start > log.txt\ncat <<EOF >> log.txt\nmore $VAR\nEOF\ncat <<EOF > empty.txt\nEOF\n",
        &["log.txt", "empty.txt"],
    );
    assert_eq!(contents, ["start\nmore value\n", ""]);
}

#[test]
fn heredoc_with_command_substitution_runs_through_eval() {
    let (dockerfile, contents) = run_both(
        "cat <<EOF > sub.txt\nsub $(echo \"it's\") `echo tick`\nEOF\n",
        &["sub.txt"],
    );
    assert!(
        dockerfile.contains("RUN eval \"$(printf '%s\\n' \\\n"),
        "{dockerfile}"
    );
    assert_eq!(contents[0], "sub it's tick\n");
}

#[test]
fn two_heredocs_in_one_command_run_through_eval() {
    let (_, contents) = run_both(
        "cat <<A > a.txt; cat <<'B' > b.txt\na $VAR\nA\nb $VAR\nB\n",
        &["a.txt", "b.txt"],
    );
    assert_eq!(contents, ["a value\n", "b $VAR\n"]);
}

#[test]
fn multi_line_quotes_and_blocks_run_through_eval() {
    let (_, contents) = run_both(
        "echo \"first\nsecond 'x'\" > q.txt\nif [ -n \"$VAR\" ]; then\n  for i in 1 2; do\n    echo \"$i\" >> loop.txt\n  done\nfi\ncase \"$VAR\" in\n  value) echo matched > case.txt ;;\nesac\n",
        &["q.txt", "loop.txt", "case.txt"],
    );
    assert_eq!(contents, ["first\nsecond 'x'\n", "1\n2\n", "matched\n"]);
}

#[test]
fn continuations_and_trailing_operators_keep_meaning() {
    let (_, contents) = run_both(
        "echo one \\\n  two > c.txt &&\n  echo three >> c.txt # trailing comment\nprintf '%s\\n' \"it's\" 'a \"b\"' >> c.txt\n",
        &["c.txt"],
    );
    assert_eq!(contents[0], "one two\nthree\nit's\na \"b\"\n");
}
