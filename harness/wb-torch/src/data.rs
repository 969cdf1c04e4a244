//! CIFAR-10 binary records, the dataset registry and fixed, seeded, disjoint splits.
//!
//! The record format is that of the official `cifar-10-batches-bin` files (`test_batch.bin`,
//! `data_batch_*.bin`): 3073 bytes per image — one label byte (0–9), then three 32×32
//! planes R, G, B, row by row — so a user's real CIFAR-10 files work unchanged.

use crate::error::{Result, TorchError};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Bytes of one CIFAR-10 record (label + 3·32·32 pixels).
pub const RECORD_BYTES: usize = 1 + PIXELS;
/// Pixel bytes of one image.
pub const PIXELS: usize = 3 * 32 * 32;
/// Number of CIFAR-10 classes.
pub const CLASSES: usize = 10;

/// Images in memory: labels and CHW uint8 pixels, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    /// One label (0–9) per image.
    pub labels: Vec<u8>,
    /// `len() · 3072` bytes, CHW per image.
    pub pixels: Vec<u8>,
}

impl Images {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// The images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Images {
        let mut labels = Vec::with_capacity(indices.len());
        let mut pixels = Vec::with_capacity(indices.len() * PIXELS);
        for &i in indices {
            labels.push(self.labels[i]);
            pixels.extend_from_slice(&self.pixels[i * PIXELS..(i + 1) * PIXELS]);
        }
        Images { labels, pixels }
    }
}

/// Parses CIFAR-10 binary records from `bytes`; `path` is only used in messages.
pub fn parse_cifar10(bytes: &[u8], path: &Path) -> Result<Images> {
    if bytes.is_empty() || bytes.len() % RECORD_BYTES != 0 {
        return Err(TorchError::Dataset {
            path: path.to_path_buf(),
            message: format!(
                "size {} bytes is not a positive multiple of the {RECORD_BYTES}-byte CIFAR-10 record",
                bytes.len()
            ),
        });
    }
    let n = bytes.len() / RECORD_BYTES;
    let mut labels = Vec::with_capacity(n);
    let mut pixels = Vec::with_capacity(n * PIXELS);
    for (i, rec) in bytes.chunks_exact(RECORD_BYTES).enumerate() {
        if rec[0] as usize >= CLASSES {
            return Err(TorchError::Dataset {
                path: path.to_path_buf(),
                message: format!("record {i}: label {} is not a class 0–9", rec[0]),
            });
        }
        labels.push(rec[0]);
        pixels.extend_from_slice(&rec[1..]);
    }
    Ok(Images { labels, pixels })
}

/// Reads a CIFAR-10 binary file, checking the record count and checksum when given.
pub fn read_cifar10(path: &Path, records: Option<usize>, sha256: Option<&str>) -> Result<Images> {
    let bytes = std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            TorchError::Missing {
                what: "dataset file",
                path: path.to_path_buf(),
                hint: "; set --data-dir or WEIGHTBENCH_DATA to the directory holding cifar10_test/"
                    .into(),
            }
        } else {
            TorchError::Io {
                path: path.to_path_buf(),
                source: e,
            }
        }
    })?;
    if let Some(n) = records {
        if bytes.len() != n * RECORD_BYTES {
            return Err(TorchError::Dataset {
                path: path.to_path_buf(),
                message: format!(
                    "expected {n} records = {} bytes, found {} bytes",
                    n * RECORD_BYTES,
                    bytes.len()
                ),
            });
        }
    }
    if let Some(want) = sha256 {
        let got = wb_core::weights::hex(&Sha256::digest(&bytes));
        if !got.eq_ignore_ascii_case(want) {
            return Err(TorchError::Dataset {
                path: path.to_path_buf(),
                message: format!("sha256 mismatch: expected {want}, found {got}"),
            });
        }
    }
    parse_cifar10(&bytes, path)
}

/// What a dataset may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Reported accuracy (and seeded search subsets of it).
    Eval,
    /// Calibration, gradients and retraining only — never reported accuracy.
    Train,
}

