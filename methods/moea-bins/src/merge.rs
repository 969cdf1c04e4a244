//! Greedy merge of neighbouring bins (papers.md §5.6), independent of any model: the
//! caller scores a grouping of the uniform bins and says whether it reaches a
//! threshold, so the merge logic is tested on its own.
//!
//! A grouping of `B` uniform bins (ascending) is the list `starts` of the first bin of
//! each group (`starts[0] = 0`, strictly ascending); group `g` covers the bins
//! `starts[g] .. starts[g + 1]` and its shared value is the mean of all weights in
//! those bins (`Σ sums / Σ counts`). Merging two neighbouring groups deletes the
//! start of the right one.

/// Visiting order of the merge pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeOrder {
    /// The 2024 code's pass (`src/block.py::_merge_till_noimprv`): at position `i`
    /// try merging groups `(i−1, i)` (L) and `(i, i+1)` (R); take the better of L, R
    /// and "no merge" (L first, then R, on ties); after a merge stay at `i`, else
    /// move to `i + 1`; stop when `i` reaches the last group.
    LeftToRight,
    /// The 2025 code's second order: every boundary between two initial groups is
    /// visited once, from the middle outwards (middle, left of it, right of it, two to
    /// the left, …); removing it is accepted when the score does not fall.
    CenterToEnd,
}

/// One tried merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeStep {
    /// The uniform bin where the right-hand group of the tried merge started.
    pub boundary: usize,
    /// `"L"` / `"R"` for the two candidates of [`MergeOrder::LeftToRight`], `"C"` for
    /// [`MergeOrder::CenterToEnd`].
    pub side: &'static str,
    /// The threshold (correct predictions) the candidate had to reach.
    pub threshold: usize,
    /// Correct predictions when the threshold was reached, `None` when it was not (the
    /// evaluator may stop early then).
    pub correct: Option<usize>,
    /// Whether the merge was accepted.
    pub accepted: bool,
    /// Number of groups after this step.
    pub groups: usize,
}

/// Result of [`merge_bins`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeOutcome {
    /// First uniform bin of each final group.
    pub starts: Vec<usize>,
    /// Correct predictions of the final grouping (never below the start's).
    pub correct: usize,
    /// Scores requested.
    pub evaluations: usize,
    /// Merges accepted.
    pub accepted: usize,
    /// Every tried merge, in order.
    pub steps: Vec<MergeStep>,
    /// Whether the pass ran to its end; `false` when the evaluation budget of
    /// [`merge_bins_budget`] stopped it first (the grouping is still valid: every
    /// accepted merge kept the score).
    pub complete: bool,
}

/// Runs one merge pass over `bins` uniform bins whose unmerged grouping scores
/// `start_correct`. `score(starts, threshold)` returns `Some(correct)` when the grouping
/// `starts` gets at least `threshold` correct predictions, `None` otherwise; a merge is
/// accepted only when it reaches the current score, so the result never scores lower
/// than the start ("without degrading performance", ties accepted).
///
/// # Errors
/// The first error of `score`.
pub fn merge_bins<E>(
    bins: usize,
    start_correct: usize,
    order: MergeOrder,
    score: impl FnMut(&[usize], usize) -> Result<Option<usize>, E>,
) -> Result<MergeOutcome, E> {
    merge_bins_budget(bins, start_correct, order, usize::MAX, score)
}

