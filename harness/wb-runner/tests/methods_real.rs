//! Published methods on a real model, real images and real libtorch (the unit tests of
//! each method crate use synthetic weights; these check what only the real model shows).

// The same path helpers as wb-torch's tests (both crates sit in harness/).
#[path = "../../wb-torch/tests/common/mod.rs"]
mod common;
use common::{data_dir, repo_root};

use serde_json::json;
use wb_core::{check_params, Context, WeightSet};
use wb_runner::registry;

/// The decoded weights of `id` with `params` (retraining-free methods only).
fn compress(id: &str, params: serde_json::Value, w: &WeightSet) -> WeightSet {
    let methods = registry::methods();
    let info = methods.iter().find(|m| m.id == id).unwrap();
    let p = check_params(info.params, &serde_json::from_value(params).unwrap()).unwrap();
    let mut c = (info.build)(&p)
        .unwrap()
        .compress(w, &mut Context::bare(0))
        .unwrap();
    assert_eq!(c.len(), 1);
    let bytes = wb_core::container::write(&c.remove(0).artifact).unwrap();
    wb_core::container::read(&bytes).unwrap().decode().unwrap()
}

#[test]
fn lossless_exponent_sharing_gives_exactly_the_logits_of_the_bf16_cast() {
    let card = wb_torch::find_card(&repo_root().join("models"), "resnet20").unwrap();
    let mut model = wb_torch::TorchModel::load(&card, wb_torch::Device::Cpu).unwrap();
    let images = wb_torch::dataset("cifar10-exact932")
        .unwrap()
        .load(&data_dir())
        .unwrap();
    let original = model.weights().clone();

    let cast = compress("bf16-cast", json!({}), &original);
    model.install(&cast).unwrap();
    let logits_cast = model.logits(&images, 500).unwrap();

    for table in ["layer", "model"] {
        let shared = compress(
            "bf16-approx",
            json!({"table": table, "remove_bits": 0, "mantissa_bits": 7}),
            &original,
        );
        model.install(&shared).unwrap();
        let logits = model.logits(&images, 500).unwrap();
        assert_eq!(logits.len(), logits_cast.len());
        let differing = logits
            .iter()
            .zip(&logits_cast)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert_eq!(differing, 0, "table = {table}: {differing} logits differ");
    }

    // And the approximation is not a no-op: removing exponent bits changes logits.
    let approx = compress(
        "bf16-approx",
        json!({"remove_bits": 2, "mantissa_bits": 4}),
        &original,
    );
    model.install(&approx).unwrap();
    let logits = model.logits(&images, 500).unwrap();
    assert!(logits.iter().zip(&logits_cast).any(|(a, b)| a != b));
}
