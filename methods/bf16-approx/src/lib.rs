#![doc = include_str!("../README.md")]

pub mod approx;
pub mod view;

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};
use wb_core::bf16fields::exponent_field;
use wb_core::train::project_all;
use wb_core::{
    Artifact, Candidate, Context, CoreError, EncodedTensor, Encoding, FineTuneConfig, Method,
    MethodError, MethodInfo, Needs, ParamError, ParamSpec, Params, Projection, Tensor, WeightSet,
};

pub use approx::{
    plan, project, round_mantissa, round_weight, AllowedSet, ExponentPlan, ProjectStats, Rounding,
    Stage, ZeroMode,
};

/// Method id.
pub const ID: &str = "bf16-approx";

wb_core::method_params! {
    /// The parameters of `bf16-approx` as an experiment file writes them, each declared
    /// once (doc line, default, range); [`Bf16Approx`] is built from them with the
    /// cross-field checks.
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub struct Bf16ApproxParams {
        /// per-layer exponent tables (`layer`), or one model-wide table stored once
        /// (`model`)
        pub table: TableScope = TableScope::Layer => choice,
        /// r: exponent index bits removed, keeping the 2^(b−r) largest exponents (0 =
        /// lossless exponent sharing; must be < b of every table)
        pub remove_bits: u8 = 0 => int(0, 7),
        /// 0 is a snapping candidate for weights whose exponent is removed (the authors'
        /// code)
        pub zero_candidate: bool = true => flag,
        /// zero within the 2^(b−r) table entries (`in-budget`), or one more entry (`extra`,
        /// the authors' candidate set, index b−r+1 bits; needs `zero_candidate`)
        pub zero_entry: ZeroEntry = ZeroEntry::InBudget => choice,
        /// m′: kept BF16 mantissa bits (7 = all)
        pub mantissa_bits: u8 = 7 => int(0, 7),
        /// how dropped mantissa bits are removed
        pub mantissa_rounding: Rounding = Rounding::NearestEven => choice,
        /// per-layer table of distinct BF16 values (16 bits per entry, ⌈log2 U⌉-bit
        /// indices): never, where smaller than the fields, or always
        pub value_sharing: ValueSharing = ValueSharing::Off => choice,
        /// fine-tuning epochs on cifar10-train-jpeg75 with projection after every step (0 =
        /// retraining-free)
        pub retrain_epochs: usize = 0 => int(0, 1000),
        /// step cap over all epochs (0 = whole epochs; needs `retrain_epochs` ≥ 1)
        pub retrain_steps: u64 = 0 => int(0, 100_000_000),
        /// SGD learning rate, momentum 0 (must be > 0 when retraining)
        pub lr: f64 = 1e-3 => float(0.0, 10.0),
        /// fine-tuning batch size
        pub batch: usize = 64 => int(1, 4096),
        /// training images held out (seeded, class-balanced) to pick the best epoch
        pub holdout: usize = 2500 => int(10, 20_000),
        /// projection after each step: snap removed exponents only (`exponent`, the
        /// authors'), or also round the mantissa (`full`)
        pub retrain_projection: RetrainProjection = RetrainProjection::Exponent => choice,
    }
}

/// Declared parameters (see the README for their meaning).
pub const PARAMS: &[ParamSpec] = Bf16ApproxParams::SPECS;

/// Registry entry of `bf16-approx`.
pub const BF16_APPROX: MethodInfo = MethodInfo {
    id: ID,
    summary: "BF16 exponent sharing/approximation, mantissa approximation, value sharing, retraining with projection (Kashikar et al., TECS 2024)",
    params: PARAMS,
    build,
    view: Some(view::view),
};

/// This crate's registry entries.
pub fn methods() -> Vec<MethodInfo> {
    vec![BF16_APPROX]
}

wb_core::param_choice! {
    /// Scope of the exponent tables.
    pub enum TableScope {
        /// One table per compressible tensor.
        Layer = "layer",
        /// One table for all compressible tensors, stored once in the artifact.
        Model = "model",
    }
}

wb_core::param_choice! {
    /// Per-layer value sharing.
    pub enum ValueSharing {
        /// Never.
        Off = "off",
        /// Where it takes fewer bits than the field encoding.
        Auto = "auto",
        /// Always.
        Always = "always",
    }
}

