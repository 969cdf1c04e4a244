//! The exploration: baseline, layer sweep, candidate pruning with relaxation,
//! NSGA-II over per-layer candidate indices, final front.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use serde_json::{json, Value};
use wb_core::bitpack::index_bits;
use wb_core::{
    Artifact, Candidate, Context, Encoding, EvalError, Evaluator, Method, MethodError, Needs,
    ParamError, Progress, Threshold, WeightSet,
};

use crate::accel::{Count, Screen, ScreenLog};
use wb_kernels::{
    hypervolume_2d, kmeans_1d, non_dominated_sort, nsga2_seeded, KMeans1d, KMeans1dParams,
    Nsga2Error, Nsga2Params,
};

use crate::accounting::{cr_global, cr_obj, LayerCost};
use crate::grid::k_grid;
use crate::RELAX_FACTOR;

use wb_core::params::nsga2;

wb_core::param_choice! {
    /// How NSGA-II's first generation is drawn.
    pub enum Init {
        /// `pop_size` random candidate vectors (pymoo `int_random`), as the paper's code.
        Random = "random",
        /// The uniform configurations first (see [`uniform_seeds`]), then random vectors
        /// up to `pop_size`. A deviation from the paper (crate README, Deviations).
        Uniform = "uniform",
    }
}

wb_core::method_params! {
    /// The `ws-dse` method with its parameters (see the crate documentation). Each
    /// field is declared once here: its doc line, default and range are the
    /// parameter's.
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub struct WsDse {
        /// MLPerf factor: pass iff top-1 > quality × FP32 top-1 on the search subset (0.99
        /// heavy models, 0.98 light; the code classes all CIFAR models as heavy)
        pub quality: f64 = crate::DEFAULT_QUALITY => float(0.5, 1.0),
        /// ×0.9 relaxations of `quality` allowed when a layer has no candidate
        pub relaxations: usize = crate::DEFAULT_RELAXATIONS => int(0, 50),
        /// NSGA-II population (the paper's code: 100).
        pub pop_size: usize = crate::DEFAULT_POP_SIZE => shared(nsga2::POP_SIZE),
        /// NSGA-II generations, the initial population included (the paper's code: 100).
        pub generations: usize = crate::DEFAULT_GENERATIONS => shared(nsga2::GENERATIONS),
        /// Probability that a pair of parents is crossed (integer SBX).
        pub sbx_prob: f64 = 0.9 => shared(nsga2::SBX_PROB),
        /// SBX distribution index (pymoo int_sbx: 30).
        pub sbx_eta: f64 = 30.0 => shared(nsga2::SBX_ETA),
        /// Polynomial-mutation distribution index (pymoo int_pm: 20; probability 1/layers).
        pub pm_eta: f64 = 20.0 => shared(nsga2::PM_ETA),
        /// smallest k of the sweep grid
        pub k_min: usize = 2 => int(2, 65_536),
        /// largest k of the sweep grid (`k_max ≥ k_min`, checked)
        pub k_max: usize = 1024 => int(2, 65_536),
        /// log-spaced points before truncation to integers and de-duplication (100 → the
        /// paper's 81 values in [2, 1024]; 10 → the powers of two 2…1024, one per
        /// bit-width)
        pub k_points: usize = 100 => int(1, 10_000),
        /// Lloyd iterations per clustering
        pub max_iter: usize = 100 => int(1, 100_000),
        /// stop when Σ (centroid shift)² of one iteration ≤ tol (absolute)
        pub tol: f64 = 1e-4 => float(0.0, 1.0),
        /// NSGA-II's first generation: `pop_size` random candidate vectors (the paper's
        /// code, pymoo `int_random`), or the uniform configurations (for each index
        /// bit-width some layer kept, every layer at its candidate nearest to it, the wider
        /// one on a tie) followed by random vectors up to `pop_size` (Deviation 9)
        pub init: Init = Init::Random => choice,
    }
}

