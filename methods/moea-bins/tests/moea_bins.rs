//! moea-bins on deterministic fake evaluators: parameters, merge, artifacts, accounting,
//! determinism.

use std::collections::BTreeMap;

use moea_bins::{merge_bins, merge_bins_budget, methods, MergeOrder, MoeaBins, MOEA_BINS};
use serde_json::{json, Value};
use wb_core::{
    check_params, container, Candidate, Context, Encoding, Evaluator, FakeEvaluator, IndexCoding,
    Method, MethodError, Tensor, WeightSet,
};

/// Seeded pseudo-normal weights (sum of uniforms), so that bins are unevenly filled.
fn layer(name: &str, shape: Vec<usize>, seed: u64, scale: f32) -> Tensor {
    let n: usize = shape.iter().product();
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let data = (0..n)
        .map(|_| {
            let mut s = 0.0f32;
            for _ in 0..4 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                s += (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            }
            scale * s
        })
        .collect();
    Tensor::new(name, shape, data, true).unwrap()
}

fn model() -> WeightSet {
    WeightSet::new(vec![
        layer("conv1.weight", vec![8, 3, 3, 3], 1, 0.3),
        Tensor::new("conv1.bias", vec![8], vec![0.5; 8], false).unwrap(),
        layer("conv2.weight", vec![16, 8, 3, 3], 2, 0.1),
        Tensor::new("bn.weight", vec![16], vec![1.0; 16], false).unwrap(),
        layer("fc.weight", vec![10, 64], 3, 0.2),
    ])
    .unwrap()
}

fn params(v: Value) -> wb_core::Params {
    let given: BTreeMap<String, Value> = serde_json::from_value(v).unwrap();
    check_params(MOEA_BINS.params, &given).unwrap()
}

fn small(extra: Value) -> MoeaBins {
    let mut v = json!({"ub": 128, "pop_size": 12, "generations": 6});
    if let (Value::Object(a), Value::Object(b)) = (&mut v, extra) {
        a.extend(b);
    }
    MoeaBins::from_params(&params(v)).unwrap()
}

fn run(m: &MoeaBins, seed: u64) -> (Vec<Candidate>, u64) {
    let w = model();
    let mut ev = FakeEvaluator::new(w.clone(), 1000, 900, 0.5);
    let mut ctx = Context::bare(seed);
    ctx.evaluator = Some(&mut ev);
    let c = m.compress(&w, &mut ctx).unwrap();
    (c, ev.stats().evaluations)
}

#[test]
fn registry_entry_and_defaults() {
    assert_eq!(methods().len(), 1);
    assert_eq!(MOEA_BINS.id, "moea-bins");
    let p = params(json!({}));
    let m = MoeaBins::from_params(&p).unwrap();
    assert_eq!(m, MoeaBins::default());
    assert_eq!((m.lb, m.ub, m.pop_size, m.generations), (2, 1024, 100, 100));
    assert!((MOEA_BINS.build)(&p).is_ok());
    let init = m.initial_population();
    assert_eq!(init.len(), 100);
    assert_eq!((init[0], init[1], init[99]), (2, 12, 1024));
}

#[test]
fn bad_parameters_are_rejected_before_any_work() {
    let given = |v: Value| -> BTreeMap<String, Value> { serde_json::from_value(v).unwrap() };
    for (v, field) in [
        (json!({"lb": 0}), "lb"),
        (json!({"ub": 0}), "ub"),
        (json!({"pop_size": 1}), "pop_size"),
        (json!({"generations": 0}), "generations"),
        (json!({"merge": "right_to_left"}), "merge"),
        (json!({"huffman": "yes"}), "huffman"),
        (json!({"sbx_prob": 1.5}), "sbx_prob"),
        (json!({"k": 3}), "k"),
    ] {
        let e = check_params(MOEA_BINS.params, &given(v.clone())).unwrap_err();
        assert_eq!(e.field, field, "{v}");
    }
    // lb > ub passes the per-field check and is refused by build.
    let p = params(json!({"lb": 300, "ub": 200}));
    let e = (MOEA_BINS.build)(&p).err().expect("refused");
    assert_eq!(e.field, "ub");
    assert!(e.message.contains("below lb"), "{e}");
    // A hand-built method with bad fields fails in compress before evaluating anything.
    let m = MoeaBins {
        lb: 10,
        ub: 5,
        ..MoeaBins::default()
    };
    let w = model();
    let mut ev = FakeEvaluator::new(w.clone(), 100, 90, 1.0);
    let mut ctx = Context::bare(0);
    ctx.evaluator = Some(&mut ev);
    assert!(matches!(
        m.compress(&w, &mut ctx),
        Err(MethodError::Params(_))
    ));
    assert_eq!(ev.stats().evaluations, 0);
}

