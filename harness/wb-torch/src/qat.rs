//! Quantization-aware training on libtorch: the [`QatBackend`] that
//! [`wb_core::qat::train`] runs over (the loop, the optimizers and the schedule live in
//! the core, so the torch side only computes losses, gradients, held-out accuracies and
//! curvature).
//!
//! - **Data**: the fine-tuner's training images; a seeded, class-balanced held-out slice
//!   of `holdout_images` chooses the best epoch, the rest is the pool batches index. No
//!   augmentation: images are prepared as the card says, as for evaluation.
//! - **Model**: the fine-tuner's own copy (never the runner's evaluator). Every parameter
//!   takes gradients. With frozen BatchNorm the module stays in evaluation mode: BatchNorm
//!   uses and keeps its running statistics. With trained BatchNorm (a card with
//!   `batchnorm = true`, see [`crate::batchnorm`]) the gradient and curvature passes run
//!   in training mode (batch statistics; running statistics updated in place), the
//!   held-out evaluation in evaluation mode with the updated statistics;
//!   [`QatBackend::fold_batchnorm`] folds their change into γ/β, and the starting
//!   statistics are put back when the backend is dropped.
//! - **Gradient**: the forward weights are installed, the mean cross-entropy of the batch
//!   is back-propagated, and every parameter's gradient is copied to the host.
//! - **Curvature**: per compressible tensor, the Hutchinson estimate
//!   `E[vᵀ H v] / numel` with one Rademacher probe `v` per batch (drawn on the host from
//!   the seed, so it is the same on every device), via a double backward pass; and the
//!   standard deviation over elements of the mean gradient over the batches.

use tch::{Kind, Tensor};
use wb_core::qat::{BatchNormMode, QatBackend, TensorCurvature};
use wb_core::{Accuracy, EvalError, WeightSet};

use crate::batchnorm::BatchNormStats;
use crate::data::Images;
use crate::error::{Result, TorchError};
use crate::eval::{Batches, TorchEvaluator};
use crate::model::{tensor_to_vec, TorchModel};
use crate::train::EVAL_BATCH;

/// A [`QatBackend`] over a model and its training images (see the module documentation).
pub(crate) struct TorchQatBackend<'a> {
    model: &'a mut TorchModel,
    train: &'a Images,
    pool: Vec<usize>,
    holdout: Batches,
    /// For each tensor of the weight set, in order: its parameter handle and whether it
    /// is compressible.
    handles: Vec<(Tensor, bool)>,
    /// The BatchNorm statistics at the start, when BatchNorm is trained.
    batchnorm: Option<BatchNormStats>,
}

