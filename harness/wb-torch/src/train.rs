//! Fine-tuning with a projection hook ([`wb_core::FineTuner`]) on libtorch.
//!
//! [`TorchFineTuner`] owns its **own** copy of the model (a second [`TorchModel`] loaded
//! from the same card), so it can train while the runner's evaluator holds the model that
//! measures accuracy, and the training never touches the weights or buffers of that one.
//!
//! What one run does (the contract of [`wb_core::train`]):
//!
//! - **Data**: the training images (`cifar10-train-jpeg75`) minus a seeded, class-balanced
//!   held-out slice of `holdout_images` ([`crate::data::balanced_subset`] with the run's
//!   seed). Each epoch visits the rest in a seeded Fisher–Yates order (seed and epoch
//!   number), in batches of `batch` (the last one may be smaller). No augmentation: the
//!   images are prepared as the card says, as for evaluation.
//! - **Model**: every parameter is trained (compressible weights, biases and BatchNorm
//!   γ/β). The module stays in **evaluation mode**: BatchNorm uses and keeps its running
//!   statistics. They are buffers, not parameters, so the artifact could not carry updated
//!   statistics; freezing them keeps the fine-tuned weights consistent with the buffers the
//!   evaluation uses.
//! - **Step**: cross-entropy on the logits, backward, then plain SGD
//!   `v ← μ·v + g; p ← p − lr·v` (μ = `momentum`, no weight decay) under `no_grad`; then
//!   every compressible parameter is copied to the host, passed through
//!   [`Projection::step`] and copied back.
//! - **Epoch end** (or when `max_steps` is reached): a copy of the weights is finalized
//!   ([`Projection::finalize`]), installed and evaluated on the held-out slice; training
//!   goes on from the un-finalized weights. The finalized weights of the best epoch (ties:
//!   the earliest, epoch 0 = the start) are returned.
//!
//! Deterministic on the CPU for a fixed thread count (the data order depends only on the
//! seed); CUDA kernels may not be bit-reproducible.

use std::path::PathBuf;

use tch::{Device, Kind, Tensor};
use wb_core::train::project_all;
use wb_core::{
    Accuracy, EpochRecord, EvalError, FineTuneConfig, FineTuneOutcome, FineTuner, Progress,
    Projection, Tensor as WTensor, WeightSet,
};

use crate::card::ModelCard;
use crate::data::{Images, Split};
use crate::error::{Result, TorchError};
use crate::eval::{Batches, TorchEvaluator};
use crate::model::{tensor_to_vec, TorchModel};

/// The dataset fine-tuning reads when it loads its own data.
pub const TRAIN_DATASET: &str = "cifar10-train-jpeg75";

/// Batch size of the held-out evaluations (no effect on results).
pub(crate) const EVAL_BATCH: usize = 500;

enum State {
    Lazy {
        card: Box<ModelCard>,
        device: Device,
        data_dir: PathBuf,
    },
    Ready {
        model: Box<TorchModel>,
        train: Images,
    },
}

/// A libtorch [`FineTuner`] (see the module documentation).
pub struct TorchFineTuner {
    state: State,
}

impl std::fmt::Debug for TorchFineTuner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.state {
            State::Lazy { card, device, .. } => f
                .debug_struct("TorchFineTuner")
                .field("model", &card.name)
                .field("device", device)
                .field("loaded", &false)
                .finish(),
            State::Ready { model, train } => f
                .debug_struct("TorchFineTuner")
                .field("model", model)
                .field("train_images", &train.len())
                .finish(),
        }
    }
}

impl TorchFineTuner {
    /// A fine-tuner over `model` (its own instance: load a second one with
    /// [`TorchModel::load`]) and the training images `train`.
    pub fn new(model: TorchModel, train: Images) -> Self {
        Self {
            state: State::Ready {
                model: Box::new(model),
                train,
            },
        }
    }

