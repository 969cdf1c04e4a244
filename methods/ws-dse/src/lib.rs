#![doc = include_str!("../README.md")]

mod accel;
mod accounting;
mod dse;
mod grid;
pub mod view;

pub use accel::{ScreenLog, AUDIT_EVERY, SURROGATE_MARGIN_PCT};
pub use accounting::{cr_global, cr_obj, LayerCost};
pub use dse::{
    min_correct_above, prune, uniform_seeds, Diagnostics, GenerationRecord, Init, SweepEntry,
    SweepOutcome, WsDse,
};
pub use grid::k_grid;

use wb_core::{MethodInfo, ParamError, Params};

/// Default MLPerf quality factor (heavy models).
pub const DEFAULT_QUALITY: f64 = 0.99;
/// Relaxation factor applied to the quality factor when a layer has no candidate.
pub const RELAX_FACTOR: f64 = 0.9;
/// Default number of relaxations (the reference code's limit).
pub const DEFAULT_RELAXATIONS: usize = 4;
/// Default NSGA-II population (the paper's code: 100).
pub const DEFAULT_POP_SIZE: usize = 24;
/// Default NSGA-II generations, the initial population included (the paper's code: 100).
pub const DEFAULT_GENERATIONS: usize = 30;

fn build(p: &Params) -> Result<Box<dyn wb_core::Method>, ParamError> {
    let m = WsDse::from_params(p)?;
    m.check()?;
    Ok(Box::new(m))
}

/// Registry entry of `ws-dse`.
pub const WS_DSE: MethodInfo = MethodInfo {
    id: "ws-dse",
    summary: "per-layer k-means weight sharing, retraining-free heuristic exploration: \
              layer sweep, candidate pruning by the MLPerf quality target, NSGA-II \
              (Dupuis et al., ASP-DAC 2022)",
    params: WsDse::SPECS,
    build,
    view: Some(view::view),
};

/// The methods of this crate, for the runner's registry.
pub fn methods() -> Vec<MethodInfo> {
    vec![WS_DSE]
}
