//! Validation of maintainers' Dockerfiles (see the crate documentation for the rules).

use std::collections::HashMap;

use dockerfile_parser::Dockerfile;

use crate::shell::Lexer;
use crate::{image, normalize, precheck, sort, Kind, Problem, Validated};

/// Instructions Docker knows; anything else is a typo worth reporting before a build.
pub(crate) const INSTRUCTIONS: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

const NO_CONTEXT: &str = "there is no build context beyond the Dockerfile; download files in a RUN step or use a multi-stage COPY --from=<stage>";

/// One instruction after Docker's line handling (comments dropped, continuations joined).
#[derive(Debug)]
struct Instruction {
    line: usize,
    /// The keyword in upper case.
    keyword: String,
    /// Everything after the keyword, continuation lines joined as Docker joins them (so also
    /// with the `# escape=` character of the file).
    args: String,
    /// It uses BuildKit here-documents (their bodies were skipped).
    heredoc: bool,
    /// The last line of its text, here-document bodies included.
    end: usize,
    /// The body of its first here-document.
    body: Vec<String>,
    heredocs_closed: usize,
}

/// The most layers (RUN, COPY, ADD, WORKDIR) one stage may add: the classic builder fails near
/// 125 layers, the base image's included, after minutes of work.
pub const MAX_LAYERS: usize = 100;

impl Instruction {
    /// The instruction on one line, continuations joined, for `dockerfile-parser`. Why joined:
    /// the parser recurses once per continuation line and gives up ("stack limit reached") on
    /// small thread stacks, while a single line is read in a loop; the meaning is the same,
    /// since Docker joins the lines before reading them too.
    fn joined(&self) -> String {
        if self.args.trim().is_empty() {
            self.keyword.clone()
        } else {
            format!("{} {}", self.keyword, self.args)
        }
    }
}

/// The delimiters of BuildKit here-documents (`RUN <<EOF`, `COPY <<EOF /file`), whose bodies
/// follow the instruction; skipping them keeps one clear problem instead of one per body line.
fn heredoc_delimiters(keyword: &str, args: &str) -> Vec<String> {
    let (_, rest) = take_flags(args);
    match keyword {
        "RUN" if !json_like(rest) => Lexer::lex_line(rest)
            .heredocs
            .into_iter()
            .map(|doc| doc.delim)
            .collect(),
        "COPY" | "ADD" => rest
            .split_whitespace()
            .filter_map(|word| word.strip_prefix("<<"))
            .map(|word| word.trim_start_matches('-').replace(['\'', '"'], ""))
            .collect(),
        _ => Vec::new(),
    }
}

/// A build stage: its `AS` name and the image it finally rests on.
struct Stage {
    name: Option<String>,
    image: String,
    line: usize,
    /// Starts from an image (not from an earlier stage): the engine must have or fetch it.
    external: bool,
}

