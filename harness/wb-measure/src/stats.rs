//! Summary statistics of a latency sample: robust location and spread,
//! LoadGen-style conservative tail percentiles, and seeded bootstrap
//! confidence intervals.

use serde::{Deserialize, Serialize};

use crate::rng::SplitMix64;

/// Number of bootstrap resamples used by [`Stats::from_samples`].
pub const BOOTSTRAP_RESAMPLES: usize = 2000;

/// Confidence level of the bootstrap intervals in [`Stats`].
pub const CONFIDENCE: f64 = 0.95;

/// Summary of a sample of per-call latencies in milliseconds.
///
/// Every field is computed from the raw samples by [`Stats::from_samples`];
/// nothing is subtracted (harness overhead is recorded separately in
/// [`crate::Timing::overhead_ms`]). For an empty sample `n` is 0 and every
/// other field is NaN (serialized as `null` by JSON writers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Number of samples.
    pub n: usize,
    /// Arithmetic mean.
    pub mean_ms: f64,
    /// Lower end of the bootstrap 95 % percentile interval of the mean.
    pub mean_ci_low_ms: f64,
    /// Upper end of the bootstrap 95 % percentile interval of the mean.
    pub mean_ci_high_ms: f64,
    /// Median (average of the two middle values for even `n`).
    pub median_ms: f64,
    /// Lower end of the bootstrap 95 % percentile interval of the median
    /// ([`BOOTSTRAP_RESAMPLES`] resamples, deterministic given the seed).
    pub ci_low_ms: f64,
    /// Upper end of the bootstrap 95 % percentile interval of the median.
    pub ci_high_ms: f64,
    /// Conservative 90th percentile, see [`conservative_percentile`].
    pub p90_ms: f64,
    /// Conservative 99th percentile, see [`conservative_percentile`].
    pub p99_ms: f64,
    /// Smallest sample ("best case"; never use it as the headline).
    pub min_ms: f64,
    /// Largest sample.
    pub max_ms: f64,
    /// Median absolute deviation from the median, unscaled (multiply by
    /// 1.4826 for a normal-consistent estimate of the standard deviation).
    pub mad_ms: f64,
    /// Interquartile range `Q3 - Q1`, quartiles by linear interpolation
    /// between order statistics (Hyndman–Fan type 7, the NumPy default).
    pub iqr_ms: f64,
    /// Coefficient of variation: sample standard deviation (`n - 1`
    /// denominator) over the mean. NaN for fewer than two samples.
    pub cv: f64,
}

impl Stats {
    /// Summarize `samples` (milliseconds). `seed` drives the bootstrap
    /// resampling, so equal inputs and seeds give bit-identical intervals.
    ///
    /// Samples are expected to be finite; NaNs sort last (IEEE total order)
    /// and poison the mean.
    pub fn from_samples(samples: &[f64], seed: u64) -> Stats {
        let n = samples.len();
        if n == 0 {
            let nan = f64::NAN;
            return Stats {
                n: 0,
                mean_ms: nan,
                mean_ci_low_ms: nan,
                mean_ci_high_ms: nan,
                median_ms: nan,
                ci_low_ms: nan,
                ci_high_ms: nan,
                p90_ms: nan,
                p99_ms: nan,
                min_ms: nan,
                max_ms: nan,
                mad_ms: nan,
                iqr_ms: nan,
                cv: nan,
            };
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);

        let mean = samples.iter().sum::<f64>() / n as f64;
        let cv = if n < 2 {
            f64::NAN
        } else {
            let var = samples.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1) as f64;
            var.sqrt() / mean
        };
        let median = median_sorted(&sorted);
        let mut dev: Vec<f64> = sorted.iter().map(|x| (x - median).abs()).collect();
        dev.sort_by(f64::total_cmp);
        let mad = median_sorted(&dev);
        let iqr = quantile_linear(&sorted, 0.75) - quantile_linear(&sorted, 0.25);

        let boot = bootstrap(samples, seed);

        Stats {
            n,
            mean_ms: mean,
            mean_ci_low_ms: boot.mean_ci.0,
            mean_ci_high_ms: boot.mean_ci.1,
            median_ms: median,
            ci_low_ms: boot.median_ci.0,
            ci_high_ms: boot.median_ci.1,
            p90_ms: conservative_percentile(&sorted, 0.90),
            p99_ms: conservative_percentile(&sorted, 0.99),
            min_ms: sorted[0],
            max_ms: sorted[n - 1],
            mad_ms: mad,
            iqr_ms: iqr,
            cv,
        }
    }
}