/// A registered dataset.
#[derive(Debug, Clone, Copy)]
pub struct DatasetSpec {
    /// Identifier used in experiments and result rows.
    pub id: &'static str,
    /// File relative to the data directory.
    pub file: &'static str,
    /// Number of records.
    pub records: usize,
    /// sha256 of the file.
    pub sha256: &'static str,
    /// Allowed use.
    pub role: Role,
    /// One line for humans.
    pub description: &'static str,
}

/// The datasets weightbench knows (files described in the data directory's MANIFEST.md).
pub const DATASETS: &[DatasetSpec] = &[
    DatasetSpec {
        id: "cifar10-exact932",
        file: "cifar10_test/test_batch_first932_lossless.bin",
        records: 932,
        sha256: "166784dad3e8e4d5a2f9bb0361ed632fc7b82c1353494880b5d8b57988ece819",
        role: Role::Eval,
        description: "first 932 CIFAR-10 test images, bit-exact",
    },
    DatasetSpec {
        id: "cifar10-jpeg75",
        file: "cifar10_test/test_batch_jpegq75.bin",
        records: 10_000,
        sha256: "0ce179d0c0a5220739d6223197952896644ceabb648dacfdebd7f06789af543f",
        role: Role::Eval,
        description: "all 10,000 CIFAR-10 test images, JPEG quality 75",
    },
    DatasetSpec {
        id: "cifar10-train-jpeg75",
        file: "cifar10_train/train_first25000_jpegq75.bin",
        records: 25_000,
        sha256: "931117d274d9539961d78212610cceb95e97505a091acd2cf519e9188eab34fc",
        role: Role::Train,
        description:
            "first 25,000 CIFAR-10 training images, JPEG quality 75 (calibration/retraining only)",
    },
];

/// Looks up a registered dataset.
pub fn dataset(id: &str) -> Result<&'static DatasetSpec> {
    DATASETS
        .iter()
        .find(|d| d.id == id)
        .ok_or_else(|| TorchError::UnknownDataset {
            id: id.to_string(),
            known: DATASETS.iter().map(|d| d.id).collect::<Vec<_>>().join(", "),
        })
}

impl DatasetSpec {
    /// Path of the file under `data_dir`.
    pub fn path(&self, data_dir: &Path) -> PathBuf {
        data_dir.join(self.file)
    }
    /// Reads and verifies the file (size, labels, checksum).
    pub fn load(&self, data_dir: &Path) -> Result<Images> {
        read_cifar10(&self.path(data_dir), Some(self.records), Some(self.sha256))
    }
}

/// Which images of a dataset an evaluation covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Every image.
    Full,
    /// A fixed, seeded, class-balanced subset of `images` images, for searches.
    Search {
        /// Subset size.
        images: usize,
        /// Selection seed.
        seed: u64,
    },
    /// The complement of `Search { images, seed }`: never seen by a search.
    Heldout {
        /// Size of the search subset it excludes.
        images: usize,
        /// Seed of that subset.
        seed: u64,
    },
}

impl Split {
    /// Short name for result rows (`full`, `search`, `heldout`).
    pub fn name(&self) -> &'static str {
        match self {
            Split::Full => "full",
            Split::Search { .. } => "search",
            Split::Heldout { .. } => "heldout",
        }
    }

    /// Indices of this split into `labels`, sorted ascending.
    pub fn indices(&self, labels: &[u8]) -> Result<Vec<usize>, String> {
        match *self {
            Split::Full => Ok((0..labels.len()).collect()),
            Split::Search { images, seed } => balanced_subset(labels, images, seed),
            Split::Heldout { images, seed } => {
                let s = balanced_subset(labels, images, seed)?;
                let mut taken = vec![false; labels.len()];
                for i in s {
                    taken[i] = true;
                }
                Ok((0..labels.len()).filter(|&i| !taken[i]).collect())
            }
        }
    }
}

