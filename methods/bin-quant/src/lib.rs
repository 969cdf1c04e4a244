#![doc = include_str!("../README.md")]

mod diag;
mod search;
mod view;

pub use diag::{BinRecord, Diagnostics, LevelStep, SensitivityRecord};
pub use search::{bin_layers, next_levels};

use wb_core::{
    Candidate, Context, Method, MethodError, MethodInfo, Needs, ParamError, Params, WeightSet,
};

/// Method id, as experiment files and result rows name it.
pub const ID: &str = "bin-quant";

wb_core::param_choice! {
    /// How a layer's sensitivity is measured.
    pub enum Sensitivity {
        /// Quantize the layer alone to `probe_levels` shared values and measure the drop
        /// of top-1 on the search subset (reading (a) of the reconstruction).
        Perturbation = "perturbation",
        /// Mean SNIP connection sensitivity `|ḡ·w|` of the layer's weights, from the
        /// gradients on labelled search images (reading (b)).
        Snip = "snip",
        /// Mean gradient magnitude `mean |g|` of the layer's weights (reading (b)).
        Grad = "grad",
        /// Mean squared gradient `mean g²` (Fisher) of the layer's weights (reading (b)).
        Fisher = "fisher",
    }
}

impl Sensitivity {
    /// The per-weight importance a gradient reading averages, `None` for perturbation.
    pub fn importance(self) -> Option<wb_core::Importance> {
        match self {
            Sensitivity::Perturbation => None,
            Sensitivity::Snip => Some(wb_core::Importance::Snip),
            Sensitivity::Grad => Some(wb_core::Importance::Grad),
            Sensitivity::Fisher => Some(wb_core::Importance::Fisher),
        }
    }
}

wb_core::param_choice! {
    /// How a bin's shared values are placed.
    pub enum Levels {
        /// 1-D k-means over the bin's weights (the project's kernel).
        Kmeans = "kmeans",
        /// Uniform bins over the bin's value range, each shared value the mean of its
        /// bin (empty bins dropped, so a bin may use fewer values).
        Uniform = "uniform",
    }
}

wb_core::param_choice! {
    /// How a bin's level count is lowered in the level search.
    pub enum Schedule {
        /// Halve it (64 → 32 → … ; one index bit per step).
        Halve = "halve",
        /// Lower it by one (every count between the initial and the minimum is tried).
        Decrement = "decrement",
    }
}

wb_core::param_choice! {
    /// How layers, sorted by sensitivity, are cut into bins.
    pub enum BinBy {
        /// Bins of about equal numbers of weights.
        Weights = "weights",
        /// Bins of about equal numbers of layers.
        Layers = "layers",
    }
}

wb_core::method_params! {
    /// The `bin-quant` method with its parameters (see the crate documentation). Each
    /// field is declared once here: its doc line, default and range are the parameter's.
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub struct BinQuant {
        /// number of bins B (layers of similar sensitivity share one codebook); at most
        /// the number of compressible layers is used
        pub bins: usize = 4 => int(1, 1024),
        /// how a layer's sensitivity is measured: quantization probes on the search
        /// subset, or the mean of a per-weight gradient importance (snip, grad, fisher)
        pub sensitivity: Sensitivity = Sensitivity::Perturbation => choice,
        /// labelled search images the gradients are taken on (0: the whole search
        /// subset; gradient readings only)
        pub calibration_images: usize = 512 => int(0, 1_000_000),
        /// images per backward pass (1: per-image statistics; gradient readings only)
        pub calibration_batch: usize = 1 => int(1, 65_536),
        /// shared values a layer is quantized to when its perturbation sensitivity is
        /// measured
        pub probe_levels: usize = 4 => int(1, 65_536),
        /// shared values each bin starts the level search with
        pub init_levels: usize = 64 => int(1, 65_536),
        /// fewest shared values a bin may end with (≤ `init_levels`, checked at build)
        pub min_levels: usize = 2 => int(1, 65_536),
        /// accuracy tolerance: top-1 on the search subset may fall at most this many
        /// points below FP32 on the same images
        pub tolerance_pp: f64 = 1.0 => float(0.0, 100.0),
        /// how the shared values of a bin are placed
        pub levels: Levels = Levels::Kmeans => choice,
        /// how the level search lowers a bin's level count
        pub schedule: Schedule = Schedule::Halve => choice,
        /// how the layers, sorted by sensitivity, are cut into bins
        pub bin_by: BinBy = BinBy::Weights => choice,
    }
}

/// Builds the method from checked parameters; `min_levels ≤ init_levels`.
fn build(p: &Params) -> Result<Box<dyn Method>, ParamError> {
    let m = BinQuant::from_params(p)?;
    if m.min_levels > m.init_levels {
        return Err(ParamError::new(
            "min_levels",
            format!(
                "{} is above init_levels = {}; the search can only lower the level count",
                m.min_levels, m.init_levels
            ),
        ));
    }
    Ok(Box::new(m))
}

/// Registry entry of `bin-quant`.
pub const INFO: MethodInfo = MethodInfo {
    id: ID,
    summary: "Bin & Quant: layers binned by sensitivity share one codebook per bin; per-bin \
              level counts lowered within an accuracy tolerance, no retraining \
              (Sakthi et al., arXiv 2210.05111; ICASSP 2020)",
    params: BinQuant::SPECS,
    build,
    view: Some(view::view),
};

/// This crate's registry entries.
pub fn methods() -> Vec<MethodInfo> {
    vec![INFO]
}

impl Method for BinQuant {
    /// The level search (and the perturbation probes) run on the search subset; the
    /// gradient readings take gradients on its labelled images.
    fn needs(&self) -> Needs {
        Needs {
            gradients: self.sensitivity.importance().is_some(),
            ..Needs::EVALUATOR
        }
    }

    /// Sensitivity of every compressible layer, bins of layers by sensitivity, then the
    /// level search: the chosen point is the one candidate (`chosen`).
    fn compress(
        &self,
        weights: &WeightSet,
        ctx: &mut Context<'_>,
    ) -> Result<Vec<Candidate>, MethodError> {
        search::run(self, weights, ctx)
    }
}