/// Validate a maintainer's Dockerfile before any build.
///
/// Why before: a build takes minutes and a builder slot; most mistakes (a `COPY` of files that
/// are not there, BuildKit-only syntax, a typo) are visible in the text and can be answered at
/// once, all of them, with line numbers. Returns every problem found, or the text to build with
/// its base image, its step count and warnings.
pub fn validate_dockerfile(text: &str) -> Result<Validated, Vec<Problem>> {
    let normalized = normalize(text);
    precheck(text, &normalized, Kind::Dockerfile)?;
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let escape = directives(&normalized, &mut problems);
    let instructions = split(&normalized, escape, &mut problems);

    let mut global_args: HashMap<String, Option<String>> = HashMap::new();
    let mut stages: Vec<Stage> = Vec::new();
    let mut copied: Vec<(usize, String)> = Vec::new();
    let mut first_checked = false;
    for instruction in &instructions {
        if !first_checked && instruction.keyword != "ARG" {
            first_checked = true;
            if instruction.keyword != "FROM" && INSTRUCTIONS.contains(&instruction.keyword.as_str())
            {
                problems.push(Problem::at(
                    instruction.line,
                    format!(
                        "the first instruction must be FROM (only ARG may come before it), not {}",
                        instruction.keyword
                    ),
                ));
            }
        }
        let before = problems.len();
        check(
            instruction,
            &mut stages,
            &mut copied,
            &mut global_args,
            &mut problems,
            &mut warnings,
        );
        let already_reported = problems[before..]
            .iter()
            .any(|p| p.line == Some(instruction.line));
        let own_reading = matches!(instruction.keyword.as_str(), "ENV" | "LABEL" | "ARG")
            && instruction.args.contains('\\')
            && key_values(&instruction.args).is_some();
        if !already_reported && !instruction.heredoc && !own_reading {
            if let Err(error) = Dockerfile::parse(&instruction.joined()) {
                let detail = match error {
                    _ if instruction.keyword == "RUN" && array_prefix(&instruction.args) => {
                        " (a command starting with [ \"…\" ] reads like the JSON form; write test \"…\" instead of [ \"…\" ])".to_string()
                    }
                    dockerfile_parser::Error::ParseError { .. } => String::new(),
                    other => format!(" ({other})"),
                };
                problems.push(Problem::at(
                    instruction.line,
                    format!(
                        "could not parse this {} instruction{detail}",
                        instruction.keyword
                    ),
                ));
            }
        }
    }
    if stages.is_empty() && !instructions.iter().any(|i| i.keyword == "FROM") {
        problems.push(Problem::general("The Dockerfile has no FROM instruction"));
    }
    let base_image = match stages.last() {
        Some(stage) if stage.image == "scratch" => {
            problems.push(Problem::at(
                stage.line,
                "FROM scratch has nothing to run a shell in: visitors get bash inside the image, so start from an image that has one (for example debian:bookworm-slim)",
            ));
            String::new()
        }
        Some(stage) => stage.image.clone(),
        None => String::new(),
    };
    let mut layers = 0;
    for instruction in &instructions {
        match instruction.keyword.as_str() {
            "FROM" => layers = 0,
            "RUN" | "COPY" | "ADD" | "WORKDIR" => {
                layers += 1;
                if layers == MAX_LAYERS + 1 {
                    problems.push(Problem::at(
                        instruction.line,
                        format!("this stage adds more than {MAX_LAYERS} layers (RUN, COPY, ADD and WORKDIR each add one) from here; the engine fails near 125 layers, the base image's included, after minutes of work: join RUN steps with &&"),
                    ));
                }
            }
            _ => {}
        }
    }
    if !problems.is_empty() {
        return Err(sort(problems));
    }
    // RUN <<EOF, rewritten for the classic builder: the same lines, run with eval.
    let mut dockerfile = normalized;
    let rewrites: Vec<(&Instruction, String)> = instructions
        .iter()
        .filter(|i| i.heredoc && i.keyword == "RUN")
        .filter_map(|i| rewrite_heredoc(i).map(|r| (i, r)))
        .collect();
    if !rewrites.is_empty() {
        let lines: Vec<&str> = dockerfile.lines().collect();
        let mut out = String::new();
        let mut n = 1;
        for (instruction, replacement) in &rewrites {
            for line in &lines[n - 1..instruction.line - 1] {
                out.push_str(line);
                out.push('\n');
            }
            out.push_str(replacement);
            out.push('\n');
            n = instruction.end + 1;
            warnings.push(Problem::at(
                instruction.line,
                "RUN <<EOF is rewritten for the classic builder: the here-document's lines run with eval, as its script would",
            ));
        }
        for line in lines.iter().skip(n - 1) {
            out.push_str(line);
            out.push('\n');
        }
        dockerfile = out;
    }
    let images = stages
        .iter()
        .filter(|s| s.external && s.image != "scratch")
        .map(|s| (s.line, s.image.clone()))
        .collect();
    Ok(Validated {
        dockerfile,
        base_image,
        images,
        copied_images: copied,
        steps: instructions.len(),
        warnings: sort(warnings),
    })
}

/// Every instruction of a Dockerfile, in the order the classic builder counts them as
/// `Step n/m` (the same reading as [`validate_dockerfile`]'s step count): where each starts and
/// its text, continuation lines joined.
pub fn instructions(text: &str) -> Vec<crate::Instruction> {
    let normalized = normalize(text);
    let mut problems = Vec::new();
    let escape = directives(&normalized, &mut problems);
    split(&normalized, escape, &mut problems)
        .into_iter()
        .map(|i| crate::Instruction {
            line: i.line,
            keyword: i.keyword.clone(),
            text: i.joined(),
        })
        .collect()
}

