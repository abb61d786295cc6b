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
    width: Option<usize>,
}

/// The width of a terminal that tables are made to fit.
pub const SCREEN_WIDTH: usize = 80;

impl Grid {
    /// A grid whose first row is `header`. `align` gives each column's
    /// alignment, `<` (left) or `>` (right); its last one also holds for
    /// the columns after it.
    pub fn new<S: ToString>(align: &'static str, header: impl IntoIterator<Item = S>) -> Grid {
        let mut g = Grid {
            align,
            rows: Vec::new(),
            width: None,
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

    /// Makes the rows fit `width` columns: a first cell too wide for the
    /// room the other columns leave is written on a line of its own, the
    /// rest of its row on the next line.
    pub fn fit(mut self, width: usize) -> Grid {
        self.width = Some(width);
        self
    }

    /// Writes the rows, one line each.
    ///
    /// # Errors
    ///
    /// I/O errors of `out`.
    pub fn write(&self, out: &mut dyn Write) -> io::Result<()> {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut width: Vec<usize> = (0..cols)
            .map(|i| {
                let cells = self.rows.iter().filter_map(|r| r.get(i));
                cells.map(|c| c.chars().count()).max().unwrap_or(0)
            })
            .collect();
        if let (Some(limit), Some((first, rest))) = (self.width, width.split_first_mut()) {
            let others: usize = rest.iter().map(|w| w + 2).sum();
            *first = (*first).min(limit.saturating_sub(others));
        }
        let first_width = width.first().copied().unwrap_or(0);
        for r in &self.rows {
            let mut line = String::new();
            let spill = r.first().filter(|c| c.chars().count() > first_width);
            if let Some(c) = spill {
                writeln!(out, "{c}")?;
            }
            let r: Vec<&str> = r
                .iter()
                .enumerate()
                .map(|(i, c)| if i == 0 && spill.is_some() { "" } else { c })
                .collect();
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
    fn a_first_cell_too_wide_gets_its_own_line() {
        let mut g = Grid::new("<>", ["NAME", "N"]).fit(12);
        g.row(["a", "100"]);
        g.row(["a_very_long_name", "1"]);
        let mut out = Vec::new();
        g.write(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "NAME       N\na        100\na_very_long_name\n           1\n"
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
