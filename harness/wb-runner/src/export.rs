//! `weightbench export`: a compressed model out of the harness, in forms other tools
//! load, checked against the result row it came from.
//!
//! From one candidate of a finished cell it writes into the output folder
//!
//! - `model.pt`: the model's TorchScript with the decoded weights installed (buffers
//!   as in the original model) — `torch.jit.load("model.pt")`;
//! - `weights.safetensors`: the decoded parameters by name —
//!   `safetensors.torch.load_file(...)`, then `model.load_state_dict(state, strict=False)`;
//! - `<candidate>.wbc`: the compressed container itself.
//!
//! Then it reloads `model.pt` from disk and checks that its parameters are the decoded
//! weights bit for bit, that its logits equal those of the in-memory model, and that its
//! top-1 on the cell's reported images is the row's `top1_correct` exactly.

use crate::experiment::{Cell, EvalSplit, Experiment};
use crate::results::ResultsDir;
use anyhow::{anyhow, bail, Context, Result};
use polars::prelude::{DataFrame, DataType, ParquetReader, SerReader};
use std::path::{Path, PathBuf};
use wb_core::{container, WeightSet};
use wb_torch::{Batches, Split, TorchEvaluator, TorchModel};

/// What to export and where to look for it.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    /// `results/` (the experiment's folder is `results/<name>/`).
    pub results_root: PathBuf,
    /// The cell.
    pub cell_id: String,
    /// The artifact's stem (`default`, `bins=4`, `default.huffman-tensor` …); default:
    /// the method's own choice (the row marked `chosen`), else the cell's only one.
    pub candidate: Option<String>,
    /// Output folder; default `results/<name>/exports/<cell>/<candidate>/`.
    pub out_dir: Option<PathBuf>,
    /// Model card folders, in search order.
    pub models_dirs: Vec<PathBuf>,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Device of the check.
    pub device: wb_torch::Device,
}

/// What was written and what the check found.
#[derive(Debug, Clone)]
pub struct ExportReport {
    /// The files written.
    pub files: Vec<PathBuf>,
    /// The candidate's stem.
    pub candidate: String,
    /// Top-1 hits of the reloaded `model.pt` on the cell's reported images.
    pub top1_correct: usize,
    /// Reported images.
    pub images: usize,
}

/// The row of `stem` in the cell's result file: its candidate and index coding.
struct RowFacts {
    top1_correct: u64,
    eval_images: u64,
}

fn col_strs(df: &DataFrame, name: &str) -> Result<Vec<String>> {
    Ok(df
        .column(name)?
        .str()?
        .iter()
        .map(|s| s.unwrap_or("").to_string())
        .collect())
}

/// The stem of every row (`candidate`, or `candidate.coding` for post-coded rows), its
/// `chosen` flag, and its facts.
fn rows(dir: &ResultsDir, cell_id: &str) -> Result<Vec<(String, bool, RowFacts)>> {
    let p = dir.cell_file(cell_id);
    let f = std::fs::File::open(&p).with_context(|| format!("opening {}", p.display()))?;
    let df = ParquetReader::new(f)
        .finish()
        .map_err(anyhow::Error::from)
        .with_context(|| format!("reading {}", p.display()))?;
    let candidate = col_strs(&df, "candidate")?;
    let coding = col_strs(&df, "index_coding")?;
    let status = col_strs(&df, "status")?;
    let chosen = df.column("chosen")?.bool()?.clone();
    let top1 = df.column("top1_correct")?.cast(&DataType::UInt64)?;
    let top1 = top1.u64()?.clone();
    let images = df.column("eval_images")?.cast(&DataType::UInt64)?;
    let images = images.u64()?.clone();
    let mut out = Vec::new();
    for i in 0..df.height() {
        if status[i] != "ok" {
            continue;
        }
        let stem = if coding[i] == "method" || coding[i].is_empty() {
            candidate[i].clone()
        } else {
            format!("{}.{}", candidate[i], coding[i])
        };
        let facts = RowFacts {
            top1_correct: top1
                .get(i)
                .ok_or_else(|| anyhow!("row {i}: no top1_correct"))?,
            eval_images: images
                .get(i)
                .ok_or_else(|| anyhow!("row {i}: no eval_images"))?,
        };
        out.push((stem, chosen.get(i).unwrap_or(false), facts));
    }
    Ok(out)
}

/// The reported images of `cell`, as the run drew them.
fn reported_images(exp: &Experiment, cell: &Cell, data_dir: &Path) -> Result<wb_torch::Images> {
    let images = wb_torch::dataset(&cell.dataset)?.load(data_dir)?;
    let split = match exp.eval_split {
        EvalSplit::Full => Split::Full,
        EvalSplit::Heldout => Split::Heldout {
            images: exp.search_images,
            seed: cell.split_seed(exp),
        },
    };
    let idx = split.indices(&images.labels).map_err(|e| anyhow!("{e}"))?;
    Ok(images.subset(&idx))
}

