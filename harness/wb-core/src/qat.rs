//! Quantization-aware training (QAT): the network trains **latent** full-precision
//! weights while every forward pass uses their quantized image, and the method decides
//! how the gradient with respect to the quantized weights becomes the gradient of the
//! latent ones ([`QatHook`], on plain `f32` slices, so methods stay free of libtorch).
//!
//! The loop itself ([`train`]) is written once, here, over a [`QatBackend`] that only
//! computes losses, gradients and held-out accuracies (libtorch in the torch crate,
//! [`FakeQatBackend`] in unit tests). The optimizers and the learning-rate schedule are
//! plain `f32` arithmetic in this module, so every backend trains the same way.
//!
//! # The contract of [`train`]
//!
//! 1. **Data**: the backend's training pool (the training images minus a seeded,
//!    class-balanced held-out slice of [`QatConfig::holdout_images`]). Each epoch visits
//!    the pool in a seeded Fisher–Yates order (seed, epoch) in batches of `batch` (the
//!    last one may be smaller).
//! 2. **Forward weights**: before every step, [`QatHook::forward`] maps each compressible
//!    tensor's latent weights to the weights the model runs with; every other tensor
//!    (biases, BatchNorm γ/β) is used as it is.
//! 3. **Step**: the backend returns the mean cross-entropy of the batch and its gradient
//!    with respect to every tensor of the forward weights. For compressible tensors
//!    [`QatHook::backward`] turns it into the gradient of the latent weights (identity:
//!    the straight-through estimator). Weight decay adds `weight_decay · w` to every
//!    gradient; the optimizer ([`Optimizer`], SGD with momentum or Adam, both as PyTorch
//!    defines them) updates every latent tensor at the step's learning rate
//!    ([`Schedule`]).
//! 4. **Refresh**: every [`QatConfig::refresh_steps`] steps (0: at the end of every
//!    epoch) [`QatHook::refresh`] receives the latent weights and the statistics of the
//!    forward-weight gradients since the last refresh (mean, mean |g|, mean g² over
//!    steps), e.g. to re-cluster.
//! 5. **Curvature**: when [`QatConfig::curvature_every`] > 0, at the start of epochs 1,
//!    1 + every, …, the backend estimates per compressible tensor the Hessian trace per
//!    weight (Hutchinson, Rademacher probes) and the standard deviation of the gradient on
//!    the first [`QatConfig::curvature_batches`] batches of that epoch, and
//!    [`QatHook::curvature`] receives them (EWGS sets its δ from them).
//! 6. **Choice**: the forward weights of the start (epoch 0) and of every epoch's end
//!    are evaluated on the held-out slice (never on test images), and
//!    [`QatHook::evaluated`] is told the epoch right after its forward weights were
//!    computed, so a method can remember the state that produced them. The outcome
//!    carries the best epoch by held-out top-1 (the earliest on a tie).
//! 7. **BatchNorm** ([`BatchNormMode`]): frozen (the model's running statistics are used
//!    and kept), or trained as PyTorch trains it (batch statistics in the steps, running
//!    statistics updated and used for the held-out evaluation). Running statistics are
//!    buffers, which an artifact does not carry, so with `Train` the best epoch's
//!    weights are returned **folded** ([`QatBackend::fold_batchnorm`]): each layer's γ/β
//!    absorb the change of its statistics, so the returned weights compute the same
//!    function with the model's original statistics.
//!
//! Deterministic for a seed when the backend is (libtorch on the CPU at a fixed thread
//! count is).

use std::time::Instant;

use crate::error::CoreError;
use crate::eval::{Accuracy, EvalError};
use crate::grad::{Gradients, TensorGradients};
use crate::method::Progress;
use crate::weights::{Tensor, WeightSet};

/// The optimizer of the latent weights (PyTorch's definitions, no dampening, no
/// Nesterov, no AMSGrad).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Optimizer {
    /// `v ← μ·v + g; w ← w − lr·v` (plain SGD when `momentum` is 0).
    Sgd {
        /// Momentum μ.
        momentum: f64,
    },
    /// Adam (Kingma & Ba) with bias correction, `eps` added outside the square root.
    Adam {
        /// β₁.
        beta1: f64,
        /// β₂.
        beta2: f64,
        /// ε.
        eps: f64,
    },
}

