//! Loading the cell Parquet files and shaping them into report sections.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::render::{render_params, Row, Section};
use crate::ReportError;

/// The row schema the runner writes, in order, with the types read back. Every column
/// is nullable.
pub(crate) fn expected_schema() -> Vec<(&'static str, DataType)> {
    crate::schema::column_types()
}

/// The `*.parquet` files directly inside `results_dir/cells`, sorted by name.
/// Hidden files (e.g. a writer's temporaries) are skipped.
pub(crate) fn cell_files(results_dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let cells = results_dir.join("cells");
    let entries = match fs::read_dir(&cells) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(ReportError::Io {
                path: cells,
                source,
            })
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| ReportError::Io {
            path: cells.clone(),
            source,
        })?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !name.ends_with(".parquet") || !path.is_file() {
            continue;
        }
        files.push(path);
    }
    files.sort();
    Ok(files)
}

/// Cast the known columns to their schema type and add the missing ones as nulls,
/// so that files written by different harness versions concatenate cleanly.
fn normalize(df: DataFrame) -> PolarsResult<DataFrame> {
    let height = df.height();
    let schema = expected_schema();
    let known: BTreeSet<&str> = schema.iter().map(|(n, _)| *n).collect();
    let mut cols: Vec<Column> = Vec::with_capacity(schema.len() + df.width());
    for (name, dtype) in &schema {
        match df.column(name) {
            Ok(c) if c.dtype() == dtype => cols.push(c.clone()),
            Ok(c) => cols.push(c.cast(dtype)?),
            Err(_) => cols.push(Column::full_null((*name).into(), height, dtype)),
        }
    }
    // Columns this crate does not know: keep them, after the known ones.
    for c in df.columns() {
        if !known.contains(c.name().as_str()) {
            cols.push(c.clone());
        }
    }
    DataFrame::new(height, cols)
}

/// Columns outside the schema that have different types in different files
/// are cast to strings so the diagonal concatenation cannot fail on them.
fn unify_extra_columns(frames: Vec<DataFrame>) -> PolarsResult<Vec<DataFrame>> {
    let known: BTreeSet<&str> = expected_schema().iter().map(|(n, _)| *n).collect();
    let mut types: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for df in &frames {
        for c in df.columns() {
            if !known.contains(c.name().as_str()) && !matches!(c.dtype(), DataType::Null) {
                types
                    .entry(c.name().to_string())
                    .or_default()
                    .insert(format!("{:?}", c.dtype()));
            }
        }
    }
    let conflicting: BTreeSet<String> = types
        .into_iter()
        .filter(|(_, t)| t.len() > 1)
        .map(|(n, _)| n)
        .collect();
    frames
        .into_iter()
        .map(|df| {
            if conflicting.is_empty() {
                return Ok(df);
            }
            let height = df.height();
            let cols = df
                .columns()
                .iter()
                .map(|c| {
                    if conflicting.contains(c.name().as_str()) {
                        c.cast(&DataType::String)
                    } else {
                        Ok(c.clone())
                    }
                })
                .collect::<PolarsResult<Vec<_>>>()?;
            DataFrame::new(height, cols)
        })
        .collect()
}

/// The cells a report shows.
pub(crate) struct Loaded {
    /// Their rows.
    pub frame: DataFrame,
    /// Cell files left out because the experiment, as last run, no longer has them.
    pub stale_files: usize,
    /// Cell files that could not be read (left out, with the reason).
    pub unreadable: Vec<(PathBuf, String)>,
}