/// Reads the parser directives at the top of the file; returns the escape character.
fn directives(text: &str, problems: &mut Vec<Problem>) -> char {
    let mut escape = '\\';
    for (index, line) in text.lines().enumerate() {
        let Some((key, value)) = directive(line) else {
            break;
        };
        match key.to_ascii_lowercase().as_str() {
            "syntax" => problems.push(Problem::at(
                index + 1,
                "custom BuildKit frontends are not available (# syntax=…): the platform builds with Docker's classic builder; remove this line",
            )),
            "escape" => match value {
                "\\" => escape = '\\',
                "`" => escape = '`',
                _ => problems.push(Problem::at(
                    index + 1,
                    format!("the escape directive must be \\ or `, not {value}"),
                )),
            },
            _ => {}
        }
    }
    escape
}

/// `# key=value` as Docker reads directives: a word, `=`, a value.
fn directive(line: &str) -> Option<(&str, &str)> {
    let rest = line.trim().strip_prefix('#')?.trim_start();
    let (key, value) = rest.split_once('=')?;
    let key = key.trim_end();
    let mut chars = key.chars();
    let key_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric());
    key_ok.then_some((key, value.trim()))
}

/// Splits the text into instructions the way Docker does: comment lines go, blank lines
/// between instructions go, a line ending in the escape character continues on the next.
fn split(text: &str, escape: char, problems: &mut Vec<Problem>) -> Vec<Instruction> {
    let mut out: Vec<Instruction> = Vec::new();
    let mut current: Option<Instruction> = None;
    let mut last_line = 0;
    let mut heredoc_ends: Vec<String> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if let Some(delim) = heredoc_ends.first() {
            let closes = line.trim() == delim;
            if let Some(last) = out.last_mut() {
                // Only the first here-document's body is kept (the only one rewritten).
                if closes {
                    last.heredocs_closed += 1;
                } else if last.heredocs_closed == 0 {
                    last.body.push(line.to_string());
                }
                last.end = number;
            }
            if closes {
                heredoc_ends.remove(0);
            }
            continue;
        }
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (content, continues) = match line.trim_end().strip_suffix(escape) {
            Some(content) => (content, true),
            None => (line, false),
        };
        match current.as_mut() {
            Some(instruction) => instruction.args.push_str(content),
            None => {
                let (keyword, args) = match content.trim_start().split_once([' ', '\t']) {
                    Some((keyword, args)) => (keyword, args.trim_start()),
                    None => (content.trim(), ""),
                };
                current = Some(Instruction {
                    line: number,
                    keyword: keyword.to_ascii_uppercase(),
                    args: args.to_string(),
                    heredoc: false,
                    end: number,
                    body: Vec::new(),
                    heredocs_closed: 0,
                });
            }
        }
        last_line = number;
        if let Some(c) = current.as_mut() {
            c.end = number;
        }
        if !continues {
            if let Some(mut done) = current.take() {
                heredoc_ends = heredoc_delimiters(&done.keyword, &done.args);
                done.heredoc = !heredoc_ends.is_empty();
                out.push(done);
            }
        }
    }
    if let Some(unfinished) = current.take() {
        problems.push(Problem::at(
            last_line,
            format!("the last line ends with a line continuation ({escape}) but no line follows"),
        ));
        out.push(unfinished);
    }
    out
}

