//! Bin & Quant's logic on the core's fake evaluator: binning by sensitivity, the level
//! search stopping exactly at the tolerance, codebooks shared across layers, and the
//! parameters.

use std::collections::BTreeMap;

use bin_quant::{bin_layers, next_levels, BinBy, BinQuant, Diagnostics, Schedule, INFO};
use serde_json::{json, Value};
use wb_core::conformance::resnet_like_weights;
use wb_core::{
    check_params, container, CodebookRef, Context, Encoding, Evaluator, FakeEvaluator,
    FakeGradients, GradientSource, IndexCoding, Method, ValueTable, WeightSet,
};

fn method(v: Value) -> BinQuant {
    let given: BTreeMap<String, Value> = serde_json::from_value(v).unwrap();
    BinQuant::from_params(&check_params(INFO.params, &given).unwrap()).unwrap()
}

fn run(m: &BinQuant, w: &WeightSet, sensitivity: f64) -> (wb_core::Candidate, Diagnostics) {
    let mut ev = FakeEvaluator::new(w.clone(), 2000, 1800, sensitivity);
    let mut ctx = Context::bare(0);
    ctx.evaluator = Some(&mut ev);
    let mut c = m.compress(w, &mut ctx).unwrap();
    assert_eq!(c.len(), 1);
    let c = c.remove(0);
    let d: Diagnostics = serde_json::from_value(c.extra.clone()).unwrap();
    (c, d)
}

#[test]
fn layers_are_binned_by_sensitivity() {
    // Sorted by sensitivity: 3, 1, 2, 0.
    let s = [3.0, 1.0, 2.0, 0.0];
    assert_eq!(
        bin_layers(&s, &[1, 1, 1, 1], 2, BinBy::Layers),
        vec![vec![1, 3], vec![0, 2]]
    );
    // By weights: layer 3 alone holds more than half of them.
    assert_eq!(
        bin_layers(&s, &[10, 10, 10, 100], 2, BinBy::Weights),
        vec![vec![3], vec![0, 1, 2]]
    );
    // More bins than layers: one layer per bin; equal sensitivities keep model order.
    assert_eq!(
        bin_layers(&[0.0, 0.0, 0.0], &[5, 5, 5], 8, BinBy::Weights),
        vec![vec![0], vec![1], vec![2]]
    );
    // No bin is ever empty, even when one layer outweighs all others.
    let b = bin_layers(&[0.0, 1.0, 2.0, 3.0], &[1000, 1, 1, 1], 3, BinBy::Weights);
    assert_eq!(b.len(), 3);
    assert!(b.iter().all(|x| !x.is_empty()), "{b:?}");
    assert_eq!(next_levels(64, Schedule::Halve, 2), Some(32));
}

#[test]
fn level_search_stops_exactly_at_the_tolerance() {
    let w = resnet_like_weights(1);
    for sensitivity in [0.5, 5.0, 50.0] {
        let m = method(json!({"bins": 3, "tolerance_pp": 1.0}));
        let (c, d) = run(&m, &w, sensitivity);
        assert_eq!(d.target_correct_search, 1780, "1800 − 1 pp of 2000");
        for s in &d.search.levels {
            // An accepted step keeps the target; a refused one could not.
            if s.reached {
                assert!(s.top1_correct_seen >= 1780);
            } else {
                assert!(s.top1_correct_seen + (2000 - s.seen) < 1780 || s.seen == 2000);
            }
        }
        // Every bin ends at the minimum or one step above a refused count.
        for b in &d.bins {
            let refused = d.search.levels.iter().any(|s| {
                s.bin == b.bin
                    && !s.reached
                    && next_levels(b.levels, m.schedule, m.min_levels) == Some(s.levels)
            });
            assert!(b.levels == m.min_levels || refused, "bin {}: {b:?}", b.bin);
        }
        // Either the chosen point keeps the tolerance, or even the initial level counts
        // miss it and nothing was lowered.
        if d.met_on_search {
            assert!(d.chosen_top1_search >= 89.0 - 1e-9);
        } else {
            assert!(d.search.levels.iter().all(|s| !s.reached));
            assert!(d.bins.iter().all(|b| b.levels == m.init_levels));
        }
        assert!(c.artifact.size().total_bytes > 0);
    }
    // A harsher evaluator keeps more levels.
    let (_, easy) = run(&method(json!({})), &w, 0.5);
    let (_, hard) = run(&method(json!({})), &w, 50.0);
    let bits = |d: &Diagnostics| d.avg_index_bits;
    assert!(
        bits(&hard) >= bits(&easy),
        "{} < {}",
        bits(&hard),
        bits(&easy)
    );
}

