//! The figures a run produced, printed as one table and written as JSON with the same numbers.
//! A row holds one metric for each mode (plain SQLite, 1 node, 3 nodes), its ratios to plain,
//! and the target for 3 nodes with whether the figure meets it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::deploy::Mode;

/// Whether a figure meets its target; `None` when it could not be judged (e.g. an input
/// workload was not run).
#[derive(Debug, Clone)]
pub struct Target {
    pub text: String,
    pub met: Option<bool>,
}

/// One metric of one workload.
#[derive(Debug, Clone)]
pub struct Row {
    pub metric: String,
    /// Key in the JSON report.
    pub key: String,
    /// By mode key ("plain", "one_node", "three_nodes").
    pub values: BTreeMap<&'static str, f64>,
    /// Print each cluster figure's ratio to plain.
    pub ratio: bool,
    pub target: Option<Target>,
}

impl Row {
    pub fn new(metric: &str, key: &str, ratio: bool) -> Row {
        Row { metric: metric.into(), key: key.into(), values: BTreeMap::new(), ratio, target: None }
    }

    pub fn set(&mut self, mode: Mode, value: f64) {
        self.values.insert(mode.key(), value);
    }

    pub fn get(&self, mode: Mode) -> Option<f64> {
        self.values.get(mode.key()).copied()
    }

    /// `mode`'s figure over plain SQLite's.
    pub fn ratio_of(&self, mode: Mode) -> Option<f64> {
        let plain = self.get(Mode::Plain)?;
        (plain > 0.0).then(|| self.get(mode).map(|v| v / plain)).flatten()
    }

    pub fn target(&mut self, text: &str, met: Option<bool>) {
        self.target = Some(Target { text: text.into(), met });
    }
}

/// One workload's rows and remarks.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub id: u8,
    pub name: &'static str,
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
}

fn number(value: f64) -> String {
    if value.abs() >= 100.0 {
        let digits = format!("{:.0}", value.abs());
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(c);
        }
        if value < 0.0 {
            grouped.insert(0, '-');
        }
        grouped
    } else {
        format!("{value:.2}")
    }
}

fn cell(row: &Row, mode: Mode) -> String {
    match (row.get(mode), row.ratio.then(|| row.ratio_of(mode)).flatten()) {
        (Some(v), Some(r)) if mode != Mode::Plain => format!("{} ({r:.2}x)", number(v)),
        (Some(v), _) => number(v),
        (None, _) => "-".into(),
    }
}

fn verdict(target: &Option<Target>) -> &'static str {
    match target.as_ref().map(|t| t.met) {
        Some(Some(true)) => "met",
        Some(Some(false)) => "MISSED",
        Some(None) => "not judged",
        None => "",
    }
}

/// The table, with a header line describing the modes.
pub fn table(outcomes: &[Outcome]) -> String {
    let header = [
        "#",
        "workload",
        "metric",
        "plain",
        "1 node (x plain)",
        "3 nodes (x plain)",
        "target (3 nodes)",
        "",
    ];
    let mut lines: Vec<[String; 8]> = vec![header.map(String::from)];
    for outcome in outcomes {
        for (i, row) in outcome.rows.iter().enumerate() {
            let (id, name) = if i == 0 {
                (outcome.id.to_string(), outcome.name.to_owned())
            } else {
                (String::new(), String::new())
            };
            lines.push([
                id,
                name,
                row.metric.clone(),
                cell(row, Mode::Plain),
                cell(row, Mode::Nodes(1)),
                cell(row, Mode::Nodes(3)),
                row.target.as_ref().map(|t| t.text.clone()).unwrap_or_default(),
                verdict(&row.target).into(),
            ]);
        }
    }
    let widths: Vec<usize> =
        (0..8).map(|c| lines.iter().map(|l| l[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for (n, line) in lines.iter().enumerate() {
        let cells: Vec<String> = line
            .iter()
            .enumerate()
            .map(|(c, text)| {
                if (3..6).contains(&c) {
                    format!("{text:>w$}", w = widths[c])
                } else {
                    format!("{text:<w$}", w = widths[c])
                }
            })
            .collect();
        let _ = writeln!(out, "{}", cells.join(" | ").trim_end());
        if n == 0 {
            let _ = writeln!(
                out,
                "{}",
                widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("-|-")
            );
        }
    }
    for outcome in outcomes {
        for note in &outcome.notes {
            let _ = writeln!(out, "({}) {note}", outcome.id);
        }
    }
    out
}

/// The JSON report: the same rows, plus the run's context.
pub fn json(outcomes: &[Outcome], context: Value) -> Value {
    let workloads: Vec<Value> = outcomes
        .iter()
        .map(|o| {
            let rows: Vec<Value> = o
                .rows
                .iter()
                .map(|r| {
                    let mut row = json!({ "metric": r.metric, "key": r.key });
                    for mode in Mode::ALL {
                        row[mode.key()] = json!(r.get(mode));
                        if r.ratio && mode != Mode::Plain {
                            row[format!("{}_ratio", mode.key())] = json!(r.ratio_of(mode));
                        }
                    }
                    if let Some(target) = &r.target {
                        row["target"] = json!(target.text);
                        row["met"] = json!(target.met);
                    }
                    row
                })
                .collect();
            json!({ "id": o.id, "name": o.name, "rows": rows, "notes": o.notes })
        })
        .collect();
    let judged: Vec<Option<bool>> = outcomes
        .iter()
        .flat_map(|o| o.rows.iter())
        .filter_map(|r| r.target.as_ref().map(|t| t.met))
        .collect();
    json!({
        "context": context,
        "workloads": workloads,
        "targets": {
            "met": judged.iter().filter(|m| **m == Some(true)).count(),
            "missed": judged.iter().filter(|m| **m == Some(false)).count(),
            "not_judged": judged.iter().filter(|m| m.is_none()).count(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(number(1234567.4), "1,234,567");
        assert_eq!(number(999.6), "1,000");
        assert_eq!(number(12.345), "12.35");
    }

    #[test]
    fn ratios_and_verdicts() {
        let mut row = Row::new("commits/s", "commits_per_s", true);
        row.set(Mode::Plain, 1000.0);
        row.set(Mode::Nodes(3), 500.0);
        row.target(">= 600", Some(false));
        assert_eq!(row.ratio_of(Mode::Nodes(3)), Some(0.5));
        assert_eq!(cell(&row, Mode::Nodes(3)), "500 (0.50x)");
        assert_eq!(cell(&row, Mode::Nodes(1)), "-");
        let text = table(&[Outcome { id: 1, name: "serial", rows: vec![row], notes: vec![] }]);
        assert!(text.contains("MISSED"), "{text}");
    }
}
