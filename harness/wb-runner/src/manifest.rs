//! The environment manifest of a run (`results/<exp>/manifests/<id>.json`, referenced by
//! the `manifest_id` column of every row) and a copy of the experiment file.

use crate::results::ResultsDir;
use crate::run::RunOptions;
use anyhow::{Context as _, Result};
use sha2::{Digest, Sha256};
use std::path::Path;
use wb_measure::env::Manifest;

/// Collects the manifest, completes it with the torch facts and writes it (once per id).
pub fn write_manifest(dir: &ResultsDir, opts: &RunOptions) -> Result<Manifest> {
    let mut m = Manifest::collect(&opts.repo_root);
    m.tch_version = Some(TCH_VERSION.into());
    m.libtorch_version = libtorch_version();
    m.threads_intra = Some(opts.threads);
    m.threads_inter = Some(opts.interop_threads);
    m.device = Some(wb_torch::device_name(opts.device));
    m.allocator = Some(wb_torch::tune_allocator().to_string());
    if opts.energy_backend != wb_measure::EnergyBackend::Sysfs {
        m.energy_source = wb_measure::probe_with(opts.energy_backend).description();
    }
    let mdir = dir.root.join("manifests");
    std::fs::create_dir_all(&mdir).with_context(|| format!("creating {}", mdir.display()))?;
    let path = mdir.join(format!("{}.json", m.id()));
    if !path.exists() {
        wb_core::io::atomic_write(&path, m.to_json().as_bytes())?;
    }
    Ok(m)
}

/// Keeps a copy of the experiment file next to its results, named by content hash.
pub fn copy_experiment(dir: &ResultsDir, exp_path: &Path) -> Result<()> {
    let text =
        std::fs::read(exp_path).with_context(|| format!("reading {}", exp_path.display()))?;
    let h = wb_core::weights::hex(&Sha256::digest(&text));
    let path = dir
        .root
        .join("experiments")
        .join(format!("{}.toml", &h[..12]));
    if !path.exists() {
        std::fs::create_dir_all(path.parent().expect("has parent"))?;
        wb_core::io::atomic_write(&path, &text)?;
    }
    Ok(())
}

/// The `tch` crate version this binary was built with.
pub const TCH_VERSION: &str = "0.26.0";

/// libtorch's version as recorded by the build (torch's `version.py` next to the library,
/// when built from a Python torch), else `None`.
pub fn libtorch_version() -> Option<String> {
    option_env!("WEIGHTBENCH_LIBTORCH_VERSION").map(str::to_string)
}
