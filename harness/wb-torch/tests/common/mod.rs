//! Paths shared by the integration tests of wb-torch and wb-runner (included by path).

// Each test file compiles this module on its own and uses only some of it.
#![allow(dead_code)]

use std::path::PathBuf;

/// The repository root. `cargo test` sets CARGO_MANIFEST_DIR at run time too; it is
/// preferred over the compile-time value, so that a test binary reused from a shared
/// target directory built in another checkout still reads this checkout's files.
pub fn repo_root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("../..")
}

/// The data directory: `WEIGHTBENCH_DATA`, else `../shared/data` next to the repository.
pub fn data_dir() -> PathBuf {
    std::env::var_os("WEIGHTBENCH_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/data"))
}

/// The model card `name` from the repository's `models/`.
pub fn card(name: &str) -> wb_torch::ModelCard {
    wb_torch::find_card(&repo_root().join("models"), name).unwrap()
}
