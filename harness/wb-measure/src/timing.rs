//! Wall-clock timing of a closure: steady-state warm-up, flat sampling with a
//! monotonic clock, summary statistics and a validity record.

use std::hint::black_box;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::stats::median_sorted;
pub use crate::stats::Stats;

/// Relative tolerance between the medians of two consecutive warm-up blocks
/// for the warm-up to count as steady.
pub const WARMUP_STEADY_TOLERANCE: f64 = 0.05;

/// Largest warm-up block (calls); blocks double up to this size, then repeat.
const WARMUP_MAX_BLOCK: usize = 4096;

/// Number of empty-closure timings used to estimate the harness overhead.
const OVERHEAD_ITERS: usize = 1000;

/// Seed of the bootstrap resampling in [`measure`] (fixed, so the intervals of
/// a given sample are reproducible).
pub const TIMING_BOOTSTRAP_SEED: u64 = 0x5EED_7173_0000_0001;

/// How long and how often [`measure`] runs the closure.
///
/// Sampling stops as soon as both minima (`min_time_s`, `min_samples`) are
/// met, or at a cap (`max_samples` samples or `max_time_s` seconds of
/// sampling), whichever comes first. Stopping at a cap before the minima are
/// met marks the result invalid, so choose `max_samples` at least
/// `min_time_s / expected latency`: with the defaults, a closure faster than
/// 1.5 ms reaches 2000 samples in under 3 s and is marked
/// "min time not met".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimingConfig {
    /// Minimum warm-up duration in seconds, even if steady earlier.
    pub warmup_min_s: f64,
    /// Maximum warm-up duration in seconds; reaching it without a steady
    /// state makes the result invalid.
    pub warmup_max_s: f64,
    /// Minimum total measured time (sum of the samples' wall time, seconds).
    pub min_time_s: f64,
    /// Minimum number of samples (one call each). LoadGen needs 64 for a
    /// p90 and 662 for a p99.
    pub min_samples: usize,
    /// Hard cap on the number of samples.
    pub max_samples: usize,
    /// Hard cap on the sampling phase's wall time in seconds.
    pub max_time_s: f64,
    /// Largest acceptable coefficient of variation of the samples.
    pub cv_threshold: f64,
}

impl Default for TimingConfig {
    fn default() -> Self {
        Self {
            warmup_min_s: 1.0,
            warmup_max_s: 5.0,
            min_time_s: 3.0,
            min_samples: 64,
            max_samples: 2000,
            max_time_s: 60.0,
            cv_threshold: 0.10,
        }
    }
}

impl TimingConfig {
    /// A fast preset for tests and smoke runs (tens of milliseconds). Results
    /// measured with it are not meant for publication.
    pub fn quick() -> Self {
        Self {
            warmup_min_s: 0.01,
            warmup_max_s: 0.05,
            min_time_s: 0.02,
            min_samples: 32,
            max_samples: 5000,
            max_time_s: 1.0,
            cv_threshold: 0.50,
        }
    }
}

/// Validity record of one measurement, LoadGen style: valid iff no reason
/// was recorded.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Validity {
    /// `true` when `reasons` is empty.
    pub valid: bool,
    /// Human-readable reasons for invalidity, e.g. `"samples 40 < 64"`.
    pub reasons: Vec<String>,
}

impl Validity {
    /// A valid record without reasons.
    pub fn ok() -> Self {
        Self {
            valid: true,
            reasons: Vec::new(),
        }
    }

    /// Add a reason; the record becomes invalid.
    pub fn invalidate(&mut self, reason: impl Into<String>) {
        self.reasons.push(reason.into());
        self.valid = false;
    }

    /// Combine with another record (for example an energy record): invalid
    /// if either is.
    pub fn merge(&mut self, other: &Validity) {
        for r in &other.reasons {
            self.invalidate(r.clone());
        }
    }

    /// The reasons joined with `"; "` (empty when valid), for a companion
    /// column of the results table.
    pub fn reasons_joined(&self) -> String {
        self.reasons.join("; ")
    }

