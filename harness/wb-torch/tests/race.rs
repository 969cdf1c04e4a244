//! Racing on real images: a clearly damaged model stops after a first slice of the
//! search images on the racing bound; a good one is evaluated in full, with the same
//! accuracy as a plain evaluation.

mod common;
use common::{card, data_dir};
use wb_core::{Evaluator, Threshold};
use wb_torch::{dataset, Batches, TorchEvaluator, TorchModel};

#[test]
fn racing_stops_a_damaged_model_early_and_leaves_a_good_one_exact() {
    let all = dataset("cifar10-exact932")
        .unwrap()
        .load(&data_dir())
        .unwrap();
    let imgs = all.subset(&(0..800).collect::<Vec<_>>());
    let mut model = TorchModel::load(&card("resnet20"), tch::Device::Cpu).unwrap();
    let batches = Batches::new(&model, &imgs, 100).unwrap();
    let good = model.weights().clone();
    let full = TorchEvaluator::new(&mut model, &batches)
        .evaluate(&good)
        .unwrap();
    // Noise on every weight: accuracy falls far below FP32's.
    let mut bad = good.clone();
    let mut state = 3u64;
    for t in bad.tensors.iter_mut().filter(|t| t.compressible) {
        let scale = t.data.iter().fold(0f32, |m, v| m.max(v.abs()));
        for v in t.data.iter_mut() {
            let r = wb_core::rng::splitmix64(&mut state) as f64 / u64::MAX as f64;
            *v += scale * 0.3 * (r as f32 - 0.5);
        }
    }
    // (Measured: 354 of 800 right against FP32's 733.)
    let need = full.top1_correct - 8;
    let mut ev = TorchEvaluator::new(&mut model, &batches);
    let r = ev.evaluate_race(&bad, need, 0.999).unwrap();
    match r.answer {
        Threshold::Below { seen, .. } => {
            assert!(r.raced, "stopped by certainty after {seen}");
            assert!(seen < 800, "stopped after {seen} of 800 images");
        }
        Threshold::Reached(a) => panic!("damaged model reached {need}: {a:?}"),
    }
    let r = ev.evaluate_race(&good, need, 0.999).unwrap();
    assert!(!r.raced);
    assert_eq!(r.answer, Threshold::Reached(full));
}
