//! Small file helpers shared by the harness: the one atomic writer and file naming.

use crate::error::{CoreError, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` so that a reader (or a crash) never sees a partial file:
/// write a temporary file in the same directory, fsync it, rename it over `path`.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    atomic_write_with(path, false, |tmp| {
        let mut f = std::fs::File::create(tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })
}

/// Like [`atomic_write`], for writers that create the file themselves: `write` gets
/// the temporary path and must leave the complete content there (synced). With
/// `keep_ext` the temporary keeps `path`'s extension last, for writers that pick the
/// format from it (`.fig.tmp-42.png`). On any error the temporary is removed and
/// `path` is untouched; on success the directory entry is synced too.
///
/// # Errors
/// [`CoreError::Io`] naming the file.
pub fn atomic_write_with<E: std::fmt::Display>(
    path: &Path,
    keep_ext: bool,
    write: impl FnOnce(&Path) -> std::result::Result<(), E>,
) -> Result<()> {
    let io = |source| CoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(d) = dir {
        std::fs::create_dir_all(d).map_err(io)?;
    }
    let tmp = temp_sibling(path, keep_ext);
    if let Err(e) = write(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(std::io::Error::other(e.to_string())));
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    if let Some(d) = dir.and_then(|d| std::fs::File::open(d).ok()) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// A hidden temporary sibling of `path`, unique to this process: `.NAME.tmp-PID`, or
/// `.STEM.tmp-PID.EXT` with `keep_ext`. [`is_temporary`] recognises both.
pub fn temp_sibling(path: &Path, keep_ext: bool) -> PathBuf {
    let pid = std::process::id();
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".to_string());
    let name = match (keep_ext, path.extension(), path.file_stem()) {
        (true, Some(ext), Some(stem)) => format!(
            ".{}.tmp-{pid}.{}",
            stem.to_string_lossy(),
            ext.to_string_lossy()
        ),
        _ => format!(".{file}.tmp-{pid}"),
    };
    path.with_file_name(name)
}

/// Whether a file name is a temporary left by an interrupted [`atomic_write_with`]
/// (or by the older `.NAME.tmp` convention).
pub fn is_temporary(file_name: &str) -> bool {
    file_name.starts_with('.') && (file_name.ends_with(".tmp") || file_name.contains(".tmp-"))
}

/// A file-name-safe identifier: ASCII alphanumerics, `-`, `.` and `_`; others become
/// `_`, leading and trailing dots are dropped, and an empty result is `_` (how models,
/// datasets and candidates are named in result and report files).
pub fn sanitize_name(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let out = out.trim_matches('.');
    if out.is_empty() {
        "_".to_string()
    } else {
        out.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_hidden_siblings_and_recognised() {
        let p = Path::new("out").join("fig_a_b.png");
        let t = temp_sibling(&p, true);
        assert_eq!(t.parent(), p.parent());
        let name = t.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with(".fig_a_b.tmp-") && name.ends_with(".png"),
            "{name}"
        );
        assert!(is_temporary(&name));
        let name = temp_sibling(&p, false)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(name.starts_with(".fig_a_b.png.tmp-"), "{name}");
        assert!(is_temporary(&name) && is_temporary(".cell.parquet.tmp"));
        assert!(!is_temporary("cell.parquet"));
    }

    #[test]
    fn atomic_write_replaces_content_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        atomic_write(&p, b"one").unwrap();
        atomic_write(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let failed = atomic_write_with(&p, false, |_| Err("disk on fire"));
        assert!(failed.unwrap_err().to_string().contains("disk on fire"));
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn sanitize_keeps_safe_characters_only() {
        assert_eq!(sanitize_name("resnet18"), "resnet18");
        assert_eq!(sanitize_name("ViT-B/16 (in1k)"), "ViT-B_16__in1k_");
        assert_eq!(sanitize_name(".."), "_");
        assert_eq!(sanitize_name(""), "_");
        assert_eq!(sanitize_name(".hidden."), "hidden");
    }
}