#[test]
fn search_needs_an_evaluator_random_ub_does_not() {
    let w = model();
    let e = small(json!({}))
        .compress(&w, &mut Context::bare(0))
        .unwrap_err();
    assert!(matches!(e, MethodError::NeedsEvaluator("moea-bins")));
    let c = small(json!({"mode": "random-ub"}))
        .compress(&w, &mut Context::bare(0))
        .unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].label, "random-ub");
    assert_eq!(c[0].extra["k"], 128);
    assert!(c[0].extra["search_top1_correct"].is_null());
}

fn check_artifact(c: &Candidate, w: &WeightSet) {
    let a = &c.artifact;
    let (bytes, spans) = container::write_with_spans(a).unwrap();
    let size = a.size();
    assert_eq!(bytes.len() as u64, size.total_bytes, "{}", c.label);
    for (span, (_, s)) in spans.iter().zip(&size.tensors) {
        assert_eq!(span.end - span.start, s.bytes());
    }
    let back = container::read(&bytes).unwrap();
    assert_eq!(&back, a);
    let d = back.decode().unwrap();
    assert!(d.bit_identical(&a.decode().unwrap()));
    // Non-compressible tensors are untouched (scope conv-linear).
    for (t, o) in d.tensors.iter().zip(&w.tensors) {
        if !o.compressible {
            assert_eq!(t.data, o.data);
        }
    }
    // The accuracy the search reports is the accuracy of exactly these weights.
    let mut fresh = FakeEvaluator::new(w.clone(), 1000, 900, 0.5);
    let acc = fresh.evaluate(&d).unwrap();
    assert_eq!(
        Some(acc.top1_correct as u64),
        c.extra["search_top1_correct"].as_u64(),
        "{}",
        c.label
    );
}

#[test]
fn front_is_merged_without_losing_accuracy_and_artifacts_are_exact() {
    let w = model();
    let (cands, evals) = run(&small(json!({})), 7);
    assert!(!cands.is_empty());
    assert!(evals > 2);
    let search = &cands[0].extra["search"];
    for key in [
        "generations",
        "front_before_merge",
        "front_after_merge",
        "codebook",
        "merge_steps",
        "evaluated_k",
    ] {
        assert!(search[key].is_array(), "search.{key}");
    }
    assert_eq!(search["generations"].as_array().unwrap().len(), 6);
    let base = search["baseline_top1_correct"].as_u64().unwrap();
    let mut merged_any = false;
    for c in &cands {
        assert!(c.label.starts_with('p'));
        check_artifact(c, &w);
        let e = &c.extra;
        for key in [
            "k",
            "shared_values",
            "avg_bits_huffman",
            "cr_paper",
            "cr_counted",
            "cr_artifact_bytes",
            "cr_fixed_paper",
            "cr_fixed_counted",
            "fixed_total_bits",
            "search_error_before_merge",
            "search_error_after_merge",
        ] {
            assert!(!e[key].is_null(), "{}: {key}", c.label);
        }
        let before = e["search_top1_correct_before_merge"].as_u64().unwrap();
        let after = e["search_top1_correct"].as_u64().unwrap();
        assert!(after >= before, "merge never raises the search error");
        // Some front solution qualifies here, so only qualifying ones are reported.
        assert!(before >= base, "{}: {before} < baseline {base}", c.label);
        if e["merged"] == json!(true) {
            merged_any = true;
            assert!(before >= base, "only not-worse solutions are merged");
            assert!(e["shared_values"].as_u64() <= e["bins_ub"].as_u64());
        }
        // Paper CR is 32 / average Huffman code length; the artifact's index stream
        // is exactly the model-wide Huffman stream.
        let avg = e["avg_bits_huffman"].as_f64().unwrap();
        assert!((e["cr_paper"].as_f64().unwrap() - 32.0 / avg).abs() < 1e-9);
        assert!((e["artifact_avg_index_bits"].as_f64().unwrap() - avg).abs() < 1e-12);
        let size = c.artifact.size();
        assert_eq!(e["artifact_bits_compressed"], json!(size.bits_compressed));
        assert_eq!(
            size.bits_compressed,
            e["huffman_total_bits"].as_u64().unwrap(),
            "32 B + 8 B + stream bits"
        );
        assert_eq!(
            c.artifact.tensors[0].encoding.kind(),
            "huffman-codebook-shared"
        );
    }
    assert!(merged_any, "the fake model has qualifying solutions");
    // Candidates are ordered by increasing compression.
    let g: Vec<u64> = cands
        .iter()
        .map(|c| c.extra["shared_values"].as_u64().unwrap())
        .collect();
    assert!(g.windows(2).all(|w| w[0] >= w[1]), "{g:?}");
}

