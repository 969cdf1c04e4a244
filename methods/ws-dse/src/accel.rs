//! Racing and surrogate screening of the NSGA-II configurations (opt-in through the
//! experiment's `[search] race` and `[search] surrogate`; README, Deviation 10). With
//! both off every configuration is evaluated on the whole search subset, as in the
//! paper's code.
//!
//! A configuration matters to the search only if it could enter the front of what has
//! been evaluated: it needs more correct images than every evaluated configuration with
//! at least its CR_obj. When such configurations exist, their best count + 1 is the
//! configuration's **need**; otherwise it is evaluated in full.
//!
//! - **Racing** asks the evaluator whether the configuration reaches its need, stopping
//!   once the images seen make it improbable at the stated confidence
//!   ([`wb_core::race`]) or impossible. A stopped configuration is given its rate on
//!   the images seen, scaled up and kept below its need.
//! - **Surrogate**: the layer sweep measured every kept (layer, k) alone; the surrogate
//!   predicts a configuration's loss (FP32's count minus its count) as `α` times the sum
//!   of its layers' losses alone, `α` fitted by least squares (through the origin) on
//!   every configuration evaluated in full so far (`α = 1` until [`FIT_MIN`] are). On
//!   ResNet56 the plain sum (`α = 1`) overestimated the loss by about 150 of 2,000
//!   images and screened out configurations that reached their need in 28 % of the
//!   audits; the fit follows what the evaluations show instead.
//!   A configuration predicted more than [`SURROGATE_MARGIN_PCT`] below its need
//!   is not evaluated and is given the prediction (kept below the need); every
//!   [`AUDIT_EVERY`]-th such configuration is evaluated anyway, and the log says how
//!   often the screen was wrong (the configuration reached its need).
//!
//! Every front point is evaluated in full before the front is re-scored, so the
//! reported points and the search's choice always rest on measured counts.

use std::collections::HashMap;

use wb_core::{race, Accel, EvalError, Evaluator, Threshold, WeightSet};

/// Margin of the surrogate screen, in percent of the search images: a configuration
/// is screened out only when predicted this far below its need.
pub const SURROGATE_MARGIN_PCT: f64 = 1.0;
/// Every this many screened configurations, one is evaluated anyway (the audit).
pub const AUDIT_EVERY: usize = 5;
/// Configurations evaluated in full before the surrogate's scale is fitted.
pub const FIT_MIN: usize = 10;

/// What the accelerations did, for the search log.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ScreenLog {
    /// Racing confidence, if racing was on.
    pub race: Option<f64>,
    /// Whether the surrogate screen was on.
    pub surrogate: bool,
    /// Surrogate margin, images.
    pub surrogate_margin_images: usize,
    /// Layer-sweep queries stopped on the racing bound (layer, k).
    pub sweep_raced: Vec<[usize; 2]>,
    /// NSGA-II evaluations that stopped early, and the images they saw in all.
    pub nsga_stopped: usize,
    /// Of those, stopped on the racing bound (the rest: certain below their need).
    pub nsga_raced: usize,
    /// Images the stopped evaluations saw (each would have seen all).
    pub nsga_stopped_images_seen: usize,
    /// Configurations the surrogate screened out without evaluating them.
    pub screened: usize,
    /// Screened configurations evaluated anyway (the audit), and how many of them
    /// reached their need (the screen was wrong).
    pub audited: usize,
    /// Audited configurations that reached their need.
    pub audited_wrong: usize,
    /// Front points that held an estimate and were evaluated in full at the end.
    pub front_completed: usize,
    /// Mean |predicted − measured| count over the fully evaluated configurations
    /// (each predicted before it was measured).
    pub surrogate_mean_abs_error: Option<f64>,
    /// The fitted scale `α` of the summed layer losses at the end of the search.
    pub surrogate_scale: Option<f64>,
    #[serde(skip)]
    abs_error_sum: f64,
    #[serde(skip)]
    abs_error_n: usize,
}

/// The accelerations of one exploration.
pub struct Screen {
    accel: Accel,
    c0: usize,
    n: usize,
    /// Top-1 count of each (layer, k) clustered alone, from the sweep.
    alone: HashMap<(usize, usize), usize>,
    margin: usize,
    /// Least-squares sums of the fit: Σ summed·measured loss, Σ summed², count.
    fit: (f64, f64, usize),
    /// The log.
    pub log: ScreenLog,
}

