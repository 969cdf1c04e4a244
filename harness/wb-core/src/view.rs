//! Method views: a method's own tables and figures in an experiment's report.
//!
//! A method may register a [`ViewFn`] in its [`MethodInfo`](crate::MethodInfo). The
//! report step gives it every ok row of the experiment as [`ViewRow`]s (its own rows
//! and those of the baselines it compares against) and renders the [`Block`]s it
//! returns: Markdown as it is, every [`Figure`] as PNG and SVG in the report's one
//! plotting style, linked where the block stands. The report knows no method id, and a
//! view reads its method's diagnostics with the same type the method wrote them with.

use serde_json::Value;

/// One ok result row, as a method view sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ViewRow {
    /// Model name.
    pub model: String,
    /// Dataset id.
    pub dataset: String,
    /// Method id.
    pub method: String,
    /// The parameters set in the experiment file, as a short label (`k=16`; `-` for none).
    pub params_label: String,
    /// Every parameter, defaults filled in (`params_json`).
    pub params: Value,
    /// Candidate label within the cell.
    pub candidate: String,
    /// Top-1 on the evaluation split, percent.
    pub top1: Option<f64>,
    /// FP32 top-1 of the same model and evaluation split, percent.
    pub top1_baseline: Option<f64>,
    /// `top1 − top1_baseline`, percentage points.
    pub top1_delta_pp: Option<f64>,
    /// The paper accounting's compression ratio (FP32 bits / compressed bits).
    pub compression_ratio: Option<f64>,
    /// Bytes of the whole-model container file.
    pub artifact_bytes: Option<i64>,
    /// Median batch-1 latency, ms.
    pub latency_ms_b1: Option<f64>,
    /// Throughput at the throughput batch, images/s.
    pub throughput_img_s: Option<f64>,
    /// Whether the timing met the validity rules (NULL: not timed).
    pub timing_valid: Option<bool>,
    /// Why it did not.
    pub timing_invalid_reasons: Option<String>,
    /// The execution-path measurement the timing columns come from: rows with the same
    /// id ran the same graph and show the same numbers.
    pub timing_ref: Option<String>,
    /// RAPL energy per image, J (NULL with its reason in `energy_source`).
    pub energy_j_per_img: Option<f64>,
    /// Where the energy came from, or why it is NULL.
    pub energy_source: Option<String>,
    /// Wall time of `compress`, s.
    pub compress_s: Option<f64>,
    /// Accuracy evaluations the method asked for.
    pub search_evaluations: Option<i64>,
    /// Intra-op threads of the run.
    pub threads: Option<i64>,
    /// The candidate's diagnostics (`extra_json`), as the method wrote them.
    pub extra: Value,
    /// The row's cell.
    pub cell_id: String,
    /// Seed of the cell.
    pub seed: i64,
    /// Whether the candidate is its method's own choice (NULL in older rows).
    pub chosen: Option<bool>,
    /// For a retrained candidate: the cell of its lossless control.
    pub control_cell_id: Option<String>,
    /// Top-1 on the search subset (the data a choice may use), percent.
    pub top1_search: Option<f64>,
}

impl ViewRow {
    /// The diagnostics as the method's own type (`None` when they do not parse, e.g.
    /// rows written before a field existed and the type has no default for it).
    pub fn extra_as<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_value(self.extra.clone()).ok()
    }

    /// A parameter's value, as declared.
    pub fn param(&self, name: &str) -> Option<&Value> {
        self.params.get(name)
    }
}

/// One series of points in a [`Figure`].
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend entry.
    pub label: String,
    /// `(x, y)` points, in drawing order.
    pub points: Vec<(f64, f64)>,
    /// Join the points with a line (in the given order).
    pub joined: bool,
}

/// A 2-D figure: markers (and lines) for each series, an optional dashed reference line.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// File stem of the PNG and SVG (`wsdse_bits_resnet20_cifar10-jpeg75`), unique in the
    /// report; made file-name safe by the report.
    pub stem: String,
    /// Title drawn above the plot.
    pub title: String,
    /// The Markdown alt text of the image link.
    pub alt: String,
    /// x-axis description, with unit.
    pub x_desc: String,
    /// y-axis description, with unit.
    pub y_desc: String,
    /// The series, legend order.
    pub series: Vec<Series>,
    /// A dashed horizontal reference line at this y (e.g. a target).
    pub hline: Option<f64>,
}

/// One piece of a method's report section, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// Markdown text (headings, tables, notes), written as it is.
    Markdown(String),
    /// A figure, drawn by the report and linked here.
    Figure(Figure),
}

/// A method's view: every ok row of the experiment in, its report section out. Called
/// only when the experiment has rows of the method.
pub type ViewFn = fn(&[ViewRow]) -> Vec<Block>;

/// The (model, dataset) pairs of `method`'s rows, in first-seen order.
pub fn model_dataset_pairs(rows: &[ViewRow], method: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = Vec::new();
    for r in rows.iter().filter(|r| r.method == method) {
        let p = (r.model.clone(), r.dataset.clone());
        if !v.contains(&p) {
            v.push(p);
        }
    }
    v
}

