//! Search accelerations that change which evaluations a search runs: racing (stop an
//! evaluation once the images seen make its answer certain at a stated confidence) and
//! surrogate screening. Both are off by default; with both off every search is its
//! paper's. An experiment turns them on (`[search] race`, `[search] surrogate`) and each
//! searching method applies what fits its search, logging every raced or screened
//! decision.
//!
//! **The bound.** The search images are a seeded random draw, evaluated in a fixed
//! order, so the first `n` of `N` images are a sample without replacement. (An
//! evaluator that puts a non-random prefix first, such as the runner's hard images,
//! counts that prefix exactly and applies the bound to the drawn images after it.)
//! Serfling's inequality bounds the fraction `μ` correct over all `N` from the fraction `p̂` over
//! the first `n`: `P(μ ≥ p̂ + ε) ≤ δ` with
//! `ε = sqrt((1 − (n − 1)/N) · ln(1/δ) / (2n))`. A raced evaluation that looks after
//! several batches splits `δ = 1 − confidence` evenly over its looks (Bonferroni), so
//! the stated confidence holds for the evaluation as a whole.

/// Search accelerations an experiment asks for; a method applies those that fit its
/// search. The default (all off) is the paper's search.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Accel {
    /// Racing at this confidence (e.g. 0.999), or off.
    pub race: Option<f64>,
    /// Screening of configurations by a surrogate of their accuracy (methods with a
    /// per-layer sweep: `ws-dse`).
    pub surrogate: bool,
}

/// Fewest images seen before a raced decision (bounds on fewer are too loose to
/// matter and too sensitive to the first images).
pub const RACE_MIN_IMAGES: usize = 100;

/// The largest top-1 count over all `total` images that is consistent, at error
/// probability `delta`, with `correct` of the first `seen` being right (see the module
/// doc); never more than `correct` plus the unseen images.
pub fn upper_count(correct: usize, seen: usize, total: usize, delta: f64) -> f64 {
    if seen >= total || seen == 0 {
        return if seen == 0 {
            total as f64
        } else {
            correct as f64
        };
    }
    let (n, big_n) = (seen as f64, total as f64);
    let eps = serfling_eps(n, big_n, delta);
    let p = correct as f64 / n;
    (big_n * (p + eps)).min(correct as f64 + (big_n - n))
}

/// The smallest top-1 count over all `total` images consistent with the sample at error
/// probability `delta`; never less than `correct`.
pub fn lower_count(correct: usize, seen: usize, total: usize, delta: f64) -> f64 {
    if seen >= total || seen == 0 {
        return correct as f64;
    }
    let (n, big_n) = (seen as f64, total as f64);
    let p = correct as f64 / n;
    (big_n * (p - serfling_eps(n, big_n, delta))).max(correct as f64)
}

fn serfling_eps(n: f64, big_n: f64, delta: f64) -> f64 {
    let delta = delta.clamp(1e-300, 1.0);
    ((1.0 - (n - 1.0) / big_n) * (1.0 / delta).ln() / (2.0 * n)).sqrt()
}

/// Whether an evaluation that has seen `seen` of `total` images, `correct` right, may
/// stop as "below `min_correct`" at `confidence`, looking `looks` times in all.
pub fn improbable(
    correct: usize,
    seen: usize,
    total: usize,
    min_correct: usize,
    confidence: f64,
    looks: usize,
) -> bool {
    if seen < RACE_MIN_IMAGES || seen >= total {
        return false;
    }
    let delta = (1.0 - confidence) / looks.max(1) as f64;
    upper_count(correct, seen, total, delta) < min_correct as f64
}

/// The top-1 count a raced or screened configuration is given in place of a measured
/// one: its rate on the images seen, scaled to all, kept below `below` (it was judged
/// unable to reach it).
pub fn estimate(correct: usize, seen: usize, total: usize, below: usize) -> usize {
    let est = if seen == 0 {
        0
    } else {
        ((correct as f64 / seen as f64) * total as f64).round() as usize
    };
    est.min(below.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::splitmix64;

    /// Fisher–Yates with splitmix64.
    fn shuffle(v: &mut [bool], state: &mut u64) {
        for i in (1..v.len()).rev() {
            let j = (splitmix64(state) % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }

    #[test]
    fn bounds_bracket_the_sample_and_tighten_with_images() {
        let (u1, u2) = (
            upper_count(80, 100, 2000, 1e-3),
            upper_count(800, 1000, 2000, 1e-3),
        );
        assert!(u1 > 1600.0 && u2 > 1600.0 && u2 < u1);
        assert!(lower_count(800, 1000, 2000, 1e-3) < 1600.0);
        // Everything seen: exact.
        assert_eq!(upper_count(1500, 2000, 2000, 1e-3), 1500.0);
        // Never more than every unseen image right.
        assert!(upper_count(1900, 1950, 2000, 0.5) <= 1950.0);
    }

    #[test]
    fn decisions_need_enough_images_and_a_clear_gap() {
        assert!(!improbable(10, 50, 2000, 1600, 0.999, 4), "too few images");
        assert!(
            improbable(300, 500, 2000, 1600, 0.999, 4),
            "60 % against 80 %"
        );
        assert!(
            !improbable(390, 500, 2000, 1600, 0.999, 4),
            "78 % against 80 %"
        );
        assert!(
            !improbable(0, 2000, 2000, 1600, 0.999, 4),
            "finished: exact answer"
        );
    }

    /// Over many random orders of a population just above the threshold, the raced
    /// "below" answer is wrong far less often than the stated 1 %.
    #[test]
    fn the_stated_confidence_holds_on_random_orders() {
        let (total, batch) = (2000usize, 250usize);
        let mut pop = vec![true; 1620];
        pop.resize(total, false);
        let mut state = 7u64;
        let mut wrong = 0;
        for _ in 0..2000 {
            shuffle(&mut pop, &mut state);
            let mut correct = 0;
            for (i, chunk) in pop.chunks(batch).enumerate() {
                correct += chunk.iter().filter(|&&c| c).count();
                if improbable(correct, (i + 1) * batch, total, 1600, 0.99, total / batch) {
                    wrong += 1;
                    break;
                }
            }
        }
        assert!(wrong <= 20, "{wrong} of 2000 raced answers wrong");
    }

    #[test]
    fn estimates_stay_below_the_missed_threshold() {
        assert_eq!(estimate(300, 500, 2000, 1600), 1200);
        assert_eq!(estimate(499, 500, 2000, 1600), 1599);
        assert_eq!(estimate(0, 0, 2000, 1600), 0);
    }
}