    /// A fine-tuner that loads its own copy of the card's model on `device` and the
    /// [`TRAIN_DATASET`] images from `data_dir` on its first use, so that a runner can
    /// offer one to every cell and only methods that retrain pay for it.
    pub fn lazy(card: ModelCard, device: Device, data_dir: PathBuf) -> Self {
        Self {
            state: State::Lazy {
                card: Box::new(card),
                device,
                data_dir,
            },
        }
    }

    fn ready(&mut self) -> Result<(&mut TorchModel, &Images)> {
        if let State::Lazy {
            card,
            device,
            data_dir,
        } = &self.state
        {
            let model = TorchModel::load(card, *device)?;
            let train = crate::data::dataset(TRAIN_DATASET)?.load(data_dir)?;
            self.state = State::Ready {
                model: Box::new(model),
                train,
            };
        }
        match &mut self.state {
            State::Ready { model, train } => Ok((model.as_mut(), &*train)),
            State::Lazy { .. } => unreachable!("loaded above"),
        }
    }
}

/// Seeded Fisher–Yates shuffle of `idx` for `epoch`.
fn shuffle(idx: &mut [usize], seed: u64, epoch: usize) {
    // The same generator as the data splits: the order depends only on the seed.
    use crate::data::splitmix64;
    let mut s = seed ^ 0x7A1E_5EED ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for i in (1..idx.len()).rev() {
        let j = (splitmix64(&mut s) % (i as u64 + 1)) as usize;
        idx.swap(i, j);
    }
}

fn check_config(cfg: &FineTuneConfig, images: usize) -> Result<(), EvalError> {
    let bad = |m: String| Err(EvalError::Backend(format!("fine-tuning: {m}")));
    if cfg.epochs == 0 {
        return bad("epochs must be at least 1".into());
    }
    if cfg.batch == 0 {
        return bad("batch must be at least 1".into());
    }
    if !(cfg.lr.is_finite() && cfg.lr >= 0.0 && cfg.momentum.is_finite() && cfg.momentum >= 0.0) {
        return bad(format!(
            "lr {} and momentum {} must be finite and non-negative",
            cfg.lr, cfg.momentum
        ));
    }
    if cfg.holdout_images == 0 || cfg.holdout_images + cfg.batch > images {
        return bad(format!(
            "a held-out slice of {} images and batches of {} do not fit in {images} training images",
            cfg.holdout_images, cfg.batch
        ));
    }
    Ok(())
}

/// Copies `w` (host) into parameter `p` of shape `shape` under `no_grad`.
fn copy_into(p: &Tensor, w: &[f32], device: Device) -> Result<()> {
    let src = Tensor::from_slice(w)
        .view(p.size().as_slice())
        .to_device(device);
    tch::no_grad(|| -> Result<()> {
        let mut p = p.shallow_clone();
        p.f_copy_(&src)?;
        Ok(())
    })
}

/// One SGD step (with momentum when `cfg.momentum > 0`) on every parameter that has a
/// gradient, without recording it for autograd.
fn sgd_step(
    handles: &[(String, Tensor)],
    velocity: &mut [Option<Tensor>],
    cfg: &FineTuneConfig,
) -> Result<(), TorchError> {
    tch::no_grad(|| -> Result<(), TorchError> {
        for ((_, p), v) in handles.iter().zip(velocity.iter_mut()) {
            let g = p.f_grad()?;
            if !g.defined() {
                continue;
            }
            let dir = if cfg.momentum > 0.0 {
                let nv = match v.take() {
                    Some(old) => old.f_mul_scalar(cfg.momentum)?.f_add(&g)?,
                    None => g.copy(),
                };
                *v = Some(nv.shallow_clone());
                nv
            } else {
                g
            };
            let mut p = p.shallow_clone();
            let _ = p.f_sub_(&dir.f_mul_scalar(cfg.lr)?)?;
        }
        Ok(())
    })
}