/// The "uniform" starting points of `init = "uniform"`: for every index bit-width `b`
/// that some layer's candidate list holds (ascending), the vector of candidate
/// indices that gives each layer its candidate whose bit-width ⌈log2 k⌉ is nearest to
/// `b` (the wider one on a tie, since pruning already dropped the bit-widths that
/// lose accuracy). Where every layer kept `b`, that vector is uniform weight sharing
/// at `2^b` (or the sweep's k of that bit-width) in every layer. Duplicates are
/// dropped, first occurrence kept.
pub fn uniform_seeds(lists: &[Vec<usize>]) -> Vec<Vec<i64>> {
    let mut widths: Vec<u8> = lists.iter().flatten().map(|&k| index_bits(k)).collect();
    widths.sort_unstable();
    widths.dedup();
    let mut out: Vec<Vec<i64>> = Vec::new();
    for b in widths {
        let x: Vec<i64> = lists
            .iter()
            .map(|ks| {
                let pick = ks
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, &k)| {
                        let w = index_bits(k);
                        // Distance first, then prefer the wider bit-width.
                        (w.abs_diff(b), std::cmp::Reverse(w))
                    })
                    .map_or(0, |(i, _)| i);
                pick as i64
            })
            .collect();
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

/// Answer of one layer-sweep query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepOutcome {
    /// The complete top-1 count on the search subset.
    Exact(usize),
    /// Fewer than `threshold` correct: the evaluation stopped after `seen` images
    /// with `correct_seen` right (`seen = 0` when the cache already knew the miss).
    Below {
        /// The threshold (top-1 count) that was missed.
        threshold: usize,
        /// Images evaluated before stopping.
        seen: usize,
        /// Correct among them.
        correct_seen: usize,
    },
}

/// One row of the layer sweep: layer `layer` alone clustered with `k` values.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepEntry {
    /// Index among the compressible layers.
    pub layer: usize,
    /// Clusters.
    pub k: usize,
    /// k-means inertia of the layer.
    pub inertia: f64,
    /// Lloyd iterations run.
    pub iterations: usize,
    /// Accuracy answer.
    pub outcome: SweepOutcome,
}

/// The smallest top-1 count `c` with `c / images > quality · (baseline / images)`,
/// evaluated in `f64` as the reference code compares accuracies (`acc > max_acl · A0`);
/// `images + 1` when no count can pass.
pub fn min_correct_above(quality: f64, baseline_correct: usize, images: usize) -> usize {
    let n = images as f64;
    let target = quality * (baseline_correct as f64 / n);
    let passes = |c: usize| c as f64 / n > target;
    let mut c = ((target * n).floor().max(0.0) as usize).saturating_sub(2);
    while c <= images && !passes(c) {
        c += 1;
    }
    c
}

/// Candidate pruning (papers.md §2.7 step 2): for each of `layers` layers, among the
/// entries whose exact top-1 count reaches `threshold`, keep per index bit-width
/// ⌈log2 k⌉ the single k with the most correct images (the smallest accuracy loss),
/// the smallest such k on a tie. Returns each layer's kept k, ascending (so at most one
/// per bit-width); a layer with no passing entry gets an empty list.
pub fn prune(entries: &[SweepEntry], layers: usize, threshold: usize) -> Vec<Vec<usize>> {
    let mut best: Vec<std::collections::BTreeMap<u8, (usize, usize)>> =
        vec![Default::default(); layers];
    for e in entries {
        let SweepOutcome::Exact(c) = e.outcome else {
            continue;
        };
        if c < threshold || e.layer >= layers {
            continue;
        }
        let slot = best[e.layer].entry(index_bits(e.k)).or_insert((e.k, c));
        if c > slot.1 || (c == slot.1 && e.k < slot.0) {
            *slot = (e.k, c);
        }
    }
    best.into_iter()
        .map(|m| m.into_values().map(|(k, _)| k).collect())
        .collect()
}

/// A compressible layer of the model.
struct Layer {
    tensor: usize,
    name: String,
    numel: usize,
}

impl WsDse {
    /// Cross-field checks.
    pub(crate) fn check(&self) -> Result<(), ParamError> {
        if self.k_min > self.k_max {
            return Err(ParamError::new(
                "k_max",
                format!("k_max = {} is below k_min = {}", self.k_max, self.k_min),
            ));
        }
        Ok(())
    }

    fn nsga_params(&self, seed: u64) -> Nsga2Params {
        Nsga2Params {
            pop_size: self.pop_size,
            generations: self.generations,
            sbx_prob: self.sbx_prob,
            sbx_eta: self.sbx_eta,
            pm_eta: self.pm_eta,
            seed,
            ..Nsga2Params::default()
        }
    }

