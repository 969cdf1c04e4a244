//! The `bin-quant` report section: per model, the method's chosen point against the
//! best uniform k-means point within the same tolerance, the bins, and a figure of
//! each layer's sensitivity coloured by bin.

use wb_core::view::{fmt_opt, fmt_signed, groups, series, Group};
use wb_core::{Block, Figure, ViewRow};

use crate::{Diagnostics, ID};

/// The view registered in [`crate::INFO`].
pub fn view(rows: &[ViewRow]) -> Vec<Block> {
    let mut out = vec![Block::Markdown(
        "\n## Bin & Quant (Sakthi et al.)\n\nThe method's own choice (the highest-compression \
         point whose top-1 on the search subset stays within the tolerance of FP32 on the same \
         images) on the reported images, beside the best `kmeans-uniform` point of the run \
         within the same tolerance on the reported images (a choice made on those images, \
         which favours the baseline) and, where the run has it, the `ws-dse` point its own \
         search chose. Fixed-width indices for both; Huffman-coded rows, where \
         the experiment asks for them, are in the results table. The paper reports 13× on a \
         speech command model and 7× on DeepSpeech2 (no retraining); those speech models are \
         not run here.\n"
            .into(),
    )];
    for g in groups(rows, ID) {
        // The run's own baselines: other seeds held out other images.
        let here: Vec<&ViewRow> = rows.iter().filter(|r| g.holds(r)).collect();
        for r in here.iter().filter(|r| r.method == ID) {
            let Some(d) = r.extra_as::<Diagnostics>() else {
                continue;
            };
            out.push(Block::Markdown(point_table(&g, r, &d, &here)));
            out.push(Block::Markdown(bin_table(&d)));
            out.push(Block::Figure(sensitivity_figure(&g, r, &d)));
        }
    }
    out
}

fn point_table(g: &Group, r: &ViewRow, d: &Diagnostics, here: &[&ViewRow]) -> String {
    let (model, dataset, seed) = (&g.model, &g.dataset, g.seed_suffix());
    let tol = d.tolerance_pp;
    let best_km = here
        .iter()
        .filter(|k| k.method == "kmeans-uniform")
        .filter(|k| k.top1_delta_pp.is_some_and(|x| x >= -tol))
        .max_by(|a, b| {
            a.compression_ratio
                .unwrap_or(0.0)
                .total_cmp(&b.compression_ratio.unwrap_or(0.0))
        });
    let mut s = format!(
        "\n### {model} on {dataset}{seed}, {}\n\n| point | top-1 % | Δ pp vs FP32 | compression ratio | \
         bytes | search top-1 % (FP32) | evaluations | compress s |\n|---|--:|--:|--:|--:|--:|--:|--:|\n",
        setting(r)
    );
    s += &format!(
        "| bin-quant (own choice{}) | {} | {} | {}× | {} | {:.2} ({:.2}) | {} | {} |\n",
        if d.met_on_search {
            ""
        } else {
            ", tolerance missed on search"
        },
        fmt_opt(r.top1, 2),
        fmt_signed(r.top1_delta_pp),
        fmt_opt(r.compression_ratio, 2),
        r.artifact_bytes.map_or("-".into(), |b| b.to_string()),
        d.chosen_top1_search,
        d.base_top1_search,
        d.evaluations,
        fmt_opt(r.compress_s, 1),
    );
    s += &ws_dse_row(here);
    match best_km {
        Some(k) => {
            s += &other_row(
                &format!("best kmeans-uniform within {tol} pp ({})", k.params_label),
                k,
                "-",
            )
        }
        None => {
            s +=
                &format!("| best kmeans-uniform within {tol} pp | none in this run | | | | | | |\n")
        }
    }
    s
}