/// The rules for one instruction.
fn check(
    instruction: &Instruction,
    stages: &mut Vec<Stage>,
    copied: &mut Vec<(usize, String)>,
    global_args: &mut HashMap<String, Option<String>>,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<Problem>,
) {
    let line = instruction.line;
    let args = instruction.args.trim();
    let keyword = instruction.keyword.as_str();
    let mut problem = |message: String| problems.push(Problem::at(line, message));
    match keyword {
        "ARG" if stages.is_empty() => {
            let (name, value) = match args.split_once('=') {
                Some((name, value)) => (name, Some(unquote(value))),
                None => (args, None),
            };
            global_args.insert(name.trim().to_string(), value);
        }
        "FROM" => check_from(args, line, stages, global_args, &mut problem),
        "COPY" | "ADD" if instruction.heredoc => problem(format!("here-documents in a Dockerfile ({keyword} <<EOF) need BuildKit, which the platform's classic builder does not have; write the file with printf in a RUN step")),
        "COPY" | "ADD" => {
            check_copy(keyword, args, &mut problem);
            if let Some(image) = check_copy_from(args, stages, &mut problem) {
                copied.push((line, image));
            }
        }
        "EXPOSE" => check_expose(args, &mut problem),
        "RUN" => {
            let (flags, rest) = take_flags(args);
            for (name, _) in flags {
                problem(match name.as_str() {
                    "mount" => "RUN --mount needs BuildKit, and there is no build context or cache to mount; download what you need inside the RUN step".into(),
                    "network" => "RUN --network needs BuildKit; the build's network is decided by the platform".into(),
                    "security" => "RUN --security needs BuildKit, and insecure builds are never allowed".into(),
                    other => format!("RUN --{other} needs BuildKit, which the platform's classic builder does not have"),
                });
            }
            if instruction.heredoc {
                if script_heredoc(rest).is_none() {
                    problem("this here-document form needs BuildKit, which the platform's classic builder does not have: only RUN <<EOF (the lines are the script) is rewritten for it; write files with printf '%s\\n' 'line 1' 'line 2' > file instead".into());
                }
            } else {
                check_exec_form(keyword, rest, false, &mut problem);
            }
        }
        "CMD" | "ENTRYPOINT" => {
            check_exec_form(keyword, args, false, &mut problem);
            warnings.push(Problem::at(
                line,
                format!("{keyword} is not run for visitors: they get the platform's shell (bash) in the image's WORKDIR; put setup in RUN steps"),
            ));
        }
        "SHELL" => check_exec_form(keyword, args, true, &mut problem),
        "VOLUME" => {
            check_exec_form(keyword, args, false, &mut problem);
            warnings.push(Problem::at(
                line,
                "VOLUME is ignored: a sandbox's writable places are set by the platform (the home directory, WORKDIR and /tmp)",
            ));
        }
        "ONBUILD" => {
            // It runs when another project builds FROM this image: its ADD would be fetched by
            // the engine then, so the inner instruction gets the same checks.
            let (inner, rest) = args.split_once([' ', '\t']).unwrap_or((args, ""));
            let inner = inner.to_ascii_uppercase();
            match inner.as_str() {
                "" => problem("ONBUILD needs an instruction to run later, for example ONBUILD RUN make".into()),
                "ONBUILD" | "FROM" | "MAINTAINER" => problem(format!("ONBUILD {inner} is not allowed (the engine refuses it)")),
                "ADD" | "COPY" => {
                    check_copy(&inner, rest.trim(), &mut problem);
                    // It would read that image when someone else builds FROM this one, where
                    // no check of this Dockerfile runs.
                    if take_flags(rest.trim()).0.iter().any(|(name, _)| name == "from") {
                        problem(format!("ONBUILD {inner} --from is not allowed: it would read an image in another project's build, where this Dockerfile is not checked; copy from a stage of the Dockerfile that builds FROM this image instead"));
                    }
                }
                known if INSTRUCTIONS.contains(&known) => {}
                unknown => problem(format!("ONBUILD {unknown}: unknown instruction")),
            }
            warnings.push(Problem::at(
                line,
                "ONBUILD only runs when another image is built FROM this one; it has no effect here",
            ));
        }
        "HEALTHCHECK" if !args.eq_ignore_ascii_case("none") => problem(
            "HEALTHCHECK is not supported: a sandbox runs a shell, not your service, so the check would only fail and spend the sandbox's CPU and processes (HEALTHCHECK NONE is accepted)".into(),
        ),
        known if INSTRUCTIONS.contains(&known) => {}
        unknown => problem(match suggestion(unknown) {
            Some(known) => format!("unknown instruction {unknown} (did you mean {known}?)"),
            None => format!("unknown instruction {unknown}"),
        }),
    }
}

/// `RUN <<EOF` (or `<<-EOF`, `<<'EOF'`, `<<"EOF"`) alone: the body is the script. Returns whether
/// leading tabs are stripped (`<<-`).
fn script_heredoc(rest: &str) -> Option<bool> {
    let word = rest.trim();
    let delim = word.strip_prefix("<<")?;
    let (dash, delim) = match delim.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, delim),
    };
    let bare = delim.trim_matches(|c| c == '\'' || c == '"');
    let plain = !bare.is_empty()
        && bare
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    plain.then_some(dash)
}