wb_core::param_choice! {
    /// Where zero sits in the exponent table when it is a snapping candidate.
    pub enum ZeroEntry {
        /// Zero takes one of the `2^(b−r)` entries.
        InBudget = "in-budget",
        /// Zero is one more entry (the authors' candidate set).
        Extra = "extra",
    }
}

wb_core::param_choice! {
    /// The projection after each fine-tuning step.
    pub enum RetrainProjection {
        /// Snap removed exponents only (the authors').
        Exponent = "exponent",
        /// Also round the mantissa.
        Full = "full",
    }
}

/// Fine-tuning settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retrain {
    /// Epochs (≥ 1).
    pub epochs: usize,
    /// Step cap (0 = none).
    pub max_steps: u64,
    /// SGD learning rate.
    pub lr: f64,
    /// Batch size.
    pub batch: usize,
    /// Held-out training images for best-epoch selection.
    pub holdout: usize,
    /// Round mantissas in every step's projection too.
    pub full_projection: bool,
}

/// The `bf16-approx` method with checked parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Bf16Approx {
    /// Table scope.
    pub table: TableScope,
    /// Index bits removed (r).
    pub remove_bits: u8,
    /// Zero handling in exponent approximation.
    pub zero: ZeroMode,
    /// Kept mantissa bits.
    pub mantissa_bits: u8,
    /// Mantissa rounding.
    pub rounding: Rounding,
    /// Value sharing.
    pub value_sharing: ValueSharing,
    /// Fine-tuning, if any.
    pub retrain: Option<Retrain>,
}

impl Default for Bf16Approx {
    fn default() -> Self {
        Self::try_from(Bf16ApproxParams::default()).expect("the declared defaults are consistent")
    }
}

fn build(p: &Params) -> Result<Box<dyn Method>, ParamError> {
    Ok(Box::new(Bf16Approx::from_params(p)?))
}

impl TryFrom<Bf16ApproxParams> for Bf16Approx {
    type Error = ParamError;

    /// The cross-field checks: `zero_entry = "extra"` needs `zero_candidate`, fine-tuning
    /// settings need `retrain_epochs >= 1` and a positive learning rate.
    fn try_from(p: Bf16ApproxParams) -> Result<Self, ParamError> {
        p.check_ranges()?;
        let zero = match (p.zero_candidate, p.zero_entry) {
            (false, ZeroEntry::Extra) => {
                return Err(ParamError::new(
                    "zero_entry",
                    "\"extra\" needs zero_candidate = true (zero is then a table entry)",
                ))
            }
            (false, ZeroEntry::InBudget) => ZeroMode::Off,
            (true, ZeroEntry::Extra) => ZeroMode::ExtraEntry,
            (true, ZeroEntry::InBudget) => ZeroMode::InBudget,
        };
        if p.retrain_steps > 0 && p.retrain_epochs == 0 {
            return Err(ParamError::new(
                "retrain_steps",
                format!(
                    "{} steps but retrain_epochs = 0; set retrain_epochs >= 1",
                    p.retrain_steps
                ),
            ));
        }
        let retrain = (p.retrain_epochs > 0)
            .then(|| -> Result<Retrain, ParamError> {
                if !(p.lr > 0.0 && p.lr.is_finite()) {
                    return Err(ParamError::new(
                        "lr",
                        format!("{}: fine-tuning needs a positive learning rate", p.lr),
                    ));
                }
                Ok(Retrain {
                    epochs: p.retrain_epochs,
                    max_steps: p.retrain_steps,
                    lr: p.lr,
                    batch: p.batch,
                    holdout: p.holdout,
                    full_projection: p.retrain_projection == RetrainProjection::Full,
                })
            })
            .transpose()?;
        Ok(Self {
            table: p.table,
            remove_bits: p.remove_bits,
            zero,
            mantissa_bits: p.mantissa_bits,
            rounding: p.mantissa_rounding,
            value_sharing: p.value_sharing,
            retrain,
        })
    }
}

