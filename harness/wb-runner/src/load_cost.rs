//! What an artifact costs at load time: reading its container file, decoding it and
//! installing the weights into the ready-to-run libtorch model, timed and with the
//! peak resident memory of that load in a fresh measurement window — beside the same
//! for the FP32 model's own dense container, loaded alternately with it so that both see
//! the same machine, so a report can say what compression saves (or costs) on disk and
//! at load, apart from inference.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;
use wb_core::container;
use wb_torch::TorchModel;

/// Loads timed per file (alternating artifact and FP32); the medians are reported.
pub const LOAD_REPEATS: usize = 3;

/// The cost of loading one container file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadCost {
    /// Median wall time of read + decode + install (milliseconds).
    pub ms: f64,
    /// Largest rise of the peak resident set over the resident set before the load
    /// (bytes), after free heap memory was returned to the kernel; `None` where the
    /// kernel's peak cannot be reset (then a whole-process peak would hide it) or
    /// `/proc` is missing.
    pub peak_rss_bytes: Option<u64>,
}

/// The FP32 weights of a model as a dense container in a temporary file, removed when
/// this is dropped.
#[derive(Debug)]
pub struct Fp32File {
    path: PathBuf,
}

impl Fp32File {
    /// Writes the model's original weights (as loaded) to a temporary file.
    pub fn write(model: &TorchModel) -> Result<Self> {
        let bytes = container::write(&wb_core::Artifact::dense(model.weights()))?;
        let path = std::env::temp_dir().join(format!(
            "weightbench-fp32-{}-{}.wbc",
            std::process::id(),
            wb_core::io::sanitize_name(&model.card().name)
        ));
        wb_core::io::atomic_write(&path, &bytes)?;
        Ok(Self { path })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Fp32File {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One load of `path` into `model`: the time and the rise of the peak resident set.
fn load_once(path: &Path, model: &mut TorchModel) -> Result<(f64, Option<u64>)> {
    // A fresh window: free heap memory goes back to the kernel first (the tuned
    // allocator keeps it, and a load that reused it would look free), then the
    // high-water mark restarts at the current resident set.
    wb_torch::release_free_memory();
    let window = wb_measure::reset_peak();
    let before = wb_measure::current_rss_bytes();
    let t = Instant::now();
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let weights = container::read(&bytes)?.decode()?;
    model.install(&weights)?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let rise = wb_measure::peak_rss_bytes()
        .zip(before)
        .filter(|_| window)
        .map(|(p, b)| p.saturating_sub(b));
    Ok((ms, rise))
}

fn summarise(samples: &[(f64, Option<u64>)]) -> LoadCost {
    let mut times: Vec<f64> = samples.iter().map(|s| s.0).collect();
    times.sort_by(f64::total_cmp);
    LoadCost {
        ms: times[times.len() / 2],
        peak_rss_bytes: samples.iter().filter_map(|s| s.1).max(),
    }
}

/// Loads `artifact` and `fp32` alternately [`LOAD_REPEATS`] times each into `model`;
/// returns (artifact, FP32). The model ends with the artifact's weights installed.
pub fn measure_pair(
    artifact: &Path,
    fp32: &Fp32File,
    model: &mut TorchModel,
) -> Result<(LoadCost, LoadCost)> {
    let (mut a, mut f) = (Vec::new(), Vec::new());
    for _ in 0..LOAD_REPEATS {
        f.push(load_once(fp32.path(), model)?);
        a.push(load_once(artifact, model)?);
    }
    Ok((summarise(&a), summarise(&f)))
}
