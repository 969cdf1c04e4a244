//! Interleaved A/B timing of an execution path against the FP32 reference, and drift
//! between reference timings taken at different moments of a run.
//!
//! Two paths timed one after the other see different machines: turbo, thermal state and
//! background load move by several percent within minutes, which is larger than most of
//! the differences a compression method makes. [`measure_ab`] therefore alternates short
//! blocks of the reference (A) and the candidate (B) in an A B B A A B … order, so that a
//! linear drift cancels within every pair of rounds, and reports the candidate's time as
//! a **ratio to the reference with a paired bootstrap interval** over rounds
//! ([`ratio_ci`]), beside both absolute medians.
//!
//! [`detect_drift`] compares the reference timings a run takes at intervals (before each
//! model group, every N cells): the machine changed speed when the fastest and the
//! slowest of them differ by more than a tolerance *and* their intervals do not overlap,
//! so that noise alone never flags a run.

use crate::rng::SplitMix64;
use crate::stats::Stats;
use crate::timing::Validity;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Resamples of the ratio bootstrap.
pub const RATIO_BOOTSTRAP_RESAMPLES: usize = 2000;

/// How [`measure_ab`] alternates the two paths.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AbConfig {
    /// Warm-up of each path before the first round (seconds, at least one call each).
    pub warmup_s: f64,
    /// Rounds (each round times one block of A and one of B).
    pub rounds: usize,
    /// Least time one block lasts (seconds): the block's call count is chosen from the
    /// warm-up so that the *faster* path's block takes at least this long (with a 10 %
    /// margin for the warm-up's estimate).
    pub block_s: f64,
    /// Fewest timed calls per path over all rounds (e.g. 64 for a p90): blocks get at
    /// least `min_calls / rounds` calls.
    pub min_calls: usize,
    /// Seed of the bootstrap.
    pub seed: u64,
    /// Fewest rounds for a valid comparison.
    pub min_rounds: usize,
}

impl Default for AbConfig {
    fn default() -> Self {
        Self {
            warmup_s: 1.0,
            rounds: 20,
            block_s: 0.25,
            min_calls: 0,
            seed: 0x00AB_7E57,
            min_rounds: 10,
        }
    }
}

/// One round: the mean time of one call of each path in its block (milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AbRound {
    /// Reference (FP32) mean per call.
    pub reference_ms: f64,
    /// Candidate mean per call.
    pub candidate_ms: f64,
}

/// A ratio `candidate / reference` with its 95 % paired-bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RatioCi {
    /// Geometric mean of the per-round ratios (a ratio's natural centre: 2× slower
    /// and 2× faster average to 1).
    pub ratio: f64,
    /// Lower end of the percentile interval.
    pub ci_low: f64,
    /// Upper end.
    pub ci_high: f64,
}

impl RatioCi {
    /// Whether the interval excludes 1 with the candidate faster, slower, or neither
    /// (`"faster"`, `"slower"`, `"same"`), beyond a noise band of `noise` (e.g. 0.02
    /// for ±2 %) as criterion does.
    pub fn verdict(&self, noise: f64) -> &'static str {
        if self.ci_high < 1.0 - noise {
            "faster"
        } else if self.ci_low > 1.0 + noise {
            "slower"
        } else {
            "same"
        }
    }
}

/// The outcome of [`measure_ab`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AbTiming {
    /// Calls per block.
    pub calls_per_block: usize,
    /// Every round, in order.
    pub rounds: Vec<AbRound>,
    /// Wall time of every timed reference call (milliseconds, in call order): the raw
    /// samples. Empty when only block means are known.
    pub reference_calls_ms: Vec<f64>,
    /// The same for the candidate.
    pub candidate_calls_ms: Vec<f64>,
    /// Statistics of the reference's per-call times (of the block means when the calls
    /// are not known): median and its interval, p90, p99, CV.
    pub reference: Stats,
    /// The same for the candidate.
    pub candidate: Stats,
    /// Candidate time over reference time (below 1: the candidate is faster).
    pub ratio: RatioCi,
    /// Validity: enough rounds, finite times.
    pub validity: Validity,
}

