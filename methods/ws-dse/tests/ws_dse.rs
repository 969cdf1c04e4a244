//! The heuristic's steps on evaluators with known answers.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};
use wb_core::{
    check_params, Accuracy, Candidate, Context, EvalError, EvalStats, Evaluator, FakeEvaluator,
    Method, MethodError, Tensor, Threshold, WeightSet,
};
use wb_kernels::{kmeans_1d, KMeans1dParams};
use ws_dse::{
    cr_global, cr_obj, k_grid, methods, min_correct_above, prune, uniform_seeds, Init, LayerCost,
    SweepEntry, SweepOutcome, WsDse,
};

fn entry(layer: usize, k: usize, outcome: SweepOutcome) -> SweepEntry {
    SweepEntry {
        layer,
        k,
        inertia: 0.0,
        iterations: 1,
        outcome,
    }
}

#[test]
fn threshold_follows_the_strict_float_comparison() {
    // 0.99 · 0.81 = 0.8019 → 802 of 1000 is the first count strictly above.
    assert_eq!(min_correct_above(0.99, 810, 1000), 802);
    // 0.9 · 1.0 = 0.9: exactly 900 is not strictly above.
    assert_eq!(min_correct_above(0.9, 1000, 1000), 901);
    assert_eq!(min_correct_above(0.99, 0, 1000), 1);
    // quality 1: only an improvement passes; a perfect baseline cannot be passed.
    assert_eq!(min_correct_above(1.0, 500, 1000), 501);
    assert_eq!(min_correct_above(1.0, 1000, 1000), 1001);
}

#[test]
fn pruning_keeps_one_k_per_bit_width_with_the_smallest_loss() {
    let e = |l, k, c| entry(l, k, SweepOutcome::Exact(c));
    let below = |l, k| {
        entry(
            l,
            k,
            SweepOutcome::Below {
                threshold: 800,
                seen: 500,
                correct_seen: 100,
            },
        )
    };
    let entries = vec![
        // Layer 0: 2 bits {3, 4}: 4 better; 3 bits {5..8}: 6 best, 7 ties with 6 (6
        // kept, smaller); 8 worse; 4 bits {16}: below the threshold; 1 bit {2}: early exit.
        below(0, 2),
        e(0, 3, 805),
        e(0, 4, 810),
        e(0, 5, 806),
        e(0, 6, 812),
        e(0, 7, 812),
        e(0, 8, 807),
        e(0, 16, 799),
        // Layer 1: only 1 bit passes, and the 5-bit entries 17 and 32.
        e(1, 2, 800),
        e(1, 17, 820),
        e(1, 32, 819),
        e(1, 4, 10),
        // Layer 2: nothing passes.
        below(2, 2),
        e(2, 64, 790),
    ];
    let lists = prune(&entries, 3, 800);
    assert_eq!(lists, vec![vec![4, 6], vec![2, 17], vec![]]);
    // A lower threshold admits layer 0's 4-bit entry and layer 2's 6-bit one; early
    // exits never pass (their accuracy is unknown).
    let lists = prune(&entries, 3, 790);
    assert_eq!(lists, vec![vec![4, 6, 16], vec![2, 17], vec![64]]);
    for ks in &lists {
        let bits: BTreeSet<u8> = ks
            .iter()
            .map(|&k| wb_core::bitpack::index_bits(k))
            .collect();
        assert_eq!(bits.len(), ks.len(), "one k per bit-width: {ks:?}");
    }
}

/// Layer data: `n` evenly spaced distinct values, so that k-means with linspace
/// initialisation gives exactly `k` distinct shared values for every `k <= n`.
fn layer(name: &str, n: usize, scale: f32, offset: f32) -> Tensor {
    let data = (0..n)
        .map(|i| offset + scale * (2.0 * i as f32 / (n - 1) as f32 - 1.0))
        .collect();
    Tensor::new(name, vec![n / 8, 8], data, true).unwrap()
}

fn model() -> WeightSet {
    WeightSet::new(vec![
        layer("conv1.weight", 64, 0.5, 0.0),
        Tensor::new("conv1.bias", vec![4], vec![0.1, -0.2, 0.3, 0.0], false).unwrap(),
        layer("conv2.weight", 64, 0.1, 0.01),
        layer("fc.weight", 128, 0.3, -0.05),
    ])
    .unwrap()
}

