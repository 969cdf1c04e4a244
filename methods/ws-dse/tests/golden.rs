//! Golden output: one digest over the containers of fixed parameter sets on the
//! conformance kit's weights (with its fake evaluator and fine-tuner). A refactor must
//! leave them unchanged; an intended change of the output updates them and says why in
//! its commit.

/// (parameters, `candidates:sha256` of their containers)
const GOLDEN: &[(&str, &str)] = &[
    (
        r#"{}"#,
        "11:90c172dd48dcdf75fe77903536bee9f633b596c37ad3947cfba8ff9f1d83dfb8",
    ),
    (
        r#"{"init": "uniform", "k_points": 10, "pop_size": 8, "generations": 3, "quality": 0.5}"#,
        "5:486246c174aeb01f4cbfd4cdb6790e3bb5d7c877135be11ce28decb01182b634",
    ),
];

#[test]
fn outputs_match_the_golden_digests() {
    let mut wrong = Vec::new();
    for (params, want) in GOLDEN {
        let given: serde_json::Value = serde_json::from_str(params).unwrap();
        let got = wb_core::conformance::combined_digest(&ws_dse::WS_DSE, &given).unwrap();
        if got != *want {
            wrong.push(format!("{params}: got {got}, golden {want}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
