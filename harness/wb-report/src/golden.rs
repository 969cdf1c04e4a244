//! Golden numbers: a versioned reference table of key results with tolerances, and the
//! check that the current results still match it (`weightbench check-golden`).
//!
//! The table lives next to its experiment, `experiments/golden/<name>.toml`:
//!
//! ```toml
//! [tolerance]
//! top1_pp = 0.05                 # |Δ top-1| allowed, percentage points
//! compression_ratio_rel = 1e-9   # relative change of the compression ratio allowed
//!
//! [[result]]
//! model = "resnet20"
//! dataset = "cifar10-jpeg75"
//! method = "kmeans-uniform"
//! params = "k=16"                # as in the report's `params` column (`-` for none)
//! seed = 0
//! candidate = "default"          # as in the report's `candidate` column
//! top1 = 80.4125
//! compression_ratio = 7.9386
//! ```
//!
//! The results come from `results/<name>/cells/` when it exists, else from the report's
//! committed CSV (`reports/<name>/<name>.csv`), so a fresh clone can be checked too.

use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::ReportError;

/// Allowed drift.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tolerance {
    /// Largest allowed |top-1 change|, percentage points.
    pub top1_pp: f64,
    /// Largest allowed relative change of the compression ratio.
    pub compression_ratio_rel: f64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance {
            top1_pp: 0.05,
            compression_ratio_rel: 1e-9,
        }
    }
}

/// One reference result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoldenResult {
    /// Model name.
    pub model: String,
    /// Dataset id.
    pub dataset: String,
    /// Method id.
    pub method: String,
    /// The parameters as the report shows them (`k=16`, `-` for none).
    pub params: String,
    /// Seed of the cell.
    pub seed: i64,
    /// The candidate as the report shows it (`default`, `p03`, `default [huffman-tensor]`).
    pub candidate: String,
    /// Top-1 on the reported images, percent.
    pub top1: f64,
    /// The paper accounting's compression ratio.
    pub compression_ratio: f64,
}

impl GoldenResult {
    fn name(&self) -> String {
        format!(
            "{} {} {} [{}] seed {} {}",
            self.model, self.dataset, self.method, self.params, self.seed, self.candidate
        )
    }
}

/// A golden file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Golden {
    /// Allowed drift.
    #[serde(default)]
    pub tolerance: Tolerance,
    /// The reference results.
    #[serde(default, rename = "result")]
    pub results: Vec<GoldenResult>,
}

/// The outcome of a check: every golden result that moved or is missing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GoldenCheck {
    /// Golden results checked.
    pub checked: usize,
    /// One line per result that drifted beyond the tolerance or has no current value.
    pub problems: Vec<String>,
    /// Where the current values came from.
    pub source: PathBuf,
}

impl GoldenCheck {
    /// Whether every golden result matched.
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Reads a golden file; a TOML error names the file and line.
///
/// # Errors
/// [`ReportError::Io`] when the file cannot be read, [`ReportError::Golden`] when it is
/// not a golden table.
pub fn read_golden(path: &Path) -> Result<Golden, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        ReportError::Golden {
            path: path.to_path_buf(),
            message: match line {
                Some(l) => format!("line {l}: {}", e.message().trim_end()),
                None => e.message().trim_end().to_string(),
            },
        }
    })
}

/// The current results as the report's tidy table: from the cells when there are any,
/// else from the committed CSV.
///
/// # Errors
/// Neither source exists or can be read.
pub fn current_results(
    results_dir: &Path,
    csv: &Path,
) -> Result<(DataFrame, PathBuf), ReportError> {
    if crate::load::cell_files(results_dir).is_ok_and(|f| !f.is_empty()) {
        let (loaded, _) = crate::load::load(results_dir)?;
        let table_err = |source| ReportError::Table {
            path: results_dir.to_path_buf(),
            source,
        };
        let ok = crate::load::select_sorted(&loaded.frame, true, "").map_err(table_err)?;
        let rows = crate::load::rows(&ok).map_err(table_err)?;
        let tidy = crate::load::tidy(&ok, &rows).map_err(table_err)?;
        return Ok((tidy, results_dir.join("cells")));
    }
    let df = CsvReadOptions::default()
        .with_has_header(true)
        .try_into_reader_with_file_path(Some(csv.to_path_buf()))
        .and_then(|r| r.finish())
        .map_err(|source| ReportError::Parquet {
            path: csv.to_path_buf(),
            source,
        })?;
    Ok((df, csv.to_path_buf()))
}

