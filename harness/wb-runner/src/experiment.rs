//! Experiment files: a TOML grid of models × datasets × methods × parameters × seeds,
//! parsed and checked as a whole before anything runs.
//!
//! ```toml
//! description = "…"
//! models = ["resnet20", "resnet56"]
//! datasets = ["cifar10-jpeg75", "cifar10-exact932"]
//! seeds = [0]
//!
//! [evaluation]            # optional
//! split = "full"          # full | heldout (the complement of the search subset)
//! batch_size = 500
//!
//! [search]                # optional: the subset search methods evaluate on
//! images = 1000
//! seed = 0
//!
//! [[methods]]
//! id = "kmeans-uniform"
//! params = { k = [4, 16, 64] }   # an array is a sweep: one cell per value
//! index_codings = ["huffman-tensor"]  # optional: one more row per candidate with the
//!                                     # indices recoded by the harness (fixed,
//!                                     # huffman-tensor, huffman-model)
//! ```

use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use toml::Spanned;
use wb_core::{MethodInfo, Params, PostCoding};

/// A whole-grid error: every problem found, each naming file, line and field.
#[derive(Debug)]
pub struct ExperimentError {
    /// The experiment file.
    pub path: PathBuf,
    /// One message per problem (`line N: field: message`).
    pub problems: Vec<String>,
}

impl fmt::Display for ExperimentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "experiment `{}` has {} problem{}:",
            self.path.display(),
            self.problems.len(),
            if self.problems.len() == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  {}:{p}", self.path.display())?;
        }
        Ok(())
    }
}

impl std::error::Error for ExperimentError {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExperiment {
    #[serde(default)]
    name: Option<Spanned<String>>,
    #[serde(default)]
    description: String,
    models: Spanned<Vec<Spanned<String>>>,
    datasets: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    seeds: Option<Spanned<Vec<Spanned<i64>>>>,
    #[serde(default)]
    evaluation: RawEvaluation,
    #[serde(default)]
    search: RawSearch,
    #[serde(default)]
    timing: RawTiming,
    methods: Spanned<Vec<RawMethod>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvaluation {
    #[serde(default)]
    split: Option<Spanned<String>>,
    #[serde(default)]
    batch_size: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSearch {
    #[serde(default)]
    images: Option<Spanned<i64>>,
    #[serde(default)]
    dataset: Option<Spanned<String>>,
    #[serde(default)]
    seed: Option<Spanned<i64>>,
    /// Racing confidence (`wb_core::race`), e.g. 0.999; absent: no racing.
    #[serde(default)]
    race: Option<Spanned<f64>>,
    /// Surrogate screening (`wb_core::race::Accel::surrogate`).
    #[serde(default)]
    surrogate: Option<bool>,
}

/// Optional `[timing]` section (see [`TimingSettings`]).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTiming {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    min_time_s: Option<Spanned<f64>>,
    #[serde(default)]
    min_samples: Option<Spanned<i64>>,
    #[serde(default)]
    throughput_batch: Option<Spanned<i64>>,
    #[serde(default)]
    energy: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMethod {
    id: Spanned<String>,
    #[serde(default)]
    params: BTreeMap<String, Spanned<toml::Value>>,
    /// Extra rows per candidate with the indices recoded by the harness
    /// ([`wb_core::PostCoding`] names).
    #[serde(default)]
    index_codings: Option<Spanned<Vec<Spanned<String>>>>,
    /// Restricts the entry to some of the experiment's models (default: all).
    #[serde(default)]
    models: Option<Spanned<Vec<Spanned<String>>>>,
    /// Restricts the entry to some of the experiment's seeds (default: all).
    #[serde(default)]
    seeds: Option<Spanned<Vec<Spanned<i64>>>>,
}

/// The split the reported accuracy is measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalSplit {
    /// Every image of the dataset.
    Full,
    /// Every image not in the search subset.
    Heldout,
}

impl EvalSplit {
    /// Name used in result rows.
    pub fn name(self) -> &'static str {
        match self {
            EvalSplit::Full => "full",
            EvalSplit::Heldout => "heldout",
        }
    }
}

/// Timed-pass settings of an experiment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimingSettings {
    /// Whether to run the timed pass at all.
    pub enabled: bool,
    /// Minimum measured time per batch size, seconds.
    pub min_time_s: f64,
    /// Minimum number of samples per batch size.
    pub min_samples: usize,
    /// Batch size of the throughput measurement.
    pub throughput_batch: usize,
    /// Whether to attempt an energy measurement.
    pub energy: bool,
}

impl Default for TimingSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            min_time_s: 2.0,
            min_samples: 64,
            throughput_batch: 64,
            energy: true,
        }
    }
}

/// One run of one method configuration on one model and dataset.
#[derive(Debug, Clone)]
pub struct Cell {
    /// Stable identifier: readable prefix plus a hash of everything that defines the cell.
    pub id: String,
    /// Model name (its card is `models/<model>.toml`).
    pub model: String,
    /// Dataset id.
    pub dataset: String,
    /// Method id.
    pub method: String,
    /// Checked parameters with defaults filled in.
    pub params: Params,
    /// Seed given to the method.
    pub seed: u64,
    /// The parameters the experiment file set explicitly (canonical JSON), for labels.
    pub params_given: String,
    /// Index-coding post-stages applied to every candidate, each giving one more row
    /// (`index_codings` of the method entry; empty = the method's own coding only).
    pub index_codings: Vec<PostCoding>,
    /// The cell of the method's lossless control on the same model, dataset and seed
    /// (methods that retrain: [`wb_core::Method::control`]); it is part of the grid.
    pub control_cell: Option<String>,
}

impl Cell {
    /// Seed of this cell's search subset (and so of its held-out split): the
    /// experiment's `[search] seed` offset by the cell's seed, so that one seed varies
    /// everything random in a cell. Seed 0 keeps the subset of `[search] seed`.
    pub fn split_seed(&self, exp: &Experiment) -> u64 {
        exp.search_seed.wrapping_add(self.seed)
    }
}