impl Bf16Approx {
    /// Builds the method from checked parameters, with the cross-field checks.
    ///
    /// # Errors
    /// [`ParamError`] naming the field.
    pub fn from_params(p: &Params) -> Result<Self, ParamError> {
        Self::try_from(Bf16ApproxParams::from_params(p)?)
    }

    /// bfloat16 + mantissa approximation of every weight of `t`, refusing values that do
    /// not fit in bfloat16.
    fn rounded(&self, t: &Tensor) -> Result<Vec<u16>, MethodError> {
        t.data
            .iter()
            .enumerate()
            .map(|(i, w)| {
                round_weight(*w, self.mantissa_bits, self.rounding)
                    .ok_or_else(|| not_representable(&t.name, i, *w).into())
            })
            .collect()
    }

    /// The exponent plans: one per compressible tensor (in order), and for a model-wide
    /// table the single shared plan. Fails (naming the layer) when `r` is too large.
    pub fn plans(&self, weights: &WeightSet) -> Result<Plans, MethodError> {
        let mut seen_model = [false; 256];
        let mut per_layer = Vec::new();
        for t in weights.compressible() {
            let mut seen = [false; 256];
            approx::exponent_presence(self.rounded(t)?, &mut seen);
            for (m, s) in seen_model.iter_mut().zip(&seen) {
                *m |= *s;
            }
            per_layer.push((t.name.clone(), seen));
        }
        let make = |seen: &[bool; 256], what: &str| {
            plan(
                seen,
                self.remove_bits,
                self.zero,
                self.mantissa_bits,
                self.rounding,
            )
            .map_err(|e| {
                MethodError::Params(ParamError::new(
                    "remove_bits",
                    format!(
                        "r = {} but {what} has only {} distinct exponents ({}-bit index); \
                         r must be smaller than the index width of every table",
                        self.remove_bits, e.distinct, e.bits
                    ),
                ))
            })
        };
        Ok(match self.table {
            TableScope::Layer => Plans {
                layers: per_layer
                    .iter()
                    .map(|(name, seen)| {
                        Ok((
                            name.clone(),
                            distinct_count(seen),
                            make(seen, &format!("layer `{name}`"))?,
                        ))
                    })
                    .collect::<Result<_, MethodError>>()?,
                shared: None,
            },
            TableScope::Model => {
                let shared = make(&seen_model, "the model-wide table")?;
                Plans {
                    layers: per_layer
                        .iter()
                        .map(|(name, seen)| (name.clone(), distinct_count(seen), shared.clone()))
                        .collect(),
                    shared: Some(shared),
                }
            }
        })
    }
}

fn distinct_count(seen: &[bool; 256]) -> usize {
    seen.iter().filter(|s| **s).count()
}

fn not_representable(name: &str, index: usize, value: f32) -> CoreError {
    if value.is_finite() {
        CoreError::InvalidEncoding {
            name: name.to_string(),
            reason: format!(
                "weight {value} at flat index {index} does not fit in bfloat16 \
                 (it rounds past the largest finite value)"
            ),
        }
    } else {
        CoreError::NonFinite {
            name: name.to_string(),
            index,
            value,
        }
    }
}

/// The exponent plans of a model.
#[derive(Debug, Clone)]
pub struct Plans {
    /// Per compressible tensor: name, its own distinct exponent count, its plan (the
    /// model-wide plan for a model-wide table).
    pub layers: Vec<(String, usize, ExponentPlan)>,
    /// The model-wide plan, for a model-wide table.
    pub shared: Option<ExponentPlan>,
}

impl Plans {
    fn sets(&self) -> HashMap<&str, &AllowedSet> {
        self.layers
            .iter()
            .map(|(n, _, p)| (n.as_str(), &p.set))
            .collect()
    }
}

/// The projection of retraining: every compressible tensor onto its allowed set.
struct PlanProjection<'a> {
    sets: HashMap<&'a str, &'a AllowedSet>,
    full: bool,
}

impl PlanProjection<'_> {
    fn apply(&self, t: &mut Tensor, stage: Stage) -> Result<(), CoreError> {
        let set = self.sets.get(t.name.as_str()).ok_or_else(|| {
            CoreError::MissingTensor(format!("{} (not compressible when planned)", t.name))
        })?;
        project(&mut t.data, set, stage)
            .map(|_| ())
            .map_err(|e| not_representable(&t.name, e.index, e.value))
    }
}

