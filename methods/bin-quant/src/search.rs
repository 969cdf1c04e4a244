//! The method's steps: sensitivity probes, binning, per-bin codebooks, the level search
//! and the artifact.

use std::collections::HashMap;

use wb_core::{
    Accuracy, Artifact, Candidate, CodebookRef, Context, EncodedTensor, Encoding, Evaluator,
    GradientConfig, Gradients, Importance, MethodError, Threshold, ValueTable, WeightSet,
};
use wb_kernels::{kmeans_1d, uniform_bins, KMeans1dParams};

use crate::diag::{BinRecord, Diagnostics, LevelStep, SearchLog, SensitivityRecord};
use crate::{BinBy, BinQuant, Levels, Schedule, ID};

/// Lloyd iterations and tolerance of every k-means (the kernel's defaults, as
/// `kmeans-uniform` uses them).
const KMEANS_MAX_ITER: usize = 100;
const KMEANS_TOL: f64 = 1e-4;

fn err(what: impl std::fmt::Display) -> MethodError {
    MethodError::Other(format!("{ID}: {what}"))
}

/// A codebook and one index per value.
type Quantized = (Vec<f32>, Vec<u32>);

/// One layer's sensitivity: the score the binning sorts by, and top-1 on the search
/// subset with the layer alone quantized (perturbation reading only).
#[derive(Debug, Clone, Copy)]
struct LayerScore {
    score: f64,
    top1: Option<f64>,
}

/// `data` quantized to `levels` shared values.
fn quantize(data: &[f32], levels: usize, kind: Levels) -> Result<Quantized, MethodError> {
    match kind {
        Levels::Kmeans => {
            let p = KMeans1dParams {
                k: levels,
                max_iter: KMEANS_MAX_ITER,
                tol: KMEANS_TOL,
            };
            let km = kmeans_1d(data, &p).map_err(err)?;
            Ok((km.centroids, km.labels))
        }
        Levels::Uniform => {
            let ub = uniform_bins(data, levels).map_err(err)?;
            Ok((ub.values, ub.labels))
        }
    }
}

/// The level count after `levels` in the search, or `None` at the minimum.
pub fn next_levels(levels: usize, schedule: Schedule, min: usize) -> Option<usize> {
    if levels <= min {
        return None;
    }
    Some(match schedule {
        Schedule::Halve => (levels / 2).max(min),
        Schedule::Decrement => levels - 1,
    })
}

/// Cuts layers into at most `bins` bins of similar sensitivity: the layers sorted by
/// `(sensitivity, position)` ascending, then cut into contiguous runs of about equal
/// weight (`BinBy::Weights`) or layer (`BinBy::Layers`) counts, none empty. Returns
/// positions into `sensitivity`, least sensitive bin first, each bin in input order.
pub fn bin_layers(sensitivity: &[f64], sizes: &[usize], bins: usize, by: BinBy) -> Vec<Vec<usize>> {
    let n = sensitivity.len();
    let b = bins.min(n);
    if b == 0 {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&x, &y| sensitivity[x].total_cmp(&sensitivity[y]).then(x.cmp(&y)));
    let weight = |i: usize| match by {
        BinBy::Weights => sizes[i] as f64,
        BinBy::Layers => 1.0,
    };
    let total: f64 = order.iter().map(|&i| weight(i)).sum();
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); b];
    let (mut bin, mut cum) = (0usize, 0.0f64);
    for (k, &i) in order.iter().enumerate() {
        let left = n - k;
        // Move on when this bin has its share and the next one is still empty, but
        // never leave fewer layers than bins still to fill.
        let must_move = left <= b - 1 - bin && !out[bin].is_empty();
        let full = !out[bin].is_empty() && cum >= total * (bin + 1) as f64 / b as f64;
        if bin + 1 < b && (must_move || full) {
            bin += 1;
        }
        out[bin].push(i);
        cum += weight(i);
    }
    for bin in &mut out {
        bin.sort_unstable();
    }
    out
}

