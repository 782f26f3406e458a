//! The text side: commands split into simple commands, the edit engine that rewrites a unit's
//! text, `RUN`/`eval` output and here-documents turned into `printf`.

use super::*;

/// A change to a unit's text: replace `start..end` with `text`.
#[derive(Debug, Clone)]
pub(super) struct Edit {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) text: String,
}

impl Edit {
    pub(super) fn new(start: usize, end: usize, text: impl Into<String>) -> Self {
        Edit {
            start,
            end,
            text: text.into(),
        }
    }
}

/// A copied prompt (`$ npm install`) is not part of the command.
pub(super) fn strip_prompt(line: &str) -> &str {
    line.trim_start().strip_prefix("$ ").unwrap_or(line)
}

pub(super) fn reserved(lexer: &Lexer, cmd: &Cmd) -> bool {
    cmd.words
        .first()
        .is_some_and(|&t| shell::is_reserved(word(lexer, t)))
}

pub(super) fn word_is(lexer: &Lexer, cmd: &Cmd, name: &str) -> bool {
    cmd.name
        .and_then(|k| cmd.words.get(k))
        .is_some_and(|&t| word(lexer, t) == name)
}

pub(super) fn args<'a>(lexer: &'a Lexer, cmd: &Cmd) -> Vec<&'a str> {
    match cmd.name {
        Some(k) => cmd.words[k + 1..].iter().map(|&t| word(lexer, t)).collect(),
        None => Vec::new(),
    }
}

/// Splits the tokens into simple commands.
pub(super) fn split_commands(lexer: &Lexer) -> Vec<Cmd> {
    let mut out = Vec::new();
    let mut current: Option<Cmd> = None;
    let mut sep = None;
    let mut target = false;
    let new = |i: usize, sep: Option<Op>| Cmd {
        first: i,
        last: i,
        sep,
        words: Vec::new(),
        redirects: false,
        heredoc: None,
        name: None,
        sudo: false,
    };
    for (i, tok) in lexer.toks.iter().enumerate() {
        match tok {
            Tok::Op { op, .. } if op.separates() => {
                out.extend(current.take());
                sep = Some(*op);
                target = false;
            }
            Tok::Op { op, .. } => {
                let cmd = current.get_or_insert_with(|| new(i, sep.take()));
                cmd.last = i;
                if *op == Op::Redirect {
                    cmd.redirects = true;
                    target = true;
                } else {
                    cmd.heredoc = Some(i);
                }
            }
            Tok::Word { cmd: starts, .. } => {
                if *starts {
                    out.extend(current.take());
                }
                let cmd = current.get_or_insert_with(|| new(i, sep.take()));
                cmd.last = i;
                if target {
                    target = false;
                } else {
                    cmd.words.push(i);
                }
            }
        }
    }
    out.extend(current);
    out
}

/// Whether code goes on after the here-document's body (`cat <<EOF > f &&` … `EOF` `next`).
pub(super) fn code_after_body(lexer: &Lexer, doc: &shell::HereDoc) -> bool {
    doc.body_start
        .is_none_or(|body| lexer.toks.iter().any(|t| t.start() > body))
}

/// Whether `printf … | command` means the same as the here-document: its command is not fed
/// by a pipe, no code follows the body, and an unquoted body has no command substitution or
/// backslash-newline (which double quotes would treat differently).
pub(super) fn printf_can_replace(lexer: &Lexer, cmds: &[Cmd], doc: &shell::HereDoc) -> bool {
    let fed_by_pipe = cmds
        .iter()
        .find(|c| c.heredoc == Some(doc.tok))
        .is_none_or(|c| c.sep == Some(Op::Pipe));
    let plain_body = doc.quoted
        || doc.body.iter().all(|&(start, end)| {
            let line = &lexer.text[start..end];
            !line.contains('`') && !line.replace("$((", "").contains("$(") && !line.ends_with('\\')
        });
    !fed_by_pipe && plain_body && !code_after_body(lexer, doc)
}

/// Why a unit is kept as written and run with `eval`, for the note.
pub(super) fn eval_reason(lexer: &Lexer, flowing: bool) -> &'static str {
    let heredocs = &lexer.heredocs;
    if heredocs.len() > 1 {
        "it has several here-documents"
    } else if !heredocs.is_empty()
        && (!flowing || heredocs.iter().any(|d| code_after_body(lexer, d)))
    {
        "its here-document is part of a longer command"
    } else if !heredocs.is_empty() {
        "its here-document runs commands ($( ) or backquotes) or follows a |"
    } else if lexer.multiline_quote {
        "a quoted string spans several lines"
    } else {
        "it is a block (if, for, while, case, { }) spanning several lines"
    }
}

