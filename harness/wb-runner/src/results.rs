//! Result rows (the schema of the results tables) and their storage: one Parquet file per
//! cell under `results/<experiment>/cells/`, written atomically, never overwritten.

use anyhow::{Context as _, Result};
use polars::prelude::*;
use std::path::{Path, PathBuf};

pub use wb_report::schema::{Row, Status};
pub use wb_report::FP32_REFERENCE;

/// One candidate's predictions on the reported images of a cell.
pub struct Predictions {
    /// Candidate label.
    pub candidate: String,
    /// Top-1 class per image, in the order of `images`.
    pub classes: Vec<u16>,
}

/// Writes a cell's predictions (`images`: dataset indices of the reported images,
/// `labels`: theirs) as one long table `candidate, image, label, pred`, atomically.
pub fn write_predictions(
    path: &Path,
    images: &[usize],
    labels: &[u8],
    preds: &[Predictions],
) -> Result<()> {
    let n = images.len();
    let total = n * preds.len();
    let mut cand = Vec::with_capacity(total);
    let mut image = Vec::with_capacity(total);
    let mut label = Vec::with_capacity(total);
    let mut pred = Vec::with_capacity(total);
    for p in preds {
        anyhow::ensure!(
            p.classes.len() == n,
            "candidate `{}` has {} predictions for {n} images",
            p.candidate,
            p.classes.len()
        );
        cand.extend(std::iter::repeat_n(p.candidate.as_str(), n));
        image.extend(images.iter().map(|&i| i as u32));
        label.extend(labels.iter().map(|&l| u32::from(l)));
        pred.extend(p.classes.iter().map(|&c| u32::from(c)));
    }
    let mut df = DataFrame::new(
        total,
        vec![
            Column::new("candidate".into(), cand),
            Column::new("image".into(), image),
            Column::new("label".into(), label),
            Column::new("pred".into(), pred),
        ],
    )?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    write_parquet_atomic(&mut df, path)
}

/// The rows as a Polars frame with the schema documented in the README.
pub fn to_frame(rows: &[Row]) -> Result<DataFrame> {
    Ok(wb_report::schema::to_frame(rows)?)
}

/// Where an experiment's results live.
#[derive(Debug, Clone)]
pub struct ResultsDir {
    /// `results/<experiment>`.
    pub root: PathBuf,
}

impl ResultsDir {
    /// `results_root/<name>`.
    pub fn new(results_root: &Path, name: &str) -> Self {
        Self {
            root: results_root.join(name),
        }
    }
    /// `cells/`: one Parquet file per finished cell.
    pub fn cells(&self) -> PathBuf {
        self.root.join("cells")
    }
    /// The file of one cell.
    pub fn cell_file(&self, cell_id: &str) -> PathBuf {
        self.cells().join(format!("{cell_id}.parquet"))
    }
    /// `predictions/<cell_id>.parquet`: every candidate's top-1 class per reported image
    /// (and FP32's, as candidate [`FP32_REFERENCE`]), the raw data of paired tests.
    pub fn predictions(&self, cell_id: &str) -> PathBuf {
        self.root
            .join("predictions")
            .join(format!("{cell_id}.parquet"))
    }
    /// `artifacts/<cell_id>/`: the container files of a cell.
    pub fn artifacts(&self, cell_id: &str) -> PathBuf {
        self.root.join("artifacts").join(cell_id)
    }

    /// Whether the cell has a complete result file.
    pub fn is_done(&self, cell_id: &str) -> bool {
        self.cell_file(cell_id).is_file()
    }

    /// Whether the finished cell has at least one `failed` row; an error when its file
    /// cannot be read back as a results table (truncated, empty, not Parquet, or without
    /// a `status` column).
    pub fn has_failed_rows(&self, cell_id: &str) -> Result<bool> {
        let p = self.cell_file(cell_id);
        let f = std::fs::File::open(&p).with_context(|| format!("opening {}", p.display()))?;
        let df = ParquetReader::new(f)
            .finish()
            .map_err(anyhow::Error::from)
            .with_context(|| format!("reading {}", p.display()))?;
        let status = df.column("status").map_err(anyhow::Error::from)?;
        let failed = status
            .str()
            .map_err(anyhow::Error::from)?
            .iter()
            .any(|s| s != Some("ok"));
        Ok(failed)
    }

