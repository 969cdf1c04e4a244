//! Staged evaluation: resuming the forward pass from cached FP32 activations.
//!
//! A search evaluates many candidates that equal the FP32 model up to some layer (a
//! layer sweep changes one layer at a time). For a model whose card declares stages
//! (the stem, each residual block, the head), [`StageCache`] keeps the FP32 activations
//! of the search images at stage boundaries, within a memory budget, and the evaluator
//! starts each candidate at the last cached boundary before its first changed tensor.
//! Stages run the same operators on the same tensors as the whole forward pass, so the
//! logits are bit-identical (tested on every reference model).

use crate::error::Result;
use crate::eval::Batches;
use crate::model::TorchModel;
use tch::{CModule, IValue, Tensor};
use wb_core::WeightSet;

/// How a model's forward pass divides into stages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stages {
    /// Number of stages.
    pub count: usize,
    /// The stage of each weight tensor, in the weight set's order.
    pub of_tensor: Vec<usize>,
}

impl Stages {
    /// Reads `stage_count()` and `stage_prefixes()` from the module and places every
    /// tensor of `weights` in exactly one stage.
    ///
    /// # Errors
    /// A message naming what is missing or ambiguous.
    pub(crate) fn read(
        module: &CModule,
        weights: &WeightSet,
    ) -> std::result::Result<Stages, String> {
        let none: &[IValue] = &[];
        let why = |m: &str, e: tch::TchError| {
            format!(
                "the card declares stages, but the module's `{m}()` fails: {}",
                crate::error::short_tch(&e)
            )
        };
        let count = match module.method_is("stage_count", none) {
            Ok(IValue::Int(n)) if n >= 1 => n as usize,
            Ok(other) => return Err(format!("stage_count() returned {other:?}")),
            Err(e) => return Err(why("stage_count", e)),
        };
        let split = |s: &str| s.split(',').map(str::to_string).collect::<Vec<_>>();
        let prefixes: Vec<Vec<String>> = match module.method_is("stage_prefixes", none) {
            Ok(IValue::StringList(items)) => items.iter().map(|s| split(s)).collect(),
            Ok(IValue::GenericList(items)) => items
                .into_iter()
                .map(|v| match v {
                    IValue::String(s) => Ok(split(&s)),
                    other => Err(format!("stage_prefixes() holds {other:?}, not a string")),
                })
                .collect::<std::result::Result<_, _>>()?,
            Ok(other) => return Err(format!("stage_prefixes() returned {other:?}")),
            Err(e) => return Err(why("stage_prefixes", e)),
        };
        if prefixes.len() != count {
            return Err(format!(
                "stage_prefixes() lists {} stages, stage_count() says {count}",
                prefixes.len()
            ));
        }
        let mut of_tensor = Vec::with_capacity(weights.tensors.len());
        for t in &weights.tensors {
            let owners: Vec<usize> = (0..count)
                .filter(|&s| prefixes[s].iter().any(|p| t.name.starts_with(p.as_str())))
                .collect();
            match owners[..] {
                [s] => of_tensor.push(s),
                _ => {
                    return Err(format!(
                        "tensor `{}` falls in stages {owners:?} by stage_prefixes(); each \
                         tensor must be in exactly one",
                        t.name
                    ))
                }
            }
        }
        Ok(Stages { count, of_tensor })
    }

    /// The first stage with a tensor of `w` that differs (bit for bit) from
    /// `reference`; `count` when none does.
    pub fn first_changed(&self, reference: &WeightSet, w: &WeightSet) -> usize {
        let mut first = self.count;
        for ((r, c), &s) in reference
            .tensors
            .iter()
            .zip(&w.tensors)
            .zip(&self.of_tensor)
        {
            if s < first && (r.shape != c.shape || !same_bits(&r.data, &c.data)) {
                first = s;
            }
        }
        first
    }
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// FP32 activations of prepared batches at chosen stage boundaries.
pub struct StageCache {
    stages: Stages,
    reference: WeightSet,
    /// Cached boundaries, ascending: boundary `b` is the activation before stage `b`.
    boundaries: Vec<usize>,
    /// `acts[j][k]`: the activation before stage `boundaries[j]` of batch `k`.
    acts: Vec<Vec<Tensor>>,
    bytes: u64,
}

impl std::fmt::Debug for StageCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageCache")
            .field("boundaries", &self.boundaries)
            .field("bytes", &self.bytes)
            .finish()
    }
}