/// Median of an ascending slice (mean of the two middle values for even
/// length). NaN for an empty slice.
pub fn median_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]),
    }
}

/// Quantile `q ∈ [0, 1]` of an ascending slice by linear interpolation
/// between order statistics (Hyndman–Fan type 7). NaN for an empty slice.
pub fn quantile_linear(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    let h = q.clamp(0.0, 1.0) * (n - 1) as f64;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(n - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// LoadGen-style conservative percentile of an ascending slice.
///
/// For `n` samples and quantile `q`, let `k = floor(q * n)` (0-based,
/// capped at `n - 1`); the estimate is `sorted[k]`, a real observation and
/// never an interpolation. Equivalently, with `t = n - k` the number of
/// samples at or above the estimate: the `t - 1` slowest samples are
/// discarded and the maximum of the rest is reported. This is the index rule
/// of MLPerf LoadGen's latency percentiles (without its early-stopping
/// confidence adjustment) and never lies below the interpolated percentile.
///
/// Examples: samples `1..=100` give p90 = 91 and p99 = 100; samples `1..=10`
/// give p90 = 10. NaN for an empty slice.
pub fn conservative_percentile(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    // The small epsilon keeps products such as 0.29 * 100 = 28.999999999999996
    // on the intended integer.
    let k = (q.clamp(0.0, 1.0) * n as f64 + 1e-9).floor() as usize;
    sorted[k.min(n - 1)]
}

/// Bootstrap percentile intervals of the mean and of the median.
struct Bootstrap {
    mean_ci: (f64, f64),
    median_ci: (f64, f64),
}

fn bootstrap(samples: &[f64], seed: u64) -> Bootstrap {
    let n = samples.len();
    let mut rng = SplitMix64::new(seed);
    let mut buf = vec![0.0; n];
    let mut medians = Vec::with_capacity(BOOTSTRAP_RESAMPLES);
    let mut means = Vec::with_capacity(BOOTSTRAP_RESAMPLES);
    for _ in 0..BOOTSTRAP_RESAMPLES {
        let mut sum = 0.0;
        for slot in buf.iter_mut() {
            let x = samples[rng.below(n)];
            *slot = x;
            sum += x;
        }
        means.push(sum / n as f64);
        medians.push(median_in_place(&mut buf));
    }
    medians.sort_by(f64::total_cmp);
    means.sort_by(f64::total_cmp);
    let a = (1.0 - CONFIDENCE) / 2.0;
    Bootstrap {
        mean_ci: (quantile_linear(&means, a), quantile_linear(&means, 1.0 - a)),
        median_ci: (
            quantile_linear(&medians, a),
            quantile_linear(&medians, 1.0 - a),
        ),
    }
}

/// Median by selection (reorders `v`); `v` must be non-empty.
fn median_in_place(v: &mut [f64]) -> f64 {
    let n = v.len();
    let mid = n / 2;
    let (left, m, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    let upper = *m;
    if n % 2 == 1 {
        upper
    } else {
        let lower = left.iter().copied().max_by(f64::total_cmp).unwrap_or(upper);
        0.5 * (lower + upper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conservative_percentile_hand_computed() {
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(conservative_percentile(&s, 0.90), 91.0);
        assert_eq!(conservative_percentile(&s, 0.99), 100.0);
        assert_eq!(conservative_percentile(&s, 0.29), 30.0);
        let s10: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(conservative_percentile(&s10, 0.90), 10.0);
        assert_eq!(conservative_percentile(&s10, 0.50), 6.0);
        // 1000 samples: p99 discards the 9 slowest and reports the max of
        // the rest (991), above the interpolated 990.01.
        let s1000: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!(conservative_percentile(&s1000, 0.99), 991.0);
        assert!(conservative_percentile(&s1000, 0.99) > quantile_linear(&s1000, 0.99));
        assert!(conservative_percentile(&[], 0.9).is_nan());
    }

    #[test]
    fn stats_on_hand_computed_sample() {
        // Sorted: 1 2 3 4 100.
        let st = Stats::from_samples(&[3.0, 1.0, 100.0, 2.0, 4.0], 1);
        assert_eq!(st.n, 5);
        assert_eq!(st.median_ms, 3.0);
        assert_eq!(st.mean_ms, 22.0);
        assert_eq!(st.min_ms, 1.0);
        assert_eq!(st.max_ms, 100.0);
        // |x - 3| = 2 1 0 1 97 -> sorted 0 1 1 2 97 -> median 1.
        assert_eq!(st.mad_ms, 1.0);
        // Type-7 quartiles: Q1 = 2, Q3 = 4.
        assert_eq!(st.iqr_ms, 2.0);
        assert_eq!(st.p90_ms, 100.0);
        let sd = ((19.0f64.powi(2)
            + 21.0f64.powi(2)
            + 20.0f64.powi(2)
            + 18.0f64.powi(2)
            + 78.0f64.powi(2))
            / 4.0)
            .sqrt();
        assert!((st.cv - sd / 22.0).abs() < 1e-12);
    }

    #[test]
    fn even_median_and_selection_median_agree() {
        let mut rng = SplitMix64::new(3);
        for n in 1..40 {
            let v: Vec<f64> = (0..n).map(|_| rng.unit_f64()).collect();
            let mut s = v.clone();
            s.sort_by(f64::total_cmp);
            let mut w = v.clone();
            assert_eq!(median_in_place(&mut w), median_sorted(&s), "n = {n}");
        }
        assert_eq!(median_sorted(&[1.0, 2.0, 3.0, 10.0]), 2.5);
    }

    #[test]
    fn bootstrap_ci_of_uniform_contains_true_median_with_plausible_width() {
        // 10,000 draws from U(10, 20): true median 15. The asymptotic standard
        // error of the sample median is 1 / (2 f(m) sqrt(n)) = 10 / (2 * 100)
        // = 0.05, so the 95 % interval should be about 0.2 wide.
        let mut rng = SplitMix64::new(42);
        let xs: Vec<f64> = (0..10_000).map(|_| 10.0 + 10.0 * rng.unit_f64()).collect();
        let st = Stats::from_samples(&xs, 7);
        assert!(st.ci_low_ms <= st.median_ms && st.median_ms <= st.ci_high_ms);
        assert!(st.ci_low_ms < 15.0 && 15.0 < st.ci_high_ms, "{st:?}");
        let width = st.ci_high_ms - st.ci_low_ms;
        assert!((0.1..0.4).contains(&width), "width {width}");
        // The mean's interval too: standard error 10/sqrt(12)/100 ≈ 0.029.
        assert!(
            st.mean_ci_low_ms < 15.0 && 15.0 < st.mean_ci_high_ms,
            "{st:?}"
        );
        let mw = st.mean_ci_high_ms - st.mean_ci_low_ms;
        assert!((0.07..0.18).contains(&mw), "mean width {mw}");
        // Uniform: CV = (10/sqrt(12))/15 ≈ 0.192; IQR ≈ 5; MAD ≈ 2.5.
        assert!((st.cv - 0.1925).abs() < 0.01, "cv {}", st.cv);
        assert!((st.iqr_ms - 5.0).abs() < 0.2, "iqr {}", st.iqr_ms);
        assert!((st.mad_ms - 2.5).abs() < 0.1, "mad {}", st.mad_ms);
        assert!((st.p90_ms - 19.0).abs() < 0.1 && (st.p99_ms - 19.9).abs() < 0.05);
    }

    #[test]
    fn bootstrap_is_deterministic_and_seed_dependent() {
        let mut rng = SplitMix64::new(5);
        let xs: Vec<f64> = (0..500).map(|_| rng.unit_f64()).collect();
        let a = Stats::from_samples(&xs, 11);
        let b = Stats::from_samples(&xs, 11);
        assert_eq!(a, b);
        let c = Stats::from_samples(&xs, 12);
        assert!(a.ci_low_ms != c.ci_low_ms || a.ci_high_ms != c.ci_high_ms);
        assert_eq!(a.median_ms, c.median_ms);
    }

    #[test]
    fn constant_sample_has_point_interval() {
        let st = Stats::from_samples(&[2.5; 300], 9);
        assert_eq!((st.ci_low_ms, st.median_ms, st.ci_high_ms), (2.5, 2.5, 2.5));
        assert_eq!((st.mean_ci_low_ms, st.mean_ci_high_ms), (2.5, 2.5));
        assert_eq!((st.mad_ms, st.iqr_ms, st.cv), (0.0, 0.0, 0.0));
    }

    #[test]
    fn empty_and_single_samples() {
        let e = Stats::from_samples(&[], 0);
        assert_eq!(e.n, 0);
        assert!(e.median_ms.is_nan() && e.ci_low_ms.is_nan() && e.cv.is_nan());
        let one = Stats::from_samples(&[4.0], 0);
        assert_eq!(
            (one.median_ms, one.ci_low_ms, one.ci_high_ms),
            (4.0, 4.0, 4.0)
        );
        assert!(one.cv.is_nan());
    }
}