/// The splits draw with the core's generator, so they depend only on the seed.
pub(crate) use wb_core::rng::splitmix64;

/// A class-balanced subset of `n` indices chosen by seeded Fisher–Yates per class: ⌊n/10⌋
/// per class, the remainder one each to the lowest classes. Sorted ascending.
pub fn balanced_subset(labels: &[u8], n: usize, seed: u64) -> Result<Vec<usize>, String> {
    if n == 0 || n >= labels.len() {
        return Err(format!(
            "search subset of {n} images must be between 1 and {} (the dataset has {} images)",
            labels.len().saturating_sub(1),
            labels.len()
        ));
    }
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); CLASSES];
    for (i, &l) in labels.iter().enumerate() {
        by_class[l as usize].push(i);
    }
    let mut state = seed ^ 0x5EA7_C0DE;
    let mut out = Vec::with_capacity(n);
    for (c, idx) in by_class.iter_mut().enumerate() {
        let want = n / CLASSES + usize::from(c < n % CLASSES);
        if want > idx.len() {
            return Err(format!(
                "class {c} has {} images, fewer than the {want} a balanced subset of {n} needs",
                idx.len()
            ));
        }
        for i in 0..want {
            let j = i + (splitmix64(&mut state) % (idx.len() - i) as u64) as usize;
            idx.swap(i, j);
        }
        out.extend_from_slice(&idx[..want]);
    }
    out.sort_unstable();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_labels(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 10) as u8).collect()
    }

    #[test]
    fn splits_are_disjoint_balanced_and_seeded() {
        let labels = fake_labels(1000);
        let s = Split::Search {
            images: 100,
            seed: 3,
        };
        let h = Split::Heldout {
            images: 100,
            seed: 3,
        };
        let si = s.indices(&labels).unwrap();
        let hi = h.indices(&labels).unwrap();
        assert_eq!(si.len(), 100);
        assert_eq!(hi.len(), 900);
        assert!(si.iter().all(|i| hi.binary_search(i).is_err()));
        for c in 0..10u8 {
            assert_eq!(si.iter().filter(|&&i| labels[i] == c).count(), 10);
        }
        assert_eq!(si, s.indices(&labels).unwrap());
        let other = Split::Search {
            images: 100,
            seed: 4,
        }
        .indices(&labels)
        .unwrap();
        assert_ne!(si, other);
    }

    #[test]
    fn impossible_subset_sizes_are_errors() {
        let labels = fake_labels(50);
        assert!(balanced_subset(&labels, 0, 0).is_err());
        assert!(balanced_subset(&labels, 50, 0).is_err());
    }

    #[test]
    fn bad_records_name_the_path() {
        let p = Path::new("some/file.bin");
        let e = parse_cifar10(&[0u8; 100], p).unwrap_err().to_string();
        assert!(e.contains("some/file.bin") && e.contains("3073"), "{e}");
        let mut rec = vec![0u8; RECORD_BYTES];
        rec[0] = 10;
        let e = parse_cifar10(&rec, p).unwrap_err().to_string();
        assert!(e.contains("label 10"), "{e}");
    }

    #[test]
    fn checksum_and_size_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.bin");
        let mut rec = vec![1u8; RECORD_BYTES * 2];
        rec[0] = 3;
        rec[RECORD_BYTES] = 9;
        std::fs::write(&p, &rec).unwrap();
        let ok = read_cifar10(&p, Some(2), None).unwrap();
        assert_eq!(ok.labels, vec![3, 9]);
        assert!(read_cifar10(&p, Some(3), None)
            .unwrap_err()
            .to_string()
            .contains("expected 3 records"));
        let e = read_cifar10(&p, None, Some("00")).unwrap_err().to_string();
        assert!(e.contains("sha256 mismatch") && e.contains("x.bin"), "{e}");
        let e = read_cifar10(&dir.path().join("nope.bin"), None, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope.bin") && e.contains("not found"), "{e}");
    }
}