/// The paired ratio of a list of rounds: the geometric mean of `candidate / reference`
/// per round, and a percentile bootstrap over rounds (resampling whole rounds keeps the
/// pairing). NaN for no rounds; a zero-width interval for one.
pub fn ratio_ci(rounds: &[AbRound], seed: u64) -> RatioCi {
    let logs: Vec<f64> = rounds
        .iter()
        .map(|r| (r.candidate_ms / r.reference_ms).ln())
        .collect();
    let n = logs.len();
    if n == 0 {
        return RatioCi {
            ratio: f64::NAN,
            ci_low: f64::NAN,
            ci_high: f64::NAN,
        };
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let centre = mean(&logs);
    let mut rng = SplitMix64::new(seed);
    let mut boot: Vec<f64> = (0..RATIO_BOOTSTRAP_RESAMPLES)
        .map(|_| (0..n).map(|_| logs[rng.below(n)]).sum::<f64>() / n as f64)
        .collect();
    boot.sort_by(f64::total_cmp);
    let at = |q: f64| boot[((q * (boot.len() - 1) as f64).round() as usize).min(boot.len() - 1)];
    RatioCi {
        ratio: centre.exp(),
        ci_low: at(0.025).exp(),
        ci_high: at(0.975).exp(),
    }
}

/// Summarises rounds measured elsewhere as [`measure_ab`] does, without per-call times.
pub fn summarise(cfg: &AbConfig, calls_per_block: usize, rounds: Vec<AbRound>) -> AbTiming {
    summarise_calls(cfg, calls_per_block, rounds, Vec::new(), Vec::new())
}

/// Summarises rounds and the per-call times behind them.
pub fn summarise_calls(
    cfg: &AbConfig,
    calls_per_block: usize,
    rounds: Vec<AbRound>,
    reference_calls_ms: Vec<f64>,
    candidate_calls_ms: Vec<f64>,
) -> AbTiming {
    let means = |f: fn(&AbRound) -> f64| rounds.iter().map(f).collect::<Vec<f64>>();
    let (a, b) = (means(|r| r.reference_ms), means(|r| r.candidate_ms));
    let stats = |calls: &[f64], blocks: &[f64], seed: u64| {
        Stats::from_samples(if calls.is_empty() { blocks } else { calls }, seed)
    };
    let mut validity = Validity::ok();
    if rounds.len() < cfg.min_rounds {
        validity.invalidate(format!("rounds {} < {}", rounds.len(), cfg.min_rounds));
    }
    if a.iter().chain(&b).any(|x| !x.is_finite() || *x <= 0.0) {
        validity.invalidate("a block time is not a positive finite number");
    }
    AbTiming {
        calls_per_block,
        ratio: ratio_ci(&rounds, cfg.seed),
        reference: stats(&reference_calls_ms, &a, cfg.seed),
        candidate: stats(&candidate_calls_ms, &b, cfg.seed ^ 1),
        rounds,
        reference_calls_ms,
        candidate_calls_ms,
        validity,
    }
}

/// Times `candidate` against `reference` in alternating blocks (A B, B A, A B, …),
/// each call one finished unit of work (a forward pass). Both are warmed up first; the
/// calls per block come from the faster one's warm-up time and `min_calls`, so that
/// each path gets at least `rounds · block_s` of timed calls and `min_calls` of them.
pub fn measure_ab<A, B, E>(
    cfg: &AbConfig,
    mut reference: A,
    mut candidate: B,
) -> Result<AbTiming, E>
where
    A: FnMut() -> Result<(), E>,
    B: FnMut() -> Result<(), E>,
{
    let warm = |f: &mut dyn FnMut() -> Result<(), E>| -> Result<f64, E> {
        let start = Instant::now();
        let mut calls = 0usize;
        while calls == 0 || start.elapsed().as_secs_f64() < cfg.warmup_s {
            f()?;
            calls += 1;
        }
        Ok(start.elapsed().as_secs_f64() / calls as f64)
    };
    let per_call = warm(&mut reference)?.min(warm(&mut candidate)?);
    let for_time = (1.1 * cfg.block_s / per_call.max(1e-9)).ceil() as usize;
    let for_count = cfg.min_calls.div_ceil(cfg.rounds.max(1));
    let calls = for_time.max(for_count).max(1);
    // Each call is timed on its own (the raw samples); the block mean is their sum
    // over the calls, the clock read between calls and not inside them.
    let block = |f: &mut dyn FnMut() -> Result<(), E>, out: &mut Vec<f64>| -> Result<f64, E> {
        let mut sum = 0.0;
        for _ in 0..calls {
            let t = Instant::now();
            f()?;
            let ms = t.elapsed().as_secs_f64() * 1e3;
            out.push(ms);
            sum += ms;
        }
        Ok(sum / calls as f64)
    };
    let (mut ref_calls, mut cand_calls) = (Vec::new(), Vec::new());
    let mut rounds = Vec::with_capacity(cfg.rounds);
    for i in 0..cfg.rounds {
        // A B then B A: a drift that is linear in time adds the same to both paths
        // over every pair of rounds.
        let (a, b) = if i % 2 == 0 {
            let a = block(&mut reference, &mut ref_calls)?;
            (a, block(&mut candidate, &mut cand_calls)?)
        } else {
            let b = block(&mut candidate, &mut cand_calls)?;
            (block(&mut reference, &mut ref_calls)?, b)
        };
        rounds.push(AbRound {
            reference_ms: a,
            candidate_ms: b,
        });
    }
    Ok(summarise_calls(cfg, calls, rounds, ref_calls, cand_calls))
}

/// One timing of the FP32 reference taken during a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceCheck {
    /// When or where in the run it was taken (e.g. `"resnet20 start"`, `"cell 40"`).
    pub label: String,
    /// Median per-call time (milliseconds).
    pub median_ms: f64,
    /// 95 % interval of the median.
    pub ci_low_ms: f64,
    /// Upper end.
    pub ci_high_ms: f64,
}

