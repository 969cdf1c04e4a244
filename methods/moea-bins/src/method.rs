//! The method: model-wide uniform binning, NSGA-II over k, merge, Huffman coding.

use std::cell::Cell;
use std::collections::HashMap;

use serde_json::{json, Value};
use wb_core::bitpack::index_bits;
use wb_core::encoding::frequencies;
use wb_core::{
    Artifact, Candidate, CodeTableRef, CodebookRef, Context, CoreError, EncodedTensor, Encoding,
    EvalError, Evaluator, IndexCoding, Method, MethodError, Needs, ParamError, Progress, Threshold,
    ValueTable, WeightSet,
};
use wb_kernels::huffman::{code_lengths, coded_bits};
use wb_kernels::{
    hypervolume_2d, non_dominated_sort, nsga2_with_initial, uniform_bins, Nsga2Error, Nsga2Params,
    UniformBins,
};

use wb_core::params::nsga2;

use crate::diag::{Accounting, Diagnostics};
use crate::merge::{group_counts, group_of_bin, group_values, merge_bins_budget, MergeOrder};

const ID: &str = "moea-bins";

wb_core::param_choice! {
    /// What the method runs.
    pub enum Mode {
        /// NSGA-II over k, then the merge of the qualifying front solutions.
        Moea = "moea",
        /// Uniform binning at `k = ub` only (the paper's "Random UB" row).
        RandomUb = "random-ub",
    }
}

wb_core::param_choice! {
    /// Which tensors go into the model-wide vector.
    pub enum Scope {
        /// The tensors the harness marks compressible (conv and linear weights by default).
        ConvLinear = "conv-linear",
        /// Every parameter tensor of the weight set.
        All = "all",
    }
}

wb_core::param_choice! {
    /// The greedy merge of neighbouring bins, or none.
    pub enum Merge {
        /// [`MergeOrder::LeftToRight`] (the paper's).
        LeftToRight = "left_to_right",
        /// [`MergeOrder::CenterToEnd`] (the 2025 code's).
        CenterToEnd = "center_to_end",
        /// No merge.
        None = "none",
    }
}

impl Merge {
    /// The merge order, `None` for no merge.
    pub fn order(self) -> Option<MergeOrder> {
        match self {
            Merge::LeftToRight => Some(MergeOrder::LeftToRight),
            Merge::CenterToEnd => Some(MergeOrder::CenterToEnd),
            Merge::None => None,
        }
    }
}

wb_core::param_choice! {
    /// Which front solutions are merged.
    pub enum MergeWhich {
        /// Search error not above the FP32 model's.
        NotWorse = "not_worse",
        /// Search error strictly below the FP32 model's (the 2024 code).
        Better = "better",
        /// Every front solution.
        All = "all",
    }
}

wb_core::param_choice! {
    /// How the indices of the artifact are stored.
    pub enum Coding {
        /// One Huffman tree (shared code table) for the whole model.
        HuffmanModel = "model",
        /// One Huffman tree (local code table) per tensor.
        HuffmanLayer = "layer",
        /// Fixed width ⌈log2 B⌉ bits per index.
        Fixed = "none",
    }
}

impl Coding {
    /// The encoding's name in the diagnostics (`extra.encoding`).
    fn encoding_name(self) -> &'static str {
        match self {
            Coding::HuffmanModel => "huffman-model",
            Coding::HuffmanLayer => "huffman-layer",
            Coding::Fixed => "fixed",
        }
    }
}

wb_core::method_params! {
    /// The `moea-bins` method with its parameters (see the crate documentation). Each
    /// field is declared once here: its doc line, default and range are the
    /// parameter's.
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub struct MoeaBins {
        /// search + merge (`moea`), or only the binning at `k = ub` (`random-ub`: one
        /// candidate, no evaluator needed)
        pub mode: Mode = Mode::Moea => choice,
        /// `conv-linear`: the tensors the harness marks compressible (the model card
        /// decides; conv and linear weights by default = the 2025 code); `all`: every
        /// parameter tensor of the weight set (conv/linear weights, biases, BatchNorm γ/β =
        /// the 2024 code's trainable parameters)
        pub scope: Scope = Scope::ConvLinear => choice,
        /// smallest k (number of linspace edges) searched
        pub lb: usize = crate::DEFAULT_LB => int(1, crate::MAX_K),
        /// largest k searched (`lb ≤ ub`, checked at build) and the k of Random UB
        pub ub: usize = crate::DEFAULT_UB => int(1, crate::MAX_K),
        /// NSGA-II population, initialised with linspace(lb, ub, pop_size) truncated to
        /// integers.
        pub pop_size: usize = 100 => shared(nsga2::POP_SIZE),
        /// NSGA-II generations, the initial population counting as the first.
        pub generations: usize = 100 => shared(nsga2::GENERATIONS),
        /// Probability that a pair of parents is crossed (SBX).
        pub sbx_prob: f64 = 0.9 => shared(nsga2::SBX_PROB),
        /// SBX distribution index (pymoo 0.6 default: 15).
        pub sbx_eta: f64 = 15.0 => shared(nsga2::SBX_ETA),
        /// Polynomial-mutation distribution index (pymoo 0.6 default: 20).
        pub pm_eta: f64 = 20.0 => shared(nsga2::PM_ETA),
        /// Probability that k is mutated (pymoo 0.6 PM: min(0.5, 1/n_var) = 0.5 for one
        /// variable).
        pub pm_prob: f64 = 0.5 => shared(nsga2::PM_PROB),
        /// merge order of neighbouring bins on the qualifying front solutions
        pub merge: Merge = Merge::LeftToRight => choice,
        /// which front solutions are merged: search error ≤ FP32 error (`not_worse`), <
        /// FP32 error (`better`, the 2024 code), or all
        pub merge_which: MergeWhich = MergeWhich::NotWorse => choice,
        /// most evaluations of the whole merge phase (fewest-bins solutions first; a pass
        /// cut by it keeps its merges, `merge_complete = false`); 0 = no merge; the paper
        /// sets no bound
        pub merge_budget: usize = crate::DEFAULT_MERGE_BUDGET => int(0, 1_000_000),
        /// index coding: one Huffman tree per model, one per tensor, or fixed width ⌈log2
        /// B⌉ (`none`)
        pub huffman: Coding = Coding::HuffmanModel => choice,
        /// also emit the paper's table rows as candidates: `random-ub` (k = ub, fixed
        /// width), `ub-pNN` (each qualifying front solution before merge, fixed width),
        /// `merge-pNN` (each final point, fixed width)
        pub emit_stages: bool = false => flag,
    }
}