impl Projection for PlanProjection<'_> {
    fn step(&mut self, t: &mut Tensor) -> Result<(), CoreError> {
        self.apply(t, if self.full { Stage::Final } else { Stage::Step })
    }
    fn finalize(&mut self, t: &mut Tensor) -> Result<(), CoreError> {
        self.apply(t, Stage::Final)
    }
}

/// The bfloat16 patterns of values that are exactly bfloat16 (after a final projection).
fn exact_bf16(t: &Tensor) -> Vec<u16> {
    t.data
        .iter()
        .map(|v| {
            let b = v.to_bits();
            debug_assert_eq!(b & 0xFFFF, 0, "{v} is not a bfloat16 value");
            (b >> 16) as u16
        })
        .collect()
}

impl Method for Bf16Approx {
    fn needs(&self) -> Needs {
        Needs {
            trainer: self.retrain.is_some(),
            ..Needs::NONE
        }
    }

    /// A lossy retrained configuration's control: lossless exponent sharing
    /// (r = 0, m′ = 7, per-layer tables) fine-tuned on the same schedule.
    fn control(&self) -> Option<BTreeMap<String, Value>> {
        let rt = self.retrain.as_ref()?;
        if self.remove_bits == 0 && self.mantissa_bits == 7 {
            return None;
        }
        let d = Bf16ApproxParams::default();
        let mut p = BTreeMap::new();
        p.insert("retrain_epochs".into(), json!(rt.epochs));
        if rt.max_steps != d.retrain_steps {
            p.insert("retrain_steps".into(), json!(rt.max_steps));
        }
        if rt.lr != d.lr {
            p.insert("lr".into(), json!(rt.lr));
        }
        if rt.batch != d.batch {
            p.insert("batch".into(), json!(rt.batch));
        }
        if rt.holdout != d.holdout {
            p.insert("holdout".into(), json!(rt.holdout));
        }
        if rt.full_projection {
            p.insert("retrain_projection".into(), json!("full"));
        }
        Some(p)
    }