impl Optimizer {
    /// Adam with PyTorch's defaults (β = (0.9, 0.999), ε = 1e-8).
    pub const ADAM: Optimizer = Optimizer::Adam {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
    };
}

/// The learning rate over the steps of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// `lr` at every step.
    Constant,
    /// Cosine annealing per step to 0: `lr · ½ (1 + cos(π t / T))`, `t` the 0-based step
    /// and `T` the run's total number of steps.
    Cosine,
}

impl Schedule {
    /// Learning rate of step `t` (0-based) of `total`.
    pub fn lr(&self, lr: f64, t: u64, total: u64) -> f64 {
        match self {
            Schedule::Constant => lr,
            Schedule::Cosine if total == 0 => lr,
            Schedule::Cosine => {
                lr * 0.5 * (1.0 + (std::f64::consts::PI * t as f64 / total as f64).cos())
            }
        }
    }
}

/// What BatchNorm does during quantization-aware training (see the module
/// documentation, point 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BatchNormMode {
    /// Evaluation mode throughout: the model's running statistics are used and kept.
    #[default]
    Frozen,
    /// Training mode in the steps (batch statistics; running statistics updated),
    /// evaluation mode for the held-out evaluation; the returned weights are folded.
    Train,
}

/// How to run quantization-aware training.
#[derive(Debug, Clone, PartialEq)]
pub struct QatConfig {
    /// Passes over the training pool (at least 1).
    pub epochs: usize,
    /// Stop after this many steps in total (0: run every epoch to its end).
    pub max_steps: u64,
    /// The optimizer.
    pub optimizer: Optimizer,
    /// Peak learning rate.
    pub lr: f64,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// L2 weight decay added to every gradient (PyTorch's `weight_decay`).
    pub weight_decay: f64,
    /// Images per step.
    pub batch: usize,
    /// Seed of the data order and of the held-out slice.
    pub seed: u64,
    /// Held-out training images that choose the best epoch.
    pub holdout_images: usize,
    /// Steps between refreshes (0: one refresh at the end of every epoch).
    pub refresh_steps: u64,
    /// Epochs between curvature estimates (0: none).
    pub curvature_every: usize,
    /// Batches each curvature estimate reads.
    pub curvature_batches: usize,
    /// What BatchNorm does.
    pub batchnorm: BatchNormMode,
}

impl QatConfig {
    /// Checks the configuration against a pool of `pool` training images.
    ///
    /// # Errors
    /// [`EvalError::Backend`] naming the bad field.
    pub fn check(&self, pool: usize) -> Result<(), EvalError> {
        let bad = |m: String| {
            Err(EvalError::Backend(format!(
                "quantization-aware training: {m}"
            )))
        };
        if self.epochs == 0 {
            return bad("epochs must be at least 1".into());
        }
        if self.batch == 0 || self.batch > pool {
            return bad(format!(
                "batch {} must be between 1 and the {pool} training images",
                self.batch
            ));
        }
        let non_negative = |v: f64| v.is_finite() && v >= 0.0;
        if !non_negative(self.lr) || !non_negative(self.weight_decay) {
            return bad(format!(
                "lr {} and weight_decay {} must be finite and non-negative",
                self.lr, self.weight_decay
            ));
        }
        let ok = match self.optimizer {
            Optimizer::Sgd { momentum } => momentum.is_finite() && (0.0..1.0).contains(&momentum),
            Optimizer::Adam { beta1, beta2, eps } => {
                (0.0..1.0).contains(&beta1) && (0.0..1.0).contains(&beta2) && eps > 0.0
            }
        };
        if !ok {
            return bad(format!("optimizer {:?} out of range", self.optimizer));
        }
        if self.curvature_every > 0 && self.curvature_batches == 0 {
            return bad("curvature_batches must be at least 1 when curvature is estimated".into());
        }
        Ok(())
    }
}