/// A model whose accuracy is `base − Σ_l loss(l, k_l)`, where `k_l` is the number of
/// distinct values of layer `l` (unchanged layers lose nothing). Early exit: a miss
/// reports half the images seen.
struct TableEvaluator {
    reference: WeightSet,
    images: usize,
    base: usize,
    loss: BTreeMap<(String, usize), usize>,
    evaluations: u64,
    threshold_calls: u64,
}

impl TableEvaluator {
    fn new(loss: &[(&str, &[(usize, usize)])]) -> Self {
        let mut m = BTreeMap::new();
        for (name, table) in loss {
            for &(k, l) in table.iter() {
                m.insert((name.to_string(), k), l);
            }
        }
        Self {
            reference: model(),
            images: 1000,
            base: 900,
            loss: m,
            evaluations: 0,
            threshold_calls: 0,
        }
    }

    fn correct(&self, w: &WeightSet) -> usize {
        let mut lost = 0;
        for (r, t) in self.reference.tensors.iter().zip(&w.tensors) {
            if r.data == t.data {
                continue;
            }
            let distinct: BTreeSet<u32> = t.data.iter().map(|v| v.to_bits()).collect();
            lost += self.loss[&(t.name.clone(), distinct.len())];
        }
        self.base.saturating_sub(lost)
    }
}

impl Evaluator for TableEvaluator {
    fn evaluate(&mut self, w: &WeightSet) -> Result<Accuracy, EvalError> {
        self.evaluations += 1;
        let c = self.correct(w);
        Ok(Accuracy {
            top1_correct: c,
            top5_correct: c,
            total: self.images,
        })
    }
    fn images(&self) -> usize {
        self.images
    }
    fn stats(&self) -> EvalStats {
        EvalStats {
            evaluations: self.evaluations,
            cache_hits: 0,
        }
    }
    fn evaluate_threshold(&mut self, w: &WeightSet, min: usize) -> Result<Threshold, EvalError> {
        self.threshold_calls += 1;
        let a = self.evaluate(w)?;
        Ok(if a.top1_correct >= min {
            Threshold::Reached(a)
        } else {
            Threshold::Below {
                top1_correct_seen: a.top1_correct / 2,
                seen: self.images / 2,
            }
        })
    }
}

/// Losses (of 1000 images, baseline 900): with quality 0.99 a layer passes with a loss
/// of at most 8 (892 correct). `fc` passes nothing until one relaxation (0.891: at
/// least 802 correct, loss ≤ 98).
const CONV1: &[(usize, usize)] = &[(2, 50), (4, 5), (8, 1), (16, 0)];
const CONV2: &[(usize, usize)] = &[(2, 3), (4, 2), (8, 0), (16, 0)];
const FC: &[(usize, usize)] = &[(2, 200), (4, 100), (8, 20), (16, 12)];

fn table() -> TableEvaluator {
    TableEvaluator::new(&[
        ("conv1.weight", CONV1),
        ("conv2.weight", CONV2),
        ("fc.weight", FC),
    ])
}

fn small(seed_pop: usize) -> WsDse {
    WsDse {
        k_min: 2,
        k_max: 16,
        k_points: 4,
        pop_size: seed_pop,
        generations: 12,
        ..WsDse::default()
    }
}

fn run(m: &WsDse, ev: &mut dyn Evaluator, seed: u64) -> Result<Vec<Candidate>, MethodError> {
    let mut ctx = Context::bare(seed);
    ctx.evaluator = Some(ev);
    m.compress(&model(), &mut ctx)
}

#[test]
fn test_model_clusters_to_exactly_k_values() {
    for t in model().compressible() {
        for k in k_grid(2, 16, 4) {
            let km = kmeans_1d(&t.data, &KMeans1dParams::with_k(k)).unwrap();
            let d: BTreeSet<u32> = km.dequantize().iter().map(|v| v.to_bits()).collect();
            assert_eq!(d.len(), k, "{} k={k}", t.name);
        }
    }
}

