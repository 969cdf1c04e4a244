#![doc = include_str!("../README.md")]

mod merge;
mod method;

pub use merge::{merge_bins, merge_bins_budget, MergeOrder, MergeOutcome, MergeStep};
pub use method::{Coding, MergeWhich, Mode, MoeaBins, Scope};

use wb_core::{MethodInfo, ParamDefault, ParamError, ParamKind, ParamSpec, Params};

/// Default lower bound of k (the authors' code: 2).
pub const DEFAULT_LB: i64 = 2;
/// Default upper bound of k (the 2025 code: 1024; "Random UB" uses k = ub).
pub const DEFAULT_UB: i64 = 1024;
/// Default evaluation budget of the merge phase (not in the paper, whose merge is
/// unbounded: one or two evaluations per bin of every merged solution).
pub const DEFAULT_MERGE_BUDGET: i64 = 800;
/// Largest k accepted (the binning kernel's limit).
pub const MAX_K: i64 = wb_kernels::binning::MAX_BINS as i64;

pub(crate) const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "mode",
        kind: ParamKind::Choice(&["moea", "random-ub"]),
        default: Some(ParamDefault::Str("moea")),
        doc: "moea: NSGA-II over k, then merge; random-ub: uniform binning at k = ub only \
              (the paper's \"Random UB\" row, no search)",
    },
    ParamSpec {
        name: "scope",
        kind: ParamKind::Choice(&["conv-linear", "all"]),
        default: Some(ParamDefault::Str("conv-linear")),
        doc: "conv-linear: the tensors the harness marks compressible (model card; conv and \
              linear weights by default, the 2025 code); all: every parameter tensor (the 2024 \
              code's trainable parameters incl. biases and BatchNorm affine)",
    },
    ParamSpec {
        name: "lb",
        kind: ParamKind::Int { min: 1, max: MAX_K },
        default: Some(ParamDefault::Int(DEFAULT_LB)),
        doc: "smallest k (number of linspace edges) searched",
    },
    ParamSpec {
        name: "ub",
        kind: ParamKind::Int { min: 1, max: MAX_K },
        default: Some(ParamDefault::Int(DEFAULT_UB)),
        doc: "largest k searched (lb <= ub, checked); also the k of random-ub",
    },
    ParamSpec {
        name: "pop_size",
        kind: ParamKind::Int {
            min: 2,
            max: 10_000,
        },
        default: Some(ParamDefault::Int(100)),
        doc:
            "NSGA-II population, initialised with linspace(lb, ub, pop_size) truncated to integers",
    },
    ParamSpec {
        name: "generations",
        kind: ParamKind::Int {
            min: 1,
            max: 10_000,
        },
        default: Some(ParamDefault::Int(100)),
        doc: "NSGA-II generations, the initial population counting as the first",
    },
    ParamSpec {
        name: "sbx_prob",
        kind: ParamKind::Float { min: 0.0, max: 1.0 },
        default: Some(ParamDefault::Float(0.9)),
        doc: "probability that a pair of parents is crossed (SBX)",
    },
    ParamSpec {
        name: "sbx_eta",
        kind: ParamKind::Float {
            min: 0.0,
            max: 1000.0,
        },
        default: Some(ParamDefault::Float(15.0)),
        doc: "SBX distribution index (pymoo 0.6 default: 15)",
    },
    ParamSpec {
        name: "pm_eta",
        kind: ParamKind::Float {
            min: 0.0,
            max: 1000.0,
        },
        default: Some(ParamDefault::Float(20.0)),
        doc: "polynomial-mutation distribution index (pymoo 0.6 default: 20)",
    },
    ParamSpec {
        name: "pm_prob",
        kind: ParamKind::Float { min: 0.0, max: 1.0 },
        default: Some(ParamDefault::Float(0.5)),
        doc:
            "probability that k is mutated (pymoo 0.6 PM: min(0.5, 1/n_var) = 0.5 for one variable)",
    },
    ParamSpec {
        name: "merge",
        kind: ParamKind::Choice(&["left_to_right", "center_to_end", "none"]),
        default: Some(ParamDefault::Str("left_to_right")),
        doc: "greedy merge of neighbouring bins on the qualifying front solutions",
    },
    ParamSpec {
        name: "merge_which",
        kind: ParamKind::Choice(&["not_worse", "better", "all"]),
        default: Some(ParamDefault::Str("not_worse")),
        doc: "front solutions merged: search error <= FP32 error (not_worse), < (better, the \
              2024 code) or every one (all)",
    },
    ParamSpec {
        name: "merge_budget",
        kind: ParamKind::Int {
            min: 0,
            max: 1_000_000,
        },
        default: Some(ParamDefault::Int(DEFAULT_MERGE_BUDGET)),
        doc: "most evaluations the merge phase may spend, over all merged solutions (fewest \
              bins first); a pass cut by it keeps its accepted merges and says merge_complete \
              = false (the paper sets no bound)",
    },
    ParamSpec {
        name: "huffman",
        kind: ParamKind::Choice(&["model", "layer", "none"]),
        default: Some(ParamDefault::Str("model")),
        doc: "index coding of the artifact: one Huffman tree for the model, one per layer, or \
              none (fixed width ceil(log2 B) bits)",
    },
    ParamSpec {
        name: "emit_stages",
        kind: ParamKind::Bool,
        default: Some(ParamDefault::Bool(false)),
        doc: "also emit the paper's table rows as candidates: random-ub, ub-pNN (qualifying front before \
              merge, fixed width), merge-pNN (merged, fixed width)",
    },
];

fn build(p: &Params) -> Result<Box<dyn wb_core::Method>, ParamError> {
    Ok(Box::new(MoeaBins::from_params(p)?))
}

/// Registry entry of `moea-bins`.
pub const MOEA_BINS: MethodInfo = MethodInfo {
    id: "moea-bins",
    summary: "one model-wide codebook of uniform bins, NSGA-II over the number of bins, greedy \
              merge of neighbouring bins, Huffman-coded indices (Khosrowshahli et al., arXiv \
              2501.03095)",
    params: PARAMS,
    build,
};

/// The methods of this crate, for the runner's registry.
pub fn methods() -> Vec<MethodInfo> {
    vec![MOEA_BINS]
}
