//! Fine-tuning with a projection hook: the [`FineTuner`] trait (implemented with libtorch
//! in the torch crate, and by [`FakeFineTuner`] for unit tests), so that a method can
//! retrain a model while keeping its compressible weights inside the method's format
//! without depending on libtorch.
//!
//! The contract, which every implementation follows:
//!
//! 1. `start` is installed; its held-out accuracy is measured after
//!    [`Projection::finalize`] of every compressible tensor (epoch 0).
//! 2. Each epoch runs over a seeded shuffle of the training images (the training set minus
//!    a fixed, seeded, class-balanced held-out slice of `holdout_images`). After **every**
//!    optimizer step, [`Projection::step`] is applied to every compressible tensor and the
//!    result is what the next step starts from.
//! 3. At the end of each epoch (and when `max_steps` is reached) a copy of the weights is
//!    finalized ([`Projection::finalize`] on every compressible tensor) and evaluated on
//!    the held-out slice; the training itself continues from the un-finalized weights.
//! 4. The outcome's weights are the finalized weights of the best epoch by held-out top-1
//!    (the earliest on a tie, epoch 0 included): never chosen on test images.

use crate::error::CoreError;
use crate::eval::{Accuracy, EvalError};
use crate::method::Progress;
use crate::qat::{FakeQatBackend, QatConfig, QatHook, QatOutcome};
use crate::weights::{Tensor, WeightSet};

/// How to fine-tune.
#[derive(Debug, Clone, PartialEq)]
pub struct FineTuneConfig {
    /// Number of passes over the training images (at least 1).
    pub epochs: usize,
    /// Stop after this many optimizer steps in total (0: run every epoch to its end).
    pub max_steps: u64,
    /// SGD learning rate.
    pub lr: f64,
    /// SGD momentum (0: plain SGD).
    pub momentum: f64,
    /// Images per step.
    pub batch: usize,
    /// Seed of the data order (and of the held-out slice).
    pub seed: u64,
    /// Size of the held-out slice of the training images used to pick the best epoch.
    pub holdout_images: usize,
}

/// What a projection does to one compressible tensor.
pub trait Projection {
    /// Brings the tensor back into the allowed set after an optimizer step.
    fn step(&mut self, t: &mut Tensor) -> Result<(), CoreError>;
    /// Maps the tensor to exactly the values that will be stored (what is evaluated and
    /// returned). Defaults to [`Projection::step`].
    fn finalize(&mut self, t: &mut Tensor) -> Result<(), CoreError> {
        self.step(t)
    }
}

/// Loss and held-out accuracy of one epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochRecord {
    /// Epoch number, 1-based (0 is the start).
    pub epoch: usize,
    /// Optimizer steps taken so far.
    pub steps: u64,
    /// Mean training loss of the epoch's steps.
    pub train_loss: f64,
    /// Held-out accuracy of the finalized weights at the end of the epoch.
    pub holdout: Accuracy,
}

/// The result of a fine-tuning run.
#[derive(Debug, Clone, PartialEq)]
pub struct FineTuneOutcome {
    /// Finalized weights of the best epoch (every tensor of the model).
    pub weights: WeightSet,
    /// Held-out accuracy of the finalized start weights (epoch 0).
    pub start_holdout: Accuracy,
    /// One record per epoch run.
    pub epochs: Vec<EpochRecord>,
    /// The best epoch (0 = the start weights were never beaten).
    pub best_epoch: usize,
    /// Optimizer steps taken in total.
    pub steps: u64,
}

impl FineTuneOutcome {
    /// Held-out accuracy of the returned weights.
    pub fn best_holdout(&self) -> Accuracy {
        if self.best_epoch == 0 {
            self.start_holdout
        } else {
            self.epochs[self.best_epoch - 1].holdout
        }
    }
}

/// Fine-tunes a model with a projection after every optimizer step (see the module doc).
pub trait FineTuner {
    /// Runs the fine-tuning from `start` and returns the best finalized weights.
    fn fine_tune(
        &mut self,
        start: &WeightSet,
        cfg: &FineTuneConfig,
        project: &mut dyn Projection,
        progress: &dyn Progress,
    ) -> Result<FineTuneOutcome, EvalError>;

    /// Quantization-aware training from `start` with `hook` (see [`crate::qat`]: latent
    /// weights, quantized forward weights, the method's gradient transform). The same
    /// call with [`crate::qat::IdentityHook`] is the lossless control's fine-tuning.
    /// Default: an error saying this fine-tuner has none.
    ///
    /// # Errors
    /// As [`crate::qat::train`], or [`EvalError::Backend`] when unsupported.
    fn train_qat(
        &mut self,
        _start: &WeightSet,
        _cfg: &QatConfig,
        _hook: &mut dyn QatHook,
        _progress: &dyn Progress,
    ) -> Result<QatOutcome, EvalError> {
        Err(EvalError::Backend(
            "this fine-tuner does not offer quantization-aware training".into(),
        ))
    }
}