/// [`merge_bins`] with at most `budget` scores requested. The pass stops before a
/// step whose scores would exceed the budget (a `left_to_right` step needs two, a
/// `center_to_end` step one), so the outcome is the same as the unbounded pass cut at
/// that step, and [`MergeOutcome::complete`] says whether it was cut.
///
/// # Errors
/// The first error of `score`.
pub fn merge_bins_budget<E>(
    bins: usize,
    start_correct: usize,
    order: MergeOrder,
    budget: usize,
    mut score: impl FnMut(&[usize], usize) -> Result<Option<usize>, E>,
) -> Result<MergeOutcome, E> {
    let mut complete = true;
    let mut starts: Vec<usize> = (0..bins).collect();
    let mut best = start_correct;
    let mut steps = Vec::new();
    let mut evaluations = 0usize;
    let without = |starts: &[usize], g: usize| -> Vec<usize> {
        let mut s = starts.to_vec();
        s.remove(g);
        s
    };
    match order {
        MergeOrder::LeftToRight => {
            let mut i = 1usize;
            while i + 1 < starts.len() {
                if budget - evaluations < 2 {
                    complete = false;
                    break;
                }
                let left = without(&starts, i);
                let right = without(&starts, i + 1);
                let (bl, br) = (starts[i], starts[i + 1]);
                let cl = score(&left, best)?;
                evaluations += 1;
                // R wins only by beating both L (ties go to L) and the current score.
                let thr_r = cl.map_or(best, |c| c + 1);
                let cr = score(&right, thr_r)?;
                evaluations += 1;
                let (accept_l, accept_r) = (cr.is_none() && cl.is_some(), cr.is_some());
                let groups_after = starts.len() - usize::from(accept_l || accept_r);
                steps.push(MergeStep {
                    boundary: bl,
                    side: "L",
                    threshold: best,
                    correct: cl,
                    accepted: accept_l,
                    groups: groups_after,
                });
                steps.push(MergeStep {
                    boundary: br,
                    side: "R",
                    threshold: thr_r,
                    correct: cr,
                    accepted: accept_r,
                    groups: groups_after,
                });
                if let (true, Some(c)) = (accept_r, cr) {
                    best = c;
                    starts = right;
                } else if let (true, Some(c)) = (accept_l, cl) {
                    best = c;
                    starts = left;
                } else {
                    i += 1;
                }
            }
        }
        MergeOrder::CenterToEnd => {
            let boundaries: Vec<usize> = starts.iter().skip(1).copied().collect();
            let m = boundaries.len();
            let mut order = Vec::with_capacity(m);
            if m > 0 {
                let c = (m - 1) / 2;
                order.push(c);
                for d in 1..m {
                    if d <= c {
                        order.push(c - d);
                    }
                    if c + d < m {
                        order.push(c + d);
                    }
                }
            }
            for j in order {
                if evaluations >= budget {
                    complete = false;
                    break;
                }
                let b = boundaries[j];
                let g = starts
                    .iter()
                    .position(|&s| s == b)
                    .expect("a boundary is removed only when visited");
                let cand = without(&starts, g);
                let threshold = best;
                let c = score(&cand, threshold)?;
                evaluations += 1;
                let accepted = c.is_some();
                if let Some(c) = c {
                    best = c;
                    starts = cand;
                }
                steps.push(MergeStep {
                    boundary: b,
                    side: "C",
                    threshold,
                    correct: c,
                    accepted,
                    groups: starts.len(),
                });
            }
        }
    }
    let accepted = steps.iter().filter(|s| s.accepted).count();
    Ok(MergeOutcome {
        starts,
        correct: best,
        evaluations,
        accepted,
        steps,
        complete,
    })
}

/// Shared value of each group: the mean of the union of its bins.
pub(crate) fn group_values(starts: &[usize], counts: &[u64], sums: &[f64]) -> Vec<f32> {
    group_ranges(starts, counts.len())
        .map(|(a, b)| {
            // Folded from the first sum (not from 0.0), so that a single bin keeps the
            // exact value of the binning, the sign of zero included.
            let s = sums[a + 1..b].iter().fold(sums[a], |x, y| x + y);
            let c: u64 = counts[a..b].iter().sum();
            (s / c as f64) as f32
        })
        .collect()
}

/// Number of weights in each group.
pub(crate) fn group_counts(starts: &[usize], counts: &[u64]) -> Vec<u64> {
    group_ranges(starts, counts.len())
        .map(|(a, b)| counts[a..b].iter().sum())
        .collect()
}

/// Group of each uniform bin.
pub(crate) fn group_of_bin(starts: &[usize], bins: usize) -> Vec<u32> {
    let mut out = vec![0u32; bins];
    for (g, (a, b)) in group_ranges(starts, bins).enumerate() {
        out[a..b].fill(g as u32);
    }
    out
}

fn group_ranges(starts: &[usize], bins: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
    starts
        .iter()
        .enumerate()
        .map(move |(g, &a)| (a, starts.get(g + 1).copied().unwrap_or(bins)))
}
