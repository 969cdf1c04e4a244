//! The method registry: every compression method the runner can run. A new method crate
//! adds its `MethodInfo`s here (and a dependency in this crate's Cargo.toml).

use wb_core::MethodInfo;

/// All registered methods, baselines first.
pub fn methods() -> Vec<MethodInfo> {
    let mut v = wb_baselines::methods();
    v.extend(bf16_approx::methods());
    v.extend(ws_dse::methods());
    v.extend(moea_bins::methods());
    v
}
