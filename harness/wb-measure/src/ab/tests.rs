use super::*;

/// A standard normal draw (Box–Muller) from the crate's deterministic generator.
fn normal(rng: &mut SplitMix64) -> f64 {
    let u1 = rng.unit_f64().max(1e-300);
    let u2 = rng.unit_f64();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Rounds whose reference is about `base` ms and whose candidate is `ratio` times it,
/// each with independent log-normal noise of `sd` (relative), plus a machine-wide
/// factor per round that both paths share (what pairing removes).
fn rounds(n: usize, base: f64, ratio: f64, sd: f64, shared_sd: f64, seed: u64) -> Vec<AbRound> {
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .map(|_| {
            let machine = (shared_sd * normal(&mut rng)).exp();
            AbRound {
                reference_ms: base * machine * (sd * normal(&mut rng)).exp(),
                candidate_ms: base * ratio * machine * (sd * normal(&mut rng)).exp(),
            }
        })
        .collect()
}

#[test]
fn a_known_ratio_is_recovered_and_called_slower() {
    let r = ratio_ci(&rounds(30, 4.0, 2.0, 0.03, 0.2, 1), 7);
    assert!(r.ci_low < 2.0 && 2.0 < r.ci_high, "{r:?}");
    assert!((r.ratio / 2.0 - 1.0).abs() < 0.03, "{r:?}");
    assert_eq!(r.verdict(0.02), "slower");
}

#[test]
fn identical_paths_give_one_within_the_interval() {
    let r = ratio_ci(&rounds(30, 4.0, 1.0, 0.03, 0.2, 2), 7);
    assert!(r.ci_low < 1.0 && 1.0 < r.ci_high, "{r:?}");
    assert_eq!(r.verdict(0.02), "same");
    let fast = ratio_ci(&rounds(30, 4.0, 0.5, 0.03, 0.2, 3), 7);
    assert_eq!(fast.verdict(0.02), "faster");
}

#[test]
fn pairing_removes_the_shared_machine_factor() {
    // A 20 % machine-wide wobble per round, 1 % path noise: the paired interval is
    // far narrower than the wobble.
    let r = ratio_ci(&rounds(20, 4.0, 1.3, 0.01, 0.2, 4), 9);
    assert!(r.ci_high / r.ci_low < 1.03, "{r:?}");
}

#[test]
fn the_interval_covers_the_true_ratio_about_95_percent_of_the_time() {
    let trials = 300;
    let covered = (0..trials)
        .filter(|&t| {
            let r = ratio_ci(&rounds(20, 2.0, 1.5, 0.05, 0.1, 100 + t), t);
            r.ci_low <= 1.5 && 1.5 <= r.ci_high
        })
        .count();
    let rate = covered as f64 / trials as f64;
    // Percentile bootstrap with 20 rounds is slightly liberal; 95 % nominal.
    assert!((0.88..=0.99).contains(&rate), "coverage {rate}");
}

#[test]
fn the_same_rounds_and_seed_give_the_same_interval() {
    let rs = rounds(15, 3.0, 1.1, 0.05, 0.1, 5);
    assert_eq!(ratio_ci(&rs, 11), ratio_ci(&rs, 11));
}

#[test]
fn empty_and_single_rounds_are_defined() {
    assert!(ratio_ci(&[], 1).ratio.is_nan());
    let one = [AbRound {
        reference_ms: 2.0,
        candidate_ms: 3.0,
    }];
    let r = ratio_ci(&one, 1);
    assert!((r.ratio - 1.5).abs() < 1e-12 && r.ci_low == r.ci_high);
}

#[test]
fn too_few_rounds_or_bad_times_are_invalid() {
    let cfg = AbConfig::default();
    let t = summarise(&cfg, 1, rounds(5, 1.0, 1.0, 0.01, 0.0, 6));
    assert!(!t.validity.valid);
    assert!(
        t.validity.reasons[0].contains("rounds 5 < 10"),
        "{:?}",
        t.validity
    );
    let mut rs = rounds(12, 1.0, 1.0, 0.01, 0.0, 6);
    rs[3].candidate_ms = 0.0;
    assert!(!summarise(&cfg, 1, rs).validity.valid);
    assert!(
        summarise(&cfg, 1, rounds(12, 1.0, 1.0, 0.01, 0.0, 6))
            .validity
            .valid
    );
}

#[test]
fn measure_ab_alternates_and_counts_every_call() {
    use std::cell::RefCell;
    let order = RefCell::new(Vec::new());
    let cfg = AbConfig {
        warmup_s: 0.0,
        rounds: 4,
        block_s: 0.0,
        ..AbConfig::default()
    };
    let t = measure_ab(
        &cfg,
        || {
            order.borrow_mut().push('A');
            Ok::<(), ()>(())
        },
        || {
            order.borrow_mut().push('B');
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(t.calls_per_block, 1);
    assert_eq!(t.rounds.len(), 4);
    // One warm-up call each, then A B, B A, A B, B A.
    let s: String = order.into_inner().into_iter().collect();
    assert_eq!(s, "ABABBAABBA");
}

#[test]
fn an_error_in_either_path_stops_the_measurement() {
    let cfg = AbConfig {
        warmup_s: 0.0,
        rounds: 3,
        block_s: 0.0,
        ..AbConfig::default()
    };
    let mut n = 0;
    let r = measure_ab(
        &cfg,
        || Ok(()),
        || {
            n += 1;
            if n == 3 {
                Err("boom")
            } else {
                Ok(())
            }
        },
    );
    assert_eq!(r.unwrap_err(), "boom");
}

fn check(label: &str, median: f64, half: f64) -> ReferenceCheck {
    ReferenceCheck {
        label: label.into(),
        median_ms: median,
        ci_low_ms: median - half,
        ci_high_ms: median + half,
    }
}

#[test]
fn a_stable_reference_is_not_drift() {
    let d = detect_drift(
        &[
            check("start", 2.00, 0.02),
            check("cell 20", 2.03, 0.02),
            check("end", 1.99, 0.02),
        ],
        0.05,
    )
    .unwrap();
    assert!(!d.drifted, "{d:?}");
    assert!(d.note.contains("stable"));
}

#[test]
fn a_machine_that_slowed_down_is_flagged_with_both_checks_named() {
    let d = detect_drift(
        &[
            check("start", 2.00, 0.02),
            check("cell 20", 2.40, 0.03),
            check("end", 2.38, 0.03),
        ],
        0.05,
    )
    .unwrap();
    assert!(d.drifted);
    assert!((d.change - 0.2).abs() < 1e-9);
    assert_eq!(
        (d.fastest.as_str(), d.slowest.as_str()),
        ("start", "cell 20")
    );
    assert!(
        d.note.contains("20.0 %") && d.note.contains("tolerance"),
        "{}",
        d.note
    );
}

#[test]
fn a_large_change_inside_wide_intervals_is_noise_not_drift() {
    let d = detect_drift(&[check("a", 2.0, 0.5), check("b", 2.4, 0.5)], 0.05).unwrap();
    assert!(!d.drifted, "{d:?}");
    assert!(d.note.contains("too noisy to tell"), "{}", d.note);
}

#[test]
fn fewer_than_two_checks_say_nothing() {
    assert!(detect_drift(&[], 0.05).is_none());
    assert!(detect_drift(&[check("a", 2.0, 0.1)], 0.05).is_none());
    assert!(detect_drift(&[check("a", 2.0, 0.1), check("b", f64::NAN, 0.1)], 0.05).is_none());
}

#[test]
fn blocks_are_long_enough_for_the_minimum_count() {
    let cfg = AbConfig {
        warmup_s: 0.0,
        rounds: 4,
        block_s: 0.0,
        min_calls: 10,
        ..AbConfig::default()
    };
    let t = measure_ab(&cfg, || Ok::<(), ()>(()), || Ok(())).unwrap();
    assert_eq!(t.calls_per_block, 3);
    assert_eq!(t.candidate_calls_ms.len(), 12);
}

#[test]
fn every_call_is_kept_as_a_raw_sample() {
    let cfg = AbConfig {
        warmup_s: 0.0,
        rounds: 6,
        block_s: 0.0,
        min_rounds: 2,
        ..AbConfig::default()
    };
    let t = measure_ab(&cfg, || Ok::<(), ()>(()), || Ok(())).unwrap();
    assert_eq!(t.reference_calls_ms.len(), 6);
    assert_eq!(t.candidate_calls_ms.len(), 6);
    assert_eq!(t.candidate.n, 6);
}