/// The here-document's command becomes `printf '%s\n' 'line' … | command` (or `> file` for a
/// plain `cat > file`), which `/bin/sh` runs from a single Dockerfile instruction.
pub(super) fn heredoc_edit(lexer: &Lexer, cmd: &Cmd, doc: &shell::HereDoc, edits: &mut Vec<Edit>) {
    let start = lexer.toks[cmd.first].start();
    let end = lexer.toks[cmd.last].end();
    let op = &lexer.toks[doc.tok];
    let op_start = if doc.tok > cmd.first {
        lexer.toks[doc.tok - 1].end()
    } else {
        op.start()
    };
    let mut inner: Vec<Edit> = edits
        .iter()
        .filter(|e| e.start >= start && e.end <= end)
        .cloned()
        .collect();
    inner.push(Edit::new(op_start, op.end(), ""));
    let pure_cat = cmd
        .name
        .is_some_and(|k| word(lexer, cmd.words[k]) == "cat" && cmd.words.len() == k + 1);
    if let Some(k) = cmd.name.filter(|_| pure_cat) {
        let cat = cmd.words[k];
        let next = lexer.toks.get(cat + 1).map_or(end, Tok::start);
        inner.push(Edit::new(lexer.toks[cat].start(), next, ""));
    }
    let rest = apply(&lexer.text, start, end, &inner);
    let rest = rest.trim();
    let body: Vec<String> = doc
        .body
        .iter()
        .map(|&(s, e)| {
            let line = &lexer.text[s..e];
            let line = if doc.strip_tabs {
                line.trim_start_matches('\t')
            } else {
                line
            };
            if doc.quoted {
                shell::single_quote(line)
            } else {
                double_quote_heredoc(line)
            }
        })
        .collect();
    let mut text = if body.is_empty() {
        "printf ''".to_string()
    } else {
        let mut text = "printf '%s\\n' \\\n".to_string();
        for arg in body {
            text.push_str(&format!("      {arg} \\\n"));
        }
        text.push_str("   ");
        text
    };
    if !pure_cat {
        text.push_str(" |");
    }
    if !rest.is_empty() {
        text.push(' ');
        text.push_str(rest);
    }
    edits.retain(|e| !(e.start >= start && e.end <= end));
    edits.push(Edit::new(start, end, text));
}

/// A line of an unquoted here-document as a double-quoted word with the same expansion:
/// `$VAR` and `$((…))` expand, `\$`, `\\` and `` \` `` stay escapes, quotes are literal.
pub(super) fn double_quote_heredoc(line: &str) -> String {
    let mut out = String::from("\"");
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek() {
                Some(&n @ ('$' | '`' | '\\')) => {
                    out.push('\\');
                    out.push(n);
                    chars.next();
                }
                _ => out.push_str("\\\\"),
            },
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Applies the edits that fall inside `start..end` to that part of `text`.
pub(super) fn apply(text: &str, start: usize, end: usize, edits: &[Edit]) -> String {
    let mut inside: Vec<&Edit> = edits
        .iter()
        .filter(|e| e.start >= start && e.end <= end)
        .collect();
    inside.sort_by_key(|e| (e.start, e.end));
    let mut out = String::new();
    let mut cursor = start;
    for edit in inside {
        if edit.start >= cursor {
            out.push_str(&text[cursor..edit.start]);
        }
        out.push_str(&edit.text);
        cursor = cursor.max(edit.end);
    }
    out.push_str(&text[cursor..end]);
    out
}

/// A `RUN` step from tokens `first..=last`, with every line break turned into a Dockerfile
/// line continuation.
pub(super) fn run(lexer: &Lexer, first: usize, last: usize, edits: &[Edit]) -> String {
    let start = lexer.toks[first].start();
    let end = lexer.toks[last].end();
    let text = apply(&lexer.text, start, end, edits);
    let raw: Vec<&str> = text.split('\n').collect();
    let mut lines: Vec<String> = Vec::new();
    for (i, raw_line) in raw.iter().enumerate() {
        let last_line = i + 1 == raw.len();
        let line = raw_line.trim_end();
        // Blank lines, and lines that only continue the previous one (`\`), carry nothing.
        if line.trim().is_empty() || (!last_line && line.trim() == "\\") {
            continue;
        }
        // On the last line a backslash before trailing blanks escapes them (`echo a\ `).
        let line = if last_line && line.ends_with('\\') {
            raw_line
        } else {
            line
        };
        // Docker drops continuation lines starting with `#` as comments; for the shell such a
        // line only continues a word (`a\` + `#b`), so it is joined back onto its word.
        match lines.last_mut() {
            Some(previous) if line.trim_start().starts_with('#') && previous.ends_with('\\') => {
                previous.pop();
                previous.push_str(line);
            }
            _ => lines.push(line.to_string()),
        }
    }
    if lines.is_empty() {
        lines.push(":".into());
    }
    let mut out = String::from("RUN ");
    let joined = lines.join("\n");
    if crate::dockerfile::json_like(&joined)
        || crate::dockerfile::array_prefix(&joined)
        || joined.starts_with("--")
    {
        // Docker would take `["a", "b"] …` for the JSON form and `--x …` for flags;
        // `: &&` keeps it a plain shell command.
        out.push_str(": && ");
    }
    for (i, line) in lines.iter().enumerate() {
        out.push_str(line);
        if i + 1 < lines.len() {
            if !line.ends_with('\\') {
                out.push_str(" \\");
            }
            out.push('\n');
        } else if line.trim_end().ends_with('\\') {
            // Docker would read a final backslash (`echo a\\`, `echo a\ `) as a continuation
            // into the next instruction; a `;` ends the command without changing it.
            out.push(';');
        }
    }
    out
}

/// A unit kept as written: `RUN eval "$(printf '%s\n' 'line' …)"`.
pub(super) fn eval(lexer: &Lexer, edits: &[Edit]) -> String {
    let text = apply(&lexer.text, 0, lexer.text.len(), edits);
    let mut out = String::from("RUN eval \"$(printf '%s\\n' \\\n");
    for line in text.trim_end_matches('\n').split('\n') {
        out.push_str(&format!("      {} \\\n", shell::single_quote(line)));
    }
    out.push_str("    )\"");
    out
}

/// `/a/./b/../c` → `/a/c`.
pub(super) fn normalize_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    format!("/{}", parts.join("/"))
}