/// The classic builder's form of a `RUN <<EOF` instruction: the body's lines run with eval, as
/// the here-document's script would.
fn rewrite_heredoc(instruction: &Instruction) -> Option<String> {
    let (flags, rest) = take_flags(instruction.args.trim());
    if !flags.is_empty() {
        return None;
    }
    let dash = script_heredoc(rest)?;
    let mut out = String::from("RUN eval \"$(printf '%s\\n' \\\n");
    for line in &instruction.body {
        let line = if dash {
            line.trim_start_matches('\t')
        } else {
            line
        };
        out.push_str(&format!("      {} \\\n", crate::shell::single_quote(line)));
    }
    out.push_str("    )\"");
    Some(out)
}

/// `EXPOSE` values: `80`, `80/tcp`, `8000-8010/udp`, or a `$VARIABLE`.
fn check_expose(args: &str, problem: &mut impl FnMut(String)) {
    if args.is_empty() {
        problem("EXPOSE needs at least one port, for example EXPOSE 8080".into());
    }
    for value in args.split_whitespace() {
        if value.starts_with('$') {
            continue;
        }
        let (ports, proto) = match value.split_once('/') {
            Some((ports, proto)) => (ports, Some(proto)),
            None => (value, None),
        };
        let port_ok = |p: &str| p.parse::<u16>().is_ok_and(|n| n > 0);
        let ports_ok = match ports.split_once('-') {
            Some((a, b)) => {
                port_ok(a) && port_ok(b) && a.parse::<u16>().ok() <= b.parse::<u16>().ok()
            }
            None => port_ok(ports),
        };
        let proto_ok =
            proto.is_none_or(|p| matches!(p.to_ascii_lowercase().as_str(), "tcp" | "udp" | "sctp"));
        if !(ports_ok && proto_ok) {
            problem(format!("EXPOSE {value}: a port is a number from 1 to 65535 (or a range like 8000-8010), optionally followed by /tcp, /udp or /sctp"));
        }
    }
}

/// `KEY=value` pairs of ENV, LABEL or ARG as the engine reads them: quotes group, a backslash
/// escapes the next character (`C=three\ words`). Returns None when the text is not such pairs.
fn key_values(args: &str) -> Option<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    let mut chars = args.trim().chars().peekable();
    while chars.peek().is_some() {
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.next() != Some('=') || key.is_empty() {
            return None;
        }
        let mut value = String::new();
        let mut quote: Option<char> = None;
        while let Some(c) = chars.next() {
            match (c, quote) {
                ('\\', q) if q != Some('\'') => value.push(chars.next()?),
                ('"' | '\'', None) => quote = Some(c),
                (c, Some(q)) if c == q => quote = None,
                (c, None) if c.is_whitespace() => break,
                (c, _) => value.push(c),
            }
        }
        if quote.is_some() {
            return None;
        }
        pairs.push((key, value));
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
    }
    (!pairs.is_empty()).then_some(pairs)
}

fn check_from(
    args: &str,
    line: usize,
    stages: &mut Vec<Stage>,
    global_args: &HashMap<String, Option<String>>,
    problem: &mut impl FnMut(String),
) {
    let (flags, rest) = take_flags(args);
    for (name, _) in flags {
        if name != "platform" {
            problem(format!("unknown FROM flag --{name}"));
        }
    }
    let words: Vec<&str> = rest.split_whitespace().collect();
    let (written, name) = match words.as_slice() {
        [image] => (*image, None),
        [image, as_word, name] if as_word.eq_ignore_ascii_case("as") => {
            (*image, Some(name.to_ascii_lowercase()))
        }
        _ => {
            problem("FROM takes an image and optionally AS <name>, for example FROM debian:bookworm AS build".into());
            return;
        }
    };
    let image = match substitute(written, global_args) {
        Ok(image) => image,
        Err(var) => {
            problem(format!("FROM uses ${var}, which has no default value (build arguments cannot be passed to the build); give it one with ARG {var}=<value> before FROM"));
            return;
        }
    };
    let lowered = image.to_ascii_lowercase();
    let (image, external) = match stages
        .iter()
        .rev()
        .find(|s| s.name.as_deref() == Some(lowered.as_str()))
    {
        Some(stage) => (stage.image.clone(), false),
        None if image::valid(&image) => (image, true),
        None => {
            problem(format!("FROM {image}: not a valid image reference"));
            return;
        }
    };
    stages.push(Stage {
        name,
        image,
        line,
        external,
    });
}