#[test]
fn each_bin_shares_one_codebook_across_its_layers() {
    let w = resnet_like_weights(2);
    let (c, d) = run(&method(json!({"bins": 2})), &w, 5.0);
    let a = &c.artifact;
    assert_eq!(a.shared_codebooks.len(), d.bins.len());
    for b in &d.bins {
        assert_eq!(a.shared_codebooks[b.bin].len(), b.shared_values);
        for name in &b.layers {
            let t = a.tensors.iter().find(|t| &t.name == name).unwrap();
            let Encoding::Indexed {
                table: ValueTable::F32(CodebookRef::Shared(id)),
                coding: IndexCoding::Fixed { bits },
                ..
            } = &t.encoding
            else {
                panic!("{name}: not a shared codebook")
            };
            assert_eq!(*id as usize, b.bin);
            assert_eq!(*bits, wb_core::bitpack::index_bits(b.shared_values));
        }
    }
    // Every compressible layer is in exactly one bin; the others stay FP32.
    let binned: usize = d.bins.iter().map(|b| b.layers.len()).sum();
    assert_eq!(binned, w.compressible().count());
    for t in a.tensors.iter().filter(|t| !t.compressible) {
        assert_eq!(t.encoding.kind(), "f32");
    }
    // Real bytes, exact decode.
    let bytes = container::write(a).unwrap();
    assert_eq!(bytes.len() as u64, a.size().total_bytes);
    let back = container::read(&bytes).unwrap().decode().unwrap();
    assert!(back.bit_identical(&a.decode().unwrap()));
    // The search log covers every layer.
    assert_eq!(d.search.sensitivity.len(), w.compressible().count());
}

#[test]
fn min_above_init_is_refused_before_work() {
    let given: BTreeMap<String, Value> =
        serde_json::from_value(json!({"init_levels": 4, "min_levels": 8})).unwrap();
    let p = check_params(INFO.params, &given).unwrap();
    let e = (INFO.build)(&p).err().expect("refused").to_string();
    assert!(e.contains("min_levels"), "{e}");
}

#[test]
fn gradient_readings_bin_by_the_fake_gradients_scales() {
    let w = resnet_like_weights(3);
    // Scales make the classifier by far the most important layer and the stem the least.
    let grads = || {
        FakeGradients::new(2000)
            .with_scale("linear.weight", 1e4)
            .with_scale("conv1.weight", 1e-4)
    };
    for kind in ["snip", "grad", "fisher"] {
        let m = method(
            json!({"bins": 4, "sensitivity": kind, "calibration_images": 64, "calibration_batch": 8}),
        );
        let mut ev = FakeEvaluator::new(w.clone(), 2000, 1800, 5.0);
        let mut g = grads();
        let mut ctx = Context::bare(0);
        ctx.evaluator = Some(&mut ev);
        ctx.gradients = Some(&mut g);
        let c = m.compress(&w, &mut ctx).unwrap().remove(0);
        let d: Diagnostics = serde_json::from_value(c.extra.clone()).unwrap();
        assert_eq!(d.sensitivity, kind);
        assert_eq!((d.gradient_images, d.gradient_batches), (Some(64), Some(8)));
        assert_eq!(g.calls(), 1);
        // One layer per bin (4 layers, 4 bins), least sensitive first.
        assert_eq!(
            d.bins.first().unwrap().layers,
            vec!["conv1.weight"],
            "{kind}"
        );
        assert_eq!(
            d.bins.last().unwrap().layers,
            vec!["linear.weight"],
            "{kind}"
        );
        // No probe evaluations: the sensitivity came from the gradients.
        assert!(d.search.sensitivity.iter().all(|s| s.top1_search.is_none()));
        let scores: Vec<f64> = d.search.sensitivity.iter().map(|s| s.value()).collect();
        assert!(
            scores[3] > scores[1] && scores[1] > scores[0],
            "{kind}: {scores:?}"
        );
        // Deterministic under the seed.
        let mut g2 = grads();
        let mut ev2 = FakeEvaluator::new(w.clone(), 2000, 1800, 5.0);
        let mut ctx2 = Context::bare(0);
        ctx2.evaluator = Some(&mut ev2);
        ctx2.gradients = Some(&mut g2);
        let c2 = m.compress(&w, &mut ctx2).unwrap().remove(0);
        assert_eq!(c.extra, c2.extra);
        assert_eq!(
            container::write(&c.artifact).unwrap(),
            container::write(&c2.artifact).unwrap()
        );
    }
}

#[test]
fn gradient_readings_need_gradients_and_perturbation_does_not() {
    let w = resnet_like_weights(1);
    let snip = method(json!({"sensitivity": "snip"}));
    assert!(snip.needs().gradients && snip.needs().evaluator);
    let mut ev = FakeEvaluator::new(w.clone(), 2000, 1800, 5.0);
    let mut ctx = Context::bare(0);
    ctx.evaluator = Some(&mut ev);
    let e = wb_core::compress_checked("bin-quant", &snip, &w, &mut ctx)
        .unwrap_err()
        .to_string();
    assert!(e.contains("needs gradients"), "{e}");
    assert_eq!(ev.stats().evaluations, 0, "refused before any evaluation");
    assert!(!method(json!({})).needs().gradients);
}
