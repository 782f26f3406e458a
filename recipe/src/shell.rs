//! A small POSIX-shell lexer: just enough structure to convert install scripts.
//!
//! Why not a full shell parser: the converter only needs to know where words, operators,
//! comments and here-documents are, which words start a command, and whether a command is
//! finished at the end of a line. Everything else is passed to `/bin/sh` untouched, so the
//! shell itself stays the judge of what the script means.

/// Shell operators the converter cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// `&&`
    AndIf,
    /// `||`
    OrIf,
    /// `|` (and bash's `|&`)
    Pipe,
    /// `;`
    Semi,
    /// `&`
    Amp,
    /// `;;`
    DSemi,
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// A newline that ends a command.
    Newline,
    /// `<`, `>`, `>>`, `2>&1`'s `>&`, `<<<` …: not a command boundary.
    Redirect,
    /// `<<WORD` / `<<-WORD`, delimiter included: the body is in [`HereDoc`].
    HereDoc,
}

impl Op {
    /// Operators that end a simple command.
    pub(crate) fn separates(self) -> bool {
        !matches!(self, Op::Redirect | Op::HereDoc)
    }
}

/// A token with its byte range in the unit's text and its 1-based script line.
#[derive(Debug, Clone)]
pub(crate) enum Tok {
    Word {
        start: usize,
        end: usize,
        line: usize,
        /// The word sits where a command name goes.
        cmd: bool,
    },
    Op {
        op: Op,
        start: usize,
        end: usize,
        line: usize,
    },
}

impl Tok {
    pub(crate) fn start(&self) -> usize {
        match self {
            Tok::Word { start, .. } | Tok::Op { start, .. } => *start,
        }
    }

    pub(crate) fn end(&self) -> usize {
        match self {
            Tok::Word { end, .. } | Tok::Op { end, .. } => *end,
        }
    }

    pub(crate) fn line(&self) -> usize {
        match self {
            Tok::Word { line, .. } | Tok::Op { line, .. } => *line,
        }
    }

    pub(crate) fn op(&self) -> Option<Op> {
        match self {
            Tok::Op { op, .. } => Some(*op),
            Tok::Word { .. } => None,
        }
    }
}

/// A here-document found in the code, with where its body lines are.
#[derive(Debug, Clone)]
pub(crate) struct HereDoc {
    /// Index of its [`Op::HereDoc`] token.
    pub tok: usize,
    pub line: usize,
    pub delim: String,
    /// `<<'EOF'`, `<<"EOF"`, `<<\EOF`: the body is taken literally.
    pub quoted: bool,
    /// `<<-EOF`: leading tabs are removed from body lines.
    pub strip_tabs: bool,
    /// Byte ranges of the body lines (without their newline).
    pub body: Vec<(usize, usize)>,
    /// Where the body (or the delimiter line, for an empty body) starts in the text.
    pub body_start: Option<usize>,
    pub closed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Single,
    Double,
    Backtick,
    /// `$( … )` with its count of inner open parentheses.
    Subst(u32),
    /// `$(( … ))` with its count of inner open parentheses.
    Arith(u32),
    /// `${ … }`
    Brace,
}

impl Ctx {
    fn opener(self) -> &'static str {
        match self {
            Ctx::Single => "'",
            Ctx::Double => "\"",
            Ctx::Backtick => "`",
            Ctx::Subst(_) => "$(",
            Ctx::Arith(_) => "$((",
            Ctx::Brace => "${",
        }
    }
}