/// A parsed, checked experiment.
#[derive(Debug, Clone)]
pub struct Experiment {
    /// Name (results go to `results/<name>/`).
    pub name: String,
    /// Free text.
    pub description: String,
    /// The file it came from.
    pub path: PathBuf,
    /// Models in order.
    pub models: Vec<String>,
    /// Datasets in order.
    pub datasets: Vec<String>,
    /// Reported-accuracy split.
    pub eval_split: EvalSplit,
    /// Evaluation batch size.
    pub batch_size: usize,
    /// Search subset size.
    pub search_images: usize,
    /// Search subset seed.
    pub search_seed: u64,
    /// Where the search subset is drawn from: `None` = the cell's own dataset (disjoint
    /// from the evaluation split only with `split = "heldout"`), or another registered
    /// dataset such as `cifar10-train-jpeg75`, which lets the evaluation use every test
    /// image while the search never sees one.
    pub search_dataset: Option<String>,
    /// Search accelerations (`[search] race`, `[search] surrogate`); off by default.
    pub accel: wb_core::Accel,
    /// Timed pass.
    pub timing: TimingSettings,
    /// Every cell of the grid.
    pub cells: Vec<Cell>,
}

/// What the checker needs to know about the world: methods, models and datasets.
pub struct Catalog<'a> {
    /// Registered methods.
    pub methods: &'a [MethodInfo],
    /// Checks a model name; `Err` says what is missing and where it looked.
    pub model: &'a dyn Fn(&str) -> Result<(), String>,
    /// Checks a dataset id; `Err` says why it cannot be used.
    pub dataset: &'a dyn Fn(&str) -> Result<(), String>,
    /// Checks a dataset id named by `search.dataset` (training-only datasets allowed).
    pub search_dataset: &'a dyn Fn(&str) -> Result<(), String>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn toml_to_json(v: &toml::Value) -> serde_json::Value {
    match v {
        toml::Value::String(s) => s.clone().into(),
        toml::Value::Integer(i) => (*i).into(),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        toml::Value::Boolean(b) => (*b).into(),
        toml::Value::Datetime(d) => d.to_string().into(),
        toml::Value::Array(a) => a.iter().map(toml_to_json).collect(),
        toml::Value::Table(t) => t
            .iter()
            .map(|(k, v)| (k.clone(), toml_to_json(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
    }
}

/// Reads and checks an experiment file.
pub fn load(path: &Path, catalog: &Catalog<'_>) -> Result<Experiment, ExperimentError> {
    let text = std::fs::read_to_string(path).map_err(|e| ExperimentError {
        path: path.to_path_buf(),
        problems: vec![format!(" cannot read the file: {e}")],
    })?;
    parse(&text, path, catalog)
}

/// The problems found while checking a file, each as `line: field: message`.
struct Problems<'t> {
    text: &'t str,
    list: Vec<String>,
}

impl Problems<'_> {
    /// Records a problem at `span` of the text.
    fn at(&mut self, span: std::ops::Range<usize>, field: &str, msg: String) {
        self.list.push(format!(
            "{}: {field}: {msg}",
            line_of(self.text, span.start)
        ));
    }

    /// An optional integer in `range` (else `default`), reported as `field` when outside.
    fn int_in(
        &mut self,
        v: &Option<Spanned<i64>>,
        field: &str,
        range: std::ops::RangeInclusive<i64>,
        allowed: &str,
    ) -> Option<i64> {
        let b = v.as_ref()?;
        let x = *b.get_ref();
        if !range.contains(&x) {
            self.at(b.span(), field, format!("{x}; allowed: {allowed}"));
            return None;
        }
        Some(x)
    }
}

/// Parses and checks experiment text; `path` names the file in messages and gives the
/// default name (its stem). Every problem of the whole grid is collected before any
/// is reported.
pub fn parse(
    text: &str,
    path: &Path,
    catalog: &Catalog<'_>,
) -> Result<Experiment, ExperimentError> {
    let fail = |problems: Vec<String>| ExperimentError {
        path: path.to_path_buf(),
        problems,
    };
    // Syntax and the shape of every field first, all at once: serde would stop at the
    // first slip and name neither its field nor its table.
    let shape = crate::toml_shape::problems(text);
    if !shape.is_empty() {
        return Err(fail(
            shape
                .into_iter()
                .map(|(span, field, msg)| format!("{}: {field}: {msg}", line_of(text, span.start)))
                .collect(),
        ));
    }
    let raw: RawExperiment = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start));
        let msg = e.message().trim_end().to_string();
        fail(vec![match line {
            Some(l) => format!("{l}: {msg}"),
            None => format!(" {msg}"),
        }])
    })?;
    let mut p = Problems {
        text,
        list: Vec::new(),
    };
    let name = parse_name(&raw, path, &mut p);
    let models = parse_list(&raw.models, "models", "model", catalog.model, &mut p);
    let datasets = parse_list(
        &raw.datasets,
        "datasets",
        "dataset",
        catalog.dataset,
        &mut p,
    );
    let seeds = parse_seeds(&raw, &mut p);
    let (split_given, batch_size) = parse_evaluation(&raw.evaluation, &mut p);
    let (search_images, search_dataset, search_seed) = parse_search(&raw.search, catalog, &mut p);
    let accel = parse_accel(&raw.search, &mut p);
    let timing = parse_timing(&raw.timing, &mut p);
    let mut configs = parse_methods(&raw.methods, catalog, &models, &seeds, &mut p);
    add_controls(&mut configs, catalog, &mut p);
    // The protocol's default: a method that looks at search images drawn from the
    // reported dataset is reported on the rest of it.
    let eval_split = split_given.unwrap_or(
        if search_dataset.is_none() && configs.iter().any(|c| c.searches) {
            EvalSplit::Heldout
        } else {
            EvalSplit::Full
        },
    );
    check_search_overlap(
        &configs,
        eval_split,
        search_dataset.as_deref(),
        &datasets,
        &mut p,
    );
    if !p.list.is_empty() {
        // Deduplicate (a bad value repeated across a sweep is reported once).
        p.list.dedup();
        return Err(fail(p.list));
    }

    let mut cells = Vec::new();
    let grid = Grid {
        split: eval_split,
        search_images,
        search_seed,
        search_dataset: search_dataset.as_deref(),
        accel,
    };
    for model in &models {
        for dataset in &datasets {
            for config in &configs {
                for &seed in &seeds {
                    if !config.covers(model, seed) {
                        continue;
                    }
                    let mut cell = grid.cell(model, dataset, config, seed);
                    cell.params_given = config.given.clone();
                    cell.control_cell = config
                        .control
                        .map(|ci| grid.cell(model, dataset, &configs[ci], seed).id);
                    cells.push(cell);
                }
            }
        }
    }
    Ok(Experiment {
        name,
        description: raw.description,
        path: path.to_path_buf(),
        models,
        datasets,
        eval_split,
        batch_size,
        search_images,
        search_seed,
        search_dataset,
        accel,
        timing,
        cells,
    })
}

