//! Aligned columns for people: the one column layout of `sample`,
//! `schema` and `list`.

use std::io::{self, Write};

/// Rows of cells, each column as wide as its widest cell, two spaces
/// between columns and no trailing spaces. Rows may differ in length.
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

    /// Appends a row.
    pub fn row<S: ToString>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows
            .push(cells.into_iter().map(|c| c.to_string()).collect());
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
                cells.map(String::len).max().unwrap_or(0)
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

#[cfg(test)]
mod tests {
    use super::Grid;

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