/// One current value per golden key.
struct Current {
    key: Vec<String>,
    top1: Option<f64>,
    ratio: Option<f64>,
}

fn current_values(df: &DataFrame) -> PolarsResult<Vec<Current>> {
    let s = |n: &str| -> PolarsResult<Vec<String>> {
        Ok(df
            .column(n)?
            .cast(&DataType::String)?
            .str()?
            .iter()
            .map(|v| v.unwrap_or("").to_string())
            .collect())
    };
    let f = |n: &str| -> PolarsResult<Vec<Option<f64>>> {
        Ok(df
            .column(n)?
            .cast(&DataType::Float64)?
            .f64()?
            .iter()
            .collect())
    };
    let (model, dataset, method, params, seed, cand) = (
        s("model")?,
        s("dataset")?,
        s("method")?,
        s("params")?,
        s("seed")?,
        s("candidate")?,
    );
    let (top1, ratio) = (f("top1")?, f("compression_ratio")?);
    Ok((0..df.height())
        .map(|i| Current {
            key: vec![
                model[i].clone(),
                dataset[i].clone(),
                method[i].clone(),
                params[i].clone(),
                seed[i].clone(),
                cand[i].clone(),
            ],
            top1: top1[i],
            ratio: ratio[i],
        })
        .collect())
}

/// Compares the golden results with the current ones.
///
/// # Errors
/// The current table lacks a needed column.
pub fn check(
    golden: &Golden,
    current: &DataFrame,
    source: &Path,
) -> Result<GoldenCheck, ReportError> {
    let values = current_values(current).map_err(|source_err| ReportError::Table {
        path: source.to_path_buf(),
        source: source_err,
    })?;
    let tol = golden.tolerance;
    let mut problems = Vec::new();
    for g in &golden.results {
        let key = vec![
            g.model.clone(),
            g.dataset.clone(),
            g.method.clone(),
            g.params.clone(),
            g.seed.to_string(),
            g.candidate.clone(),
        ];
        let Some(c) = values.iter().find(|c| c.key == key) else {
            problems.push(format!("{}: no current result", g.name()));
            continue;
        };
        match c.top1 {
            Some(t) if (t - g.top1).abs() <= tol.top1_pp => {}
            other => problems.push(format!(
                "{}: top-1 {} → {} (tolerance ±{} pp)",
                g.name(),
                g.top1,
                other.map_or("none".into(), |v| format!("{v}")),
                tol.top1_pp
            )),
        }
        match c.ratio {
            Some(r)
                if (r - g.compression_ratio).abs()
                    <= tol.compression_ratio_rel * g.compression_ratio.abs() => {}
            other => problems.push(format!(
                "{}: compression ratio {} → {} (tolerance ±{} relative)",
                g.name(),
                g.compression_ratio,
                other.map_or("none".into(), |v| format!("{v}")),
                tol.compression_ratio_rel
            )),
        }
    }
    Ok(GoldenCheck {
        checked: golden.results.len(),
        problems,
        source: source.to_path_buf(),
    })
}

