//! The cross-method comparison: per model and dataset, every method's own choice and a
//! leaderboard of the best compression each method reaches within 0.5, 1 and 2 pp of
//! its reference — points picked on the search subset only, aggregated over seeds, with
//! paired verdicts — and one figure with every method's candidates on the same axes.
//!
//! The reference of a row is FP32 on the same images, or, for a retrained candidate,
//! its lossless control fine-tuned on the same schedule (`control_cell_id`): fine-tuning
//! alone moves top-1, so a retrained method meets a target only against its control.
//! The compression ratio here is *counted*: the FP32 container's bytes over the
//! candidate's container bytes (every byte needed to decode); the paper accounting
//! (`compression_ratio`) is shown beside it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use polars::prelude::*;
use wb_measure::{mean_ci, Paired, Verdict};

use crate::render::{md_escape, render_params};
use crate::ReportError;

/// The tolerances of the leaderboard, pp below the reference.
pub const TOLERANCES_PP: [f64; 3] = [0.5, 1.0, 2.0];

/// Δ top-1 below this (pp) is drawn at the figure's lower edge, marked as an outlier.
const FIGURE_FLOOR_PP: f64 = -6.0;

/// One ok row as the comparison sees it.
#[derive(Debug, Clone, Default)]
pub(crate) struct CRow {
    pub model: String,
    pub dataset: String,
    pub method: String,
    pub params: String,
    pub seed: i64,
    pub candidate: String,
    pub coding: String,
    pub chosen: Option<bool>,
    pub cell_id: String,
    pub control_cell: Option<String>,
    pub top1: Option<f64>,
    pub delta_fp32: Option<f64>,
    pub ci: (Option<f64>, Option<f64>),
    pub mcnemar_p: Option<f64>,
    pub cr_file: Option<f64>,
    pub cr_bits: Option<f64>,
    pub top1_search: Option<f64>,
    pub top1_search_fp32: Option<f64>,
    pub search_dataset: Option<String>,
    pub compress_s: Option<f64>,
    pub evals: Option<i64>,
}

/// A row judged against its reference (FP32 or its control).
#[derive(Debug, Clone)]
struct Judged {
    row: CRow,
    /// Δ top-1 against the reference on the reported images, with its paired interval
    /// and McNemar p.
    delta: Option<f64>,
    ci: (Option<f64>, Option<f64>),
    mcnemar_p: Option<f64>,
    /// Δ top-1 against the reference on the search subset (what a choice may use).
    delta_search: Option<f64>,
}

impl Judged {
    fn verdict(&self, t: f64) -> Option<Verdict> {
        match self.ci {
            (Some(lo), Some(hi)) => Some(Verdict::of(lo, hi, t)),
            _ => None,
        }
    }
}

/// How a method's rows are grouped: the method, whether the rows are retrained
/// candidates or lossless controls, and the index coding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Group {
    method: String,
    role: Role,
    coding: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Plain,
    Retrained,
    Control,
}

impl Group {
    fn label(&self) -> String {
        let role = match self.role {
            Role::Plain => "",
            Role::Retrained => " (retrained)",
            Role::Control => " (lossless control, fine-tuned)",
        };
        format!("{}{role}", self.method)
    }
    fn reference(&self) -> &'static str {
        match self.role {
            Role::Retrained => "control",
            _ => "FP32",
        }
    }
}

/// Coding as shown: the method's own, or a harness post-stage.
fn coding_label(c: &str) -> &str {
    match c {
        "method" => "as coded",
        other => other,
    }
}