/// `name`, or the file's stem.
fn parse_name(raw: &RawExperiment, path: &Path, p: &mut Problems<'_>) -> String {
    let Some(n) = &raw.name else {
        return path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("experiment")
            .to_string();
    };
    let v = n.get_ref();
    if v.is_empty()
        || !v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        p.at(
            n.span(),
            "name",
            format!("`{v}` must be non-empty and use only letters, digits, `-`, `_`, `.`"),
        );
    }
    v.clone()
}

/// `models` or `datasets`: non-empty, each known to the catalog, none twice.
fn parse_list(
    list: &Spanned<Vec<Spanned<String>>>,
    field: &str,
    what: &str,
    known: &dyn Fn(&str) -> Result<(), String>,
    p: &mut Problems<'_>,
) -> Vec<String> {
    if list.get_ref().is_empty() {
        p.at(list.span(), field, format!("lists no {what}"));
    }
    let mut out: Vec<String> = Vec::new();
    for m in list.get_ref() {
        if let Err(e) = known(m.get_ref()) {
            p.at(m.span(), field, e);
        }
        if out.contains(m.get_ref()) {
            p.at(
                m.span(),
                field,
                format!("`{}` is listed twice", m.get_ref()),
            );
        }
        out.push(m.get_ref().clone());
    }
    out
}

/// `seeds` (default `[0]`), each ≥ 0.
fn parse_seeds(raw: &RawExperiment, p: &mut Problems<'_>) -> Vec<u64> {
    let Some(s) = &raw.seeds else {
        return vec![0];
    };
    if s.get_ref().is_empty() {
        p.at(
            s.span(),
            "seeds",
            "lists no seed (leave it out for seed 0)".into(),
        );
    }
    let mut seeds = Vec::new();
    for x in s.get_ref() {
        if *x.get_ref() < 0 {
            p.at(x.span(), "seeds", format!("{} must be ≥ 0", x.get_ref()));
        } else {
            seeds.push(*x.get_ref() as u64);
        }
    }
    seeds
}

/// `[evaluation]`: the split (`None` when not given: the caller applies the
/// protocol's default) and the batch size (default 500).
fn parse_evaluation(e: &RawEvaluation, p: &mut Problems<'_>) -> (Option<EvalSplit>, usize) {
    let split = e.split.as_ref().map(|s| match s.get_ref().as_str() {
        "full" => EvalSplit::Full,
        "heldout" => EvalSplit::Heldout,
        other => {
            p.at(
                s.span(),
                "evaluation.split",
                format!("`{other}`; allowed: full, heldout"),
            );
            EvalSplit::Full
        }
    });
    let batch = p
        .int_in(
            &e.batch_size,
            "evaluation.batch_size",
            1..=100_000,
            "1..=100000",
        )
        .unwrap_or(500);
    (split, batch as usize)
}

/// `[search]`: subset size (default 1000), source dataset (default: the cell's own)
/// and seed (default 0).
fn parse_search(
    s: &RawSearch,
    catalog: &Catalog<'_>,
    p: &mut Problems<'_>,
) -> (usize, Option<String>, u64) {
    let images = p
        .int_in(
            &s.images,
            "search.images",
            10..=1_000_000,
            "10..=1000000 (and fewer than the dataset's images)",
        )
        .unwrap_or(1000);
    let dataset = s.dataset.as_ref().map(|d| {
        if let Err(e) = (catalog.search_dataset)(d.get_ref()) {
            p.at(d.span(), "search.dataset", e);
        }
        d.get_ref().clone()
    });
    let seed = match &s.seed {
        None => 0,
        Some(x) => {
            if *x.get_ref() < 0 {
                p.at(
                    x.span(),
                    "search.seed",
                    format!("{} must be ≥ 0", x.get_ref()),
                );
            }
            x.get_ref().max(&0).to_owned() as u64
        }
    };
    (images as usize, dataset, seed)
}

/// `[search] race` (a confidence in [0.5, 0.999999]) and `[search] surrogate`.
fn parse_accel(s: &RawSearch, p: &mut Problems<'_>) -> wb_core::Accel {
    let race = s.race.as_ref().and_then(|r| {
        let v = *r.get_ref();
        if v.is_finite() && (0.5..=0.999_999).contains(&v) {
            Some(v)
        } else {
            p.at(
                r.span(),
                "search.race",
                format!("{v}; allowed: a confidence in 0.5..=0.999999 (e.g. 0.999)"),
            );
            None
        }
    });
    wb_core::Accel {
        race,
        surrogate: s.surrogate.unwrap_or(false),
    }
}