/// The decoded parameters as a safetensors file (f32, little-endian, by name).
fn write_safetensors(weights: &WeightSet, path: &Path) -> Result<()> {
    let bytes: Vec<Vec<u8>> = weights
        .tensors
        .iter()
        .map(|t| t.data.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = weights
        .tensors
        .iter()
        .zip(&bytes)
        .map(|(t, b)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, t.shape.clone(), b)
                .map(|v| (t.name.clone(), v))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("safetensors: {e}"))?;
    let data = safetensors::serialize(views, None).map_err(|e| anyhow!("safetensors: {e}"))?;
    wb_core::io::atomic_write(path, &data)?;
    Ok(())
}

/// Picks the candidate: the one asked for, else the method's choice, else the only one.
fn pick<'a>(
    rows: &'a [(String, bool, RowFacts)],
    wanted: Option<&str>,
) -> Result<&'a (String, bool, RowFacts)> {
    let stems: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    let found = match wanted {
        Some(w) => rows.iter().find(|r| r.0 == w),
        None => rows
            .iter()
            .find(|r| r.1 && !r.0.contains('.'))
            .or_else(|| (rows.len() == 1).then(|| &rows[0])),
    };
    found.ok_or_else(|| {
        anyhow!(
            "{}; the cell's candidates: {} (choose with --candidate)",
            wanted.map_or_else(
                || "the cell has no single chosen candidate".to_string(),
                |w| format!("no candidate `{w}`")
            ),
            stems.join(", ")
        )
    })
}

/// Exports one candidate of a finished cell of `exp` and checks it (module docs).
pub fn export(exp: &Experiment, req: &ExportRequest) -> Result<ExportReport> {
    let dir = ResultsDir::new(&req.results_root, &exp.name);
    let cell = exp
        .cells
        .iter()
        .find(|c| c.id == req.cell_id)
        .ok_or_else(|| {
            anyhow!(
                "cell `{}` is not in experiment `{}` as it stands (cells are listed by \
             `weightbench check`)",
                req.cell_id,
                exp.name
            )
        })?;
    if !dir.is_done(&cell.id) {
        bail!(
            "cell `{}` has no result yet: run the experiment first",
            cell.id
        );
    }
    let rows = rows(&dir, &cell.id)?;
    let (stem, _, facts) = pick(&rows, req.candidate.as_deref())?;
    let src = dir
        .artifacts(&cell.id)
        .join(format!("{}.wbc", wb_core::io::sanitize_name(stem)));
    let artifact = container::read_file(&src)?;
    let weights = artifact.decode()?;

    let out_dir = req.out_dir.clone().unwrap_or_else(|| {
        dir.root
            .join("exports")
            .join(&cell.id)
            .join(wb_core::io::sanitize_name(stem))
    });
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let card = wb_torch::find_card_in(&req.models_dirs, &cell.model)?;
    let mut model = TorchModel::load(&card, req.device)?;
    model.install(&weights)?;
    let pt = out_dir.join("model.pt");
    model.save_torchscript(&pt)?;
    let st = out_dir.join("weights.safetensors");
    write_safetensors(&weights, &st)?;
    let wbc = out_dir.join(src.file_name().expect("a file"));
    std::fs::copy(&src, &wbc).with_context(|| format!("copying to {}", wbc.display()))?;

    // The check, on the file as written.
    let mut exported_card = card.clone();
    exported_card.file = std::path::absolute(&pt).unwrap_or(pt.clone());
    let mut reloaded = TorchModel::load(&exported_card, req.device)?;
    if !reloaded.weights().bit_identical(&weights) {
        bail!(
            "{}: the saved parameters differ from the decoded weights",
            pt.display()
        );
    }
    let images = reported_images(exp, cell, &req.data_dir)?;
    if images.len() as u64 != facts.eval_images {
        bail!(
            "the cell's reported split has {} images here but {} in its row",
            images.len(),
            facts.eval_images
        );
    }
    let probe = images.subset(&(0..images.len().min(64)).collect::<Vec<_>>());
    if model.logits(&probe, 64)? != reloaded.logits(&probe, 64)? {
        bail!("{}: logits differ from the in-memory model", pt.display());
    }
    let batches = Batches::new(&reloaded, &images, exp.batch_size)?;
    let acc = TorchEvaluator::new(&mut reloaded, &batches).evaluate_installed()?;
    if acc.top1_correct as u64 != facts.top1_correct {
        bail!(
            "{}: top-1 {} of {} images, but the row says {}",
            pt.display(),
            acc.top1_correct,
            acc.total,
            facts.top1_correct
        );
    }
    Ok(ExportReport {
        files: vec![pt, st, wbc],
        candidate: stem.clone(),
        top1_correct: acc.top1_correct,
        images: acc.total,
    })
}
