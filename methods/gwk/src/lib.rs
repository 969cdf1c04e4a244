#![doc = include_str!("../README.md")]

mod ewgs;
mod hook;
mod view;

pub use ewgs::{delta_from_curvature, scale as ewgs_scale};
pub use hook::{GwkHook, HookConfig, Layer};

use std::collections::BTreeMap;

use half::f16;
use serde_json::{json, Value};
use wb_core::qat::{
    BatchNormMode, IdentityHook, Optimizer as QatOptimizer, QatConfig, QatOutcome, Schedule,
};
use wb_core::{
    Artifact, Candidate, Context, EncodedTensor, Encoding, Method, MethodError, MethodInfo, Needs,
    ParamError, Params, Pq, PqCodewords, WeightSet,
};

/// Method id, as experiment files and result rows name it.
pub const ID: &str = "gwk";

wb_core::param_choice! {
    /// The importance that weighs each member of a cluster when its codeword is updated.
    pub enum Importance {
        /// Mean gradient magnitude `mean |g|` since the last re-clustering (the default
        /// reading of "uses the gradients").
        Grad = "grad",
        /// Mean squared gradient `mean g²` (Fisher-like).
        Fisher = "fisher",
        /// `|ḡ · w|` (SNIP-like).
        Snip = "snip",
        /// No weighting: plain k-means (the ablation without gradient weighting).
        None = "none",
    }
}

wb_core::param_choice! {
    /// How EWGS's δ is set.
    pub enum DeltaMode {
        /// Per layer from a Hessian-trace estimate, refreshed every `curvature_every`
        /// epochs (EWGS's rule).
        Hessian = "hessian",
        /// The fixed `delta` for every layer.
        Fixed = "fixed",
        /// δ = 0: the straight-through estimator (the ablation without EWGS).
        Off = "off",
    }
}

wb_core::param_choice! {
    /// Precision of the stored codewords.
    pub enum CodewordPrecision {
        /// IEEE half.
        F16 = "f16",
        /// FP32.
        F32 = "f32",
    }
}

wb_core::param_choice! {
    /// Which compressible layers stay at full precision (trained, stored FP32, counted).
    pub enum Keep {
        /// None: every compressible layer is product-quantized.
        None = "none",
        /// The first and the last compressible layer (the stem convolution and the
        /// classifier).
        FirstLast = "first-last",
    }
}

wb_core::param_choice! {
    /// The optimizer of the latent weights.
    pub enum OptimizerKind {
        /// Adam (β = 0.9, 0.999; ε = 1e-8), as EWGS trains.
        Adam = "adam",
        /// SGD with `momentum`.
        Sgd = "sgd",
    }
}

wb_core::param_choice! {
    /// The learning-rate schedule.
    pub enum LrSchedule {
        /// Cosine annealing to 0 over the run's steps.
        Cosine = "cosine",
        /// The same rate at every step.
        Constant = "constant",
    }
}

wb_core::param_choice! {
    /// What BatchNorm does during the training.
    pub enum BatchNorm {
        /// Training mode, as PyTorch (and EWGS) train: batch statistics in the steps,
        /// running statistics updated, their change folded into the stored γ/β.
        Train = "train",
        /// Evaluation mode throughout: the pretrained running statistics.
        Frozen = "frozen",
    }
}

