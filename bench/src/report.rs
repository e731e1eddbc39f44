//! Results: one `Row` per scenario, printed as a table line and written as JSON.

use serde_json::{json, Map, Value};

/// One scenario's result.
pub struct Row {
    pub scenario: &'static str,
    /// The headline figure, in `unit`.
    pub figure: f64,
    pub unit: &'static str,
    /// The figure as the table shows it (`14,200 tasks/s`).
    pub figure_text: String,
    /// The rest of the measurement, as the table shows it (`p50 1.9 ms p99 6.1 ms`).
    pub summary: String,
    /// The figure divided by its ceiling, and what the ceiling is.
    pub ratio: Option<(f64, &'static str)>,
    /// The load generator's share of the machine's CPU, where one ran against a server.
    pub loadgen_cpu: Option<f64>,
    /// What the figure does not cover.
    pub note: Option<String>,
    /// Every number measured, for the JSON.
    pub details: Map<String, Value>,
}

impl Row {
    pub fn new(scenario: &'static str, figure: f64, unit: &'static str) -> Row {
        Row {
            scenario,
            figure,
            unit,
            figure_text: String::new(),
            summary: String::new(),
            ratio: None,
            loadgen_cpu: None,
            note: None,
            details: Map::new(),
        }
    }

    pub fn detail(&mut self, key: &str, value: impl Into<Value>) -> &mut Row {
        self.details.insert(key.to_string(), value.into());
        self
    }

    /// A float detail, rounded to 3 decimals; NaN becomes null.
    pub fn num(&mut self, key: &str, value: f64) -> &mut Row {
        let value = if value.is_finite() {
            json!((value * 1000.0).round() / 1000.0)
        } else {
            Value::Null
        };
        self.details.insert(key.to_string(), value);
        self
    }
}

/// The machine and the run, the same for every row.
pub struct RunInfo {
    pub cores: usize,
    pub cpu_model: String,
    pub mem_mib: Option<u64>,
    pub date: String,
    pub commit: String,
    pub durability: String,
    pub quick: bool,
}

impl RunInfo {
    pub fn machine_text(&self) -> String {
        format!(
            "{} core{}, {}",
            self.cores,
            if self.cores == 1 { "" } else { "s" },
            self.cpu_model
        )
    }

    pub fn header(&self) -> String {
        format!(
            "taskbox-bench {}: {} · commit {} · durability {} · {} · {}{}",
            env!("CARGO_PKG_VERSION"),
            self.date,
            self.commit,
            self.durability,
            if self.quick { "quick" } else { "full" },
            self.machine_text(),
            self.mem_mib
                .map(|m| format!(", {m} MiB RAM"))
                .unwrap_or_default(),
        )
    }
}

pub const COLUMNS: &str = "scenario | figure | details | ratio | loadgen cpu | machine";

/// The table line of a row.
pub fn line(row: &Row, run: &RunInfo) -> String {
    let ratio = match row.ratio {
        Some((r, of)) if r.is_finite() => format!("{r:.2} × {of}"),
        Some((_, of)) => format!("- × {of}"),
        None => "-".into(),
    };
    let cpu = match row.loadgen_cpu {
        Some(c) => format!("loadgen cpu {:.0}%", c * 100.0),
        None => "loadgen -".into(),
    };
    let mut summary = row.summary.clone();
    if let Some(note) = &row.note {
        if !summary.is_empty() {
            summary.push_str("; ");
        }
        summary.push_str(note);
    }
    format!(
        "{} | {} | {} | {} | {} | {}",
        row.scenario,
        row.figure_text,
        summary,
        ratio,
        cpu,
        run.machine_text()
    )
}

/// The table line of a scenario that failed.
pub fn failed_line(scenario: &str, error: &str, run: &RunInfo) -> String {
    format!(
        "{scenario} | FAILED | {} | - | - | {}",
        error.replace('\n', " "),
        run.machine_text()
    )
}

fn finite(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        Value::Null
    }
}

fn machine_json(run: &RunInfo) -> Value {
    json!({"cores": run.cores, "cpu_model": run.cpu_model, "mem_mib": run.mem_mib})
}

fn run_json(run: &RunInfo) -> Value {
    json!({
        "date": run.date,
        "commit": run.commit,
        "durability": run.durability,
        "quick": run.quick,
    })
}

pub fn row_json(row: &Row, run: &RunInfo) -> Value {
    let mut details = row.details.clone();
    details.insert("text".into(), json!(line(row, run)));
    if let Some(note) = &row.note {
        details.insert("note".into(), json!(note));
    }
    if let Some(cpu) = row.loadgen_cpu {
        details.insert("loadgen_cpu".into(), finite(cpu));
    }
    json!({
        "scenario": row.scenario,
        "figure": finite(row.figure),
        "unit": row.unit,
        "ratio": row.ratio.map(|(r, _)| finite(r)).unwrap_or(Value::Null),
        "ratio_of": row.ratio.map(|(_, of)| of),
        "details": details,
        "machine": machine_json(run),
        "run": run_json(run),
    })
}

pub fn failed_json(scenario: &str, error: &str, run: &RunInfo) -> Value {
    json!({
        "scenario": scenario,
        "figure": null,
        "unit": null,
        "ratio": null,
        "error": error,
        "details": {},
        "machine": machine_json(run),
        "run": run_json(run),
    })
}

/// A rate with three significant figures and thousands separators: `14,200`.
pub fn rate(x: f64) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    if x < 100.0 {
        return format!("{x:.1}");
    }
    let digits = x.log10().floor() as i32 + 1;
    let scale = 10f64.powi((digits - 3).max(0));
    thousands((x / scale).round() as u64 * scale as u64)
}

/// An integer with thousands separators.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Milliseconds: `0.42 ms`, `1.9 ms`, `120 ms`.
pub fn ms(x: f64) -> String {
    if !x.is_finite() {
        "- ms".into()
    } else if x < 1.0 {
        format!("{x:.2} ms")
    } else if x < 100.0 {
        format!("{x:.1} ms")
    } else {
        format!("{x:.0} ms")
    }
}

/// MiB with one decimal.
pub fn mib(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.1} MiB")
    } else {
        "- MiB".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_keep_three_significant_figures() {
        assert_eq!(rate(14_213.0), "14,200");
        assert_eq!(rate(999.4), "999");
        assert_eq!(rate(1_234_567.0), "1,230,000");
        assert_eq!(rate(42.25), "42.2");
    }
}
