//! Aligned columns for people: the one column layout of `sample`,
//! `schema` and `list`.

use std::io::{self, Write};

/// Rows of cells, each column as wide as its widest cell, two spaces
/// between columns and no trailing spaces. Rows may differ in length.
///
/// Cells come from tables and directories other users may name: a control
/// character in a cell (an escape sequence, a newline) is shown escaped
/// (`\u{1b}`, `\n`), so that no cell can move the cursor, recolour the
/// terminal or forge a line.
#[derive(Clone, Debug)]
pub struct Grid {
    align: &'static str,
    rows: Vec<Vec<String>>,
}

impl Grid {
    /// A grid whose first row is `header`. `align` gives each column's
    /// alignment, `<` (left) or `>` (right); its last one also holds for
    /// the columns after it.
    pub fn new<S: ToString>(align: &'static str, header: impl IntoIterator<Item = S>) -> Grid {
        let mut g = Grid {
            align,
            rows: Vec::new(),
        };
        g.row(header);
        g
    }

    /// Appends a row, its control characters escaped.
    pub fn row<S: ToString>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(
            cells
                .into_iter()
                .map(|c| printable(&c.to_string()))
                .collect(),
        );
    }

    /// Writes the rows, one line each.
    ///
    /// # Errors
    ///
    /// I/O errors of `out`.
    pub fn write(&self, out: &mut dyn Write) -> io::Result<()> {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let width: Vec<usize> = (0..cols)
            .map(|i| {
                let cells = self.rows.iter().filter_map(|r| r.get(i));
                cells.map(|c| c.chars().count()).max().unwrap_or(0)
            })
            .collect();
        for r in &self.rows {
            let mut line = String::new();
            for (i, (c, w)) in r.iter().zip(&width).enumerate() {
                let sep = if i == 0 { "" } else { "  " };
                let right = self
                    .align
                    .as_bytes()
                    .get(i)
                    .or(self.align.as_bytes().last());
                if right == Some(&b'>') {
                    line.push_str(&format!("{sep}{c:>w$}"));
                } else {
                    line.push_str(&format!("{sep}{c:<w$}"));
                }
            }
            writeln!(out, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

/// `s` with every control character escaped as Rust escapes it.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::Grid;

    #[test]
    fn control_characters_are_escaped_and_widths_count_characters() {
        let mut g = Grid::new("<<", ["NAME", "X"]);
        g.row(["\u{1b}[2Jvm\nfake", "1"]);
        g.row(["été", "2"]);
        let mut out = Vec::new();
        g.write(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
        assert_eq!(
            text,
            "NAME               X\n\\u{1b}[2Jvm\\nfake  1\nété                2\n"
        );
    }

    #[test]
    fn columns_align_without_trailing_spaces() {
        let mut g = Grid::new("<>", ["NAME", "N", "M"]);
        g.row(["a", "100"]);
        g.row(["bbbbbb", "1", "22"]);
        let mut out = Vec::new();
        g.write(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "NAME      N   M\na       100\nbbbbbb    1  22\n"
        );
    }
}
