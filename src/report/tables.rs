//! Report tables: one model ([`Table`]) rendered three ways — Markdown for
//! `report.md`, CSV for spreadsheets and pandas (estimates spread over
//! `_mean`, `_ci95` and `_n` columns), LaTeX (booktabs) for papers.

use std::fmt::Write;

use super::stats::{Estimate, CONFIDENCE};

/// What a table cell holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Number(f64),
    /// A mean over seeds with its confidence interval.
    Estimate(Estimate),
    /// Nothing to show ("—"), and why.
    Missing(String),
}

/// One cell; `bold` marks the best value of its kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub value: Value,
    pub bold: bool,
}

impl Cell {
    pub fn text(text: impl Into<String>) -> Cell {
        Cell { value: Value::Text(text.into()), bold: false }
    }

    pub fn number(value: f64) -> Cell {
        Cell { value: Value::Number(value), bold: false }
    }

    /// A number, or "—" with `why` when there is none.
    pub fn number_or(value: Option<f64>, why: &str) -> Cell {
        value.map_or_else(|| Cell::missing(why), Cell::number)
    }

    pub fn estimate(estimate: Estimate) -> Cell {
        Cell { value: Value::Estimate(estimate), bold: false }
    }

    pub fn missing(why: impl Into<String>) -> Cell {
        Cell { value: Value::Missing(why.into()), bold: false }
    }

    /// The number a cell shows (mean of an estimate), for picking the best.
    pub fn as_number(&self) -> Option<f64> {
        match &self.value {
            Value::Number(x) => Some(*x),
            Value::Estimate(e) => Some(e.mean),
            _ => None,
        }
    }
}

/// A column: `key` names it in CSV (ASCII, no spaces), `title` in Markdown and LaTeX.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub key: String,
    pub title: String,
}

impl Column {
    pub fn new(key: impl Into<String>, title: impl Into<String>) -> Column {
        Column { key: key.into(), title: title.into() }
    }
}

/// A titled table with notes printed below it.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// File stem of its CSV and LaTeX files, and its LaTeX label.
    pub name: String,
    pub title: String,
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Cell>>,
    pub notes: Vec<String>,
}

impl Table {
    pub fn new(name: &str, title: &str, columns: Vec<Column>) -> Table {
        Table { name: name.into(), title: title.into(), columns, rows: Vec::new(), notes: Vec::new() }
    }

    /// Marks the best cell among `columns` taken together (lowest, or
    /// highest with `maximize`) as bold; ties are all bold.
    pub fn bold_best(&mut self, columns: &[usize], maximize: bool) {
        let values = self
            .rows
            .iter()
            .flat_map(|r| columns.iter().filter_map(|&c| r[c].as_number()))
            .filter(|v| v.is_finite());
        let best = if maximize { values.reduce(f64::max) } else { values.reduce(f64::min) };
        for row in &mut self.rows {
            for &c in columns {
                row[c].bold = best.is_some() && row[c].as_number() == best;
            }
        }
    }

    /// The most seeds behind any estimate: cells with fewer say so.
    fn full_n(&self) -> usize {
        let estimates = self.rows.iter().flatten().filter_map(|c| match &c.value {
            Value::Estimate(e) => Some(e.n),
            _ => None,
        });
        estimates.max().unwrap_or(0)
    }

    fn has_estimates(&self) -> bool {
        self.rows.iter().flatten().any(|c| matches!(c.value, Value::Estimate(_)))
    }

    /// The distinct reasons of the missing cells, in order of appearance.
    fn missing_reasons(&self) -> Vec<&str> {
        let mut reasons: Vec<&str> = Vec::new();
        for cell in self.rows.iter().flatten() {
            if let Value::Missing(why) = &cell.value {
                if !why.is_empty() && !reasons.contains(&why.as_str()) {
                    reasons.push(why);
                }
            }
        }
        reasons
    }

