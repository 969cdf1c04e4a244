//! Golden output: one digest over the containers of fixed parameter sets on the
//! conformance kit's weights (with its fake evaluator and fine-tuner). A refactor must
//! leave them unchanged; an intended change of the output updates them and says why in
//! its commit.

/// (parameters, `candidates:sha256` of their containers)
const GOLDEN: &[(&str, &str)] = &[
    (
        r#"{}"#,
        "1:e78f49576281e0af9b7b9ac0ccd121819547dc26c05829af4425d54ddbe2e841",
    ),
    (
        r#"{"remove_bits": 2, "mantissa_bits": 3, "table": "model"}"#,
        "1:bb2a067d098147d4eb970804bbe19dcd755c74dd2f6e3ff7d2e629e2ff866b7e",
    ),
    (
        r#"{"retrain_epochs": 1, "remove_bits": 1, "mantissa_bits": 4}"#,
        "1:f3a276e7311d32303015ea6e663768059664876dab7c4980c8dfb6b32222309e",
    ),
    (
        r#"{"value_sharing": "always", "zero_entry": "extra"}"#,
        "1:f7b957d8679fae2a146b236a81e43dc387edd942f8e8f39a136fda2691cae384",
    ),
];

#[test]
fn outputs_match_the_golden_digests() {
    let mut wrong = Vec::new();
    for (params, want) in GOLDEN {
        let given: serde_json::Value = serde_json::from_str(params).unwrap();
        let got = wb_core::conformance::combined_digest(&bf16_approx::BF16_APPROX, &given).unwrap();
        if got != *want {
            wrong.push(format!("{params}: got {got}, golden {want}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