/// A configuration's count and whether it was measured on every search image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// Measured on the whole search subset.
    Exact(usize),
    /// Estimated (raced, stopped early or screened): below the configuration's need.
    Estimate(usize),
}

impl Screen {
    /// The accelerations `accel` for a search whose FP32 count is `c0` of `n`, with the
    /// sweep's counts of each (layer, k) alone.
    pub fn new(accel: Accel, c0: usize, n: usize, alone: HashMap<(usize, usize), usize>) -> Self {
        let margin = (n as f64 * SURROGATE_MARGIN_PCT / 100.0).ceil() as usize;
        Self {
            accel,
            c0,
            n,
            alone,
            margin,
            fit: (0.0, 0.0, 0),
            log: ScreenLog {
                race: accel.race,
                surrogate: accel.surrogate,
                surrogate_margin_images: margin,
                ..ScreenLog::default()
            },
        }
    }

    /// Whether any acceleration applies to the NSGA-II stage.
    pub fn active(&self) -> bool {
        self.accel.race.is_some() || self.accel.surrogate
    }

    /// The sum of the losses of `ks`'s layers alone (`ks[l]` = k of layer `l`).
    fn summed_loss(&self, ks: &[usize]) -> f64 {
        ks.iter()
            .enumerate()
            .map(|(l, &k)| {
                self.alone
                    .get(&(l, k))
                    .map_or(0, |&c| self.c0.saturating_sub(c))
            })
            .sum::<usize>() as f64
    }

    /// The fitted scale of the summed loss (1 until [`FIT_MIN`] configurations are
    /// measured).
    pub fn scale(&self) -> f64 {
        let (xy, xx, n) = self.fit;
        if n >= FIT_MIN && xx > 0.0 {
            (xy / xx).max(0.0)
        } else {
            1.0
        }
    }

    /// The surrogate's count of configuration `ks`.
    pub fn predict(&self, ks: &[usize]) -> usize {
        let loss = self.scale() * self.summed_loss(ks);
        (self.c0 as f64 - loss).round().max(0.0) as usize
    }

    /// The count a configuration needs to enter the front of `known` (measured counts
    /// with their CR_obj): one more than the best of those with at least `cr`.
    pub fn need(known: impl Iterator<Item = (usize, f64)>, cr: f64) -> Option<usize> {
        known
            .filter(|&(_, c)| c >= cr)
            .map(|(count, _)| count + 1)
            .max()
    }

    /// The count of `ws`, configuration `ks` with need `need` (`None`: evaluated in
    /// full), evaluated, raced or screened as the accelerations say.
    pub fn count(
        &mut self,
        ev: &mut dyn Evaluator,
        ws: &WeightSet,
        ks: &[usize],
        need: Option<usize>,
    ) -> Result<Count, EvalError> {
        let Some(need) = need.filter(|_| self.active()) else {
            return self.full(ev, ws, ks);
        };
        if self.accel.surrogate {
            let predicted = self.predict(ks);
            if predicted + self.margin < need {
                self.log.screened += 1;
                if self.log.screened % AUDIT_EVERY != 0 {
                    return Ok(Count::Estimate(predicted.min(need - 1)));
                }
                self.log.audited += 1;
                let c = self.full(ev, ws, ks)?;
                if matches!(c, Count::Exact(x) if x >= need) {
                    self.log.audited_wrong += 1;
                }
                return Ok(c);
            }
        }
        let Some(confidence) = self.accel.race else {
            return self.full(ev, ws, ks);
        };
        let r = ev.evaluate_race(ws, need, confidence)?;
        Ok(match r.answer {
            Threshold::Reached(a) => self.measured(ks, a.top1_correct),
            Threshold::Below {
                top1_correct_seen,
                seen,
            } if seen >= self.n => self.measured(ks, top1_correct_seen),
            Threshold::Below {
                top1_correct_seen,
                seen,
            } => {
                self.log.nsga_stopped += 1;
                self.log.nsga_raced += usize::from(r.raced);
                self.log.nsga_stopped_images_seen += seen;
                Count::Estimate(race::estimate(top1_correct_seen, seen, self.n, need))
            }
        })
    }

