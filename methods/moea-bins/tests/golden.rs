//! Golden output: one digest over the containers of fixed parameter sets on the
//! conformance kit's weights (with its fake evaluator and fine-tuner). A refactor must
//! leave them unchanged; an intended change of the output updates them and says why in
//! its commit.

/// (parameters, `candidates:sha256` over their containers and diagnostics)
const GOLDEN: &[(&str, &str)] = &[
    (
        r#"{}"#,
        "1:543c0ca5af40827e56294561597d106bfe7704ce56bed87f87574d4806aa4ed3",
    ),
    (
        r#"{"huffman": "layer", "merge": "center_to_end", "emit_stages": true, "pop_size": 10, "generations": 3}"#,
        "4:37e0dfe3b9c1a877ff38cd43b8f226b54c45b62eb4c63aed5626ecb914195e28",
    ),
    (
        r#"{"mode": "random-ub", "ub": 16}"#,
        "1:6e54b114e1b573290b2650829ebae3c120f5660741ec00abdabd2b226f04858b",
    ),
];

#[test]
fn outputs_match_the_golden_digests() {
    if let Err(e) = wb_core::conformance::check_golden(&moea_bins::MOEA_BINS, GOLDEN) {
        panic!("{e}");
    }
}