/// The cell ids of [`crate::CURRENT_CELLS`], when the runner wrote the file.
fn current_cells(results_dir: &Path) -> Result<Option<BTreeSet<String>>, ReportError> {
    let path = results_dir.join(crate::CURRENT_CELLS);
    match fs::read_to_string(&path) {
        Ok(text) => Ok(Some(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect(),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ReportError::Io { path, source }),
    }
}

/// Load and concatenate the cell files of the experiment as last run; also returns
/// how many files were read.
pub(crate) fn load(results_dir: &Path) -> Result<(Loaded, usize), ReportError> {
    let mut files = cell_files(results_dir)?;
    let mut stale_files = 0;
    if let Some(current) = current_cells(results_dir)? {
        let before = files.len();
        files.retain(|f| {
            f.file_stem()
                .is_some_and(|s| current.contains(s.to_string_lossy().as_ref()))
        });
        stale_files = before - files.len();
    }
    if files.is_empty() {
        return Err(ReportError::NoResults {
            dir: results_dir.to_path_buf(),
        });
    }
    let mut frames = Vec::with_capacity(files.len());
    let mut unreadable = Vec::new();
    let mut first_error = None;
    for path in &files {
        // One damaged file must not cost the report of every other cell.
        match read_cell(path) {
            Ok(df) => frames.push(df),
            Err(e) => {
                unreadable.push((path.clone(), e.to_string()));
                first_error.get_or_insert(e);
            }
        }
    }
    if frames.is_empty() {
        if let Some(e) = first_error {
            return Err(e);
        }
    }
    let table_err = |source| ReportError::Table {
        path: results_dir.to_path_buf(),
        source,
    };
    let frames = unify_extra_columns(frames).map_err(table_err)?;
    let frame = polars::functions::concat_df_diagonal(&frames).map_err(table_err)?;
    let read = files.len() - unreadable.len();
    Ok((
        Loaded {
            frame,
            stale_files,
            unreadable,
        },
        read,
    ))
}

/// One cell file, normalized to the row schema.
fn read_cell(path: &Path) -> Result<DataFrame, ReportError> {
    let file = fs::File::open(path).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let parquet_err = |source| ReportError::Parquet {
        path: path.to_path_buf(),
        source,
    };
    let df = ParquetReader::new(file).finish().map_err(parquet_err)?;
    normalize(df).map_err(parquet_err)
}

/// Rows with `status == "ok"` (`ok == true`) or all others (`ok == false`,
/// including a missing status), in report order: model, dataset, the reference first,
/// method, compression ratio, then params, candidate and seed for stability.
pub(crate) fn select_sorted(df: &DataFrame, ok: bool, reference: &str) -> PolarsResult<DataFrame> {
    let is_ok = col("status")
        .fill_null(lit(""))
        .eq(lit(crate::schema::Status::Ok.as_str()));
    let pred = if ok { is_ok } else { is_ok.not() };
    let not_fp32 = col("method").fill_null(lit("")).neq(lit(reference));
    df.clone()
        .lazy()
        .filter(pred)
        .sort_by_exprs(
            [
                col("model"),
                col("dataset"),
                not_fp32,
                col("method"),
                col("compression_ratio"),
                col("params_json"),
                col("candidate"),
                col("seed"),
            ],
            SortMultipleOptions::default()
                .with_nulls_last(true)
                .with_maintain_order(true),
        )
        .collect()
}

pub(crate) fn str_col(df: &DataFrame, name: &str) -> PolarsResult<Vec<Option<String>>> {
    Ok(df
        .column(name)?
        .str()?
        .iter()
        .map(|v| v.map(str::to_string))
        .collect())
}

pub(crate) fn f64_col(df: &DataFrame, name: &str) -> PolarsResult<Vec<Option<f64>>> {
    Ok(df.column(name)?.f64()?.iter().collect())
}

pub(crate) fn i64_col(df: &DataFrame, name: &str) -> PolarsResult<Vec<Option<i64>>> {
    Ok(df.column(name)?.i64()?.iter().collect())
}

/// A row of the (sorted, normalized) table with its section key.
pub(crate) struct KeyedRow {
    pub model: String,
    pub dataset: String,
    pub eval_split: Option<String>,
    pub eval_images: Option<i64>,
    pub baseline: Option<f64>,
    pub row: Row,
}

fn or_unknown(v: Option<String>) -> String {
    match v {
        Some(s) if !s.is_empty() => s,
        _ => "unknown".to_string(),
    }
}

/// Extract the rows of a normalized frame for rendering.
/// The candidate as shown: its label, with the harness's index-coding post-stage in
/// brackets when the row is one (`k16 [huffman-tensor]`).
pub(crate) fn candidate_label(candidate: Option<&str>, coding: Option<&str>) -> String {
    let label = candidate.filter(|c| !c.is_empty()).unwrap_or("default");
    match coding {
        Some(c) if c != "method" => format!("{label} [{c}]"),
        _ => label.to_string(),
    }
}

pub(crate) fn rows(df: &DataFrame) -> PolarsResult<Vec<KeyedRow>> {
    let model = str_col(df, "model")?;
    let dataset = str_col(df, "dataset")?;
    let split = str_col(df, "eval_split")?;
    let images = i64_col(df, "eval_images")?;
    let method = str_col(df, "method")?;
    let params = str_col(df, "params_json")?;
    // The runner's `params_label` holds only what the experiment set explicitly; older
    // files lack it and fall back to the full parameters.
    let label = str_col(df, "params_label")?;
    let candidate = str_col(df, "candidate")?;
    let coding = str_col(df, "index_coding")?;
    let seed = i64_col(df, "seed")?;
    let top1 = f64_col(df, "top1")?;
    let baseline = f64_col(df, "top1_baseline")?;
    let delta = f64_col(df, "top1_delta_pp")?;
    let ratio = f64_col(df, "compression_ratio")?;
    let bytes = i64_col(df, "artifact_bytes")?;
    let lat = f64_col(df, "latency_ms_b1_median")?;
    let lat_lo = f64_col(df, "latency_ms_b1_ci_low")?;
    let lat_hi = f64_col(df, "latency_ms_b1_ci_high")?;
    let thr = f64_col(df, "throughput_img_s")?;
    let thr_bf16 = f64_col(df, "throughput_img_s_bf16")?;
    let thr_f16 = f64_col(df, "throughput_img_s_f16")?;
    let valid: Vec<Option<bool>> = df.column("timing_valid")?.bool()?.iter().collect();
    let reasons = str_col(df, "timing_invalid_reasons")?;
    let error = str_col(df, "error")?;
    let mut out = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        out.push(KeyedRow {
            model: or_unknown(model[i].clone()),
            dataset: or_unknown(dataset[i].clone()),
            eval_split: split[i].clone(),
            eval_images: images[i],
            baseline: baseline[i],
            row: Row {
                method: or_unknown(method[i].clone()),
                params: render_params(
                    label[i]
                        .as_deref()
                        .filter(|s| !s.is_empty())
                        .or(params[i].as_deref()),
                ),
                candidate: candidate_label(candidate[i].as_deref(), coding[i].as_deref()),
                seed: seed[i],
                top1: top1[i],
                delta_pp: delta[i],
                ratio: ratio[i],
                artifact_bytes: bytes[i],
                latency_b1: lat[i].map(|m| (m, lat_lo[i], lat_hi[i])),
                throughput: thr[i],
                throughput_bf16: thr_bf16[i],
                throughput_f16: thr_f16[i],
                timing_valid: valid[i],
                timing_reasons: reasons[i].clone(),
                error: error[i].clone().filter(|e| !e.is_empty()),
            },
        });
    }
    Ok(out)
}