/// A number with `d` decimals, `-` for none.
pub fn fmt_opt(v: Option<f64>, d: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.d$}"))
}

/// A signed number with two decimals (`+0.12`), `-` for none.
pub fn fmt_signed(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:+.2}"))
}

/// The energy cell: J/image with four decimals, or `NULL` (the reason goes in a note,
/// see [`energy_note`]).
pub fn energy_cell(r: &ViewRow) -> String {
    match r.energy_j_per_img {
        Some(j) => format!("{j:.4}"),
        None => "NULL".into(),
    }
}

/// The latency cell: the median with three decimals, marked ⚠ when the timing did not
/// meet the validity rules (the reasons go in a note, see [`timing_note`]).
pub fn latency_cell(r: &ViewRow) -> String {
    let mark = if r.timing_valid == Some(false) {
        " ⚠"
    } else {
        ""
    };
    r.latency_ms_b1
        .map_or("-".into(), |v| format!("{v:.3}{mark}"))
}

/// A note under a table with timing columns: timings are per execution path (rows on
/// one path show one measurement), and the distinct invalidity reasons of ⚠ cells.
pub fn timing_note(rows: &[&ViewRow]) -> Option<String> {
    let mut why: Vec<&str> = rows
        .iter()
        .filter(|r| r.timing_valid == Some(false))
        .filter_map(|r| r.timing_invalid_reasons.as_deref())
        .collect();
    why.sort_unstable();
    why.dedup();
    let mut paths: Vec<&str> = rows
        .iter()
        .filter_map(|r| r.timing_ref.as_deref())
        .collect();
    paths.sort_unstable();
    paths.dedup();
    let mut note = String::new();
    if !paths.is_empty() {
        note += &format!(
            "Timings are per execution path ({} measurement(s) for these rows; see              \"Inference time per execution path\"): rows on one path ran the same graph.",
            paths.len()
        );
    }
    if !why.is_empty() {
        if !note.is_empty() {
            note.push(' ');
        }
        note += &format!("⚠ timing invalid: {}.", why.join("; "));
    }
    (!note.is_empty()).then_some(note)
}

/// The distinct reasons of the NULL energy cells, for a note under a table.
pub fn energy_note(rows: &[&ViewRow]) -> Option<String> {
    let mut why: Vec<&str> = rows
        .iter()
        .filter(|r| r.energy_j_per_img.is_none())
        .filter_map(|r| r.energy_source.as_deref())
        .collect();
    why.sort_unstable();
    why.dedup();
    (!why.is_empty()).then(|| format!("Energy NULL: {}.", why.join("; ")))
}

/// The FP32 top-1 of `model` on `dataset`, from any row of that pair.
pub fn baseline_top1(rows: &[ViewRow], model: &str, dataset: &str) -> Option<f64> {
    rows.iter()
        .filter(|r| r.model == model && r.dataset == dataset)
        .find_map(|r| r.top1_baseline)
}

/// A [`Series`] from a label, its points and whether they are joined.
pub fn series(label: impl Into<String>, points: Vec<(f64, f64)>, joined: bool) -> Series {
    Series {
        label: label.into(),
        points,
        joined,
    }
}

/// One configuration of a method on one model and dataset: the rows a paper-style
/// table or figure summarises together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    /// Model name.
    pub model: String,
    /// Dataset id.
    pub dataset: String,
    /// The parameters set in the experiment file ([`ViewRow::params_label`]).
    pub params_label: String,
    /// Whether the model and dataset have other configurations of the method too.
    pub several: bool,
}

impl Variant {
    /// Whether `r` belongs to this variant of `method`.
    pub fn holds(&self, r: &ViewRow, method: &str) -> bool {
        r.method == method
            && r.model == self.model
            && r.dataset == self.dataset
            && r.params_label == self.params_label
    }

    /// ` (params)` after a heading or label when the pair has several variants, else
    /// nothing (so a single configuration reads as before).
    pub fn label_suffix(&self) -> String {
        if self.several {
            format!(" ({})", self.params_label)
        } else {
            String::new()
        }
    }

    /// `_params` for a figure's file stem when the pair has several variants.
    pub fn stem_suffix(&self) -> String {
        if self.several {
            format!("_{}", self.params_label)
        } else {
            String::new()
        }
    }
}

/// The configurations of `method` per (model, dataset), in first-seen order.
pub fn variants(rows: &[ViewRow], method: &str) -> Vec<Variant> {
    let mut v: Vec<Variant> = Vec::new();
    for r in rows.iter().filter(|r| r.method == method) {
        if !v.iter().any(|x| x.holds(r, method)) {
            v.push(Variant {
                model: r.model.clone(),
                dataset: r.dataset.clone(),
                params_label: r.params_label.clone(),
                several: false,
            });
        }
    }
    let pairs: Vec<(String, String)> = v
        .iter()
        .map(|x| (x.model.clone(), x.dataset.clone()))
        .collect();
    for x in &mut v {
        x.several = pairs
            .iter()
            .filter(|p| p.0 == x.model && p.1 == x.dataset)
            .count()
            > 1;
    }
    v
}
