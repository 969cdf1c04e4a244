//! Golden output: one digest over the containers of fixed parameter sets on the
//! conformance kit's weights (with its fake evaluator). A refactor must leave them
//! unchanged; an intended change of the output updates them and says why in its commit.

/// (parameters, `candidates:sha256` over their containers and diagnostics)
const GOLDEN: &[(&str, &str)] = &[
    (
        r#"{}"#,
        "1:be70653c78d74b7c4d3426725819253f5cd20f7f2ba7ddc221dfe8dd2cb33366",
    ),
    (
        r#"{"levels": "uniform", "schedule": "decrement", "bins": 2, "init_levels": 8}"#,
        "1:a63e8451729992a6139fc64a7a7b0732c5e24600633c9b3587d2d082d893e04b",
    ),
];

#[test]
fn outputs_match_the_golden_digests() {
    if let Err(e) = wb_core::conformance::check_golden(&bin_quant::INFO, GOLDEN) {
        panic!("{e}");
    }
}