/// Why a unit of lines cannot be finished (reported when the script ends first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Open {
    HereDoc { line: usize, delim: String },
    Quote { line: usize, opener: &'static str },
    Continuation,
    Operator(&'static str),
    Block { line: usize, keyword: String },
}

/// Incremental lexer over the physical lines of one logical unit of a script.
///
/// Lines are fed one by one; after each line [`Lexer::open`] says whether the unit needs more
/// lines (an open quote, a `\` continuation, a trailing `&&`, an unfinished here-document or
/// `if … fi` block).
#[derive(Debug, Default)]
pub(crate) struct Lexer {
    /// The unit's text: the fed lines, each followed by `\n`.
    pub text: String,
    pub toks: Vec<Tok>,
    pub heredocs: Vec<HereDoc>,
    /// Comments in code (not in here-document bodies): byte range and line.
    pub comments: Vec<(usize, usize, usize)>,
    /// A newline occurred inside quotes (the unit cannot be written as one Dockerfile line).
    pub multiline_quote: bool,
    /// `<<` with no delimiter word before the end of the line.
    pub missing_delim: Option<usize>,
    ctx: Vec<(Ctx, usize)>,
    word: Option<(usize, bool, usize)>,
    next_cmd: bool,
    want_delim: Option<(usize, bool, usize)>,
    pending: Vec<usize>,
    active: Vec<usize>,
    blocks: Vec<(String, usize)>,
    continued: bool,
}

const OPERATORS: [(&str, Op); 19] = [
    ("<<<", Op::Redirect),
    ("&>>", Op::Redirect),
    ("&&", Op::AndIf),
    ("||", Op::OrIf),
    (";;", Op::DSemi),
    ("|&", Op::Pipe),
    ("&>", Op::Redirect),
    (">>", Op::Redirect),
    (">&", Op::Redirect),
    ("<&", Op::Redirect),
    (">|", Op::Redirect),
    ("<>", Op::Redirect),
    ("|", Op::Pipe),
    ("&", Op::Amp),
    (";", Op::Semi),
    ("(", Op::LParen),
    (")", Op::RParen),
    ("<", Op::Redirect),
    (">", Op::Redirect),
];

impl Lexer {
    pub(crate) fn new() -> Self {
        Lexer {
            next_cmd: true,
            ..Lexer::default()
        }
    }

    /// Lexes one line that is known to be complete on its own (a Dockerfile RUN's text).
    pub(crate) fn lex_line(line: &str) -> Lexer {
        let mut lexer = Lexer::new();
        lexer.feed(line, 1);
        lexer
    }

    /// Why the unit is not finished, or `None` when it is.
    pub(crate) fn open(&self) -> Option<Open> {
        if let Some(h) = self.active.first().and_then(|&i| self.heredocs.get(i)) {
            return Some(Open::HereDoc {
                line: h.line,
                delim: h.delim.clone(),
            });
        }
        if let Some(&(ctx, line)) = self.ctx.first() {
            return Some(Open::Quote {
                line,
                opener: ctx.opener(),
            });
        }
        if self.continued {
            return Some(Open::Continuation);
        }
        match self.toks.last().and_then(Tok::op) {
            Some(Op::AndIf) => return Some(Open::Operator("&&")),
            Some(Op::OrIf) => return Some(Open::Operator("||")),
            Some(Op::Pipe) => return Some(Open::Operator("|")),
            _ => {}
        }
        self.blocks.first().map(|(keyword, line)| Open::Block {
            line: *line,
            keyword: keyword.clone(),
        })
    }

    /// Feeds one physical line (without its newline).
    pub(crate) fn feed(&mut self, line: &str, line_no: usize) {
        let base = self.text.len();
        self.text.push_str(line);
        self.text.push('\n');
        if let Some(&index) = self.active.first() {
            if let Some(doc) = self.heredocs.get_mut(index) {
                doc.body_start.get_or_insert(base);
                let compared = if doc.strip_tabs {
                    line.trim_start_matches('\t')
                } else {
                    line
                };
                if compared == doc.delim {
                    doc.closed = true;
                    self.active.remove(0);
                } else {
                    doc.body.push((base, base + line.len()));
                }
            }
            return;
        }
        self.continued = false;
        let chars: Vec<(usize, char)> = line.char_indices().collect();
        let mut i = 0;
        while i < chars.len() {
            let (offset, c) = chars[i];
            let pos = base + offset;
            let next = chars.get(i + 1).map(|&(_, c)| c);
            let after = chars.get(i + 2).map(|&(_, c)| c);
            let last = i + 1 == chars.len();
            match self.ctx.last().map(|&(ctx, _)| ctx) {
                Some(Ctx::Single) => {
                    if c == '\'' {
                        self.ctx.pop();
                    }
                }
                Some(Ctx::Double) => match c {
                    '"' => {
                        self.ctx.pop();
                    }
                    '\\' => i += self.escape(last),
                    '`' => self.ctx.push((Ctx::Backtick, line_no)),
                    '$' => i += self.dollar(next, after, line_no),
                    _ => {}
                },
                Some(Ctx::Backtick) => match c {
                    '`' => {
                        self.ctx.pop();
                    }
                    '\\' => i += self.escape(last),
                    _ => {}
                },
                Some(Ctx::Brace) => match c {
                    '}' => {
                        self.ctx.pop();
                    }
                    '\'' => self.ctx.push((Ctx::Single, line_no)),
                    '"' => self.ctx.push((Ctx::Double, line_no)),
                    '\\' => i += self.escape(last),
                    '$' => i += self.dollar(next, after, line_no),
                    _ => {}
                },
                Some(Ctx::Subst(depth)) => match c {
                    '\'' => self.ctx.push((Ctx::Single, line_no)),
                    '"' => self.ctx.push((Ctx::Double, line_no)),
                    '`' => self.ctx.push((Ctx::Backtick, line_no)),
                    '\\' => i += self.escape(last),
                    '$' => i += self.dollar(next, after, line_no),
                    '(' => self.set_top(Ctx::Subst(depth + 1)),
                    ')' if depth == 0 => {
                        self.ctx.pop();
                    }
                    ')' => self.set_top(Ctx::Subst(depth - 1)),
                    _ => {}
                },
                Some(Ctx::Arith(depth)) => match c {
                    '$' => i += self.dollar(next, after, line_no),
                    '(' => self.set_top(Ctx::Arith(depth + 1)),
                    ')' if depth == 0 && next == Some(')') => {
                        self.ctx.pop();
                        i += 1;
                    }
                    ')' => self.set_top(Ctx::Arith(depth.saturating_sub(1))),
                    _ => {}
                },
                None => match c {
                    ' ' | '\t' => self.end_word(pos),
                    '\\' => {
                        if last {
                            self.continued = true;
                        } else {
                            self.start_word(pos, line_no);
                            i += 1;
                        }
                    }
                    '\'' => {
                        self.start_word(pos, line_no);
                        self.ctx.push((Ctx::Single, line_no));
                    }
                    '"' => {
                        self.start_word(pos, line_no);
                        self.ctx.push((Ctx::Double, line_no));
                    }
                    '`' => {
                        self.start_word(pos, line_no);
                        self.ctx.push((Ctx::Backtick, line_no));
                    }
                    '$' => {
                        self.start_word(pos, line_no);
                        i += self.dollar(next, after, line_no);
                    }
                    '#' if self.word.is_none() => {
                        self.comments.push((pos, base + line.len(), line_no));
                        break;
                    }
                    '&' | '|' | ';' | '(' | ')' | '<' | '>' => {
                        self.end_word(pos);
                        let rest = &line[offset..];
                        let (text, op) = OPERATORS
                            .iter()
                            .find(|(text, _)| rest.starts_with(text))
                            .copied()
                            .unwrap_or(("", Op::Redirect));
                        if rest.starts_with("<<") && !rest.starts_with("<<<") {
                            let strip_tabs = rest.starts_with("<<-");
                            let len = if strip_tabs { 3 } else { 2 };
                            self.want_delim = Some((pos, strip_tabs, line_no));
                            i += len;
                            continue;
                        }
                        self.push_op(op, pos, pos + text.len(), line_no);
                        i += text.chars().count().max(1);
                        continue;
                    }
                    _ => self.start_word(pos, line_no),
                },
            }
            i += 1;
        }
        if self.continued {
            return;
        }
        if !self.ctx.is_empty() {
            self.multiline_quote = true;
            return;
        }
        self.end_word(base + line.len());
        if self.want_delim.take().is_some() {
            self.missing_delim.get_or_insert(line_no);
        }
        let joins = match self.toks.last() {
            None => true,
            Some(tok) => matches!(
                tok.op(),
                Some(
                    Op::AndIf
                        | Op::OrIf
                        | Op::Pipe
                        | Op::Newline
                        | Op::Semi
                        | Op::DSemi
                        | Op::LParen
                )
            ),
        };
        if !joins {
            self.push_op(
                Op::Newline,
                base + line.len(),
                base + line.len() + 1,
                line_no,
            );
        }
        self.next_cmd = true;
        self.active.append(&mut self.pending);
    }

    fn set_top(&mut self, ctx: Ctx) {
        if let Some(top) = self.ctx.last_mut() {
            top.0 = ctx;
        }
    }

    /// A backslash inside quotes: skips the escaped character, or continues the line.
    fn escape(&mut self, last: bool) -> usize {
        if last {
            self.continued = true;
            0
        } else {
            1
        }
    }

    /// `$(`, `$((` or `${`: enters the context, returns how many extra characters were used.
    fn dollar(&mut self, next: Option<char>, after: Option<char>, line: usize) -> usize {
        match (next, after) {
            (Some('('), Some('(')) => {
                self.ctx.push((Ctx::Arith(0), line));
                2
            }
            (Some('('), _) => {
                self.ctx.push((Ctx::Subst(0), line));
                1
            }
            (Some('{'), _) => {
                self.ctx.push((Ctx::Brace, line));
                1
            }
            _ => 0,
        }
    }

    fn start_word(&mut self, pos: usize, line: usize) {
        if self.word.is_none() {
            self.word = Some((pos, self.next_cmd, line));
            self.next_cmd = false;
        }
    }

    fn push_op(&mut self, op: Op, start: usize, end: usize, line: usize) {
        match op {
            Op::LParen => self.blocks.push(("(".into(), line)),
            Op::RParen if self.blocks.last().is_some_and(|(k, _)| k == "(") => {
                self.blocks.pop();
            }
            _ => {}
        }
        if op.separates() {
            self.next_cmd = true;
        }
        self.toks.push(Tok::Op {
            op,
            start,
            end,
            line,
        });
    }

    fn end_word(&mut self, end: usize) {
        let Some((start, cmd, line)) = self.word.take() else {
            return;
        };
        let raw = self.text.get(start..end).unwrap_or_default().to_string();
        if let Some((op_start, strip_tabs, op_line)) = self.want_delim.take() {
            let quoted = raw.contains(['\'', '"', '\\']);
            let delim: String = raw
                .chars()
                .filter(|c| !matches!(c, '\'' | '"' | '\\'))
                .collect();
            self.toks.push(Tok::Op {
                op: Op::HereDoc,
                start: op_start,
                end,
                line: op_line,
            });
            self.heredocs.push(HereDoc {
                tok: self.toks.len() - 1,
                line: op_line,
                delim,
                quoted,
                strip_tabs,
                body: Vec::new(),
                body_start: None,
                closed: false,
            });
            self.pending.push(self.heredocs.len() - 1);
            self.next_cmd = cmd;
            return;
        }
        self.toks.push(Tok::Word {
            start,
            end,
            line,
            cmd,
        });
        if !cmd {
            return;
        }
        match raw.as_str() {
            "if" | "while" | "until" | "{" => {
                self.blocks.push((raw, line));
                self.next_cmd = true;
            }
            "for" | "case" | "select" => self.blocks.push((raw, line)),
            "then" | "do" | "else" | "elif" | "!" | "time" => self.next_cmd = true,
            "fi" | "done" | "esac" | "}" => {
                self.blocks.pop();
            }
            _ => {}
        }
    }
}

/// Words that are shell syntax rather than commands.
pub(crate) fn is_reserved(word: &str) -> bool {
    matches!(
        word,
        "if" | "then"
            | "else"
            | "elif"
            | "fi"
            | "do"
            | "done"
            | "case"
            | "esac"
            | "while"
            | "until"
            | "for"
            | "select"
            | "in"
            | "{"
            | "}"
            | "!"
            | "time"
    )
}

/// `NAME=value` (a shell variable assignment word).
pub(crate) fn assignment(word: &str) -> Option<(&str, &str)> {
    let (name, value) = word.split_once('=')?;
    valid_name(name).then_some((name, value))
}

/// A shell/Docker variable name.
pub(crate) fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Quotes `text` for `/bin/sh` as one literal word.
pub(crate) fn single_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// One piece of a shell word after quote removal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    Lit(String),
    /// `$NAME`, `${NAME}` or `${NAME:-word}`/`${NAME:+word}` (Docker understands these).
    Var {
        name: String,
        raw: String,
    },
    /// `~` or `$HOME`.
    Home,
    /// `$PWD`
    Pwd,
}

