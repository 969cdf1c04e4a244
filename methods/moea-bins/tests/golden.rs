//! Golden output: one digest over the containers of fixed parameter sets on the
//! conformance kit's weights (with its fake evaluator and fine-tuner). A refactor must
//! leave them unchanged; an intended change of the output updates them and says why in
//! its commit.

/// (parameters, `candidates:sha256` of their containers)
const GOLDEN: &[(&str, &str)] = &[
    (
        r#"{}"#,
        "1:32d48e0e686be7c537000be020c5069868db33565ff6018773f16ab8a4a8f4d5",
    ),
    (
        r#"{"huffman": "layer", "merge": "center_to_end", "emit_stages": true, "pop_size": 10, "generations": 3}"#,
        "4:52e42d9101d584e631790a4ba8f1803141dbdfaca5f82d502fe4a76b6ffab5de",
    ),
    (
        r#"{"mode": "random-ub", "ub": 16}"#,
        "1:41005f2572fd31c0fa677ba7cfa1714a23df52b9fe561f3e2a7d7e36c79f8311",
    ),
];

#[test]
fn outputs_match_the_golden_digests() {
    let mut wrong = Vec::new();
    for (params, want) in GOLDEN {
        let given: serde_json::Value = serde_json::from_str(params).unwrap();
        let got = wb_core::conformance::combined_digest(&moea_bins::MOEA_BINS, &given).unwrap();
        if got != *want {
            wrong.push(format!("{params}: got {got}, golden {want}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
