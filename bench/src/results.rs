//! The figures of a run, as written to `benchmarks/results.json`. A run with `--only`
//! replaces the scenarios it ran and keeps the others from the file, so one scenario can be
//! run again without repeating the rest; each scenario keeps the commit, scale, time and
//! load average of the run that produced it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::controller::{Cost, Variant};

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Results {
    pub machine: Machine,
    pub versions: Versions,
    pub command: String,
    pub scenarios: BTreeMap<String, Scenario>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    pub cpu_model: String,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Versions {
    pub kreload_commit: String,
    pub reloader: String,
    pub reloader_sha1: String,
    pub kubernetes: String,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Scenario {
    pub started_at: String,
    pub seconds: f64,
    pub scale: f64,
    pub kreload_commit: String,
    /// 1-minute load average: when the scenario started, and the mean and highest of the
    /// samples taken every 5 s while it ran.
    pub load_start: f64,
    pub load_mean: f64,
    pub load_max: f64,
    /// Whether the memory scenario's population was in the cluster.
    pub populated: bool,
    pub figures: Vec<Figure>,
    pub costs: BTreeMap<String, Cost>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Figure {
    pub metric: String,
    pub variant: String,
    pub value: f64,
    pub unit: String,
}

impl Scenario {
    pub fn figure(&mut self, metric: &str, variant: &str, value: f64, unit: &str) {
        if !value.is_finite() {
            self.note(format!(
                "{metric} [{variant}]: no value (nothing was measured)"
            ));
            return;
        }
        println!(
            "  {metric} [{variant}]: {}",
            crate::report::format_value(value, unit)
        );
        self.figures.push(Figure {
            metric: metric.to_owned(),
            variant: variant.to_owned(),
            value,
            unit: unit.to_owned(),
        });
    }

    pub fn cost(&mut self, variant: Variant, cost: &Cost) {
        self.costs
            .entry(variant.key().to_owned())
            .or_default()
            .add(cost);
    }

    pub fn note(&mut self, text: impl Into<String>) {
        let text = text.into();
        println!("  note: {text}");
        self.notes.push(text);
    }

    pub fn get(&self, metric: &str, variant: &str) -> Option<f64> {
        self.figures
            .iter()
            .find(|f| f.metric == metric && f.variant == variant)
            .map(|f| f.value)
    }
}

impl Results {
    /// What `path` holds, or nothing.
    pub fn load(path: &Path) -> Self {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let text = serde_json::to_string_pretty(self).context("serialising the results")?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
    }

    pub fn get(&self, scenario: &str, metric: &str, variant: &str) -> Option<f64> {
        self.scenarios.get(scenario)?.get(metric, variant)
    }
}

/// Samples the 1-minute load average every 5 s in the background.
pub struct LoadSampler {
    samples: Arc<Mutex<Vec<f64>>>,
    task: tokio::task::JoinHandle<()>,
}

impl LoadSampler {
    pub fn start() -> Self {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let shared = samples.clone();
        let task = tokio::spawn(async move {
            loop {
                let load = crate::procfs::loadavg()[0];
                shared
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(load);
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        });
        Self { samples, task }
    }

    /// Mean and highest load since `from` samples were taken; the number taken so far.
    pub fn since(&self, from: usize) -> (f64, f64, usize) {
        let s = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        let tail = &s[from.min(s.len())..];
        let mean = tail.iter().sum::<f64>() / tail.len().max(1) as f64;
        let max = tail.iter().copied().fold(0.0, f64::max);
        (mean, max, s.len())
    }
}

impl Drop for LoadSampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Nearest-rank percentile of `values` (sorted here), in the values' unit.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
