//! Golden output: one digest over the containers of fixed parameter sets on the
//! conformance kit's weights (with its fake evaluator and fine-tuner). A refactor must
//! leave them unchanged; an intended change of the output updates them and says why in
//! its commit.

/// (parameters, `candidates:sha256` over their containers and diagnostics)
const GOLDEN: &[(&str, &str)] = &[
    (
        r#"{}"#,
        "11:75181a9ab0f11f7041f8c8580b660a4ec60cbb157212169a400c841a6f7bc653",
    ),
    (
        r#"{"init": "uniform", "k_points": 10, "pop_size": 8, "generations": 3, "quality": 0.5}"#,
        "5:2f9e00198cc54331bebcec6da54a8ebfdc950f0a5976888472162ae22d158d2d",
    ),
];

#[test]
fn outputs_match_the_golden_digests() {
    if let Err(e) = wb_core::conformance::check_golden(&ws_dse::WS_DSE, GOLDEN) {
        panic!("{e}");
    }
}
