//! The hard-first order of the search images on real libtorch: every image gets the
//! same prediction as in drawn order (so accuracies and threshold answers are the
//! same), and a candidate that misses a threshold near FP32's is stopped after fewer
//! images.

mod common;
use common::{card, data_dir};
use wb_core::{Evaluator, Threshold, WeightSet};
use wb_torch::{dataset, Batches, TorchEvaluator, TorchModel};

/// `w` with every compressible tensor rounded to a grid of `levels` steps over its
/// range (a crude quantizer: accuracy falls as `levels` shrinks).
fn quantized(w: &WeightSet, levels: f32) -> WeightSet {
    let mut q = w.clone();
    for t in q.tensors.iter_mut().filter(|t| t.compressible) {
        let (lo, hi) = t
            .data
            .iter()
            .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        let step = (hi - lo) / levels;
        for v in t.data.iter_mut() {
            *v = lo + ((*v - lo) / step).round() * step;
        }
    }
    q
}

/// Counts of (label, predicted class) pairs: equal for two orders exactly when the
/// predictions agree up to the permutation of the images.
fn confusion(ev: &mut TorchEvaluator<'_>, w: &WeightSet, labels: &[u8]) -> Vec<usize> {
    let (_, classes) = ev.predict(w).unwrap();
    let mut m = vec![0usize; 100];
    for (&l, &c) in labels.iter().zip(&classes) {
        m[l as usize * 10 + c as usize] += 1;
    }
    m
}

#[test]
fn hard_first_keeps_every_prediction_and_stops_misses_sooner() {
    let all = dataset("cifar10-exact932")
        .unwrap()
        .load(&data_dir())
        .unwrap();
    let imgs = all.subset(&(0..900).collect::<Vec<_>>());
    for name in ["resnet20", "resnet8"] {
        let mut model = TorchModel::load(&card(name), tch::Device::Cpu).unwrap();
        let fp32 = model.weights().clone();
        let drawn = Batches::new(&model, &imgs, 100).unwrap();
        let hard = Batches::new(&model, &imgs, 100)
            .unwrap()
            .hard_first(&mut model, &fp32)
            .unwrap();
        assert!(hard.ordered() > 0 && hard.ordered() % 100 == 0, "{name}");
        // The labels in hard-first order: the drawn labels, permuted.
        let mut hard_labels = Vec::new();
        for y in hard.labels() {
            hard_labels.extend(
                Vec::<i64>::try_from(y)
                    .unwrap()
                    .into_iter()
                    .map(|v| v as u8),
            );
        }
        let candidates = [fp32.clone(), quantized(&fp32, 64.0), quantized(&fp32, 12.0)];
        let full = TorchEvaluator::new(&mut model, &drawn)
            .evaluate(&fp32)
            .unwrap();
        let need = full.top1_correct - 2;
        for (i, w) in candidates.iter().enumerate() {
            let a = confusion(
                &mut TorchEvaluator::new(&mut model, &drawn),
                w,
                &imgs.labels,
            );
            let b = confusion(&mut TorchEvaluator::new(&mut model, &hard), w, &hard_labels);
            assert_eq!(
                a, b,
                "{name} candidate {i}: predictions differ between orders"
            );
            let x = TorchEvaluator::new(&mut model, &drawn)
                .evaluate_threshold(w, need)
                .unwrap();
            let y = TorchEvaluator::new(&mut model, &hard)
                .evaluate_threshold(w, need)
                .unwrap();
            assert_eq!(x.reached(), y.reached(), "{name} candidate {i}");
            assert_eq!(x.accuracy(), y.accuracy(), "{name} candidate {i}");
            if let (Threshold::Below { seen: sx, .. }, Threshold::Below { seen: sy, .. }) = (x, y) {
                assert!(
                    sy <= sx,
                    "{name} candidate {i}: hard-first saw {sy}, drawn {sx}"
                );
            }
        }
        // The coarse quantizer misses FP32's accuracy, and hard-first stops it within
        // the first half of the images.
        let y = TorchEvaluator::new(&mut model, &hard)
            .evaluate_threshold(&candidates[2], need)
            .unwrap();
        match y {
            Threshold::Below { seen, .. } => assert!(seen <= 450, "{name}: stopped after {seen}"),
            Threshold::Reached(a) => panic!("{name}: a 12-level quantizer reached FP32: {a:?}"),
        }
    }
}