/// A curvature estimate of one compressible tensor (at the forward weights).
#[derive(Debug, Clone, PartialEq)]
pub struct TensorCurvature {
    /// Tensor name.
    pub name: String,
    /// Hutchinson estimate of `tr(H) / numel` of the loss Hessian with respect to the
    /// tensor.
    pub trace_per_weight: f64,
    /// Standard deviation over the tensor's elements of the mean gradient on the
    /// estimate's batches.
    pub grad_std: f64,
}

/// What a quantizing method does inside the training loop (see the module
/// documentation). `i` numbers the compressible tensors in model order.
pub trait QatHook {
    /// Writes the forward weights of compressible tensor `i` from its latent weights.
    fn forward(&mut self, i: usize, latent: &Tensor, out: &mut [f32]) -> Result<(), CoreError>;

    /// Turns `grad`, the gradient with respect to the forward weights `forward`, into
    /// the gradient of the `latent` weights, in place. Default: the identity (the
    /// straight-through estimator).
    fn backward(
        &mut self,
        _i: usize,
        _latent: &[f32],
        _forward: &[f32],
        _grad: &mut [f32],
    ) -> Result<(), CoreError> {
        Ok(())
    }

    /// Periodic refresh with the latent weights and the forward-weight gradient
    /// statistics since the last refresh (one entry per compressible tensor).
    fn refresh(&mut self, _latent: &WeightSet, _grads: &Gradients) -> Result<(), CoreError> {
        Ok(())
    }

    /// Curvature estimates, one per compressible tensor (only when the configuration
    /// asks for them).
    fn curvature(&mut self, _estimates: &[TensorCurvature]) -> Result<(), CoreError> {
        Ok(())
    }

    /// The forward weights of `epoch` (0 = the start) were just computed for the
    /// held-out evaluation.
    fn evaluated(&mut self, _epoch: usize) {}
}

/// The hook of the **lossless control**: forward weights are the latent ones, gradients
/// pass unchanged. With it, [`train`] is plain fine-tuning on the same schedule.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdentityHook;

impl QatHook for IdentityHook {
    fn forward(&mut self, _i: usize, latent: &Tensor, out: &mut [f32]) -> Result<(), CoreError> {
        out.copy_from_slice(&latent.data);
        Ok(())
    }
}

/// What [`train`] needs from a model and its training images.
pub trait QatBackend {
    /// Images in the training pool (the held-out slice excluded); batches index it.
    fn pool(&self) -> usize;

    /// Mean cross-entropy of `batch` (pool positions) at `weights` (every tensor) and its
    /// gradient with respect to every tensor, in weight-set order.
    fn gradient(
        &mut self,
        weights: &WeightSet,
        batch: &[usize],
    ) -> Result<(f64, Vec<Vec<f32>>), EvalError>;

    /// Accuracy of `weights` on the held-out slice.
    fn holdout(&mut self, weights: &WeightSet) -> Result<Accuracy, EvalError>;

    /// Curvature of every compressible tensor at `weights` on `batches`, with Rademacher
    /// probes drawn from `seed`.
    fn curvature(
        &mut self,
        weights: &WeightSet,
        batches: &[&[usize]],
        seed: u64,
    ) -> Result<Vec<TensorCurvature>, EvalError>;

    /// Sets what BatchNorm does for the rest of the run. Default: `Frozen` is accepted,
    /// `Train` is an error (a backend without BatchNorm statistics it can update).
    fn set_batchnorm(&mut self, mode: BatchNormMode) -> Result<(), EvalError> {
        match mode {
            BatchNormMode::Frozen => Ok(()),
            BatchNormMode::Train => Err(EvalError::Backend(
                "this training backend cannot train BatchNorm statistics; use frozen".into(),
            )),
        }
    }

    /// `weights` with the change of the running statistics since the start folded into
    /// each BatchNorm layer's γ/β (they then compute with the original statistics what
    /// they compute now with the current ones). Default: unchanged.
    fn fold_batchnorm(&mut self, weights: &WeightSet) -> Result<WeightSet, EvalError> {
        Ok(weights.clone())
    }
}