/// Reads the comparison rows of the ok frame.
pub(crate) fn rows(df: &DataFrame) -> PolarsResult<Vec<CRow>> {
    use crate::load::{f64_col, i64_col, str_col};
    let s = |n: &str| str_col(df, n);
    let f = |n: &str| f64_col(df, n);
    let i = |n: &str| i64_col(df, n);
    let b =
        |n: &str| -> PolarsResult<Vec<Option<bool>>> { Ok(df.column(n)?.bool()?.iter().collect()) };
    let (model, dataset, method, params, cand, coding, cell, control, sds) = (
        s("model")?,
        s("dataset")?,
        s("method")?,
        s("params_label")?,
        s("candidate")?,
        s("index_coding")?,
        s("cell_id")?,
        s("control_cell_id")?,
        s("search_dataset")?,
    );
    let (top1, delta, lo, hi, p, crb, ts, tsb, cs) = (
        f("top1")?,
        f("top1_delta_pp")?,
        f("top1_delta_ci_low_pp")?,
        f("top1_delta_ci_high_pp")?,
        f("mcnemar_p")?,
        f("compression_ratio")?,
        f("top1_search")?,
        f("top1_search_baseline")?,
        f("compress_s")?,
    );
    let (seed, bytes, fp32_bytes, evals) = (
        i("seed")?,
        i("artifact_bytes")?,
        i("model_bytes_fp32")?,
        i("search_evaluations")?,
    );
    let chosen = b("chosen")?;
    Ok((0..df.height())
        .map(|k| CRow {
            model: model[k].clone().unwrap_or_default(),
            dataset: dataset[k].clone().unwrap_or_default(),
            method: method[k].clone().unwrap_or_default(),
            params: params[k]
                .as_deref()
                .map_or_else(|| "-".into(), |p| render_params(Some(p))),
            seed: seed[k].unwrap_or(0),
            candidate: cand[k].clone().unwrap_or_default(),
            coding: coding[k].clone().unwrap_or_else(|| "method".into()),
            chosen: chosen[k],
            cell_id: cell[k].clone().unwrap_or_default(),
            control_cell: control[k].clone(),
            top1: top1[k],
            delta_fp32: delta[k],
            ci: (lo[k], hi[k]),
            mcnemar_p: p[k],
            cr_file: match (fp32_bytes[k], bytes[k]) {
                (Some(a), Some(b)) if b > 0 => Some(a as f64 / b as f64),
                _ => None,
            },
            cr_bits: crb[k],
            top1_search: ts[k],
            top1_search_fp32: tsb[k],
            search_dataset: sds[k].clone(),
            compress_s: cs[k],
            evals: evals[k],
        })
        .collect())
}

/// Per-image correctness of every candidate of a cell, from its predictions file
/// (`None` when the file is missing or unreadable: the paired test is then skipped).
fn correctness(results_dir: &Path, cell: &str) -> Option<HashMap<String, Vec<bool>>> {
    let path = results_dir
        .join("predictions")
        .join(format!("{cell}.parquet"));
    let f = std::fs::File::open(path).ok()?;
    let df = ParquetReader::new(f).finish().ok()?;
    let cand = df.column("candidate").ok()?.str().ok()?.clone();
    let label = df.column("label").ok()?.cast(&DataType::Int64).ok()?;
    let pred = df.column("pred").ok()?.cast(&DataType::Int64).ok()?;
    let (label, pred) = (label.i64().ok()?.clone(), pred.i64().ok()?.clone());
    let mut out: HashMap<String, Vec<bool>> = HashMap::new();
    for k in 0..df.height() {
        let c = cand.get(k)?.to_string();
        out.entry(c)
            .or_default()
            .push(label.get(k)? == pred.get(k)?);
    }
    Some(out)
}