/// A comparison row: reported accuracy, ratio and bytes of `k`, and `seconds`.
fn other_row(label: &str, k: &ViewRow, seconds: &str) -> String {
    format!(
        "| {label} | {} | {} | {}× | {} | - | - | {seconds} |\n",
        fmt_opt(k.top1, 2),
        fmt_signed(k.top1_delta_pp),
        fmt_opt(k.compression_ratio, 2),
        k.artifact_bytes.map_or("-".into(), |b| b.to_string()),
    )
}

/// The `ws-dse` point of the run that its own search chose (highest ratio meeting its
/// quality target on the search subset), if the experiment ran `ws-dse`.
fn ws_dse_row(here: &[&ViewRow]) -> String {
    let chosen = |r: &&&ViewRow| {
        r.extra
            .get("chosen_on_search")
            .and_then(serde_json::Value::as_bool)
            == Some(true)
    };
    let mut out = String::new();
    for k in here.iter().filter(|r| r.method == "ws-dse").filter(chosen) {
        out += &other_row(
            &format!(
                "ws-dse own choice (quality {})",
                k.param("quality").map_or("?".into(), |v| v.to_string())
            ),
            k,
            &fmt_opt(k.compress_s, 1),
        );
    }
    out
}

/// The row's setting in a few words: the number of bins and any parameter the experiment
/// changed besides it (`B=8`, `B=4 levels=uniform`).
fn setting(r: &ViewRow) -> String {
    let defaults = crate::BinQuant::default().to_params();
    let mut parts = vec![format!(
        "B={}",
        r.param("bins").map_or("?".into(), |v| v.to_string())
    )];
    for (k, v) in defaults.as_map() {
        if k != "bins" && r.param(k).is_some_and(|x| x != v) {
            parts.push(format!("{k}={}", r.param(k).expect("checked")));
        }
    }
    parts.join(" ")
}

fn bin_table(d: &Diagnostics) -> String {
    let mut s = format!(
        "\nBins (least sensitive first; average index {:.3} bits per weight):\n\n| bin | layers | \
         weights | mean sensitivity{} | levels | shared values |\n|--:|--:|--:|--:|--:|--:|\n",
        d.avg_index_bits,
        if d.sensitivity == "perturbation" {
            " pp".to_string()
        } else {
            format!(" ({})", d.sensitivity)
        }
    );
    for b in &d.bins {
        s += &format!(
            "| {} | {} | {} | {:.3e} | {} | {} |\n",
            b.bin,
            b.layers.len(),
            b.weights,
            b.sensitivity_mean,
            b.levels,
            b.shared_values
        );
    }
    s
}

fn sensitivity_figure(g: &Group, r: &ViewRow, d: &Diagnostics) -> Figure {
    let (model, dataset, seed) = (&g.model, &g.dataset, g.seed_suffix());
    // Perturbation drops are plotted in pp; gradient scores (tiny, unit-free) relative to
    // the most sensitive layer.
    let perturbation = d.sensitivity == "perturbation";
    let top = if perturbation {
        1.0
    } else {
        d.search
            .sensitivity
            .iter()
            .map(|s| s.value())
            .fold(0.0f64, f64::max)
            .max(f64::MIN_POSITIVE)
    };
    let series = d
        .bins
        .iter()
        .map(|b| {
            let pts = d
                .search
                .sensitivity
                .iter()
                .enumerate()
                .filter(|(_, s)| s.bin == b.bin)
                .map(|(i, s)| (i as f64, s.value() / top))
                .collect();
            series(format!("bin {} ({} levels)", b.bin, b.levels), pts, false)
        })
        .collect();
    Figure {
        stem: format!(
            "binquant_sens_{model}_{dataset}_{}{}",
            setting(r).replace([' ', '='], ""),
            g.stem_suffix()
        ),
        title: format!("{model} / {dataset}{seed}: layer sensitivity and bins"),
        alt: format!("Bin & Quant layer sensitivity, {model} {dataset}"),
        x_desc: "compressible layer (model order)".into(),
        y_desc: if perturbation {
            "top-1 drop on the search subset, pp".into()
        } else {
            format!("mean {} importance / largest", d.sensitivity)
        },
        series,
        hline: None,
    }
}