    /// Check a sample summary against a configuration.
    ///
    /// `measured_s` is the total measured time (the sum of the samples in
    /// seconds). Possible reasons, in this order:
    /// `"min time not met (2.1 s < 3 s)"`, `"samples 40 < 64"`,
    /// `"cv 0.23 > 0.10"` (also when the CV is NaN, i.e. fewer than two
    /// samples).
    pub fn evaluate(cfg: &TimingConfig, stats: &Stats, measured_s: f64) -> Validity {
        let mut v = Validity::ok();
        if measured_s < cfg.min_time_s {
            // One decimal unless that would round up to the minimum.
            let shown = if (measured_s * 10.0).round() / 10.0 < cfg.min_time_s {
                format!("{measured_s:.1}")
            } else {
                format!("{measured_s:.3}")
            };
            v.invalidate(format!(
                "min time not met ({shown} s < {} s)",
                cfg.min_time_s
            ));
        }
        if stats.n < cfg.min_samples {
            v.invalidate(format!("samples {} < {}", stats.n, cfg.min_samples));
        }
        // A NaN CV (fewer than two samples) is reported too.
        if stats.cv.is_nan() || stats.cv > cfg.cv_threshold {
            v.invalidate(format!("cv {:.2} > {:.2}", stats.cv, cfg.cv_threshold));
        }
        v
    }
}

/// Result of [`measure`]: raw samples, warm-up record, statistics, validity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Wall time of each timed call in milliseconds, in call order
    /// (nothing subtracted).
    pub samples_ms: Vec<f64>,
    /// Number of warm-up calls (not part of `samples_ms`).
    pub warmup_iters: usize,
    /// Warm-up wall time in seconds.
    pub warmup_s: f64,
    /// Whether the warm-up reached a steady state (two consecutive blocks'
    /// medians within [`WARMUP_STEADY_TOLERANCE`]) before `warmup_max_s`.
    pub warmup_steady: bool,
    /// Sum of the samples in seconds (the "min time" of the validity rule).
    pub measured_s: f64,
    /// Median time of an empty closure measured the same way, in
    /// milliseconds: the harness's own per-sample overhead. It is recorded,
    /// never subtracted from the samples or the statistics.
    pub overhead_ms: f64,
    /// Statistics of `samples_ms`.
    pub stats: Stats,
    /// Validity against the configuration used.
    pub validity: Validity,
}