#[test]
fn deterministic_under_a_seed() {
    let m = small(json!({"merge": "center_to_end"}));
    let (a, _) = run(&m, 11);
    let (b, _) = run(&m, 11);
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.label, y.label);
        assert_eq!(
            container::write(&x.artifact).unwrap(),
            container::write(&y.artifact).unwrap()
        );
        assert_eq!(x.extra, y.extra);
    }
}

#[test]
fn codings_and_stages() {
    let w = model();
    let (fixed, _) = run(&small(json!({"huffman": "none", "merge": "none"})), 3);
    for c in &fixed {
        check_artifact(c, &w);
        assert_eq!(c.extra["stage"], "mo_ub");
        let size = c.artifact.size();
        assert_eq!(
            size.bits_compressed,
            c.extra["fixed_total_bits"].as_u64().unwrap()
        );
    }
    let (layer, _) = run(&small(json!({"huffman": "layer"})), 3);
    for c in &layer {
        check_artifact(c, &w);
        let Encoding::Indexed {
            coding: IndexCoding::Huffman { code, .. },
            ..
        } = &c.artifact.tensors[0].encoding
        else {
            panic!("huffman expected");
        };
        assert!(matches!(code, wb_core::CodeTableRef::Local(_)));
        // The per-layer-tree accounting is what a per-layer artifact really stores:
        // its index bits, and codebook + one local table per tensor on top.
        let size = c.artifact.size();
        let index_bits: u64 = size.tensors.iter().map(|(_, t)| t.index_bits).sum();
        assert_eq!(
            index_bits,
            c.extra["huffman_layer_index_bits"].as_u64().unwrap()
        );
        assert_eq!(
            size.bits_compressed,
            c.extra["huffman_layer_total_bits"].as_u64().unwrap()
        );
        // A tree per layer never codes the stream longer than one tree for the model
        // (each layer's tree is optimal for its own counts).
        assert!(
            c.extra["huffman_layer_index_bits"].as_u64().unwrap()
                <= c.extra["huffman_index_bits"].as_u64().unwrap()
        );
    }
    let (all, _) = run(&small(json!({"emit_stages": true})), 3);
    let labels: Vec<&str> = all.iter().map(|c| c.label.as_str()).collect();
    assert!(labels.contains(&"random-ub"), "{labels:?}");
    assert!(labels.iter().any(|l| l.starts_with("ub-p")));
    assert!(labels.iter().any(|l| l.starts_with("merge-p")));
    for c in &all {
        check_artifact(c, &w);
    }
    // Only the first candidate carries the search log (the runner writes it once).
    assert_eq!(
        all.iter().filter(|c| !c.extra["search"].is_null()).count(),
        1
    );
}

#[test]
fn scope_all_bins_every_parameter() {
    let w = model();
    let (c, _) = run(&small(json!({"scope": "all", "merge": "none"})), 5);
    let a = &c[0].artifact;
    for t in &a.tensors {
        assert!(t.encoding.kind() == "huffman-codebook-shared", "{}", t.name);
    }
    assert_eq!(c[0].extra["counted_weights"], json!(w.total_params()));
    // The harness flag is kept: biases and BN stay outside bits_baseline.
    assert_eq!(a.size().counted_params, w.counted_params());
}

#[test]
fn lb_equal_ub_searches_a_single_k() {
    let (c, evals) = run(&small(json!({"lb": 16, "ub": 16, "merge": "none"})), 0);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].extra["k"], 16);
    assert_eq!(evals, 2, "baseline and k = 16, all NSGA-II calls cached");
}