/// Loss, held-out accuracy and wall time of one epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QatEpoch {
    /// Epoch, 1-based.
    pub epoch: usize,
    /// Steps taken so far.
    pub steps: u64,
    /// Mean training loss of the epoch's steps (at the forward weights).
    pub train_loss: f64,
    /// Held-out accuracy of the forward weights at the epoch's end.
    pub holdout: Accuracy,
    /// Wall time of the epoch in seconds (training, refresh and held-out evaluation).
    pub wall_s: f64,
}

/// The result of [`train`].
#[derive(Debug, Clone, PartialEq)]
pub struct QatOutcome {
    /// Forward weights of the best epoch (what was evaluated).
    pub forward: WeightSet,
    /// Latent weights of the best epoch.
    pub latent: WeightSet,
    /// Held-out accuracy of the start's forward weights.
    pub start_holdout: Accuracy,
    /// One record per epoch run.
    pub epochs: Vec<QatEpoch>,
    /// The best epoch (0: the start was never beaten).
    pub best_epoch: usize,
    /// Steps taken.
    pub steps: u64,
    /// Refreshes run.
    pub refreshes: u64,
    /// Curvature estimates run.
    pub curvature_estimates: u64,
}

impl QatOutcome {
    /// Held-out accuracy of the returned weights.
    pub fn best_holdout(&self) -> Accuracy {
        match self.best_epoch {
            0 => self.start_holdout,
            e => self.epochs[e - 1].holdout,
        }
    }
}

/// Per-tensor optimizer state.
#[derive(Debug, Clone)]
struct OptState {
    first: Vec<f32>,
    second: Vec<f32>,
}

/// One optimizer step on `w` with gradient `g` (weight decay already added) at step
/// `t` (1-based, for Adam's bias correction).
fn opt_step(opt: &Optimizer, s: &mut OptState, w: &mut [f32], g: &[f32], lr: f64, t: u64) {
    match *opt {
        Optimizer::Sgd { momentum } => {
            let (mu, lr) = (momentum as f32, lr as f32);
            for ((w, g), v) in w.iter_mut().zip(g).zip(s.first.iter_mut()) {
                // PyTorch: the first step's buffer is the gradient itself.
                *v = if t == 1 { *g } else { mu * *v + g };
                *w -= lr * *v;
            }
        }
        Optimizer::Adam { .. } => adam_step(opt, w, g, (&mut s.first, &mut s.second), lr, t),
    }
}

/// One Adam step (PyTorch's form, bias-corrected, `eps` outside the square root) of `w`
/// with gradient `g`, moments `(m, v)` and 1-based step `t`; `opt` must be
/// [`Optimizer::Adam`] (anything else leaves `w` unchanged). Public so that a method can
/// train its own values (e.g. codewords) the way the loop trains weights.
pub fn adam_step(
    opt: &Optimizer,
    w: &mut [f32],
    g: &[f32],
    (m, v): (&mut [f32], &mut [f32]),
    lr: f64,
    t: u64,
) {
    let Optimizer::Adam { beta1, beta2, eps } = *opt else {
        return;
    };
    let bc1 = 1.0 - beta1.powi(t.min(i32::MAX as u64) as i32);
    let bc2 = 1.0 - beta2.powi(t.min(i32::MAX as u64) as i32);
    let step = (lr / bc1) as f32;
    let (b1, b2, eps) = (beta1 as f32, beta2 as f32, eps as f32);
    let sqrt_bc2 = bc2.sqrt() as f32;
    for (((w, g), m), v) in w.iter_mut().zip(g).zip(m).zip(v) {
        *m = b1 * *m + (1.0 - b1) * g;
        *v = b2 * *v + (1.0 - b2) * g * g;
        *w -= step * *m / (v.sqrt() / sqrt_bc2 + eps);
    }
}

/// Running sums of the forward-weight gradients of the compressible tensors.
struct GradAccumulator {
    names: Vec<String>,
    sum: Vec<Vec<f64>>,
    abs: Vec<Vec<f64>>,
    sq: Vec<Vec<f64>>,
    steps: usize,
    images: usize,
    loss: f64,
}

