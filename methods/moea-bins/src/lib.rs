#![doc = include_str!("../README.md")]

mod diag;
mod merge;
mod method;
pub mod view;

pub use diag::{Accounting, Counting, Diagnostics};
pub use merge::{merge_bins, merge_bins_budget, MergeOrder, MergeOutcome, MergeStep};
pub use method::{Coding, Merge, MergeWhich, Mode, MoeaBins, Scope};

use wb_core::{MethodInfo, ParamError, Params};

/// Default lower bound of k (the authors' code: 2).
pub const DEFAULT_LB: usize = 2;
/// Default upper bound of k (the 2025 code: 1024; "Random UB" uses k = ub).
pub const DEFAULT_UB: usize = 1024;
/// Default evaluation budget of the merge phase (not in the paper, whose merge is
/// unbounded: one or two evaluations per bin of every merged solution).
pub const DEFAULT_MERGE_BUDGET: usize = 800;
/// Largest k accepted (the binning kernel's limit).
pub const MAX_K: usize = wb_kernels::binning::MAX_BINS;

fn build(p: &Params) -> Result<Box<dyn wb_core::Method>, ParamError> {
    let m = MoeaBins::from_params(p)?;
    m.check()?;
    Ok(Box::new(m))
}

/// Registry entry of `moea-bins`.
pub const MOEA_BINS: MethodInfo = MethodInfo {
    id: "moea-bins",
    summary: "one model-wide codebook of uniform bins, NSGA-II over the number of bins, greedy \
              merge of neighbouring bins, Huffman-coded indices (Khosrowshahli et al., arXiv \
              2501.03095)",
    params: MoeaBins::SPECS,
    build,
    view: Some(view::view),
};

/// The methods of this crate, for the runner's registry.
pub fn methods() -> Vec<MethodInfo> {
    vec![MOEA_BINS]
}
