//! A build's log as the engine prints it: the stored tail (`LogBuffer`), lines made readable
//! (terminal control removed), and the engine's `Step n/m` lines counted (`Progress`).

/// Most of a build log kept (the tail; the head of a long apt log says little).
const MAX_LOG_BYTES: usize = 512 * 1024;

#[derive(Default)]
pub(super) struct LogBuffer {
    text: String,
    truncated: bool,
    /// Lines pushed so far: whether the log changed since it was last written out.
    lines: u64,
}

impl LogBuffer {
    pub(super) fn lines(&self) -> u64 {
        self.lines
    }

    pub(super) fn push(&mut self, line: &str) {
        self.lines += 1;
        self.text.push_str(line);
        self.text.push('\n');
        if self.text.len() > MAX_LOG_BYTES {
            let cut = self.text.len() - MAX_LOG_BYTES * 3 / 4;
            let cut = self.text[cut..].find('\n').map_or(cut, |i| cut + i + 1);
            self.text.drain(..cut);
            self.truncated = true;
        }
    }

    pub(super) fn stored(&self) -> String {
        if self.truncated {
            format!("[… earlier output truncated …]\n{}", self.text)
        } else {
            self.text.clone()
        }
    }
}

/// `Step 3/7 : RUN …` → (3, 7).
pub fn parse_step(line: &str) -> Option<(i32, i32)> {
    let rest = line.strip_prefix("Step ")?;
    let (frac, _) = rest.split_once(' ')?;
    let (n, m) = frac.split_once('/')?;
    Some((n.parse().ok()?, m.parse().ok()?))
}

/// A build log line as a person reads it: terminal escape sequences (cursor moves, screen
/// clears, window titles, hyperlinks, colours) and other control characters are removed, and a
/// line redrawn with carriage returns (a progress bar) keeps only its last drawing.
pub fn readable(line: &str) -> String {
    let line = line
        .rsplit('\r')
        .find(|part| !part.trim().is_empty())
        .unwrap_or("");
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                // CSI: parameters, then one final byte in @..~.
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                // OSC (titles, hyperlinks), DCS, APC, PM, SOS: until BEL or ESC \.
                Some(']' | 'P' | '_' | '^' | 'X') => {
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' || (c == '\u{1b}' && chars.next_if_eq(&'\\').is_some()) {
                            break;
                        }
                    }
                }
                // A two-byte sequence (ESC c resets the terminal, ESC 7 saves the cursor, …).
                _ => {}
            },
            '\u{9b}' => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.trim_end().to_string()
}

/// The step counter of a running build, as the engine reports it.
#[derive(Default)]
pub(super) struct Progress {
    pub(super) last: Option<(i32, i32)>,
    written: Option<std::time::Instant>,
    /// The last accepted step is not in the database yet.
    pub(super) unwritten: bool,
}

impl Progress {
    /// Only the step after the last one, of the same total (the first: step 1).
    pub(super) fn accepts(&mut self, (step, steps): (i32, i32)) -> bool {
        let next = match self.last {
            None => step == 1 && steps >= 1,
            Some((last, total)) => step == last + 1 && steps == total,
        };
        if next {
            self.last = Some((step, steps));
        }
        next
    }

    /// Whether a database write is due (at most one a second); if not, the step waits for
    /// `take_unwritten`.
    pub(super) fn due(&mut self) -> bool {
        let now = std::time::Instant::now();
        let due = self
            .written
            .is_none_or(|t| now.duration_since(t) >= std::time::Duration::from_secs(1));
        if due {
            self.written = Some(now);
        }
        self.unwritten = !due;
        due
    }

    /// How long until an unwritten step may be written.
    pub(super) fn flush_in(&self) -> std::time::Duration {
        self.written.map_or(std::time::Duration::ZERO, |t| {
            (t + std::time::Duration::from_secs(1))
                .saturating_duration_since(std::time::Instant::now())
        })
    }