/// The state the steps share: the weights, the compressible layers and the evaluator.
struct Run<'w, 'e> {
    m: &'w BinQuant,
    weights: &'w WeightSet,
    /// Positions of the compressible tensors in `weights`.
    layers: Vec<usize>,
    ev: &'e mut dyn Evaluator,
    /// Codebook and indices of each (bin, level count) built so far.
    cache: HashMap<(usize, usize), Quantized>,
}

impl Run<'_, '_> {
    /// Every layer quantized alone to `probe_levels`; the drop of top-1 on the search
    /// subset against `base`.
    fn perturbation(
        &mut self,
        base: &Accuracy,
        progress: &dyn wb_core::Progress,
    ) -> Result<Vec<LayerScore>, MethodError> {
        let mut out = Vec::with_capacity(self.layers.len());
        for &li in &self.layers {
            let t = &self.weights.tensors[li];
            progress.message(&format!("sensitivity of {}", t.name));
            let (cb, labels) = quantize(&t.data, self.m.probe_levels, self.m.levels)?;
            let mut w = self.weights.clone();
            w.tensors[li].data = labels.iter().map(|&i| cb[i as usize]).collect();
            let acc = self.ev.evaluate(&w)?;
            out.push(LayerScore {
                score: base.top1_pct() - acc.top1_pct(),
                top1: Some(acc.top1_pct()),
            });
            progress.inc(1);
        }
        Ok(out)
    }

    /// Codebook and indices of bin `b` (its layers' weights together) at `levels`.
    fn bin_codebook(
        &mut self,
        bins: &[Vec<usize>],
        b: usize,
        levels: usize,
    ) -> Result<&Quantized, MethodError> {
        if !self.cache.contains_key(&(b, levels)) {
            let data: Vec<f32> = bins[b]
                .iter()
                .flat_map(|&p| self.weights.tensors[self.layers[p]].data.iter().copied())
                .collect();
            let q = quantize(&data, levels, self.m.levels)?;
            self.cache.insert((b, levels), q);
        }
        Ok(&self.cache[&(b, levels)])
    }

    /// The artifact for per-bin level counts: one shared FP32 codebook per bin, each
    /// of its layers' indices at ⌈log2 |codebook|⌉ bits; other tensors FP32.
    fn artifact(&mut self, bins: &[Vec<usize>], levels: &[usize]) -> Result<Artifact, MethodError> {
        let mut shared = Vec::with_capacity(bins.len());
        let mut encodings: HashMap<usize, Encoding> = HashMap::new();
        for (b, layers) in bins.iter().enumerate() {
            let (cb, labels) = self.bin_codebook(bins, b, levels[b])?.clone();
            let mut at = 0;
            for &p in layers {
                let li = self.layers[p];
                let n = self.weights.tensors[li].numel();
                let table = ValueTable::F32(CodebookRef::Shared(b as u32));
                let enc = Encoding::indexed_fixed(table, cb.len(), labels[at..at + n].to_vec());
                encodings.insert(li, enc);
                at += n;
            }
            shared.push(cb);
        }
        let tensors = self
            .weights
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| match encodings.remove(&i) {
                Some(e) => EncodedTensor::with(t, e),
                None => EncodedTensor::dense(t),
            })
            .collect();
        let a = Artifact {
            shared_codebooks: shared,
            tensors,
            ..Default::default()
        };
        a.validate()?;
        Ok(a)
    }

    /// Lowers the level count of each bin in turn, least sensitive first, while top-1
    /// on the search subset stays at or above `target` correct images.
    fn level_search(
        &mut self,
        bins: &[Vec<usize>],
        target: usize,
        progress: &dyn wb_core::Progress,
    ) -> Result<(Vec<usize>, Vec<LevelStep>), MethodError> {
        let mut levels = vec![self.m.init_levels; bins.len()];
        let mut steps = Vec::new();
        for b in 0..bins.len() {
            progress.message(&format!("levels of bin {b}"));
            while let Some(next) = next_levels(levels[b], self.m.schedule, self.m.min_levels) {
                let mut trial = levels.clone();
                trial[b] = next;
                let w = self.artifact(bins, &trial)?.decode()?;
                let answer = self.ev.evaluate_threshold(&w, target)?;
                let (correct, seen) = match answer {
                    Threshold::Reached(a) => (a.top1_correct, a.total),
                    Threshold::Below {
                        top1_correct_seen,
                        seen,
                    } => (top1_correct_seen, seen),
                };
                steps.push(LevelStep {
                    step: steps.len(),
                    bin: b,
                    levels: next,
                    reached: answer.reached(),
                    top1_correct_seen: correct as u64,
                    seen: seen as u64,
                });
                progress.inc(1);
                if !answer.reached() {
                    break;
                }
                levels = trial;
            }
        }
        Ok((levels, steps))
    }
}

