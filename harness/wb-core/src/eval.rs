//! Accuracy of candidate weights: the [`Evaluator`] trait, a caching wrapper and a
//! deterministic fake for unit tests of search logic.

use crate::error::CoreError;
use crate::weights::WeightSet;
use std::collections::HashMap;

/// Top-1/top-5 counts on a fixed set of images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accuracy {
    /// Images whose highest logit is the label.
    pub top1_correct: usize,
    /// Images whose label is among the five highest logits.
    pub top5_correct: usize,
    /// Images evaluated.
    pub total: usize,
}

impl Accuracy {
    /// Top-1 in percent.
    pub fn top1_pct(&self) -> f64 {
        pct(self.top1_correct, self.total)
    }
    /// Top-5 in percent.
    pub fn top5_pct(&self) -> f64 {
        pct(self.top5_correct, self.total)
    }
}

fn pct(a: usize, n: usize) -> f64 {
    if n == 0 {
        f64::NAN
    } else {
        100.0 * a as f64 / n as f64
    }
}

/// Why an evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The weights do not fit the model (names or shapes).
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The backend (libtorch) failed.
    #[error("evaluation backend: {0}")]
    Backend(String),
}

/// Counters an evaluator keeps: search cost is a result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EvalStats {
    /// Evaluations actually computed.
    pub evaluations: u64,
    /// Requests answered from the cache.
    pub cache_hits: u64,
}

/// Measures the accuracy of a model with the given weights installed.
pub trait Evaluator {
    /// Accuracy with `weights` installed (every tensor of the model, same names and shapes).
    fn evaluate(&mut self, weights: &WeightSet) -> Result<Accuracy, EvalError>;
    /// Number of images each evaluation covers.
    fn images(&self) -> usize;
    /// Evaluations done so far.
    fn stats(&self) -> EvalStats;

    /// Answers "is top-1 ≥ `min_top1_correct`?" and may stop as soon as the answer is
    /// certain (the images left cannot lift the count to the threshold). When the threshold
    /// is reached the full accuracy is returned. The default evaluates everything.
    fn evaluate_threshold(
        &mut self,
        weights: &WeightSet,
        min_top1_correct: usize,
    ) -> Result<Threshold, EvalError> {
        let a = self.evaluate(weights)?;
        Ok(if a.top1_correct >= min_top1_correct {
            Threshold::Reached(a)
        } else {
            Threshold::Below {
                top1_correct_seen: a.top1_correct,
                seen: a.total,
            }
        })
    }

    /// Racing ([`crate::race`]): [`Self::evaluate_threshold`] that may also stop once
    /// the images seen make reaching `min_top1_correct` improbable at `confidence`
    /// (answer `Below` with `raced` set). Default: the exact threshold evaluation.
    fn evaluate_race(
        &mut self,
        weights: &WeightSet,
        min_top1_correct: usize,
        confidence: f64,
    ) -> Result<Raced, EvalError> {
        let _ = confidence;
        Ok(Raced::exact(
            self.evaluate_threshold(weights, min_top1_correct)?,
        ))
    }
}

/// Answer of [`Evaluator::evaluate_race`]: the threshold answer, and whether a "below"
/// was decided by the racing bound (probable at the stated confidence) rather than
/// certain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raced {
    /// The answer.
    pub answer: Threshold,
    /// The evaluation stopped on the racing bound.
    pub raced: bool,
}

impl Raced {
    /// A certain answer.
    pub fn exact(answer: Threshold) -> Self {
        Self {
            answer,
            raced: false,
        }
    }
}

/// Answer of [`Evaluator::evaluate_threshold`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threshold {
    /// The threshold is reached; the complete accuracy.
    Reached(Accuracy),
    /// The threshold cannot be reached: after `seen` images only `top1_correct_seen` were
    /// right and the rest could not make up the difference.
    Below {
        /// Correct top-1 predictions among the images seen.
        top1_correct_seen: usize,
        /// Images evaluated before stopping.
        seen: usize,
    },
}

impl Threshold {
    /// Whether the threshold was reached.
    pub fn reached(&self) -> bool {
        matches!(self, Threshold::Reached(_))
    }
    /// The full accuracy when the threshold was reached.
    pub fn accuracy(&self) -> Option<Accuracy> {
        match self {
            Threshold::Reached(a) => Some(*a),
            Threshold::Below { .. } => None,
        }
    }
}