#[test]
fn heuristic_on_known_answers_relaxes_and_finds_the_exact_front() {
    let m = small(32);
    let mut ev = table();
    let cands = run(&m, &mut ev, 3).unwrap();
    let log = cands[0].extra["search"].clone();
    assert!(log.is_object());
    assert!(cands[1..].iter().all(|c| c.extra["search"].is_null()));

    // Step 0 and 1: baseline, then 3 layers × 4 k.
    assert_eq!(log["baseline_top1_correct"], 900);
    assert_eq!(log["target_top1_correct"], 892);
    assert_eq!(log["sweep"].as_array().unwrap().len(), 12);
    let sweep = log["sweep"].as_array().unwrap();
    // fc k=2 loses 200: early exit even at the relaxed threshold, accuracy unknown.
    assert_eq!(
        (sweep[8]["name"].as_str(), sweep[8]["k"].as_u64()),
        (Some("fc.weight"), Some(2))
    );
    assert!(sweep[8]["top1_correct"].is_null());
    assert_eq!(sweep[8]["below_threshold"], 802);
    assert_eq!(sweep[8]["images_seen"], 500);
    assert_eq!(sweep[1]["top1_correct"], 895);

    // Step 2: fc has no k with loss ≤ 8 → one relaxation (0.99 · 0.9 = 0.891:
    // ≥ 802 correct) → fc keeps 8 and 16; conv1 and conv2 keep all four (conv1's k=2,
    // loss 50, passes the relaxed threshold).
    assert_eq!(log["relaxations_used"], 1);
    assert!((log["quality_used"].as_f64().unwrap() - 0.891).abs() < 1e-12);
    assert_eq!(log["threshold_used_top1_correct"], 802);
    let kept: Vec<Value> = log["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["candidates_k"].clone())
        .collect();
    assert_eq!(
        kept,
        vec![json!([2, 4, 8, 16]), json!([2, 4, 8, 16]), json!([8, 16])]
    );
    // The early exits below 892 were asked again at 802: conv1 k=2 (loss 50) now
    // passes, fc k=2/4 stay below, fc k=8/16 pass.
    assert_eq!(log["evaluations"]["relaxation_requeries"], 5);
    assert_eq!(sweep[0]["top1_correct"], 850);

    // Step 4/5: the space has 4·4·2 = 32 configurations; with 32 individuals and
    // duplicate elimination NSGA-II sees all of them, so its final first front is the
    // exact front of (accuracy, CR_obj), and the returned candidates are the points of
    // that front not dominated in (accuracy, CR_global) (the paper's re-extraction).
    let loss = |t: &[(usize, usize)], k| t.iter().find(|e: &&(usize, usize)| e.0 == k).unwrap().1;
    let mut all = Vec::new();
    for a in [2usize, 4, 8, 16] {
        for b in [2usize, 4, 8, 16] {
            for c in [8usize, 16] {
                let correct = 900 - loss(CONV1, a) - loss(CONV2, b) - loss(FC, c);
                let costs = [
                    LayerCost { n: 64, k: a },
                    LayerCost { n: 64, k: b },
                    LayerCost { n: 128, k: c },
                ];
                all.push((vec![a, b, c], correct, cr_global(&costs), cr_obj(&costs)));
            }
        }
    }
    type P = (Vec<usize>, usize, f64, f64);
    let nd = |pts: &[P], cr: fn(&P) -> f64| -> Vec<P> {
        pts.iter()
            .filter(|p| {
                !pts.iter()
                    .any(|q| q.1 >= p.1 && cr(q) >= cr(p) && (q.1 > p.1 || cr(q) > cr(p)))
            })
            .cloned()
            .collect()
    };
    let obj_front = nd(&all, |p| p.3);
    let mut front: Vec<(Vec<usize>, usize, f64)> = nd(&obj_front, |p| p.2)
        .into_iter()
        .map(|p| (p.0, p.1, p.2))
        .collect();
    front.sort_by(|a, b| a.2.total_cmp(&b.2));
    // The CR_global-only front is larger: the objective's CR_obj matters.
    let global_front = nd(&all, |p| p.2);
    assert!(global_front.len() > front.len());
    let got: Vec<(Vec<usize>, usize, f64)> = cands
        .iter()
        .map(|c| {
            (
                serde_json::from_value(c.extra["k"].clone()).unwrap(),
                c.extra["search_top1_correct"].as_u64().unwrap() as usize,
                c.extra["cr_global"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, front);
    assert_eq!(log["nsga2"]["distinct_configurations"], 32);
    let labels: Vec<&str> = cands.iter().map(|c| c.label.as_str()).collect();
    assert_eq!(labels[0], "p00");

    // No point reaches the unrelaxed target (fc alone loses ≥ 12 > 8 images), so no
    // candidate is marked as chosen.
    assert!(front.iter().all(|p| p.1 < 892));
    assert!(cands.iter().all(|c| c.extra["chosen_on_search"] == false));
    for c in &cands {
        let meets = c.extra["search_top1_correct"].as_u64().unwrap() >= 892;
        assert_eq!(c.extra["meets_target_on_search"], meets);
    }

    // Per-generation record: one per generation, hypervolume never decreasing.
    let gens = log["generations"].as_array().unwrap();
    assert_eq!(gens.len(), 12);
    for w in gens.windows(2) {
        assert!(w[1]["hypervolume"].as_f64() >= w[0]["hypervolume"].as_f64());
        assert!(w[1]["evaluations"].as_u64() >= w[0]["evaluations"].as_u64());
    }
    // Every configuration is evaluated once (method cache), never twice.
    assert_eq!(
        log["evaluations"]["total_computed"].as_u64().unwrap(),
        1 + 12 + 5 + 32
    );
    assert_eq!(ev.evaluations, 1 + 12 + 5 + 32);
}

#[test]
fn artifacts_match_the_paper_accounting_and_decode_to_the_clusters() {
    let m = small(24);
    let mut ev = table();
    let cands = run(&m, &mut ev, 0).unwrap();
    let original = model();
    for c in &cands {
        c.artifact.validate().unwrap();
        let size = c.artifact.size();
        assert_eq!(
            size.compression_ratio(),
            c.extra["cr_global"].as_f64().unwrap(),
            "CR_global is the artifact's compression ratio"
        );
        assert_eq!(size.counted_params, 256);
        let decoded = c.artifact.decode().unwrap();
        let ks: Vec<usize> = serde_json::from_value(c.extra["k"].clone()).unwrap();
        let mut li = 0;
        for (t, o) in decoded.tensors.iter().zip(&original.tensors) {
            if !o.compressible {
                assert_eq!(t.data, o.data, "FP32 tensors unchanged");
                continue;
            }
            let km = kmeans_1d(&o.data, &KMeans1dParams::with_k(ks[li])).unwrap();
            assert_eq!(t.data, km.dequantize());
            li += 1;
        }
        // The table evaluator agrees with the recorded search accuracy.
        assert_eq!(
            ev.correct(&decoded) as u64,
            c.extra["search_top1_correct"].as_u64().unwrap()
        );
    }
    // Ordered by CR.
    for w in cands.windows(2) {
        assert!(w[0].extra["cr_global"].as_f64() <= w[1].extra["cr_global"].as_f64());
    }
}

#[test]
fn no_relaxation_allowed_is_an_error_naming_the_layer() {
    let m = WsDse {
        relaxations: 0,
        ..small(8)
    };
    let err = run(&m, &mut table(), 0).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("fc.weight") && msg.contains("0 relaxation"),
        "{msg}"
    );
}

#[test]
fn without_a_layer_failing_no_relaxation_happens() {
    // fc as tolerant as conv2: every layer has candidates at quality 0.99.
    let mut ev = TableEvaluator::new(&[
        ("conv1.weight", CONV1),
        ("conv2.weight", CONV2),
        ("fc.weight", CONV2),
    ]);
    let cands = run(&small(8), &mut ev, 0).unwrap();
    let log = &cands[0].extra["search"];
    assert_eq!(log["relaxations_used"], 0);
    assert_eq!(log["quality_used"], 0.99);
    assert_eq!(log["evaluations"]["relaxation_requeries"], 0);
    // Only conv1 k=2 (loss 50) exits early.
    let below = log["sweep"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["top1_correct"].is_null())
        .count();
    assert_eq!(below, 1);
    // The chosen point: the highest CR with ≥ 892 correct on the search subset.
    let chosen: Vec<&Candidate> = cands
        .iter()
        .filter(|c| c.extra["chosen_on_search"] == true)
        .collect();
    assert_eq!(chosen.len(), 1);
    let best = cands
        .iter()
        .filter(|c| c.extra["search_top1_correct"].as_u64().unwrap() >= 892)
        .map(|c| c.extra["cr_global"].as_f64().unwrap())
        .fold(f64::MIN, f64::max);
    assert_eq!(chosen[0].extra["cr_global"].as_f64().unwrap(), best);
}

#[test]
fn deterministic_under_a_seed() {
    // A larger space (FakeEvaluator: accuracy falls with the relative squared error),
    // where NSGA-II cannot see everything.
    let m = WsDse {
        k_min: 2,
        k_max: 64,
        k_points: 20,
        pop_size: 10,
        generations: 6,
        ..WsDse::default()
    };
    let weights = model();
    let go = |seed| {
        let mut ev = FakeEvaluator::new(weights.clone(), 1000, 900, 3.0);
        let mut ctx = Context::bare(seed);
        ctx.evaluator = Some(&mut ev);
        m.compress(&weights, &mut ctx).unwrap()
    };
    let a = go(11);
    let b = go(11);
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.label, y.label);
        assert_eq!(x.extra, y.extra);
        assert_eq!(x.artifact, y.artifact);
    }
    // The search log is complete: every layer's sweep covers the grid up to its size.
    let log = &a[0].extra["search"];
    let grid = k_grid(2, 64, 20);
    let expected: usize = weights
        .compressible()
        .map(|t| grid.iter().filter(|&&k| k <= t.numel()).count())
        .sum();
    assert_eq!(log["sweep"].as_array().unwrap().len(), expected);
    assert_eq!(log["generations"].as_array().unwrap().len(), 6);
}

#[test]
fn needs_an_evaluator() {
    let mut ctx = Context::bare(0);
    match WsDse::default().compress(&model(), &mut ctx) {
        Err(MethodError::NeedsEvaluator(id)) => assert_eq!(id, "ws-dse"),
        other => panic!("expected NeedsEvaluator, got {other:?}"),
    }
}

#[test]
fn registry_parameters_and_cross_checks() {
    let infos = methods();
    assert_eq!(infos.len(), 1);
    let info = infos[0];
    assert_eq!(info.id, "ws-dse");
    for s in info.params {
        assert!(s.default.is_some(), "{} has a default", s.name);
    }
    let p = check_params(info.params, &BTreeMap::new()).unwrap();
    let v: Value = serde_json::from_str(&p.to_json()).unwrap();
    assert_eq!(v["quality"], 0.99);
    assert_eq!(v["relaxations"], 4);
    assert_eq!(v["sbx_eta"], 30.0);
    assert_eq!(v["pm_eta"], 20.0);
    assert_eq!(v["k_points"], 100);
    assert_eq!(v["init"], "random");
    assert!((info.build)(&p).is_ok());
    let given: BTreeMap<String, Value> = serde_json::from_value(json!({"init": "grid"})).unwrap();
    assert!(check_params(info.params, &given).is_err());
    let given: BTreeMap<String, Value> =
        serde_json::from_value(json!({"k_min": 64, "k_max": 16})).unwrap();
    let p = check_params(info.params, &given).unwrap();
    let err = (info.build)(&p).err().expect("k_min > k_max is rejected");
    assert_eq!(err.field, "k_max");
    let given: BTreeMap<String, Value> = serde_json::from_value(json!({"quality": 1.5})).unwrap();
    assert!(check_params(info.params, &given).is_err());
}

/// `uniform_seeds` as k-vectors (candidate indices mapped through `lists`).
fn seed_ks(lists: &[Vec<usize>]) -> Vec<Vec<usize>> {
    uniform_seeds(lists)
        .iter()
        .map(|x| {
            x.iter()
                .enumerate()
                .map(|(l, &i)| lists[l][i as usize])
                .collect()
        })
        .collect()
}

#[test]
fn uniform_seeds_give_each_layer_its_nearest_bit_width() {
    // Candidate k per layer (ascending), as pruning leaves them.
    let lists = vec![
        vec![4, 8, 16, 32], // 2, 3, 4, 5 bits
        vec![16, 32, 64],   // 4, 5, 6 bits
        vec![2, 64],        // 1, 6 bits
        vec![3, 23, 211],   // 2, 5, 8 bits (81-point grid values)
        vec![4, 16],        // 2, 4 bits: a tie at 3 bits goes to the wider one
    ];
    let ks: Vec<Vec<usize>> = seed_ks(&lists);
    // Bit-widths present: 1, 2, 3, 4, 5, 6, 8; the 2-bit vector equals the 1-bit one
    // and is dropped.
    assert_eq!(
        ks,
        vec![
            vec![4, 16, 2, 3, 4],      // 1 bit
            vec![8, 16, 2, 3, 16],     // 3 bits
            vec![16, 16, 64, 23, 16],  // 4 bits
            vec![32, 32, 64, 23, 16],  // 5 bits: uniform where every layer can
            vec![32, 64, 64, 23, 16],  // 6 bits
            vec![32, 64, 64, 211, 16], // 8 bits
        ]
    );
    assert!(uniform_seeds(&[]).is_empty());
}

#[test]
fn uniform_init_starts_from_the_uniform_configurations_and_is_deterministic() {
    let m = WsDse {
        k_min: 2,
        k_max: 64,
        k_points: 20,
        pop_size: 10,
        generations: 4,
        init: Init::Uniform,
        ..WsDse::default()
    };
    let weights = model();
    let go = |init: Init| {
        let mut ev = FakeEvaluator::new(weights.clone(), 1000, 900, 3.0);
        let mut ctx = Context::bare(5);
        ctx.evaluator = Some(&mut ev);
        WsDse { init, ..m }.compress(&weights, &mut ctx).unwrap()
    };
    let a = go(Init::Uniform);
    let log = &a[0].extra["search"];
    assert_eq!(log["nsga2"]["init"], "uniform");
    let lists: Vec<Vec<usize>> = log["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| serde_json::from_value(l["candidates_k"].clone()).unwrap())
        .collect();
    let expected: Vec<Vec<usize>> = seed_ks(&lists);
    assert!(!expected.is_empty());
    let recorded: Vec<Vec<usize>> =
        serde_json::from_value(log["nsga2"]["seed_configurations"].clone()).unwrap();
    assert_eq!(recorded, expected);
    // Deterministic, and a different search from the random start.
    let b = go(Init::Uniform);
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.extra, y.extra);
    }
    let r = go(Init::Random);
    assert_eq!(r[0].extra["search"]["nsga2"]["init"], "random");
    assert_eq!(
        r[0].extra["search"]["nsga2"]["seed_configurations"],
        json!([])
    );
}

