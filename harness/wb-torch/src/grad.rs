//! Gradient statistics ([`wb_core::GradientSource`]) on libtorch.
//!
//! [`TorchGradients`] owns its **own** copy of the model (loaded from the same card), so
//! that it can run backward passes while the runner's evaluator holds the model that
//! measures accuracy. What one call does (the contract of [`wb_core::grad`]):
//!
//! - **Images**: `cfg.images` of the labelled pool it was given (the search subset), a
//!   seeded, class-balanced draw ([`crate::data::balanced_subset`] with `cfg.seed`), or
//!   the whole pool when `cfg.images` is 0 or not smaller than it; in pool order, prepared
//!   as the card says (no augmentation).
//! - **Model**: `weights` installed; the module stays in **evaluation mode** (BatchNorm
//!   uses its running statistics and never updates them). Only the compressible weights
//!   take gradients.
//! - **Pass**: for each batch of `cfg.batch` images, the mean cross-entropy of the logits,
//!   backward, and the batch's gradient accumulated (in float64 on the device) into the
//!   sum weighted by batch size, the sum of magnitudes and the sum of squares.
//!
//! Deterministic on the CPU for a fixed thread count; CUDA kernels may not be
//! bit-reproducible.

use tch::{Device, Kind, Tensor};
use wb_core::grad::calibration_images;
use wb_core::{
    EvalError, GradientConfig, GradientSource, Gradients, Progress, TensorGradients, WeightSet,
};

use crate::card::ModelCard;
use crate::data::{balanced_subset, Images};
use crate::error::{Result, TorchError};
use crate::model::{tensor_to_vec, TorchModel};

enum State {
    Lazy {
        card: Box<ModelCard>,
        device: Device,
    },
    Ready(Box<TorchModel>),
}

/// A libtorch [`GradientSource`] over a pool of labelled images (see the module
/// documentation).
pub struct TorchGradients {
    state: State,
    pool: Images,
    calls: u64,
}

impl std::fmt::Debug for TorchGradients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TorchGradients")
            .field("loaded", &matches!(self.state, State::Ready(_)))
            .field("images", &self.pool.len())
            .field("calls", &self.calls)
            .finish()
    }
}

/// Running sums of one compressible tensor's batch gradients.
struct Sums {
    /// Index into the model's parameter handles.
    handle: usize,
    name: String,
    weighted: Tensor,
    abs: Tensor,
    sq: Tensor,
}

impl TorchGradients {
    /// Gradients of `model` (its own instance: load a second one with
    /// [`TorchModel::load`]) on images drawn from `pool`.
    pub fn new(model: TorchModel, pool: Images) -> Self {
        Self {
            state: State::Ready(Box::new(model)),
            pool,
            calls: 0,
        }
    }

    /// A source that loads its own copy of the card's model on `device` on first use, so
    /// that a runner can offer one to every cell and only methods that ask pay for it.
    pub fn lazy(card: ModelCard, device: Device, pool: Images) -> Self {
        Self {
            state: State::Lazy {
                card: Box::new(card),
                device,
            },
            pool,
            calls: 0,
        }
    }

    /// The model the backward passes run on (loaded here on first use).
    ///
    /// # Errors
    /// When the lazy model cannot be loaded.
    pub fn model(&mut self) -> Result<&mut TorchModel> {
        if let State::Lazy { card, device } = &self.state {
            self.state = State::Ready(Box::new(TorchModel::load(card, *device)?));
        }
        match &mut self.state {
            State::Ready(m) => Ok(m),
            State::Lazy { .. } => unreachable!("loaded above"),
        }
    }

    /// The calibration images `cfg` selects from the pool.
    fn calibration(&self, cfg: &GradientConfig) -> std::result::Result<Images, EvalError> {
        let n = calibration_images(cfg, self.pool.len())?;
        if n == self.pool.len() {
            return Ok(self.pool.clone());
        }
        let idx = balanced_subset(&self.pool.labels, n, cfg.seed)
            .map_err(|e| EvalError::Backend(format!("gradients: calibration images: {e}")))?;
        Ok(self.pool.subset(&idx))
    }