impl GradAccumulator {
    fn new(w: &WeightSet) -> Self {
        let comp: Vec<&Tensor> = w.tensors.iter().filter(|t| t.compressible).collect();
        let zeros = || {
            comp.iter()
                .map(|t| vec![0.0; t.numel()])
                .collect::<Vec<_>>()
        };
        Self {
            names: comp.iter().map(|t| t.name.clone()).collect(),
            sum: zeros(),
            abs: zeros(),
            sq: zeros(),
            steps: 0,
            images: 0,
            loss: 0.0,
        }
    }

    fn add(&mut self, c: usize, g: &[f32]) {
        for (((s, a), q), g) in self.sum[c]
            .iter_mut()
            .zip(self.abs[c].iter_mut())
            .zip(self.sq[c].iter_mut())
            .zip(g)
        {
            let g = *g as f64;
            *s += g;
            *a += g.abs();
            *q += g * g;
        }
    }

    /// The statistics so far, and a reset.
    fn take(&mut self) -> Gradients {
        let n = self.steps.max(1) as f64;
        let mean = |v: &mut Vec<f64>| {
            let out = v.iter().map(|x| (x / n) as f32).collect();
            v.iter_mut().for_each(|x| *x = 0.0);
            out
        };
        let tensors = (0..self.names.len())
            .map(|c| TensorGradients {
                name: self.names[c].clone(),
                mean: mean(&mut self.sum[c]),
                mean_abs: mean(&mut self.abs[c]),
                mean_sq: mean(&mut self.sq[c]),
            })
            .collect();
        let g = Gradients {
            tensors,
            images: self.images,
            batches: self.steps,
            loss: self.loss / n,
        };
        (self.steps, self.images, self.loss) = (0, 0, 0.0);
        g
    }
}

/// Seeded Fisher–Yates shuffle of `idx` for `epoch`.
fn shuffle(idx: &mut [usize], seed: u64, epoch: usize) {
    let mut s = seed ^ 0x0A7_5EED ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for i in (1..idx.len()).rev() {
        let j = (crate::rng::splitmix64(&mut s) % (i as u64 + 1)) as usize;
        idx.swap(i, j);
    }
}

/// The forward weights of `latent` under `hook`.
fn forward_of(latent: &WeightSet, hook: &mut dyn QatHook) -> Result<WeightSet, CoreError> {
    let mut fw = latent.clone();
    let mut c = 0;
    for (t, f) in latent.tensors.iter().zip(fw.tensors.iter_mut()) {
        if t.compressible {
            hook.forward(c, t, &mut f.data)?;
            if let Some(i) = f.data.iter().position(|v| !v.is_finite()) {
                return Err(CoreError::NonFinite {
                    name: t.name.clone(),
                    index: i,
                    value: f.data[i],
                });
            }
            c += 1;
        }
    }
    Ok(fw)
}