    /// The count on the whole search subset.
    pub fn full(
        &mut self,
        ev: &mut dyn Evaluator,
        ws: &WeightSet,
        ks: &[usize],
    ) -> Result<Count, EvalError> {
        let c = ev.evaluate(ws)?.top1_correct;
        Ok(self.measured(ks, c))
    }

    fn measured(&mut self, ks: &[usize], c: usize) -> Count {
        if self.accel.surrogate {
            self.log.abs_error_sum += self.predict(ks).abs_diff(c) as f64;
            self.log.abs_error_n += 1;
            self.log.surrogate_mean_abs_error =
                Some(self.log.abs_error_sum / self.log.abs_error_n as f64);
            let (x, y) = (self.summed_loss(ks), self.c0 as f64 - c as f64);
            self.fit.0 += x * y;
            self.fit.1 += x * x;
            self.fit.2 += 1;
            self.log.surrogate_scale = Some(self.scale());
        }
        Count::Exact(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wb_core::{FakeEvaluator, Tensor};

    fn weights(scale: f32) -> WeightSet {
        let data: Vec<f32> = (0..64).map(|i| (i as f32 - 32.0) * 0.01 * scale).collect();
        WeightSet::new(vec![Tensor::new("w", vec![64], data, true).unwrap()]).unwrap()
    }

    #[test]
    fn need_is_one_more_than_the_best_with_at_least_the_ratio() {
        let known = [(900, 4.0), (950, 2.0), (800, 8.0)];
        assert_eq!(Screen::need(known.iter().copied(), 3.0), Some(901));
        assert_eq!(Screen::need(known.iter().copied(), 1.0), Some(951));
        assert_eq!(Screen::need(known.iter().copied(), 9.0), None);
    }

    #[test]
    fn surrogate_adds_the_losses_of_the_layers_alone() {
        let alone = HashMap::from([((0, 4), 950), ((1, 8), 980), ((1, 16), 1000)]);
        let s = Screen::new(Accel::default(), 1000, 1000, alone);
        assert_eq!(s.predict(&[4, 8]), 930);
        assert_eq!(s.predict(&[4, 16]), 950);
    }

    #[test]
    fn the_scale_follows_the_measured_losses() {
        let alone = HashMap::from([((0, 4), 900), ((1, 8), 900)]);
        let accel = Accel {
            race: None,
            surrogate: true,
        };
        let mut s = Screen::new(accel, 1000, 1000, alone);
        assert_eq!(s.predict(&[4, 8]), 800, "plain sum before the fit");
        // Every measured configuration lost half the summed loss.
        for _ in 0..FIT_MIN {
            s.measured(&[4, 8], 900);
        }
        assert!((s.scale() - 0.5).abs() < 1e-12);
        assert_eq!(s.predict(&[4, 8]), 900);
        assert_eq!(s.log.surrogate_scale, Some(0.5));
    }

    #[test]
    fn screened_configurations_are_estimated_and_every_fifth_audited() {
        let alone = HashMap::from([((0, 4), 500)]);
        let accel = Accel {
            race: None,
            surrogate: true,
        };
        let mut s = Screen::new(accel, 1000, 1000, alone);
        let reference = weights(1.0);
        let mut ev = FakeEvaluator::new(reference.clone(), 1000, 1000, 1.0);
        for i in 1..=10 {
            let c = s.count(&mut ev, &reference, &[4], Some(900)).unwrap();
            if i % AUDIT_EVERY == 0 {
                assert_eq!(c, Count::Exact(1000), "audit {i}");
            } else {
                assert_eq!(c, Count::Estimate(500));
            }
        }
        assert_eq!(
            (s.log.screened, s.log.audited, s.log.audited_wrong),
            (10, 2, 2)
        );
        // No need (nothing evaluated at this ratio yet): always in full.
        assert_eq!(
            s.count(&mut ev, &reference, &[4], None).unwrap(),
            Count::Exact(1000)
        );
    }

    #[test]
    fn everything_off_evaluates_in_full() {
        let mut s = Screen::new(Accel::default(), 1000, 1000, HashMap::new());
        let reference = weights(1.0);
        let mut ev = FakeEvaluator::new(reference.clone(), 1000, 1000, 1.0);
        let c = s.count(&mut ev, &weights(3.0), &[4], Some(999)).unwrap();
        assert!(matches!(c, Count::Exact(_)));
        assert_eq!(s.log.nsga_stopped + s.log.screened, 0);
    }
}