/// With the surrogate on, configurations predicted well below their need are not
/// evaluated, the log says so, and every reported point still carries the count a
/// full evaluation gives; with accelerations off the log has no `accelerations`.
#[test]
fn surrogate_screens_configurations_and_reported_points_stay_measured() {
    let m = WsDse {
        k_min: 2,
        k_max: 64,
        k_points: 20,
        pop_size: 12,
        generations: 8,
        quality: 0.8,
        ..WsDse::default()
    };
    let weights = model();
    let go = |accel: wb_core::Accel| {
        let mut ev = FakeEvaluator::new(weights.clone(), 1000, 900, 3.0);
        let mut ctx = Context::bare(7);
        ctx.accel = accel;
        ctx.evaluator = Some(&mut ev);
        let c = m.compress(&weights, &mut ctx).unwrap();
        (c, ev.stats().evaluations)
    };
    let (plain, plain_evals) = go(wb_core::Accel::default());
    assert!(plain[0].extra["search"].get("accelerations").is_none());
    let (fast, fast_evals) = go(wb_core::Accel {
        race: Some(0.999),
        surrogate: true,
    });
    let acc = &fast[0].extra["search"]["accelerations"];
    assert_eq!(acc["surrogate"], true);
    assert!(acc["screened"].as_u64().unwrap() > 0, "{acc}");
    assert!(fast_evals < plain_evals, "{fast_evals} vs {plain_evals}");
    // Every reported point: its logged count is what the evaluator measures.
    let mut check = FakeEvaluator::new(weights.clone(), 1000, 900, 3.0);
    for c in &fast {
        let measured = check
            .evaluate(&c.artifact.decode().unwrap())
            .unwrap()
            .top1_correct;
        assert_eq!(c.extra["search_top1_correct"], measured, "{}", c.label);
    }
}