/// Runs quantization-aware training from `start` (see the module documentation).
///
/// # Errors
/// A bad configuration, a backend failure, a non-finite loss, gradient or forward
/// weight, or the hook's error.
pub fn train(
    backend: &mut dyn QatBackend,
    start: &WeightSet,
    cfg: &QatConfig,
    hook: &mut dyn QatHook,
    progress: &dyn Progress,
) -> Result<QatOutcome, EvalError> {
    let pool = backend.pool();
    cfg.check(pool)?;
    backend.set_batchnorm(cfg.batchnorm)?;
    let mut latent = start.clone();
    let fw0 = forward_of(&latent, hook)?;
    hook.evaluated(0);
    let start_holdout = backend.holdout(&fw0)?;
    let mut best = (fw0, latent.clone(), start_holdout, 0usize);

    let per_epoch = pool.div_ceil(cfg.batch) as u64;
    let total = match cfg.max_steps {
        0 => cfg.epochs as u64 * per_epoch,
        m => (cfg.epochs as u64 * per_epoch).min(m),
    };
    progress.set_length(total);
    let mut state: Vec<OptState> = latent
        .tensors
        .iter()
        .map(|t| OptState {
            first: vec![0.0; t.numel()],
            second: match cfg.optimizer {
                Optimizer::Adam { .. } => vec![0.0; t.numel()],
                Optimizer::Sgd { .. } => Vec::new(),
            },
        })
        .collect();
    let mut acc = GradAccumulator::new(&latent);
    let mut order: Vec<usize> = (0..pool).collect();
    let (mut steps, mut refreshes, mut curvatures) = (0u64, 0u64, 0u64);
    let mut epochs = Vec::new();
    for epoch in 1..=cfg.epochs {
        if steps >= total {
            break;
        }
        let clock = Instant::now();
        progress.message(&format!(
            "quantization-aware training, epoch {epoch}/{}",
            cfg.epochs
        ));
        shuffle(&mut order, cfg.seed, epoch);
        if cfg.curvature_every > 0 && (epoch - 1) % cfg.curvature_every == 0 {
            let fw = forward_of(&latent, hook)?;
            let batches: Vec<&[usize]> = order
                .chunks(cfg.batch)
                .take(cfg.curvature_batches)
                .collect();
            let seed = cfg.seed ^ (epoch as u64).wrapping_mul(0xC0FF_EE00_D15E_A5E5);
            let c = backend.curvature(&fw, &batches, seed)?;
            hook.curvature(&c)?;
            curvatures += 1;
        }
        let (mut loss_sum, mut n) = (0.0f64, 0u64);
        for chunk in order.chunks(cfg.batch) {
            if steps >= total {
                break;
            }
            let fw = forward_of(&latent, hook)?;
            let (loss, mut grads) = backend.gradient(&fw, chunk)?;
            if !loss.is_finite() {
                return Err(EvalError::Backend(format!(
                    "quantization-aware training diverged: loss {loss} at step {}",
                    steps + 1
                )));
            }
            steps += 1;
            let lr = cfg.schedule.lr(cfg.lr, steps - 1, total);
            let mut c = 0;
            for (j, g) in grads.iter_mut().enumerate() {
                let (lt, ft) = (&latent.tensors[j], &fw.tensors[j]);
                if g.len() != lt.numel() || g.iter().any(|v| !v.is_finite()) {
                    return Err(EvalError::Backend(format!(
                        "gradient of `{}` at step {steps} has {} values (expected {}) or is not finite",
                        lt.name,
                        g.len(),
                        lt.numel()
                    )));
                }
                if lt.compressible {
                    acc.add(c, g);
                    hook.backward(c, &lt.data, &ft.data, g)?;
                    c += 1;
                }
                if cfg.weight_decay > 0.0 {
                    let wd = cfg.weight_decay as f32;
                    g.iter_mut().zip(&lt.data).for_each(|(g, w)| *g += wd * w);
                }
                opt_step(
                    &cfg.optimizer,
                    &mut state[j],
                    &mut latent.tensors[j].data,
                    g,
                    lr,
                    steps,
                );
            }
            acc.steps += 1;
            acc.images += chunk.len();
            acc.loss += loss;
            loss_sum += loss;
            n += 1;
            progress.inc(1);
            if cfg.refresh_steps > 0 && steps % cfg.refresh_steps == 0 {
                hook.refresh(&latent, &acc.take())?;
                refreshes += 1;
            }
        }
        if cfg.refresh_steps == 0 && acc.steps > 0 {
            hook.refresh(&latent, &acc.take())?;
            refreshes += 1;
        }
        let fw = forward_of(&latent, hook)?;
        hook.evaluated(epoch);
        let holdout = backend.holdout(&fw)?;
        epochs.push(QatEpoch {
            epoch,
            steps,
            train_loss: if n > 0 { loss_sum / n as f64 } else { f64::NAN },
            holdout,
            wall_s: clock.elapsed().as_secs_f64(),
        });
        if holdout.top1_correct > best.2.top1_correct {
            // Folded now: the statistics move on with the next epoch's steps.
            let folded = (
                backend.fold_batchnorm(&fw)?,
                backend.fold_batchnorm(&latent)?,
            );
            best = (folded.0, folded.1, holdout, epoch);
        }
    }
    let (forward, latent, _, best_epoch) = best;
    Ok(QatOutcome {
        forward,
        latent,
        start_holdout,
        epochs,
        best_epoch,
        steps,
        refreshes,
        curvature_estimates: curvatures,
    })
}

