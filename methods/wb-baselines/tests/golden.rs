//! Golden output: one digest over the containers of fixed parameter sets on the
//! conformance kit's weights (with its fake evaluator and fine-tuner). A refactor must
//! leave them unchanged; an intended change of the output updates them and says why in
//! its commit.

/// (parameters, `candidates:sha256` of their containers)
const GOLDEN: &[(&str, &str)] = &[
    (
        r#"{}"#,
        "1:af7868eefaa740a739d597fe955660426955217fd01a3e59610536b5354f0249",
    ),
    (
        r#"{"k": 2}"#,
        "1:b59cabcb4996b1dc14a05393bc3ea59df6a3f095f95f02a1a4607b7ed54d189f",
    ),
];

#[test]
fn outputs_match_the_golden_digests() {
    let mut wrong = Vec::new();
    for (params, want) in GOLDEN {
        let given: serde_json::Value = serde_json::from_str(params).unwrap();
        let got =
            wb_core::conformance::combined_digest(&wb_baselines::KMEANS_UNIFORM, &given).unwrap();
        if got != *want {
            wrong.push(format!("{params}: got {got}, golden {want}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