/// Judges every row against its reference; rows of retrained cells against their
/// control's choice on the same images (paired from the predictions files).
fn judge(rows: &[CRow], results_dir: &Path) -> Vec<(Group, Judged)> {
    let controls: std::collections::BTreeSet<&str> = rows
        .iter()
        .filter_map(|r| r.control_cell.as_deref())
        .collect();
    let mut preds: HashMap<String, Option<HashMap<String, Vec<bool>>>> = HashMap::new();
    let mut out = Vec::new();
    for r in rows {
        let role = if r.control_cell.is_some() {
            Role::Retrained
        } else if controls.contains(r.cell_id.as_str()) {
            Role::Control
        } else {
            Role::Plain
        };
        let group = Group {
            method: r.method.clone(),
            role,
            coding: r.coding.clone(),
        };
        let judged = match &r.control_cell {
            None => Judged {
                row: r.clone(),
                delta: r.delta_fp32,
                ci: r.ci,
                mcnemar_p: r.mcnemar_p,
                delta_search: r.top1_search.zip(r.top1_search_fp32).map(|(a, b)| a - b),
            },
            Some(ctl) => against_control(r, ctl, rows, results_dir, &mut preds),
        };
        out.push((group, judged));
    }
    out
}

/// A retrained row against its control's choice (same model, dataset and seed, so the
/// same images).
fn against_control(
    r: &CRow,
    ctl: &str,
    rows: &[CRow],
    results_dir: &Path,
    preds: &mut HashMap<String, Option<HashMap<String, Vec<bool>>>>,
) -> Judged {
    let control = rows
        .iter()
        .find(|c| c.cell_id == ctl && c.coding == "method" && c.chosen != Some(false));
    let mut j = Judged {
        row: r.clone(),
        delta: None,
        ci: (None, None),
        mcnemar_p: None,
        delta_search: None,
    };
    let Some(c) = control else {
        return j;
    };
    j.delta = r.top1.zip(c.top1).map(|(a, b)| a - b);
    j.delta_search = r.top1_search.zip(c.top1_search).map(|(a, b)| a - b);
    let mut get = |cell: &str| {
        preds
            .entry(cell.to_string())
            .or_insert_with(|| correctness(results_dir, cell))
            .clone()
    };
    let (mine, theirs) = (get(&r.cell_id), get(ctl));
    if let (Some(mine), Some(theirs)) = (mine, theirs) {
        if let (Some(a), Some(b)) = (mine.get(&r.candidate), theirs.get(&c.candidate)) {
            if a.len() == b.len() {
                let p = Paired::from_correct(b, a, r.seed as u64);
                j.ci = (Some(p.ci_low_pp), Some(p.ci_high_pp));
                j.mcnemar_p = Some(p.mcnemar_p);
            }
        }
    }
    j
}

/// Seeds aggregated: mean with its 95 % Student-t interval over seeds (`-` for none,
/// the mean alone for one seed).
fn agg_with(values: &[f64], fmt: fn(f64) -> String) -> String {
    let (m, lo, hi) = mean_ci(values);
    if values.is_empty() {
        "-".into()
    } else if lo.is_nan() {
        fmt(m)
    } else {
        format!("{} [{}, {}]", fmt(m), fmt(lo), fmt(hi))
    }
}

fn agg(values: &[f64]) -> String {
    agg_with(values, |v| format!("{v:.2}"))
}

fn agg_signed(values: &[f64]) -> String {
    agg_with(values, |v| format!("{v:+.2}"))
}

/// `met 2 · noise 1` from per-seed verdicts.
fn verdict_counts(v: &[Option<Verdict>]) -> String {
    let n = |x: Verdict| v.iter().filter(|y| **y == Some(x)).count();
    let mut parts = Vec::new();
    for (x, name) in [
        (Verdict::Met, "met"),
        (Verdict::WithinNoise, "within noise"),
        (Verdict::Missed, "missed"),
    ] {
        if n(x) > 0 {
            parts.push(if v.len() == 1 {
                name.to_string()
            } else {
                format!("{name} {}", n(x))
            });
        }
    }
    let unknown = v.iter().filter(|y| y.is_none()).count();
    if unknown > 0 {
        parts.push(format!("n/a {unknown}"));
    }
    parts.join(" · ")
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(wb_measure::stats::median_sorted(&v))
}

fn fmt_p(p: Option<f64>) -> String {
    match p {
        None => "-".into(),
        Some(p) if p < 1e-4 => "<1e-4".into(),
        Some(p) => format!("{p:.3}"),
    }
}

