//! Staged evaluation on real models and images: resuming from cached FP32 activations
//! gives logits bit-identical to the whole forward pass, for a candidate changed in any
//! stage, and the evaluator's answers do not change.

mod common;
use common::{card, data_dir};
use wb_core::{Evaluator, WeightSet};
use wb_torch::stages::StageCache;
use wb_torch::{dataset, Batches, TorchEvaluator, TorchModel};

/// `reference` with every tensor of stage `s` scaled by 1 + 1/64 (a change in every
/// value, as a compressed layer would have).
fn changed_in(model: &TorchModel, reference: &WeightSet, s: usize) -> WeightSet {
    let stages = model.stages().unwrap();
    let mut w = reference.clone();
    for (t, &owner) in w.tensors.iter_mut().zip(&stages.of_tensor) {
        if owner == s {
            t.data.iter_mut().for_each(|v| *v *= 1.0 + 1.0 / 64.0);
        }
    }
    w
}

fn images(n: usize) -> wb_torch::Images {
    let all = dataset("cifar10-exact932")
        .unwrap()
        .load(&data_dir())
        .unwrap();
    all.subset(&(0..n).collect::<Vec<_>>())
}

#[test]
fn resuming_from_any_boundary_is_bit_identical_on_every_reference_model() {
    // 120 images in batches of 50: the last batch is short, as in real subsets.
    let imgs = images(120);
    for (name, every) in [
        ("resnet8", 1),
        ("resnet20", 1),
        ("resnet32", 2),
        ("resnet44", 3),
        ("resnet56", 4),
    ] {
        let mut model = TorchModel::load(&card(name), tch::Device::Cpu).unwrap();
        let batches = Batches::new(&model, &imgs, 50).unwrap();
        let cache = StageCache::build(&mut model, &batches, u64::MAX)
            .unwrap()
            .expect("the reference models declare stages");
        let count = cache.stage_count();
        assert_eq!(cache.boundaries(), (1..count).collect::<Vec<_>>(), "{name}");
        let reference = model.weights().clone();
        let stages: Vec<usize> = (0..count).step_by(every).chain([count - 1]).collect();
        for s in stages {
            let w = changed_in(&model, &reference, s);
            let (b, acts) = match cache.start(&w) {
                Some((b, acts)) => (b, acts),
                None => (0, batches.inputs()),
            };
            assert_eq!(b, s, "{name}: a change in stage {s} starts at {b}");
            model.install(&w).unwrap();
            for (k, input) in batches.inputs().iter().enumerate() {
                let whole = model.forward(input).unwrap();
                let resumed = model.forward_from(&acts[k], b).unwrap();
                assert!(
                    whole.equal(&resumed),
                    "{name}: stage {s}, batch {k}: resumed logits differ from the whole pass"
                );
            }
        }
    }
}

#[test]
fn the_evaluator_answers_the_same_with_and_without_the_cache_and_saves_work() {
    let imgs = images(300);
    let mut model = TorchModel::load(&card("resnet20"), tch::Device::Cpu).unwrap();
    let batches = Batches::new(&model, &imgs, 128).unwrap();
    // A budget for about every other boundary.
    let cache = StageCache::build(&mut model, &batches, 40 << 20)
        .unwrap()
        .unwrap();
    assert!(cache.bytes() <= 40 << 20);
    assert!(
        cache.boundaries().len() < cache.stage_count() - 1,
        "{cache:?}"
    );
    let reference = model.weights().clone();
    let candidates: Vec<WeightSet> = (0..cache.stage_count())
        .map(|s| changed_in(&model, &reference, s))
        .chain([reference.clone()])
        .collect();
    // Each candidate's predictions, accuracy, and threshold answers just reached and
    // just missed (the early exit).
    let answers = |ev: &mut TorchEvaluator, w: &WeightSet| {
        let (acc, classes) = ev.predict(w).unwrap();
        let t = acc.top1_correct;
        (
            acc,
            classes,
            ev.evaluate(w).unwrap(),
            ev.evaluate_threshold(w, t).unwrap(),
            ev.evaluate_threshold(w, t + 1).unwrap(),
        )
    };
    let mut plain = TorchEvaluator::new(&mut model, &batches);
    let want: Vec<_> = candidates.iter().map(|w| answers(&mut plain, w)).collect();
    assert_eq!(plain.stage_work(), None);
    let mut staged = TorchEvaluator::new(&mut model, &batches).with_stage_cache(Some(&cache));
    for (w, want) in candidates.iter().zip(&want) {
        assert_eq!(&answers(&mut staged, w), want);
    }
    let (run, whole) = staged.stage_work().unwrap();
    assert!(run < whole, "{run} of {whole} stages");
}