/// `COPY --from=` names an earlier stage (by name or number) or an image. A word that is
/// neither would be pulled as an image from Docker Hub instead, minutes later. Returns the image
/// it names, if any: the engine fetches it like a `FROM` image, so the platform applies the same
/// policy to it (see `Validated::copied_images`).
fn check_copy_from(
    args: &str,
    stages: &[Stage],
    problem: &mut impl FnMut(String),
) -> Option<String> {
    let (flags, _) = take_flags(args);
    let (_, from) = flags.iter().find(|(name, _)| name == "from")?;
    if from.contains('$') {
        // The classic builder does not expand it, and nothing here could check what it names.
        problem(format!("COPY --from={from}: a variable in --from cannot be checked before the build; name an earlier stage or write the image out"));
        return None;
    }
    let lowered = from.to_ascii_lowercase();
    let earlier = stages.len().saturating_sub(1);
    let by_number = lowered
        .parse::<usize>()
        .map(|n| n < earlier)
        .unwrap_or(false);
    let by_name = stages[..earlier]
        .iter()
        .any(|s| s.name.as_deref() == Some(lowered.as_str()));
    if by_number || by_name {
        return None;
    }
    if from.contains([':', '/', '.', '@']) {
        if image::valid(from) {
            return Some(from.clone());
        }
        problem(format!("COPY --from={from}: not a valid image reference"));
        return None;
    }
    let names: Vec<&str> = stages[..earlier]
        .iter()
        .filter_map(|s| s.name.as_deref())
        .collect();
    problem(if names.is_empty() {
        format!("COPY --from={from}: there is no earlier stage called {from} (name one with FROM image AS {from}); as written, the engine would pull an image called {from}")
    } else {
        format!("COPY --from={from}: there is no earlier stage called {from} (earlier stages: {}); as written, the engine would pull an image called {from}", names.join(", "))
    });
    None
}

fn check_copy(keyword: &str, args: &str, problem: &mut impl FnMut(String)) {
    let (flags, rest) = take_flags(args);
    let mut from = false;
    for (name, value) in &flags {
        match name.as_str() {
            "from" if keyword == "COPY" => from = !value.is_empty(),
            "chown" => {}
            "chmod" | "link" | "parents" | "exclude" | "checksum" | "keep-git-dir" => problem(format!(
                "{keyword} --{name} needs BuildKit, which the platform's classic builder does not have"
            )),
            other => problem(format!("unknown {keyword} flag --{other}")),
        }
    }
    let paths: Vec<String> = if json_like(rest) {
        match json_array(rest) {
            Ok(paths) => paths,
            Err(reason) => {
                problem(json_message(keyword, &reason));
                return;
            }
        }
    } else {
        rest.split_whitespace().map(str::to_string).collect()
    };
    if paths.len() < 2 {
        problem(format!(
            "{keyword} needs at least one source and a destination"
        ));
        return;
    }
    let sources = &paths[..paths.len() - 1];
    let remote = |s: &String| s.contains("://") || s.starts_with("git@");
    match keyword {
        "COPY" if !from => problem(format!("COPY of local files is not possible: {NO_CONTEXT}")),
        // The engine fetches ADD's URLs itself, on the host's network: outside the build's
        // isolated network and its egress proxy (it could read the host's loopback services).
        "ADD" if sources.iter().any(remote) => problem(format!(
            "ADD with a URL is not possible: the engine would download {} on the host's own network, outside the build's egress proxy; download it in a RUN step instead (RUN curl -fsSLo DEST URL)",
            sources.iter().find(|s| remote(s)).map(String::as_str).unwrap_or("it")
        )),
        "ADD" => problem(format!("ADD of local files is not possible: {NO_CONTEXT}")),
        _ => {}
    }
}

