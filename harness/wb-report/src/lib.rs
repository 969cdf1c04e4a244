#![doc = include_str!("../README.md")]

mod compare;
pub mod golden;
pub mod html;
mod load;
mod pareto;
pub mod paths;
mod plot;
mod render;
pub mod schema;
mod views;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use polars::prelude::*;

pub use pareto::pareto_front;
pub use render::{latex_escape, render_params};
pub use wb_core::io::sanitize_name;

/// What to report on and where to write it.
#[derive(Debug, Clone, Default)]
pub struct ReportOptions {
    /// Experiment name (used in titles and for `<name>.csv`).
    pub name: String,
    /// The experiment's results folder, `results/<name>`; only its `cells/`
    /// subfolder is read.
    pub results_dir: PathBuf,
    /// Output folder, `reports/<name>`; created if missing.
    pub out_dir: PathBuf,
    /// The reference method's id (the uncompressed model): listed first in every table
    /// and drawn as a star. The report itself knows no method id.
    pub reference: Option<String>,
    /// The method views: for each method with rows in the results, its own section
    /// after the generic tables.
    pub views: Vec<MethodView>,
}

/// A method's report view, as the registry gives it.
#[derive(Debug, Clone)]
pub struct MethodView {
    /// Method id whose rows trigger the view.
    pub method: String,
    /// Builds the section from every ok row of the experiment.
    pub view: wb_core::ViewFn,
}

impl ReportOptions {
    /// The conventional layout: `results/<name>` → `reports/<name>`, relative
    /// to `root` (usually the repository root).
    pub fn for_experiment(root: &Path, name: &str) -> Self {
        ReportOptions {
            name: name.to_string(),
            results_dir: root.join("results").join(name),
            out_dir: root.join("reports").join(name),
            ..Default::default()
        }
    }
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportSummary {
    /// Every file written, in order: `tables.md`, `tables.tex`, `<name>.csv`,
    /// then `fig_<model>_<dataset>.png` / `.svg` pairs.
    pub files: Vec<PathBuf>,
    /// Number of rows with `status == "ok"`.
    pub rows_ok: usize,
    /// Number of other rows (failed, or without a status).
    pub rows_failed: usize,
}

/// Writes `bytes` to `path` through the harness's one atomic writer.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    wb_core::io::atomic_write(path, bytes).map_err(|e| core_io(path, e))
}

/// A core I/O error as this crate's [`ReportError::Io`].
pub(crate) fn core_io(path: &Path, e: wb_core::CoreError) -> ReportError {
    match e {
        wb_core::CoreError::Io { path, source } => ReportError::Io { path, source },
        other => ReportError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(other.to_string()),
        },
    }
}

/// The file in `results/<experiment>/` where the runner lists the cell ids of the
/// experiment as it was last run, one per line. Cell files not listed there come from an
/// earlier version of the experiment (or of a method's parameters): the report counts
/// them but leaves them out of its tables. Without the file, every cell is shown.
pub const CURRENT_CELLS: &str = "current_cells.txt";

/// The candidate name under which a cell's predictions file holds FP32's predictions on
/// the same images (the reference of every paired test).
pub const FP32_REFERENCE: &str = "fp32-reference";

/// Errors of the report step. Every variant names the file or folder involved.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// `results_dir/cells` is missing or holds no `*.parquet` file.
    #[error("no results in {}: run `weightbench run experiments/{}.toml` first", .dir.display(), experiment_name(.dir))]
    NoResults {
        /// The results folder that was searched.
        dir: PathBuf,
    },
    /// A file-system operation failed.
    #[error("I/O error on {}: {source}", .path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A cell file could not be read as Parquet or has unusable columns.
    #[error("cannot read results file {}: {source}", .path.display())]
    Parquet {
        /// The Parquet file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: PolarsError,
    },
    /// Combining, filtering or sorting the results failed.
    #[error("cannot process the results in {}: {source}", .path.display())]
    Table {
        /// The results folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: PolarsError,
    },
    /// Writing the CSV table failed.
    #[error("cannot write CSV {}: {source}", .path.display())]
    Csv {
        /// The CSV file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: PolarsError,
    },
    /// Drawing a figure failed (e.g. no usable font).
    #[error("cannot draw figure {}: {message}", .path.display())]
    Plot {
        /// The figure file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A results file is readable but not what it should be (e.g. a path timing that
    /// does not parse).
    #[error("{}: {why}", .path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// A golden file is not a golden table.
    #[error("golden file {}: {message}", .path.display())]
    Golden {
        /// The golden file.
        path: PathBuf,
        /// What is wrong, with the line.
        message: String,
    },
}

