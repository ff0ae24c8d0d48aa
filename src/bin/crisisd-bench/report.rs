//! Result rows and their two renderings: a Markdown table (pasteable into
//! docs/benchmarks.md) and one JSON object.

use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Meets,
    Below,
    /// A figure without a target, shown for context.
    Info,
    /// The scenario could not measure this figure.
    Failed,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Verdict::Meets => "meets",
            Verdict::Below => "below target",
            Verdict::Info => "",
            Verdict::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Row {
    pub scenario: &'static str,
    pub figure: String,
    pub target: String,
    pub measured: String,
    /// The number behind `measured`, in `unit`, for JSON readers.
    pub value: Option<f64>,
    pub unit: &'static str,
    pub verdict: Verdict,
}

impl Row {
    /// A figure that should be at most `limit`.
    pub fn at_most(
        scenario: &'static str,
        figure: impl Into<String>,
        value: f64,
        limit: f64,
        unit: &'static str,
        measured: String,
    ) -> Self {
        Self {
            scenario,
            figure: figure.into(),
            target: format!("≤ {}", with_unit(number(limit), unit)),
            measured,
            value: Some(value),
            unit,
            verdict: if value <= limit {
                Verdict::Meets
            } else {
                Verdict::Below
            },
        }
    }

    /// A figure that should be at least `limit`.
    pub fn at_least(
        scenario: &'static str,
        figure: impl Into<String>,
        value: f64,
        limit: f64,
        unit: &'static str,
        measured: String,
    ) -> Self {
        Self {
            scenario,
            figure: figure.into(),
            target: format!("≥ {}", with_unit(number(limit), unit)),
            measured,
            value: Some(value),
            unit,
            verdict: if value >= limit {
                Verdict::Meets
            } else {
                Verdict::Below
            },
        }
    }

    /// A figure with a target that is not a simple bound.
    pub fn judged(
        scenario: &'static str,
        figure: impl Into<String>,
        target: impl Into<String>,
        value: Option<f64>,
        unit: &'static str,
        measured: String,
        meets: bool,
    ) -> Self {
        Self {
            scenario,
            figure: figure.into(),
            target: target.into(),
            measured,
            value,
            unit,
            verdict: if meets {
                Verdict::Meets
            } else {
                Verdict::Below
            },
        }
    }

    pub fn info(
        scenario: &'static str,
        figure: impl Into<String>,
        value: Option<f64>,
        unit: &'static str,
        measured: String,
    ) -> Self {
        Self {
            scenario,
            figure: figure.into(),
            target: "—".to_owned(),
            measured,
            value,
            unit,
            verdict: Verdict::Info,
        }
    }

    pub fn failed(scenario: &'static str, figure: impl Into<String>, why: String) -> Self {
        Self {
            scenario,
            figure: figure.into(),
            target: "—".to_owned(),
            measured: why,
            value: None,
            unit: "",
            verdict: Verdict::Failed,
        }
    }
}

/// "10,000 ms", "10,000/s", "64".
fn with_unit(number: String, unit: &str) -> String {
    if unit.is_empty() || unit.starts_with('/') {
        format!("{number}{unit}")
    } else {
        format!("{number} {unit}")
    }
}

/// 10000 -> "10,000"; 0.2 -> "0.2".
pub fn number(n: f64) -> String {
    if n.fract() != 0.0 || n.abs() >= 1e15 {
        return format!("{n}");
    }
    grouped(n as i64)
}

/// An integer with thousands separators.
pub fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

pub fn table(header: &[String], rows: &[Row]) -> String {
    let mut out = String::new();
    for line in header {
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    out.push_str("| scenario | figure | target | measured | verdict |\n");
    out.push_str("|---|---|---|---|---|\n");
    for row in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            row.scenario,
            row.figure,
            row.target,
            row.measured.replace('|', "\\|").replace('\n', " "),
            row.verdict.as_str()
        ));
    }
    out
}

pub fn json(machine: Value, settings: Value, rows: &[Row], failed: &[String]) -> Value {
    json!({
        "machine": machine,
        "settings": settings,
        "results": rows.iter().map(|r| json!({
            "scenario": r.scenario,
            "figure": r.figure,
            "target": r.target,
            "measured": r.measured,
            "value": r.value,
            "unit": r.unit,
            "verdict": match r.verdict {
                Verdict::Meets => "meets",
                Verdict::Below => "below target",
                Verdict::Info => "info",
                Verdict::Failed => "failed",
            },
        })).collect::<Vec<_>>(),
        "failed_scenarios": failed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(10_000), "10,000");
        assert_eq!(grouped(1_000_000), "1,000,000");
        assert_eq!(number(0.2), "0.2");
    }
}