/// `--name=value` flags at the start of the arguments, and the rest.
fn take_flags(args: &str) -> (Vec<(String, String)>, &str) {
    let mut flags = Vec::new();
    let mut rest = args.trim_start();
    while let Some(flag) = rest.strip_prefix("--") {
        let end = flag.find([' ', '\t']).unwrap_or(flag.len());
        let (name, value) = flag[..end].split_once('=').unwrap_or((&flag[..end], ""));
        flags.push((name.to_ascii_lowercase(), value.to_string()));
        rest = flag[end..].trim_start();
    }
    (flags, rest)
}

/// Refuses a broken JSON form; `required` for SHELL, which has no shell form.
fn check_exec_form(keyword: &str, args: &str, required: bool, problem: &mut impl FnMut(String)) {
    if required || json_like(args) {
        if let Err(reason) = json_array(args) {
            problem(json_message(keyword, &reason));
        }
    }
}

fn json_message(keyword: &str, reason: &str) -> String {
    format!("this {keyword} looks like a JSON array but is not valid JSON ({reason}); write [\"executable\", \"argument\"] with double quotes, or leave out the brackets for the shell form")
}

/// Whether the author meant the JSON (exec) form: `[` then a quoted string followed by `,` or
/// `]` (or nothing), or exactly `[]`. `[ "$x" = y ]` is a shell test, not JSON.
pub(crate) fn json_like(args: &str) -> bool {
    let Some(rest) = args.trim().strip_prefix('[') else {
        return false;
    };
    let rest = rest.trim_start();
    if let Some(after) = rest.strip_prefix(']') {
        return after.trim().is_empty();
    }
    let Some(quote) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') else {
        return false;
    };
    let body = &rest[1..];
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            c if c == quote => {
                let after = body[i + 1..].trim_start();
                return after.is_empty() || after.starts_with(',') || after.starts_with(']');
            }
            _ => {}
        }
    }
    true
}

/// Whether the text starts with something dockerfile-parser takes for the JSON form
/// (`[ "a" ]`, `['a', "b"]`, `[]`) even though more text follows, which it then refuses.
pub(crate) fn array_prefix(args: &str) -> bool {
    let Some(mut rest) = args.trim_start().strip_prefix('[') else {
        return false;
    };
    loop {
        rest = rest.trim_start();
        if rest.starts_with(']') {
            return true;
        }
        let Some(quote) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') else {
            return false;
        };
        let mut escaped = false;
        let mut close = None;
        for (i, c) in rest.char_indices().skip(1) {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                c if c == quote => {
                    close = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let Some(close) = close else {
            return false;
        };
        rest = rest[close + 1..].trim_start();
        if rest.starts_with(']') {
            return true;
        }
        match rest.strip_prefix(',') {
            Some(after) => rest = after,
            None => return false,
        }
    }
}

/// Parses a JSON array of strings, saying what is wrong otherwise.
fn json_array(text: &str) -> Result<Vec<String>, String> {
    let chars: Vec<char> = text.trim().chars().collect();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while chars.get(*i).is_some_and(|c| c.is_whitespace()) {
            *i += 1;
        }
    };
    if chars.first() != Some(&'[') {
        return Err("it must start with [".into());
    }
    i += 1;
    let mut out = Vec::new();
    skip_ws(&mut i);
    if chars.get(i) == Some(&']') {
        i += 1;
    } else {
        loop {
            skip_ws(&mut i);
            match chars.get(i) {
                Some('"') => {}
                Some('\'') => {
                    return Err("JSON strings need double quotes, not single quotes".into())
                }
                Some(c) => return Err(format!("expected a \"string\", found {c}")),
                None => return Err("the array is never closed with ]".into()),
            }
            i += 1;
            let mut value = String::new();
            loop {
                match chars.get(i) {
                    None => return Err("a string is never closed".into()),
                    Some('"') => break,
                    Some('\\') => {
                        let escaped = match chars.get(i + 1) {
                            Some('"') => '"',
                            Some('\\') => '\\',
                            Some('/') => '/',
                            Some('n') => '\n',
                            Some('t') => '\t',
                            Some('r') => '\r',
                            Some('b') => '\u{8}',
                            Some('f') => '\u{c}',
                            Some('u') => {
                                let hex: String = chars.iter().skip(i + 2).take(4).collect();
                                let code = u32::from_str_radix(&hex, 16)
                                    .ok()
                                    .filter(|_| hex.len() == 4)
                                    .ok_or("a \\u escape needs four hex digits")?;
                                i += 4;
                                char::from_u32(code).unwrap_or('\u{fffd}')
                            }
                            _ => return Err("unknown escape in a string".into()),
                        };
                        value.push(escaped);
                        i += 2;
                        continue;
                    }
                    Some(c) => value.push(*c),
                }
                i += 1;
            }
            i += 1;
            out.push(value);
            skip_ws(&mut i);
            match chars.get(i) {
                Some(',') => i += 1,
                Some(']') => {
                    i += 1;
                    break;
                }
                Some(c) => return Err(format!("expected , or ] after a string, found {c}")),
                None => return Err("the array is never closed with ]".into()),
            }
        }
    }
    skip_ws(&mut i);
    if i < chars.len() {
        return Err("there is text after the closing ]".into());
    }
    Ok(out)
}