/// The method's projection after a step: each compressible parameter is copied to
/// the host, projected by the hook and copied back.
fn project_step(
    handles: &[(String, Tensor)],
    compressible: &[(usize, &WTensor)],
    project: &mut dyn Projection,
    device: Device,
) -> Result<(), EvalError> {
    for (i, t) in compressible {
        let (_, p) = &handles[*i];
        let mut host = WTensor::new(t.name.clone(), t.shape.clone(), tensor_to_vec(p)?, true)
            .map_err(TorchError::from)?;
        project.step(&mut host)?;
        copy_into(p, &host.data, device)?;
    }
    Ok(())
}

impl TorchFineTuner {
    fn run(
        &mut self,
        start: &WeightSet,
        cfg: &FineTuneConfig,
        project: &mut dyn Projection,
        progress: &dyn Progress,
    ) -> Result<FineTuneOutcome, EvalError> {
        let (model, train) = self.ready()?;
        check_config(cfg, train.len())?;
        let device = model.device();
        let (holdout_idx, mut order) = Self::split(train, cfg.holdout_images, cfg.seed)?;
        let holdout = Batches::new(model, &train.subset(&holdout_idx), EVAL_BATCH)?;

        let finalized = |w: &WeightSet, p: &mut dyn Projection| -> Result<WeightSet, EvalError> {
            let mut f = w.clone();
            project_all(&mut f, |t| p.finalize(t))?;
            Ok(f)
        };
        let evaluate = |model: &mut TorchModel, w: &WeightSet| -> Result<Accuracy, EvalError> {
            model.install(w)?;
            Ok(TorchEvaluator::new(model, &holdout).evaluate_installed()?)
        };

        let start_final = finalized(start, project)?;
        let start_holdout = evaluate(model, &start_final)?;
        let (mut best, mut best_acc, mut best_epoch) = (start_final, start_holdout, 0usize);
        model.install(start)?;

        // Train every parameter; remember which are projected.
        let handles: Vec<(String, Tensor)> = model
            .param_handles()
            .iter()
            .map(|(n, t)| (n.clone(), t.shallow_clone()))
            .collect();
        for (_, p) in &handles {
            let _ = p.set_requires_grad(true);
        }
        // (parameter handle, start tensor) of every compressible tensor, matched by name.
        let compressible: Vec<(usize, &WTensor)> = start
            .tensors
            .iter()
            .filter(|t| t.compressible)
            .map(|t| {
                handles
                    .iter()
                    .position(|(n, _)| *n == t.name)
                    .map(|i| (i, t))
                    .ok_or_else(|| {
                        EvalError::Core(wb_core::CoreError::MissingTensor(t.name.clone()))
                    })
            })
            .collect::<Result<_, _>>()?;
        let mut velocity: Vec<Option<Tensor>> = (0..handles.len()).map(|_| None).collect();

        let per_epoch = order.len().div_ceil(cfg.batch) as u64;
        let total = if cfg.max_steps > 0 {
            (cfg.epochs as u64 * per_epoch).min(cfg.max_steps)
        } else {
            cfg.epochs as u64 * per_epoch
        };
        progress.set_length(total);
        let mut steps = 0u64;
        let mut epochs = Vec::new();
        let result = (|| -> Result<(), EvalError> {
            for epoch in 1..=cfg.epochs {
                progress.message(&format!("fine-tuning epoch {epoch}/{}", cfg.epochs));
                shuffle(&mut order, cfg.seed, epoch);
                let (mut loss_sum, mut n) = (0.0f64, 0u64);
                for chunk in order.chunks(cfg.batch) {
                    if cfg.max_steps > 0 && steps >= cfg.max_steps {
                        break;
                    }
                    let imgs = train.subset(chunk);
                    let x = model.prepare(&imgs)?.to_device(device);
                    let y = Tensor::from_slice(&imgs.labels)
                        .to_kind(Kind::Int64)
                        .to_device(device);
                    for (_, p) in &handles {
                        let mut p = p.shallow_clone();
                        p.zero_grad();
                    }
                    let logits = model.module().forward_ts(&[x]).map_err(TorchError::from)?;
                    let loss = logits.cross_entropy_for_logits(&y);
                    let l = loss.double_value(&[]);
                    if !l.is_finite() {
                        return Err(EvalError::Backend(format!(
                            "fine-tuning diverged: loss {l} at step {}",
                            steps + 1
                        )));
                    }
                    loss.f_backward().map_err(TorchError::from)?;
                    sgd_step(&handles, &mut velocity, cfg)?;
                    project_step(&handles, &compressible, project, device)?;
                    loss_sum += l;
                    n += 1;
                    steps += 1;
                    progress.inc(1);
                }
                if n == 0 {
                    break;
                }
                let current = model.installed()?;
                let f = finalized(&current, project)?;
                let acc = evaluate(model, &f)?;
                model.install(&current)?;
                epochs.push(EpochRecord {
                    epoch,
                    steps,
                    train_loss: loss_sum / n as f64,
                    holdout: acc,
                });
                if acc.top1_correct > best_acc.top1_correct {
                    (best, best_acc, best_epoch) = (f, acc, epoch);
                }
                if cfg.max_steps > 0 && steps >= cfg.max_steps {
                    break;
                }
            }
            Ok(())
        })();
        for (_, p) in &handles {
            let mut p = p.shallow_clone();
            p.zero_grad();
            let _ = p.set_requires_grad(false);
        }
        result?;
        Ok(FineTuneOutcome {
            weights: best,
            start_holdout,
            epochs,
            best_epoch,
            steps,
        })
    }
}