/// Group ok and failed rows into one section per (model, dataset), sorted by name.
pub(crate) fn sections(ok: Vec<KeyedRow>, failed: Vec<KeyedRow>) -> Vec<Section> {
    let mut map: BTreeMap<(String, String), Section> = BTreeMap::new();
    for (is_ok, rows) in [(true, ok), (false, failed)] {
        for k in rows {
            let s = map
                .entry((k.model.clone(), k.dataset.clone()))
                .or_insert_with(|| Section {
                    model: k.model.clone(),
                    dataset: k.dataset.clone(),
                    eval_splits: Vec::new(),
                    eval_images: Vec::new(),
                    baseline_top1: None,
                    ok: Vec::new(),
                    failed: Vec::new(),
                });
            if let Some(sp) = k.eval_split.filter(|s| !s.is_empty()) {
                if !s.eval_splits.contains(&sp) {
                    s.eval_splits.push(sp);
                }
            }
            if let Some(n) = k.eval_images {
                if !s.eval_images.contains(&n) {
                    s.eval_images.push(n);
                }
            }
            if s.baseline_top1.is_none() {
                s.baseline_top1 = k.baseline.filter(|b| b.is_finite());
            }
            if is_ok {
                s.ok.push(k.row);
            } else {
                s.failed.push(k.row);
            }
        }
    }
    map.into_values()
        .map(|mut s| {
            s.eval_splits.sort();
            s.eval_images.sort_unstable();
            s
        })
        .collect()
}

/// The tidy CSV frame: the columns shown in the tables, then the identity and
/// measurement columns of [`IDENTITY_COLUMNS`], for all ok rows.
pub(crate) fn tidy(ok_sorted: &DataFrame, ok_rows: &[KeyedRow]) -> PolarsResult<DataFrame> {
    let params: Vec<String> = ok_rows.iter().map(|k| k.row.params.clone()).collect();
    let candidate: Vec<String> = ok_rows.iter().map(|k| k.row.candidate.clone()).collect();
    let model: Vec<String> = ok_rows.iter().map(|k| k.model.clone()).collect();
    let dataset: Vec<String> = ok_rows.iter().map(|k| k.dataset.clone()).collect();
    let method: Vec<String> = ok_rows.iter().map(|k| k.row.method.clone()).collect();
    let height = ok_sorted.height();
    DataFrame::new(
        height,
        vec![
            Column::new("model".into(), model),
            Column::new("dataset".into(), dataset),
            Column::new("method".into(), method),
            Column::new("params".into(), params),
            Column::new("candidate".into(), candidate),
            ok_sorted.column("top1")?.clone(),
            ok_sorted.column("top1_delta_pp")?.clone(),
            ok_sorted.column("compression_ratio")?.clone(),
            ok_sorted.column("artifact_bytes")?.clone(),
        ]
        .into_iter()
        .chain(
            IDENTITY_COLUMNS
                .iter()
                .map(|c| ok_sorted.column(c).cloned())
                .collect::<PolarsResult<Vec<_>>>()?,
        )
        .collect(),
    )
}

/// Columns the CSV carries after the table's, so that a row can be traced to its cell,
/// split, seed and artifact and a table rebuilt from the CSV alone.
const IDENTITY_COLUMNS: &[&str] = &[
    "eval_split",
    "eval_images",
    "seed",
    "index_coding",
    "chosen",
    "params_json",
    "search_dataset",
    "search_images",
    "search_seed",
    "control_cell_id",
    "top1_correct",
    "top1_baseline",
    "top1_delta_ci_low_pp",
    "top1_delta_ci_high_pp",
    "paired_gain",
    "paired_loss",
    "mcnemar_p",
    "top1_search",
    "top1_search_baseline",
    "bits_baseline",
    "bits_compressed",
    "model_bytes_fp32",
    "search_evaluations",
    "compress_s",
    "artifact_sha256",
    "cell_id",
];
