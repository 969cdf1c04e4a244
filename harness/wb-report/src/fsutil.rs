//! Atomic file writes: write a temporary sibling, then rename over the target.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::ReportError;

/// A hidden temporary sibling of `path`. `keep_ext` keeps the extension last
/// (some writers pick the format from it, e.g. `.fig.tmp-42.png`).
pub(crate) fn temp_sibling(path: &Path, keep_ext: bool) -> PathBuf {
    let pid = std::process::id();
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".to_string());
    let name = match (keep_ext, path.extension(), path.file_stem()) {
        (true, Some(ext), Some(stem)) => {
            format!(
                ".{}.tmp-{pid}.{}",
                stem.to_string_lossy(),
                ext.to_string_lossy()
            )
        }
        _ => format!(".{file}.tmp-{pid}"),
    };
    path.with_file_name(name)
}

/// Move a finished temporary file onto `path` (removing the temporary on error).
pub(crate) fn commit(tmp: &Path, path: &Path) -> Result<(), ReportError> {
    fs::rename(tmp, path).map_err(|source| {
        let _ = fs::remove_file(tmp);
        ReportError::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Write `bytes` to `path` atomically: an interrupted write never leaves a
/// partial file at `path`.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let tmp = temp_sibling(path, false);
    let io_err = |source| ReportError::Io {
        path: tmp.clone(),
        source,
    };
    let res = (|| {
        let mut f = fs::File::create(&tmp).map_err(io_err)?;
        f.write_all(bytes).map_err(io_err)?;
        f.sync_all().map_err(io_err)?;
        Ok(())
    })();
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    commit(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_hidden_siblings() {
        let p = Path::new("out").join("fig_a_b.png");
        let t = temp_sibling(&p, true);
        assert_eq!(t.parent(), p.parent());
        let name = t.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with(".fig_a_b.tmp-") && name.ends_with(".png"),
            "{name}"
        );
        let t = temp_sibling(&p, false);
        let name = t.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with(".fig_a_b.png.tmp-"), "{name}");
    }

    #[test]
    fn atomic_write_replaces_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        // No temporaries left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
