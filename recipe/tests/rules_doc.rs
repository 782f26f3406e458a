//! The "you write → trythis emits" table of RULES.md is checked against the converter, so the
//! README section cannot drift from what the code does.

mod common;

const RULES: &str = include_str!("../RULES.md");

/// The code spans of a table cell, with `\|` unescaped.
fn spans(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(|span| span.replace("\\|", "|"))
        .collect()
}

/// A table row split on `|` that is not escaped.
fn cells(row: &str) -> Vec<String> {
    let mut cells = vec![String::new()];
    let mut chars = row.trim().trim_matches('|').chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cells.last_mut().expect("cell").push_str("\\|");
                chars.next();
            }
            '|' => cells.push(String::new()),
            c => cells.last_mut().expect("cell").push(c),
        }
    }
    cells
}

#[test]
fn every_row_of_the_rules_table_is_what_the_converter_does() {
    let rows: Vec<&str> = RULES
        .lines()
        .skip_while(|l| !l.starts_with("| you write"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .collect();
    assert!(rows.len() >= 10, "{} rows", rows.len());
    for row in rows {
        let cells = cells(row);
        assert_eq!(cells.len(), 2, "{row}");
        let written = spans(&cells[0]);
        let script = format!("{}\ntrue\n", written.join("\n"));
        let converted = common::convert(&script);
        let lines: Vec<&str> = converted.dockerfile.lines().map(str::trim).collect();
        if cells[1].trim() == "*dropped*" {
            for line in &written {
                assert!(
                    !converted.dockerfile.contains(line.as_str()),
                    "{line:?} should be dropped:\n{}",
                    converted.dockerfile
                );
            }
            continue;
        }
        let mut from = 0;
        for expected in spans(&cells[1]) {
            match lines[from..].iter().position(|l| *l == expected) {
                Some(at) => from += at + 1,
                None => panic!(
                    "row {row}\nexpected the line {expected:?} (in order) in\n{}",
                    converted.dockerfile
                ),
            }
        }
    }
}