/// What a [`Cached`] evaluator knows, keyed by the weights' content hash: valid for one
/// model on one fixed image set, and then across searches (cells, methods) on it.
#[derive(Debug, Clone, Default)]
pub struct Memo {
    cache: HashMap<[u8; 32], Accuracy>,
    /// Lowest threshold each configuration is known to miss.
    below: HashMap<[u8; 32], usize>,
}

impl Memo {
    /// Configurations whose accuracy is known.
    pub fn len(&self) -> usize {
        self.cache.len()
    }
    /// Whether nothing is known.
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty() && self.below.is_empty()
    }
}

/// Wraps an evaluator with a cache keyed by the weights' content hash, so a search never
/// pays twice for the same configuration.
pub struct Cached<E> {
    inner: E,
    memo: Memo,
    hits: u64,
}

impl<E: Evaluator> Cached<E> {
    /// Wraps `inner`.
    pub fn new(inner: E) -> Self {
        Self::with_memo(inner, Memo::default())
    }
    /// Wraps `inner`, starting from what earlier searches on the same model and images
    /// learnt (the caller keeps the key: model, image set).
    pub fn with_memo(inner: E, memo: Memo) -> Self {
        Self {
            inner,
            memo,
            hits: 0,
        }
    }
    /// What this evaluator knows now, for the next search on the same model and images.
    pub fn into_memo(self) -> Memo {
        self.memo
    }
    /// The wrapped evaluator.
    pub fn inner(&self) -> &E {
        &self.inner
    }
}

impl<E: Evaluator> Evaluator for Cached<E> {
    fn evaluate(&mut self, weights: &WeightSet) -> Result<Accuracy, EvalError> {
        let key = weights.content_hash();
        if let Some(a) = self.memo.cache.get(&key) {
            self.hits += 1;
            return Ok(*a);
        }
        let a = self.inner.evaluate(weights)?;
        self.memo.cache.insert(key, a);
        Ok(a)
    }
    fn evaluate_threshold(
        &mut self,
        weights: &WeightSet,
        min_top1_correct: usize,
    ) -> Result<Threshold, EvalError> {
        let key = weights.content_hash();
        if let Some(a) = self.memo.cache.get(&key) {
            self.hits += 1;
            return Ok(if a.top1_correct >= min_top1_correct {
                Threshold::Reached(*a)
            } else {
                Threshold::Below {
                    top1_correct_seen: a.top1_correct,
                    seen: a.total,
                }
            });
        }
        if let Some(&t) = self.memo.below.get(&key) {
            if min_top1_correct >= t {
                self.hits += 1;
                return Ok(Threshold::Below {
                    top1_correct_seen: 0,
                    seen: 0,
                });
            }
        }
        let r = self.inner.evaluate_threshold(weights, min_top1_correct)?;
        match r {
            Threshold::Reached(a) => {
                self.memo.cache.insert(key, a);
            }
            Threshold::Below { .. } => {
                let e = self.memo.below.entry(key).or_insert(min_top1_correct);
                *e = (*e).min(min_top1_correct);
            }
        }
        Ok(r)
    }
    /// Known answers come from the memo; a raced "below" is never stored in it, so
    /// that a later search without racing (another cell, method or seed on the same
    /// images) only ever reuses certain answers.
    fn evaluate_race(
        &mut self,
        weights: &WeightSet,
        min_top1_correct: usize,
        confidence: f64,
    ) -> Result<Raced, EvalError> {
        let key = weights.content_hash();
        let known = self.memo.cache.contains_key(&key)
            || self
                .memo
                .below
                .get(&key)
                .is_some_and(|&t| min_top1_correct >= t);
        if known {
            return Ok(Raced::exact(
                self.evaluate_threshold(weights, min_top1_correct)?,
            ));
        }
        let r = self
            .inner
            .evaluate_race(weights, min_top1_correct, confidence)?;
        match r.answer {
            Threshold::Reached(a) => {
                self.memo.cache.insert(key, a);
            }
            Threshold::Below { .. } if !r.raced => {
                let e = self.memo.below.entry(key).or_insert(min_top1_correct);
                *e = (*e).min(min_top1_correct);
            }
            Threshold::Below { .. } => {}
        }
        Ok(r)
    }
    fn images(&self) -> usize {
        self.inner.images()
    }
    fn stats(&self) -> EvalStats {
        EvalStats {
            evaluations: self.inner.stats().evaluations,
            cache_hits: self.hits + self.inner.stats().cache_hits,
        }
    }
}