fn experiment_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "<name>".to_string())
}

/// Read every `results_dir/cells/*.parquet` file (hidden files and other
/// subfolders are ignored; when the runner wrote [`CURRENT_CELLS`], only the cells it
/// lists; unreadable files are left out unless none is readable) and concatenate them
/// diagonally.
///
/// Columns of the runner's row schema are cast to their documented types and
/// added as all-null when a file lacks them, so the result always has the full
/// schema (first, in schema order) plus any extra columns found in some files
/// (null elsewhere). Files are read in name order.
pub fn load_results(results_dir: &Path) -> Result<DataFrame, ReportError> {
    load::load(results_dir).map(|(df, _)| df.frame)
}

/// Make a unique file stem `fig_<model>_<dataset>` (sanitized).
fn figure_stem(used: &mut BTreeSet<String>, model: &str, dataset: &str) -> String {
    let base = format!("fig_{}_{}", sanitize_name(model), sanitize_name(dataset));
    let mut stem = base.clone();
    let mut n = 2;
    while !used.insert(stem.clone()) {
        stem = format!("{base}_{n}");
        n += 1;
    }
    stem
}

/// The notes on cell files the report leaves out: unreadable ones, and stale ones (of an
/// earlier parameter set).
fn left_out_notes(unreadable: &[(PathBuf, String)], stale: usize, name: &str) -> String {
    let mut md = String::new();
    for (path, why) in unreadable {
        md += &format!(
            "\n**Unreadable cell file, left out:** `{}` ({why}). `weightbench run` moves it \
             aside and computes the cell again.\n",
            path.display()
        );
    }
    if stale > 0 {
        md += &format!(
            "\n{stale} further cell file(s) in `results/{}/cells/` are not in the experiment as \
             last run (an earlier parameter set, or a method that has since gained a \
             parameter) and are not shown; they are kept on disk.\n",
            name
        );
    }
    md
}

