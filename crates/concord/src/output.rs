//! Everything the CLI prints to stdout: JSON for machines, aligned tables and
//! one-line summaries for people.

use std::io::{self, Write};

use serde::Serialize;

/// Where command results go, and in which form.
///
/// Writes go through `io::Result` (never `println!`) so a closed pipe
/// (`concord kv ls | head`) ends the command quietly instead of panicking.
pub struct Output {
    json: bool,
    out: Box<dyn Write + Send>,
}

impl Output {
    /// Results to stdout; `json` selects `--json` mode.
    pub fn stdout(json: bool) -> Self {
        Output {
            json,
            out: Box::new(io::stdout()),
        }
    }

    /// True when the user asked for `--json`.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Prints a response as pretty JSON.
    pub fn json<T: Serialize>(&mut self, value: &T) -> io::Result<()> {
        serde_json::to_writer_pretty(&mut self.out, value)?;
        writeln!(self.out)?;
        self.out.flush()
    }

    /// Prints a response as one compact JSON line (streams: one line per event).
    pub fn json_line<T: Serialize>(&mut self, value: &T) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, value)?;
        writeln!(self.out)?;
        self.out.flush()
    }

    /// Prints `value` as JSON in `--json` mode, else the human text `human()` renders.
    pub fn either<T: Serialize>(
        &mut self,
        value: &T,
        human: impl FnOnce() -> String,
    ) -> io::Result<()> {
        if self.json {
            self.json(value)
        } else {
            self.text(&human())
        }
    }

    /// Prints human text, adding a final newline when missing.
    pub fn text(&mut self, text: &str) -> io::Result<()> {
        self.out.write_all(text.as_bytes())?;
        if !text.ends_with('\n') {
            self.out.write_all(b"\n")?;
        }
        self.out.flush()
    }

    /// Prints bytes exactly as given (`kv get --raw`).
    pub fn raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.out.flush()
    }
}

/// A table with a header row and left-aligned columns separated by two spaces.
#[derive(Debug, Clone)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(headers: &[&str]) -> Self {
        Table {
            rows: vec![headers.iter().map(|h| (*h).to_owned()).collect()],
        }
    }

    /// Adds a row; cells beyond the header count are kept, missing ones are blank.
    pub fn row(&mut self, cells: Vec<String>) -> &mut Self {
        self.rows.push(cells);
        self
    }

    /// The table as text, one line per row, no trailing spaces.
    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|cell| cell.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut text = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (c, width) in widths.iter().enumerate() {
                let cell = row.get(c).map_or("", String::as_str);
                line.push_str(cell);
                if c + 1 < columns {
                    let pad = width - cell.chars().count() + 2;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text
    }
}

/// Makes value bytes safe for one table cell or event line: invalid UTF-8
/// replaced, control characters escaped (`\n`, `\u{1b}`), cut at `max` chars with `…`.
pub fn one_line(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::new();
    for (n, c) in text.chars().enumerate() {
        if n == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// `-` for an absent cell value.
pub fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let mut t = Table::new(&["NAME", "INSTANCES"]);
        t.row(vec!["orders".into(), "3".into()])
            .row(vec!["a".into(), "12".into()]);
        assert_eq!(t.render(), "NAME    INSTANCES\norders  3\na       12\n");
    }

    #[test]
    fn tables_handle_wide_chars_and_missing_cells() {
        let mut t = Table::new(&["K", "V"]);
        t.row(vec!["ключ".into()]).row(vec!["x".into(), "y".into()]);
        assert_eq!(t.render(), "K     V\nключ\nx     y\n");
    }

    #[test]
    fn one_line_escapes_and_truncates() {
        assert_eq!(one_line(b"a\nb\tc", 80), "a\\nb\\tc");
        assert_eq!(one_line(b"\x1b[31mred", 80), "\\u{1b}[31mred");
        assert_eq!(one_line(b"abcdef", 3), "abc…");
        assert_eq!(one_line(b"abc", 3), "abc");
        assert_eq!(one_line(&[0xff, b'a'], 80), "\u{fffd}a");
    }

    #[test]
    fn dashes() {
        assert_eq!(or_dash(None::<u32>), "-");
        assert_eq!(or_dash(Some(5)), "5");
    }
}