/// One leaderboard entry: a group's pick at tolerance `t` in every seed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Pick {
    pub seeds: usize,
    pub picked: Vec<Judged2>,
}

/// The per-seed pick, flattened for the CSV.
#[derive(Debug, Clone)]
pub(crate) struct Judged2 {
    pub seed: i64,
    pub cr_file: f64,
    pub cr_bits: Option<f64>,
    pub delta: Option<f64>,
    pub verdict: Option<Verdict>,
    pub mcnemar_p: Option<f64>,
    pub label: String,
}

/// The highest counted ratio among `rows` (one group, one seed) whose Δ on the search
/// subset is within `t`: never chosen on reported images.
fn pick(rows: &[&Judged], t: f64) -> Option<Judged2> {
    rows.iter()
        .filter(|j| j.delta_search.is_some_and(|d| d >= -t - 1e-9))
        .filter(|j| j.row.cr_file.is_some())
        .max_by(|a, b| {
            a.row
                .cr_file
                .partial_cmp(&b.row.cr_file)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(
                    a.delta_search
                        .partial_cmp(&b.delta_search)
                        .unwrap_or(std::cmp::Ordering::Equal),
                )
        })
        .map(|j| Judged2 {
            seed: j.row.seed,
            cr_file: j.row.cr_file.unwrap_or(f64::NAN),
            cr_bits: j.row.cr_bits,
            delta: j.delta,
            verdict: j.verdict(t),
            mcnemar_p: j.mcnemar_p,
            label: format!("{} {}", j.row.params, j.row.candidate),
        })
}

/// What [`render`] produced: Markdown, LaTeX, the CSV frame and the figure files.
pub(crate) struct Rendered {
    pub markdown: String,
    pub latex: String,
    pub csv: DataFrame,
}

/// The comparison section of a report, or `None` when no row carries the protocol's
/// columns (results written before them).
pub(crate) fn render(
    rows: &[CRow],
    results_dir: &Path,
    out_dir: &Path,
    files: &mut Vec<PathBuf>,
) -> Result<Option<Rendered>, ReportError> {
    if !rows.iter().any(|r| r.chosen.is_some()) {
        return Ok(None);
    }
    let judged = judge(rows, results_dir);
    let mut md = String::from(
        "\n## Comparison (the protocol: choices on search images, results on held-out images)\n",
    );
    md += "\nCR is **counted**: bytes of the FP32 container / bytes of the candidate's container \
           (every byte needed to decode: indices, codebooks, tables, Huffman code tables, tensors \
           left uncompressed); CR (bits) is the paper accounting. Δ is top-1 against the \
           reference on the held-out images: FP32, or for a retrained candidate its lossless \
           control fine-tuned on the same schedule. Intervals after a mean are 95 % Student-t \
           over seeds; a verdict uses the paired 95 % bootstrap interval of Δ on the same \
           images (`met`: all of it within the tolerance, `missed`: all of it beyond, \
           `within noise`: the tolerance inside it). p is the exact McNemar test of \"same \
           top-1 as the reference\" (median over seeds).\n";
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (_, j) in &judged {
        let p = (j.row.model.clone(), j.row.dataset.clone());
        if !pairs.contains(&p) {
            pairs.push(p);
        }
    }
    let mut tex = String::new();
    let mut csv = CsvRows::default();
    for (model, dataset) in &pairs {
        let here: Vec<&(Group, Judged)> = judged
            .iter()
            .filter(|(_, j)| &j.row.model == model && &j.row.dataset == dataset)
            .collect();
        md += &format!("\n### {model} on {dataset}\n");
        if let Some(sd) = here.iter().find_map(|(_, j)| j.row.search_dataset.clone()) {
            if sd != *dataset {
                md += &format!(
                    "\n**Search images from `{sd}`, not from the reported dataset** (an \
                     explicit option of the experiment).\n"
                );
            }
        }
        let board = leaderboard(&here);
        md += &board_markdown(&board);
        tex += &board_latex(model, dataset, &board);
        csv.add(model, dataset, &board);
        md += &own_choice_markdown(&here);
        if let Some(fig) = figure(model, dataset, &here) {
            md += &crate::views::write_linked_figure(&fig, out_dir, files)?;
        }
    }
    Ok(Some(Rendered {
        markdown: md,
        latex: tex,
        csv: csv.frame().map_err(|source| ReportError::Table {
            path: results_dir.to_path_buf(),
            source,
        })?,
    }))
}

