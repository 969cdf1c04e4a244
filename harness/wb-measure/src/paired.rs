//! Paired comparison of two classifiers on the same images, and aggregation over seeds.
//!
//! Two models scored on the same images differ only where one is right and the other
//! wrong, so the question "is the compressed model worse than the reference?" is
//! answered from the two discordant counts: `gain` (candidate right, reference wrong)
//! and `loss` (candidate wrong, reference right). Top-1 on 8,000 images has a standard
//! error near 0.45 pp on its own, but the paired difference is far tighter when the two
//! models agree on most images — the reason every candidate is tested paired.

use crate::rng::SplitMix64;

/// Resamples of the paired bootstrap.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;

/// A paired comparison of a candidate against a reference on `n` images.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Paired {
    /// Images compared.
    pub n: u64,
    /// Images the candidate gets right and the reference wrong.
    pub gain: u64,
    /// Images the candidate gets wrong and the reference right.
    pub loss: u64,
    /// Candidate top-1 minus reference top-1, percentage points.
    pub delta_pp: f64,
    /// Two-sided exact McNemar p-value of "no difference".
    pub mcnemar_p: f64,
    /// 95 % paired-bootstrap interval of `delta_pp` (percentile method).
    pub ci_low_pp: f64,
    /// Upper end of the interval.
    pub ci_high_pp: f64,
}

impl Paired {
    /// Compares per-image correctness (`true` = top-1 right) of a candidate with a
    /// reference on the same images, in the same order; `seed` fixes the bootstrap.
    ///
    /// # Panics
    /// When the two slices differ in length (a caller's bug: the images must be the
    /// same).
    pub fn from_correct(reference: &[bool], candidate: &[bool], seed: u64) -> Paired {
        assert_eq!(
            reference.len(),
            candidate.len(),
            "paired on different images"
        );
        let gain = reference
            .iter()
            .zip(candidate)
            .filter(|(r, c)| !**r && **c)
            .count();
        let loss = reference
            .iter()
            .zip(candidate)
            .filter(|(r, c)| **r && !**c)
            .count();
        Paired::from_counts(reference.len() as u64, gain as u64, loss as u64, seed)
    }

    /// The comparison from its counts alone (they are all it depends on).
    pub fn from_counts(n: u64, gain: u64, loss: u64, seed: u64) -> Paired {
        let delta = |g: u64, l: u64| {
            if n == 0 {
                f64::NAN
            } else {
                100.0 * (g as f64 - l as f64) / n as f64
            }
        };
        let (ci_low_pp, ci_high_pp) = bootstrap_ci(n, gain, loss, seed, &delta);
        Paired {
            n,
            gain,
            loss,
            delta_pp: delta(gain, loss),
            mcnemar_p: mcnemar_exact_p(gain, loss),
            ci_low_pp,
            ci_high_pp,
        }
    }

    /// The verdict on "top-1 at most `tolerance_pp` below the reference".
    pub fn verdict(&self, tolerance_pp: f64) -> Verdict {
        Verdict::of(self.ci_low_pp, self.ci_high_pp, tolerance_pp)
    }
}

/// Whether a target of "at most T pp below the reference" holds, given a 95 % interval
/// of the difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The whole interval is at or above −T.
    Met,
    /// The interval contains −T: the data cannot tell.
    WithinNoise,
    /// The whole interval is below −T.
    Missed,
}

impl Verdict {
    /// The verdict for the interval `[low, high]` (pp) and tolerance `tolerance_pp` ≥ 0.
    pub fn of(low: f64, high: f64, tolerance_pp: f64) -> Verdict {
        if low >= -tolerance_pp {
            Verdict::Met
        } else if high < -tolerance_pp {
            Verdict::Missed
        } else {
            Verdict::WithinNoise
        }
    }

    /// `met`, `within noise` or `missed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::WithinNoise => "within noise",
            Verdict::Missed => "missed",
        }
    }
}

/// Two-sided exact McNemar test: with `b + c` discordant images, the probability under
/// "each discordant image is equally likely either way" of a split at least as uneven
/// as `b : c`, i.e. `min(1, 2·P[X ≤ min(b, c)])` for `X ~ Binomial(b + c, ½)`.
pub fn mcnemar_exact_p(b: u64, c: u64) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    let k = b.min(c);
    // Sum the lower tail in log space: ln C(n, i) + n·ln ½, term by term.
    let ln_half_n = n as f64 * 0.5f64.ln();
    let mut ln_choose = 0.0f64; // ln C(n, 0)
    let mut tail = 0.0f64;
    for i in 0..=k {
        if i > 0 {
            ln_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        tail += (ln_choose + ln_half_n).exp();
    }
    (2.0 * tail).min(1.0)
}

