//! Method views: the paper-style tables and figures of the published methods, added to a
//! report whenever its results hold rows of that method. Each view reads the columns of
//! the results schema and the method's own `extra_json` (documented in the method's
//! README); a new method adds one function here and one line in [`method_views`].

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use polars::prelude::*;
use serde_json::Value;

use crate::fsutil::{commit, temp_sibling, write_atomic};
use crate::load::FP32;
use crate::render::{render_params, sanitize_name};
use crate::ReportError;

/// One ok row with the columns the views need.
#[derive(Debug, Clone)]
pub(crate) struct XRow {
    pub model: String,
    pub dataset: String,
    pub method: String,
    pub params: String,
    pub params_json: Value,
    pub candidate: String,
    pub top1: Option<f64>,
    pub delta_pp: Option<f64>,
    pub ratio: Option<f64>,
    pub artifact_bytes: Option<i64>,
    pub latency_b1: Option<f64>,
    pub throughput: Option<f64>,
    pub energy_j_per_img: Option<f64>,
    pub energy_source: Option<String>,
    pub compress_s: Option<f64>,
    pub evaluations: Option<i64>,
    pub threads: Option<i64>,
    pub extra: Value,
}

/// The ok rows of `df` (already filtered and sorted by the caller).
pub(crate) fn xrows(df: &DataFrame) -> PolarsResult<Vec<XRow>> {
    let s = |n: &str| -> PolarsResult<Vec<Option<String>>> {
        Ok(df
            .column(n)?
            .str()?
            .iter()
            .map(|v| v.map(str::to_string))
            .collect())
    };
    let f =
        |n: &str| -> PolarsResult<Vec<Option<f64>>> { Ok(df.column(n)?.f64()?.iter().collect()) };
    let i =
        |n: &str| -> PolarsResult<Vec<Option<i64>>> { Ok(df.column(n)?.i64()?.iter().collect()) };
    let (model, dataset, method, pj, cand, es, ex) = (
        s("model")?,
        s("dataset")?,
        s("method")?,
        s("params_json")?,
        s("candidate")?,
        s("energy_source")?,
        s("extra_json")?,
    );
    let (top1, delta, ratio, lat, thr, ej, cs) = (
        f("top1")?,
        f("top1_delta_pp")?,
        f("compression_ratio")?,
        f("latency_ms_b1_median")?,
        f("throughput_img_s")?,
        f("energy_j_per_img")?,
        f("compress_s")?,
    );
    let (bytes, evals, threads) = (
        i("artifact_bytes")?,
        i("search_evaluations")?,
        i("threads")?,
    );
    let parse = |t: &Option<String>| {
        t.as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or(Value::Null)
    };
    Ok((0..df.height())
        .map(|k| XRow {
            model: model[k].clone().unwrap_or_default(),
            dataset: dataset[k].clone().unwrap_or_default(),
            method: method[k].clone().unwrap_or_default(),
            params: render_params(pj[k].as_deref()),
            params_json: parse(&pj[k]),
            candidate: cand[k].clone().unwrap_or_default(),
            top1: top1[k],
            delta_pp: delta[k],
            ratio: ratio[k],
            artifact_bytes: bytes[k],
            latency_b1: lat[k],
            throughput: thr[k],
            energy_j_per_img: ej[k],
            energy_source: es[k].clone(),
            compress_s: cs[k],
            evaluations: evals[k],
            threads: threads[k],
            extra: parse(&ex[k]),
        })
        .collect())
}

/// Markdown of every applicable method view; figures are written to `out_dir` and added
/// to `files`.
pub(crate) fn method_views(
    rows: &[XRow],
    out_dir: &Path,
    files: &mut Vec<PathBuf>,
) -> Result<String, ReportError> {
    let mut md = String::new();
    if rows.iter().any(|r| r.method == "bf16-approx") {
        md += &bf16_approx_view(rows, out_dir, files)?;
    }
    if rows.iter().any(|r| r.method == "ws-dse") {
        md += &ws_dse_view(rows, out_dir, files)?;
    }
    if rows.iter().any(|r| r.method == "moea-bins") {
        md += &moea_bins_view(rows, out_dir, files)?;
    }
    Ok(md)
}

