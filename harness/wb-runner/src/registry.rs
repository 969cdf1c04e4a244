//! The method registry: every compression method the runner can run. A new method crate
//! adds its `MethodInfo`s here (and a dependency in this crate's Cargo.toml); `just
//! new-method NAME` does both.

use wb_core::MethodInfo;

/// The reference method: the uncompressed model every report lists first.
pub const REFERENCE: &str = wb_baselines::FP32.id;

/// All registered methods, baselines first.
pub fn methods() -> Vec<MethodInfo> {
    let mut v = wb_baselines::methods();
    v.extend(bf16_approx::methods());
    v.extend(ws_dse::methods());
    v.extend(moea_bins::methods());
    v.extend(bin_quant::methods());
    v.extend(gwk::methods());
    // new methods: just new-method adds them above this line
    v
}

/// The report views of the registered methods that have one.
pub fn views() -> Vec<wb_report::MethodView> {
    methods()
        .into_iter()
        .filter_map(|m| {
            m.view.map(|view| wb_report::MethodView {
                method: m.id.to_string(),
                view,
            })
        })
        .collect()
}