/// Per group (in method order), per tolerance, the picks of every seed.
type Board = Vec<(Group, Vec<Pick>, SearchCost)>;

#[derive(Debug, Clone, Default)]
struct SearchCost {
    evals: Vec<f64>,
    seconds: Vec<f64>,
}

fn leaderboard(here: &[&(Group, Judged)]) -> Board {
    let mut groups: BTreeMap<Group, BTreeMap<i64, Vec<&Judged>>> = BTreeMap::new();
    for (g, j) in here {
        groups
            .entry(g.clone())
            .or_default()
            .entry(j.row.seed)
            .or_default()
            .push(j);
    }
    groups
        .into_iter()
        .map(|(g, by_seed)| {
            let picks = TOLERANCES_PP
                .iter()
                .map(|&t| Pick {
                    seeds: by_seed.len(),
                    picked: by_seed.values().filter_map(|rows| pick(rows, t)).collect(),
                })
                .collect();
            // Search cost of a cell, counted once per cell (its rows share it).
            let mut cost = SearchCost::default();
            let mut seen = std::collections::BTreeSet::new();
            for j in by_seed.values().flatten() {
                if seen.insert(j.row.cell_id.clone()) {
                    if let Some(e) = j.row.evals {
                        cost.evals.push(e as f64);
                    }
                    if let Some(s) = j.row.compress_s {
                        cost.seconds.push(s);
                    }
                }
            }
            (g, picks, cost)
        })
        .collect()
}

fn pick_cells(p: &Pick) -> [String; 4] {
    let cr: Vec<f64> = p.picked.iter().map(|x| x.cr_file).collect();
    let d: Vec<f64> = p.picked.iter().filter_map(|x| x.delta).collect();
    let v: Vec<Option<Verdict>> = p.picked.iter().map(|x| x.verdict).collect();
    let none = p.seeds - p.picked.len();
    let mut verdict = verdict_counts(&v);
    if none > 0 {
        verdict = if verdict.is_empty() {
            format!("no point ({none} seed{})", if none == 1 { "" } else { "s" })
        } else {
            format!("{verdict} · no point {none}")
        };
    }
    let ps = median(p.picked.iter().filter_map(|x| x.mcnemar_p).collect());
    [agg(&cr), agg_signed(&d), verdict, fmt_p(ps)]
}

fn board_markdown(board: &Board) -> String {
    let mut md = String::from(
        "\n**Leaderboard**: per method and index coding, the highest counted CR among its \
         candidates whose top-1 on the search subset is within T pp of the reference's there \
         (picked on search images, reported on held-out ones), for T = 0.5, 1, 2 pp.\n\n",
    );
    md += "| method | coding | ref | seeds | CR ≤0.5 | Δ ≤0.5 | verdict ≤0.5 | CR ≤1 | Δ ≤1 | verdict ≤1 | p ≤1 | CR ≤2 | Δ ≤2 | verdict ≤2 | evaluations | search s |\n";
    md += "|---|---|---|--:|--:|--:|---|--:|--:|---|--:|--:|--:|---|--:|--:|\n";
    for (g, picks, cost) in board {
        let [c05, d05, v05, _] = pick_cells(&picks[0]);
        let [c1, d1, v1, p1] = pick_cells(&picks[1]);
        let [c2, d2, v2, _] = pick_cells(&picks[2]);
        md += &format!(
            "| {} | {} | {} | {} | {c05} | {d05} | {v05} | {c1} | {d1} | {v1} | {p1} | {c2} | {d2} | {v2} | {} | {} |\n",
            md_escape(&g.label()),
            coding_label(&g.coding),
            g.reference(),
            picks[0].seeds,
            agg0(&cost.evals),
            agg0(&cost.seconds),
        );
    }
    md
}