impl ReferenceCheck {
    /// A check from the statistics of its samples.
    pub fn from_stats(label: impl Into<String>, s: &Stats) -> Self {
        Self {
            label: label.into(),
            median_ms: s.median_ms,
            ci_low_ms: s.ci_low_ms,
            ci_high_ms: s.ci_high_ms,
        }
    }
}

/// What [`detect_drift`] found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    /// Slowest reference median over the fastest, minus one (0.05: 5 % slower).
    pub change: f64,
    /// Whether the change exceeds the tolerance with non-overlapping intervals.
    pub drifted: bool,
    /// Labels of the fastest and the slowest check.
    pub fastest: String,
    /// The slowest.
    pub slowest: String,
    /// A sentence for reports: what moved, by how much, between which checks.
    pub note: String,
}

/// Drift between reference checks of the same (model, path, threads, batch): flagged
/// when the slowest median exceeds the fastest by more than `tolerance` (relative) and
/// the two intervals do not overlap. `None` for fewer than two checks.
pub fn detect_drift(checks: &[ReferenceCheck], tolerance: f64) -> Option<Drift> {
    let finite: Vec<&ReferenceCheck> = checks.iter().filter(|c| c.median_ms.is_finite()).collect();
    if finite.len() < 2 {
        return None;
    }
    let fastest = finite
        .iter()
        .min_by(|a, b| a.median_ms.total_cmp(&b.median_ms))
        .expect("two or more");
    let slowest = finite
        .iter()
        .max_by(|a, b| a.median_ms.total_cmp(&b.median_ms))
        .expect("two or more");
    let change = slowest.median_ms / fastest.median_ms - 1.0;
    let separated = slowest.ci_low_ms > fastest.ci_high_ms;
    let drifted = change > tolerance && separated;
    // Three readings: drift (large and beyond noise), noise (large, intervals
    // overlapping: the machine was too noisy to tell), stable (within the tolerance).
    let state = if drifted {
        "drifted"
    } else if change > tolerance {
        "too noisy to tell drift: moved"
    } else {
        "stable, moved"
    };
    let note = format!(
        "FP32 reference {} by {:.1} % between \"{}\" ({:.3} ms) and \"{}\" ({:.3} ms){}",
        state,
        100.0 * change,
        fastest.label,
        fastest.median_ms,
        slowest.label,
        slowest.median_ms,
        if drifted {
            format!(
                ": beyond the {:.0} % tolerance, intervals apart",
                100.0 * tolerance
            )
        } else {
            String::new()
        }
    );
    Some(Drift {
        change,
        drifted,
        fastest: fastest.label.clone(),
        slowest: slowest.label.clone(),
        note,
    })
}

#[cfg(test)]
mod tests;
