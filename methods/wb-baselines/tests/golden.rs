//! Golden output: one digest over the containers of fixed parameter sets on the
//! conformance kit's weights (with its fake evaluator and fine-tuner). A refactor must
//! leave them unchanged; an intended change of the output updates them and says why in
//! its commit.

/// (parameters, `candidates:sha256` over their containers and diagnostics)
const GOLDEN: &[(&str, &str)] = &[
    (
        r#"{}"#,
        "1:fb8c76f0e7178020dc47b548c3fe801c1384f1254555ad6a2ce4c0f2646de6b9",
    ),
    (
        r#"{"k": 2}"#,
        "1:478cdf806255cc7a3c9748840c004856a4b240d23d2da0c70c201e5b2bb2a4e3",
    ),
];

#[test]
fn outputs_match_the_golden_digests() {
    if let Err(e) = wb_core::conformance::check_golden(&wb_baselines::KMEANS_UNIFORM, GOLDEN) {
        panic!("{e}");
    }
}