fn agg0(v: &[f64]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    format!("{:.0}", v.iter().sum::<f64>() / v.len() as f64)
}

fn board_latex(model: &str, dataset: &str, board: &Board) -> String {
    use crate::render::latex_escape as e;
    let mut t = format!(
        "% {model} on {dataset}: highest counted CR within T pp of the reference (picked on \
         search images; mean over seeds)\n\\begin{{tabular}}{{llrrrrrrr}}\n\\toprule\n\
         method & coding & seeds & CR$_{{0.5}}$ & $\\Delta_{{0.5}}$ & CR$_{{1}}$ & $\\Delta_{{1}}$ & CR$_{{2}}$ & $\\Delta_{{2}}$ \\\\\n\\midrule\n"
    );
    for (g, picks, _) in board {
        let cells: Vec<String> = picks
            .iter()
            .flat_map(|p| {
                let cr: Vec<f64> = p.picked.iter().map(|x| x.cr_file).collect();
                let d: Vec<f64> = p.picked.iter().filter_map(|x| x.delta).collect();
                let m = |v: &[f64], signed: bool| {
                    if v.is_empty() {
                        "--".to_string()
                    } else {
                        let x = v.iter().sum::<f64>() / v.len() as f64;
                        if signed {
                            format!("${x:+.2}$")
                        } else {
                            format!("{x:.2}")
                        }
                    }
                };
                [m(&cr, false), m(&d, true)]
            })
            .collect();
        t += &format!(
            "{} & {} & {} & {} \\\\\n",
            e(&g.label()),
            e(coding_label(&g.coding)),
            picks[0].seeds,
            cells.join(" & ")
        );
    }
    t += "\\bottomrule\n\\end{tabular}\n\n";
    t
}

/// Every candidate a method marks as its own choice, per configuration and coding,
/// aggregated over seeds.
fn own_choice_markdown(here: &[&(Group, Judged)]) -> String {
    let mut by: BTreeMap<(Group, String), Vec<&Judged>> = BTreeMap::new();
    for (g, j) in here {
        if j.row.chosen == Some(true) {
            by.entry((g.clone(), j.row.params.clone()))
                .or_default()
                .push(j);
        }
    }
    if by.is_empty() {
        return String::new();
    }
    let mut md = String::from(
        "\n**Each method's own choice** (the candidate its rule picks on its search data; \
         a single-candidate method's only candidate), per configuration:\n\n\
         | method | params | coding | seeds | CR | CR (bits) | Δ top-1 vs ref (pp) | verdict ≤0.5 | verdict ≤1 | verdict ≤2 | p |\n\
         |---|---|---|--:|--:|--:|--:|---|---|---|--:|\n",
    );
    for ((g, params), js) in &by {
        let cr: Vec<f64> = js.iter().filter_map(|j| j.row.cr_file).collect();
        let bits: Vec<f64> = js.iter().filter_map(|j| j.row.cr_bits).collect();
        let d: Vec<f64> = js.iter().filter_map(|j| j.delta).collect();
        let v = |t: f64| verdict_counts(&js.iter().map(|j| j.verdict(t)).collect::<Vec<_>>());
        let p = median(js.iter().filter_map(|j| j.mcnemar_p).collect());
        md += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            md_escape(&g.label()),
            md_escape(params),
            coding_label(&g.coding),
            js.len(),
            agg(&cr),
            agg(&bits),
            agg_signed(&d),
            v(0.5),
            v(1.0),
            v(2.0),
            fmt_p(p),
        );
    }
    md
}

