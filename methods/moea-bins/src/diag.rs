//! The diagnostics of a `moea-bins` candidate (its `extra_json`): written by `compress`
//! and read back by the report view with these same types.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The size accounting of one candidate's index coding, in every form the paper, the
/// 2025 code and the container count it (`None`: not finite, or a row that predates
/// the field).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Accounting {
    /// Weights in the model-wide vector.
    pub counted_weights: Option<u64>,
    /// Non-empty bins after merge: the codebook size.
    pub shared_values: Option<u64>,
    /// Average code bits per weight, one Huffman tree for the model.
    pub avg_bits_huffman: Option<f64>,
    /// 32 / `avg_bits_huffman`: the paper's CR (codebook and tree not counted).
    pub cr_paper: Option<f64>,
    /// Index-stream bits with one tree for the model.
    pub huffman_index_bits: Option<u64>,
    /// Index stream + codebook + code table bits.
    pub huffman_total_bits: Option<u64>,
    /// FP32 bits / `huffman_total_bits`.
    pub cr_huffman_counted: Option<f64>,
    /// Average code bits per weight, one tree per layer (the 2025 code's accounting).
    pub avg_bits_huffman_layer: Option<f64>,
    /// 32 / `avg_bits_huffman_layer`.
    pub cr_paper_layer_trees: Option<f64>,
    /// Index-stream bits with one tree per layer.
    pub huffman_layer_index_bits: Option<u64>,
    /// Index streams + codebook + one code table per layer, bits.
    pub huffman_layer_total_bits: Option<u64>,
    /// FP32 bits / `huffman_layer_total_bits`.
    pub cr_huffman_layer_counted: Option<f64>,
    /// ⌈log2 B⌉: fixed-width index bits.
    pub fixed_bits_per_weight: Option<u64>,
    /// Fixed-width indices + codebook, bits.
    pub fixed_total_bits: Option<u64>,
    /// 32 / `fixed_bits_per_weight`.
    pub cr_fixed_paper: Option<f64>,
    /// FP32 bits / `fixed_total_bits`.
    pub cr_fixed_counted: Option<f64>,
    /// Index bits per weight of the artifact as written.
    pub artifact_avg_index_bits: Option<f64>,
    /// The artifact's paper-accounting bits.
    pub artifact_bits_compressed: Option<u64>,
    /// The artifact's paper-accounting CR.
    pub cr_counted: Option<f64>,
    /// Bytes of the whole-model container.
    pub artifact_bytes: Option<u64>,
    /// Bytes of the FP32 model's container.
    pub dense_artifact_bytes: Option<u64>,
    /// `dense_artifact_bytes / artifact_bytes`: the whole-artifact CR.
    pub cr_artifact_bytes: Option<f64>,
}

/// Which of the three index codings a report row reads from [`Accounting`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counting {
    /// Fixed width ⌈log2 B⌉.
    Fixed,
    /// One Huffman tree for the model.
    ModelTree,
    /// One Huffman tree per layer (the 2025 code).
    LayerTrees,
}

impl Accounting {
    /// (average index bits, paper CR) of a coding.
    pub fn bits_and_cr(&self, c: Counting) -> (Option<f64>, Option<f64>) {
        match c {
            Counting::Fixed => (
                self.fixed_bits_per_weight.map(|b| b as f64),
                self.cr_fixed_paper,
            ),
            Counting::ModelTree => (self.avg_bits_huffman, self.cr_paper),
            Counting::LayerTrees => (self.avg_bits_huffman_layer, self.cr_paper_layer_trees),
        }
    }

    /// As a JSON object (for the search log's front records).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("accounting always serializes")
    }
}

/// Everything a candidate carries: its stage of the paper's table, its scores on the
/// search subset, its accounting, and, on the final front, how its merge went.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Diagnostics {
    /// The paper's table row: `random_ub`, `mo_ub`, `mo_ub_merge`, `mo_ub_huffman`,
    /// `mo_ub_merge_huffman`.
    pub stage: String,
    /// k (linspace edges) of the binning.
    pub k: usize,
    /// Non-empty bins before merge.
    pub bins_ub: usize,
    /// Images of the search subset (0 without evaluator).
    pub search_images: usize,
    /// FP32 top-1 count on the search subset.
    pub search_baseline_top1_correct: Option<usize>,
    /// FP32 top-1 error on the search subset.
    pub search_error_baseline: Option<f64>,
    /// This candidate's top-1 count on the search subset.
    pub search_top1_correct: Option<usize>,
    /// This candidate's top-1 error on the search subset.
    pub search_error: Option<f64>,
    /// This candidate's top-1 on the search subset, percent.
    pub search_top1_pct: Option<f64>,
    /// `conv-linear` or `all`.
    pub scope: String,
    /// The size accounting (its keys sit beside these in `extra_json`).
    #[serde(flatten)]
    pub accounting: Accounting,
    /// The artifact's index coding: `huffman-model`, `huffman-layer` or `fixed`.
    pub encoding: String,
    /// Whether the bins were merged (front and stage candidates).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged: Option<bool>,
    /// The merge order used (front candidates; null when not merged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merge_method: Option<Option<String>>,
    /// Top-1 count on the search subset before merge (front candidates).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search_top1_correct_before_merge: Option<usize>,
    /// Search error before merge (front candidates).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search_error_before_merge: Option<f64>,
    /// Search error after merge (front candidates).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search_error_after_merge: Option<f64>,
    /// Evaluations the merge pass spent (front candidates).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merge_evaluations: Option<usize>,
    /// Merges accepted (front candidates).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merges_accepted: Option<usize>,
    /// Whether the merge pass ran to its end (front candidates).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merge_complete: Option<bool>,
    /// The search log, on the first candidate only (see the crate README).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<Value>,
}

impl Diagnostics {
    /// As the JSON of `extra_json`.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("diagnostics always serialize")
    }
}