    /// Notes: the table's own, what the intervals are, and why cells are empty.
    fn all_notes(&self) -> Vec<String> {
        let mut notes = self.notes.clone();
        if self.has_estimates() {
            let pct = CONFIDENCE * 100.0;
            notes.push(format!(
                "mean ± {pct:.0} % confidence interval over seeds (Student t, n − 1 degrees of freedom); \
                 a cell from a single seed (n = 1) has no interval"
            ));
        }
        notes.extend(self.missing_reasons().into_iter().map(|why| format!("—: {why}")));
        notes
    }

    fn numeric_column(&self, c: usize) -> bool {
        self.rows.iter().any(|r| matches!(r[c].value, Value::Number(_) | Value::Estimate(_)))
    }

    /// GitHub-flavoured Markdown: a `###` title, the table, notes as a list.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "### {}\n", self.title);
        let titles: Vec<String> = self.columns.iter().map(|c| md_escape(&c.title)).collect();
        let _ = writeln!(out, "| {} |", titles.join(" | "));
        let rules: Vec<&str> =
            (0..self.columns.len()).map(|c| if self.numeric_column(c) { "---:" } else { "---" }).collect();
        let _ = writeln!(out, "|{}|", rules.join("|"));
        let full_n = self.full_n();
        for row in &self.rows {
            let cells: Vec<String> = row
                .iter()
                .map(|cell| {
                    let text = md_escape(&show(&cell.value, full_n, Style::Plain));
                    if cell.bold && !text.is_empty() {
                        format!("**{text}**")
                    } else {
                        text
                    }
                })
                .collect();
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
        let notes = self.all_notes();
        if !notes.is_empty() {
            out.push('\n');
            for note in notes {
                let _ = writeln!(out, "- {}", md_escape(&note));
            }
        }
        out
    }

    /// CSV with a header of column keys. A column holding estimates becomes
    /// `<key>_mean`, `<key>_ci95` (half-width, empty for n = 1) and `<key>_n`;
    /// missing values are empty cells, their reasons in a last `notes` column.
    pub fn to_csv(&self) -> String {
        let spread: Vec<bool> = (0..self.columns.len())
            .map(|c| self.rows.iter().any(|r| matches!(r[c].value, Value::Estimate(_))))
            .collect();
        let mut header = Vec::new();
        for (column, &spread) in self.columns.iter().zip(&spread) {
            if spread {
                header.extend(["mean", "ci95", "n"].map(|s| format!("{}_{s}", column.key)));
            } else {
                header.push(column.key.clone());
            }
        }
        let with_notes = !self.missing_reasons().is_empty();
        if with_notes {
            header.push("notes".to_owned());
        }
        let mut out = Vec::new();
        let _ = crate::storage::export::write_record(&mut out, &header);
        // Integers as integers; other numbers in full (shortest round trip).
        let float =
            |x: f64| if x.fract() == 0.0 && x.abs() < 1e15 { format!("{x:.0}") } else { format!("{x:?}") };
        for row in &self.rows {
            let mut record = Vec::new();
            let mut notes = Vec::new();
            for (cell, &spread) in row.iter().zip(&spread) {
                let mut put = |mean: String, ci: String, n: String| {
                    if spread {
                        record.extend([mean, ci, n]);
                    } else {
                        record.push(mean);
                    }
                };
                match &cell.value {
                    Value::Text(t) => put(t.clone(), String::new(), String::new()),
                    Value::Number(x) => put(float(*x), String::new(), "1".into()),
                    Value::Estimate(e) => {
                        put(float(e.mean), e.half_width.map(float).unwrap_or_default(), e.n.to_string())
                    }
                    Value::Missing(why) => {
                        if !why.is_empty() && !notes.contains(why) {
                            notes.push(why.clone());
                        }
                        put(String::new(), String::new(), "0".into())
                    }
                }
            }
            if with_notes {
                record.push(notes.join("; "));
            }
            let _ = crate::storage::export::write_record(&mut out, &record);
        }
        String::from_utf8(out).expect("CSV of UTF-8 text")
    }

