//! The libtorch [`Evaluator`]: prepared, batched inputs on the device and top-1/top-5
//! counting without autograd.

use crate::data::Images;
use crate::error::{Result, TorchError};
use crate::model::TorchModel;
use crate::stages::StageCache;
use tch::{Kind, Tensor};
use wb_core::{Accuracy, EvalError, EvalStats, Evaluator, Raced, Threshold, WeightSet};

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
    /// The labels of each batch.
    pub(crate) fn labels(&self) -> &[Tensor] {
        &self.labels
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
pub(crate) fn hits_and_classes(logits: &Tensor, labels: &Tensor) -> Result<(usize, usize, Tensor)> {
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
    /// FP32 activations of these batches at stage boundaries (see [`crate::stages`]).
    stages: Option<&'a StageCache>,
    evaluations: u64,
    /// Stages run, over all evaluations, against `evaluations × stage count` for whole
    /// forward passes (a measure of the work the stage cache saved).
    stages_run: u64,
}

/// Where a pass over the batches starts: the input, or a cached boundary.
type Start<'a> = Option<(usize, &'a [Tensor])>;

impl<'a> TorchEvaluator<'a> {
    /// An evaluator of `model` on `batches`.
    pub fn new(model: &'a mut TorchModel, batches: &'a Batches) -> Self {
        Self {
            model,
            batches,
            stages: None,
            evaluations: 0,
            stages_run: 0,
        }
    }

    /// Resumes evaluations from `cache` (built on the same `batches`), when given: the
    /// logits are the same bits, the unchanged front of the network is not run again.
    ///
    /// # Panics
    /// When the cache holds another number of batches than `batches`.
    pub fn with_stage_cache(mut self, cache: Option<&'a StageCache>) -> Self {
        if let Some(c) = cache {
            assert_eq!(
                c.batches(),
                self.batches.inputs.len(),
                "a stage cache of other batches"
            );
        }
        self.stages = cache;
        self
    }

    /// Stages run so far and the stages whole forward passes would have run.
    pub fn stage_work(&self) -> Option<(u64, u64)> {
        self.stages
            .map(|c| (self.stages_run, self.evaluations * c.stage_count() as u64))
    }

    /// Installs `weights` and says where their evaluation may start.
    fn install(&mut self, weights: &WeightSet) -> Result<Start<'a>> {
        self.model.install(weights)?;
        self.evaluations += 1;
        let start = self.stages.and_then(|c| c.start(weights));
        if let Some(c) = self.stages {
            let from = start.map_or(0, |(b, _)| b);
            self.stages_run += (c.stage_count() - from) as u64;
        }
        Ok(start)
    }

    /// The logits of batch `k`, from `start`.
    fn logits(&self, start: Start<'_>, k: usize) -> Result<Tensor> {
        match start {
            Some((b, acts)) => self.model.forward_from(&acts[k], b),
            None => self.model.forward(&self.batches.inputs[k]),
        }
    }

    /// Accuracy of `weights` with every image's top-1 class, in the batches' order —
    /// the raw data of paired tests between candidates on the same images.
    pub fn predict(&mut self, weights: &WeightSet) -> Result<(Accuracy, Vec<u16>)> {
        let start = self.install(weights)?;
        let (mut t1, mut t5) = (0, 0);
        let mut classes = Vec::with_capacity(self.batches.images);
        for (k, y) in self.batches.labels.iter().enumerate() {
            let logits = self.logits(start, k)?;
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
        self.accuracy_from(None)
    }

    fn accuracy_from(&self, start: Start<'_>) -> Result<Accuracy> {
        let (mut t1, mut t5) = (0, 0);
        for (k, y) in self.batches.labels.iter().enumerate() {
            let logits = self.logits(start, k)?;
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
        Ok(self.threshold_from(None, min_top1_correct, None)?.answer)
    }

    /// Batch by batch from `start`; stops when the images left cannot lift the count to
    /// `min_top1_correct`, or (with `race = Some(confidence)`) when the racing bound
    /// makes it improbable ([`wb_core::race::improbable`], one look per batch).
    fn threshold_from(
        &self,
        start: Start<'_>,
        min_top1_correct: usize,
        race: Option<f64>,
    ) -> Result<Raced> {
        let (mut t1, mut t5, mut seen) = (0, 0, 0);
        let (total, looks) = (self.batches.images, self.batches.labels.len());
        for (k, y) in self.batches.labels.iter().enumerate() {
            let logits = self.logits(start, k)?;
            let (a, b) = count_hits(&logits, y)?;
            t1 += a;
            t5 += b;
            seen += y.size()[0] as usize;
            let below = Threshold::Below {
                top1_correct_seen: t1,
                seen,
            };
            if t1 + (total - seen) < min_top1_correct {
                return Ok(Raced::exact(below));
            }
            if let Some(conf) = race {
                if wb_core::race::improbable(t1, seen, total, min_top1_correct, conf, looks) {
                    return Ok(Raced {
                        answer: below,
                        raced: true,
                    });
                }
            }
        }
        let acc = Accuracy {
            top1_correct: t1,
            top5_correct: t5,
            total,
        };
        Ok(Raced::exact(if t1 >= min_top1_correct {
            Threshold::Reached(acc)
        } else {
            Threshold::Below {
                top1_correct_seen: t1,
                seen,
            }
        }))
    }
}

impl Evaluator for TorchEvaluator<'_> {
    fn evaluate_threshold(
        &mut self,
        weights: &WeightSet,
        min_top1_correct: usize,
    ) -> Result<Threshold, EvalError> {
        let start = self.install(weights)?;
        Ok(self.threshold_from(start, min_top1_correct, None)?.answer)
    }
    fn evaluate_race(
        &mut self,
        weights: &WeightSet,
        min_top1_correct: usize,
        confidence: f64,
    ) -> Result<Raced, EvalError> {
        let start = self.install(weights)?;
        Ok(self.threshold_from(start, min_top1_correct, Some(confidence))?)
    }
    fn evaluate(&mut self, weights: &WeightSet) -> Result<Accuracy, EvalError> {
        let start = self.install(weights)?;
        Ok(self.accuracy_from(start)?)
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
