//! The layering rule, checked on the source: domains (`sandbox`, `builds`, `accounts`, and
//! `lifecycle` across them) never import the edge (`http`, axum), the wiring (the crate root's
//! composition, `jobs`) or the UI (`app`, leptos); the platform modules below them (`engine`,
//! `network`, `config`, `metrics`, `secrets`, `tar`, `cidr`) import none of those nor a domain;
//! no top-level module imports one that imports it back; and the edge asks the sandbox service,
//! never its runtime. docs/ARCHITECTURE.md ("Where things are") names the layers.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const DOMAINS: &[&str] = &["sandbox", "builds", "accounts", "lifecycle"];
const PLATFORM: &[&str] = &[
    "engine", "network", "config", "metrics", "secrets", "tar", "cidr",
];
const EDGE: &[&str] = &["http"];
const WIRING: &[&str] = &["jobs"];
/// Crates only the edge (and the UI crate) may use.
const EDGE_CRATES: &[&str] = &["app", "axum", "leptos", "leptos_axum", "leptos_meta"];

/// One reference found in a file: a line and what it names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Ref {
    /// `crate::<first segment>`.
    Module(String),
    /// `<crate>::…` of an outside crate.
    Crate(String),
}

/// Every `crate::x` (also inside `use crate::{x::…, y}`) and `<edge crate>::` in `text`, with
/// its line number; comments are skipped.
fn references(text: &str) -> Vec<(usize, Ref)> {
    let mut found = Vec::new();
    // A `use crate::{…}` group can span lines: scan the text with comments blanked.
    let code: String = text
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let line_of = |at: usize| code[..at].matches('\n').count() + 1;
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let starts_path = |at: usize| {
        at == 0 || {
            let before = code.as_bytes()[at - 1];
            !(before.is_ascii_alphanumeric() || before == b'_' || before == b':')
        }
    };
    for (at, _) in code.match_indices("crate::") {
        if !starts_path(at) {
            continue;
        }
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Items at depth 1 of the group: their first segments.
            let mut depth = 1;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => item_start = true,
                    c if c.is_whitespace() => {}
                    _ if item_start && depth == 1 => {
                        item_start = false;
                        let name = ident(&group[i..]);
                        if !name.is_empty() {
                            let item_at = at + "crate::{".len() + i;
                            found.push((line_of(item_at), Ref::Module(name)));
                        }
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                found.push((line_of(at), Ref::Module(name)));
            }
        }
    }
    for krate in EDGE_CRATES {
        let needle = format!("{krate}::");
        for (at, _) in code.match_indices(&needle) {
            if starts_path(at) {
                found.push((line_of(at), Ref::Crate(krate.to_string())));
            }
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read server/src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src` belongs to (`None`: the crate root, `lib.rs`/`main.rs`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    match first.strip_suffix(".rs") {
        Some("lib" | "main") => None,
        Some(m) => Some(m.to_string()),
        None => Some(first),
    }
}

/// What module `module` may not name, and why (empty: no rule).
fn forbidden(module: &str, named: &Ref, modules: &BTreeSet<String>) -> Option<&'static str> {
    let domain = DOMAINS.contains(&module);
    let platform = PLATFORM.contains(&module);
    if !domain && !platform {
        return None;
    }
    match named {
        Ref::Crate(_) => Some("the UI or the HTTP framework"),
        Ref::Module(m) if EDGE.contains(&m.as_str()) => Some("the edge"),
        Ref::Module(m) if WIRING.contains(&m.as_str()) => Some("the wiring"),
        // Not a module: an item of the crate root (the composition root, its error).
        Ref::Module(m) if !modules.contains(m) => Some("the wiring (crate root)"),
        Ref::Module(m) if platform && DOMAINS.contains(&m.as_str()) => Some("a domain"),
        _ => None,
    }
}

/// Every breach of the rule in the tree at `src`, as `file:line: what`.
fn breaches(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_of(src, f)).collect();
    let mut out = Vec::new();
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for file in &files {
        let Some(module) = module_of(src, file) else {
            continue;
        };
        let text = std::fs::read_to_string(file).expect("read source");
        // Unit-test modules in their own files may use anything (fakes, the edge's types).
        if file.file_name().is_some_and(|n| n == "fast_tests.rs") {
            continue;
        }
        let text = match text.find("#[cfg(test)]\nmod tests") {
            Some(i) => &text[..i],
            None => &text[..],
        };
        let shown = file
            .strip_prefix(src.parent().expect("server"))
            .expect("in server");
        if EDGE.contains(&module.as_str()) {
            // Handlers ask the services; the runtime is the sandbox service's own.
            for (n, line) in text.lines().enumerate() {
                if line.contains("sandboxes.runtime()") {
                    out.push(format!(
                        "{}:{}: the edge reaches into the sandbox runtime",
                        shown.display(),
                        n + 1
                    ));
                }
            }
        }
        for (line, named) in references(text) {
            if let Some(why) = forbidden(&module, &named, &modules) {
                out.push(format!(
                    "{}:{line}: {module} names {named:?}, which is {why}",
                    shown.display()
                ));
            }
            if let Ref::Module(m) = &named {
                if modules.contains(m) && *m != module {
                    graph
                        .entry(module.clone())
                        .or_default()
                        .entry(m.clone())
                        .or_insert_with(|| format!("{}:{line}", shown.display()));
                }
            }
        }
    }
    // No two modules import each other, directly or around a longer loop.
    for (a, targets) in &graph {
        for (b, at) in targets {
            if let Some(back) = path_between(&graph, b, a) {
                out.push(format!(
                    "{at}: {a} imports {b}, which imports it back ({})",
                    back.join(" -> ")
                ));
            }
        }
    }
    out
}

/// A chain of imports from `from` to `to`, if there is one.
fn path_between(
    graph: &BTreeMap<String, BTreeMap<String, String>>,
    from: &str,
    to: &str,
) -> Option<Vec<String>> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![vec![from.to_string()]];
    while let Some(path) = stack.pop() {
        let last = path.last().expect("non-empty").clone();
        if last == to {
            return Some(path);
        }
        if !seen.insert(last.clone()) {
            continue;
        }
        for next in graph.get(&last).into_iter().flat_map(|t| t.keys()) {
            let mut longer = path.clone();
            longer.push(next.clone());
            stack.push(longer);
        }
    }
    None
}

#[test]
fn domains_never_import_the_edge_the_wiring_or_the_ui() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = breaches(&src);
    assert!(
        found.is_empty(),
        "the layering rule is broken:\n{}",
        found.join("\n")
    );
}

/// The checker itself: each kind of breach in a small tree is found.
#[test]
fn the_checker_finds_each_kind_of_breach() {
    let dir = std::env::temp_dir().join(format!("trythis-layers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("sandbox")).expect("mkdir");
    let write = |name: &str, text: &str| std::fs::write(src.join(name), text).expect("write");
    write(
        "lib.rs",
        "pub mod http; pub mod sandbox; pub mod config; pub mod jobs;",
    );
    write(
        "http.rs",
        "use crate::sandbox::Service;\nfn h(st: S) { st.sandboxes.runtime().ping(); }\n",
    );
    write("jobs.rs", "");
    write(
        "sandbox.rs",
        "use crate::{config::X,\n    http::state::AppState};\n// crate::http in a comment is fine\nfn f() { app::model::Thing; crate::compose(); }\n",
    );
    write(
        "sandbox/inner.rs",
        "use crate::jobs::Jobs;\nuse axum::Router;\n",
    );
    write("config.rs", "use crate::sandbox::Limits;\n");
    let found = breaches(&src);
    let _ = std::fs::remove_dir_all(&dir);
    let expect = [
        "sandbox.rs:2: sandbox names Module(\"http\"), which is the edge",
        "sandbox.rs:4: sandbox names Crate(\"app\")",
        "sandbox.rs:4: sandbox names Module(\"compose\"), which is the wiring (crate root)",
        "inner.rs:1: sandbox names Module(\"jobs\"), which is the wiring",
        "inner.rs:2: sandbox names Crate(\"axum\")",
        "config.rs:1: config names Module(\"sandbox\"), which is a domain",
        "sandbox imports http, which imports it back",
        "sandbox imports config, which imports it back",
        "http.rs:2: the edge reaches into the sandbox runtime",
    ];
    for e in expect {
        assert!(
            found.iter().any(|f| f.contains(e)),
            "not found: {e}\nfound:\n{}",
            found.join("\n")
        );
    }
    assert_eq!(found.len(), expect.len() + 2, "{}", found.join("\n"));
}