/// (model, dataset) pairs in first-seen order.
fn pairs(rows: &[XRow], method: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = Vec::new();
    for r in rows.iter().filter(|r| r.method == method) {
        let p = (r.model.clone(), r.dataset.clone());
        if !v.contains(&p) {
            v.push(p);
        }
    }
    v
}

fn opt(v: Option<f64>, d: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.d$}"))
}

fn signed(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:+.2}"))
}

/// The energy cell: J/image, or NULL with the reason the measurement is missing.
fn energy_cell(r: &XRow) -> String {
    match r.energy_j_per_img {
        Some(j) => format!("{j:.4}"),
        None => "NULL".into(),
    }
}

/// The distinct reasons of the NULL energy cells, for a note under a table.
fn energy_note(rows: &[&XRow]) -> Option<String> {
    let mut why: Vec<&str> = rows
        .iter()
        .filter(|r| r.energy_j_per_img.is_none())
        .filter_map(|r| r.energy_source.as_deref())
        .collect();
    why.sort_unstable();
    why.dedup();
    (!why.is_empty()).then(|| format!("Energy NULL: {}.", why.join("; ")))
}

/// A short label of a bf16-approx variant: r, m′ and whatever differs from the defaults.
fn bf16_variant(p: &Value) -> String {
    let s = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("");
    let i = |k: &str| p.get(k).and_then(Value::as_i64).unwrap_or(0);
    let mut v = format!("r={}, m′={}", i("remove_bits"), i("mantissa_bits"));
    for (k, default) in [
        ("table", "layer"),
        ("value_sharing", "off"),
        ("mantissa_rounding", "nearest-even"),
        ("zero_entry", "in-budget"),
    ] {
        if !s(k).is_empty() && s(k) != default {
            v += &format!(", {k}={}", s(k));
        }
    }
    if p.get("zero_candidate").and_then(Value::as_bool) == Some(false) {
        v += ", no zero";
    }
    if i("retrain_epochs") > 0 {
        v += &format!(", {} ep", i("retrain_epochs"));
        if i("retrain_steps") > 0 {
            v += &format!(" ≤ {} steps", i("retrain_steps"));
        }
        if s("retrain_projection") == "full" {
            v += ", full projection";
        }
    }
    v
}

fn fp32_top1(rows: &[XRow], model: &str, dataset: &str) -> Option<f64> {
    rows.iter()
        .find(|r| r.method == FP32 && r.model == model && r.dataset == dataset)
        .and_then(|r| r.top1)
}