/// The mean importance of each compressible layer's weights, from gradients taken at
/// `weights` on labelled search images.
fn gradient_scores(
    m: &BinQuant,
    kind: Importance,
    weights: &WeightSet,
    ctx: &mut Context<'_>,
) -> Result<(Vec<LayerScore>, Gradients), MethodError> {
    let progress = ctx.progress;
    progress.message(&format!("gradients ({kind})"));
    let cfg = GradientConfig {
        images: m.calibration_images,
        batch: m.calibration_batch,
        seed: ctx.seed,
    };
    let grads = ctx
        .require_gradients(ID)?
        .gradients(weights, &cfg, progress)?;
    let scores = grads
        .importance(kind, weights)?
        .iter()
        .map(|imp| LayerScore {
            score: imp.iter().map(|&x| f64::from(x)).sum::<f64>() / imp.len().max(1) as f64,
            top1: None,
        })
        .collect();
    Ok((scores, grads))
}

/// The whole method: FP32 on the search subset, sensitivity, bins, level search, the
/// chosen point as the one candidate.
pub(crate) fn run(
    m: &BinQuant,
    weights: &WeightSet,
    ctx: &mut Context<'_>,
) -> Result<Vec<Candidate>, MethodError> {
    let layers: Vec<usize> = (0..weights.tensors.len())
        .filter(|&i| weights.tensors[i].compressible)
        .collect();
    if layers.is_empty() {
        return Err(err("the model has no compressible tensor"));
    }
    // Gradients come first: the evaluator below holds the context until the end.
    let from_gradients = match m.sensitivity.importance() {
        Some(kind) => Some(gradient_scores(m, kind, weights, ctx)?),
        None => None,
    };
    let progress = ctx.progress;
    let ev = ctx.require_evaluator(ID)?;
    let base = ev.evaluate(weights)?;
    let images = ev.images();
    let target = target_correct(base.top1_correct, images, m.tolerance_pp);
    let mut run = Run {
        m,
        weights,
        layers,
        ev,
        cache: HashMap::new(),
    };
    progress.set_length(run.layers.len() as u64);
    let (sens, grads) = match from_gradients {
        Some((scores, g)) => (scores, Some(g)),
        None => (run.perturbation(&base, progress)?, None),
    };
    let sizes: Vec<usize> = run
        .layers
        .iter()
        .map(|&i| weights.tensors[i].numel())
        .collect();
    let scores: Vec<f64> = sens.iter().map(|s| s.score).collect();
    let bins = bin_layers(&scores, &sizes, m.bins, m.bin_by);
    let (levels, steps) = run.level_search(&bins, target, progress)?;
    let artifact = run.artifact(&bins, &levels)?;
    let chosen = run.ev.evaluate(&artifact.decode()?)?;
    let stats = run.ev.stats();
    let size = artifact.size();
    let index_bits = size.component(|t| t.index_bits);
    let diag = Diagnostics {
        sensitivity: m.sensitivity.name().into(),
        gradient_images: grads.as_ref().map(|g| g.images as u64),
        gradient_batches: grads.as_ref().map(|g| g.batches as u64),
        search_images: images as u64,
        base_top1_search: base.top1_pct(),
        tolerance_pp: m.tolerance_pp,
        target_correct_search: target as u64,
        chosen_top1_search: chosen.top1_pct(),
        met_on_search: chosen.top1_correct >= target,
        avg_index_bits: index_bits as f64 / size.counted_params.max(1) as f64,
        bins: bin_records(&run, &bins, &levels, &scores, &sizes, &artifact),
        evaluations: stats.evaluations,
        cache_hits: stats.cache_hits,
        search: SearchLog {
            sensitivity: sensitivity_records(&run, &bins, &sens, &sizes, base.top1_pct()),
            levels: steps,
        },
    };
    Ok(vec![Candidate::chosen(
        "chosen",
        artifact,
        serde_json::to_value(&diag).map_err(err)?,
    )])
}