/// Percentile interval of `stat(gain*, loss*)` over [`BOOTSTRAP_RESAMPLES`] resamples of
/// the `n` paired images (each image a gain, a loss or a tie).
fn bootstrap_ci(
    n: u64,
    gain: u64,
    loss: u64,
    seed: u64,
    stat: &dyn Fn(u64, u64) -> f64,
) -> (f64, f64) {
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mut rng = SplitMix64::new(seed);
    let mut values: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
        .map(|_| {
            let (mut g, mut l) = (0u64, 0u64);
            for _ in 0..n {
                let u = rng.below(n as usize) as u64;
                if u < gain {
                    g += 1;
                } else if u < gain + loss {
                    l += 1;
                }
            }
            stat(g, l)
        })
        .collect();
    values.sort_by(f64::total_cmp);
    let at = |q: f64| crate::stats::quantile_linear(&values, q);
    (at(0.025), at(0.975))
}

/// Mean of per-seed values with a 95 % Student-t interval: `(mean, low, high)`; the
/// interval is NaN for fewer than two values.
pub fn mean_ci(values: &[f64]) -> (f64, f64, f64) {
    let n = values.len();
    if n == 0 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return (mean, f64::NAN, f64::NAN);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let half = t_975(n - 1) * (var / n as f64).sqrt();
    (mean, mean - half, mean + half)
}

/// The 97.5 % quantile of Student's t with `df` degrees of freedom (exact table to 30,
/// then the first Cornish–Fisher correction, within 0.001 of the true value).
pub fn t_975(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::NAN,
        1..=30 => T[df - 1],
        _ => {
            let z = 1.959_964f64;
            let d = df as f64;
            z + (z.powi(3) + z) / (4.0 * d)
                + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * d * d)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mcnemar_matches_the_binomial_tail() {
        // 2·(C(12,0) + C(12,1) + C(12,2)) / 2^12 = 2·79/4096.
        assert!((mcnemar_exact_p(10, 2) - 158.0 / 4096.0).abs() < 1e-12);
        assert!((mcnemar_exact_p(2, 10) - 158.0 / 4096.0).abs() < 1e-12);
        // 2·P[X ≤ 0] for n = 5: 2/32.
        assert!((mcnemar_exact_p(5, 0) - 2.0 / 32.0).abs() < 1e-12);
        assert_eq!(mcnemar_exact_p(0, 0), 1.0);
        assert_eq!(mcnemar_exact_p(7, 7), 1.0);
        // R: binom.test(40, 100)$p.value = 0.05688793
        assert!((mcnemar_exact_p(40, 60) - 0.056_887_93).abs() < 1e-7);
        // Large counts stay finite and tiny: binom.test(100, 1000) ≈ 0 (< 1e-150).
        let p = mcnemar_exact_p(100, 900);
        assert!(p > 0.0 && p < 1e-150, "{p}");
    }

    #[test]
    fn bootstrap_interval_brackets_the_difference_and_matches_its_spread() {
        // 8,000 images, 120 gains, 200 losses: Δ = −1.0 pp. The paired standard error
        // is sqrt(g + l − (g − l)²/n)/n = 0.2232 pp, so the 95 % interval is about
        // ±0.4375 pp.
        let p = Paired::from_counts(8000, 120, 200, 1);
        assert!((p.delta_pp + 1.0).abs() < 1e-12);
        assert!(p.ci_low_pp < -1.0 && p.ci_high_pp > -1.0);
        let half = (p.ci_high_pp - p.ci_low_pp) / 2.0;
        assert!((half - 0.4375).abs() < 0.04, "{half}");
        // The same seed gives the same interval.
        assert_eq!(p, Paired::from_counts(8000, 120, 200, 1));
    }

    #[test]
    fn from_correct_counts_the_discordant_images() {
        let r = [true, true, false, false, true];
        let c = [true, false, true, true, true];
        let p = Paired::from_correct(&r, &c, 0);
        assert_eq!((p.n, p.gain, p.loss), (5, 2, 1));
        assert!((p.delta_pp - 20.0).abs() < 1e-12);
        let same = Paired::from_correct(&r, &r, 0);
        assert_eq!((same.gain, same.loss, same.mcnemar_p), (0, 0, 1.0));
        assert_eq!((same.ci_low_pp, same.ci_high_pp), (0.0, 0.0));
    }

    #[test]
    fn verdicts_follow_the_interval() {
        assert_eq!(Verdict::of(-0.4, 0.1, 0.5), Verdict::Met);
        assert_eq!(Verdict::of(-0.5, 0.1, 0.5), Verdict::Met);
        assert_eq!(Verdict::of(-0.7, -0.3, 0.5), Verdict::WithinNoise);
        assert_eq!(Verdict::of(-1.2, -0.6, 0.5), Verdict::Missed);
    }

    #[test]
    fn seed_means_carry_a_student_t_interval() {
        let (m, lo, hi) = mean_ci(&[1.0, 2.0, 3.0]);
        // sd = 1, se = 1/√3, t(2) = 4.303.
        assert!((m - 2.0).abs() < 1e-12);
        assert!((hi - m - 4.303 / 3f64.sqrt()).abs() < 1e-9);
        assert!((m - lo - 4.303 / 3f64.sqrt()).abs() < 1e-9);
        let (m1, lo1, _) = mean_ci(&[5.0]);
        assert_eq!(m1, 5.0);
        assert!(lo1.is_nan());
        assert!((t_975(40) - 2.021).abs() < 2e-3);
        assert!((t_975(120) - 1.980).abs() < 2e-3);
    }
}