    /// The step to write now, if one waits.
    pub(super) fn take_unwritten(&mut self) -> Option<(i32, i32)> {
        if !std::mem::take(&mut self.unwritten) {
            return None;
        }
        self.written = Some(std::time::Instant::now());
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_lose_terminal_control() {
        assert_eq!(readable("\u{1b}[2J\u{1b}[Hcleared"), "cleared");
        assert_eq!(readable("\u{1b}]0;owned title\u{7}text"), "text");
        assert_eq!(
            readable("\u{1b}]8;;https://evil.example\u{1b}\\click\u{1b}]8;;\u{1b}\\"),
            "click"
        );
        assert_eq!(readable("\u{1b}[31mred\u{1b}[0m plain"), "red plain");
        assert_eq!(readable("10%\r50%\r100%"), "100%");
        assert_eq!(readable("a\u{7}b\u{8}c\tend\u{1b}c"), "abc\tend");
        assert_eq!(readable("\u{9b}1;1Hx"), "x");
    }

    #[test]
    fn steps_are_parsed() {
        assert_eq!(parse_step("Step 3/7 : RUN apt-get update"), Some((3, 7)));
        assert_eq!(parse_step("Step 10/10 : WORKDIR /root"), Some((10, 10)));
        assert_eq!(parse_step(" ---> Running in abc"), None);
        assert_eq!(parse_step("Step x/7 : RUN"), None);
    }

    #[test]
    fn only_the_next_step_counts() {
        let mut p = Progress::default();
        assert!(!p.accepts((2, 5)), "the first step is 1");
        assert!(p.accepts((1, 5)));
        assert!(!p.accepts((1, 5)), "a repeat");
        assert!(!p.accepts((2, 9)), "another total");
        assert!(!p.accepts((4, 5)), "a jump");
        assert!(p.accepts((2, 5)));
        assert!(p.due());
        assert!(p.accepts((3, 5)));
        assert!(!p.due(), "one write a second");
        assert!(p.unwritten);
        assert!(p.flush_in() > std::time::Duration::ZERO);
        assert_eq!(
            p.take_unwritten(),
            Some((3, 5)),
            "written once the second is over"
        );
        assert_eq!(p.take_unwritten(), None);
    }

    #[test]
    fn log_keeps_the_tail() {
        let mut log = LogBuffer::default();
        for i in 0..100_000 {
            log.push(&format!("line {i}"));
        }
        assert!(log.text.len() <= MAX_LOG_BYTES);
        assert!(log.stored().starts_with("[… earlier output truncated …]\n"));
        assert!(log.stored().ends_with("line 99999\n"));
    }
}

/// The lines of `now` (a build's stored log) that follow `before` (the same log read earlier):
/// the stored log is a tail, so when its head was cut meanwhile, the lines after the last one
/// seen, or a note that some were skipped.
pub fn new_lines<'a>(before: &str, now: &'a str) -> (bool, Vec<&'a str>) {
    if let Some(rest) = now.strip_prefix(before) {
        return (false, rest.lines().collect());
    }
    let last = before.lines().last().unwrap_or_default();
    match now.rfind(&format!("\n{last}\n")) {
        Some(at) if !last.is_empty() => (false, now[at + last.len() + 2..].lines().collect()),
        _ => {
            let lines: Vec<&str> = now.lines().collect();
            let from = lines.len().saturating_sub(50);
            (true, lines[from..].to_vec())
        }
    }
}

#[cfg(test)]
mod follow_tests {
    use super::new_lines;

    #[test]
    fn lines_after_the_ones_seen_whether_or_not_the_head_was_cut() {
        assert_eq!(new_lines("a\nb\n", "a\nb\nc\nd\n"), (false, vec!["c", "d"]));
        assert_eq!(new_lines("a\nb\n", "a\nb\n"), (false, vec![]));
        // The head was cut: what follows the last line seen.
        assert_eq!(
            new_lines("a\nb\nc\n", "[… earlier output truncated …]\nb\nc\nd\n"),
            (false, vec!["d"])
        );
        // Nothing seen is left: the tail, marked as skipping.
        assert_eq!(new_lines("a\nzz\n", "x\ny\n"), (true, vec!["x", "y"]));
    }
}