/// Every method's candidates (as coded, all seeds) against the reference: counted CR
/// against Δ top-1, zoomed to [−6 pp, …]; a point below is drawn on the lower edge and
/// counted in its series' label.
fn figure(model: &str, dataset: &str, here: &[&(Group, Judged)]) -> Option<wb_core::Figure> {
    let mut series: BTreeMap<Group, Vec<(f64, f64)>> = BTreeMap::new();
    let mut below: BTreeMap<Group, usize> = BTreeMap::new();
    for (g, j) in here {
        let (Some(x), Some(y)) = (j.row.cr_file, j.delta) else {
            continue;
        };
        let y = if y < FIGURE_FLOOR_PP {
            *below.entry(g.clone()).or_default() += 1;
            FIGURE_FLOOR_PP
        } else {
            y
        };
        series.entry(g.clone()).or_default().push((x, y));
    }
    if series.is_empty() {
        return None;
    }
    let series = series
        .into_iter()
        .map(|(g, mut pts)| {
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mut label = format!("{} [{}]", g.label(), coding_label(&g.coding));
            if let Some(n) = below.get(&g) {
                label += &format!(" ({n} below)");
            }
            wb_core::view::series(label, pts, false)
        })
        .collect();
    Some(wb_core::Figure {
        stem: format!("compare_{model}_{dataset}"),
        title: format!("{model} on {dataset}: every candidate, all seeds"),
        alt: format!(
            "{model} on {dataset}: counted compression ratio against Δ top-1 on held-out \
             images for every method's candidates; points below {FIGURE_FLOOR_PP} pp are drawn \
             on the lower edge"
        ),
        x_desc: "compression ratio (counted bytes)".into(),
        y_desc: format!("Δ top-1 vs reference (pp, floor {FIGURE_FLOOR_PP})"),
        series,
        hline: Some(-1.0),
    })
}

/// The leaderboard as a long CSV: one line per model, dataset, group, tolerance, seed.
#[derive(Default)]
struct CsvRows {
    cols: BTreeMap<&'static str, Vec<Option<String>>>,
    n: usize,
}