/// Applies `f` to every compressible tensor of `w`.
pub fn project_all(
    w: &mut WeightSet,
    mut f: impl FnMut(&mut Tensor) -> Result<(), CoreError>,
) -> Result<(), CoreError> {
    w.tensors
        .iter_mut()
        .filter(|t| t.compressible)
        .try_for_each(&mut f)
}

/// A deterministic stand-in for a real fine-tuner, for unit tests: each "step" moves every
/// weight a fraction `lr` toward a `target` weight set plus a small seeded perturbation,
/// then calls the projection; the held-out accuracy is that of a
/// [`crate::FakeEvaluator`] with the target as reference. `steps_per_epoch` steps make an
/// epoch.
#[derive(Debug, Clone)]
pub struct FakeFineTuner {
    target: WeightSet,
    steps_per_epoch: u64,
    images: usize,
    /// Optimizer steps taken over all calls.
    pub steps_seen: u64,
    /// Number of `step` projections applied (one per compressible tensor per step).
    pub projections: u64,
}

impl FakeFineTuner {
    /// A fake that pulls weights toward `target`, `steps_per_epoch` steps per epoch,
    /// reporting accuracy out of `images`.
    pub fn new(target: WeightSet, steps_per_epoch: u64, images: usize) -> Self {
        Self {
            target,
            steps_per_epoch,
            images,
            steps_seen: 0,
            projections: 0,
        }
    }

    fn holdout(&self, w: &WeightSet) -> Result<Accuracy, EvalError> {
        use crate::eval::Evaluator;
        let mut ev =
            crate::eval::FakeEvaluator::new(self.target.clone(), self.images, self.images, 50.0);
        ev.evaluate(w)
    }
}

/// A seeded draw in [−0.5, 0.5).
fn splitmix(s: &mut u64) -> f64 {
    (crate::rng::splitmix64(s) >> 11) as f64 / (1u64 << 53) as f64 - 0.5
}

impl FineTuner for FakeFineTuner {
    fn fine_tune(
        &mut self,
        start: &WeightSet,
        cfg: &FineTuneConfig,
        project: &mut dyn Projection,
        progress: &dyn Progress,
    ) -> Result<FineTuneOutcome, EvalError> {
        let finalized = |w: &WeightSet, p: &mut dyn Projection| -> Result<WeightSet, EvalError> {
            let mut f = w.clone();
            project_all(&mut f, |t| p.finalize(t))?;
            Ok(f)
        };
        let mut w = start.clone();
        let best0 = finalized(&w, project)?;
        let start_holdout = self.holdout(&best0)?;
        let (mut best, mut best_acc, mut best_epoch) = (best0, start_holdout, 0);
        let mut epochs = Vec::new();
        let mut steps = 0u64;
        let mut rng = cfg.seed ^ 0xF1_7E;
        progress.set_length(cfg.epochs as u64 * self.steps_per_epoch);
        'outer: for epoch in 1..=cfg.epochs {
            let mut loss = 0.0;
            let mut n = 0;
            for _ in 0..self.steps_per_epoch {
                if cfg.max_steps > 0 && steps >= cfg.max_steps {
                    break;
                }
                for (t, r) in w.tensors.iter_mut().zip(&self.target.tensors) {
                    for (v, target) in t.data.iter_mut().zip(&r.data) {
                        let d = (*target - *v) as f64;
                        loss += d * d;
                        *v += (cfg.lr * d + 1e-3 * cfg.lr * splitmix(&mut rng)) as f32;
                    }
                }
                project_all(&mut w, |t| {
                    self.projections += 1;
                    project.step(t)
                })?;
                steps += 1;
                n += 1;
                self.steps_seen += 1;
                progress.inc(1);
            }
            let f = finalized(&w, project)?;
            let acc = self.holdout(&f)?;
            epochs.push(EpochRecord {
                epoch,
                steps,
                train_loss: if n > 0 { loss / n as f64 } else { f64::NAN },
                holdout: acc,
            });
            if acc.top1_correct > best_acc.top1_correct {
                (best, best_acc, best_epoch) = (f, acc, epoch);
            }
            if cfg.max_steps > 0 && steps >= cfg.max_steps {
                break 'outer;
            }
        }
        Ok(FineTuneOutcome {
            weights: best,
            start_holdout,
            epochs,
            best_epoch,
            steps,
        })
    }

    /// [`crate::qat::train`] over a [`FakeQatBackend`] pulling toward the target, with a
    /// pool of `steps_per_epoch · batch` images.
    fn train_qat(
        &mut self,
        start: &WeightSet,
        cfg: &QatConfig,
        hook: &mut dyn QatHook,
        progress: &dyn Progress,
    ) -> Result<QatOutcome, EvalError> {
        let pool = (self.steps_per_epoch as usize).max(1) * cfg.batch.max(1);
        let mut backend = FakeQatBackend::new(self.target.clone(), pool, self.images);
        let out = crate::qat::train(&mut backend, start, cfg, hook, progress)?;
        self.steps_seen += out.steps;
        Ok(out)
    }
}