/// `[timing]`, each field checked against its range (defaults otherwise).
fn parse_timing(t: &RawTiming, p: &mut Problems<'_>) -> TimingSettings {
    let mut timing = TimingSettings::default();
    if let Some(e) = t.enabled {
        timing.enabled = e;
    }
    if let Some(e) = t.energy {
        timing.energy = e;
    }
    if let Some(s) = &t.min_time_s {
        let v = *s.get_ref();
        if !(v.is_finite() && (0.01..=600.0).contains(&v)) {
            p.at(
                s.span(),
                "timing.min_time_s",
                format!("{v}; allowed: 0.01..=600"),
            );
        } else {
            timing.min_time_s = v;
        }
    }
    if let Some(v) = p.int_in(
        &t.min_samples,
        "timing.min_samples",
        1..=100_000,
        "1..=100000",
    ) {
        timing.min_samples = v as usize;
    }
    if let Some(v) = p.int_in(
        &t.throughput_batch,
        "timing.throughput_batch",
        1..=4096,
        "1..=4096",
    ) {
        timing.throughput_batch = v as usize;
    }
    timing
}

/// One method configuration of the grid.
struct Config {
    /// Method id.
    method: String,
    /// Checked parameters.
    params: Params,
    /// The parameters the file set, as canonical JSON.
    given: String,
    /// Post-stages of the entry.
    index_codings: Vec<PostCoding>,
    /// Whether the method looks at the search subset (evaluator or gradients).
    searches: bool,
    /// Where the entry's `id` is in the file, and its index, for messages.
    at: (std::ops::Range<usize>, usize),
    /// Where this configuration runs: one (models, seeds) restriction per entry that
    /// lists it (`None`: all of the experiment's), a cell running where any covers it.
    cover: Vec<Cover>,
    /// The parameters of the method's lossless control, when it retrains.
    control_params: Option<BTreeMap<String, serde_json::Value>>,
    /// Index of the control's configuration in the grid (set by [`add_controls`]).
    control: Option<usize>,
}

/// The models and seeds of one `[[methods]]` entry (`None`: all of the experiment's).
#[derive(Debug, Clone, PartialEq)]
struct Cover {
    models: Option<Vec<String>>,
    seeds: Option<Vec<u64>>,
}

impl Cover {
    fn covers(&self, model: &str, seed: u64) -> bool {
        self.models
            .as_ref()
            .is_none_or(|m| m.iter().any(|x| x == model))
            && self.seeds.as_ref().is_none_or(|s| s.contains(&seed))
    }
}

impl Config {
    /// Whether the configuration runs on `model` with `seed`.
    fn covers(&self, model: &str, seed: u64) -> bool {
        self.cover.iter().any(|c| c.covers(model, seed))
    }

    /// Also runs the configuration where `other` says; whether that added anything.
    fn widen_to(&mut self, other: &[Cover]) -> bool {
        let mut widened = false;
        for c in other {
            if !self.cover.contains(c) {
                self.cover.push(c.clone());
                widened = true;
            }
        }
        widened
    }
}

/// Everything besides the configuration that defines a cell's identity.
struct Grid<'a> {
    split: EvalSplit,
    search_images: usize,
    search_seed: u64,
    search_dataset: Option<&'a str>,
    accel: wb_core::Accel,
}

impl Grid<'_> {
    fn cell(&self, model: &str, dataset: &str, config: &Config, seed: u64) -> Cell {
        let mut cell = make_cell(
            model,
            dataset,
            config,
            seed,
            self.split,
            self.search_images,
            self.search_seed,
            self.search_dataset,
        );
        // Accelerations change a searching cell's decisions, so they enter its id, and
        // only then (ids of experiments without them stay what they were).
        if config.searches && self.accel != wb_core::Accel::default() {
            cell.id = accel_id(&cell.id, &self.accel);
        }
        cell
    }
}

/// `id` with the accelerations hashed into its suffix. Raced and screened decisions
/// depend on the order the search images are evaluated in, so that order is part of
/// the key (`hard-first`: `wb_torch::Batches::hard_first`; exact answers do not depend
/// on it, which is why ids without accelerations do not carry it).
fn accel_id(id: &str, accel: &wb_core::Accel) -> String {
    let key = serde_json::json!({
        "id": id,
        "race": accel.race,
        "surrogate": accel.surrogate,
        "order": "hard-first",
    });
    let hash = Sha256::digest(key.to_string().as_bytes());
    let (stem, _) = id.rsplit_once("__").unwrap_or((id, ""));
    format!("{stem}__{}", &wb_core::weights::hex(&hash)[..10])
}

/// Adds the lossless control of every configuration that retrains (unless the grid
/// has it already) and links each such configuration to it: a retrained result is
/// judged against the same model fine-tuned on the same schedule.
fn add_controls(configs: &mut Vec<Config>, catalog: &Catalog<'_>, p: &mut Problems<'_>) {
    for i in 0..configs.len() {
        let Some(given) = configs[i].control_params.clone() else {
            continue;
        };
        let id = configs[i].method.clone();
        let info = catalog.methods.iter().find(|m| m.id == id);
        let built = info.map(|info| info.instantiate(&given));
        let (params, method) = match built {
            Some(Ok(x)) => x,
            Some(Err(e)) => {
                let (span, mi) = configs[i].at.clone();
                p.at(
                    span,
                    &format!("methods[{mi}] ({id})"),
                    format!("its lossless control cannot be built: {e}"),
                );
                continue;
            }
            None => continue,
        };
        let cover = configs[i].cover.clone();
        let at = match configs
            .iter()
            .position(|c| c.method == id && c.params == params)
        {
            Some(j) => {
                configs[j].widen_to(&cover);
                j
            }
            None => {
                configs.push(Config {
                    method: id.clone(),
                    params,
                    given: serde_json::to_string(&given).expect("JSON values serialize"),
                    index_codings: Vec::new(),
                    searches: method.needs().sees_search_images(),
                    at: configs[i].at.clone(),
                    cover,
                    control_params: None,
                    control: None,
                });
                configs.len() - 1
            }
        };
        if at != i {
            configs[i].control = Some(at);
        }
    }
}