impl CsvRows {
    fn push(&mut self, kv: &[(&'static str, Option<String>)]) {
        for (k, v) in kv {
            self.cols
                .entry(k)
                .or_insert_with(|| vec![None; self.n])
                .push(v.clone());
        }
        self.n += 1;
        for v in self.cols.values_mut() {
            v.resize(self.n, None);
        }
    }

    fn add(&mut self, model: &str, dataset: &str, board: &Board) {
        for (g, picks, _) in board {
            for (t, p) in TOLERANCES_PP.iter().zip(picks) {
                for x in &p.picked {
                    self.push(&[
                        ("model", Some(model.into())),
                        ("dataset", Some(dataset.into())),
                        ("method", Some(g.method.clone())),
                        ("role", Some(format!("{:?}", g.role).to_lowercase())),
                        ("index_coding", Some(g.coding.clone())),
                        ("reference", Some(g.reference().into())),
                        ("tolerance_pp", Some(t.to_string())),
                        ("seed", Some(x.seed.to_string())),
                        ("picked", Some(x.label.clone())),
                        (
                            "compression_ratio_counted",
                            Some(format!("{:.4}", x.cr_file)),
                        ),
                        (
                            "compression_ratio_bits",
                            x.cr_bits.map(|v| format!("{v:.4}")),
                        ),
                        ("top1_delta_ref_pp", x.delta.map(|v| format!("{v:.4}"))),
                        ("verdict", x.verdict.map(|v| v.as_str().into())),
                        ("mcnemar_p", x.mcnemar_p.map(|v| format!("{v:.6}"))),
                    ]);
                }
            }
        }
    }

    fn frame(self) -> PolarsResult<DataFrame> {
        const ORDER: [&str; 14] = [
            "model",
            "dataset",
            "method",
            "role",
            "index_coding",
            "reference",
            "tolerance_pp",
            "seed",
            "picked",
            "compression_ratio_counted",
            "compression_ratio_bits",
            "top1_delta_ref_pp",
            "verdict",
            "mcnemar_p",
        ];
        let n = self.n;
        let cols = ORDER
            .iter()
            .map(|k| {
                let v = self.cols.get(k).cloned().unwrap_or_else(|| vec![None; n]);
                Column::new((*k).into(), v)
            })
            .collect();
        DataFrame::new(n, cols)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(method: &str, seed: i64, cr: f64, search: f64, delta: f64) -> CRow {
        CRow {
            model: "m".into(),
            dataset: "d".into(),
            method: method.into(),
            params: "-".into(),
            seed,
            candidate: format!("c{cr}"),
            coding: "method".into(),
            chosen: Some(true),
            cell_id: format!("{method}{seed}{cr}"),
            top1: Some(80.0 + delta),
            delta_fp32: Some(delta),
            ci: (Some(delta - 0.3), Some(delta + 0.3)),
            mcnemar_p: Some(0.5),
            cr_file: Some(cr),
            top1_search: Some(80.0 + search),
            top1_search_fp32: Some(80.0),
            ..CRow::default()
        }
    }

    #[test]
    fn the_pick_uses_search_accuracy_never_the_reported_one() {
        // c8 is within 1 pp on the search images but far off on the held-out ones; c12
        // looks fine on held-out images but missed on search images.
        let rows = vec![
            row("x", 0, 4.0, -0.1, -0.2),
            row("x", 0, 8.0, -0.9, -3.0),
            row("x", 0, 12.0, -1.5, 0.0),
        ];
        let judged = judge(&rows, Path::new("/nonexistent"));
        let refs: Vec<&Judged> = judged.iter().map(|(_, j)| j).collect();
        let p = pick(&refs, 1.0).unwrap();
        assert_eq!(p.cr_file, 8.0);
        assert_eq!(p.delta, Some(-3.0));
        assert_eq!(p.verdict, Some(Verdict::Missed));
        assert_eq!(pick(&refs, 0.5).unwrap().cr_file, 4.0);
        assert!(pick(&refs, 0.05).is_none());
    }

    #[test]
    fn seeds_are_aggregated_with_their_interval_and_counted_verdicts() {
        let rows: Vec<CRow> = (0..3)
            .map(|s| row("x", s, 6.0 + s as f64, -0.2, -0.1 * s as f64))
            .collect();
        let judged = judge(&rows, Path::new("/nonexistent"));
        let here: Vec<&(Group, Judged)> = judged.iter().collect();
        let board = leaderboard(&here);
        assert_eq!(board.len(), 1);
        let [cr, d, v, _] = pick_cells(&board[0].1[1]);
        // Mean 7, sd 1, t(2)·sd/√3 = 2.48.
        assert_eq!(cr, "7.00 [4.52, 9.48]");
        assert!(d.starts_with("-0.10 ["), "{d}");
        assert_eq!(v, "met 3");
        let md = own_choice_markdown(&here);
        assert!(
            md.contains("| x | - | as coded | 3 | 7.00 [4.52, 9.48] |"),
            "{md}"
        );
    }

    #[test]
    fn a_retrained_row_is_judged_against_its_control() {
        let mut control = row("ft", 0, 2.0, 4.0, 4.0);
        control.cell_id = "ctl".into();
        let mut lossy = row("ft", 0, 3.0, 2.0, 2.5);
        lossy.control_cell = Some("ctl".into());
        let judged = judge(&[control, lossy], Path::new("/nonexistent"));
        let (g, j) = &judged[1];
        assert_eq!(g.role, Role::Retrained);
        assert_eq!(g.reference(), "control");
        // +2.5 against FP32 is −1.5 against the control; no predictions: no verdict.
        assert!((j.delta.unwrap() + 1.5).abs() < 1e-12);
        assert!((j.delta_search.unwrap() + 2.0).abs() < 1e-12);
        assert_eq!(j.verdict(1.0), None);
        assert_eq!(judged[0].0.role, Role::Control);
    }
}