impl<'a> TorchQatBackend<'a> {
    /// A backend training `model` on `train[pool]`, choosing on `train[holdout]`;
    /// `layout` is the weight set whose order and flags gradients follow.
    pub(crate) fn new(
        model: &'a mut TorchModel,
        train: &'a Images,
        pool: Vec<usize>,
        holdout: &[usize],
        layout: &WeightSet,
    ) -> Result<Self> {
        let holdout = Batches::new(model, &train.subset(holdout), EVAL_BATCH)?;
        let handles = layout
            .tensors
            .iter()
            .map(|t| {
                model
                    .param_handles()
                    .iter()
                    .find(|(n, _)| *n == t.name)
                    .map(|(_, p)| (p.shallow_clone(), t.compressible))
                    .ok_or_else(|| TorchError::Model {
                        model: model.card().name.clone(),
                        message: format!("no parameter `{}`", t.name),
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        for (p, _) in &handles {
            let _ = p.set_requires_grad(true);
        }
        Ok(Self {
            model,
            train,
            pool,
            holdout,
            handles,
            batchnorm: None,
        })
    }

    /// Runs `f` with the module in training mode when BatchNorm is trained, and puts it
    /// back in evaluation mode whatever `f` returns.
    fn in_train_mode<T>(&mut self, f: impl FnOnce(&Self) -> Result<T>) -> Result<T> {
        let on = self.batchnorm.is_some();
        if on {
            self.model.set_training(true)?;
        }
        let out = f(self);
        if on {
            self.model.set_training(false)?;
        }
        out
    }

    /// Prepared inputs and labels of pool positions `batch`, on the model's device.
    fn batch(&self, batch: &[usize]) -> Result<(Tensor, Tensor)> {
        let idx: Vec<usize> = batch.iter().map(|i| self.pool[*i]).collect();
        let imgs = self.train.subset(&idx);
        let device = self.model.device();
        let x = self.model.prepare(&imgs)?.to_device(device);
        let y = Tensor::from_slice(&imgs.labels)
            .to_kind(Kind::Int64)
            .to_device(device);
        Ok((x, y))
    }

    /// Mean cross-entropy of a batch with autograd recording.
    fn loss(&self, batch: &[usize]) -> Result<Tensor> {
        let (x, y) = self.batch(batch)?;
        let logits = self.model.module().forward_ts(&[x])?;
        Ok(logits.cross_entropy_for_logits(&y))
    }

    fn zero_grads(&self) {
        for (p, _) in &self.handles {
            let mut p = p.shallow_clone();
            p.zero_grad();
        }
    }
}

impl Drop for TorchQatBackend<'_> {
    fn drop(&mut self) {
        if let Some(bn) = &self.batchnorm {
            // Best effort: a failure here leaves this fine-tuner's own copy changed, and
            // the next run reads its statistics afresh.
            let _ = bn.restore();
        }
        let _ = self.model.set_training(false);
        self.zero_grads();
        for (p, _) in &self.handles {
            let _ = p.set_requires_grad(false);
        }
    }
}

/// A Rademacher (±1) probe of `numel` values from `seed`.
fn rademacher(numel: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    let mut out = Vec::with_capacity(numel);
    while out.len() < numel {
        let bits = crate::data::splitmix64(&mut s);
        for b in 0..64 {
            if out.len() == numel {
                break;
            }
            out.push(if bits >> b & 1 == 1 { 1.0 } else { -1.0 });
        }
    }
    out
}

impl QatBackend for TorchQatBackend<'_> {
    fn pool(&self) -> usize {
        self.pool.len()
    }

    fn gradient(
        &mut self,
        weights: &WeightSet,
        batch: &[usize],
    ) -> std::result::Result<(f64, Vec<Vec<f32>>), EvalError> {
        self.model.install(weights)?;
        self.zero_grads();
        let l = self.in_train_mode(|s| {
            let loss = s.loss(batch)?;
            loss.f_backward()?;
            Ok(loss.double_value(&[]))
        })?;
        let grads = self
            .handles
            .iter()
            .map(|(p, _)| {
                let g = p.grad();
                if g.defined() {
                    tensor_to_vec(&g)
                } else {
                    Ok(vec![0.0; p.numel()])
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((l, grads))
    }

    fn holdout(&mut self, weights: &WeightSet) -> std::result::Result<Accuracy, EvalError> {
        self.model.install(weights)?;
        Ok(TorchEvaluator::new(self.model, &self.holdout).evaluate_installed()?)
    }

    fn curvature(
        &mut self,
        weights: &WeightSet,
        batches: &[&[usize]],
        seed: u64,
    ) -> std::result::Result<Vec<TensorCurvature>, EvalError> {
        self.model.install(weights)?;
        let comp: Vec<(usize, Tensor)> = self
            .handles
            .iter()
            .enumerate()
            .filter(|(_, (_, c))| *c)
            .map(|(j, (p, _))| (j, p.shallow_clone()))
            .collect();
        self.in_train_mode(|s| s.hutchinson(weights, &comp, batches, seed))
            .map_err(EvalError::from)
    }

    fn set_batchnorm(&mut self, mode: BatchNormMode) -> std::result::Result<(), EvalError> {
        self.batchnorm = match mode {
            BatchNormMode::Frozen => None,
            BatchNormMode::Train => Some(self.model.batchnorm()?),
        };
        Ok(())
    }

    fn fold_batchnorm(&mut self, weights: &WeightSet) -> std::result::Result<WeightSet, EvalError> {
        Ok(match &self.batchnorm {
            Some(bn) => bn.fold(weights)?,
            None => weights.clone(),
        })
    }
}

impl TorchQatBackend<'_> {
    /// The curvature estimates of [`QatBackend::curvature`] for the compressible
    /// tensors `comp` (weight-set index, parameter handle).
    fn hutchinson(
        &self,
        weights: &WeightSet,
        comp: &[(usize, Tensor)],
        batches: &[&[usize]],
        seed: u64,
    ) -> Result<Vec<TensorCurvature>> {
        let params: Vec<&Tensor> = comp.iter().map(|(_, p)| p).collect();
        let mut trace = vec![0.0f64; comp.len()];
        let mut gsum: Vec<Vec<f64>> = comp.iter().map(|(_, p)| vec![0.0; p.numel()]).collect();
        for (b, batch) in batches.iter().enumerate() {
            let loss = self.loss(batch)?;
            let grads = Tensor::f_run_backward(&[&loss], &params, true, true)?;
            let probes = comp
                .iter()
                .enumerate()
                .map(|(i, (_, p))| {
                    let s = seed ^ ((b as u64) << 32 | i as u64).wrapping_mul(0x9E37_79B9);
                    Tensor::from_slice(&rademacher(p.numel(), s))
                        .view(p.size().as_slice())
                        .to_device(p.device())
                })
                .collect::<Vec<_>>();
            let gv = grads
                .iter()
                .zip(&probes)
                .map(|(g, v)| (g * v).sum(Kind::Float))
                .reduce(|a, b| a + b)
                .ok_or_else(|| TorchError::Model {
                    model: self.model.card().name.clone(),
                    message: "no compressible tensor".into(),
                })?;
            let hv = Tensor::f_run_backward(&[&gv], &params, false, false)?;
            for (i, ((h, v), g)) in hv.iter().zip(&probes).zip(&grads).enumerate() {
                trace[i] += (h * v).sum(Kind::Double).double_value(&[]) / v.numel() as f64;
                let g = tensor_to_vec(&g.detach())?;
                gsum[i].iter_mut().zip(g).for_each(|(a, x)| *a += x as f64);
            }
        }
        let nb = batches.len().max(1) as f64;
        Ok(comp
            .iter()
            .zip(trace)
            .zip(gsum)
            .map(|(((j, _), t), g)| {
                let n = g.len().max(1) as f64;
                let mean = g.iter().sum::<f64>() / nb / n;
                let var = g.iter().map(|x| (x / nb - mean).powi(2)).sum::<f64>() / n;
                TensorCurvature {
                    name: weights.tensors[*j].name.clone(),
                    trace_per_weight: t / nb,
                    grad_std: var.sqrt(),
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rademacher_probes_are_seeded_signs() {
        let a = super::rademacher(130, 5);
        assert_eq!(a, super::rademacher(130, 5));
        assert_ne!(a, super::rademacher(130, 6));
        assert!(a.iter().all(|v| *v == 1.0 || *v == -1.0));
        let plus = a.iter().filter(|v| **v > 0.0).count();
        assert!((30..100).contains(&plus), "{plus}");
    }
}
