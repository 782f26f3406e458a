//! The Dockerfile as the build engine gets it: the platform's CA bundle and the variables that
//! point TLS clients at it after every `FROM`, and the build's label on every stage.

/// The platform's CA bundle in the build context.
pub(super) const CA_CONTEXT_FILE: &str = "trythis-ca-certificates.crt";
/// Where build steps find it.
const CA_IN_BUILD: &str = "/usr/local/share/trythis/ca-certificates.crt";

/// After every `FROM`: the platform's CA bundle, and build-time variables (ARGs: they do not stay
/// in the image's environment) that point TLS clients at it, so pip, npm, curl and git work on
/// networks that intercept TLS.
pub fn trust_platform_ca(dockerfile: &str) -> String {
    // One ARG instruction for all of them: each instruction is a step (a container and a commit)
    // in the classic builder.
    let vars = crate::engine::ca_env(CA_IN_BUILD).join(" ");
    after_each_from(
        dockerfile,
        &format!("COPY {CA_CONTEXT_FILE} {CA_IN_BUILD}\nARG {vars}\n"),
    )
}

/// `inject` after every complete `FROM` instruction (continuation lines included).
fn after_each_from(dockerfile: &str, inject: &str) -> String {
    let mut out = String::with_capacity(dockerfile.len() + inject.len() * 2);
    let mut in_from = false;
    for line in dockerfile.lines() {
        out.push_str(line);
        out.push('\n');
        let first = line.split_whitespace().next().unwrap_or("");
        if first.eq_ignore_ascii_case("FROM") {
            in_from = true;
        }
        if in_from && !line.trim_end().ends_with('\\') {
            in_from = false;
            out.push_str(inject);
        }
    }
    out
}

/// The label every image and step container of a build carries, for its clean-up.
pub const BUILD_LABEL: &str = "trythis.build";

/// The Dockerfile as built: `LABEL trythis.build=<id>` right after each `FROM`, so every layer
/// and step container of the build carries it (the engine's `labels` option marks the final
/// image only).
pub fn mark_build(dockerfile: &str, build_id: &str) -> String {
    after_each_from(dockerfile, &format!("LABEL {BUILD_LABEL}={build_id}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stage_is_marked_right_after_its_from() {
        assert_eq!(
            mark_build("FROM a AS x\nRUN one\nFROM \\\n  b\nCOPY --from=x /o /o\n", "b1"),
            "FROM a AS x\nLABEL trythis.build=b1\nRUN one\nFROM \\\n  b\nLABEL trythis.build=b1\nCOPY --from=x /o /o\n"
        );
    }

    #[test]
    fn every_stage_trusts_the_platform_ca() {
        let df = "FROM a AS one\nRUN x\nfrom b \\\n  AS two\nRUN y\n";
        let out = trust_platform_ca(df);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "FROM a AS one");
        assert_eq!(lines[1], format!("COPY {CA_CONTEXT_FILE} {CA_IN_BUILD}"));
        assert!(lines[2].starts_with(&format!("ARG SSL_CERT_FILE={CA_IN_BUILD} ")));
        assert!(lines[2].contains(&format!(" NODE_EXTRA_CA_CERTS={CA_IN_BUILD}")));
        assert_eq!(
            lines[3], "RUN x",
            "one ARG instruction, not one per variable"
        );
        let second = lines
            .iter()
            .position(|l| *l == "  AS two")
            .expect("the second stage's FROM continuation line is kept");
        assert_eq!(
            lines[second + 1],
            format!("COPY {CA_CONTEXT_FILE} {CA_IN_BUILD}")
        );
        assert_eq!(out.matches("COPY ").count(), 2);
        assert!(out.contains("\nRUN x\n") && out.ends_with("RUN y\n"));
    }
}