/// TECS 2024 view: per model, every `bf16-approx` variant with its memory saving against
/// BF16 (the paper's metric), accuracy, inference time and energy; and a figure of saving
/// against accuracy drop, retraining-free and retrained.
fn bf16_approx_view(
    rows: &[XRow],
    out_dir: &Path,
    files: &mut Vec<PathBuf>,
) -> Result<String, ReportError> {
    let mut md = String::from(
        "\n# bf16-approx (Kashikar et al., TECS 2024)\n\n\
         Memory saving is against BF16 (1 sign + b exponent-index + m′ mantissa bits per \
         weight + 8 bits per exponent-table entry, against 16 bits per weight), the paper's \
         accounting; the compression ratio is against FP32. `retrained` = fine-tuned with \
         projection, best epoch chosen on held-out training images. Paper: ≥ 20 % saving \
         with very minor loss without retraining, ≥ 30 % (up to 43 %) with retraining.\n",
    );
    for (model, dataset) in pairs(rows, "bf16-approx") {
        let fp32 = fp32_top1(rows, &model, &dataset);
        let _ = writeln!(
            md,
            "\n## {model} on {dataset}\n\nFP32 top-1 {} %\n\n\
             | variant | retrained | top-1 % | Δ pp vs FP32 | Δ pp vs retrained control | saving vs BF16 % | bits/weight | CR vs FP32 | latency b1 ms | throughput img/s | threads | energy J/img |\n\
             |---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
            opt(fp32, 2)
        );
        let mine: Vec<&XRow> = rows
            .iter()
            .filter(|r| {
                r.model == model
                    && r.dataset == dataset
                    && matches!(r.method.as_str(), "bf16-approx" | "bf16-cast" | FP32)
            })
            .collect();
        let is_retrained = |r: &XRow| {
            r.method == "bf16-approx"
                && r.params_json
                    .get("retrain_epochs")
                    .and_then(Value::as_i64)
                    .is_some_and(|e| e > 0)
        };
        // The control: lossless sharing (r = 0, m' = 7) fine-tuned like the others. Fine-
        // tuning on the JPEG-degraded training images alone changes the top-1 on the
        // JPEG-degraded test images; the difference to the control isolates what the
        // approximation costs after retraining.
        let control = mine
            .iter()
            .find(|r| {
                is_retrained(r)
                    && r.params_json.get("remove_bits").and_then(Value::as_i64) == Some(0)
                    && r.params_json.get("mantissa_bits").and_then(Value::as_i64) == Some(7)
                    && r.params_json.get("value_sharing").and_then(Value::as_str) != Some("always")
            })
            .and_then(|r| r.top1);
        let mut free = Vec::new();
        let mut retrained = Vec::new();
        let mut vs_control = Vec::new();
        for r in &mine {
            let is_rt = is_retrained(r);
            let d_control = if is_rt {
                control.zip(r.top1).map(|(c, t)| t - c)
            } else {
                None
            };
            let saving = match r.method.as_str() {
                "bf16-approx" => r.extra.get("saving_vs_bf16_pct").and_then(Value::as_f64),
                "bf16-cast" => Some(0.0),
                _ => None,
            };
            let bpw = r.extra.get("bits_per_weight").and_then(Value::as_f64);
            let variant = if r.method == "bf16-approx" {
                bf16_variant(&r.params_json)
            } else {
                r.method.clone()
            };
            let _ = writeln!(
                md,
                "| {variant} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                if is_rt { "yes" } else { "no" },
                opt(r.top1, 2),
                signed(r.delta_pp),
                signed(d_control),
                opt(saving, 1),
                opt(bpw, 2),
                r.ratio.map_or("-".into(), |v| format!("{v:.2}×")),
                opt(r.latency_b1, 3),
                opt(r.throughput, 0),
                r.threads.map_or("-".into(), |t| t.to_string()),
                energy_cell(r),
            );
            if r.method == "bf16-approx" {
                if let (Some(s), Some(d)) = (saving, r.delta_pp) {
                    if is_rt {
                        retrained.push((s, d));
                        if let Some(dc) = d_control {
                            vs_control.push((s, dc));
                        }
                    } else {
                        free.push((s, d));
                    }
                }
            }
        }
        let best = |pts: &[(f64, f64)], limit: f64| {
            pts.iter()
                .filter(|p| p.1 >= -limit)
                .map(|p| p.0)
                .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
        };
        let _ = writeln!(
            md,
            "\nBest saving with ≤ 0.5 pp loss against FP32: retraining-free {} %, retrained {} % \
             (retrained, ≤ 0.5 pp against the retrained lossless control: {} %; control top-1 {} %).",
            opt(best(&free, 0.5), 1),
            opt(best(&retrained, 0.5), 1),
            opt(best(&vs_control, 0.5), 1),
            opt(control, 2),
        );
        if let Some(n) = energy_note(&mine) {
            let _ = writeln!(md, "\n{n}");
        }
        let stem = format!("tecs_{}_{}", sanitize_name(&model), sanitize_name(&dataset));
        let fig = Scatter {
            title: format!("bf16-approx: {model} on {dataset}"),
            x_desc: "Memory saving vs BF16 (%)".into(),
            y_desc: "Top-1 change vs FP32 (pp)".into(),
            series: vec![
                ("retraining-free".into(), free, false),
                ("retrained".into(), retrained, false),
                ("retrained, vs retrained control".into(), vs_control, false),
            ],
            hline: Some(-0.5),
        };
        write_scatter(&fig, out_dir, &stem, files)?;
        let _ = writeln!(md, "\n![saving vs accuracy]({stem}.png)");
    }
    Ok(md)
}