/// Time `f` with warm-up and flat sampling (one call per sample).
///
/// 1. Warm-up in doubling blocks (1, 2, 4, … calls, at most 4096 per block):
///    the warm-up ends when it has lasted at least `warmup_min_s` and the
///    median call time of the last block is within 5 % of the previous
///    block's, or when `warmup_max_s` is reached (then
///    [`Timing::warmup_steady`] is `false` and the result is invalid).
/// 2. Each further call is timed individually with [`Instant`], read outside
///    the closure, until the minima of `cfg` are met or a cap is reached.
/// 3. The overhead of timing an empty closure is measured and recorded.
///
/// The first error returned by `f` aborts the measurement and is returned.
pub fn measure<F, E>(cfg: &TimingConfig, mut f: F) -> Result<Timing, E>
where
    F: FnMut() -> Result<(), E>,
{
    // --- warm-up -----------------------------------------------------------
    let warm_start = Instant::now();
    let mut warmup_iters = 0usize;
    let mut warmup_steady = false;
    let mut prev_median: Option<f64> = None;
    let mut block = 1usize;
    let mut times = Vec::with_capacity(WARMUP_MAX_BLOCK);
    'warm: loop {
        times.clear();
        for _ in 0..block {
            let t0 = Instant::now();
            f()?;
            times.push(t0.elapsed().as_secs_f64());
            warmup_iters += 1;
            if warm_start.elapsed().as_secs_f64() >= cfg.warmup_max_s {
                break 'warm;
            }
        }
        times.sort_by(f64::total_cmp);
        let med = median_sorted(&times);
        let steady = prev_median.is_some_and(|p| (med - p).abs() <= WARMUP_STEADY_TOLERANCE * p);
        if steady && warm_start.elapsed().as_secs_f64() >= cfg.warmup_min_s {
            warmup_steady = true;
            break;
        }
        prev_median = Some(med);
        block = (block * 2).min(WARMUP_MAX_BLOCK);
    }
    let warmup_s = warm_start.elapsed().as_secs_f64();

    // --- sampling ----------------------------------------------------------
    let sample_start = Instant::now();
    let mut samples_ms = Vec::with_capacity(cfg.min_samples.min(cfg.max_samples));
    let mut measured_s = 0.0;
    let mut capped_by = None;
    loop {
        if measured_s >= cfg.min_time_s && samples_ms.len() >= cfg.min_samples {
            break;
        }
        if samples_ms.len() >= cfg.max_samples {
            capped_by = Some(format!("max_samples {}", cfg.max_samples));
            break;
        }
        if sample_start.elapsed().as_secs_f64() >= cfg.max_time_s {
            capped_by = Some(format!("max_time {} s", cfg.max_time_s));
            break;
        }
        let t0 = Instant::now();
        f()?;
        let dt = t0.elapsed().as_secs_f64();
        measured_s += dt;
        samples_ms.push(dt * 1e3);
    }

    let overhead_ms = empty_closure_overhead_ms();
    let stats = Stats::from_samples(&samples_ms, TIMING_BOOTSTRAP_SEED);
    let mut validity = Validity::evaluate(cfg, &stats, measured_s);
    if !warmup_steady {
        validity.invalidate(format!(
            "warm-up not steady within {} s ({warmup_iters} calls)",
            cfg.warmup_max_s
        ));
    }
    if let (false, Some(cap)) = (validity.valid, capped_by) {
        validity.invalidate(format!("sampling stopped at {cap}"));
    }
    Ok(Timing {
        samples_ms,
        warmup_iters,
        warmup_s,
        warmup_steady,
        measured_s,
        overhead_ms,
        stats,
        validity,
    })
}

