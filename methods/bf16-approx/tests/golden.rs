//! Golden output: one digest over the containers of fixed parameter sets on the
//! conformance kit's weights (with its fake evaluator and fine-tuner). A refactor must
//! leave them unchanged; an intended change of the output updates them and says why in
//! its commit.

/// (parameters, `candidates:sha256` over their containers and diagnostics)
const GOLDEN: &[(&str, &str)] = &[
    (
        r#"{}"#,
        "1:b491937e79711f727d5d7e53677c28b7ab0ab32c8fce1e009b69c41f68c559bb",
    ),
    (
        r#"{"remove_bits": 2, "mantissa_bits": 3, "table": "model"}"#,
        "1:1b056681778bd590ce67414d96d2647b521dd9ad31ee75e09bea48448865db62",
    ),
    (
        r#"{"retrain_epochs": 1, "remove_bits": 1, "mantissa_bits": 4}"#,
        "1:bf821489753735863f43a1fb43643bba3fa7f46553fb78bc1a05cb839cf4c718",
    ),
    (
        r#"{"value_sharing": "always", "zero_entry": "extra"}"#,
        "1:1c73d49c2dd7477cd176554e04914bd349947b2185dbc909a731879845ed5b41",
    ),
];

#[test]
fn outputs_match_the_golden_digests() {
    if let Err(e) = wb_core::conformance::check_golden(&bf16_approx::BF16_APPROX, GOLDEN) {
        panic!("{e}");
    }
}