// ---- merge on synthetic scores -------------------------------------------------------

/// Score of a grouping: `base` minus a penalty per merged boundary listed in `cost`.
fn synthetic(
    bins: usize,
    base: usize,
    cost: &[usize],
) -> impl FnMut(&[usize], usize) -> Result<Option<usize>, ()> + '_ {
    move |starts: &[usize], thr: usize| {
        let mut c = base as i64;
        for (b, &cb) in cost.iter().enumerate().take(bins).skip(1) {
            if !starts.contains(&b) {
                c -= cb as i64;
            }
        }
        let c = c.max(0) as usize;
        Ok((c >= thr).then_some(c))
    }
}

#[test]
fn merge_accepts_only_non_degrading_merges() {
    // Boundaries 2 and 5 are expensive; every other merge is free.
    let cost = [0, 0, 3, 0, 0, 7, 0, 0];
    for order in [MergeOrder::LeftToRight, MergeOrder::CenterToEnd] {
        let out = merge_bins(8, 100, order, synthetic(8, 100, &cost)).unwrap();
        assert_eq!(out.correct, 100, "{order:?}");
        assert!(
            out.starts.contains(&2) && out.starts.contains(&5),
            "{order:?}: {:?}",
            out.starts
        );
        assert_eq!(out.starts, vec![0, 2, 5], "{order:?}");
        assert_eq!(out.accepted, 5);
        assert!(out
            .steps
            .iter()
            .all(|s| !s.accepted || s.correct >= Some(100)));
    }
}

#[test]
fn left_to_right_prefers_l_on_ties_and_r_when_strictly_better() {
    // A merge that improves the score is taken, and R wins over L only when better.
    let score = |starts: &[usize], thr: usize| -> Result<Option<usize>, ()> {
        // Removing boundary 2 gains 5; everything else costs 1.
        let mut c: i64 = 50;
        for b in 1..4 {
            if !starts.contains(&b) {
                c += if b == 2 { 5 } else { -1 };
            }
        }
        Ok((c as usize >= thr).then_some(c as usize))
    };
    let out = merge_bins(4, 50, MergeOrder::LeftToRight, score).unwrap();
    // i = 1: L removes 1 (49), R removes 2 (55) → R; then i = 1 again: L removes 1
    // (54), R removes 3 (54) → both below 55 → move on.
    assert_eq!(out.starts, vec![0, 1, 3]);
    assert_eq!(out.correct, 55);
    assert_eq!(out.steps[0].side, "L");
    assert!(out.steps[1].accepted && out.steps[1].side == "R");
    // All free: L is taken first, each time (ties go to L).
    let out = merge_bins(4, 10, MergeOrder::LeftToRight, synthetic(4, 10, &[0; 4])).unwrap();
    assert_eq!(out.starts, vec![0, 3]);
    assert!(out.steps[0].accepted && out.steps[0].side == "L");
}

#[test]
fn center_to_end_visits_from_the_middle_outwards() {
    let out = merge_bins(
        6,
        1,
        MergeOrder::CenterToEnd,
        synthetic(6, 1, &[0, 1, 1, 1, 1, 1]),
    )
    .unwrap();
    let visited: Vec<usize> = out.steps.iter().map(|s| s.boundary).collect();
    assert_eq!(visited, vec![3, 2, 4, 1, 5]);
    assert_eq!(out.accepted, 0);
    assert_eq!(out.starts, vec![0, 1, 2, 3, 4, 5]);
}

#[test]
fn merge_budget_cuts_the_pass_without_changing_its_prefix() {
    let cost = [0, 0, 3, 0, 0, 7, 0, 0, 1, 0, 0, 0];
    for order in [MergeOrder::LeftToRight, MergeOrder::CenterToEnd] {
        let full = merge_bins(12, 100, order, synthetic(12, 100, &cost)).unwrap();
        assert!(full.complete);
        for budget in 0..full.evaluations {
            let cut = merge_bins_budget(12, 100, order, budget, synthetic(12, 100, &cost)).unwrap();
            assert!(cut.evaluations <= budget, "{order:?} budget {budget}");
            assert!(!cut.complete, "{order:?} budget {budget}");
            // The same steps as the unbounded pass, in the same order, up to the cut.
            assert_eq!(cut.steps[..], full.steps[..cut.steps.len()], "{order:?}");
            assert!(cut.correct >= 100);
            // A left_to_right step needs two scores, so at most one is left unused.
            let unused = budget - cut.evaluations;
            assert!(
                unused <= usize::from(order == MergeOrder::LeftToRight),
                "{order:?}"
            );
        }
        let exact =
            merge_bins_budget(12, 100, order, full.evaluations, synthetic(12, 100, &cost)).unwrap();
        assert!(exact.complete);
        assert_eq!(exact, full);
    }
}