wb_core::method_params! {
    /// The `gwk` method with its parameters (see the crate documentation).
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub struct Gwk {
        /// sub-vector dimension d (consecutive row-major values: 9 = one 3×3 kernel)
        pub dim: usize = 8 => int(1, 64),
        /// codewords per layer (at most the layer's sub-vectors are used); indices take
        /// ⌈log2 k⌉ bits per sub-vector
        pub k: usize = 64 => int(1, 65_536),
        /// precision of the stored codewords
        pub codewords: CodewordPrecision = CodewordPrecision::F16 => choice,
        /// importance of the re-clustering's weighted mean (none: plain k-means)
        pub importance: Importance = Importance::Grad => choice,
        /// how EWGS's δ is set (off: the straight-through estimator)
        pub ewgs: DeltaMode = DeltaMode::Hessian => choice,
        /// δ when `ewgs = fixed`
        pub delta: f64 = 1e-3 => float(0.0, 1000.0),
        /// compressible layers kept at full precision (counted)
        pub keep: Keep = Keep::None => choice,
        /// false: the lossless control (the same training with the identity hook)
        pub quantize: bool = true => flag,
        /// passes over the training images
        pub epochs: usize = 2 => int(1, 10_000),
        /// step cap over all epochs (0: whole epochs)
        pub max_steps: u64 = 0 => int(0, 100_000_000),
        /// optimizer of the latent weights
        pub optimizer: OptimizerKind = OptimizerKind::Adam => choice,
        /// peak learning rate
        pub lr: f64 = 1e-3 => float(1e-9, 10.0),
        /// SGD momentum (`optimizer = sgd` only)
        pub momentum: f64 = 0.9 => float(0.0, 0.999),
        /// L2 weight decay on every parameter
        pub weight_decay: f64 = 1e-4 => float(0.0, 1.0),
        /// learning-rate schedule
        pub schedule: LrSchedule = LrSchedule::Cosine => choice,
        /// images per step
        pub batch: usize = 128 => int(1, 65_536),
        /// held-out training images that choose the best epoch
        pub holdout: usize = 1000 => int(1, 1_000_000),
        /// steps between gradient-weighted re-clusterings (0: at every epoch's end)
        pub recluster_every: u64 = 100 => int(0, 100_000_000),
        /// Lloyd iterations per clustering
        pub kmeans_iter: usize = 20 => int(1, 10_000),
        /// learning rate of the codewords themselves (Adam on their members' summed
        /// gradient, every step; 0: codewords move only when re-clustered)
        pub codeword_lr: f64 = 0.0 => float(0.0, 10.0),
        /// epochs between EWGS curvature estimates (`ewgs = hessian`)
        pub curvature_every: usize = 1 => int(1, 10_000),
        /// batches per curvature estimate
        pub curvature_batches: usize = 3 => int(1, 1000),
        /// BatchNorm during training (train: batch statistics, folded into γ/β)
        pub batchnorm: BatchNorm = BatchNorm::Train => choice,
    }
}

/// Builds the method from checked parameters.
fn build(p: &Params) -> Result<Box<dyn Method>, ParamError> {
    let m = Gwk::from_params(p)?;
    if m.max_steps > 0 && m.max_steps < m.epochs as u64 && m.epochs > 1 {
        return Err(ParamError::new(
            "max_steps",
            format!(
                "{} steps cannot reach {} epochs; lower epochs or raise max_steps",
                m.max_steps, m.epochs
            ),
        ));
    }
    Ok(Box::new(m))
}

/// Registry entry of `gwk`.
pub const INFO: MethodInfo = MethodInfo {
    id: ID,
    summary: "GWK: product quantization with gradient-weighted k-means re-clustering and EWGS \
              quantization-aware fine-tuning (Sakthi et al., arXiv 2210.05111; reconstruction)",
    params: Gwk::SPECS,
    build,
    view: Some(view::view),
};

/// This crate's registry entries.
pub fn methods() -> Vec<MethodInfo> {
    vec![INFO]
}

impl Gwk {
    /// The training configuration shared by every point and its control.
    pub fn qat_config(&self, seed: u64) -> QatConfig {
        QatConfig {
            epochs: self.epochs,
            max_steps: self.max_steps,
            optimizer: match self.optimizer {
                OptimizerKind::Adam => QatOptimizer::ADAM,
                OptimizerKind::Sgd => QatOptimizer::Sgd {
                    momentum: self.momentum,
                },
            },
            lr: self.lr,
            schedule: match self.schedule {
                LrSchedule::Cosine => Schedule::Cosine,
                LrSchedule::Constant => Schedule::Constant,
            },
            weight_decay: self.weight_decay,
            batch: self.batch,
            seed,
            holdout_images: self.holdout,
            refresh_steps: self.recluster_every,
            curvature_every: if self.quantize && self.ewgs == DeltaMode::Hessian {
                self.curvature_every
            } else {
                0
            },
            curvature_batches: self.curvature_batches,
            batchnorm: match self.batchnorm {
                BatchNorm::Train => BatchNormMode::Train,
                BatchNorm::Frozen => BatchNormMode::Frozen,
            },
        }
    }

    /// Which compressible tensors stay at full precision.
    fn kept(&self, weights: &WeightSet) -> Vec<bool> {
        let n = weights.tensors.iter().filter(|t| t.compressible).count();
        (0..n)
            .map(|i| self.keep == Keep::FirstLast && (i == 0 || i + 1 == n))
            .collect()
    }