    fn compute(
        &mut self,
        weights: &WeightSet,
        cfg: &GradientConfig,
        progress: &dyn Progress,
    ) -> std::result::Result<Gradients, EvalError> {
        let calib = self.calibration(cfg)?;
        let model = self.model()?;
        model.install(weights)?;
        let device = model.device();
        let x = model.prepare(&calib)?.to_device(device);
        let y = Tensor::from_slice(&calib.labels)
            .to_kind(Kind::Int64)
            .to_device(device);
        let handles: Vec<Tensor> = model
            .param_handles()
            .iter()
            .map(|(_, t)| t.shallow_clone())
            .collect();
        let mut sums = compressible_sums(model, weights)?;
        for s in &sums {
            let _ = handles[s.handle].set_requires_grad(true);
        }
        let n = calib.len();
        let batches = n.div_ceil(cfg.batch);
        progress.set_length(batches as u64);
        let result = (|| -> std::result::Result<f64, EvalError> {
            let mut loss_sum = 0.0f64;
            for b in 0..batches {
                let start = b * cfg.batch;
                let len = cfg.batch.min(n - start);
                for s in &sums {
                    let mut p = handles[s.handle].shallow_clone();
                    p.zero_grad();
                }
                let xb = x.narrow(0, start as i64, len as i64);
                let yb = y.narrow(0, start as i64, len as i64);
                let logits = model.module().forward_ts(&[xb]).map_err(TorchError::from)?;
                let loss = logits.cross_entropy_for_logits(&yb);
                let l = loss.double_value(&[]);
                if !l.is_finite() {
                    return Err(EvalError::Backend(format!(
                        "gradients: loss {l} on calibration batch {b}"
                    )));
                }
                loss.f_backward().map_err(TorchError::from)?;
                tch::no_grad(|| -> std::result::Result<(), TorchError> {
                    for s in &mut sums {
                        let g = handles[s.handle].f_grad()?.f_to_kind(Kind::Double)?;
                        s.weighted = s.weighted.f_add(&g.f_mul_scalar(len as f64)?)?;
                        s.abs = s.abs.f_add(&g.f_abs()?)?;
                        s.sq = s.sq.f_add(&g.f_square()?)?;
                    }
                    Ok(())
                })?;
                loss_sum += l * len as f64;
                progress.inc(1);
            }
            Ok(loss_sum / n as f64)
        })();
        for s in &sums {
            let mut p = handles[s.handle].shallow_clone();
            p.zero_grad();
            let _ = p.set_requires_grad(false);
        }
        let loss = result?;
        let mean = |t: &Tensor, by: f64| -> Result<Vec<f32>> {
            tensor_to_vec(&t.f_div_scalar(by)?.f_to_kind(Kind::Float)?)
        };
        let tensors = sums
            .iter()
            .map(|s| {
                Ok(TensorGradients {
                    name: s.name.clone(),
                    mean: mean(&s.weighted, n as f64)?,
                    mean_abs: mean(&s.abs, batches as f64)?,
                    mean_sq: mean(&s.sq, batches as f64)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        self.calls += 1;
        let g = Gradients {
            tensors,
            images: n,
            batches,
            loss,
        };
        g.check(weights)?;
        Ok(g)
    }
}

/// Zeroed running sums for every compressible tensor of `weights`, matched to the
/// model's parameters by name.
fn compressible_sums(
    model: &TorchModel,
    weights: &WeightSet,
) -> std::result::Result<Vec<Sums>, EvalError> {
    let handles = model.param_handles();
    weights
        .tensors
        .iter()
        .filter(|t| t.compressible)
        .map(|t| {
            let handle = handles
                .iter()
                .position(|(n, _)| *n == t.name)
                .ok_or_else(|| wb_core::CoreError::MissingTensor(t.name.clone()))?;
            let zeros = || {
                handles[handle]
                    .1
                    .f_zeros_like()
                    .and_then(|z| z.f_to_kind(Kind::Double))
                    .map_err(TorchError::from)
            };
            Ok(Sums {
                handle,
                name: t.name.clone(),
                weighted: zeros()?,
                abs: zeros()?,
                sq: zeros()?,
            })
        })
        .collect()
}

impl GradientSource for TorchGradients {
    fn gradients(
        &mut self,
        weights: &WeightSet,
        cfg: &GradientConfig,
        progress: &dyn Progress,
    ) -> std::result::Result<Gradients, EvalError> {
        self.compute(weights, cfg, progress)
    }

    fn images(&self) -> usize {
        self.pool.len()
    }

    fn calls(&self) -> u64 {
        self.calls
    }
}
