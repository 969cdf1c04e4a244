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

/// One run of a method on one model and dataset: the rows of one seed, which a
/// paper-style section summarises together (FP32 and the baselines of the same seed saw
/// the same images; other seeds held out other images).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Model name.
    pub model: String,
    /// Dataset id.
    pub dataset: String,
    /// Seed of the cells.
    pub seed: i64,
    /// Whether the method has rows of other seeds on this model and dataset too.
    pub several_seeds: bool,
}

impl Group {
    /// Whether `r` (of any method) ran on this group's model, dataset and seed.
    pub fn holds(&self, r: &ViewRow) -> bool {
        r.model == self.model && r.dataset == self.dataset && r.seed == self.seed
    }

    /// `, seed N` after a heading when the model has several seeds, else nothing (so a
    /// one-seed experiment reads as before).
    pub fn seed_suffix(&self) -> String {
        if self.several_seeds {
            format!(", seed {}", self.seed)
        } else {
            String::new()
        }
    }

    /// `_sN` for a figure's file stem when the model has several seeds.
    pub fn stem_suffix(&self) -> String {
        if self.several_seeds {
            format!("_s{}", self.seed)
        } else {
            String::new()
        }
    }
}

/// The (model, dataset, seed) groups of `method`'s rows: models and datasets in
/// first-seen order, seeds ascending within each (row order follows the cell files,
/// which would otherwise put seed 1 before seed 0).
pub fn groups(rows: &[ViewRow], method: &str) -> Vec<Group> {
    let mut v: Vec<Group> = Vec::new();
    for r in rows.iter().filter(|r| r.method == method) {
        if !v.iter().any(|g| g.holds(r)) {
            v.push(Group {
                model: r.model.clone(),
                dataset: r.dataset.clone(),
                seed: r.seed,
                several_seeds: false,
            });
        }
    }
    sort_seeds_within(&mut v, |g| (g.model.clone(), g.dataset.clone()), |g| g.seed);
    let seen = v.clone();
    for g in &mut v {
        g.several_seeds = seen
            .iter()
            .any(|o| o.model == g.model && o.dataset == g.dataset && o.seed != g.seed);
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

/// The FP32 top-1 of `model` on `dataset` for the cells of `seed` (the images that
/// seed reports on), from any row of theirs.
pub fn baseline_top1(rows: &[ViewRow], model: &str, dataset: &str, seed: i64) -> Option<f64> {
    rows.iter()
        .filter(|r| r.model == model && r.dataset == dataset && r.seed == seed)
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

/// One configuration of a method on one model, dataset and seed: the rows a
/// paper-style table or figure summarises together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    /// Model name.
    pub model: String,
    /// Dataset id.
    pub dataset: String,
    /// The parameters set in the experiment file ([`ViewRow::params_label`]).
    pub params_label: String,
    /// Seed of the cells.
    pub seed: i64,
    /// Whether the model and dataset have other configurations of the method too.
    pub several: bool,
    /// Whether the configuration has rows of other seeds too.
    pub several_seeds: bool,
}

impl Variant {
    /// Whether `r` belongs to this variant of `method`.
    pub fn holds(&self, r: &ViewRow, method: &str) -> bool {
        r.method == method && self.same_run(r) && r.params_label == self.params_label
    }

    /// Whether `r` (of any method, e.g. a baseline) ran on this variant's model, dataset
    /// and seed, so on the same images.
    pub fn same_run(&self, r: &ViewRow) -> bool {
        r.model == self.model && r.dataset == self.dataset && r.seed == self.seed
    }

    /// ` (params, seed N)` after a heading or label: the parameters when the pair has
    /// several variants, the seed when it has several seeds, else nothing (so a single
    /// configuration of one seed reads as before).
    pub fn label_suffix(&self) -> String {
        let mut parts = Vec::new();
        if self.several {
            parts.push(self.params_label.clone());
        }
        if self.several_seeds {
            parts.push(format!("seed {}", self.seed));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!(" ({})", parts.join(", "))
        }
    }

    /// `_params`, `_sN` for a figure's file stem, as [`Variant::label_suffix`].
    pub fn stem_suffix(&self) -> String {
        let mut s = String::new();
        if self.several {
            s += &format!("_{}", self.params_label);
        }
        if self.several_seeds {
            s += &format!("_s{}", self.seed);
        }
        s
    }
}

/// The configurations of `method` per (model, dataset, seed): in first-seen order, seeds
/// ascending within each (model, dataset, parameters).
pub fn variants(rows: &[ViewRow], method: &str) -> Vec<Variant> {
    let mut v: Vec<Variant> = Vec::new();
    for r in rows.iter().filter(|r| r.method == method) {
        if !v.iter().any(|x| x.holds(r, method)) {
            v.push(Variant {
                model: r.model.clone(),
                dataset: r.dataset.clone(),
                params_label: r.params_label.clone(),
                seed: r.seed,
                several: false,
                several_seeds: false,
            });
        }
    }
    sort_seeds_within(
        &mut v,
        |x| (x.model.clone(), x.dataset.clone(), x.params_label.clone()),
        |x| x.seed,
    );
    let seen = v.clone();
    for x in &mut v {
        let pair = |o: &&Variant| o.model == x.model && o.dataset == x.dataset;
        x.several = seen
            .iter()
            .filter(pair)
            .any(|o| o.params_label != x.params_label);
        x.several_seeds = seen
            .iter()
            .filter(pair)
            .any(|o| o.params_label == x.params_label && o.seed != x.seed);
    }
    v
}

/// Stable-sorts `v` so that items sharing `key` keep the first-seen order of their key
/// and come in ascending `seed` within it.
fn sort_seeds_within<T, K: PartialEq>(
    v: &mut [T],
    key: impl Fn(&T) -> K,
    seed: impl Fn(&T) -> i64,
) {
    let mut firsts: Vec<K> = Vec::new();
    for x in v.iter() {
        let k = key(x);
        if !firsts.contains(&k) {
            firsts.push(k);
        }
    }
    // Every key is in `firsts`, so the position is always found.
    let first_seen = |x: &T| firsts.iter().position(|f| *f == key(x)).unwrap_or(0);
    v.sort_by_key(|x| (first_seen(x), seed(x)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(method: &str, params: &str, seed: i64, fp32: f64) -> ViewRow {
        ViewRow {
            model: "resnet20".into(),
            dataset: "cifar10-jpeg75".into(),
            method: method.into(),
            params_label: params.into(),
            seed,
            top1_baseline: Some(fp32),
            ..ViewRow::default()
        }
    }

    #[test]
    fn one_seed_reads_as_before() {
        let rows = [
            row("ws-dse", "k_points=10", 0, 81.0),
            row("fp32", "-", 0, 81.0),
        ];
        let v = variants(&rows, "ws-dse");
        assert_eq!(v.len(), 1);
        assert_eq!(
            (v[0].label_suffix(), v[0].stem_suffix()),
            (String::new(), String::new())
        );
        let g = groups(&rows, "ws-dse");
        assert_eq!(
            (g[0].seed_suffix(), g[0].stem_suffix()),
            (String::new(), String::new())
        );
    }

    #[test]
    fn seeds_come_in_ascending_order_whatever_the_row_order() {
        // Rows arrive in cell-file order, which may put seed 1 first.
        let rows = [
            row("ws-dse", "k_points=10", 1, 80.59),
            row("ws-dse", "k_points=4", 2, 80.90),
            row("ws-dse", "k_points=10", 0, 81.01),
            row("ws-dse", "k_points=4", 0, 81.01),
        ];
        let seeds: Vec<i64> = groups(&rows, "ws-dse").iter().map(|g| g.seed).collect();
        assert_eq!(seeds, [0, 1, 2]);
        let v: Vec<(String, i64)> = variants(&rows, "ws-dse")
            .into_iter()
            .map(|x| (x.params_label, x.seed))
            .collect();
        let want = [
            ("k_points=10", 0),
            ("k_points=10", 1),
            ("k_points=4", 0),
            ("k_points=4", 2),
        ];
        assert_eq!(v, want.map(|(p, s)| (p.to_string(), s)));
    }

    #[test]
    fn seeds_are_separate_runs() {
        // Each seed holds out other images: its FP32 top-1 and baselines are its own.
        let rows = [
            row("ws-dse", "k_points=10", 0, 81.01),
            row("ws-dse", "k_points=10", 1, 80.59),
            row("ws-dse", "k_points=4", 1, 80.59),
            row("kmeans-uniform", "k=32", 1, 80.59),
        ];
        let v = variants(&rows, "ws-dse");
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].label_suffix(), " (k_points=10, seed 0)");
        assert_eq!(v[1].stem_suffix(), "_k_points=10_s1");
        // k_points=4 has one seed only.
        assert_eq!(v[2].label_suffix(), " (k_points=4)");
        assert!(v[1].same_run(&rows[3]) && !v[0].same_run(&rows[3]));
        assert!(v[1].holds(&rows[1], "ws-dse") && !v[1].holds(&rows[0], "ws-dse"));

        let g = groups(&rows, "ws-dse");
        assert_eq!(g.len(), 2);
        assert_eq!(
            (g[1].seed_suffix(), g[1].stem_suffix()),
            (", seed 1".into(), "_s1".into())
        );
        assert!(g[1].holds(&rows[3]) && !g[0].holds(&rows[3]));

        assert_eq!(
            baseline_top1(&rows, "resnet20", "cifar10-jpeg75", 1),
            Some(80.59)
        );
        assert_eq!(
            baseline_top1(&rows, "resnet20", "cifar10-jpeg75", 0),
            Some(81.01)
        );
        assert_eq!(baseline_top1(&rows, "resnet20", "cifar10-jpeg75", 2), None);
    }
}