    /// The artifact of the best epoch: PQ of every quantized layer from the hook's
    /// snapshot, every other tensor FP32; checked to decode to the evaluated weights.
    fn artifact(&self, hook: &GwkHook, out: &QatOutcome) -> Result<Artifact, MethodError> {
        let snap = hook.snapshots.get(&out.best_epoch).ok_or_else(|| {
            MethodError::Other(format!("no quantizer snapshot of epoch {}", out.best_epoch))
        })?;
        let mut layers = hook.layers.iter().zip(snap);
        let mut tensors = Vec::new();
        for t in &out.forward.tensors {
            if !t.compressible {
                tensors.push(EncodedTensor::dense(t));
                continue;
            }
            let (l, (words, labels)) = layers
                .next()
                .ok_or_else(|| MethodError::Other("fewer quantizer layers than tensors".into()))?;
            if l.kept {
                tensors.push(EncodedTensor::dense(t));
                continue;
            }
            let codewords = match self.codewords {
                CodewordPrecision::F32 => PqCodewords::F32(words.clone()),
                CodewordPrecision::F16 => {
                    PqCodewords::F16(words.iter().map(|w| f16::from_f32(*w).to_bits()).collect())
                }
            };
            let pq = Pq::fixed(self.dim as u32, codewords, labels.clone(), t.numel());
            tensors.push(EncodedTensor::with(t, Encoding::ProductQuantized(pq)));
        }
        let artifact = Artifact {
            tensors,
            ..Default::default()
        };
        if !artifact.decode()?.bit_identical(&out.forward) {
            return Err(MethodError::Other(
                "the PQ artifact does not decode to the evaluated forward weights".into(),
            ));
        }
        Ok(artifact)
    }
}

/// Per-epoch training records as diagnostics (no wall times: a candidate is a function
/// of the seed; the harness times the cell).
fn epochs_json(out: &QatOutcome) -> Value {
    out.epochs
        .iter()
        .map(|e| {
            json!({
                "epoch": e.epoch,
                "steps": e.steps,
                "train_loss": e.train_loss,
                "holdout_top1": e.holdout.top1_pct(),
            })
        })
        .collect()
}

impl Method for Gwk {
    fn needs(&self) -> Needs {
        Needs {
            trainer: true,
            ..Needs::NONE
        }
    }

    fn compress(
        &self,
        weights: &WeightSet,
        ctx: &mut Context<'_>,
    ) -> Result<Vec<Candidate>, MethodError> {
        let seed = ctx.seed;
        let cfg = self.qat_config(seed);
        let progress = ctx.progress;
        let trainer = ctx.require_trainer(ID)?;
        let common = |out: &QatOutcome| {
            json!({
                "best_epoch": out.best_epoch,
                "start_holdout_top1": out.start_holdout.top1_pct(),
                "best_holdout_top1": out.best_holdout().top1_pct(),
                "holdout_images": out.start_holdout.total,
                "steps": out.steps,
                "epochs": epochs_json(out),
            })
        };
        if !self.quantize {
            let out = trainer.train_qat(weights, &cfg, &mut IdentityHook, progress)?;
            let artifact = Artifact {
                tensors: out
                    .forward
                    .tensors
                    .iter()
                    .map(EncodedTensor::dense)
                    .collect(),
                ..Default::default()
            };
            let mut extra = common(&out);
            extra["control"] = json!(true);
            return Ok(vec![Candidate::chosen("control", artifact, extra)]);
        }
        let hook_cfg = HookConfig {
            dim: self.dim,
            k: self.k,
            precision: self.codewords,
            importance: self.importance,
            delta_mode: self.ewgs,
            delta: self.delta,
            kmeans_iter: self.kmeans_iter,
            seed,
            codeword_lr: self.codeword_lr,
        };
        let mut hook = GwkHook::new(weights, &self.kept(weights), hook_cfg)?;
        let out = trainer.train_qat(weights, &cfg, &mut hook, progress)?;
        let artifact = self.artifact(&hook, &out)?;
        let mut extra = common(&out);
        extra["refreshes"] = json!(hook.refreshes);
        extra["curvature_estimates"] = json!(out.curvature_estimates);
        extra["deltas"] = json!(hook.deltas);
        extra["layers"] = hook
            .layers
            .iter()
            .map(|l| {
                json!({
                    "name": l.name,
                    "kept": l.kept,
                    "k": l.codewords.len() / self.dim,
                    "delta": l.delta,
                })
            })
            .collect();
        Ok(vec![Candidate::chosen(
            format!("d{}-k{}", self.dim, self.k),
            artifact,
            extra,
        )])
    }

    /// A quantizing configuration's control: the same schedule with the identity hook
    /// (`quantize = false`); every (d, k) of one schedule shares one control cell.
    fn control(&self) -> Option<BTreeMap<String, Value>> {
        if !self.quantize {
            return None;
        }
        let d = Gwk::default();
        let mut p = BTreeMap::new();
        p.insert("quantize".into(), json!(false));
        macro_rules! same {
            ($($f:ident),*) => {$(
                if self.$f != d.$f {
                    p.insert(stringify!($f).into(), wb_core::params::ParamType::to_value(&self.$f));
                }
            )*};
        }
        same!(
            epochs,
            max_steps,
            optimizer,
            lr,
            momentum,
            weight_decay,
            schedule,
            batch,
            holdout,
            batchnorm
        );
        Some(p)
    }
}
