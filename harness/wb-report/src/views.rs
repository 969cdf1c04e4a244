//! Method views in a report: the results table as [`ViewRow`]s for the views the
//! registry supplies, and their [`Block`]s rendered — Markdown as it is, figures drawn
//! by [`crate::plot`] in the report's one style. This module knows no method id.

use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde_json::Value;
use wb_core::io::sanitize_name;
use wb_core::{Block, ViewRow};

use crate::render::render_params;
use crate::{MethodView, ReportError};

/// The ok rows of `df` (already filtered and sorted by the caller).
pub(crate) fn view_rows(df: &DataFrame) -> PolarsResult<Vec<ViewRow>> {
    use crate::load::{f64_col, i64_col, str_col};
    let s = |n: &str| str_col(df, n);
    let f = |n: &str| f64_col(df, n);
    let i = |n: &str| i64_col(df, n);
    let (model, dataset, method, pj, cand, es, ex) = (
        s("model")?,
        s("dataset")?,
        s("method")?,
        s("params_json")?,
        s("candidate")?,
        s("energy_source")?,
        s("extra_json")?,
    );
    let (top1, base, delta, ratio, lat, thr, ej, cs) = (
        f("top1")?,
        f("top1_baseline")?,
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
    let (cell, control, seed, search) = (
        s("cell_id")?,
        s("control_cell_id")?,
        i("seed")?,
        f("top1_search")?,
    );
    let chosen: Vec<Option<bool>> = df.column("chosen")?.bool()?.iter().collect();
    let valid: Vec<Option<bool>> = df.column("timing_valid")?.bool()?.iter().collect();
    let (reasons, tref) = (s("timing_invalid_reasons")?, s("timing_ref")?);
    let parse = |t: &Option<String>| {
        t.as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or(Value::Null)
    };
    Ok((0..df.height())
        .map(|k| ViewRow {
            model: model[k].clone().unwrap_or_default(),
            dataset: dataset[k].clone().unwrap_or_default(),
            method: method[k].clone().unwrap_or_default(),
            params_label: render_params(pj[k].as_deref()),
            params: parse(&pj[k]),
            candidate: cand[k].clone().unwrap_or_default(),
            top1: top1[k],
            top1_baseline: base[k],
            top1_delta_pp: delta[k],
            compression_ratio: ratio[k],
            artifact_bytes: bytes[k],
            latency_ms_b1: lat[k],
            throughput_img_s: thr[k],
            timing_valid: valid[k],
            timing_invalid_reasons: reasons[k].clone(),
            timing_ref: tref[k].clone(),
            energy_j_per_img: ej[k],
            energy_source: es[k].clone(),
            compress_s: cs[k],
            search_evaluations: evals[k],
            threads: threads[k],
            extra: parse(&ex[k]),
            cell_id: cell[k].clone().unwrap_or_default(),
            seed: seed[k].unwrap_or(0),
            chosen: chosen[k],
            control_cell_id: control[k].clone(),
            top1_search: search[k],
        })
        .collect())
}

/// The Markdown of every view whose method has rows, in the order of `views`; their
/// figures are written to `out_dir` and added to `files`.
pub(crate) fn render_views(
    views: &[MethodView],
    rows: &[ViewRow],
    out_dir: &Path,
    files: &mut Vec<PathBuf>,
) -> Result<String, ReportError> {
    let mut md = String::new();
    for v in views {
        if !rows.iter().any(|r| r.method == v.method) {
            continue;
        }
        for block in (v.view)(rows) {
            match block {
                Block::Markdown(text) => md += &text,
                Block::Figure(fig) => md += &write_linked_figure(&fig, out_dir, files)?,
            }
        }
    }
    Ok(md)
}

/// Draws `fig` as `<stem>.png` and `.svg` in `out_dir` (adding both to `files`) and
/// returns the Markdown link to the PNG.
pub(crate) fn write_linked_figure(
    fig: &wb_core::Figure,
    out_dir: &Path,
    files: &mut Vec<PathBuf>,
) -> Result<String, ReportError> {
    let stem = sanitize_name(&fig.stem);
    let png = out_dir.join(format!("{stem}.png"));
    let svg = out_dir.join(format!("{stem}.svg"));
    crate::plot::write_figure(fig, &png, &svg)?;
    files.push(png);
    files.push(svg);
    Ok(format!("\n![{}]({stem}.png)\n", fig.alt))
}