/// A shell word taken apart, when it is plain enough to be evaluated without a shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Parsed {
    pub pieces: Vec<Piece>,
    /// Unquoted `*`, `?` or `[`.
    pub glob: bool,
}

/// Splits a word into literal text and variable references. `None` when evaluating it needs a
/// shell (command substitution, arithmetic, positional parameters, `~user`).
/// `assignment` enables tilde expansion after `:` (as in `PATH=~/bin:~/.local/bin`).
pub(crate) fn parse_word(raw: &str, assignment: bool) -> Option<Parsed> {
    let chars: Vec<char> = raw.chars().collect();
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut glob = false;
    let mut i = 0;
    let mut dq = false;
    while i < chars.len() {
        let c = chars[i];
        let at_tilde_spot = !dq && (i == 0 || (assignment && chars[i - 1] == ':'));
        match c {
            '~' if at_tilde_spot && matches!(chars.get(i + 1), None | Some('/') | Some(':')) => {
                flush(&mut lit, &mut pieces);
                pieces.push(Piece::Home);
            }
            '~' if at_tilde_spot => return None,
            '\\' if chars.get(i + 1) == Some(&'\n') => i += 1,
            '\\' if dq => match chars.get(i + 1) {
                Some(&n @ ('$' | '`' | '"' | '\\')) => {
                    lit.push(n);
                    i += 1;
                }
                _ => lit.push('\\'),
            },
            '\\' => {
                lit.push(*chars.get(i + 1)?);
                i += 1;
            }
            c if c.is_control() && c != '\t' => return None,
            '"' => dq = !dq,
            '\'' if !dq => {
                let close = chars[i + 1..].iter().position(|&c| c == '\'')?;
                let quoted = &chars[i + 1..i + 1 + close];
                if quoted.iter().any(|c| c.is_control() && *c != '\t') {
                    return None;
                }
                lit.extend(quoted);
                i += close + 1;
            }
            '`' => return None,
            '$' => {
                let (piece, used) = parse_dollar(&chars[i + 1..])?;
                match piece {
                    Some(piece) => {
                        flush(&mut lit, &mut pieces);
                        pieces.push(piece);
                    }
                    None => lit.push('$'),
                }
                i += used;
            }
            '*' | '?' | '[' if !dq => {
                glob = true;
                lit.push(c);
            }
            _ => lit.push(c),
        }
        i += 1;
    }
    if dq {
        return None;
    }
    flush(&mut lit, &mut pieces);
    Some(Parsed { pieces, glob })
}