    /// Whether the cell's result file was written before `t` (by an earlier run, not
    /// by a worker of this one); unknown times count as earlier.
    pub fn finished_before(&self, cell_id: &str, t: std::time::SystemTime) -> bool {
        std::fs::metadata(self.cell_file(cell_id))
            .and_then(|m| m.modified())
            .map_or(true, |m| m < t)
    }

    /// Removes temporary files a killed run left behind, in every results folder and every
    /// cell's artifact folder (they hold no finished result).
    ///
    /// `owns` says, from a temporary file's name (or, for container files, the name of
    /// the cell's artifact folder), whether this run may remove it: a shard removes only
    /// its own cells' files.
    pub fn clean_partial(&self, owns: &dyn Fn(&str) -> bool) -> Result<usize> {
        let dirs = vec![
            self.cells(),
            self.root.join("samples"),
            self.root.join("layers"),
            self.root.join("search"),
            self.root.join("predictions"),
        ];
        let mut dirs: Vec<(PathBuf, Option<String>)> =
            dirs.into_iter().map(|d| (d, None)).collect();
        // Container files are written into one folder per cell, named by the cell.
        if let Ok(rd) = std::fs::read_dir(self.root.join("artifacts")) {
            dirs.extend(
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .map(|p| {
                        let cell = p.file_name().map(|n| n.to_string_lossy().into_owned());
                        (p, cell)
                    }),
            );
        }
        let mut n = 0;
        for (dir, cell) in dirs {
            if cell.as_deref().is_some_and(|c| !owns(c)) {
                continue;
            }
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if wb_core::io::is_temporary(&name) && (cell.is_some() || owns(&name)) {
                    std::fs::remove_file(e.path()).with_context(|| {
                        format!("removing stale temporary file {}", e.path().display())
                    })?;
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    /// Moves an existing result of `cell_id` (and its artifacts) into
    /// `superseded/<stamp>/` so that `--force` never destroys a finished result.
    pub fn supersede(&self, cell_id: &str, stamp: &str) -> Result<()> {
        self.move_aside(cell_id, "superseded", stamp)
    }

    /// Moves every file of the cell (its row file, artifacts and side tables) to
    /// `<folder>/<stamp>/`, keeping them.
    pub fn move_aside(&self, cell_id: &str, folder: &str, stamp: &str) -> Result<()> {
        let dest = self.root.join(folder).join(stamp);
        let mut moves = vec![
            (self.cell_file(cell_id), "cells"),
            (self.artifacts(cell_id), "artifacts"),
            (self.predictions(cell_id), "predictions"),
        ];
        // Per-candidate side tables are named `<cell_id>__<candidate>.parquet`.
        for sub in ["samples", "layers", "search"] {
            if let Ok(rd) = std::fs::read_dir(self.root.join(sub)) {
                let prefix = format!("{cell_id}__");
                for e in rd.flatten() {
                    if e.file_name().to_string_lossy().starts_with(&prefix) {
                        moves.push((e.path(), sub));
                    }
                }
            }
        }
        for (src, sub) in moves {
            if src.exists() {
                let d = dest.join(sub);
                std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
                let target = d.join(src.file_name().expect("cell paths have file names"));
                std::fs::rename(&src, &target)
                    .with_context(|| format!("moving {} to {}", src.display(), target.display()))?;
            }
        }
        Ok(())
    }
}

/// Writes `df` to `path` atomically: a hidden temporary file in the same directory,
/// fsync, then rename — a reader (or a resumed run) sees the whole file or none.
pub fn write_parquet_atomic(df: &mut DataFrame, path: &Path) -> Result<()> {
    wb_core::io::atomic_write_with(path, false, |tmp| -> Result<()> {
        let f = std::fs::File::create(tmp)?;
        ParquetWriter::new(&f).finish(df)?;
        f.sync_all()?;
        Ok(())
    })
    .with_context(|| format!("writing {}", path.display()))
}

/// Writes `df` to `path` only if no file is there: the complete file appears at once
/// (written beside it, then hard-linked, which fails when `path` exists, also on NFS),
/// so of two workers that finished the same cell exactly one publishes. `Ok(false)`
/// when `path` already existed; it is left untouched.
pub fn write_parquet_new(df: &mut DataFrame, path: &Path) -> Result<bool> {
    let tmp = wb_core::io::temp_sibling(path, false);
    let written = (|| -> Result<bool> {
        let f = std::fs::File::create(&tmp)?;
        ParquetWriter::new(&f).finish(df)?;
        f.sync_all()?;
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e.into()),
        }
    })();
    let _ = std::fs::remove_file(&tmp);
    if let Some(d) = path.parent().and_then(|d| std::fs::File::open(d).ok()) {
        let _ = d.sync_all();
    }
    written.with_context(|| format!("writing {}", path.display()))
}

/// Reads every finished cell of an experiment into one frame (diagonal concat).
pub fn read_all(dir: &ResultsDir) -> Result<DataFrame> {
    let mut frames = Vec::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir.cells())
        .with_context(|| format!("reading {}", dir.cells().display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension().and_then(|x| x.to_str()) == Some("parquet")
                && !p
                    .file_name()
                    .and_then(|s| s.to_str())
                    .unwrap_or(".")
                    .starts_with('.')
        })
        .collect();
    paths.sort();
    for p in paths {
        let f = std::fs::File::open(&p).with_context(|| format!("opening {}", p.display()))?;
        frames.push(
            ParquetReader::new(f)
                .finish()
                .map_err(anyhow::Error::from)
                .with_context(|| format!("reading {}", p.display()))?,
        );
    }
    anyhow::ensure!(
        !frames.is_empty(),
        "no results in {}",
        dir.cells().display()
    );
    Ok(polars::functions::concat_df_diagonal(&frames)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_files_are_removed_everywhere_finished_files_kept() {
        let root = tempfile::tempdir().unwrap();
        let dir = ResultsDir::new(root.path(), "exp");
        let art = dir.artifacts("cell1");
        std::fs::create_dir_all(&art).unwrap();
        std::fs::create_dir_all(dir.cells()).unwrap();
        let leftovers = [
            art.join(".default.wbc.tmp-4242"),
            dir.cells().join(".cell1.parquet.tmp-7"),
        ];
        for p in &leftovers {
            std::fs::write(p, b"partial").unwrap();
        }
        let kept = art.join("default.wbc");
        std::fs::write(&kept, b"finished").unwrap();
        // A shard that does not own cell1 leaves its files alone.
        assert_eq!(dir.clean_partial(&|n| n.starts_with("cell2")).unwrap(), 0);
        assert!(leftovers.iter().all(|p| p.exists()));
        assert_eq!(dir.clean_partial(&|_| true).unwrap(), 2);
        assert!(leftovers.iter().all(|p| !p.exists()));
        assert!(kept.is_file());
    }

    #[test]
    fn an_exclusive_write_publishes_once_and_never_replaces() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("cell.parquet");
        let mut a = df!("x" => [1u32]).unwrap();
        let mut b = df!("x" => [2u32, 3]).unwrap();
        assert!(write_parquet_new(&mut a, &path).unwrap());
        assert!(!write_parquet_new(&mut b, &path).unwrap());
        let back = ParquetReader::new(std::fs::File::open(&path).unwrap())
            .finish()
            .unwrap();
        assert_eq!(back.height(), 1);
        // No temporary is left beside it.
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 1);
    }
}
