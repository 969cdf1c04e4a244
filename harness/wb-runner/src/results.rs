//! Result rows (the schema of the results tables) and their storage: one Parquet file per
//! cell under `results/<experiment>/cells/`, written atomically, never overwritten.

use anyhow::{Context as _, Result};
use polars::prelude::*;
use std::path::{Path, PathBuf};

/// One row of the results table. Units are in the names; `None` is NULL (with the reason
/// in a companion column where one exists, e.g. `energy_source`).
#[derive(Debug, Clone, Default)]
#[allow(missing_docs)]
pub struct Row {
    pub experiment: String,
    pub cell_id: String,
    pub model: String,
    pub dataset: String,
    pub eval_split: String,
    pub eval_images: u64,
    pub method: String,
    pub params_json: String,
    /// The parameters set in the experiment file (defaults left out), for labels.
    pub params_label: String,
    pub seed: u64,
    pub candidate: String,
    /// `ok` or `failed`.
    pub status: String,
    pub error: Option<String>,
    /// Top-1 accuracy in percent.
    pub top1: Option<f64>,
    /// Top-5 accuracy in percent.
    pub top5: Option<f64>,
    pub top1_correct: Option<u64>,
    /// FP32 top-1 of the same model on the same split, percent.
    pub top1_baseline: Option<f64>,
    pub top1_delta_pp: Option<f64>,
    pub counted_params: Option<u64>,
    pub bits_baseline: Option<u64>,
    pub bits_compressed: Option<u64>,
    pub compression_ratio: Option<f64>,
    pub memory_saving_pct: Option<f64>,
    pub artifact_bytes: Option<u64>,
    /// Container header bytes (file header, per-tensor headers, checksum).
    pub artifact_bytes_header: Option<u64>,
    /// Codebook / table bytes (local and shared).
    pub artifact_bytes_codebooks: Option<u64>,
    /// Packed index bytes.
    pub artifact_bytes_indices: Option<u64>,
    /// Dense value bytes (f32/bf16/f16/int8).
    pub artifact_bytes_values: Option<u64>,
    /// Per-channel scale bytes.
    pub artifact_bytes_scales: Option<u64>,
    pub artifact_sha256: Option<String>,
    pub model_bytes_fp32: Option<u64>,
    pub latency_ms_b1_median: Option<f64>,
    pub latency_ms_b1_ci_low: Option<f64>,
    pub latency_ms_b1_ci_high: Option<f64>,
    pub latency_ms_b1_p90: Option<f64>,
    pub latency_ms_b1_p99: Option<f64>,
    pub latency_ms_bn_median: Option<f64>,
    pub latency_ms_bn_ci_low: Option<f64>,
    pub latency_ms_bn_ci_high: Option<f64>,
    pub throughput_batch: Option<u64>,
    pub throughput_img_s: Option<f64>,
    pub timed_path: Option<String>,
    /// Batch-1 median latency on libtorch's native BF16 kernels (BF16-exact artifacts).
    pub latency_ms_b1_median_bf16: Option<f64>,
    /// Throughput-batch median latency on the native BF16 path.
    pub latency_ms_bn_median_bf16: Option<f64>,
    /// Images per second on the native BF16 path.
    pub throughput_img_s_bf16: Option<f64>,
    /// Whether the native BF16 timings met the validity rules.
    pub timing_valid_bf16: Option<bool>,
    pub timing_valid: Option<bool>,
    pub timing_invalid_reasons: Option<String>,
    pub decode_ms: Option<f64>,
    pub energy_j_per_img: Option<f64>,
    pub energy_j_per_img_net: Option<f64>,
    /// DRAM energy per image, idle-subtracted (never added to the package figure).
    pub energy_dram_j_per_img_net: Option<f64>,
    /// Package idle power measured before the window.
    pub energy_idle_w: Option<f64>,
    /// Length of the energy window.
    pub energy_window_s: Option<f64>,
    /// Counter wrap-arounds seen during the window.
    pub energy_wraps: Option<u64>,
    pub energy_source: String,
    pub compress_s: Option<f64>,
    pub search_evaluations: Option<u64>,
    pub peak_rss_bytes: Option<u64>,
    pub weights_in_memory_bytes: Option<u64>,
    pub device: String,
    pub harness_version: String,
    pub git_sha: String,
    pub manifest_id: String,
    pub host: String,
    pub threads: u64,
    pub timestamp: String,
    pub extra_json: String,
}

macro_rules! columns {
    ($rows:expr; $($field:ident),* $(,)?) => {
        vec![$(Column::new(stringify!($field).into(), $rows.iter().map(|r| r.$field.clone()).collect::<Vec<_>>())),*]
    };
}

/// The rows as a Polars frame with the schema documented in the README.
pub fn to_frame(rows: &[Row]) -> Result<DataFrame> {
    let cols = columns!(rows;
        experiment, cell_id, model, dataset, eval_split, eval_images, method, params_json, params_label, seed,
        candidate, status, error, top1, top5, top1_correct, top1_baseline, top1_delta_pp,
        counted_params, bits_baseline, bits_compressed, compression_ratio, memory_saving_pct,
        artifact_bytes, artifact_bytes_header, artifact_bytes_codebooks, artifact_bytes_indices,
        artifact_bytes_values, artifact_bytes_scales, artifact_sha256, model_bytes_fp32,
        latency_ms_b1_median, latency_ms_b1_ci_low, latency_ms_b1_ci_high, latency_ms_b1_p90,
        latency_ms_b1_p99, latency_ms_bn_median, latency_ms_bn_ci_low, latency_ms_bn_ci_high,
        throughput_batch, throughput_img_s, timed_path, latency_ms_b1_median_bf16,
        latency_ms_bn_median_bf16, throughput_img_s_bf16, timing_valid_bf16, timing_valid, timing_invalid_reasons,
        decode_ms, energy_j_per_img, energy_j_per_img_net, energy_dram_j_per_img_net, energy_idle_w,
        energy_window_s, energy_wraps, energy_source, compress_s,
        search_evaluations, peak_rss_bytes, weights_in_memory_bytes, device, harness_version,
        git_sha, manifest_id, host, threads, timestamp, extra_json,
    );
    Ok(DataFrame::new(rows.len(), cols)?)
}