impl MoeaBins {
    /// Checks every field against its declaration and the cross-field constraint
    /// `lb <= ub`, before any work.
    ///
    /// # Errors
    /// [`ParamError`] naming the first offending field.
    pub fn check(&self) -> Result<(), ParamError> {
        self.check_ranges()?;
        if self.lb > self.ub {
            return Err(ParamError::new(
                "ub",
                format!("ub = {} is below lb = {}", self.ub, self.lb),
            ));
        }
        Ok(())
    }

    /// The initial population: `linspace(lb, ub, pop_size)` truncated to integers (the
    /// paper's Algorithm 1, the code's `np.linspace(...).astype(int)`), duplicates
    /// included (NSGA-II drops them).
    pub fn initial_population(&self) -> Vec<i64> {
        let (lb, ub, n) = (self.lb as f64, self.ub as f64, self.pop_size);
        (0..n)
            .map(|i| {
                let x = if i + 1 == n {
                    ub
                } else {
                    lb + i as f64 * (ub - lb) / (n - 1) as f64
                };
                x as i64
            })
            .collect()
    }

    fn nsga_params(&self, seed: u64) -> Nsga2Params {
        Nsga2Params {
            pop_size: self.pop_size,
            generations: self.generations,
            sbx_prob: self.sbx_prob,
            sbx_prob_var: 0.5,
            sbx_eta: self.sbx_eta,
            pm_eta: self.pm_eta,
            pm_prob: Some(self.pm_prob),
            eliminate_duplicates: true,
            seed,
        }
    }
}

/// The tensors in scope, concatenated into one vector.
struct Scoped {
    /// Position in the scope of each tensor of the weight set.
    position: Vec<Option<usize>>,
    /// Tensor index of each scoped tensor.
    tensors: Vec<usize>,
    /// Offsets of the scoped tensors in `data` (one more than tensors).
    offsets: Vec<usize>,
    data: Vec<f32>,
}

impl Scoped {
    fn new(weights: &WeightSet, scope: Scope) -> Result<Self, MethodError> {
        let mut s = Scoped {
            position: vec![None; weights.tensors.len()],
            tensors: Vec::new(),
            offsets: vec![0],
            data: Vec::new(),
        };
        for (i, t) in weights.tensors.iter().enumerate() {
            if (scope == Scope::All || t.compressible) && t.numel() > 0 {
                s.position[i] = Some(s.tensors.len());
                s.tensors.push(i);
                s.data.extend_from_slice(&t.data);
                s.offsets.push(s.data.len());
            }
        }
        if s.data.is_empty() {
            return Err(MethodError::Other(format!(
                "{ID}: no weight in scope (no compressible tensor with values)"
            )));
        }
        Ok(s)
    }

    /// `weights` with the scoped tensors replaced by `decoded`.
    fn install(&self, weights: &WeightSet, decoded: &[f32]) -> WeightSet {
        let mut ws = weights.clone();
        for (p, &ti) in self.tensors.iter().enumerate() {
            ws.tensors[ti]
                .data
                .copy_from_slice(&decoded[self.offsets[p]..self.offsets[p + 1]]);
        }
        ws
    }
}

/// A uniform binning with a grouping of its bins: the final shared values and labels.
struct Quantized {
    values: Vec<f32>,
    counts: Vec<u64>,
    labels: Vec<u32>,
}

impl Quantized {
    fn new(ub: &UniformBins, starts: &[usize]) -> Self {
        let gob = group_of_bin(starts, ub.len());
        Quantized {
            values: group_values(starts, &ub.counts, &ub.sums),
            counts: group_counts(starts, &ub.counts),
            labels: ub.labels.iter().map(|&l| gob[l as usize]).collect(),
        }
    }

    fn decoded(&self) -> Vec<f32> {
        self.labels
            .iter()
            .map(|&l| self.values[l as usize])
            .collect()
    }
}

fn identity(bins: usize) -> Vec<usize> {
    (0..bins).collect()
}

fn binning(data: &[f32], k: usize) -> Result<UniformBins, MethodError> {
    uniform_bins(data, k).map_err(|e| MethodError::Other(format!("{ID}: k = {k}: {e}")))
}

/// Correct predictions of `decoded` when they reach `threshold`, else `None`.
fn score(
    ev: &mut dyn Evaluator,
    weights: &WeightSet,
    scoped: &Scoped,
    decoded: &[f32],
    threshold: usize,
) -> Result<Option<usize>, EvalError> {
    let ws = scoped.install(weights, decoded);
    Ok(match ev.evaluate_threshold(&ws, threshold)? {
        Threshold::Reached(a) => Some(a.top1_correct),
        Threshold::Below { .. } => None,
    })
}

