//! Per-step metrics under TRL / open-r1 names (spec §8.4), appended to `metrics.jsonl` and
//! `metrics.csv` in the run directory.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// One step's metrics, keyed by name.
pub type Metrics = BTreeMap<String, f64>;

/// Appends metrics rows to the JSONL and CSV files of a run.
pub struct MetricsWriter {
    jsonl: PathBuf,
    csv: PathBuf,
    columns: Vec<String>,
}

impl MetricsWriter {
    /// Opens the writer for `dir`; an existing CSV's header is kept (resume).
    pub fn new(dir: &Path) -> Self {
        let csv = dir.join("metrics.csv");
        let columns = std::fs::read_to_string(&csv)
            .ok()
            .and_then(|t| {
                t.lines()
                    .next()
                    .map(|h| h.split(',').map(str::to_owned).collect())
            })
            .unwrap_or_default();
        Self {
            jsonl: dir.join("metrics.jsonl"),
            csv,
            columns,
        }
    }

    /// Appends one row to both files.
    pub fn write(&mut self, m: &Metrics) -> anyhow::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.jsonl)
            .with_context(|| format!("opening {}", self.jsonl.display()))?;
        writeln!(f, "{}", serde_json::to_string(m)?)?;
        self.write_csv(m)
    }

    /// Appends one row to the CSV only (its header is written with the first row).
    pub fn write_csv(&mut self, m: &Metrics) -> anyhow::Result<()> {
        let mut c = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.csv)?;
        if self.columns.is_empty() {
            self.columns = m.keys().cloned().collect();
            writeln!(c, "{}", self.columns.join(","))?;
        }
        let row: Vec<String> = self
            .columns
            .iter()
            .map(|k| m.get(k).map_or(String::new(), |v| format!("{v}")))
            .collect();
        writeln!(c, "{}", row.join(","))?;
        Ok(())
    }
}

/// Reads `metrics.jsonl` back (for plots and resume checks).
pub fn read(dir: &Path) -> anyhow::Result<Vec<Metrics>> {
    let path = dir.join("metrics.jsonl");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{} line {}: invalid metrics row", path.display(), i + 1))
        })
        .collect()
}
