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
    /// Images at the front placed there for being hard (see [`Batches::hard_first`]),
    /// not in drawn order: racing bounds look only at the images after them.
    ordered: usize,
}

impl std::fmt::Debug for Batches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batches")
            .field("images", &self.images)
            .field("batch", &self.batch)
            .field("ordered", &self.ordered)
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
            ordered: 0,
        })
    }

    /// The same images with the hard ones first, for exact threshold questions: the
    /// images `weights` (the reference model) gets wrong or nearly wrong — lowest
    /// margin of the label's logit over the best other logit first — fill the leading
    /// batches, as many as twice its errors (rounded up to whole batches); the rest keep
    /// their drawn order.
    ///
    /// A candidate that cannot reach a threshold near the reference's accuracy is
    /// mostly wrong on those images, so the exact early exit of
    /// [`Evaluator::evaluate_threshold`] fires after the first batches instead of near
    /// the end; answers and counts are the same, since each image's logits do not
    /// depend on its batch neighbours. Racing ([`Evaluator::evaluate_race`]) needs a
    /// random order and bounds only the images after the hard prefix.
    ///
    /// # Errors
    /// When `weights` do not fit the model or libtorch fails.
    pub fn hard_first(self, model: &mut TorchModel, weights: &WeightSet) -> Result<Batches> {
        if self.images == 0 {
            return Ok(self);
        }
        model.install(weights)?;
        let mut margins = Vec::with_capacity(self.images);
        for (x, y) in self.inputs.iter().zip(&self.labels) {
            let logits = model
                .forward(x)?
                .to_kind(Kind::Float)
                .to_device(tch::Device::Cpu);
            check_finite_logits(&logits)?;
            let y = y.to_device(tch::Device::Cpu);
            let own = logits.gather(1, &y.unsqueeze(1), false).squeeze_dim(1);
            let others = logits.scatter_value(1, &y.unsqueeze(1), f64::NEG_INFINITY);
            let best_other = others.amax([1i64].as_slice(), false);
            let m = (own - best_other).contiguous();
            margins.extend(Vec::<f32>::try_from(&m)?);
        }
        let order = hard_first_order(&margins, self.batch);
        let index = Tensor::from_slice(&order.perm.iter().map(|&i| i as i64).collect::<Vec<_>>());
        let regroup = |parts: &[Tensor]| -> Vec<Tensor> {
            let dev = parts[0].device();
            Tensor::cat(parts, 0)
                .index_select(0, &index.to_device(dev))
                .split(self.batch as i64, 0)
                .into_iter()
                .map(|t| t.contiguous())
                .collect()
        };
        Ok(Batches {
            inputs: regroup(&self.inputs),
            labels: regroup(&self.labels),
            images: self.images,
            batch: self.batch,
            ordered: order.prefix,
        })
    }

    /// Images at the front that are not in drawn order (0 unless [`Self::hard_first`]).
    pub fn ordered(&self) -> usize {
        self.ordered
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
    pub fn labels(&self) -> &[Tensor] {
        &self.labels
    }
}

/// A permutation of the images with the hard ones first, and how many it put there.
#[derive(Debug, PartialEq, Eq)]
struct HardOrder {
    perm: Vec<usize>,
    prefix: usize,
}

/// The order of [`Batches::hard_first`] from each image's margin (label logit minus the
/// best other; ≤ 0: not a clear top-1): the lowest-margin images, twice as many as the
/// wrong ones rounded up to whole batches, ascending by margin (ties by position); then
/// the rest in their original order.
fn hard_first_order(margins: &[f32], batch: usize) -> HardOrder {
    let n = margins.len();
    let wrong = margins.iter().filter(|&&m| m <= 0.0 || m.is_nan()).count();
    let batch = batch.max(1);
    let prefix = ((2 * wrong).div_ceil(batch) * batch).min(n);
    let mut by_margin: Vec<usize> = (0..n).collect();
    by_margin.sort_by(|&a, &b| margins[a].total_cmp(&margins[b]).then(a.cmp(&b)));
    let mut taken = vec![false; n];
    let mut perm = Vec::with_capacity(n);
    for &i in &by_margin[..prefix] {
        taken[i] = true;
        perm.push(i);
    }
    perm.extend((0..n).filter(|&i| !taken[i]));
    HardOrder { perm, prefix }
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
        let (total, prefix) = (self.batches.images, self.batches.ordered);
        // The racing bound holds for the drawn images after the hard prefix, whose
        // count is then known exactly; it looks once per batch there.
        let looks = self.batches.labels.len() - prefix.div_ceil(self.batches.batch.max(1));
        let mut t1_prefix = 0;
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
            if seen <= prefix {
                t1_prefix = t1;
                continue;
            }
            if let Some(conf) = race {
                let need = min_top1_correct.saturating_sub(t1_prefix);
                let rest = (t1 - t1_prefix, seen - prefix, total - prefix);
                if wb_core::race::improbable(rest.0, rest.1, rest.2, need, conf, looks) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_images_come_first_in_whole_batches_and_the_rest_keep_their_order() {
        // Two wrong (≤ 0), so four hard images, rounded up to two batches of 3.
        let margins = [2.0, -1.0, 0.5, 3.0, 0.0, 0.1, 4.0, 0.2];
        let o = hard_first_order(&margins, 3);
        assert_eq!(o.prefix, 6);
        assert_eq!(o.perm, vec![1, 4, 5, 7, 2, 0, 3, 6]);
        // A permutation of every image.
        let mut p = o.perm.clone();
        p.sort_unstable();
        assert_eq!(p, (0..8).collect::<Vec<_>>());
    }

    #[test]
    fn nothing_wrong_means_no_prefix_and_the_prefix_never_exceeds_the_images() {
        let o = hard_first_order(&[1.0, 2.0, 0.5], 2);
        assert_eq!((o.prefix, o.perm), (0, vec![0, 1, 2]));
        let o = hard_first_order(&[-1.0, -2.0, f32::NAN], 2);
        assert_eq!(o.prefix, 3);
        assert_eq!(o.perm[..2], [1, 0]);
    }
}