    fn compress(
        &self,
        weights: &WeightSet,
        ctx: &mut Context<'_>,
    ) -> Result<Vec<Candidate>, MethodError> {
        // Every data-dependent parameter check happens here, before any projection or
        // fine-tuning.
        let plans = self.plans(weights)?;
        let sets = plans.sets();

        // Retraining-free projection (also the start of fine-tuning).
        let mut projected = weights.clone();
        let mut stats: HashMap<String, ProjectStats> = HashMap::new();
        for t in projected.tensors.iter_mut().filter(|t| t.compressible) {
            let s = project(&mut t.data, sets[t.name.as_str()], Stage::Final)
                .map_err(|e| not_representable(&t.name, e.index, e.value))?;
            stats.insert(t.name.clone(), s);
        }

        let mut retrain_extra = Value::Null;
        if let Some(rt) = self.retrain {
            let trainer = (ctx.trainer.as_deref_mut()).ok_or(MethodError::NeedsTrainer(ID))?;
            let cfg = FineTuneConfig {
                epochs: rt.epochs,
                max_steps: rt.max_steps,
                lr: rt.lr,
                momentum: 0.0,
                batch: rt.batch,
                seed: ctx.seed,
                holdout_images: rt.holdout,
            };
            let mut proj = PlanProjection {
                sets: sets.clone(),
                full: rt.full_projection,
            };
            ctx.progress.message("fine-tuning with projection");
            let outcome = trainer.fine_tune(&projected, &cfg, &mut proj, ctx.progress)?;
            let mut w = outcome.weights.clone();
            // Idempotent: the trainer already finalized these; this guarantees it.
            project_all(&mut w, |t| proj.finalize(t))?;
            let acc = |a: wb_core::Accuracy| json!({"top1_pct": a.top1_pct(), "top1_correct": a.top1_correct, "images": a.total});
            retrain_extra = json!({
                "epochs_requested": rt.epochs,
                "max_steps": rt.max_steps,
                "lr": rt.lr,
                "momentum": 0.0,
                "batch": rt.batch,
                "holdout_images": rt.holdout,
                "projection": if rt.full_projection { "full" } else { "exponent" },
                "steps": outcome.steps,
                "best_epoch": outcome.best_epoch,
                "start_holdout": acc(outcome.start_holdout),
                "best_holdout": acc(outcome.best_holdout()),
                "history": outcome.epochs.iter().map(|e| json!({
                    "epoch": e.epoch,
                    "steps": e.steps,
                    "train_loss": e.train_loss,
                    "holdout": acc(e.holdout),
                })).collect::<Vec<_>>(),
            });
            projected = w;
        }

        let (artifact, layers) = self.encode(&projected, &plans, &stats)?;
        let size = artifact.size();
        let bits_bf16 = 16 * size.counted_params;
        let nominal: u64 = layers
            .iter()
            .map(|l| l["bits_nominal_authors"].as_u64().unwrap_or(0))
            .sum::<u64>()
            + plans
                .shared
                .as_ref()
                .map_or(0, |p| 8 * p.nominal_entries as u64);
        let extra = Diagnostics {
            table: self.table.name().into(),
            remove_bits: self.remove_bits,
            zero: format!("{:?}", self.zero),
            mantissa_bits: self.mantissa_bits,
            mantissa_rounding: format!("{:?}", self.rounding),
            value_sharing: format!("{:?}", self.value_sharing),
            model_table: plans.shared.as_ref().map(|p| {
                json!({
                    "distinct_exponents": p.distinct.len(),
                    "lossless_index_bits": p.lossless_bits,
                    "table": p.set.table,
                    "index_bits": p.index_bits(),
                })
            }),
            counted_params: size.counted_params,
            bits_bf16_baseline: bits_bf16,
            bits_compressed: size.bits_compressed,
            bits_per_weight: size.bits_compressed as f64 / size.counted_params.max(1) as f64,
            saving_vs_bf16_pct: saving_pct(bits_bf16, size.bits_compressed),
            bits_nominal_authors: nominal,
            saving_vs_bf16_pct_nominal_authors: saving_pct(bits_bf16, nominal),
            compression_ratio_vs_fp32: size.compression_ratio(),
            snapped_weights: stats.values().map(|s| s.snapped).sum::<usize>(),
            zeroed_weights: stats.values().map(|s| s.zeroed).sum::<usize>(),
            retrain: retrain_extra,
            layers,
        }
        .to_value();
        Ok(vec![Candidate::chosen("default", artifact, extra)])
    }
}

/// The diagnostics of a `bf16-approx` candidate (its `extra_json`), written by
/// `compress` and read back by the report view with this same type.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Diagnostics {
    /// Exponent-table scope (`layer` or `model`).
    pub table: String,
    /// r: index bits removed.
    pub remove_bits: u8,
    /// Zero handling (`Off`, `InBudget`, `ExtraEntry`).
    pub zero: String,
    /// m′: kept mantissa bits.
    pub mantissa_bits: u8,
    /// Mantissa rounding (`NearestEven`, `Truncate`).
    pub mantissa_rounding: String,
    /// Value sharing (`Off`, `Auto`, `Always`).
    pub value_sharing: String,
    /// The model-wide exponent table, when `table = "model"`.
    pub model_table: Option<Value>,
    /// Weights counted by the paper accounting.
    pub counted_params: u64,
    /// 16 bits per counted weight: the BF16 baseline of the paper's saving.
    pub bits_bf16_baseline: u64,
    /// Compressed bits of the counted weights and their tables.
    pub bits_compressed: u64,
    /// `bits_compressed / counted_params`.
    pub bits_per_weight: f64,
    /// Memory saving against BF16, percent (the paper's metric).
    pub saving_vs_bf16_pct: f64,
    /// The authors' nominal bit count (tables at their nominal size).
    pub bits_nominal_authors: u64,
    /// Saving against BF16 by the authors' nominal count, percent.
    pub saving_vs_bf16_pct_nominal_authors: f64,
    /// FP32 bits / compressed bits.
    pub compression_ratio_vs_fp32: f64,
    /// Weights moved to another exponent by the projection.
    pub snapped_weights: usize,
    /// Weights set to zero by the projection.
    pub zeroed_weights: usize,
    /// Fine-tuning record (null without retraining).
    pub retrain: Value,
    /// Per-layer records.
    pub layers: Vec<Value>,
}

