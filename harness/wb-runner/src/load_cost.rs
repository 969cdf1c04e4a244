//! What an artifact costs at load time: reading its container file, decoding it and
//! installing the weights into the ready-to-run libtorch model, timed and with the
//! peak resident memory of that load in a fresh measurement window — beside the same
//! for the FP32 model's own dense container, so a report can say what compression
//! saves (or costs) on disk and at load, apart from inference.

use anyhow::{Context, Result};
use std::path::Path;
use std::time::Instant;
use wb_core::container;
use wb_torch::TorchModel;

/// Loads timed per artifact; the median is reported.
pub const LOAD_REPEATS: usize = 3;

/// The cost of loading one container file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadCost {
    /// Median wall time of read + decode + install (milliseconds).
    pub ms: f64,
    /// Largest rise of the peak resident set over the resident set before the load
    /// (bytes); `None` where the kernel's peak cannot be reset (then a whole-process
    /// peak would hide it) or `/proc` is missing.
    pub peak_rss_bytes: Option<u64>,
}

/// Loads `path` into `model` [`LOAD_REPEATS`] times. The model ends with the file's
/// weights installed.
pub fn measure(path: &Path, model: &mut TorchModel) -> Result<LoadCost> {
    let mut times = Vec::with_capacity(LOAD_REPEATS);
    let mut peak: Option<u64> = None;
    for _ in 0..LOAD_REPEATS {
        // A fresh window: the high-water mark restarts at the current resident set.
        let window = wb_measure::reset_peak();
        let before = wb_measure::current_rss_bytes();
        let t = Instant::now();
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let weights = container::read(&bytes)?.decode()?;
        model.install(&weights)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        let rise = wb_measure::peak_rss_bytes()
            .zip(before)
            .filter(|_| window)
            .map(|(p, b)| p.saturating_sub(b));
        peak = match (peak, rise) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    times.sort_by(f64::total_cmp);
    Ok(LoadCost {
        ms: times[times.len() / 2],
        peak_rss_bytes: peak,
    })
}

/// The load cost of the model's own FP32 weights as a dense container (written to a
/// temporary file that is removed again); the model ends with those weights installed.
pub fn measure_fp32(model: &mut TorchModel) -> Result<LoadCost> {
    let original = model.weights().clone();
    let bytes = container::write(&wb_core::Artifact::dense(&original))?;
    let path = std::env::temp_dir().join(format!(
        "weightbench-fp32-{}-{}.wbc",
        std::process::id(),
        wb_core::io::sanitize_name(&model.card().name)
    ));
    wb_core::io::atomic_write(&path, &bytes)?;
    let cost = measure(&path, model);
    let _ = std::fs::remove_file(&path);
    cost
}
