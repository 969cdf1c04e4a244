//! `bf16-approx` keeps the method contract (wb_core::conformance): lossless exponent
//! sharing, exponent and mantissa approximation with a model-wide table, value
//! sharing, retraining with projection, and its cross-field rules.

wb_core::method_conformance!(
    bf16_approx::BF16_APPROX,
    params = [
        {},
        {"remove_bits": 2, "mantissa_bits": 3, "table": "model"},
        {"value_sharing": "always", "zero_entry": "extra"},
        {"retrain_epochs": 1, "remove_bits": 1, "mantissa_bits": 4},
    ],
    bad = [
        {"zero_candidate": false, "zero_entry": "extra"},
        {"retrain_steps": 5},
        {"retrain_epochs": 1, "lr": 0.0},
    ],
    readme = include_str!("../README.md"),
);