fn named(name: &str, e: CoreError) -> CoreError {
    match e {
        CoreError::InvalidEncoding { reason, .. } => CoreError::InvalidEncoding {
            name: name.to_string(),
            reason,
        },
        other => other,
    }
}

/// The artifact of one quantization: one shared FP32 codebook, indices coded as asked.
fn build_artifact(
    weights: &WeightSet,
    scoped: &Scoped,
    q: &Quantized,
    coding: Coding,
) -> Result<Artifact, MethodError> {
    let g = q.values.len();
    let model_table = match coding {
        Coding::HuffmanModel => {
            Some(code_lengths(&q.counts).map_err(|e| MethodError::Other(format!("{ID}: {e}")))?)
        }
        _ => None,
    };
    let mut tensors = Vec::with_capacity(weights.tensors.len());
    for (ti, t) in weights.tensors.iter().enumerate() {
        let Some(p) = scoped.position[ti] else {
            tensors.push(EncodedTensor::dense(t));
            continue;
        };
        let idx = q.labels[scoped.offsets[p]..scoped.offsets[p + 1]].to_vec();
        let enc = match (coding, &model_table) {
            (Coding::Fixed, _) => {
                Encoding::indexed_fixed(ValueTable::F32(CodebookRef::Shared(0)), g, idx)
            }
            (Coding::HuffmanModel, Some(table)) => Encoding::huffman_codebook(
                CodebookRef::Shared(0),
                CodeTableRef::Shared(0),
                table,
                idx,
            )
            .map_err(|e| named(&t.name, e))?,
            _ => Encoding::Indexed {
                table: ValueTable::F32(CodebookRef::Shared(0)),
                coding: IndexCoding::huffman_local(g, &idx)
                    .map_err(|e| MethodError::Other(format!("{ID}: `{}`: {e}", t.name)))?,
                indices: idx,
            },
        };
        tensors.push(EncodedTensor::with(t, enc));
    }
    let artifact = Artifact {
        shared_codebooks: vec![q.values.clone()],
        shared_code_tables: model_table.into_iter().collect(),
        tensors,
        ..Default::default()
    };
    artifact.validate()?;
    Ok(artifact)
}

/// `a / b`, `null` in JSON when not finite (a 0-bit code gives an infinite ratio).
fn ratio(a: f64, b: f64) -> Option<f64> {
    let r = a / b;
    r.is_finite().then_some(r)
}

/// Index-stream bits when every scoped tensor has its own Huffman tree over its own
/// symbol counts (tree cost not included).
fn layer_tree_bits(scoped: &Scoped, q: &Quantized) -> u64 {
    let g = q.values.len();
    (0..scoped.tensors.len())
        .map(|p| {
            let labels = &q.labels[scoped.offsets[p]..scoped.offsets[p + 1]];
            let freqs = frequencies(g, labels).expect("labels index the codebook");
            let lengths = code_lengths(&freqs).unwrap_or_default();
            coded_bits(&freqs, &lengths).unwrap_or(0)
        })
        .sum()
}

/// Memory accounting of one quantization and its artifact (README, "Memory").
fn accounting(artifact: &Artifact, scoped: &Scoped, q: &Quantized, dense_bytes: u64) -> Accounting {
    let n = scoped.data.len() as u64;
    let g = q.values.len() as u64;
    let model_lengths = code_lengths(&q.counts).unwrap_or_default();
    let huff_bits = coded_bits(&q.counts, &model_lengths).unwrap_or(0);
    let avg_huff = huff_bits as f64 / n as f64;
    let fixed = u64::from(index_bits(q.values.len()));
    let fixed_total = n * fixed + 32 * g;
    let huff_total = huff_bits + 32 * g + 8 * g;
    // The 2025 code's accounting: one tree per layer (papers.md §5.7). Reported beside
    // the model-wide tree whatever `huffman` is, so both paper CRs come from one run.
    let layer_bits = layer_tree_bits(scoped, q);
    let avg_layer = layer_bits as f64 / n as f64;
    let layer_total = layer_bits + 32 * g + 8 * g * scoped.tensors.len() as u64;
    let size = artifact.size();
    let artifact_index_bits: u64 = scoped
        .tensors
        .iter()
        .map(|&ti| size.tensors[ti].1.index_bits)
        .sum();
    Accounting {
        counted_weights: Some(n),
        shared_values: Some(g),
        avg_bits_huffman: Some(avg_huff),
        cr_paper: ratio(32.0, avg_huff),
        huffman_index_bits: Some(huff_bits),
        huffman_total_bits: Some(huff_total),
        cr_huffman_counted: ratio((32 * n) as f64, huff_total as f64),
        avg_bits_huffman_layer: Some(avg_layer),
        cr_paper_layer_trees: ratio(32.0, avg_layer),
        huffman_layer_index_bits: Some(layer_bits),
        huffman_layer_total_bits: Some(layer_total),
        cr_huffman_layer_counted: ratio((32 * n) as f64, layer_total as f64),
        fixed_bits_per_weight: Some(fixed),
        fixed_total_bits: Some(fixed_total),
        cr_fixed_paper: ratio(32.0, fixed as f64),
        cr_fixed_counted: ratio((32 * n) as f64, fixed_total as f64),
        artifact_avg_index_bits: Some(artifact_index_bits as f64 / n as f64),
        artifact_bits_compressed: Some(size.bits_compressed),
        cr_counted: ratio(size.bits_baseline as f64, size.bits_compressed as f64),
        artifact_bytes: Some(size.total_bytes),
        dense_artifact_bytes: Some(dense_bytes),
        cr_artifact_bytes: ratio(dense_bytes as f64, size.total_bytes as f64),
    }
}

