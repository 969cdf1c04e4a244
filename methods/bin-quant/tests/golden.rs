//! Golden output: one digest over the containers of fixed parameter sets on the
//! conformance kit's weights (with its fake evaluator). A refactor must leave them
//! unchanged; an intended change of the output updates them and says why in its commit.

/// (parameters, `candidates:sha256` over their containers and diagnostics)
const GOLDEN: &[(&str, &str)] = &[
    (
        r#"{}"#,
        "1:ef2315177ef158f3383a76b25699ccdd5e95093725261dc3c1c3ee9b2822e508",
    ),
    (
        r#"{"levels": "uniform", "schedule": "decrement", "bins": 2, "init_levels": 8}"#,
        "1:50845a9029b8358dd5d945b09281f80dac8d45529e3e07fe98d437e232bdb7ed",
    ),
    (
        r#"{"sensitivity": "snip", "calibration_images": 64, "calibration_batch": 8}"#,
        "1:b74f664ee3ab2c2307528e4e612e4ae381662bd503567bc915daadd4a2559568",
    ),
];

#[test]
fn outputs_match_the_golden_digests() {
    if let Err(e) = wb_core::conformance::check_golden(&bin_quant::INFO, GOLDEN) {
        panic!("{e}");
    }
}