/// `[[methods]]`: each id registered, each parameter combination (arrays are sweeps)
/// checked against the method's declaration and `build`; duplicates dropped.
fn parse_methods(
    methods: &Spanned<Vec<RawMethod>>,
    catalog: &Catalog<'_>,
    models: &[String],
    seeds: &[u64],
    p: &mut Problems<'_>,
) -> Vec<Config> {
    if methods.get_ref().is_empty() {
        p.at(methods.span(), "methods", "lists no method".into());
    }
    let mut configs: Vec<Config> = Vec::new();
    let mut duplicate_reported: Vec<usize> = Vec::new();
    for (mi, m) in methods.get_ref().iter().enumerate() {
        let id = m.id.get_ref();
        let Some(info) = catalog.methods.iter().find(|i| i.id == id) else {
            let known: Vec<&str> = catalog.methods.iter().map(|i| i.id).collect();
            p.at(
                m.id.span(),
                &format!("methods[{mi}].id"),
                format!("unknown method `{id}`; allowed: {}", known.join(", ")),
            );
            continue;
        };
        let index_codings = parse_index_codings(m, mi, p);
        let only_models = m
            .models
            .as_ref()
            .map(|l| restrict(l, &format!("methods[{mi}].models"), models, "model", p));
        let only_seeds = m.seeds.as_ref().map(|l| {
            let allowed: Vec<i64> = seeds.iter().map(|&s| s as i64).collect();
            let field = format!("methods[{mi}].seeds");
            let kept = restrict(l, &field, &allowed, "seed", p);
            kept.into_iter().map(|s| s as u64).collect::<Vec<u64>>()
        });
        for combo in expand_sweeps(m, mi, p) {
            match info.instantiate_all(&combo) {
                Ok((params, method)) => {
                    let known = configs.iter_mut().find(|c| {
                        c.method == *id && c.params == params && c.index_codings == index_codings
                    });
                    let cover = [Cover {
                        models: only_models.clone(),
                        seeds: only_seeds.clone(),
                    }];
                    if let Some(c) = known {
                        // Two entries of one configuration are fine when they cover
                        // different models or seeds; one that adds nothing is a slip.
                        if !c.widen_to(&cover) && !duplicate_reported.contains(&mi) {
                            duplicate_reported.push(mi);
                            p.at(
                                m.id.span(),
                                &format!("methods[{mi}] ({id})"),
                                format!(
                                    "repeats methods[{}] (same parameters, index codings, \
                                     models and seeds): remove one",
                                    c.at.1
                                ),
                            );
                        }
                    } else {
                        let given = serde_json::to_string(&combo).expect("JSON values serialize");
                        configs.push(Config {
                            method: id.clone(),
                            params,
                            given,
                            index_codings: index_codings.clone(),
                            searches: method.needs().sees_search_images(),
                            at: (m.id.span(), mi),
                            cover: cover.to_vec(),
                            control_params: method.control(),
                            control: None,
                        });
                    }
                }
                Err(errors) => {
                    for e in errors {
                        let span = m.params.get(&e.field).map_or(m.id.span(), |v| v.span());
                        p.at(
                            span,
                            &format!("methods[{mi}] ({id}).params.{}", e.field),
                            e.message,
                        );
                    }
                }
            }
        }
    }
    configs
}

/// A method that searches (or takes gradients on search images) must never have seen
/// the images it is reported on: with
/// `split = "full"`, its search subset has to come from another dataset than every
/// reported one (`[search] dataset`); with `split = "heldout"` it is the complement.
fn check_search_overlap(
    configs: &[Config],
    split: EvalSplit,
    search_dataset: Option<&str>,
    datasets: &[String],
    p: &mut Problems<'_>,
) {
    if split == EvalSplit::Heldout {
        return;
    }
    let overlapping: Vec<&String> = match search_dataset {
        None => datasets.iter().collect(),
        Some(s) => datasets.iter().filter(|d| *d == s).collect(),
    };
    let Some(first) = overlapping.first() else {
        return;
    };
    let mut seen = Vec::new();
    for c in configs.iter().filter(|c| c.searches) {
        if seen.contains(&c.at.1) {
            continue;
        }
        seen.push(c.at.1);
        p.at(
            c.at.0.clone(),
            &format!("methods[{}] ({})", c.at.1, c.method),
            format!(
                "searches on a subset of `{first}`, whose images `split = \"full\"` then \
                 reports: the reported images would include searched ones. Set \
                 `[evaluation] split = \"heldout\"` (report the complement of the search \
                 subset) or `[search] dataset` to a dataset that is not reported (e.g. \
                 \"cifar10-train-jpeg75\")"
            ),
        );
    }
}

/// A `models` or `seeds` restriction of one entry: non-empty, each one of the
/// experiment's own.
fn restrict<T: Clone + PartialEq + fmt::Display>(
    list: &Spanned<Vec<Spanned<T>>>,
    field: &str,
    allowed: &[T],
    what: &str,
    p: &mut Problems<'_>,
) -> Vec<T> {
    if list.get_ref().is_empty() {
        p.at(
            list.span(),
            field,
            format!("lists no {what} (leave it out for all)"),
        );
    }
    let mut out = Vec::new();
    for v in list.get_ref() {
        if allowed.contains(v.get_ref()) {
            out.push(v.get_ref().clone());
        } else {
            let names: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
            p.at(
                v.span(),
                field,
                format!(
                    "`{}` is not one of the experiment's {what}s; allowed: {}",
                    v.get_ref(),
                    names.join(", ")
                ),
            );
        }
    }
    out
}

/// `index_codings` of one `[[methods]]` entry: known post-stage names, none twice.
fn parse_index_codings(m: &RawMethod, mi: usize, p: &mut Problems<'_>) -> Vec<PostCoding> {
    let Some(list) = &m.index_codings else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for name in list.get_ref() {
        let field = format!("methods[{mi}].index_codings");
        match PostCoding::from_name(name.get_ref()) {
            Some(c) if out.contains(&c) => p.at(
                name.span(),
                &field,
                format!("`{}` is listed twice", name.get_ref()),
            ),
            Some(c) => out.push(c),
            None => {
                let allowed: Vec<&str> = PostCoding::ALL.iter().map(|(n, _)| *n).collect();
                p.at(
                    name.span(),
                    &field,
                    format!(
                        "unknown index coding `{}`; allowed: {}",
                        name.get_ref(),
                        allowed.join(", ")
                    ),
                )
            }
        }
    }
    out
}

