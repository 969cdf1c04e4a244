//! The diagnostics `bin-quant` writes in `extra_json`, as one serde type that the view
//! reads back, so no key is spelled twice.

use serde::{Deserialize, Serialize};

/// Everything the method reports about its choice and its search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnostics {
    /// How layer sensitivity was measured (the `sensitivity` parameter).
    #[serde(default = "perturbation")]
    pub sensitivity: String,
    /// Labelled search images the gradients were taken on (gradient readings only).
    #[serde(default)]
    pub gradient_images: Option<u64>,
    /// Backward passes run for them.
    #[serde(default)]
    pub gradient_batches: Option<u64>,
    /// Images of the search subset.
    pub search_images: u64,
    /// FP32 top-1 on the search subset, percent.
    pub base_top1_search: f64,
    /// Tolerance, percentage points below `base_top1_search`.
    pub tolerance_pp: f64,
    /// Fewest correct search images a point must keep (FP32's count minus the
    /// tolerance, rounded up).
    pub target_correct_search: u64,
    /// Top-1 of the chosen point on the search subset, percent.
    pub chosen_top1_search: f64,
    /// Whether the chosen point keeps the tolerance on the search subset (false only
    /// when even `init_levels` everywhere misses it).
    pub met_on_search: bool,
    /// Average index bits per compressible weight (fixed width).
    pub avg_index_bits: f64,
    /// The bins, least sensitive first.
    pub bins: Vec<BinRecord>,
    /// Accuracy evaluations the method asked for (cache misses) and cache hits.
    pub evaluations: u64,
    /// Evaluations answered from the cache.
    pub cache_hits: u64,
    /// The search's full path.
    pub search: SearchLog,
}

/// One bin: its layers, their sensitivity and the chosen level count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BinRecord {
    /// Bin number (0 = least sensitive).
    pub bin: usize,
    /// Its layers, in model order.
    pub layers: Vec<String>,
    /// Weights in the bin.
    pub weights: u64,
    /// Mean sensitivity score of its layers (top-1 points lost on the search subset for
    /// the perturbation reading, mean importance for a gradient reading).
    #[serde(alias = "sensitivity_mean_pp")]
    pub sensitivity_mean: f64,
    /// Level count the search ended with.
    pub levels: usize,
    /// Entries of the bin's codebook (≤ `levels`: uniform levels drop empty bins).
    pub shared_values: usize,
}

/// The search log (each array becomes a Parquet table of the run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchLog {
    /// One record per compressible layer.
    pub sensitivity: Vec<SensitivityRecord>,
    /// One record per level count tried.
    pub levels: Vec<LevelStep>,
}

/// The sensitivity probe of one layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensitivityRecord {
    /// Layer (tensor) name.
    pub layer: String,
    /// Its weights.
    pub weights: u64,
    /// The score the layers were sorted by: `drop_pp` for the perturbation reading, the
    /// mean per-weight importance of the layer for a gradient reading.
    #[serde(default)]
    pub score: Option<f64>,
    /// Top-1 on the search subset with this layer alone quantized, percent
    /// (perturbation reading only).
    pub top1_search: Option<f64>,
    /// Points lost against FP32 on the same images (perturbation reading only).
    pub drop_pp: Option<f64>,
    /// Bin the layer was put in.
    pub bin: usize,
}

/// One question of the level search: does `levels` for `bin` (others as they stand)
/// keep the tolerance?
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelStep {
    /// Step number.
    pub step: usize,
    /// Bin whose level count was lowered.
    pub bin: usize,
    /// The level count tried.
    pub levels: usize,
    /// Whether the tolerance held (then the count was kept).
    pub reached: bool,
    /// Correct images seen before the answer was certain.
    pub top1_correct_seen: u64,
    /// Images evaluated for the answer (fewer than the subset when it stopped early).
    pub seen: u64,
}

impl SensitivityRecord {
    /// The score the binning used (rows written before `score` existed carry only the
    /// perturbation drop).
    pub fn value(&self) -> f64 {
        self.score.or(self.drop_pp).unwrap_or(f64::NAN)
    }
}

fn perturbation() -> String {
    "perturbation".into()
}