    fn cluster(&self, name: &str, data: &[f32], k: usize) -> Result<KMeans1d, MethodError> {
        kmeans_1d(
            data,
            &KMeans1dParams {
                k,
                max_iter: self.max_iter,
                tol: self.tol,
            },
        )
        .map_err(|e| MethodError::Other(format!("layer `{name}`, k = {k}: {e}")))
    }
}

/// One sweep query: is layer-alone `ws` at `threshold`? With `race`, the evaluation
/// may also stop on the racing bound (the second value says so).
fn query(
    ev: &mut dyn Evaluator,
    ws: &WeightSet,
    threshold: usize,
    race: Option<f64>,
) -> Result<(SweepOutcome, bool), EvalError> {
    let images = ev.images();
    let (answer, raced) = match race {
        Some(conf) => {
            let r = ev.evaluate_race(ws, threshold, conf)?;
            (r.answer, r.raced)
        }
        None => (ev.evaluate_threshold(ws, threshold)?, false),
    };
    let outcome = match answer {
        Threshold::Reached(a) => SweepOutcome::Exact(a.top1_correct),
        Threshold::Below {
            top1_correct_seen,
            seen,
        } if seen == images => SweepOutcome::Exact(top1_correct_seen),
        Threshold::Below {
            top1_correct_seen,
            seen,
        } => SweepOutcome::Below {
            threshold,
            seen,
            correct_seen: top1_correct_seen,
        },
    };
    Ok((outcome, raced))
}

/// `weights` with the given tensors' values replaced.
fn replaced(weights: &WeightSet, with: impl IntoIterator<Item = (usize, Vec<f32>)>) -> WeightSet {
    let mut ws = weights.clone();
    for (t, data) in with {
        ws.tensors[t].data = data;
    }
    ws
}

fn pct(c: usize, n: usize) -> f64 {
    100.0 * c as f64 / n as f64
}

/// The diagnostics of a `ws-dse` candidate (its `extra_json`), written by `compress`
/// and read back by the report view with this same type.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Diagnostics {
    /// k of every compressible layer, in model order.
    pub k: Vec<usize>,
    /// Index bits ⌈log2 k⌉ of every compressible layer.
    pub bits: Vec<u8>,
    /// Top-1 count on the search subset.
    pub search_top1_correct: usize,
    /// Images of the search subset.
    pub search_images: usize,
    /// Top-1 on the search subset, percent.
    pub search_top1_pct: f64,
    /// FP32 top-1 on the search subset, percent.
    pub search_baseline_top1_pct: f64,
    /// FP32 minus this point's top-1 on the search subset, percentage points.
    pub search_top1_loss_pp: f64,
    /// The paper's compression ratio over all weights (the reported one).
    pub cr_global: f64,
    /// The compression ratio NSGA-II optimised.
    pub cr_obj: f64,
    /// The quality factor of the run.
    pub quality: f64,
    /// Whether the point meets the target on the search subset.
    pub meets_target_on_search: bool,
    /// Whether the search chose this point (highest CR meeting the target there).
    pub chosen_on_search: bool,
    /// The search log, on the first candidate only (see the crate README).
    pub search: Option<Value>,
}

impl Diagnostics {
    /// As the JSON of `extra_json`.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("diagnostics always serialize")
    }
}

/// One NSGA-II generation in the search log (`search.generations`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct GenerationRecord {
    /// Generation number, the initial population being 1.
    pub generation: usize,
    /// Evaluator evaluations computed so far (baseline and sweep included).
    pub evaluations: u64,
    /// NSGA-II objective calls so far.
    pub nsga_evaluations: usize,
    /// Hypervolume of the front (top-1 fraction × CR_obj, reference (0, 0)).
    pub hypervolume: f64,
    /// Points on the front.
    pub front_size: usize,
    /// The highest CR_obj in the population that meets the target, if any.
    pub best_cr_obj_meeting_target: Option<f64>,
}

/// What the steps of one exploration share: the parameters, the weights, the
/// compressible layers with their sweep grids, and the baseline on the search subset.
struct Explore<'a> {
    m: &'a WsDse,
    weights: &'a WeightSet,
    progress: &'a dyn Progress,
    layers: Vec<Layer>,
    grid: Vec<usize>,
    /// Each layer's sweep k (the grid, up to the layer's size).
    sweep_ks: Vec<Vec<usize>>,
    /// FP32 top-1 count and images of the search subset.
    c0: usize,
    n: usize,
    /// The smallest passing top-1 count at `quality`.
    target: usize,
    /// Accelerations the experiment turned on (racing, surrogate).
    accel: wb_core::Accel,
    /// Sweep queries (layer, k) stopped on the racing bound.
    sweep_raced: RefCell<Vec<[usize; 2]>>,
}