impl TorchFineTuner {
    /// The held-out slice and the training pool of a run with `holdout_images` and `seed`.
    fn split(
        train: &Images,
        holdout_images: usize,
        seed: u64,
    ) -> Result<(Vec<usize>, Vec<usize>), EvalError> {
        let holdout = Split::Search {
            images: holdout_images,
            seed,
        }
        .indices(&train.labels)
        .map_err(|e| EvalError::Backend(format!("held-out slice: {e}")))?;
        let pool = Split::Heldout {
            images: holdout_images,
            seed,
        }
        .indices(&train.labels)
        .map_err(|e| EvalError::Backend(format!("training split: {e}")))?;
        Ok((holdout, pool))
    }
}

impl FineTuner for TorchFineTuner {
    /// [`wb_core::qat::train`] over this fine-tuner's model and training images
    /// (see [`crate::qat`]).
    fn train_qat(
        &mut self,
        start: &WeightSet,
        cfg: &wb_core::QatConfig,
        hook: &mut dyn wb_core::QatHook,
        progress: &dyn Progress,
    ) -> Result<wb_core::QatOutcome, EvalError> {
        let (model, train) = self.ready()?;
        if cfg.holdout_images == 0 || cfg.holdout_images >= train.len() {
            return Err(EvalError::Backend(format!(
                "quantization-aware training: a held-out slice of {} images does not fit in {} training images",
                cfg.holdout_images,
                train.len()
            )));
        }
        let (holdout, pool) = Self::split(train, cfg.holdout_images, cfg.seed)?;
        let mut backend = crate::qat::TorchQatBackend::new(model, train, pool, &holdout, start)?;
        wb_core::qat::train(&mut backend, start, cfg, hook, progress)
    }

    fn fine_tune(
        &mut self,
        start: &WeightSet,
        cfg: &FineTuneConfig,
        project: &mut dyn Projection,
        progress: &dyn Progress,
    ) -> Result<FineTuneOutcome, EvalError> {
        self.run(start, cfg, project, progress)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_is_a_seeded_permutation() {
        let mut a: Vec<usize> = (0..100).collect();
        let mut b = a.clone();
        shuffle(&mut a, 3, 1);
        shuffle(&mut b, 3, 1);
        assert_eq!(a, b);
        let mut c: Vec<usize> = (0..100).collect();
        shuffle(&mut c, 3, 2);
        assert_ne!(a, c);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
    }
}