/// Median wall time, in milliseconds, of timing an empty closure exactly the
/// way [`measure`] times the real one.
pub fn empty_closure_overhead_ms() -> f64 {
    let empty = || -> Result<(), ()> { black_box(Ok(())) };
    let mut t = Vec::with_capacity(OVERHEAD_ITERS);
    for _ in 0..OVERHEAD_ITERS {
        let t0 = Instant::now();
        let _ = black_box(empty());
        t.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    t.sort_by(f64::total_cmp);
    median_sorted(&t)
}

/// Throughput in images per second implied by the median call time, for a
/// closure that processes `images_per_call` images per call. Infinite or NaN
/// when the median is zero or undefined.
pub fn throughput(images_per_call: usize, stats: &Stats) -> f64 {
    images_per_call as f64 / (stats.median_ms / 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats_with(n: usize, cv: f64) -> Stats {
        let mut s = Stats::from_samples(&vec![1.0; n.max(1)], 0);
        s.n = n;
        s.cv = cv;
        s
    }

    #[test]
    fn validity_reasons_are_specific() {
        let cfg = TimingConfig::default();
        let v = Validity::evaluate(&cfg, &stats_with(40, 0.23), 2.1);
        assert!(!v.valid);
        assert_eq!(
            v.reasons,
            vec![
                "min time not met (2.1 s < 3 s)".to_string(),
                "samples 40 < 64".to_string(),
                "cv 0.23 > 0.10".to_string(),
            ]
        );
        assert_eq!(
            v.reasons_joined(),
            "min time not met (2.1 s < 3 s); samples 40 < 64; cv 0.23 > 0.10"
        );
        let ok = Validity::evaluate(&cfg, &stats_with(64, 0.05), 3.0);
        assert!(ok.valid && ok.reasons.is_empty() && ok.reasons_joined().is_empty());
        let close = Validity::evaluate(&cfg, &stats_with(64, 0.01), 2.96);
        assert_eq!(
            close.reasons,
            vec!["min time not met (2.960 s < 3 s)".to_string()]
        );
        let nan = Validity::evaluate(&cfg, &stats_with(100, f64::NAN), 5.0);
        assert_eq!(nan.reasons, vec!["cv NaN > 0.10".to_string()]);
    }

    #[test]
    fn validity_merge() {
        let mut a = Validity::ok();
        let mut b = Validity::ok();
        b.invalidate("energy unavailable");
        a.merge(&b);
        assert!(!a.valid);
        assert_eq!(a.reasons_joined(), "energy unavailable");
    }

    #[test]
    fn measure_meets_minimum_count_on_cheap_closure() {
        let cfg = TimingConfig::quick();
        let mut calls = 0usize;
        let t = measure(&cfg, || -> Result<(), ()> {
            calls += 1;
            black_box((0..200u64).sum::<u64>());
            Ok(())
        })
        .unwrap();
        assert!(
            t.samples_ms.len() >= cfg.min_samples,
            "{}",
            t.samples_ms.len()
        );
        assert!(t.samples_ms.len() <= cfg.max_samples);
        assert_eq!(calls, t.warmup_iters + t.samples_ms.len());
        assert!(t.warmup_iters >= 1);
        assert!(t.warmup_s >= cfg.warmup_min_s);
        assert_eq!(t.stats.n, t.samples_ms.len());
        assert!(t.samples_ms.iter().all(|&x| x >= 0.0));
        let sum_s: f64 = t.samples_ms.iter().sum::<f64>() / 1e3;
        assert!((sum_s - t.measured_s).abs() < 1e-9);
        assert!(t.overhead_ms >= 0.0 && t.overhead_ms.is_finite());
        assert_eq!(t.validity.valid, t.validity.reasons.is_empty());
    }

    #[test]
    fn measure_respects_min_time_with_slow_closure() {
        let cfg = TimingConfig {
            warmup_min_s: 0.0,
            warmup_max_s: 0.02,
            min_time_s: 0.05,
            min_samples: 3,
            max_samples: 1000,
            max_time_s: 5.0,
            cv_threshold: 1.0,
        };
        let t = measure(&cfg, || -> Result<(), ()> {
            std::thread::sleep(std::time::Duration::from_millis(5));
            Ok(())
        })
        .unwrap();
        assert!(t.measured_s >= 0.05);
        // Each sample is at least the sleep.
        assert!(t.stats.min_ms >= 5.0);
        assert!(t.samples_ms.len() >= 3 && t.samples_ms.len() <= 11);
    }

    #[test]
    fn measure_caps_at_max_samples_and_says_so() {
        let cfg = TimingConfig {
            min_time_s: 100.0,
            max_samples: 50,
            ..TimingConfig::quick()
        };
        let t = measure(&cfg, || -> Result<(), ()> { Ok(()) }).unwrap();
        assert_eq!(t.samples_ms.len(), 50);
        assert!(!t.validity.valid);
        assert!(t.validity.reasons[0].starts_with("min time not met"));
        assert!(t
            .validity
            .reasons
            .iter()
            .any(|r| r == "sampling stopped at max_samples 50"));
    }

    #[test]
    fn measure_propagates_the_first_error() {
        let mut k = 0;
        let r = measure(&TimingConfig::quick(), || {
            k += 1;
            if k == 5 {
                Err(format!("boom at {k}"))
            } else {
                Ok(())
            }
        });
        assert_eq!(r.unwrap_err(), "boom at 5");
        assert_eq!(k, 5);
    }

    #[test]
    fn throughput_from_median() {
        let st = Stats::from_samples(&[4.0, 5.0, 6.0], 0);
        assert!((throughput(10, &st) - 2000.0).abs() < 1e-9);
        assert!((throughput(1, &st) - 200.0).abs() < 1e-9);
    }
}
