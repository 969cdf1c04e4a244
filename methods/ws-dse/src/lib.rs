#![doc = include_str!("../README.md")]

mod accounting;
mod dse;
mod grid;

pub use accounting::{cr_global, cr_obj, LayerCost};
pub use dse::{min_correct_above, prune, uniform_seeds, Init, SweepEntry, SweepOutcome, WsDse};
pub use grid::k_grid;

use wb_core::{MethodInfo, ParamDefault, ParamError, ParamKind, ParamSpec, Params};

/// Default MLPerf quality factor (heavy models).
pub const DEFAULT_QUALITY: f64 = 0.99;
/// Relaxation factor applied to the quality factor when a layer has no candidate.
pub const RELAX_FACTOR: f64 = 0.9;
/// Default number of relaxations (the reference code's limit).
pub const DEFAULT_RELAXATIONS: i64 = 4;
/// Default NSGA-II population (the paper's code: 100).
pub const DEFAULT_POP_SIZE: i64 = 24;
/// Default NSGA-II generations, the initial population included (the paper's code: 100).
pub const DEFAULT_GENERATIONS: i64 = 30;

pub(crate) const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "quality",
        kind: ParamKind::Float { min: 0.5, max: 1.0 },
        default: Some(ParamDefault::Float(DEFAULT_QUALITY)),
        doc: "MLPerf quality factor: a configuration passes if top-1 > quality x FP32 top-1 \
              on the search subset (0.99 heavy models, 0.98 light ones)",
    },
    ParamSpec {
        name: "relaxations",
        kind: ParamKind::Int { min: 0, max: 50 },
        default: Some(ParamDefault::Int(DEFAULT_RELAXATIONS)),
        doc: "times the quality factor may be multiplied by 0.9 when a layer has no passing k",
    },
    ParamSpec {
        name: "pop_size",
        kind: ParamKind::Int {
            min: 2,
            max: 10_000,
        },
        default: Some(ParamDefault::Int(DEFAULT_POP_SIZE)),
        doc: "NSGA-II population size (paper code: 100)",
    },
    ParamSpec {
        name: "generations",
        kind: ParamKind::Int {
            min: 1,
            max: 10_000,
        },
        default: Some(ParamDefault::Int(DEFAULT_GENERATIONS)),
        doc: "NSGA-II generations, the initial population counting as the first (paper code: 100)",
    },
    ParamSpec {
        name: "sbx_prob",
        kind: ParamKind::Float { min: 0.0, max: 1.0 },
        default: Some(ParamDefault::Float(0.9)),
        doc: "probability that a pair of parents is crossed (integer SBX)",
    },
    ParamSpec {
        name: "sbx_eta",
        kind: ParamKind::Float {
            min: 0.0,
            max: 1000.0,
        },
        default: Some(ParamDefault::Float(30.0)),
        doc: "SBX distribution index (pymoo int_sbx: 30)",
    },
    ParamSpec {
        name: "pm_eta",
        kind: ParamKind::Float {
            min: 0.0,
            max: 1000.0,
        },
        default: Some(ParamDefault::Float(20.0)),
        doc: "polynomial-mutation distribution index (pymoo int_pm: 20; probability 1/layers)",
    },
    ParamSpec {
        name: "k_min",
        kind: ParamKind::Int {
            min: 2,
            max: 65_536,
        },
        default: Some(ParamDefault::Int(2)),
        doc: "smallest k of the layer-sweep grid",
    },
    ParamSpec {
        name: "k_max",
        kind: ParamKind::Int {
            min: 2,
            max: 65_536,
        },
        default: Some(ParamDefault::Int(1024)),
        doc: "largest k of the layer-sweep grid",
    },
    ParamSpec {
        name: "k_points",
        kind: ParamKind::Int {
            min: 1,
            max: 10_000,
        },
        default: Some(ParamDefault::Int(100)),
        doc: "log-spaced grid points before truncation to integers and de-duplication \
              (100 gives the paper's 81 values in [2, 1024])",
    },
    ParamSpec {
        name: "max_iter",
        kind: ParamKind::Int {
            min: 1,
            max: 100_000,
        },
        default: Some(ParamDefault::Int(100)),
        doc: "maximum Lloyd iterations of each 1-D k-means",
    },
    ParamSpec {
        name: "tol",
        kind: ParamKind::Float { min: 0.0, max: 1.0 },
        default: Some(ParamDefault::Float(1e-4)),
        doc: "k-means stops when the sum of squared centroid shifts of one iteration is <= tol",
    },
    ParamSpec {
        name: "init",
        kind: ParamKind::Choice(&["random", "uniform"]),
        default: Some(ParamDefault::Str("random")),
        doc: "NSGA-II first generation: random candidate vectors (the paper's code) or \
              the uniform configurations (one per index bit-width, nearest candidate per \
              layer) followed by random ones (a deviation)",
    },
];

fn build(p: &Params) -> Result<Box<dyn wb_core::Method>, ParamError> {
    let uint = |name: &str| -> Result<usize, ParamError> {
        let v = p.int(name)?;
        usize::try_from(v).map_err(|_| ParamError::new(name, format!("{v} is negative")))
    };
    let m = WsDse {
        quality: p.float("quality")?,
        relaxations: uint("relaxations")?,
        pop_size: uint("pop_size")?,
        generations: uint("generations")?,
        sbx_prob: p.float("sbx_prob")?,
        sbx_eta: p.float("sbx_eta")?,
        pm_eta: p.float("pm_eta")?,
        k_min: uint("k_min")?,
        k_max: uint("k_max")?,
        k_points: uint("k_points")?,
        max_iter: uint("max_iter")?,
        tol: p.float("tol")?,
        init: match p.str("init")? {
            "random" => Init::Random,
            "uniform" => Init::Uniform,
            other => {
                return Err(ParamError::new(
                    "init",
                    format!("`{other}` is not one of \"random\", \"uniform\""),
                ))
            }
        },
    };
    m.check()?;
    Ok(Box::new(m))
}

/// Registry entry of `ws-dse`.
pub const WS_DSE: MethodInfo = MethodInfo {
    id: "ws-dse",
    summary: "per-layer k-means weight sharing, retraining-free heuristic exploration: \
              layer sweep, candidate pruning by the MLPerf quality target, NSGA-II \
              (Dupuis et al., ASP-DAC 2022)",
    params: PARAMS,
    build,
};

/// The methods of this crate, for the runner's registry.
pub fn methods() -> Vec<MethodInfo> {
    vec![WS_DSE]
}