/// Build the report for one experiment: read `opts.results_dir`, write the
/// tables, the CSV and the figures into `opts.out_dir` (each file atomically).
///
/// Figures are drawn for every model × dataset pair that has at least one ok
/// row with a finite top-1 and a positive compression ratio.
pub fn generate(opts: &ReportOptions) -> Result<ReportSummary, ReportError> {
    let (loaded, n_files) = load::load(&opts.results_dir)?;
    let (df, stale, unreadable) = (loaded.frame, loaded.stale_files, loaded.unreadable);
    let table_err = |source| ReportError::Table {
        path: opts.results_dir.clone(),
        source,
    };
    let reference = opts.reference.as_deref().unwrap_or("");
    let ok_df = load::select_sorted(&df, true, reference).map_err(table_err)?;
    let failed_df = load::select_sorted(&df, false, reference).map_err(table_err)?;
    let ok_rows = load::rows(&ok_df).map_err(table_err)?;
    let failed_rows = load::rows(&failed_df).map_err(table_err)?;
    let (rows_ok, rows_failed) = (ok_rows.len(), failed_rows.len());
    let mut tidy = load::tidy(&ok_df, &ok_rows).map_err(table_err)?;
    let sections = load::sections(ok_rows, failed_rows);

    fs::create_dir_all(&opts.out_dir).map_err(|source| ReportError::Io {
        path: opts.out_dir.clone(),
        source,
    })?;
    let mut files = Vec::new();

    // Method views first: their figures are listed in the Markdown that follows.
    // Method views see the artifacts as their method coded them; post-stage rows
    // appear in the results table.
    let method_coded = ok_df
        .clone()
        .lazy()
        .filter(
            col("index_coding")
                .fill_null(lit("method"))
                .eq(lit("method")),
        )
        .collect()
        .map_err(table_err)?;
    let view_rows = views::view_rows(&method_coded).map_err(table_err)?;
    let mut view_files = Vec::new();
    let view_md = views::render_views(&opts.views, &view_rows, &opts.out_dir, &mut view_files)?;
    let md_path = opts.out_dir.join("tables.md");
    let mut md = render::markdown(&opts.name, rows_ok, rows_failed, n_files, &sections);
    md += &left_out_notes(&unreadable, stale, &opts.name);
    // The cross-method comparison sees every coding: the Huffman and fixed-width
    // variants of a method are ranked side by side.
    let compare_rows = compare::rows(&ok_df).map_err(table_err)?;
    let mut compare_files = Vec::new();
    let compared = compare::render(
        &compare_rows,
        &opts.results_dir,
        &opts.out_dir,
        &mut compare_files,
    )?;
    if let Some(c) = &compared {
        md += &c.markdown;
    }
    let path_timings = paths::load(&opts.results_dir)?;
    let (reference_logs, bad_log_lines) = paths::load_reference_log(&opts.results_dir)?;
    md += &paths::markdown(&path_timings, &reference_logs, bad_log_lines);
    md += &paths::load_table(&ok_df).map_err(table_err)?;
    md += &paths::int8_table(&ok_df).map_err(table_err)?;
    md += &view_md;
    write_atomic(&md_path, md.as_bytes())?;
    files.push(md_path);

    files.extend(view_files);
    files.extend(compare_files);
    if let Some(mut c) = compared {
        let tex = opts.out_dir.join("leaderboard.tex");
        write_atomic(&tex, c.latex.as_bytes())?;
        files.push(tex);
        let path = opts.out_dir.join("leaderboard.csv");
        let mut bytes = Vec::new();
        CsvWriter::new(&mut bytes)
            .include_header(true)
            .finish(&mut c.csv)
            .map_err(|source| ReportError::Csv {
                path: path.clone(),
                source,
            })?;
        write_atomic(&path, &bytes)?;
        files.push(path);
    }

    let tex_path = opts.out_dir.join("tables.tex");
    write_atomic(&tex_path, render::latex(&opts.name, &sections).as_bytes())?;
    files.push(tex_path);

    let csv_path = opts
        .out_dir
        .join(format!("{}.csv", sanitize_name(&opts.name)));
    let mut csv = Vec::new();
    CsvWriter::new(&mut csv)
        .include_header(true)
        .finish(&mut tidy)
        .map_err(|source| ReportError::Csv {
            path: csv_path.clone(),
            source,
        })?;
    write_atomic(&csv_path, &csv)?;
    files.push(csv_path);

    let mut used = BTreeSet::new();
    let mut overview = String::new();
    for s in &sections {
        let Some(fig) = plot::FigureData::from_section(s, reference) else {
            continue;
        };
        let stem = figure_stem(&mut used, &s.model, &s.dataset);
        let png = opts.out_dir.join(format!("{stem}.png"));
        let svg = opts.out_dir.join(format!("{stem}.svg"));
        plot::write_figure(&fig, &png, &svg)?;
        overview += &format!(
            "![{} on {}: top-1 against compression ratio, every candidate]({stem}.png)\n\n",
            s.model, s.dataset
        );
        files.push(png);
        files.push(svg);
    }

    // The same report as a page (with the overview figures the Markdown links only by
    // name), and the index over every experiment beside it.
    if !overview.is_empty() {
        md += &format!("\n## Overview figures\n\n{overview}");
    }
    let (page, _) = html::page(&md, &opts.out_dir, &html::manifests(&opts.results_dir));
    let html_path = opts.out_dir.join("index.html");
    write_atomic(&html_path, page.as_bytes())?;
    files.push(html_path);
    if let Some(reports) = opts.out_dir.parent() {
        let index = reports.join("index.html");
        write_atomic(&index, html::index(reports).as_bytes())?;
        files.push(index);
    }

    Ok(ReportSummary {
        files,
        rows_ok,
        rows_failed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figure_stems_are_unique() {
        let mut used = BTreeSet::new();
        assert_eq!(figure_stem(&mut used, "a/b", "c"), "fig_a_b_c");
        assert_eq!(figure_stem(&mut used, "a b", "c"), "fig_a_b_c_2");
        assert_eq!(figure_stem(&mut used, "a:b", "c"), "fig_a_b_c_3");
    }

    #[test]
    fn no_results_error_names_the_experiment() {
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join("results").join("exp1");
        let err = load_results(&results).unwrap_err();
        assert!(matches!(err, ReportError::NoResults { .. }));
        let msg = err.to_string();
        assert!(
            msg.contains("run `weightbench run experiments/exp1.toml` first"),
            "{msg}"
        );
    }
}