/// The pruned candidate lists, after as many relaxations as were needed.
struct Pruned {
    lists: Vec<Vec<usize>>,
    quality_used: f64,
    relaxations_used: usize,
    requeries: usize,
    threshold_used: usize,
}

/// NSGA-II over the candidate indices and what its log records.
struct Exploration {
    result: wb_kernels::Nsga2Result,
    /// Top-1 count of every configuration evaluated.
    cache: HashMap<Vec<usize>, usize>,
    method_cache_hits: u64,
    history: Vec<GenerationRecord>,
    seeds: Vec<Vec<i64>>,
    /// What racing and the surrogate did.
    screen: ScreenLog,
}

/// A point of the final front, re-scored with CR_global.
struct Point {
    ks: Vec<usize>,
    correct: usize,
    cr_global: f64,
    cr_obj: f64,
}

impl<'a> Explore<'a> {
    /// The compressible layers and their grids (refusing a model without any, or a
    /// `k_min` above a layer's size), then the FP32 baseline on the search subset.
    fn start(
        m: &'a WsDse,
        weights: &'a WeightSet,
        ctx: (&'a dyn Progress, wb_core::Accel),
        ev: &mut dyn Evaluator,
    ) -> Result<Self, MethodError> {
        let (progress, accel) = ctx;
        let layers: Vec<Layer> = weights
            .tensors
            .iter()
            .enumerate()
            .filter(|(_, t)| t.compressible)
            .map(|(i, t)| Layer {
                tensor: i,
                name: t.name.clone(),
                numel: t.numel(),
            })
            .collect();
        if layers.is_empty() {
            return Err(MethodError::Other(
                "ws-dse: the model has no compressible tensor".into(),
            ));
        }
        if let Some(l) = layers.iter().find(|l| l.numel < m.k_min) {
            return Err(ParamError::new(
                "k_min",
                format!(
                    "k_min = {} exceeds the {} weights of layer `{}`",
                    m.k_min, l.numel, l.name
                ),
            )
            .into());
        }
        let grid = k_grid(m.k_min, m.k_max, m.k_points);
        let sweep_ks: Vec<Vec<usize>> = layers
            .iter()
            .map(|l| grid.iter().copied().filter(|&k| k <= l.numel).collect())
            .collect();
        let sweep_total: usize = sweep_ks.iter().map(Vec::len).sum();
        progress.set_length((1 + sweep_total + m.pop_size * m.generations) as u64);

        // Step 0: baseline on the search subset.
        progress.message("ws-dse: FP32 baseline on the search subset");
        let base = ev.evaluate(weights)?;
        progress.inc(1);
        let (c0, n) = (base.top1_correct, base.total);
        if n == 0 {
            return Err(MethodError::Other(
                "ws-dse: the search subset holds no image".into(),
            ));
        }
        Ok(Self {
            m,
            weights,
            progress,
            layers,
            grid,
            sweep_ks,
            c0,
            n,
            target: min_correct_above(m.quality, c0, n),
            accel,
            sweep_raced: RefCell::new(Vec::new()),
        })
    }

    /// Layer `li` alone clustered with `k` values, everything else FP32.
    fn one_layer(&self, li: usize, k: usize) -> Result<(KMeans1d, WeightSet), MethodError> {
        let layer = &self.layers[li];
        let km = self
            .m
            .cluster(&layer.name, &self.weights.tensors[layer.tensor].data, k)?;
        let ws = replaced(self.weights, [(layer.tensor, km.dequantize())]);
        Ok((km, ws))
    }

    /// [`query`] with the experiment's racing, logging raced stops.
    fn query(
        &self,
        ev: &mut dyn Evaluator,
        ws: &WeightSet,
        threshold: usize,
        (layer, k): (usize, usize),
    ) -> Result<SweepOutcome, EvalError> {
        let (outcome, raced) = query(ev, ws, threshold, self.accel.race)?;
        if raced {
            self.sweep_raced.borrow_mut().push([layer, k]);
        }
        Ok(outcome)
    }

    /// Step 1: the layer-wise sweep, one layer clustered at a time, early exit below
    /// the quality threshold.
    fn sweep(&self, ev: &mut dyn Evaluator) -> Result<Vec<SweepEntry>, MethodError> {
        let total = self.sweep_ks.iter().map(Vec::len).sum();
        let mut entries: Vec<SweepEntry> = Vec::with_capacity(total);
        for (li, layer) in self.layers.iter().enumerate() {
            self.progress.message(&format!(
                "ws-dse sweep: layer {}/{} {}",
                li + 1,
                self.layers.len(),
                layer.name
            ));
            for &k in &self.sweep_ks[li] {
                let (km, ws) = self.one_layer(li, k)?;
                let outcome = self.query(ev, &ws, self.target, (li, k))?;
                entries.push(SweepEntry {
                    layer: li,
                    k,
                    inertia: km.inertia,
                    iterations: km.iterations,
                    outcome,
                });
                self.progress.inc(1);
            }
        }
        Ok(entries)
    }

    /// Step 2: per-layer pruning, relaxing the quality factor while a layer has no
    /// candidate (re-querying the sweep entries that stopped above the new threshold).
    fn prune(
        &self,
        ev: &mut dyn Evaluator,
        entries: &mut [SweepEntry],
    ) -> Result<Pruned, MethodError> {
        let (m, c0, n) = (self.m, self.c0, self.n);
        let mut quality_used = m.quality;
        let mut relaxations_used = 0usize;
        let mut requeries = 0usize;
        let lists = loop {
            let threshold = min_correct_above(quality_used, c0, n);
            for e in entries.iter_mut() {
                if let SweepOutcome::Below { threshold: t, .. } = e.outcome {
                    if t > threshold {
                        let (_, ws) = self.one_layer(e.layer, e.k)?;
                        e.outcome = self.query(ev, &ws, threshold, (e.layer, e.k))?;
                        requeries += 1;
                    }
                }
            }
            let lists = prune(entries, self.layers.len(), threshold);
            match lists.iter().position(Vec::is_empty) {
                None => break lists,
                Some(l) if relaxations_used >= m.relaxations => {
                    return Err(MethodError::Other(format!(
                        "ws-dse: layer `{}` has no k in the sweep with top-1 > {:.4} x FP32 top-1 \
                         on the search subset after {} relaxation(s) of quality {}",
                        self.layers[l].name, quality_used, relaxations_used, m.quality
                    )));
                }
                Some(_) => {
                    relaxations_used += 1;
                    quality_used *= RELAX_FACTOR;
                }
            }
        };
        Ok(Pruned {
            lists,
            quality_used,
            relaxations_used,
            requeries,
            threshold_used: min_correct_above(quality_used, c0, n),
        })
    }

    /// The clusterings of the kept candidates, computed once.
    fn clusters(
        &self,
        lists: &[Vec<usize>],
    ) -> Result<HashMap<(usize, usize), KMeans1d>, MethodError> {
        let mut clusters = HashMap::new();
        for (li, ks) in lists.iter().enumerate() {
            let layer = &self.layers[li];
            for &k in ks {
                let data = &self.weights.tensors[layer.tensor].data;
                clusters.insert((li, k), self.m.cluster(&layer.name, data, k)?);
            }
        }
        Ok(clusters)
    }

    /// The per-layer costs of a configuration.
    fn costs(&self, ks: &[usize]) -> Vec<LayerCost> {
        self.layers
            .iter()
            .zip(ks)
            .map(|(l, &k)| LayerCost { n: l.numel, k })
            .collect()
    }

    /// Step 4: NSGA-II over per-layer candidate indices; objectives (minimised): accuracy
    /// loss on the search subset (fraction) and −CR_obj.
    fn explore(
        &self,
        ev: &mut dyn Evaluator,
        lists: &[Vec<usize>],
        clusters: &HashMap<(usize, usize), KMeans1d>,
        seed: u64,
        entries: &[SweepEntry],
    ) -> Result<Exploration, MethodError> {
        let (m, progress, c0, n, target) = (self.m, self.progress, self.c0, self.n, self.target);
        let bounds: Vec<(i64, i64)> = lists.iter().map(|ks| (0, ks.len() as i64 - 1)).collect();
        let mut cache: HashMap<Vec<usize>, usize> = HashMap::new();
        // Raced or screened configurations: an estimate below their need, never reported.
        let mut estimates: HashMap<Vec<usize>, usize> = HashMap::new();
        let alone = entries
            .iter()
            .filter_map(|e| match e.outcome {
                SweepOutcome::Exact(c) => Some(((e.layer, e.k), c)),
                SweepOutcome::Below { .. } => None,
            })
            .collect();
        let mut screen = Screen::new(self.accel, c0, n, alone);
        let mut method_cache_hits = 0u64;
        let computed = Cell::new(ev.stats().evaluations);
        let mut history: Vec<GenerationRecord> = Vec::new();
        let generations = m.generations;
        let seeds = match m.init {
            Init::Random => Vec::new(),
            Init::Uniform => uniform_seeds(lists),
        };
        let result = nsga2_seeded(
            &bounds,
            &m.nsga_params(seed),
            &seeds,
            |x| -> Result<Vec<f64>, MethodError> {
                let ks: Vec<usize> = x
                    .iter()
                    .enumerate()
                    .map(|(l, &i)| lists[l][i as usize])
                    .collect();
                let c = match cache.get(&ks).or(estimates.get(&ks)) {
                    Some(&c) => {
                        method_cache_hits += 1;
                        c
                    }
                    None => {
                        let ws = self.configuration(&ks, clusters);
                        let need = if screen.active() {
                            let cr = cr_obj(&self.costs(&ks));
                            Screen::need(
                                cache.iter().map(|(k, &c)| (c, cr_obj(&self.costs(k)))),
                                cr,
                            )
                        } else {
                            None
                        };
                        match screen.count(ev, &ws, &ks, need)? {
                            Count::Exact(c) => {
                                cache.insert(ks.clone(), c);
                                c
                            }
                            Count::Estimate(c) => {
                                estimates.insert(ks.clone(), c);
                                c
                            }
                        }
                    }
                };
                computed.set(ev.stats().evaluations);
                progress.inc(1);
                Ok(vec![
                    (c0 as f64 - c as f64) / n as f64,
                    -cr_obj(&self.costs(&ks)),
                ])
            },
            |g| {
                let front: Vec<[f64; 2]> = g
                    .population
                    .iter()
                    .filter(|i| i.rank == 0)
                    .map(|i| [i.f[0], i.f[1]])
                    .collect();
                // Reference point (accuracy 0, CR 0): the hypervolume is the area the
                // front dominates in the (top-1 fraction, CR_obj) plane.
                let hv = hypervolume_2d(&front, [c0 as f64 / n as f64, 0.0]);
                let best_meeting = g
                    .population
                    .iter()
                    .filter(|i| {
                        let c = (c0 as f64 - i.f[0] * n as f64).round();
                        c >= target as f64
                    })
                    .map(|i| -i.f[1])
                    .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
                history.push(GenerationRecord {
                    generation: g.generation,
                    evaluations: computed.get(),
                    nsga_evaluations: g.evaluations,
                    hypervolume: hv,
                    front_size: front.len(),
                    best_cr_obj_meeting_target: best_meeting,
                });
                progress.message(&format!(
                    "ws-dse NSGA-II: generation {}/{generations}, front {}, HV {hv:.4}",
                    g.generation,
                    front.len()
                ));
            },
        )
        .map_err(|e| match e {
            Nsga2Error::Invalid(k) => MethodError::Other(format!("ws-dse NSGA-II: {k}")),
            Nsga2Error::Evaluation(e) => e,
        })?;
        // The front is reported and chosen from: every point on it measured in full.
        for ind in result.front() {
            let ks = self.ks_of(lists, &ind.x);
            if let std::collections::hash_map::Entry::Vacant(slot) = cache.entry(ks) {
                let ws = self.configuration(slot.key(), clusters);
                let Count::Exact(c) = screen.full(ev, &ws, slot.key())? else {
                    unreachable!("a full evaluation is exact")
                };
                slot.insert(c);
                screen.log.front_completed += 1;
            }
        }
        let mut screen_log = screen.log;
        screen_log.sweep_raced = self.sweep_raced.borrow().clone();
        Ok(Exploration {
            result,
            cache,
            method_cache_hits,
            history,
            seeds,
            screen: screen_log,
        })
    }

    /// The k of every layer from NSGA-II's candidate indices.
    fn ks_of(&self, lists: &[Vec<usize>], x: &[i64]) -> Vec<usize> {
        x.iter()
            .enumerate()
            .map(|(l, &i)| lists[l][i as usize])
            .collect()
    }

    /// The weights of configuration `ks` (each layer clustered with its k).
    fn configuration(
        &self,
        ks: &[usize],
        clusters: &HashMap<(usize, usize), KMeans1d>,
    ) -> WeightSet {
        replaced(
            self.weights,
            self.layers
                .iter()
                .zip(ks)
                .enumerate()
                .map(|(li, (l, &k))| (l.tensor, clusters[&(li, k)].dequantize())),
        )
    }

    /// Step 5: the final front, re-extracted with CR_global (the reported ratio), by
    /// increasing compression; and the index of the search's own choice (the highest
    /// CR_global meeting the target on the search subset).
    fn rescore(&self, lists: &[Vec<usize>], x: &Exploration) -> (Vec<Point>, Option<usize>) {
        let mut points: Vec<Point> = Vec::new();
        for ind in x.result.front() {
            let ks = self.ks_of(lists, &ind.x);
            if points.iter().any(|p| p.ks == ks) {
                continue;
            }
            let correct = x.cache[&ks];
            let c = self.costs(&ks);
            points.push(Point {
                ks,
                correct,
                cr_global: cr_global(&c),
                cr_obj: cr_obj(&c),
            });
        }
        let objectives: Vec<[f64; 2]> = points
            .iter()
            .map(|p| [-p.cr_global, self.c0 as f64 - p.correct as f64])
            .collect();
        let first = non_dominated_sort(&objectives)
            .into_iter()
            .next()
            .unwrap_or_default();
        let mut points: Vec<Point> = points
            .into_iter()
            .enumerate()
            .filter(|(i, _)| first.contains(i))
            .map(|(_, p)| p)
            .collect();
        points.sort_by(|a, b| {
            a.cr_global
                .total_cmp(&b.cr_global)
                .then(b.correct.cmp(&a.correct))
        });
        let chosen = points
            .iter()
            .enumerate()
            .filter(|(_, p)| p.correct >= self.target)
            .max_by(|a, b| a.1.cr_global.total_cmp(&b.1.cr_global))
            .map(|(i, _)| i);
        (points, chosen)
    }

    /// The search log carried by the first candidate: the sweep table, the pruning,
    /// the NSGA-II history and the evaluation counts.
    fn search_log(
        &self,
        entries: &[SweepEntry],
        pruned: &Pruned,
        x: &Exploration,
        sweep_evaluations: u64,
        stats: wb_core::EvalStats,
    ) -> Value {
        let (m, c0, n, lists) = (self.m, self.c0, self.n, &pruned.lists);
        let sweep_table: Vec<Value> = entries
            .iter()
            .map(|e| {
                let (top1, below, seen, seen_correct) = match e.outcome {
                    SweepOutcome::Exact(c) => (Some(c), None, n, c),
                    SweepOutcome::Below {
                        threshold,
                        seen,
                        correct_seen,
                    } => (None, Some(threshold), seen, correct_seen),
                };
                json!({
                    "layer": e.layer,
                    "name": self.layers[e.layer].name,
                    "k": e.k,
                    "bits": index_bits(e.k),
                    "top1_correct": top1,
                    "top1_pct": top1.map(|c| pct(c, n)),
                    "below_threshold": below,
                    "images_seen": seen,
                    "correct_seen": seen_correct,
                    "inertia": e.inertia,
                    "kmeans_iterations": e.iterations,
                })
            })
            .collect();
        let log10_before: f64 = self.sweep_ks.iter().map(|v| (v.len() as f64).log10()).sum();
        let log10_after: f64 = lists.iter().map(|v| (v.len() as f64).log10()).sum();
        let mut log = json!({
            "search_images": n,
            "baseline_top1_correct": c0,
            "baseline_top1_pct": pct(c0, n),
            "quality": m.quality,
            "target_top1_correct": self.target,
            "quality_used": pruned.quality_used,
            "relaxations_used": pruned.relaxations_used,
            "threshold_used_top1_correct": pruned.threshold_used,
            "k_grid": self.grid,
            "layers": self.layers.iter().zip(lists).zip(&self.sweep_ks).map(|((l, ks), sk)| json!({
                "name": l.name,
                "numel": l.numel,
                "sweep_k": sk.len(),
                "candidates_k": ks,
            })).collect::<Vec<_>>(),
            "log10_combinations_sweep_grid": log10_before,
            "log10_combinations_after_pruning": log10_after,
            "sweep": sweep_table,
            "generations": x.history,
            "nsga2": {
                "init": m.init.name(),
                "seed_configurations": x.seeds.iter().map(|s| s
                    .iter()
                    .enumerate()
                    .map(|(l, &i)| lists[l][i as usize])
                    .collect::<Vec<_>>()).collect::<Vec<_>>(),
                "pop_size": m.pop_size,
                "generations": x.result.generations,
                "sbx_prob": m.sbx_prob,
                "sbx_eta": m.sbx_eta,
                "pm_eta": m.pm_eta,
                "pm_prob": 1.0 / self.layers.len() as f64,
                "objective_calls": x.result.evaluations,
                "distinct_configurations": x.cache.len(),
                "method_cache_hits": x.method_cache_hits,
            },
            "evaluations": {
                "baseline": 1,
                "sweep": sweep_evaluations.saturating_sub(1),
                "sweep_entries": entries.len(),
                "relaxation_requeries": pruned.requeries,
                "total_computed": stats.evaluations,
                "evaluator_cache_hits": stats.cache_hits,
            },
            "hypervolume_reference": {"top1_fraction": 0.0, "cr_obj": 0.0},
        });
        // Only when on, so that a search without accelerations writes exactly what it
        // wrote before they existed (the golden digests check it).
        if self.accel != wb_core::Accel::default() {
            log["accelerations"] = json!(x.screen);
        }
        log
    }

    /// One candidate per front point (`pNN`, by increasing compression), the first
    /// carrying the search log.
    fn candidates(
        &self,
        points: &[Point],
        chosen: Option<usize>,
        clusters: &HashMap<(usize, usize), KMeans1d>,
        search_log: Value,
    ) -> Result<Vec<Candidate>, MethodError> {
        let (c0, n) = (self.c0, self.n);
        let width = points.len().saturating_sub(1).to_string().len().max(2);
        let mut out = Vec::with_capacity(points.len());
        let mut log = Some(search_log);
        for (i, p) in points.iter().enumerate() {
            let mut li = 0usize;
            let artifact = Artifact::map_compressible(self.weights, |_| {
                let km = &clusters[&(li, p.ks[li])];
                li += 1;
                Ok(Encoding::codebook_local(
                    km.centroids.clone(),
                    km.labels.clone(),
                ))
            })?;
            out.push(Candidate {
                label: format!("p{i:0width$}"),
                artifact,
                chosen: chosen == Some(i),
                extra: Diagnostics {
                    k: p.ks.clone(),
                    bits: p.ks.iter().map(|&k| index_bits(k)).collect(),
                    search_top1_correct: p.correct,
                    search_images: n,
                    search_top1_pct: pct(p.correct, n),
                    search_baseline_top1_pct: pct(c0, n),
                    search_top1_loss_pp: pct(c0, n) - pct(p.correct, n),
                    cr_global: p.cr_global,
                    cr_obj: p.cr_obj,
                    quality: self.m.quality,
                    meets_target_on_search: p.correct >= self.target,
                    chosen_on_search: chosen == Some(i),
                    search: log.take(),
                }
                .to_value(),
            });
        }
        Ok(out)
    }
}

impl Method for WsDse {
    fn needs(&self) -> Needs {
        Needs::EVALUATOR
    }

    /// Baseline, layer sweep, pruning (with relaxation), NSGA-II over the kept
    /// candidates, and the final front re-scored with CR_global.
    fn compress(
        &self,
        weights: &WeightSet,
        ctx: &mut Context<'_>,
    ) -> Result<Vec<Candidate>, MethodError> {
        let (seed, progress, accel) = (ctx.seed, ctx.progress, ctx.accel);
        let ev: &mut dyn Evaluator = ctx.require_evaluator("ws-dse")?;
        let job = Explore::start(self, weights, (progress, accel), ev)?;
        let mut entries = job.sweep(ev)?;
        let sweep_evaluations = ev.stats().evaluations;
        let pruned = job.prune(ev, &mut entries)?;
        let clusters = job.clusters(&pruned.lists)?;
        let x = job.explore(ev, &pruned.lists, &clusters, seed, &entries)?;
        let (points, chosen) = job.rescore(&pruned.lists, &x);
        let log = job.search_log(&entries, &pruned, &x, sweep_evaluations, ev.stats());
        job.candidates(&points, chosen, &clusters, log)
    }
}