/// ASP-DAC 2022 view: per model, the chosen ws-dse point (highest compression ratio with
/// top-1 ≥ 99 % of FP32 on the evaluation split) beside the best uniform k-means point
/// meeting the same target, with the cost of the exploration; figures of the per-layer
/// bit-widths of the chosen point and of the hypervolume against evaluations.
fn ws_dse_view(
    rows: &[XRow],
    out_dir: &Path,
    files: &mut Vec<PathBuf>,
) -> Result<String, ReportError> {
    let mut md = String::from(
        "\n# ws-dse (Dupuis et al., ASP-DAC 2022)\n\n\
         Chosen point: the highest compression ratio (indices at ⌈log2 k_l⌉ bits + FP32 \
         codebook per layer, conv and linear weights; the paper's accounting) among the \
         re-scored front with top-1 ≥ quality × FP32 top-1 on the evaluation split; the \
         uniform baseline is the best `kmeans-uniform` point meeting the same target. \
         Paper: over 5× \"in less than 10 hours\" per ImageNet CNN.\n\n\
         | model | dataset | FP32 top-1 % | target % | ws-dse top-1 % | ws-dse CR | artifact bytes | best uniform k-means (meeting target) | DSE time | evaluations | front size |\n\
         |---|---|--:|--:|--:|--:|--:|---|--:|--:|--:|\n",
    );
    let mut figs = String::new();
    for (model, dataset) in pairs(rows, "ws-dse") {
        let fp32 = fp32_top1(rows, &model, &dataset);
        let dse: Vec<&XRow> = rows
            .iter()
            .filter(|r| r.model == model && r.dataset == dataset && r.method == "ws-dse")
            .collect();
        let quality = dse
            .iter()
            .find_map(|r| r.extra.get("quality").and_then(Value::as_f64))
            .unwrap_or(0.99);
        let target = fp32.map(|f| f * quality);
        let meets = |r: &&XRow| match (r.top1, target) {
            (Some(t), Some(g)) => t >= g - 1e-9,
            _ => false,
        };
        fn best_of<'a>(v: Vec<&'a XRow>, meets: impl Fn(&&'a XRow) -> bool) -> Option<&'a XRow> {
            v.into_iter()
                .filter(meets)
                .max_by(|a, b| a.ratio.unwrap_or(0.0).total_cmp(&b.ratio.unwrap_or(0.0)))
        }
        let chosen = best_of(dse.clone(), meets);
        let uniform = best_of(
            rows.iter()
                .filter(|r| {
                    r.model == model && r.dataset == dataset && r.method == "kmeans-uniform"
                })
                .collect(),
            meets,
        );
        let log = dse
            .iter()
            .find_map(|r| r.extra.get("search").filter(|v| !v.is_null()));
        let _ = writeln!(
            md,
            "| {model} | {dataset} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            opt(fp32, 2),
            opt(target, 2),
            opt(chosen.and_then(|r| r.top1), 2),
            chosen
                .and_then(|r| r.ratio)
                .map_or("none meets target".into(), |v| format!("{v:.2}×")),
            chosen
                .and_then(|r| r.artifact_bytes)
                .map_or("-".into(), |v| v.to_string()),
            uniform.map_or("none".into(), |u| format!(
                "{}: {}×, {} %",
                u.params,
                opt(u.ratio, 2),
                opt(u.top1, 2)
            )),
            dse.first()
                .and_then(|r| r.compress_s)
                .map_or("-".into(), |s| format!("{:.1} min", s / 60.0)),
            dse.first()
                .and_then(|r| r.evaluations)
                .map_or("-".into(), |v| v.to_string()),
            dse.len(),
        );
        let stem_base = format!("{}_{}", sanitize_name(&model), sanitize_name(&dataset));
        if let Some(c) = chosen {
            if let Some(bits) = c.extra.get("bits").and_then(Value::as_array) {
                let pts: Vec<(f64, f64)> = bits
                    .iter()
                    .enumerate()
                    .filter_map(|(i, b)| b.as_f64().map(|b| (i as f64, b)))
                    .collect();
                let stem = format!("wsdse_bits_{stem_base}");
                let fig = Scatter {
                    title: format!("ws-dse {model}: per-layer index bits of {}", c.candidate),
                    x_desc: "Layer (compressible tensors in model order)".into(),
                    y_desc: "Index bits ⌈log2 k⌉".into(),
                    series: vec![(
                        format!("{} ({:.2}×)", c.candidate, c.ratio.unwrap_or(0.0)),
                        pts,
                        true,
                    )],
                    hline: None,
                };
                write_scatter(&fig, out_dir, &stem, files)?;
                let _ = writeln!(figs, "\n![per-layer bits {model}]({stem}.png)");
            }
        }
        if let Some(gens) = log
            .and_then(|l| l.get("generations"))
            .and_then(Value::as_array)
        {
            let pts: Vec<(f64, f64)> = gens
                .iter()
                .filter_map(|g| {
                    Some((
                        g.get("evaluations")?.as_f64()?,
                        g.get("hypervolume")?.as_f64()?,
                    ))
                })
                .collect();
            let stem = format!("wsdse_hv_{stem_base}");
            let fig = Scatter {
                title: format!("ws-dse {model}: hypervolume of the search front"),
                x_desc: "Evaluations (baseline and sweep included)".into(),
                y_desc: "Hypervolume (top-1 fraction × CR_obj)".into(),
                series: vec![("NSGA-II".into(), pts, true)],
                hline: None,
            };
            write_scatter(&fig, out_dir, &stem, files)?;
            let _ = writeln!(figs, "\n![hypervolume {model}]({stem}.png)");
        }
    }
    md += "\nThe final fronts with the baselines on the same axes are the accuracy-vs-compression figures above.\n";
    md += &figs;
    Ok(md)
}

/// A ratio cell: `-` stays `-` (rows written before a key existed), a number gets `×`.
fn times(cell: String) -> String {
    if cell == "-" {
        cell
    } else {
        format!("{cell}×")
    }
}

/// `extra` keys (average index bits, paper CR) of the moea-bins table's codings.
const FIXED_KEYS: (&str, &str) = ("fixed_bits_per_weight", "cr_fixed_paper");
const MODEL_TREE_KEYS: (&str, &str) = ("avg_bits_huffman", "cr_paper");
const LAYER_TREE_KEYS: (&str, &str) = ("avg_bits_huffman_layer", "cr_paper_layer_trees");

/// arXiv 2025 view: a Table I-style table per model (Baseline, Random UB, MO-UB,
/// MO-UB + Merge, MO-UB + Merge + Huffman with a model-wide and with per-layer trees),
/// with ranges over the front, and a figure of
/// the front before and after merge (search error against shared values).
fn moea_bins_view(
    rows: &[XRow],
    out_dir: &Path,
    files: &mut Vec<PathBuf>,
) -> Result<String, ReportError> {
    let mut md = String::from(
        "\n# moea-bins (Khosrowshahli et al., arXiv 2501.03095, 2025)\n\n\
         Validation = the seeded search subset the method scored on (top-1; the harness \
         evaluator gives top-1, not the paper's macro-F1); test = the evaluation split. \
         Paper CR = 32 / average index bits (Huffman code bits, or ⌈log2 B⌉ for fixed \
         width), codebook and code table not counted; whole-artifact CR = the FP32 model's \
         container bytes / this artifact's container bytes (every tensor, codebook, code \
         table, header). Ranges are min–max over the front. The paper's MO-UB + Merge + \
         Huffman on CIFAR-10 is 13.72–14.98× (ResNet-18, 11.2 M weights): a codebook of a \
         few dozen values is a far smaller share of 11 M weights than of 0.27–0.85 M, and \
         the paper does not count it.\n",
    );
    let range = |v: &[f64], d: usize| -> String {
        if v.is_empty() {
            return "-".into();
        }
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if (hi - lo).abs() < 0.5 * 10f64.powi(-(d as i32)) {
            format!("{lo:.d$}")
        } else {
            format!("{lo:.d$}–{hi:.d$}")
        }
    };
    for (model, dataset) in pairs(rows, "moea-bins") {
        let fp32 = fp32_top1(rows, &model, &dataset);
        let mine: Vec<&XRow> = rows
            .iter()
            .filter(|r| r.model == model && r.dataset == dataset && r.method == "moea-bins")
            .collect();
        let base_val = mine.iter().find_map(|r| {
            let c = r.extra.get("search_baseline_top1_correct")?.as_f64()?;
            let n = r.extra.get("search_images")?.as_f64()?;
            Some(100.0 * c / n)
        });
        let _ = writeln!(
            md,
            "\n## {model} on {dataset}\n\n\
             | row | points | val top-1 % | test top-1 % | Δ pp test | k | shared values | avg bits | paper CR | whole-artifact CR | artifact bytes |\n\
             |---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n\
             | Baseline (FP32) | 1 | {} | {} | +0.00 | - | - | 32 | 1.00× | 1.00× | - |",
            opt(base_val, 2),
            opt(fp32, 2)
        );
        // (row, stage, keys of its average bits and paper CR). The last row is the same
        // candidates as the one before it, coded with one tree per layer as the 2025 code
        // counts (papers.md §5.7); the method reports both codings on every candidate.
        let stages = [
            ("Random UB (k = ub)", "random_ub", FIXED_KEYS),
            ("MO-UB", "mo_ub", FIXED_KEYS),
            ("MO-UB + Merge", "mo_ub_merge", FIXED_KEYS),
            ("MO-UB + Huffman", "mo_ub_huffman", MODEL_TREE_KEYS),
            (
                "MO-UB + Merge + Huffman",
                "mo_ub_merge_huffman",
                MODEL_TREE_KEYS,
            ),
            (
                "MO-UB + Merge + Huffman, a tree per layer (2025 code)",
                "mo_ub_merge_huffman",
                LAYER_TREE_KEYS,
            ),
        ];
        let f = |r: &XRow, k: &str| r.extra.get(k).and_then(Value::as_f64);
        let mut before = Vec::new();
        let mut after = Vec::new();
        for (name, stage, (bits_key, cr_key)) in stages {
            let st: Vec<&&XRow> = mine
                .iter()
                .filter(|r| {
                    r.extra.get("stage").and_then(Value::as_str) == Some(stage)
                        && r.extra.get(bits_key).is_some()
                })
                .collect();
            if st.is_empty() {
                continue;
            }
            let col = |g: &dyn Fn(&XRow) -> Option<f64>| -> Vec<f64> {
                st.iter().filter_map(|r| g(r)).collect()
            };
            let val = col(&|r| f(r, "search_top1_pct"));
            let test = col(&|r| r.top1);
            let delta = col(&|r| r.delta_pp);
            let k = col(&|r| f(r, "k"));
            let shared = col(&|r| f(r, "shared_values"));
            let bits = col(&|r| f(r, bits_key));
            let cr = col(&|r| f(r, cr_key));
            // The per-layer-tree row is an accounting of the same candidates, whose
            // artifacts use the model-wide tree: no container of its own to measure
            // (unless the run asked for `huffman = "layer"`, where the two agree).
            let own_artifact = |r: &XRow| {
                cr_key != LAYER_TREE_KEYS.1
                    || r.extra.get("encoding").and_then(Value::as_str) == Some("huffman-layer")
            };
            let cr_art = col(&|r| f(r, "cr_artifact_bytes").filter(|_| own_artifact(r)));
            let bytes = col(&|r| {
                r.artifact_bytes
                    .map(|b| b as f64)
                    .filter(|_| own_artifact(r))
            });
            let _ = writeln!(
                md,
                "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                st.len(),
                range(&val, 2),
                range(&test, 2),
                range(&delta, 2),
                range(&k, 0),
                range(&shared, 0),
                range(&bits, 2),
                times(range(&cr, 2)),
                times(range(&cr_art, 2)),
                range(&bytes, 0),
            );
            for r in &st {
                if let (Some(b), Some(v)) = (f(r, "shared_values"), f(r, "search_top1_pct")) {
                    match stage {
                        "mo_ub" => before.push((b, 100.0 - v)),
                        "mo_ub_merge" => after.push((b, 100.0 - v)),
                        _ => {}
                    }
                }
            }
        }
        // The search cost, from the candidate that carries the search log.
        if let Some(r) = mine.iter().find(|r| r.extra.get("search").is_some()) {
            let srch = &r.extra["search"];
            let ev = |k: &str| srch["evaluations"].get(k).and_then(Value::as_i64);
            let complete = srch["front_before_merge"].as_array().map(|a| {
                let merged: Vec<&Value> = a.iter().filter(|s| s["merged"] == true).collect();
                let done = merged
                    .iter()
                    .filter(|s| s["merge_complete"] == true)
                    .count();
                format!("{done}/{}", merged.len())
            });
            let _ = writeln!(
                md,
                "\nSearch cost (method wall time; evaluations on the search subset):\n\n\
                 | search wall time | distinct evaluations | NSGA-II distinct k | \
                 NSGA-II objective calls | merge evaluations computed | \
                 merge evaluations asked (budget) | merge passes complete |\n\
                 |---|--:|--:|--:|--:|--:|--:|\n\
                 | {} | {} | {} | {} | {} | {} ({}) | {} |",
                r.compress_s
                    .map_or("-".into(), |t| format!("{:.1} min", t / 60.0)),
                opt(ev("total_computed").map(|v| v as f64), 0),
                opt(srch["nsga2"].get("distinct_k").and_then(Value::as_f64), 0),
                opt(
                    srch["nsga2"].get("objective_calls").and_then(Value::as_f64),
                    0
                ),
                opt(ev("merge").map(|v| v as f64), 0),
                opt(srch.get("merge_evaluations").and_then(Value::as_f64), 0),
                opt(srch.get("merge_budget").and_then(Value::as_f64), 0),
                complete.unwrap_or_else(|| "-".into()),
            );
        }
        let best = |key: &str| {
            mine.iter()
                .filter(|r| {
                    r.extra.get("stage").and_then(Value::as_str) == Some("mo_ub_merge_huffman")
                        && r.delta_pp.is_some_and(|d| d >= -1.0)
                })
                .filter_map(|r| f(r, key))
                .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
        };
        let _ = writeln!(
            md,
            "\nBest MO-UB + Merge + Huffman paper CR with test top-1 within 1 pp of FP32: {} \
             with one tree for the model, {} with a tree per layer \
             (paper, ResNet-18 on CIFAR-10: 13.72–14.98×).",
            times(opt(best(MODEL_TREE_KEYS.1), 2)),
            times(opt(best(LAYER_TREE_KEYS.1), 2))
        );
        if !before.is_empty() || !after.is_empty() {
            let stem = format!(
                "moea_front_{}_{}",
                sanitize_name(&model),
                sanitize_name(&dataset)
            );
            let fig = Scatter {
                title: format!("moea-bins {model}: front before and after merge"),
                x_desc: "Shared values (non-empty bins)".into(),
                y_desc: "Validation top-1 error (%)".into(),
                series: vec![
                    ("MO-UB front".into(), before, false),
                    ("after merge".into(), after, false),
                ],
                hline: base_val.map(|b| 100.0 - b),
            };
            write_scatter(&fig, out_dir, &stem, files)?;
            let _ = writeln!(md, "\n![front before and after merge]({stem}.png)");
        }
        // The codebook of the most compressed Huffman candidate within 1 pp.
        if let Some(c) = mine
            .iter()
            .filter(|r| {
                r.extra.get("stage").and_then(Value::as_str) == Some("mo_ub_merge_huffman")
                    && r.delta_pp.is_some_and(|d| d >= -1.0)
            })
            .max_by(|a, b| {
                f(a, "cr_paper")
                    .unwrap_or(0.0)
                    .total_cmp(&f(b, "cr_paper").unwrap_or(0.0))
            })
        {
            let book: Vec<(f64, f64)> = mine
                .iter()
                .filter_map(|r| r.extra.get("search")?.get("codebook")?.as_array())
                .flatten()
                .filter(|e| {
                    e.get("candidate").and_then(Value::as_str) == Some(c.candidate.as_str())
                })
                .filter_map(|e| {
                    Some((
                        e.get("value")?.as_f64()?,
                        (e.get("count")?.as_f64()?).max(1.0).log10(),
                    ))
                })
                .collect();
            if !book.is_empty() {
                let stem = format!(
                    "moea_codebook_{}_{}",
                    sanitize_name(&model),
                    sanitize_name(&dataset)
                );
                let fig = Scatter {
                    title: format!("moea-bins {model}: codebook of {}", c.candidate),
                    x_desc: "Shared value".into(),
                    y_desc: "log10(weights in bin)".into(),
                    series: vec![(format!("{} values", book.len()), book, true)],
                    hline: None,
                };
                write_scatter(&fig, out_dir, &stem, files)?;
                let _ = writeln!(md, "\n![codebook]({stem}.png)");
            }
        }
    }
    Ok(md)
}

/// An axis label without a spurious `.0` on whole numbers.
fn tick(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// (legend name, points, joined by a line)
type Series = (String, Vec<(f64, f64)>, bool);

/// A simple scatter/line figure.
struct Scatter {
    title: String,
    x_desc: String,
    y_desc: String,
    /// (legend name, points, joined by a line)
    series: Vec<Series>,
    /// A dashed horizontal reference line.
    hline: Option<f64>,
}

const COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
];

fn draw_scatter<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    fig: &Scatter,
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let all: Vec<(f64, f64)> = fig
        .series
        .iter()
        .flat_map(|s| s.1.iter().copied())
        .collect();
    let lim = |v: &mut dyn Iterator<Item = f64>| {
        let (lo, hi) = v.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
            (a.min(x), b.max(x))
        });
        if !lo.is_finite() {
            return (0.0, 1.0);
        }
        let pad = if hi > lo { (hi - lo) * 0.08 } else { 0.5 };
        (lo - pad, hi + pad)
    };
    let (xlo, xhi) = lim(&mut all.iter().map(|p| p.0));
    let mut ys = all.iter().map(|p| p.1).chain(fig.hline);
    let (ylo, yhi) = lim(&mut ys);
    let mut chart = ChartBuilder::on(root)
        .caption(&fig.title, ("sans-serif", 26))
        .margin(20)
        .x_label_area_size(60)
        .y_label_area_size(80)
        .build_cartesian_2d(xlo..xhi, ylo..yhi)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc(fig.x_desc.as_str())
        .y_desc(fig.y_desc.as_str())
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 20))
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| tick(*v))
        .light_line_style(RGBColor(240, 240, 240))
        .draw()
        .map_err(e)?;
    if let Some(h) = fig.hline {
        chart
            .draw_series(DashedLineSeries::new(
                vec![(xlo, h), (xhi, h)],
                6,
                4,
                RGBColor(120, 120, 120).stroke_width(1),
            ))
            .map_err(e)?;
    }
    for (i, (name, pts, line)) in fig.series.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        if *line {
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
                .map_err(e)?;
        }
        let anno = if i % 2 == 0 {
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 5, c.filled())))
                .map_err(e)?
        } else {
            chart
                .draw_series(pts.iter().map(|&p| TriangleMarker::new(p, 7, c.filled())))
                .map_err(e)?
        };
        anno.label(name.as_str())
            .legend(move |(x, y)| Circle::new((x, y), 5, c.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperMiddle)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 18))
        .draw()
        .map_err(e)?;
    Ok(())
}

fn write_scatter(
    fig: &Scatter,
    out_dir: &Path,
    stem: &str,
    files: &mut Vec<PathBuf>,
) -> Result<(), ReportError> {
    let png = out_dir.join(format!("{stem}.png"));
    let svg = out_dir.join(format!("{stem}.svg"));
    let err = |path: &Path, message: String| ReportError::Plot {
        path: path.to_path_buf(),
        message,
    };
    let tmp = temp_sibling(&png, true);
    let res = (|| {
        let root = BitMapBackend::new(&tmp, (1000, 650)).into_drawing_area();
        draw_scatter(&root, fig)?;
        root.present().map_err(|e| e.to_string())
    })();
    if let Err(m) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(&png, m));
    }
    commit(&tmp, &png)?;
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, (1000, 650)).into_drawing_area();
        draw_scatter(&root, fig).map_err(|m| err(&svg, m))?;
        root.present().map_err(|e| err(&svg, e.to_string()))?;
    }
    write_atomic(&svg, text.as_bytes())?;
    files.push(png);
    files.push(svg);
    Ok(())
}