/// Where an experiment's results live.
#[derive(Debug, Clone)]
pub struct ResultsDir {
    /// `results/<experiment>`.
    pub root: PathBuf,
}

impl ResultsDir {
    /// `results_root/<name>`.
    pub fn new(results_root: &Path, name: &str) -> Self {
        Self {
            root: results_root.join(name),
        }
    }
    /// `cells/`: one Parquet file per finished cell.
    pub fn cells(&self) -> PathBuf {
        self.root.join("cells")
    }
    /// The file of one cell.
    pub fn cell_file(&self, cell_id: &str) -> PathBuf {
        self.cells().join(format!("{cell_id}.parquet"))
    }
    /// `artifacts/<cell_id>/`: the container files of a cell.
    pub fn artifacts(&self, cell_id: &str) -> PathBuf {
        self.root.join("artifacts").join(cell_id)
    }

    /// Whether the cell has a complete result file.
    pub fn is_done(&self, cell_id: &str) -> bool {
        self.cell_file(cell_id).is_file()
    }

    /// Whether the finished cell has at least one `failed` row.
    pub fn has_failed_rows(&self, cell_id: &str) -> Result<bool> {
        let p = self.cell_file(cell_id);
        let f = std::fs::File::open(&p).with_context(|| format!("opening {}", p.display()))?;
        let df = ParquetReader::new(f)
            .finish()
            .map_err(anyhow::Error::from)
            .with_context(|| format!("reading {}", p.display()))?;
        let status = df.column("status").map_err(anyhow::Error::from)?;
        let failed = status
            .str()
            .map_err(anyhow::Error::from)?
            .iter()
            .any(|s| s != Some("ok"));
        Ok(failed)
    }

    /// Removes temporary files a killed run left behind (they hold no finished result).
    pub fn clean_partial(&self) -> Result<usize> {
        let mut n = 0;
        for dir in [
            self.cells(),
            self.root.join("samples"),
            self.root.join("layers"),
            self.root.join("search"),
        ] {
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if wb_core::io::is_temporary(&name) {
                    std::fs::remove_file(e.path()).with_context(|| {
                        format!("removing stale temporary file {}", e.path().display())
                    })?;
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    /// Moves an existing result of `cell_id` (and its artifacts) into
    /// `superseded/<stamp>/` so that `--force` never destroys a finished result.
    pub fn supersede(&self, cell_id: &str, stamp: &str) -> Result<()> {
        let dest = self.root.join("superseded").join(stamp);
        let mut moves = vec![
            (self.cell_file(cell_id), "cells"),
            (self.artifacts(cell_id), "artifacts"),
        ];
        // Per-candidate side tables are named `<cell_id>__<candidate>.parquet`.
        for sub in ["samples", "layers", "search"] {
            if let Ok(rd) = std::fs::read_dir(self.root.join(sub)) {
                let prefix = format!("{cell_id}__");
                for e in rd.flatten() {
                    if e.file_name().to_string_lossy().starts_with(&prefix) {
                        moves.push((e.path(), sub));
                    }
                }
            }
        }
        for (src, sub) in moves {
            if src.exists() {
                let d = dest.join(sub);
                std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
                let target = d.join(src.file_name().expect("cell paths have file names"));
                std::fs::rename(&src, &target)
                    .with_context(|| format!("moving {} to {}", src.display(), target.display()))?;
            }
        }
        Ok(())
    }
}

/// Writes `df` to `path` atomically: a hidden temporary file in the same directory,
/// fsync, then rename — a reader (or a resumed run) sees the whole file or none.
pub fn write_parquet_atomic(df: &mut DataFrame, path: &Path) -> Result<()> {
    wb_core::io::atomic_write_with(path, false, |tmp| -> Result<()> {
        let f = std::fs::File::create(tmp)?;
        ParquetWriter::new(&f).finish(df)?;
        f.sync_all()?;
        Ok(())
    })
    .with_context(|| format!("writing {}", path.display()))
}

/// Reads every finished cell of an experiment into one frame (diagonal concat).
pub fn read_all(dir: &ResultsDir) -> Result<DataFrame> {
    let mut frames = Vec::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir.cells())
        .with_context(|| format!("reading {}", dir.cells().display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension().and_then(|x| x.to_str()) == Some("parquet")
                && !p
                    .file_name()
                    .and_then(|s| s.to_str())
                    .unwrap_or(".")
                    .starts_with('.')
        })
        .collect();
    paths.sort();
    for p in paths {
        let f = std::fs::File::open(&p).with_context(|| format!("opening {}", p.display()))?;
        frames.push(
            ParquetReader::new(f)
                .finish()
                .map_err(anyhow::Error::from)
                .with_context(|| format!("reading {}", p.display()))?,
        );
    }
    anyhow::ensure!(
        !frames.is_empty(),
        "no results in {}",
        dir.cells().display()
    );
    Ok(polars::functions::concat_df_diagonal(&frames)?)
}