fn flush(lit: &mut String, pieces: &mut Vec<Piece>) {
    if !lit.is_empty() {
        pieces.push(Piece::Lit(std::mem::take(lit)));
    }
}

/// Parses what follows a `$`; returns the piece (None: a literal `$`) and the characters used.
fn parse_dollar(rest: &[char]) -> Option<(Option<Piece>, usize)> {
    let name_len = |s: &[char]| {
        if s.first()
            .is_some_and(|c| c.is_ascii_alphabetic() || *c == '_')
        {
            s.iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
                .count()
        } else {
            0
        }
    };
    let var = |name: String, raw: String| match name.as_str() {
        "HOME" if !raw.contains(':') => Piece::Home,
        "PWD" if !raw.contains(':') => Piece::Pwd,
        _ => Piece::Var { name, raw },
    };
    match rest.first() {
        Some('{') => {
            let close = rest.iter().position(|&c| c == '}')?;
            let inner: String = rest[1..close].iter().collect();
            let inner_chars: Vec<char> = inner.chars().collect();
            let n = name_len(&inner_chars);
            if n == 0 {
                return None;
            }
            let name: String = inner_chars[..n].iter().collect();
            let modifier: String = inner_chars[n..].iter().collect();
            let plain_word = |w: &str| !w.contains(['$', '`', '\'', '"', '\\', '{', '}']);
            let ok = modifier.is_empty()
                || ((modifier.starts_with(":-") || modifier.starts_with(":+"))
                    && plain_word(&modifier[2..]));
            if !ok {
                return None;
            }
            Some((Some(var(name, format!("${{{inner}}}"))), close + 1))
        }
        Some(c) if c.is_ascii_alphabetic() || *c == '_' => {
            let n = name_len(rest);
            let name: String = rest[..n].iter().collect();
            Some((Some(var(name.clone(), format!("${name}"))), n))
        }
        Some(c) if c.is_ascii_digit() || "@*#?$!-(".contains(*c) => None,
        _ => Some((None, 0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(lexer: &Lexer) -> Vec<(String, bool)> {
        lexer
            .toks
            .iter()
            .filter_map(|t| match t {
                Tok::Word {
                    start, end, cmd, ..
                } => Some((lexer.text[*start..*end].to_string(), *cmd)),
                Tok::Op { .. } => None,
            })
            .collect()
    }

    #[test]
    fn command_positions_follow_operators_and_keywords() {
        let lexer = Lexer::lex_line("sudo a && b | c; if d; then e; fi");
        let cmds: Vec<String> = words(&lexer)
            .into_iter()
            .filter(|(_, cmd)| *cmd)
            .map(|(w, _)| w)
            .collect();
        assert_eq!(cmds, ["sudo", "b", "c", "if", "d", "then", "e", "fi"]);
        assert_eq!(lexer.open(), None);
    }

    #[test]
    fn quotes_and_substitutions_keep_words_together() {
        let lexer = Lexer::lex_line(r#"echo "a b $(printf 'x)' "y") c" 'd e'\ f # note"#);
        let w: Vec<String> = words(&lexer).into_iter().map(|(w, _)| w).collect();
        assert_eq!(w, ["echo", r#""a b $(printf 'x)' "y") c""#, r"'d e'\ f"]);
        assert_eq!(lexer.comments.len(), 1);
    }

    #[test]
    fn heredoc_bodies_are_collected() {
        let mut lexer = Lexer::new();
        lexer.feed("cat <<-'EOF' > f", 1);
        assert!(matches!(lexer.open(), Some(Open::HereDoc { line: 1, .. })));
        lexer.feed("\tx $y", 2);
        lexer.feed("\tEOF", 3);
        assert_eq!(lexer.open(), None);
        let doc = &lexer.heredocs[0];
        assert!(doc.quoted && doc.strip_tabs && doc.closed);
        assert_eq!(doc.delim, "EOF");
        assert_eq!(doc.body.len(), 1);
    }

    #[test]
    fn unfinished_units_say_why() {
        assert_eq!(
            Lexer::lex_line("echo 'x").open(),
            Some(Open::Quote {
                line: 1,
                opener: "'"
            })
        );
        assert_eq!(Lexer::lex_line("make \\").open(), Some(Open::Continuation));
        assert_eq!(
            Lexer::lex_line("make &&").open(),
            Some(Open::Operator("&&"))
        );
        assert_eq!(
            Lexer::lex_line("for x in a b; do").open(),
            Some(Open::Block {
                line: 1,
                keyword: "for".into()
            })
        );
        assert_eq!(Lexer::lex_line("echo $((1 << 2))").heredocs.len(), 0);
        assert_eq!(Lexer::lex_line("cat <<< hi").heredocs.len(), 0);
    }

    #[test]
    fn words_are_evaluated_without_a_shell_when_plain() {
        let parsed = parse_word(r#""$HOME/.cargo/bin:$PATH""#, true).expect("plain");
        assert_eq!(
            parsed.pieces,
            [
                Piece::Home,
                Piece::Lit("/.cargo/bin:".into()),
                Piece::Var {
                    name: "PATH".into(),
                    raw: "$PATH".into()
                }
            ]
        );
        assert_eq!(
            parse_word("~/a:~/b", true).expect("plain").pieces,
            [
                Piece::Home,
                Piece::Lit("/a:".into()),
                Piece::Home,
                Piece::Lit("/b".into())
            ]
        );
        assert!(parse_word("$(pwd)/bin", true).is_none());
        assert!(parse_word("`pwd`", true).is_none());
        assert!(parse_word("$1", true).is_none());
        assert!(parse_word("foo-*", false).expect("plain").glob);
        assert_eq!(
            parse_word("a\\\nb", false).expect("plain").pieces,
            [Piece::Lit("ab".into())]
        );
        assert!(parse_word("'a\nb'", false).is_none());
        assert_eq!(
            parse_word(r"'it'\''s' a\ b", false).expect("plain").pieces,
            [Piece::Lit("it's a b".into())]
        );
    }

    #[test]
    fn single_quote_escapes_quotes() {
        assert_eq!(single_quote("it's"), r"'it'\''s'");
    }
}