/// A golden table of every current row that is a method's own choice (or, in results
/// written before the `chosen` column, every row), with the default tolerance: the
/// starting point of a new golden file, reviewed before it is committed.
///
/// # Errors
/// The current table lacks a needed column.
pub fn from_current(current: &DataFrame, source: &Path) -> Result<Golden, ReportError> {
    let err = |e| ReportError::Table {
        path: source.to_path_buf(),
        source: e,
    };
    let values = current_values(current).map_err(err)?;
    let chosen: Vec<Option<bool>> = match current.column("chosen") {
        Ok(c) => c
            .cast(&DataType::Boolean)
            .map_err(err)?
            .bool()
            .map_err(err)?
            .iter()
            .collect(),
        Err(_) => vec![None; current.height()],
    };
    let results = values
        .iter()
        .zip(chosen)
        .filter(|(_, ch)| *ch != Some(false))
        .filter_map(|(c, _)| {
            Some(GoldenResult {
                model: c.key[0].clone(),
                dataset: c.key[1].clone(),
                method: c.key[2].clone(),
                params: c.key[3].clone(),
                seed: c.key[4].parse().ok()?,
                candidate: c.key[5].clone(),
                top1: c.top1?,
                compression_ratio: c.ratio?,
            })
        })
        .collect();
    Ok(Golden {
        tolerance: Tolerance::default(),
        results,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn current() -> DataFrame {
        df!(
            "model" => ["resnet20", "resnet20"],
            "dataset" => ["cifar10-jpeg75", "cifar10-jpeg75"],
            "method" => ["kmeans-uniform", "fp32"],
            "params" => ["k=16", "-"],
            "seed" => [0i64, 0],
            "candidate" => ["default", "default"],
            "top1" => [80.4125, 81.0125],
            "compression_ratio" => [7.9386, 1.0],
            "chosen" => [true, true],
        )
        .unwrap()
    }

    #[test]
    fn a_golden_table_written_from_the_results_passes_and_an_edit_fails() {
        let src = Path::new("results/x/cells");
        let golden = from_current(&current(), src).unwrap();
        assert_eq!(golden.results.len(), 2);
        let text = toml::to_string(&golden).unwrap();
        let parsed: Golden = toml::from_str(&text).unwrap();
        assert!(check(&parsed, &current(), src).unwrap().passed());

        let mut edited = parsed.clone();
        edited.results[0].top1 += 0.2;
        let out = check(&edited, &current(), src).unwrap();
        assert_eq!(out.problems.len(), 1);
        assert!(
            out.problems[0].starts_with(
                "resnet20 cifar10-jpeg75 kmeans-uniform [k=16] seed 0 default: top-1 80.6125 → 80.4125"
            ),
            "{:?}",
            out.problems
        );

        let mut ratio = parsed.clone();
        ratio.results[1].compression_ratio = 1.01;
        let out = check(&ratio, &current(), src).unwrap();
        assert!(out.problems[0].contains("fp32 [-] seed 0 default: compression ratio 1.01 → 1"));

        let mut missing = parsed;
        missing.results[1].seed = 3;
        let out = check(&missing, &current(), src).unwrap();
        assert!(out.problems[0].ends_with("seed 3 default: no current result"));
    }

    /// The must-show on the shipped files: the committed `compare-all` golden table
    /// matches the committed report CSV (what a fresh clone checks), and editing one
    /// golden value makes the check fail on that result alone.
    #[test]
    fn the_committed_compare_all_golden_table_matches_the_committed_report() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let golden = read_golden(&root.join("experiments/golden/compare-all.toml")).unwrap();
        let csv = root.join("reports/compare-all/compare-all.csv");
        let (current, src) = current_results(&root.join("no-such-results-dir"), &csv).unwrap();
        let out = check(&golden, &current, &src).unwrap();
        assert!(out.passed(), "{:?}", out.problems);
        assert!(out.checked > 200, "only {} golden results", out.checked);

        let mut edited = golden.clone();
        let last = edited.results.len() - 1;
        edited.results[last].top1 += 0.1;
        let out = check(&edited, &current, &src).unwrap();
        assert_eq!(out.problems.len(), 1, "{:?}", out.problems);
        assert!(out.problems[0].starts_with(&edited.results[last].name()));
    }

    #[test]
    fn a_malformed_golden_file_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.golden.toml");
        std::fs::write(&p, "[tolerance]\ntop1_pp = 0.05\n\n[[result]]\nmodel = 3\n").unwrap();
        let e = read_golden(&p).unwrap_err().to_string();
        assert!(e.contains("x.golden.toml") && e.contains("line 5"), "{e}");
    }
}