#[test]
fn merge_budget_bounds_the_merge_phase() {
    let (full, _) = run(&small(json!({})), 7);
    let spent_full = full[0].extra["search"]["merge_evaluations"]
        .as_u64()
        .unwrap();
    assert!(spent_full > 3, "the fake model needs a real merge phase");
    for budget in [0u64, 1, 3, spent_full - 1, spent_full] {
        let (cut, _) = run(&small(json!({ "merge_budget": budget })), 7);
        let search = &cut[0].extra["search"];
        let spent = search["merge_evaluations"].as_u64().unwrap();
        assert!(spent <= budget, "budget {budget}: spent {spent}");
        let steps = search["merge_steps"].as_array().unwrap().len() as u64;
        assert_eq!(steps, spent, "one logged step per evaluation");
        // Every qualifying solution merged to the end of its pass, or not.
        let complete = search["front_before_merge"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["qualifies_for_merge"] == json!(true))
            .all(|s| s["merged"] == json!(true) && s["merge_complete"] == json!(true));
        assert_eq!(complete, budget >= spent_full, "budget {budget}");
        if budget == 0 {
            assert!(cut.iter().all(|c| c.extra["merged"] == json!(false)));
        }
        for c in &cut {
            let e = &c.extra;
            assert!(
                e["search_top1_correct"].as_u64() >= e["search_top1_correct_before_merge"].as_u64()
            );
        }
    }
}

/// The fake, with racing: a configuration more than 20 images short of its need stops
/// after a quarter of the images, as if the racing bound had ruled it out.
struct RacingFake(FakeEvaluator);

impl Evaluator for RacingFake {
    fn evaluate(&mut self, w: &WeightSet) -> Result<wb_core::Accuracy, wb_core::EvalError> {
        self.0.evaluate(w)
    }
    fn images(&self) -> usize {
        self.0.images()
    }
    fn stats(&self) -> wb_core::EvalStats {
        self.0.stats()
    }
    fn evaluate_race(
        &mut self,
        w: &WeightSet,
        need: usize,
        _confidence: f64,
    ) -> Result<wb_core::Raced, wb_core::EvalError> {
        let a = self.0.evaluate(w)?;
        Ok(if a.top1_correct + 20 < need {
            wb_core::Raced {
                answer: wb_core::Threshold::Below {
                    top1_correct_seen: a.top1_correct / 4,
                    seen: a.total / 4,
                },
                raced: true,
            }
        } else {
            wb_core::Raced::exact(if a.top1_correct >= need {
                wb_core::Threshold::Reached(a)
            } else {
                wb_core::Threshold::Below {
                    top1_correct_seen: a.top1_correct,
                    seen: a.total,
                }
            })
        })
    }
}

#[test]
fn racing_is_logged_and_reported_points_stay_measured() {
    let m = small(json!({}));
    let w = model();
    let mut ev = RacingFake(FakeEvaluator::new(w.clone(), 1000, 900, 0.5));
    let mut ctx = Context::bare(4);
    ctx.accel.race = Some(0.999);
    ctx.evaluator = Some(&mut ev);
    let cands = m.compress(&w, &mut ctx).unwrap();
    let log = &cands[0].extra["search"]["accelerations"];
    assert_eq!(log["race"], 0.999);
    // On this fake, accuracy grows with the bins, so a k rarely trails one with fewer
    // bins: racing seldom has anything to stop (the log says how often it did).
    assert!(log["stopped"].is_u64(), "{log}");
    for c in &cands {
        check_artifact(c, &w);
    }
    // Off: no accelerations in the log.
    let (plain, _) = run(&m, 4);
    assert!(plain[0].extra["search"].get("accelerations").is_none());
}