/// Fewest correct images of `images` that keep top-1 within `tolerance_pp` of
/// `base_correct` (rounded up, so the tolerance is never exceeded).
pub(crate) fn target_correct(base_correct: usize, images: usize, tolerance_pp: f64) -> usize {
    let allowed = tolerance_pp / 100.0 * images as f64;
    // The small slack keeps an exact tolerance (e.g. 1 pp of 2,000 = 20 images) from
    // becoming 21 through rounding of the product.
    let t = (base_correct as f64 - allowed - 1e-9).ceil();
    t.max(0.0) as usize
}

fn bin_records(
    run: &Run<'_, '_>,
    bins: &[Vec<usize>],
    levels: &[usize],
    scores: &[f64],
    sizes: &[usize],
    artifact: &Artifact,
) -> Vec<BinRecord> {
    bins.iter()
        .enumerate()
        .map(|(b, ps)| BinRecord {
            bin: b,
            layers: ps
                .iter()
                .map(|&p| run.weights.tensors[run.layers[p]].name.clone())
                .collect(),
            weights: ps.iter().map(|&p| sizes[p] as u64).sum(),
            sensitivity_mean: ps.iter().map(|&p| scores[p]).sum::<f64>() / ps.len() as f64,
            levels: levels[b],
            shared_values: artifact.shared_codebooks[b].len(),
        })
        .collect()
}

fn sensitivity_records(
    run: &Run<'_, '_>,
    bins: &[Vec<usize>],
    sens: &[LayerScore],
    sizes: &[usize],
    base_top1: f64,
) -> Vec<SensitivityRecord> {
    let bin_of = |p: usize| bins.iter().position(|b| b.contains(&p)).unwrap_or(0);
    sens.iter()
        .enumerate()
        .map(|(p, s)| SensitivityRecord {
            layer: run.weights.tensors[run.layers[p]].name.clone(),
            weights: sizes[p] as u64,
            score: Some(s.score),
            top1_search: s.top1,
            drop_pp: s.top1.map(|t| base_top1 - t),
            bin: bin_of(p),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_keeps_the_tolerance_exactly() {
        assert_eq!(target_correct(1800, 2000, 1.0), 1780);
        assert_eq!(target_correct(1800, 2000, 0.0), 1800);
        assert_eq!(target_correct(1801, 2000, 0.04), 1801);
        assert_eq!(target_correct(5, 2000, 100.0), 0);
    }

    #[test]
    fn schedules_stop_at_the_minimum() {
        assert_eq!(next_levels(64, Schedule::Halve, 2), Some(32));
        assert_eq!(next_levels(3, Schedule::Halve, 2), Some(2));
        assert_eq!(next_levels(2, Schedule::Halve, 2), None);
        assert_eq!(next_levels(5, Schedule::Decrement, 4), Some(4));
        assert_eq!(next_levels(4, Schedule::Decrement, 4), None);
    }
}