/// The parameter combinations of one `[[methods]]` entry: an array value is one
/// combination per element (the cross product over all arrays).
fn expand_sweeps(
    m: &RawMethod,
    mi: usize,
    p: &mut Problems<'_>,
) -> Vec<BTreeMap<String, serde_json::Value>> {
    let mut combos: Vec<BTreeMap<String, serde_json::Value>> = vec![BTreeMap::new()];
    for (k, v) in &m.params {
        let values: Vec<serde_json::Value> = match v.get_ref() {
            toml::Value::Array(a) => {
                if a.is_empty() {
                    p.at(
                        v.span(),
                        &format!("methods[{mi}].params.{k}"),
                        "empty sweep".into(),
                    );
                }
                let mut values: Vec<serde_json::Value> = Vec::new();
                for x in a.iter().map(toml_to_json) {
                    if values.contains(&x) {
                        p.at(
                            v.span(),
                            &format!("methods[{mi}].params.{k}"),
                            format!("the sweep lists {x} twice"),
                        );
                    } else {
                        values.push(x);
                    }
                }
                values
            }
            other => vec![toml_to_json(other)],
        };
        combos = combos
            .into_iter()
            .flat_map(|c| {
                values.iter().map(move |v| {
                    let mut c = c.clone();
                    c.insert(k.clone(), v.clone());
                    c
                })
            })
            .collect();
    }
    combos
}