/// One solution of the front, before and after its merge.
struct Solution {
    k: usize,
    bins: usize,
    correct_before: usize,
    starts: Vec<usize>,
    correct_after: usize,
    merged: bool,
    merge_evaluations: usize,
    merges_accepted: usize,
    /// The merge pass ran to its end (false when not merged or cut by the budget).
    merge_complete: bool,
}

fn pct(c: usize, n: usize) -> f64 {
    100.0 * c as f64 / n as f64
}

/// A merge order as the diagnostics name it.
fn order_name(order: MergeOrder) -> &'static str {
    match order {
        MergeOrder::LeftToRight => "left_to_right",
        MergeOrder::CenterToEnd => "center_to_end",
    }
}

fn err(c: Option<usize>, n: usize) -> Option<f64> {
    c.map(|c| 1.0 - c as f64 / n as f64)
}

/// Merges the keys of `more` into the JSON object `base`.
fn with(mut base: Value, more: Value) -> Value {
    if let (Value::Object(b), Value::Object(m)) = (&mut base, more) {
        b.extend(m);
    }
    base
}

/// What every step of one compression shares: the parameters, the weights, the
/// scoped vector and the scores of the FP32 model and of Random UB.
struct Job<'a> {
    m: &'a MoeaBins,
    weights: &'a WeightSet,
    scoped: Scoped,
    dense_bytes: u64,
    progress: &'a dyn Progress,
    /// Top-1 count of the FP32 weights on the search subset (`None` without evaluator).
    c0: Option<usize>,
    /// Images of the search subset (0 without evaluator).
    images: usize,
    /// Random UB: uniform binning at `k = ub`, its quantization and its score.
    rub: UniformBins,
    rub_q: Quantized,
    rub_correct: Option<usize>,
}

/// The NSGA-II search over k: scores by k, and what the search log records.
struct Search {
    /// (non-empty bins, top-1 count) of every k evaluated.
    cache: HashMap<usize, (usize, usize)>,
    /// What racing did (when on).
    raced: RaceLog,
    /// One record per generation.
    history: Vec<Value>,
    /// The final front's k, unique, by increasing number of bins.
    front_k: Vec<usize>,
    generations: usize,
    objective_calls: usize,
    calls_cached: u64,
    /// Evaluator evaluations computed when the search ended.
    computed_after: u64,
    hv_ref: [f64; 2],
}

/// What racing did in the NSGA-II search (`[search] race`; README, Deviations): a k
/// that cannot beat every evaluated k with at most its bins is stopped once that is
/// improbable at the stated confidence, and given its rate on the images seen.
#[derive(Debug, Clone, Default, serde::Serialize)]
struct RaceLog {
    /// Racing confidence (`None`: off, every k evaluated in full).
    race: Option<f64>,
    /// Evaluations that stopped early (certainly or on the bound).
    stopped: usize,
    /// Of those, stopped on the racing bound.
    raced: usize,
    /// Images the stopped evaluations saw in all.
    images_seen: usize,
    /// Front k that held an estimate and were evaluated in full at the end.
    front_completed: usize,
}

/// The front after the merge phase.
struct Merged {
    solutions: Vec<Solution>,
    log: Vec<Value>,
    spent: usize,
}

/// A candidate before its diagnostics are serialized: (label, artifact, diagnostics).
type Pending = (String, Artifact, Diagnostics);

/// A finished candidate: its diagnostics as `extra_json`; `chosen` when it is the
/// method's pick.
fn finish(label: &str, artifact: Artifact, d: Diagnostics, chosen: bool) -> Candidate {
    if chosen {
        Candidate::chosen(label, artifact, d.to_value())
    } else {
        Candidate::offered(label, artifact, d.to_value())
    }
}

/// The candidates and the per-candidate records of the search log.
struct Encoded {
    out: Vec<Pending>,
    /// The method's pick: the most compressed final-front point whose search top-1
    /// after merge is not below FP32's on the search subset (none when no point is).
    chosen: Option<String>,
    stage_cands: Vec<Pending>,
    front_after: Vec<Value>,
    codebooks: Vec<Value>,
}

