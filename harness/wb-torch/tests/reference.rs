//! Real models, real images, real libtorch: every exported model against the golden
//! logits, the FP32 accuracies, and exact weight installation.

mod common;
use common::{card, data_dir, repo_root};
use wb_core::{Encoding, Evaluator};
use wb_torch::{dataset, list_cards, Batches, TorchEvaluator, TorchModel};

#[test]
fn every_model_matches_reference_logits() {
    let models = repo_root().join("models");
    let names = list_cards(&models).unwrap();
    assert!(
        names.len() >= 6,
        "expected the six reference cards, found {names:?}"
    );
    let images = dataset("cifar10-exact932")
        .unwrap()
        .load(&data_dir())
        .unwrap();
    for name in names {
        let card = card(&name);
        let Some(reference) = card.reference.clone() else {
            continue;
        };
        assert_eq!(reference.dataset, "cifar10-exact932");
        let model = TorchModel::load(&card, tch::Device::Cpu).unwrap();
        let got = model.logits(&images, 256).unwrap();
        let bytes = std::fs::read(data_dir().join(&reference.logits)).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let view = st.tensor(&reference.key).unwrap();
        let want: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert_eq!(want.len(), got.len(), "{name}: logits size");
        let c = card.num_classes;
        let max_diff = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(max_diff <= 1e-3, "{name}: max |Δlogit| = {max_diff}");
        let argmax = |v: &[f32]| {
            v.iter()
                .enumerate()
                .fold((0, f32::MIN), |m, (i, &x)| if x > m.1 { (i, x) } else { m })
                .0
        };
        for (i, (a, b)) in got.chunks(c).zip(want.chunks(c)).enumerate() {
            assert_eq!(argmax(a), argmax(b), "{name}: argmax differs on image {i}");
        }
    }
}

#[test]
fn fp32_accuracies_match_the_published_numbers() {
    // (model, dataset, correct): values from the data MANIFEST.
    let cases = [
        ("resnet20", "cifar10-exact932", 854),
        ("resnet20", "cifar10-jpeg75", 8103),
        ("resnet56", "cifar10-exact932", 863),
        ("resnet56", "cifar10-jpeg75", 8320),
    ];
    for (model_name, ds, want) in cases {
        let images = dataset(ds).unwrap().load(&data_dir()).unwrap();
        let mut model = TorchModel::load(&card(model_name), tch::Device::Cpu).unwrap();
        let original = model.weights().clone();
        let batches = Batches::new(&model, &images, 500).unwrap();
        let mut ev = TorchEvaluator::new(&mut model, &batches);
        let acc = ev.evaluate(&original).unwrap();
        assert_eq!(acc.total, images.len());
        assert_eq!(acc.top1_correct, want, "{model_name} on {ds}");
        assert!(acc.top5_correct >= acc.top1_correct);
    }
}

#[test]
fn install_is_bit_exact_and_changes_predictions() {
    let mut model = TorchModel::load(&card("resnet20"), tch::Device::Cpu).unwrap();
    let original = model.weights().clone();
    assert!(model.installed().unwrap().bit_identical(&original));
    // Round every compressible weight to BF16 and back: the installed tensors must be
    // exactly the decoded values, not the originals.
    let mut rounded = original.clone();
    for t in rounded.tensors.iter_mut().filter(|t| t.compressible) {
        let Encoding::Bf16(bits) = Encoding::bf16_from_f32(&t.data) else {
            unreachable!()
        };
        t.data = bits
            .iter()
            .map(|&b| f32::from_bits((b as u32) << 16))
            .collect();
    }
    assert!(!rounded.bit_identical(&original));
    model.install(&rounded).unwrap();
    assert!(model.installed().unwrap().bit_identical(&rounded));
    // Wrong shapes are refused.
    let mut bad = original.clone();
    bad.tensors[0].shape = vec![bad.tensors[0].numel()];
    assert!(model.install(&bad).is_err());
}

#[test]
fn missing_model_file_says_where_it_looked() {
    let mut c = card("resnet20");
    c.file = "export/does-not-exist.pt".into();
    let e = TorchModel::load(&c, tch::Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("does-not-exist.pt"), "{e}");
}

#[test]
fn cuda_request_without_gpu_is_a_clear_error() {
    if tch::Cuda::is_available() {
        assert!(wb_torch::parse_device("cuda").is_ok());
    } else {
        let e = wb_torch::parse_device("cuda").unwrap_err().to_string();
        assert!(e.contains("CUDA"), "{e}");
    }
    assert!(wb_torch::parse_device("tpu").is_err());
}

#[test]
fn early_exit_agrees_with_full_evaluation() {
    let images = dataset("cifar10-exact932")
        .unwrap()
        .load(&data_dir())
        .unwrap();
    let mut model = TorchModel::load(&card("resnet8"), tch::Device::Cpu).unwrap();
    let original = model.weights().clone();
    let batches = Batches::new(&model, &images, 100).unwrap();
    let mut ev = TorchEvaluator::new(&mut model, &batches);
    let full = ev.evaluate(&original).unwrap();
    assert_eq!(full.top1_correct, 818);
    let at = ev.evaluate_threshold(&original, 818).unwrap();
    assert_eq!(at.accuracy(), Some(full));
    match ev.evaluate_threshold(&original, 900).unwrap() {
        wb_core::Threshold::Below { seen, .. } => assert!(seen < 932, "no early exit: {seen}"),
        r => panic!("{r:?}"),
    }
}