#[allow(clippy::too_many_arguments)]
fn make_cell(
    model: &str,
    dataset: &str,
    config: &Config,
    seed: u64,
    split: EvalSplit,
    search_images: usize,
    search_seed: u64,
    search_dataset: Option<&str>,
) -> Cell {
    let (method, params) = (config.method.as_str(), &config.params);
    // Everything that changes a cell's result goes into its id; the batch size and
    // timing settings do not change accuracy and are not part of it.
    let mut key = serde_json::json!({
        "model": model, "dataset": dataset, "method": method,
        "params": params.as_map(), "seed": seed, "split": split.name(),
        "search_images": search_images, "search_seed": search_seed,
    });
    // Only when set, so that the ids of experiments without it stay what they were.
    if let Some(d) = search_dataset {
        key["search_dataset"] = d.into();
    }
    if !config.index_codings.is_empty() {
        let names: Vec<&str> = config.index_codings.iter().map(|c| c.name()).collect();
        key["index_codings"] = names.into();
    }
    let hash = Sha256::digest(key.to_string().as_bytes());
    let id = format!(
        "{model}__{dataset}__{method}__s{seed}__{}",
        &wb_core::weights::hex(&hash)[..10]
    );
    Cell {
        id,
        model: model.into(),
        dataset: dataset.into(),
        method: method.into(),
        params: params.clone(),
        seed,
        params_given: String::new(),
        index_codings: config.index_codings.clone(),
        control_cell: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wb_core::{ParamDefault, ParamKind, ParamSpec};

    fn methods() -> Vec<MethodInfo> {
        static K: &[ParamSpec] = &[ParamSpec {
            name: "k",
            kind: ParamKind::Int { min: 2, max: 1024 },
            default: Some(ParamDefault::Int(16)),
            doc: "clusters",
        }];
        fn build(_: &Params) -> Result<Box<dyn wb_core::Method>, wb_core::ParamError> {
            Err(wb_core::ParamError::new(
                "k",
                "test build is never called for real",
            ))
        }
        /// A method that compresses to FP32; it searches when its flag is set.
        struct Nop(bool);
        impl wb_core::Method for Nop {
            fn needs(&self) -> wb_core::Needs {
                if self.0 {
                    wb_core::Needs::EVALUATOR
                } else {
                    wb_core::Needs::NONE
                }
            }
            fn compress(
                &self,
                w: &wb_core::WeightSet,
                _: &mut wb_core::Context<'_>,
            ) -> Result<Vec<wb_core::Candidate>, wb_core::MethodError> {
                Ok(wb_core::Candidate::single(wb_core::Artifact::dense(w)))
            }
        }
        fn build_ok(_: &Params) -> Result<Box<dyn wb_core::Method>, wb_core::ParamError> {
            Ok(Box::new(Nop(false)))
        }
        fn build_search(_: &Params) -> Result<Box<dyn wb_core::Method>, wb_core::ParamError> {
            Ok(Box::new(Nop(true)))
        }
        /// A method that "retrains" at `k` clusters; its control is `k = 1024`.
        struct Ft(i64);
        impl wb_core::Method for Ft {
            fn control(&self) -> Option<BTreeMap<String, serde_json::Value>> {
                (self.0 != 1024).then(|| BTreeMap::from([("k".to_string(), 1024.into())]))
            }
            fn compress(
                &self,
                w: &wb_core::WeightSet,
                _: &mut wb_core::Context<'_>,
            ) -> Result<Vec<wb_core::Candidate>, wb_core::MethodError> {
                Ok(wb_core::Candidate::single(wb_core::Artifact::dense(w)))
            }
        }
        fn build_ft(p: &Params) -> Result<Box<dyn wb_core::Method>, wb_core::ParamError> {
            Ok(Box::new(Ft(p.int("k")?)))
        }
        let _ = build;
        vec![
            MethodInfo {
                id: "fp32",
                summary: "",
                params: &[],
                build: build_ok,
                view: None,
            },
            MethodInfo {
                id: "km",
                summary: "",
                params: K,
                build: build_ok,
                view: None,
            },
            MethodInfo {
                id: "search",
                summary: "",
                params: &[],
                build: build_search,
                view: None,
            },
            MethodInfo {
                id: "ft",
                summary: "",
                params: K,
                build: build_ft,
                view: None,
            },
        ]
    }

    fn check(text: &str) -> Result<Experiment, ExperimentError> {
        let m = methods();
        let model = |n: &str| {
            if n.starts_with("resnet") {
                Ok(())
            } else {
                Err(format!("no model card `models/{n}.toml`"))
            }
        };
        let dataset = |d: &str| {
            if d == "cifar10-jpeg75" {
                Ok(())
            } else {
                Err(format!("unknown dataset `{d}`"))
            }
        };
        let search_dataset = |d: &str| {
            if d.starts_with("cifar10-") {
                Ok(())
            } else {
                Err(format!("unknown dataset `{d}`"))
            }
        };
        let cat = Catalog {
            methods: &m,
            model: &model,
            dataset: &dataset,
            search_dataset: &search_dataset,
        };
        parse(text, Path::new("experiments/t.toml"), &cat)
    }

    const OK: &str = r#"
models = ["resnet20", "resnet56"]
datasets = ["cifar10-jpeg75"]
seeds = [0, 1]
[[methods]]
id = "fp32"
[[methods]]
id = "km"
params = { k = [4, 16, 64] }
"#;

    #[test]
    fn accelerations_change_only_searching_cells_ids_and_bad_values_are_named() {
        let base = r#"
models = ["resnet20"]
datasets = ["cifar10-jpeg75"]
[evaluation]
split = "heldout"
[search]
images = 100
SEARCH_EXTRA
[[methods]]
id = "fp32"
[[methods]]
id = "search"
"#;
        let plain = check(&base.replace("SEARCH_EXTRA", "")).unwrap();
        assert_eq!(plain.accel, wb_core::Accel::default());
        let fast = check(&base.replace("SEARCH_EXTRA", "race = 0.999\nsurrogate = true")).unwrap();
        assert_eq!(fast.accel.race, Some(0.999));
        assert!(fast.accel.surrogate);
        let id =
            |e: &Experiment, m: &str| e.cells.iter().find(|c| c.method == m).unwrap().id.clone();
        assert_eq!(id(&plain, "fp32"), id(&fast, "fp32"));
        assert_ne!(id(&plain, "search"), id(&fast, "search"));
        assert!(id(&fast, "search").starts_with("resnet20__cifar10-jpeg75__search__s0__"));
        let e = check(&base.replace("SEARCH_EXTRA", "race = 1.5")).unwrap_err();
        assert!(e.to_string().contains("search.race"), "{e}");
    }

    #[test]
    fn grid_expands_sweeps_and_ids_are_stable_and_unique() {
        let e = check(OK).unwrap();
        assert_eq!(e.name, "t");
        assert_eq!(e.cells.len(), 2 * 2 * (1 + 3));
        let mut ids: Vec<_> = e.cells.iter().map(|c| c.id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), e.cells.len());
        let again = check(OK).unwrap();
        assert_eq!(e.cells[5].id, again.cells[5].id);
    }

    #[test]
    fn index_codings_add_post_stages_and_change_only_their_cells_ids() {
        let plain = check(OK).unwrap();
        let with = check(&format!(
            "{OK}index_codings = [\"huffman-tensor\", \"fixed\"]\n"
        ))
        .unwrap();
        assert_eq!(plain.cells.len(), with.cells.len());
        for (a, b) in plain.cells.iter().zip(&with.cells) {
            assert!(a.index_codings.is_empty());
            if b.method == "km" {
                assert_eq!(
                    b.index_codings,
                    vec![
                        PostCoding::Huffman(wb_core::HuffmanScope::Tensor),
                        PostCoding::Fixed
                    ]
                );
                assert_ne!(a.id, b.id, "the rows differ, so the cell does");
            } else {
                assert_eq!(a.id, b.id, "entries without index_codings keep their ids");
            }
        }
        let bad = check(&format!(
            "{OK}index_codings = [\"huffman\", \"fixed\", \"fixed\"]\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            bad.contains(
                ":10: methods[1].index_codings: unknown index coding `huffman`; \
                 allowed: fixed, huffman-tensor, huffman-model"
            ),
            "{bad}"
        );
        assert!(bad.contains("`fixed` is listed twice"), "{bad}");
    }

    #[test]
    fn a_search_on_reported_images_is_refused() {
        let base = "models = [\"resnet20\"]\ndatasets = [\"cifar10-jpeg75\"]\n\
                    [evaluation]\nsplit = \"full\"\n";
        let methods = "[[methods]]\nid = \"km\"\n[[methods]]\nid = \"search\"\n";
        let e = check(&format!("{base}{methods}")).unwrap_err().to_string();
        assert!(
            e.contains(":8: methods[1] (search): searches on a subset of `cifar10-jpeg75`"),
            "{e}"
        );
        assert!(e.contains("split = \"heldout\""), "{e}");
        assert_eq!(
            e.matches("searches on").count(),
            1,
            "km does not search: {e}"
        );
        let same = "[search]\ndataset = \"cifar10-jpeg75\"\n";
        assert!(check(&format!("{base}{same}{methods}")).is_err());
        let plain = "models = [\"resnet20\"]\ndatasets = [\"cifar10-jpeg75\"]\n";
        for fix in [
            "[evaluation]\nsplit = \"heldout\"\n",
            "[search]\ndataset = \"cifar10-train-jpeg75\"\n",
        ] {
            check(&format!("{plain}{fix}{methods}")).unwrap();
        }
    }

    #[test]
    fn the_default_split_keeps_searched_images_out_of_the_report() {
        let base = "models = [\"resnet20\"]\ndatasets = [\"cifar10-jpeg75\"]\n";
        let search = "[[methods]]\nid = \"km\"\n[[methods]]\nid = \"search\"\n";
        let e = check(&format!("{base}{search}")).unwrap();
        assert_eq!(e.eval_split, EvalSplit::Heldout);
        // Searching on another dataset: every reported image is unseen anyway.
        let train = "[search]\ndataset = \"cifar10-train-jpeg75\"\n";
        let e = check(&format!("{base}{train}{search}")).unwrap();
        assert_eq!(e.eval_split, EvalSplit::Full);
        // Nothing searches: the whole dataset is reported.
        let e = check(&format!("{base}[[methods]]\nid = \"km\"\n")).unwrap();
        assert_eq!(e.eval_split, EvalSplit::Full);
    }

    #[test]
    fn entries_can_be_restricted_to_models_and_seeds() {
        let text = r#"
models = ["resnet20", "resnet56"]
datasets = ["cifar10-jpeg75"]
seeds = [0, 1, 2]
[[methods]]
id = "fp32"
[[methods]]
id = "km"
models = ["resnet20"]
seeds = [0, 2]
"#;
        let e = check(text).unwrap();
        assert_eq!(e.cells.iter().filter(|c| c.method == "fp32").count(), 6);
        let km: Vec<(&str, u64)> = e
            .cells
            .iter()
            .filter(|c| c.method == "km")
            .map(|c| (c.model.as_str(), c.seed))
            .collect();
        assert_eq!(km, [("resnet20", 0), ("resnet20", 2)]);
        let bad = text
            .replace(
                "models = [\"resnet20\"]\nseeds",
                "models = [\"resnet32\"]\nseeds",
            )
            .replace("seeds = [0, 2]", "seeds = [0, 7]");
        let msg = check(&bad).unwrap_err().to_string();
        assert!(
            msg.contains("methods[1].models: `resnet32` is not one of the experiment's models"),
            "{msg}"
        );
        assert!(
            msg.contains(
                "methods[1].seeds: `7` is not one of the experiment's seeds; allowed: 0, 1, 2"
            ),
            "{msg}"
        );
    }

    #[test]
    fn one_configuration_in_two_entries_runs_where_each_says() {
        let text = r#"
models = ["resnet20", "resnet56"]
datasets = ["cifar10-jpeg75"]
seeds = [0, 1, 2]
[[methods]]
id = "km"
models = ["resnet20"]
[[methods]]
id = "km"
models = ["resnet56"]
seeds = [0]
"#;
        let e = check(text).unwrap();
        let got: Vec<(&str, u64)> = e.cells.iter().map(|c| (c.model.as_str(), c.seed)).collect();
        assert_eq!(
            got,
            [
                ("resnet20", 0),
                ("resnet20", 1),
                ("resnet20", 2),
                ("resnet56", 0)
            ]
        );
    }

    #[test]
    fn a_retraining_entry_brings_its_control_into_the_grid() {
        let text = r#"
models = ["resnet20", "resnet56"]
datasets = ["cifar10-jpeg75"]
seeds = [0, 1]
[[methods]]
id = "ft"
params = { k = [4, 16] }
models = ["resnet20"]
"#;
        let e = check(text).unwrap();
        let ft: Vec<&Cell> = e.cells.iter().collect();
        // 2 lossy settings + the control, on resnet20 only, 2 seeds.
        assert_eq!(
            ft.len(),
            3 * 2,
            "{:?}",
            ft.iter().map(|c| &c.id).collect::<Vec<_>>()
        );
        for c in &ft {
            assert_eq!(c.model, "resnet20");
            let k = c.params.int("k").unwrap();
            match &c.control_cell {
                None => assert_eq!(k, 1024),
                Some(id) => {
                    let control = ft.iter().find(|x| &x.id == id).expect("control in grid");
                    assert_eq!(control.params.int("k").unwrap(), 1024);
                    assert_eq!((control.seed, &control.model), (c.seed, &c.model));
                }
            }
        }
        // Listing the control explicitly does not add it twice.
        let twice = format!("{text}[[methods]]\nid = \"ft\"\nparams = {{ k = 1024 }}\n");
        let e2 = check(&twice).unwrap();
        // The explicit entry covers both models, so the control runs on resnet56 too.
        assert_eq!(e2.cells.len(), 2 * 2 + 2 * 2);
    }

    #[test]
    fn every_problem_is_reported_with_line_and_field() {
        let text = r#"
models = ["resnet20", "vgg"]
datasets = ["cifar10-jpeg75", "imagenet"]
[[methods]]
id = "km"
params = { k = [1, 16] }
[[methods]]
id = "nope"
[[methods]]
id = "km"
params = { q = 3 }
"#;
        let e = check(text).unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("experiments/t.toml:2: models: no model card `models/vgg.toml`"),
            "{s}"
        );
        assert!(
            s.contains("experiments/t.toml:3: datasets: unknown dataset `imagenet`"),
            "{s}"
        );
        assert!(
            s.contains(":11: methods[2] (km).params.q: unknown field; allowed: k"),
            "{s}"
        );
        assert!(
            s.contains(":6: methods[0] (km).params.k: got 1, expected an integer in 2..=1024"),
            "{s}"
        );
        assert!(
            s.contains(":8: methods[1].id: unknown method `nope`; allowed: fp32, km, search"),
            "{s}"
        );
    }

    #[test]
    fn every_bad_parameter_of_a_table_and_every_duplicate_is_reported() {
        let text = r#"
models = ["resnet20"]
datasets = ["cifar10-jpeg75"]
[[methods]]
id = "km"
params = { q = 3, r = 1, k = 1 }
[[methods]]
id = "km"
params = { k = [16, 16, 32] }
[[methods]]
id = "km"
params = { k = 32 }
"#;
        let s = check(text).unwrap_err().to_string();
        for needle in [
            ":6: methods[0] (km).params.q: unknown field; allowed: k",
            ":6: methods[0] (km).params.r: unknown field; allowed: k",
            ":6: methods[0] (km).params.k: got 1",
            ":9: methods[1].params.k: the sweep lists 16 twice",
            ":11: methods[2] (km): repeats methods[1]",
        ] {
            assert!(s.contains(needle), "missing `{needle}` in\n{s}");
        }
    }

    #[test]
    fn unknown_top_level_field_and_bad_toml_name_the_line() {
        let e = check(&format!("{OK}\ncolour = 1\n"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("experiments/t.toml:") && e.contains("colour"),
            "{e}"
        );
        let e = check("models = [\"resnet20\"\n").unwrap_err().to_string();
        assert!(e.contains("experiments/t.toml:"), "{e}");
        let e = check(&OK.replace(
            "[[methods]]\nid = \"fp32\"",
            "[evaluation]\nsplit = \"test\"\n[[methods]]\nid = \"fp32\"",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("evaluation.split: `test`; allowed: full, heldout"),
            "{e}"
        );
    }
}