impl<'a> Job<'a> {
    /// Scopes the weights and scores the FP32 model and Random UB on the search subset.
    fn start(
        m: &'a MoeaBins,
        weights: &'a WeightSet,
        progress: &'a dyn Progress,
        mut ev: Option<&mut (dyn Evaluator + '_)>,
    ) -> Result<Self, MethodError> {
        let scoped = Scoped::new(weights, m.scope)?;
        let dense_bytes = Artifact::dense(weights).size().total_bytes;
        progress.set_length((2 + m.pop_size * m.generations + m.merge_budget) as u64);
        progress.message("moea-bins: FP32 baseline and Random UB on the search subset");
        let (c0, images) = match ev.as_deref_mut() {
            Some(e) => {
                let a = e.evaluate(weights)?;
                if a.total == 0 {
                    return Err(MethodError::Other(format!(
                        "{ID}: the search subset holds no image"
                    )));
                }
                (Some(a.top1_correct), a.total)
            }
            None => (None, 0),
        };
        progress.inc(1);
        let rub = binning(&scoped.data, m.ub)?;
        let rub_q = Quantized::new(&rub, &identity(rub.len()));
        let rub_correct = match ev {
            Some(e) => Some(
                e.evaluate(&scoped.install(weights, &rub_q.decoded()))?
                    .top1_correct,
            ),
            None => None,
        };
        progress.inc(1);
        Ok(Self {
            m,
            weights,
            scoped,
            dense_bytes,
            progress,
            c0,
            images,
            rub,
            rub_q,
            rub_correct,
        })
    }

    /// A candidate of `q` (binning at `k`, `bins_ub` bins before merge) coded with
    /// `coding`, with the diagnostics every candidate of a stage carries.
    fn candidate(
        &self,
        q: &Quantized,
        coding: Coding,
        stage: (&str, usize, usize, Option<usize>),
    ) -> Result<(Artifact, Diagnostics), MethodError> {
        let artifact = build_artifact(self.weights, &self.scoped, q, coding)?;
        let (name, k, bins_ub, correct) = stage;
        let (c0, images) = (self.c0, self.images);
        let d = Diagnostics {
            stage: name.into(),
            k,
            bins_ub,
            search_images: images,
            search_baseline_top1_correct: c0,
            search_error_baseline: err(c0, images),
            search_top1_correct: correct,
            search_error: err(correct, images),
            search_top1_pct: correct.map(|c| pct(c, images)),
            scope: self.m.scope.name().into(),
            accounting: accounting(&artifact, &self.scoped, q, self.dense_bytes),
            encoding: coding.encoding_name().into(),
            ..Diagnostics::default()
        };
        Ok((artifact, d))
    }

    /// Random UB as a candidate (the paper's row; the whole result in `random-ub` mode).
    fn rub_candidate(&self, coding: Coding) -> Result<(Artifact, Diagnostics), MethodError> {
        let stage = ("random_ub", self.m.ub, self.rub.len(), self.rub_correct);
        self.candidate(&self.rub_q, coding, stage)
    }

    /// `random-ub` mode: Random UB alone, with its codebook as the search log.
    fn random_ub_only(&self) -> Result<Vec<Candidate>, MethodError> {
        let (artifact, mut d) = self.rub_candidate(self.m.huffman)?;
        let q = &self.rub_q;
        d.search = Some(json!({
            "mode": "random-ub",
            "counted_weights": self.scoped.data.len(),
            "codebook": q.values.iter().zip(&q.counts).enumerate()
                .map(|(i, (v, n))| json!({"candidate": "random-ub", "index": i, "value": v, "count": n}))
                .collect::<Vec<_>>(),
        }));
        Ok(vec![finish("random-ub", artifact, d, true)])
    }

    /// Whether a solution with `c` correct search images is merged (and reported).
    fn qualifies(&self, c: usize) -> bool {
        let c0 = self.c0.unwrap_or(0);
        match self.m.merge_which {
            MergeWhich::NotWorse => c >= c0,
            MergeWhich::Better => c > c0,
            MergeWhich::All => true,
        }
    }

    /// NSGA-II over k: objectives 1 − top-1 (search subset) and the number of non-empty
    /// bins, evaluations cached by k.
    fn search(
        &self,
        ev: &mut (dyn Evaluator + '_),
        seed: u64,
        race: Option<f64>,
    ) -> Result<Search, MethodError> {
        let (m, progress, images) = (self.m, self.progress, self.images);
        let mut cache: HashMap<usize, (usize, usize)> = HashMap::new();
        // Raced k (racing on): (bins, estimate below its need), never reported.
        let mut estimates: HashMap<usize, (usize, usize)> = HashMap::new();
        let mut raced = RaceLog {
            race,
            ..RaceLog::default()
        };
        cache.insert(m.ub, (self.rub.len(), self.rub_correct.expect("evaluated")));
        let mut calls_cached = 0u64;
        let computed = Cell::new(ev.stats().evaluations);
        let mut history: Vec<Value> = Vec::new();
        let initial: Vec<Vec<i64>> = m
            .initial_population()
            .into_iter()
            .map(|k| vec![k])
            .collect();
        let generations = m.generations;
        let hv_ref = [1.0, (m.ub + 1) as f64];
        let result = {
            let evaluate = |x: &[i64]| -> Result<Vec<f64>, MethodError> {
                let k = x[0] as usize;
                let (bins, correct) = match cache.get(&k).or(estimates.get(&k)) {
                    Some(&v) => {
                        calls_cached += 1;
                        v
                    }
                    None => {
                        let ub = binning(&self.scoped.data, k)?;
                        let ws = self.scoped.install(self.weights, &ub.dequantize());
                        let bins = ub.len();
                        // To enter the front, k must beat every evaluated k with at
                        // most its bins.
                        let need = cache
                            .values()
                            .filter(|&&(b, _)| b <= bins)
                            .map(|&(_, c)| c + 1)
                            .max();
                        match (race, need) {
                            (Some(conf), Some(need)) => {
                                let r = ev.evaluate_race(&ws, need, conf)?;
                                match r.answer {
                                    Threshold::Reached(a) => {
                                        cache.insert(k, (bins, a.top1_correct));
                                        (bins, a.top1_correct)
                                    }
                                    Threshold::Below {
                                        top1_correct_seen,
                                        seen,
                                    } if seen >= images => {
                                        cache.insert(k, (bins, top1_correct_seen));
                                        (bins, top1_correct_seen)
                                    }
                                    Threshold::Below {
                                        top1_correct_seen,
                                        seen,
                                    } => {
                                        raced.stopped += 1;
                                        raced.raced += usize::from(r.raced);
                                        raced.images_seen += seen;
                                        let est = wb_core::race::estimate(
                                            top1_correct_seen,
                                            seen,
                                            images,
                                            need,
                                        );
                                        estimates.insert(k, (bins, est));
                                        (bins, est)
                                    }
                                }
                            }
                            _ => {
                                let c = ev.evaluate(&ws)?.top1_correct;
                                cache.insert(k, (bins, c));
                                (bins, c)
                            }
                        }
                    }
                };
                computed.set(ev.stats().evaluations);
                progress.inc(1);
                Ok(vec![1.0 - correct as f64 / images as f64, bins as f64])
            };
            let observe = |g: &wb_kernels::GenerationInfo<'_>| {
                let front: Vec<[f64; 2]> = g
                    .population
                    .iter()
                    .filter(|i| i.rank == 0)
                    .map(|i| [i.f[0], i.f[1]])
                    .collect();
                let hv = hypervolume_2d(&front, hv_ref);
                let min_bins = front.iter().map(|p| p[1] as u64).min();
                let best_err = front.iter().map(|p| p[0]).fold(f64::INFINITY, f64::min);
                history.push(json!({
                    "generation": g.generation,
                    "evaluations": computed.get(),
                    "nsga_evaluations": g.evaluations,
                    "hypervolume": hv,
                    "front_size": front.len(),
                    "front_min_bins": min_bins,
                    "front_min_error": best_err,
                }));
                progress.message(&format!(
                    "moea-bins NSGA-II: generation {}/{generations}, front {}, HV {hv:.2}",
                    g.generation,
                    front.len()
                ));
            };
            nsga2_with_initial(
                &[(m.lb as i64, m.ub as i64)],
                &m.nsga_params(seed),
                &initial,
                evaluate,
                observe,
            )
            .map_err(|e| match e {
                Nsga2Error::Invalid(k) => MethodError::Other(format!("{ID} NSGA-II: {k}")),
                Nsga2Error::Evaluation(e) => e,
            })?
        };
        let mut front_k: Vec<usize> = result.front().iter().map(|i| i.x[0] as usize).collect();
        // The front is merged and reported: every k on it measured in full.
        for &k in &front_k {
            if let std::collections::hash_map::Entry::Vacant(slot) = cache.entry(k) {
                let ub = binning(&self.scoped.data, k)?;
                let ws = self.scoped.install(self.weights, &ub.dequantize());
                slot.insert((ub.len(), ev.evaluate(&ws)?.top1_correct));
                raced.front_completed += 1;
            }
        }
        front_k.sort_by_key(|k| (cache[k].0, *k));
        front_k.dedup();
        Ok(Search {
            cache,
            raced,
            history,
            front_k,
            generations: result.generations,
            objective_calls: result.evaluations,
            calls_cached,
            computed_after: ev.stats().evaluations,
            hv_ref,
        })
    }

    /// The greedy merge of the qualifying front solutions, fewest bins first, within
    /// the merge budget.
    fn merge(&self, ev: &mut (dyn Evaluator + '_), search: &Search) -> Result<Merged, MethodError> {
        let (m, progress, cache) = (self.m, self.progress, &search.cache);
        // Now that the front is known, bound the bar's merge part by what the passes can
        // ask (at most two scores per bin) instead of the whole budget.
        if m.merge.order().is_some() {
            let most: usize = search
                .front_k
                .iter()
                .filter(|k| self.qualifies(cache[k].1))
                .map(|k| 2 * cache[k].0)
                .sum();
            progress.set_length((2 + m.pop_size * m.generations + most.min(m.merge_budget)) as u64);
        }
        let mut solutions: Vec<Solution> = Vec::with_capacity(search.front_k.len());
        let mut log: Vec<Value> = Vec::new();
        let mut spent = 0usize;
        for &k in &search.front_k {
            let (bins, correct) = cache[&k];
            let mut s = Solution {
                k,
                bins,
                correct_before: correct,
                starts: identity(bins),
                correct_after: correct,
                merged: false,
                merge_evaluations: 0,
                merges_accepted: 0,
                merge_complete: false,
            };
            // The budget is spent on the solutions with the fewest bins first (the
            // front is sorted that way): they give the smallest codebooks.
            let left = m.merge_budget.saturating_sub(spent);
            if let (Some(order), true, true) = (m.merge.order(), self.qualifies(correct), left > 0)
            {
                progress.message(&format!(
                    "moea-bins: merging k = {k} ({bins} bins, {left} evaluations left)"
                ));
                let ub = binning(&self.scoped.data, k)?;
                let out = merge_bins_budget(bins, correct, order, left, |starts, thr| {
                    let q = Quantized::new(&ub, starts);
                    let r = score(ev, self.weights, &self.scoped, &q.decoded(), thr);
                    progress.inc(1);
                    r
                })?;
                for (i, st) in out.steps.iter().enumerate() {
                    log.push(json!({
                        "k": k,
                        "step": i,
                        "boundary_bin": st.boundary,
                        "side": st.side,
                        "threshold_top1_correct": st.threshold,
                        "top1_correct": st.correct,
                        "accepted": st.accepted,
                        "groups": st.groups,
                    }));
                }
                s.starts = out.starts;
                s.correct_after = out.correct;
                // A pass the budget stopped before its first step did nothing.
                s.merged = out.complete || out.evaluations > 0;
                s.merge_evaluations = out.evaluations;
                s.merges_accepted = out.accepted;
                s.merge_complete = out.complete;
                spent += out.evaluations;
            }
            solutions.push(s);
        }
        Ok(Merged {
            solutions,
            log,
            spent,
        })
    }

    /// The solutions reported: those that qualify for the merge (the paper's MO-UB rows
    /// list only front solutions at least as good as the baseline), or the whole front
    /// when none does, so that a cell always has candidates.
    fn reported(&self, solutions: &[Solution]) -> Vec<usize> {
        let q: Vec<usize> = (0..solutions.len())
            .filter(|&i| self.qualifies(solutions[i].correct_before))
            .collect();
        if q.is_empty() {
            (0..solutions.len()).collect()
        } else {
            q
        }
    }

    /// The final front after merge: the non-dominated (error, shared values) points
    /// among the reported solutions, by increasing compression (decreasing number of
    /// shared values).
    fn finals(solutions: &[Solution], reported: &[usize]) -> Vec<usize> {
        let objectives: Vec<[f64; 2]> = reported
            .iter()
            .map(|&i| {
                let s = &solutions[i];
                [-(s.correct_after as f64), s.starts.len() as f64]
            })
            .collect();
        let first = non_dominated_sort(&objectives)
            .into_iter()
            .next()
            .unwrap_or_default();
        let mut finals: Vec<usize> = first.into_iter().map(|j| reported[j]).collect();
        finals.sort_by(|&a, &b| {
            let (sa, sb) = (&solutions[a], &solutions[b]);
            sb.starts
                .len()
                .cmp(&sa.starts.len())
                .then(sb.correct_after.cmp(&sa.correct_after))
                .then(sa.k.cmp(&sb.k))
        });
        finals
    }

    /// The candidates of the final front (`pNN`), with the paper's stage rows
    /// (`merge-pNN`, `ub-pNN`, `random-ub`) when `emit_stages` asks for them.
    fn encode(
        &self,
        solutions: &[Solution],
        reported: &[usize],
        finals: &[usize],
    ) -> Result<Encoded, MethodError> {
        let (m, images) = (self.m, self.images);
        let width = finals
            .len()
            .max(reported.len())
            .saturating_sub(1)
            .to_string()
            .len()
            .max(2);
        let mut enc = Encoded {
            out: Vec::new(),
            chosen: None,
            stage_cands: Vec::new(),
            front_after: Vec::new(),
            codebooks: Vec::new(),
        };
        for (i, &si) in finals.iter().enumerate() {
            let s = &solutions[si];
            let ub = binning(&self.scoped.data, s.k)?;
            let q = Quantized::new(&ub, &s.starts);
            let label = format!("p{i:0width$}");
            let stage = match (s.merged, m.huffman) {
                (true, Coding::Fixed) => "mo_ub_merge",
                (true, _) => "mo_ub_merge_huffman",
                (false, Coding::Fixed) => "mo_ub",
                (false, _) => "mo_ub_huffman",
            };
            let (artifact, mut d) =
                self.candidate(&q, m.huffman, (stage, s.k, s.bins, Some(s.correct_after)))?;
            let acc = d.accounting.to_value();
            d.merged = Some(s.merged);
            d.merge_method = Some(match (s.merged, m.merge.order()) {
                (true, Some(order)) => Some(order_name(order).into()),
                _ => None,
            });
            d.search_top1_correct_before_merge = Some(s.correct_before);
            d.search_error_before_merge = err(Some(s.correct_before), images);
            d.search_error_after_merge = err(Some(s.correct_after), images);
            d.merge_evaluations = Some(s.merge_evaluations);
            d.merges_accepted = Some(s.merges_accepted);
            d.merge_complete = Some(s.merge_complete);
            enc.front_after.push(with(
                json!({
                    "candidate": label,
                    "k": s.k,
                    "bins_before": s.bins,
                    "bins_after": s.starts.len(),
                    "top1_correct_before": s.correct_before,
                    "top1_correct_after": s.correct_after,
                    "error_before": err(Some(s.correct_before), images),
                    "error_after": err(Some(s.correct_after), images),
                    "merged": s.merged,
                    "merge_evaluations": s.merge_evaluations,
                    "merges_accepted": s.merges_accepted,
                    "merge_complete": s.merge_complete,
                }),
                acc,
            ));
            for (j, (v, c)) in q.values.iter().zip(&q.counts).enumerate() {
                enc.codebooks
                    .push(json!({"candidate": label, "index": j, "value": v, "count": c}));
            }
            if m.emit_stages && m.huffman != Coding::Fixed {
                let name = if s.merged { "mo_ub_merge" } else { "mo_ub" };
                let (a, mut sd) = self.candidate(
                    &q,
                    Coding::Fixed,
                    (name, s.k, s.bins, Some(s.correct_after)),
                )?;
                sd.merged = Some(s.merged);
                enc.stage_cands.push((format!("merge-p{i:0width$}"), a, sd));
            }
            // `finals` run by increasing compression: the last that keeps FP32's
            // search accuracy is the most compressed one that does.
            if s.correct_after >= self.c0.unwrap_or(0) {
                enc.chosen = Some(label.clone());
            }
            enc.out.push((label, artifact, d));
        }
        if m.emit_stages {
            let (a, d) = self.rub_candidate(Coding::Fixed)?;
            enc.stage_cands.push(("random-ub".into(), a, d));
            for (i, s) in reported.iter().map(|&i| &solutions[i]).enumerate() {
                let ub = binning(&self.scoped.data, s.k)?;
                let q = Quantized::new(&ub, &identity(ub.len()));
                let (a, mut d) = self.candidate(
                    &q,
                    Coding::Fixed,
                    ("mo_ub", s.k, s.bins, Some(s.correct_before)),
                )?;
                d.merged = Some(false);
                enc.stage_cands.push((format!("ub-p{i:0width$}"), a, d));
            }
        }
        Ok(enc)
    }

    /// The search log carried by the first candidate: every stage's scores, the
    /// NSGA-II history, the merges and the evaluation counts.
    #[allow(clippy::too_many_arguments)]
    fn search_log(
        &self,
        start_evaluations: u64,
        stats: wb_core::EvalStats,
        search: &Search,
        merged: &Merged,
        enc: &mut Encoded,
    ) -> Value {
        let (m, images, c0) = (self.m, self.images, self.c0.unwrap_or(0));
        let front_before: Vec<Value> = merged
            .solutions
            .iter()
            .map(|s| {
                json!({
                    "k": s.k,
                    "bins": s.bins,
                    "top1_correct": s.correct_before,
                    "error": err(Some(s.correct_before), images),
                    "qualifies_for_merge": self.qualifies(s.correct_before),
                    "merged": s.merged,
                    "merge_complete": s.merge_complete,
                })
            })
            .collect();
        let mut evaluated_k: Vec<(usize, usize, usize)> =
            search.cache.iter().map(|(&k, &(b, c))| (k, b, c)).collect();
        evaluated_k.sort_unstable();
        let nsga_computed = search.computed_after;
        let mut log = json!({
            "mode": "moea",
            "counted_weights": self.scoped.data.len(),
            "search_images": images,
            "baseline_top1_correct": c0,
            "baseline_error": err(Some(c0), images),
            "random_ub": {"k": m.ub, "bins": self.rub.len(), "top1_correct": self.rub_correct},
            "lb": m.lb,
            "ub": m.ub,
            "initial_population": m.initial_population(),
            "generations": search.history,
            "front_before_merge": front_before,
            "front_after_merge": std::mem::take(&mut enc.front_after),
            "codebook": std::mem::take(&mut enc.codebooks),
            "merge_steps": merged.log,
            "merge_budget": m.merge_budget,
            "merge_evaluations": merged.spent,
            "evaluated_k": evaluated_k.iter().map(|(k, b, c)| json!({
                "k": k, "bins": b, "top1_correct": c, "error": err(Some(*c), images),
            })).collect::<Vec<_>>(),
            "nsga2": {
                "pop_size": m.pop_size,
                "generations": search.generations,
                "sbx_prob": m.sbx_prob,
                "sbx_prob_var": 0.5,
                "sbx_eta": m.sbx_eta,
                "pm_eta": m.pm_eta,
                "pm_prob": m.pm_prob,
                "objective_calls": search.objective_calls,
                "distinct_k": search.cache.len(),
                "method_cache_hits": search.calls_cached,
            },
            "hypervolume_reference": {"error": search.hv_ref[0], "bins": search.hv_ref[1]},
            "evaluations": {
                "baseline_and_random_ub": 2,
                "nsga2": nsga_computed.saturating_sub(start_evaluations + 2),
                "merge": stats.evaluations.saturating_sub(nsga_computed),
                "total_computed": stats.evaluations.saturating_sub(start_evaluations),
                "evaluator_cache_hits": stats.cache_hits,
            },
        });
        // Only when on, so that a search without racing writes what it always wrote.
        if search.raced.race.is_some() {
            log["accelerations"] = json!(search.raced);
        }
        log
    }
}

impl Method for MoeaBins {
    fn needs(&self) -> Needs {
        match self.mode {
            Mode::Moea => Needs::EVALUATOR,
            Mode::RandomUb => Needs::NONE,
        }
    }

    /// Baseline and Random UB, then (mode `moea`) NSGA-II over k, the merge of the
    /// qualifying front solutions, the final front's candidates and the search log.
    fn compress(
        &self,
        weights: &WeightSet,
        ctx: &mut Context<'_>,
    ) -> Result<Vec<Candidate>, MethodError> {
        // Fields are public, so a hand-built value may never have met the declaration.
        self.check()?;
        if self.mode == Mode::Moea && ctx.evaluator.is_none() {
            return Err(MethodError::NeedsEvaluator(ID));
        }
        let (seed, progress, race) = (ctx.seed, ctx.progress, ctx.accel.race);
        let start_evaluations = ctx
            .evaluator
            .as_deref()
            .map_or(0, |e| e.stats().evaluations);
        let job = Job::start(self, weights, progress, ctx.evaluator.as_deref_mut())?;
        let ev = match ctx.evaluator.as_deref_mut() {
            Some(ev) if self.mode == Mode::Moea => ev,
            _ => return job.random_ub_only(),
        };
        let search = job.search(ev, seed, race)?;
        let merged = job.merge(ev, &search)?;
        let reported = job.reported(&merged.solutions);
        let finals = Job::finals(&merged.solutions, &reported);
        let mut enc = job.encode(&merged.solutions, &reported, &finals)?;
        let log = job.search_log(start_evaluations, ev.stats(), &search, &merged, &mut enc);
        if let Some(first) = enc.out.first_mut() {
            first.2.search = Some(log);
        }
        let chosen = enc.chosen.take();
        let pending = enc.out.into_iter().chain(enc.stage_cands);
        Ok(pending
            .map(|(l, a, d)| {
                let pick = chosen.as_deref() == Some(l.as_str());
                finish(&l, a, d, pick)
            })
            .collect())
    }
}