    /// A LaTeX `table` with a booktabs `tabular` (needs `\usepackage{booktabs}`),
    /// caption, label `tab:<name>` and the notes below it.
    pub fn to_latex(&self) -> String {
        let mut out = String::new();
        let align: String =
            (0..self.columns.len()).map(|c| if self.numeric_column(c) { 'r' } else { 'l' }).collect();
        let _ = writeln!(out, "\\begin{{table}}[htbp]\n\\centering");
        let _ = writeln!(out, "\\caption{{{}}}", latex_escape(&self.title));
        let _ = writeln!(out, "\\label{{tab:{}}}", latex_escape(&self.name));
        let _ = writeln!(out, "\\begin{{tabular}}{{{align}}}\n\\toprule");
        let titles: Vec<String> = self.columns.iter().map(|c| latex_escape(&c.title)).collect();
        let _ = writeln!(out, "{} \\\\\n\\midrule", titles.join(" & "));
        let full_n = self.full_n();
        for row in &self.rows {
            let cells: Vec<String> = row
                .iter()
                .map(|cell| {
                    let text = show(&cell.value, full_n, Style::Latex);
                    if cell.bold && !text.is_empty() {
                        format!("\\textbf{{{text}}}")
                    } else {
                        text
                    }
                })
                .collect();
            let _ = writeln!(out, "{} \\\\", cells.join(" & "));
        }
        let _ = writeln!(out, "\\bottomrule\n\\end{{tabular}}");
        let notes = self.all_notes();
        if !notes.is_empty() {
            let _ = writeln!(out, "\\par\\smallskip\n{{\\footnotesize");
            for note in notes {
                let _ = writeln!(out, "{}\\par", latex_escape(&note));
            }
            let _ = writeln!(out, "}}");
        }
        let _ = writeln!(out, "\\end{{table}}");
        out
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Style {
    Plain,
    Latex,
}

/// A number with three decimals, or three significant digits in scientific
/// notation when it is very small or very large.
pub fn format_number(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    if x.fract() == 0.0 && x.abs() < 1e9 {
        return format!("{x:.0}");
    }
    if (0.01..1e4).contains(&x.abs()) {
        format!("{x:.3}")
    } else {
        format!("{x:.2e}")
    }
}

/// The text of a value; `full_n` is the usual number of seeds (fewer are shown).
fn show(value: &Value, full_n: usize, style: Style) -> String {
    let (pm, dash) = match style {
        Style::Plain => (" ± ", "—"),
        Style::Latex => (" $\\pm$ ", "---"),
    };
    let text = |s: String| match style {
        Style::Plain => s,
        Style::Latex => latex_escape(&s),
    };
    match value {
        Value::Text(t) => text(t.clone()),
        Value::Number(x) => text(format_number(*x)),
        Value::Missing(_) => dash.to_owned(),
        Value::Estimate(e) => {
            let mut s = text(format_number(e.mean));
            if let Some(h) = e.half_width {
                s += pm;
                s += &text(format_number(h));
            }
            if e.n != full_n || e.n == 1 {
                s += &text(format!(" (n = {})", e.n));
            }
            s
        }
    }
}

/// Escapes `|` (a cell border) and line breaks for a Markdown table cell.
fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Escapes LaTeX's special characters and writes the few non-ASCII
/// symbols reports use (ε, ±, —, …) as LaTeX.
pub fn latex_escape(s: &str) -> String {
    /// The report's quantity names, typeset as maths.
    const SYMBOLS: [(&str, &str); 4] = [
        ("ε_poly", "$\\varepsilon_\\mathrm{poly}$"),
        ("a_r", "$a_r$"),
        ("l_max", "$l_\\mathrm{max}$"),
        ("ε∞", "$\\varepsilon_\\infty$"),
    ];
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let mut out = String::with_capacity(s.len());
    let (mut rest, mut previous) = (s, None);
    while let Some(c) = rest.chars().next() {
        // Whole words only: a parameter `lambda_reg` keeps its `a_r`.
        let symbol = SYMBOLS.iter().find(|(name, _)| {
            rest.starts_with(name) && !word(previous) && !word(rest[name.len()..].chars().next())
        });
        if let Some((name, tex)) = symbol {
            out.push_str(tex);
            previous = name.chars().last();
            rest = &rest[name.len()..];
            continue;
        }
        previous = Some(c);
        rest = &rest[c.len_utf8()..];
        match c {
            '\\' => out.push_str("\\textbackslash{}"),
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                out.push('\\');
                out.push(c);
            }
            '~' => out.push_str("\\textasciitilde{}"),
            '^' => out.push_str("\\textasciicircum{}"),
            '<' => out.push_str("\\textless{}"),
            '>' => out.push_str("\\textgreater{}"),
            'ε' => out.push_str("$\\varepsilon$"),
            '∞' => out.push_str("$\\infty$"),
            'λ' => out.push_str("$\\lambda$"),
            'α' => out.push_str("$\\alpha$"),
            '±' => out.push_str("$\\pm$"),
            '×' => out.push_str("$\\times$"),
            '−' => out.push_str("$-$"),
            '≤' => out.push_str("$\\leq$"),
            '≥' => out.push_str("$\\geq$"),
            '√' => out.push_str("$\\surd$"),
            '—' => out.push_str("---"),
            '–' => out.push_str("--"),
            '…' => out.push_str("\\ldots{}"),
            '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        let mut t = Table::new(
            "lmax",
            "ε_poly MAE by l_max",
            vec![Column::new("lmax", "l_max"), Column::new("eq", "equivariant"), Column::new("sc", "scalar")],
        );
        let e = |mean, h, n| Cell::estimate(Estimate { n, mean, half_width: h });
        t.rows.push(vec![Cell::text("0"), Cell::missing("cannot output 2e"), e(0.44, Some(0.02), 3)]);
        t.rows.push(vec![Cell::text("1"), e(0.33, Some(0.01), 3), e(0.39, None, 1)]);
        t.bold_best(&[1], false);
        t.bold_best(&[2], false);
        t
    }

    #[test]
    fn markdown_shows_intervals_dashes_and_bold() {
        let md = table().to_markdown();
        assert!(md.contains("| 0 | — | 0.440 ± 0.020 |"), "{md}");
        assert!(md.contains("| 1 | **0.330 ± 0.010** | **0.390 (n = 1)** |"), "{md}");
        assert!(md.contains("- —: cannot output 2e"), "{md}");
        assert!(md.contains("Student t"));
    }

    #[test]
    fn csv_spreads_estimates_over_mean_ci_and_n() {
        let csv = table().to_csv();
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some("lmax,eq_mean,eq_ci95,eq_n,sc_mean,sc_ci95,sc_n,notes"));
        assert_eq!(lines.next(), Some("0,,,0,0.44,0.02,3,cannot output 2e"));
        assert_eq!(lines.next(), Some("1,0.33,0.01,3,0.39,,1,"));
    }

    #[test]
    fn latex_is_booktabs_and_escaped() {
        let tex = table().to_latex();
        assert!(tex.contains("\\caption{$\\varepsilon_\\mathrm{poly}$ MAE by $l_\\mathrm{max}$}"), "{tex}");
        assert!(tex.contains("\\toprule") && tex.contains("\\midrule") && tex.contains("\\bottomrule"));
        assert!(tex.contains("0 & --- & 0.440 $\\pm$ 0.020 \\\\"), "{tex}");
        assert!(tex.contains("\\textbf{0.330 $\\pm$ 0.010}"), "{tex}");
        assert_eq!(latex_escape("a_r lambda_reg l_max"), "$a_r$ lambda\\_reg $l_\\mathrm{max}$");
        assert_eq!(
            latex_escape("a_b & 50% #1 {x} ~ ^ \\"),
            "a\\_b \\& 50\\% \\#1 \\{x\\} \\textasciitilde{} \\textasciicircum{} \\textbackslash{}"
        );
    }
}
