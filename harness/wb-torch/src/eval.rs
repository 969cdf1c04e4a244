//! The libtorch [`Evaluator`]: prepared, batched inputs on the device and top-1/top-5
//! counting without autograd.

use crate::data::Images;
use crate::error::{Result, TorchError};
use crate::model::TorchModel;
use tch::{Kind, Tensor};
use wb_core::{Accuracy, EvalError, EvalStats, Evaluator, Threshold, WeightSet};

/// Images turned into model input once, split into batches and moved to the device.
pub struct Batches {
    inputs: Vec<Tensor>,
    labels: Vec<Tensor>,
    images: usize,
    batch: usize,
}

impl std::fmt::Debug for Batches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batches")
            .field("images", &self.images)
            .field("batch", &self.batch)
            .finish()
    }
}

impl Batches {
    /// Prepares `images` for `model` in batches of `batch` images.
    pub fn new(model: &TorchModel, images: &Images, batch: usize) -> Result<Batches> {
        let batch = batch.max(1);
        let x = model.prepare(images)?;
        let y = Tensor::from_slice(&images.labels).to_kind(Kind::Int64);
        let dev = model.device();
        let inputs = x
            .split(batch as i64, 0)
            .into_iter()
            .map(|t| t.contiguous().to_device(dev))
            .collect();
        let labels = y
            .split(batch as i64, 0)
            .into_iter()
            .map(|t| t.to_device(dev))
            .collect();
        Ok(Batches {
            inputs,
            labels,
            images: images.len(),
            batch,
        })
    }
    /// Number of images.
    pub fn images(&self) -> usize {
        self.images
    }
    /// Batch size.
    pub fn batch(&self) -> usize {
        self.batch
    }
    /// The prepared input batches (on the model's device).
    pub fn inputs(&self) -> &[Tensor] {
        &self.inputs
    }
}

/// Counts top-1/top-5 hits of `logits` `[B, C]` against `labels` `[B]`.
///
/// # Errors
/// [`TorchError::NonFinite`] when a logit is NaN or infinite: the ranking of such a
/// row means nothing, so an evaluation that sees one is not a result.
pub fn count_hits(logits: &Tensor, labels: &Tensor) -> Result<(usize, usize)> {
    let (top1, topk, _) = hits_and_classes(logits, labels)?;
    Ok((top1, topk))
}

/// Fails when any of `logits` is NaN or infinite, saying in how many rows.
pub fn check_finite_logits(logits: &Tensor) -> Result<()> {
    let bad_rows = logits
        .isfinite()
        .logical_not()
        .any_dim(1, false)
        .sum(Kind::Int64)
        .int64_value(&[]);
    if bad_rows > 0 {
        return Err(TorchError::NonFinite {
            rows: bad_rows as usize,
            of: logits.size()[0] as usize,
        });
    }
    Ok(())
}

/// Top-1/top-5 hits and the top-1 class of every image (`[B]`, the same ranking the
/// counts use, so ties break alike), after checking the logits are finite.
fn hits_and_classes(logits: &Tensor, labels: &Tensor) -> Result<(usize, usize, Tensor)> {
    check_finite_logits(logits)?;
    let c = logits.size()[1];
    let k = c.min(5);
    let (_, idx) = logits.topk(k, -1, true, true);
    let hit = idx.eq_tensor(&labels.unsqueeze(1));
    let top1 = hit.select(1, 0).sum(Kind::Int64).int64_value(&[]) as usize;
    let topk = hit.any_dim(1, false).sum(Kind::Int64).int64_value(&[]) as usize;
    Ok((top1, topk, idx.select(1, 0)))
}

/// Evaluates weights by installing them in a [`TorchModel`] and running prepared batches.
/// Wrap it in [`wb_core::Cached`] to answer repeated configurations from a cache.
pub struct TorchEvaluator<'a> {
    model: &'a mut TorchModel,
    batches: &'a Batches,
    evaluations: u64,
}

impl<'a> TorchEvaluator<'a> {
    /// An evaluator of `model` on `batches`.
    pub fn new(model: &'a mut TorchModel, batches: &'a Batches) -> Self {
        Self {
            model,
            batches,
            evaluations: 0,
        }
    }

    /// Accuracy of `weights` with every image's top-1 class, in the batches' order —
    /// the raw data of paired tests between candidates on the same images.
    pub fn predict(&mut self, weights: &WeightSet) -> Result<(Accuracy, Vec<u16>)> {
        self.model.install(weights)?;
        self.evaluations += 1;
        let (mut t1, mut t5) = (0, 0);
        let mut classes = Vec::with_capacity(self.batches.images);
        for (x, y) in self.batches.inputs.iter().zip(&self.batches.labels) {
            let logits = self.model.forward(x)?;
            let (a, b, top) = hits_and_classes(&logits, y)?;
            t1 += a;
            t5 += b;
            let top = top.to_kind(Kind::Int64).to_device(tch::Device::Cpu);
            let v = Vec::<i64>::try_from(&top)?;
            classes.extend(v.into_iter().map(|c| c as u16));
        }
        let acc = Accuracy {
            top1_correct: t1,
            top5_correct: t5,
            total: self.batches.images,
        };
        Ok((acc, classes))
    }

    /// Accuracy of the weights currently installed in the model.
    pub fn evaluate_installed(&self) -> Result<Accuracy> {
        let (mut t1, mut t5) = (0, 0);
        for (x, y) in self.batches.inputs.iter().zip(&self.batches.labels) {
            let logits = self.model.forward(x)?;
            let (a, b) = count_hits(&logits, y)?;
            t1 += a;
            t5 += b;
        }
        Ok(Accuracy {
            top1_correct: t1,
            top5_correct: t5,
            total: self.batches.images,
        })
    }
}

impl TorchEvaluator<'_> {
    /// Early-exit evaluation of the installed weights: stops after the first batch at
    /// which even all remaining images correct could not reach `min_top1_correct`.
    pub fn threshold_installed(&self, min_top1_correct: usize) -> Result<Threshold> {
        let (mut t1, mut t5, mut seen) = (0, 0, 0);
        for (x, y) in self.batches.inputs.iter().zip(&self.batches.labels) {
            let logits = self.model.forward(x)?;
            let (a, b) = count_hits(&logits, y)?;
            t1 += a;
            t5 += b;
            seen += y.size()[0] as usize;
            if t1 + (self.batches.images - seen) < min_top1_correct {
                return Ok(Threshold::Below {
                    top1_correct_seen: t1,
                    seen,
                });
            }
        }
        let acc = Accuracy {
            top1_correct: t1,
            top5_correct: t5,
            total: self.batches.images,
        };
        Ok(if t1 >= min_top1_correct {
            Threshold::Reached(acc)
        } else {
            Threshold::Below {
                top1_correct_seen: t1,
                seen,
            }
        })
    }
}

impl Evaluator for TorchEvaluator<'_> {
    fn evaluate_threshold(
        &mut self,
        weights: &WeightSet,
        min_top1_correct: usize,
    ) -> Result<Threshold, EvalError> {
        self.model.install(weights)?;
        self.evaluations += 1;
        Ok(self.threshold_installed(min_top1_correct)?)
    }
    fn evaluate(&mut self, weights: &WeightSet) -> Result<Accuracy, EvalError> {
        self.model.install(weights)?;
        self.evaluations += 1;
        Ok(self.evaluate_installed()?)
    }
    fn images(&self) -> usize {
        self.batches.images
    }
    fn stats(&self) -> EvalStats {
        EvalStats {
            evaluations: self.evaluations,
            cache_hits: 0,
        }
    }
}