/// Replaces `$NAME`, `${NAME}` and `${NAME:-default}` with global ARG defaults; the name of
/// the first variable without a value otherwise.
fn substitute(text: &str, args: &HashMap<String, Option<String>>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (inner, used) = match after.strip_prefix('{') {
            Some(braced) => match braced.find('}') {
                Some(close) => (&braced[..close], close + 2),
                None => return Err(braced.to_string()),
            },
            None => {
                let len = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..len], len)
            }
        };
        let (name, default) = match inner.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (inner, None),
        };
        match args
            .get(name)
            .cloned()
            .flatten()
            .or(default.map(str::to_string))
        {
            Some(value) => out.push_str(&value),
            None => return Err(name.to_string()),
        }
        rest = &after[used..];
    }
    out.push_str(rest);
    Ok(out)
}

fn unquote(value: &str) -> String {
    let value = value.trim();
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|v| v.strip_suffix(quote))
        {
            return inner.to_string();
        }
    }
    value.to_string()
}

/// The known instruction closest to a typo (at most two edits away).
fn suggestion(word: &str) -> Option<&'static str> {
    INSTRUCTIONS
        .iter()
        .map(|known| (distance(word, known), *known))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, known)| known)
}

/// Levenshtein distance, counting a swap of two neighbours as one edit.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d: Vec<Vec<usize>> = (0..=a.len())
        .map(|i| (0..=b.len()).map(|j| if i == 0 { j } else { i }).collect())
        .collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_like_tells_exec_form_from_shell_tests() {
        assert!(json_like(r#"["echo", "hi""#));
        assert!(json_like(r#"['echo']"#));
        assert!(json_like("[]"));
        assert!(!json_like(r#"[ "$x" = y ] && echo"#));
        assert!(!json_like("[ -f /x ] || true"));
        assert!(!json_like(r#"[] x"#));
    }

    #[test]
    fn array_prefix_matches_what_the_parser_reads_as_json() {
        assert!(array_prefix(r#"[ "$FOO" ] && echo set"#));
        assert!(array_prefix(r#"['a', "b"] x"#));
        assert!(array_prefix("[] x"));
        assert!(!array_prefix(r#"[ "$x" = y ] && echo"#));
        assert!(!array_prefix("[ -f /x ] || true"));
    }

    #[test]
    fn json_array_explains_errors() {
        assert_eq!(
            json_array(r#"["a", "b\"c"]"#),
            Ok(vec!["a".into(), "b\"c".into()])
        );
        assert_eq!(
            json_array(r#"["echo", "hi""#),
            Err("the array is never closed with ]".into())
        );
        assert_eq!(
            json_array("['echo']"),
            Err("JSON strings need double quotes, not single quotes".into())
        );
    }

    #[test]
    fn typos_get_suggestions() {
        assert_eq!(suggestion("FORM"), Some("FROM"));
        assert_eq!(suggestion("WORKIDR"), Some("WORKDIR"));
        assert_eq!(suggestion("XYZZY"), None);
    }

    #[test]
    fn global_args_substitute_into_from() {
        let args = HashMap::from([("V".to_string(), Some("3.12".to_string()))]);
        assert_eq!(
            substitute("python:${V}-slim", &args),
            Ok("python:3.12-slim".into())
        );
        assert_eq!(substitute("python:$V", &args), Ok("python:3.12".into()));
        assert_eq!(substitute("${BASE:-debian}", &args), Ok("debian".into()));
        assert_eq!(substitute("$BASE", &args), Err("BASE".into()));
    }
}