/// A deterministic stand-in for a real model, for unit tests of search logic only:
/// accuracy falls with the relative squared error of the weights against a reference,
/// `correct = base − images · sensitivity · Σ‖w − w_ref‖² / Σ‖w_ref‖²` (clamped at 0).
#[derive(Debug, Clone)]
pub struct FakeEvaluator {
    reference: WeightSet,
    images: usize,
    base_correct: usize,
    sensitivity: f64,
    evaluations: u64,
}

impl FakeEvaluator {
    /// A fake whose reference weights score `base_correct` of `images`.
    pub fn new(reference: WeightSet, images: usize, base_correct: usize, sensitivity: f64) -> Self {
        Self {
            reference,
            images,
            base_correct,
            sensitivity,
            evaluations: 0,
        }
    }
}

impl Evaluator for FakeEvaluator {
    fn evaluate(&mut self, weights: &WeightSet) -> Result<Accuracy, EvalError> {
        self.evaluations += 1;
        let (mut err, mut norm) = (0.0f64, 0.0f64);
        for r in &self.reference.tensors {
            let w = weights.get(&r.name)?;
            if w.shape != r.shape {
                return Err(EvalError::Backend(format!(
                    "tensor `{}`: shape {:?} does not fit the model's {:?}",
                    r.name, w.shape, r.shape
                )));
            }
            for (a, b) in w.data.iter().zip(&r.data) {
                err += (*a as f64 - *b as f64).powi(2);
                norm += (*b as f64).powi(2);
            }
        }
        let rel = if norm > 0.0 { err / norm } else { err };
        let loss = (self.images as f64 * self.sensitivity * rel).round();
        let top1 = (self.base_correct as f64 - loss).max(0.0) as usize;
        Ok(Accuracy {
            top1_correct: top1,
            top5_correct: (top1 + (self.images - top1) / 2).min(self.images),
            total: self.images,
        })
    }
    fn images(&self) -> usize {
        self.images
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
    use crate::weights::Tensor;

    fn ws(v: f32) -> WeightSet {
        WeightSet::new(vec![Tensor::new("w", vec![2], vec![1.0, v], true).unwrap()]).unwrap()
    }

    #[test]
    fn cached_threshold_answers_from_cache() {
        let reference = ws(2.0);
        let mut c = Cached::new(FakeEvaluator::new(reference.clone(), 100, 90, 1.0));
        assert!(c.evaluate_threshold(&reference, 80).unwrap().reached());
        assert!(!c.evaluate_threshold(&reference, 95).unwrap().reached());
        assert_eq!(c.stats().evaluations, 1);
        let bad = ws(0.0); // relative error 0.8 → 90 − 80 = 10 correct
        assert!(!c.evaluate_threshold(&bad, 50).unwrap().reached());
        assert!(!c.evaluate_threshold(&bad, 60).unwrap().reached());
        assert_eq!(
            c.stats().evaluations,
            2,
            "a higher threshold than a known miss is a miss"
        );
        assert_eq!(c.evaluate(&bad).unwrap().top1_correct, 10);
        assert_eq!(c.stats().evaluations, 3);
    }

    #[test]
    fn a_memo_carries_answers_to_the_next_search() {
        let reference = ws(2.0);
        let fake = || FakeEvaluator::new(reference.clone(), 100, 90, 1.0);
        let mut first = Cached::new(fake());
        first.evaluate(&reference).unwrap();
        assert!(!first.evaluate_threshold(&ws(0.0), 50).unwrap().reached());
        let memo = first.into_memo();
        assert_eq!(memo.len(), 1);
        let mut next = Cached::with_memo(fake(), memo);
        assert_eq!(next.evaluate(&reference).unwrap().top1_correct, 90);
        assert!(!next.evaluate_threshold(&ws(0.0), 60).unwrap().reached());
        assert_eq!(next.stats().evaluations, 0);
        assert_eq!(next.stats().cache_hits, 2);
    }
}