impl Diagnostics {
    /// As the JSON of `extra_json`.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("diagnostics always serialize")
    }
}

fn saving_pct(base: u64, bits: u64) -> f64 {
    if base == 0 {
        0.0
    } else {
        100.0 * (1.0 - bits as f64 / base as f64)
    }
}

impl Bf16Approx {
    /// Encodes projected weights (compressible values exactly representable in their
    /// plan's set) into the artifact, with per-layer diagnostics.
    fn encode(
        &self,
        w: &WeightSet,
        plans: &Plans,
        stats: &HashMap<String, ProjectStats>,
    ) -> Result<(Artifact, Vec<Value>), MethodError> {
        let by_name: HashMap<&str, (usize, &ExponentPlan)> = plans
            .layers
            .iter()
            .map(|(n, d, p)| (n.as_str(), (*d, p)))
            .collect();
        let m = self.mantissa_bits;
        let mut uses_shared = false;
        let mut layers = Vec::new();
        let mut tensors = Vec::with_capacity(w.tensors.len());
        for t in &w.tensors {
            if !t.compressible {
                tensors.push(EncodedTensor::dense(t));
                continue;
            }
            let (distinct, plan) = by_name[t.name.as_str()];
            let bits = exact_bf16(t);
            let table = &plan.set.table;
            let field_err = |e: wb_core::bf16fields::FieldError| {
                MethodError::Core(CoreError::InvalidEncoding {
                    name: t.name.clone(),
                    reason: format!("projection left a value the table cannot store: {e}"),
                })
            };
            let fields = match self.table {
                TableScope::Layer => Encoding::bf16_fields_local(&bits, table.clone(), m),
                TableScope::Model => Encoding::bf16_fields_shared(&bits, 0, table, m),
            }
            .map_err(field_err)?;
            let n = bits.len() as u64;
            let field_bits = n * (1 + plan.index_bits() as u64 + m as u64)
                + if self.table == TableScope::Layer {
                    8 * table.len() as u64
                } else {
                    0
                };
            let shared_values = {
                let mut u = bits.clone();
                u.sort_unstable();
                u.dedup();
                u.len()
            };
            let value_bits =
                n * wb_core::bitpack::index_bits(shared_values) as u64 + 16 * shared_values as u64;
            let use_values = match self.value_sharing {
                ValueSharing::Off => false,
                ValueSharing::Auto => value_bits < field_bits,
                ValueSharing::Always => true,
            };
            let encoding = if use_values {
                Encoding::bf16_table(&bits)
            } else {
                uses_shared |= self.table == TableScope::Model;
                fields
            };
            let enc = EncodedTensor::with(t, encoding);
            let s = stats.get(&t.name).copied().unwrap_or_default();
            let used: std::collections::BTreeSet<u8> =
                bits.iter().map(|b| exponent_field(*b)).collect();
            let nominal = if use_values {
                value_bits
            } else {
                n * (1 + plan.nominal_bits as u64 + m as u64)
                    + if self.table == TableScope::Layer {
                        8 * plan.nominal_entries as u64
                    } else {
                        0
                    }
            };
            layers.push(json!({
                "name": t.name,
                "numel": n,
                "distinct_exponents": distinct,
                "lossless_index_bits": wb_core::bitpack::index_bits(distinct),
                "table": table,
                "index_bits": plan.index_bits(),
                "exponents_used": used.len(),
                "distinct_values": shared_values,
                "encoding": enc.encoding.kind(),
                "bits": enc.size().payload_bits(),
                "bits_fields": field_bits,
                "bits_value_sharing": value_bits,
                "bits_nominal_authors": nominal,
                "snapped_weights": s.snapped,
                "zeroed_weights": s.zeroed,
            }));
            tensors.push(enc);
        }
        let shared_exp_tables = match (&plans.shared, uses_shared) {
            (Some(p), true) => vec![p.set.table.clone()],
            _ => vec![],
        };
        let artifact = Artifact {
            shared_exp_tables,
            tensors,
            ..Default::default()
        };
        artifact.validate()?;
        Ok((artifact, layers))
    }
}