/// The boundaries to cache: every `g`-th of `1 .. count`, for the smallest stride `g`
/// whose activations fit in `budget` bytes (`per_image[b]`: bytes of one image's
/// activation before stage `b`). Empty when not even one fits.
pub fn choose_boundaries(per_image: &[u64], images: u64, budget: u64) -> Vec<usize> {
    let count = per_image.len();
    for g in 1..count.max(1) {
        let pick: Vec<usize> = (g..count).step_by(g).collect();
        let bytes: u64 = pick.iter().map(|&b| per_image[b] * images).sum();
        if bytes <= budget {
            return pick;
        }
    }
    Vec::new()
}

impl StageCache {
    /// Computes the activations of `batches` with the model's FP32 weights installed
    /// (left installed), at as many evenly spaced boundaries as fit in `budget_bytes`.
    /// `None` when the model has no stages or nothing fits.
    ///
    /// # Errors
    /// When libtorch fails.
    pub fn build(
        model: &mut TorchModel,
        batches: &Batches,
        budget_bytes: u64,
    ) -> Result<Option<StageCache>> {
        let Some(stages) = model.stages().cloned() else {
            return Ok(None);
        };
        let Some(first) = batches.inputs().first() else {
            return Ok(None);
        };
        let reference = model.weights().clone();
        model.install(&reference)?;
        // Bytes per image before each stage, from one image.
        let mut per_image = vec![0u64; stages.count];
        let mut x = first.narrow(0, 0, 1);
        for (b, bytes) in per_image.iter_mut().enumerate().skip(1) {
            x = model.run_stages(&x, b - 1, b)?;
            *bytes = (x.numel() * x.kind().elt_size_in_bytes()) as u64;
        }
        let boundaries = choose_boundaries(&per_image, batches.images() as u64, budget_bytes);
        if boundaries.is_empty() {
            return Ok(None);
        }
        let mut acts: Vec<Vec<Tensor>> = boundaries.iter().map(|_| Vec::new()).collect();
        for input in batches.inputs() {
            let (mut x, mut at) = (input.shallow_clone(), 0);
            for (j, &b) in boundaries.iter().enumerate() {
                x = model.run_stages(&x, at, b)?;
                acts[j].push(x.shallow_clone());
                at = b;
            }
        }
        let bytes = boundaries
            .iter()
            .map(|&b| per_image[b] * batches.images() as u64)
            .sum();
        Ok(Some(StageCache {
            stages,
            reference,
            boundaries,
            acts,
            bytes,
        }))
    }

    /// Memory the activations take.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The cached boundaries (stage indices, ascending).
    pub fn boundaries(&self) -> &[usize] {
        &self.boundaries
    }

    /// Number of batches cached.
    pub fn batches(&self) -> usize {
        self.acts.first().map_or(0, Vec::len)
    }

    /// Number of stages of the model.
    pub fn stage_count(&self) -> usize {
        self.stages.count
    }

    /// Where an evaluation of `w` may start: the last cached boundary at or before its
    /// first changed stage, with the activations of every batch there; `None` when it
    /// must start from the input.
    pub fn start(&self, w: &WeightSet) -> Option<(usize, &[Tensor])> {
        if w.tensors.len() != self.reference.tensors.len() {
            return None;
        }
        let first = self.stages.first_changed(&self.reference, w);
        let j = self.boundaries.iter().rposition(|&b| b <= first)?;
        Some((self.boundaries[j], &self.acts[j]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_thin_out_evenly_to_fit_the_budget() {
        // Stem input, then three stages of shrinking activations.
        let per = [0, 100, 100, 50, 50, 25];
        assert_eq!(choose_boundaries(&per, 10, 10_000), vec![1, 2, 3, 4, 5]);
        assert_eq!(choose_boundaries(&per, 10, 2_000), vec![2, 4]);
        assert_eq!(choose_boundaries(&per, 10, 1_000), vec![3]);
        assert_eq!(choose_boundaries(&per, 10, 100), Vec::<usize>::new());
        assert_eq!(choose_boundaries(&per[..1], 10, 100), Vec::<usize>::new());
    }

    #[test]
    fn the_first_changed_stage_is_found_bit_for_bit() {
        let t = |name: &str, v: f32| wb_core::Tensor::new(name, vec![2], vec![v, 1.0], true);
        let reference = WeightSet::new(vec![
            t("a", 0.0).unwrap(),
            t("b", 0.0).unwrap(),
            t("c", 0.0).unwrap(),
        ])
        .unwrap();
        let stages = Stages {
            count: 3,
            of_tensor: vec![0, 1, 2],
        };
        assert_eq!(stages.first_changed(&reference, &reference), 3);
        let mut w = reference.clone();
        w.tensors[2].data[0] = 0.5;
        assert_eq!(stages.first_changed(&reference, &w), 2);
        // -0.0 equals 0.0 as a number but not as bits: counted as a change.
        w.tensors[1].data[0] = -0.0;
        assert_eq!(stages.first_changed(&reference, &w), 1);
    }
}