/// A deterministic stand-in backend for unit tests: the loss is
/// `½ mean (w − target)²` over every weight plus a seeded per-batch perturbation of the
/// gradient, the held-out accuracy that of a [`crate::FakeEvaluator`] with `target` as
/// reference, and the curvature that of that quadratic (trace per weight `1/N`). It
/// has no BatchNorm statistics: [`BatchNormMode::Train`] is accepted (and recorded) and
/// folding changes nothing.
#[derive(Debug, Clone)]
pub struct FakeQatBackend {
    target: WeightSet,
    pool: usize,
    images: usize,
    /// Gradients computed so far.
    pub steps_seen: u64,
    /// The BatchNorm mode the loop set, if any.
    pub batchnorm: Option<BatchNormMode>,
}

impl FakeQatBackend {
    /// A fake pulling toward `target`, with a pool of `pool` images and held-out
    /// accuracies out of `images`.
    pub fn new(target: WeightSet, pool: usize, images: usize) -> Self {
        Self {
            target,
            pool,
            images,
            steps_seen: 0,
            batchnorm: None,
        }
    }
}

impl QatBackend for FakeQatBackend {
    fn pool(&self) -> usize {
        self.pool
    }

    fn gradient(
        &mut self,
        weights: &WeightSet,
        batch: &[usize],
    ) -> Result<(f64, Vec<Vec<f32>>), EvalError> {
        self.steps_seen += 1;
        let mut s = batch
            .iter()
            .fold(0x5EEDu64, |a, i| a.rotate_left(7) ^ *i as u64);
        let n: usize = weights.tensors.iter().map(Tensor::numel).sum();
        let mut loss = 0.0;
        let grads = weights
            .tensors
            .iter()
            .zip(&self.target.tensors)
            .map(|(w, t)| {
                w.data
                    .iter()
                    .zip(&t.data)
                    .map(|(w, t)| {
                        let d = (w - t) as f64;
                        loss += 0.5 * d * d / n as f64;
                        let noise = ((crate::rng::splitmix64(&mut s) >> 11) as f64
                            / (1u64 << 53) as f64
                            - 0.5)
                            * 1e-3;
                        (d + noise) as f32
                    })
                    .collect()
            })
            .collect();
        Ok((loss, grads))
    }

    fn holdout(&mut self, weights: &WeightSet) -> Result<Accuracy, EvalError> {
        use crate::eval::Evaluator;
        crate::eval::FakeEvaluator::new(self.target.clone(), self.images, self.images, 50.0)
            .evaluate(weights)
    }

    fn curvature(
        &mut self,
        weights: &WeightSet,
        _batches: &[&[usize]],
        _seed: u64,
    ) -> Result<Vec<TensorCurvature>, EvalError> {
        let n: usize = weights.tensors.iter().map(Tensor::numel).sum();
        let mut out = Vec::new();
        for (w, t) in weights.tensors.iter().zip(&self.target.tensors) {
            if !w.compressible {
                continue;
            }
            let g: Vec<f64> = w
                .data
                .iter()
                .zip(&t.data)
                .map(|(w, t)| (w - t) as f64)
                .collect();
            let mean = g.iter().sum::<f64>() / g.len().max(1) as f64;
            let var = g.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / g.len().max(1) as f64;
            out.push(TensorCurvature {
                name: w.name.clone(),
                trace_per_weight: 1.0 / n as f64,
                grad_std: var.sqrt(),
            });
        }
        Ok(out)
    }

    fn set_batchnorm(&mut self, mode: BatchNormMode) -> Result<(), EvalError> {
        self.batchnorm = Some(mode);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
