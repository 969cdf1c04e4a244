//! The `gwk` report section: per model, every GWK point (top-1, Δ against FP32 and
//! against the fine-tuned lossless control on the same schedule, counted compression
//! ratio, best epoch, training time), the paper's claim beside it, and a figure of top-1
//! against compression ratio with the control and FP32 as references.

use wb_core::view::{baseline_top1, fmt_opt, fmt_signed, groups, series, Group};
use wb_core::{Block, Figure, ViewRow};

use crate::ID;

/// The paper's claim: 35× for less than 2 pp absolute loss against FP32.
const PAPER_CR: f64 = 35.0;
/// The must-show margin, pp, against the control.
const MARGIN_PP: f64 = 2.0;

/// The view registered in [`crate::INFO`].
pub fn view(rows: &[ViewRow]) -> Vec<Block> {
    let mut out = vec![Block::Markdown(format!(
        "\n## GWK (Sakthi et al.)\n\nProduct quantization with EWGS quantization-aware \
         fine-tuning and gradient-weighted re-clustering (a reconstruction: see \
         `methods/gwk/README.md`). Each point is judged against its **fine-tuned lossless \
         control** (the same schedule and data with the identity hook), not only against \
         FP32: fine-tuning alone moves top-1. Compression ratios count every byte needed to \
         decode (indices, codebooks, FP32 biases, BatchNorm parameters and kept layers). The \
         paper reports **{PAPER_CR}× within 2 pp of FP32** on ResNet20, ResNet56 and \
         MobileNetV2 (not in the zoo). A margin is a single seed's: top-1 on 8,000 images has a \
         standard error near 0.45 pp.\n"
    ))];
    for g in groups(rows, ID) {
        let here: Vec<&ViewRow> = rows
            .iter()
            .filter(|r| g.holds(r) && r.method == ID)
            .collect();
        let fp32 = baseline_top1(rows, &g.model, &g.dataset, g.seed);
        out.push(Block::Markdown(table(&g, &here, rows)));
        out.push(Block::Figure(figure(&g, &here, fp32)));
    }
    out
}

fn is_control(r: &ViewRow) -> bool {
    r.param("quantize").and_then(serde_json::Value::as_bool) == Some(false)
}

/// The row's control, by the cell the runner named.
fn control_of<'a>(r: &ViewRow, rows: &'a [ViewRow]) -> Option<&'a ViewRow> {
    let id = r.control_cell_id.as_deref()?;
    rows.iter().find(|c| c.cell_id == id)
}

/// A parameter of the row as text (`?` when absent).
fn param(r: &ViewRow, k: &str) -> String {
    r.param(k)
        .map_or("?".into(), |v| v.to_string().replace('"', ""))
}

/// The parameters among `keys` that differ from their defaults, as ` key=value`.
fn differing(r: &ViewRow, keys: &[(&str, &str)]) -> String {
    keys.iter()
        .filter(|(k, default)| param(r, k) != *default)
        .map(|(k, _)| format!(" {k}={}", param(r, k)))
        .collect()
}

/// The schedule switches that give a point its own control.
const SCHEDULE: [(&str, &str); 3] = [("epochs", "2"), ("lr", "0.001"), ("batchnorm", "train")];

/// `d=8 k=32` plus the ablation and schedule switches that differ from the defaults.
fn setting(r: &ViewRow) -> String {
    let ablations = [
        ("importance", "grad"),
        ("ewgs", "hessian"),
        ("keep", "none"),
        ("codewords", "f16"),
        ("codeword_lr", "0.0"),
    ];
    format!(
        "d={} k={}{}{}",
        param(r, "dim"),
        param(r, "k"),
        differing(r, &ablations),
        differing(r, &SCHEDULE)
    )
}

fn table(g: &Group, here: &[&ViewRow], rows: &[ViewRow]) -> String {
    let (model, dataset, seed) = (&g.model, &g.dataset, g.seed_suffix());
    let mut s = format!(
        "\n### {model} on {dataset}{seed}\n\n| point | top-1 % | Δ pp vs FP32 | Δ pp vs control | \
         counted CR | bytes | best epoch | compress s | within {MARGIN_PP} pp of control |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|---|\n"
    );
    let mut points: Vec<&&ViewRow> = here.iter().filter(|r| !is_control(r)).collect();
    points.sort_by(|a, b| {
        a.compression_ratio
            .unwrap_or(0.0)
            .total_cmp(&b.compression_ratio.unwrap_or(0.0))
    });
    for c in here.iter().filter(|r| is_control(r)) {
        s += &format!(
            "| control (lossless, fine-tuned){} | {} | {} | - | {}× | {} | {} | {} | - |\n",
            differing(c, &SCHEDULE),
            fmt_opt(c.top1, 2),
            fmt_signed(c.top1_delta_pp),
            fmt_opt(c.compression_ratio, 2),
            c.artifact_bytes.map_or("-".into(), |b| b.to_string()),
            c.extra["best_epoch"],
            fmt_opt(c.compress_s, 0),
        );
    }
    for r in points {
        let control = control_of(r, rows);
        let vs = match (r.top1, control.and_then(|c| c.top1)) {
            (Some(a), Some(b)) => Some(a - b),
            _ => None,
        };
        let verdict = match vs {
            Some(d) if d >= -MARGIN_PP => "yes",
            Some(_) => "no",
            None => "no control row",
        };
        s += &format!(
            "| {} | {} | {} | {} | {}× | {} | {} | {} | {verdict} |\n",
            setting(r),
            fmt_opt(r.top1, 2),
            fmt_signed(r.top1_delta_pp),
            fmt_signed(vs),
            fmt_opt(r.compression_ratio, 2),
            r.artifact_bytes.map_or("-".into(), |b| b.to_string()),
            r.extra["best_epoch"],
            fmt_opt(r.compress_s, 0),
        );
    }
    s
}

fn figure(g: &Group, here: &[&ViewRow], fp32: Option<f64>) -> Figure {
    let (model, dataset, seed) = (&g.model, &g.dataset, g.seed_suffix());
    let pts = |f: &dyn Fn(&ViewRow) -> bool| -> Vec<(f64, f64)> {
        let mut v: Vec<(f64, f64)> = here
            .iter()
            .filter(|r| !is_control(r) && f(r))
            .filter_map(|r| Some((r.compression_ratio?, r.top1?)))
            .collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v
    };
    let other_schedule = |r: &ViewRow| !differing(r, &SCHEDULE).is_empty();
    let plain = |r: &ViewRow| setting(r).split(' ').count() == 2;
    let mut s = vec![
        series("GWK", pts(&plain), true),
        series(
            "ablations",
            pts(&|r| !plain(r) && !other_schedule(r)),
            false,
        ),
        series(
            "other schedules (own controls)",
            pts(&other_schedule),
            false,
        ),
    ];
    let default_control = |r: &&&ViewRow| is_control(r) && differing(r, &SCHEDULE).is_empty();
    if let Some(c) = here.iter().find(default_control).and_then(|c| c.top1) {
        s.push(series("fine-tuned control", vec![(1.0, c)], false));
    }
    Figure {
        stem: format!("gwk_curve_{model}_{dataset}{}", g.stem_suffix()),
        title: format!("{model} / {dataset}{seed}: GWK top-1 vs counted compression"),
        alt: format!("GWK top-1 against compression ratio, {model} {dataset}"),
        x_desc: "counted compression ratio vs FP32, ×".into(),
        y_desc: "top-1 on the reported images, %".into(),
        series: s,
        hline: fp32,
    }
}
