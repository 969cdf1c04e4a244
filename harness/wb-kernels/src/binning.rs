//! Uniform binning of one vector of weights: the quantizer of the structure-agnostic
//! weight-sharing method of Khosrowshahli, Rahnamayan and Ombuki-Berman (arXiv
//! 2501.03095, "MO-UB"), written to match the authors' NumPy code
//! (`edges = linspace(min, max, k)`, `bin = digitize(x, edges) − 1`, bin mean as the
//! shared value).
//!
//! # Semantics
//!
//! 1. **Edges**: `k` edges `e_i = min + i · (max − min) / (k − 1)` for
//!    `i = 0 … k − 1`, computed in `f64` with the last edge set to `max` exactly (as
//!    `numpy.linspace` does). `k = 1` has the single edge `min`.
//! 2. **Bin of a value** `x`: the largest `i` with `e_i <= x` (`digitize(x, e) − 1`),
//!    compared exactly in `f64`. Bins are left-closed, `[e_i, e_{i+1})`; the values
//!    equal to `max` form bin `k − 1` on their own (the reference's behaviour: with
//!    `k` edges there are `k − 1` intervals plus the bin of the maximum).
//! 3. **Empty bins are dropped**; the non-empty ones are renumbered `0 … B − 1` in
//!    ascending order (`B <= k` shared values).
//! 4. **Shared value** of a bin: the arithmetic mean of its values, summed in `f64`
//!    with Neumaier compensation and rounded to `f32` once. The compensated sums are
//!    returned too, so that merging neighbouring bins can compute the mean of the
//!    union without revisiting the data.
//!
//! # Edge cases
//!
//! * **All weights equal** (`min == max`): every edge equals the value, so every
//!   value lands in bin `k − 1` (`digitize` counts all `k` edges); one shared value,
//!   the weight itself.
//! * **A single outlier**: it stretches the range, so most of the `k` bins are empty
//!   and dropped; the outlier is its own bin when it is the maximum (bin `k − 1`) or
//!   when no other value shares its interval.
//! * **`k` larger than the number of distinct values**: at most one shared value per
//!   distinct value, usually fewer bins than `k` (empty ones dropped); a bin holding
//!   one distinct value decodes it exactly.
//! * **NaN or ±∞** anywhere: rejected with [`KernelError::NonFiniteInput`] (index of
//!   the first one); an empty input with [`KernelError::EmptyInput`]; `k = 0` or
//!   `k > MAX_BINS` with [`KernelError::InvalidParameter`].
//!
//! [`uniform_bins`] is `O(N)` (one pass for the range, one parallel pass for the bin
//! of each value — an arithmetic guess corrected against the exact edges — and one
//! sequential pass for counts and sums, so the result does not depend on the thread
//! count). [`uniform_bins_naive`] is the `O(N k)` reference (a linear scan over the
//! edges per value, plain `f64` sums) used by the tests.

use rayon::prelude::*;

use crate::KernelError;

const KERNEL: &str = "uniform_bins";

/// Largest number of bins (edges) accepted: `2^24`.
pub const MAX_BINS: usize = 1 << 24;

/// Values per parallel task when computing bin indices.
const CHUNK: usize = 1 << 14;

/// Result of [`uniform_bins`]: a codebook of the non-empty bins' means and one index
/// per input value.
#[derive(Debug, Clone, PartialEq)]
pub struct UniformBins {
    /// Number of linspace edges (bins before dropping empty ones) requested.
    pub k: usize,
    /// Smallest input value.
    pub min: f32,
    /// Largest input value.
    pub max: f32,
    /// Shared value of each non-empty bin (the mean of its values), in ascending bin
    /// order (non-decreasing).
    pub values: Vec<f32>,
    /// Number of input values in each non-empty bin (all `>= 1`).
    pub counts: Vec<u64>,
    /// Compensated `f64` sum of the values of each non-empty bin.
    pub sums: Vec<f64>,
    /// Linspace bin (`0 … k − 1`) each shared value comes from, strictly ascending.
    pub bins: Vec<u32>,
    /// Index into [`Self::values`] of every input value, in input order.
    pub labels: Vec<u32>,
}

impl UniformBins {
    /// Number of shared values `B` (non-empty bins).
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when there is no shared value (never for a successful binning).
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The quantized vector: `values[labels[i]]` for every input value.
    pub fn dequantize(&self) -> Vec<f32> {
        self.labels
            .iter()
            .map(|&l| self.values[l as usize])
            .collect()
    }
}

/// The `k` linspace edges over `[min, max]` in `f64`, last edge exactly `max`.
pub fn linspace_edges(min: f32, max: f32, k: usize) -> Vec<f64> {
    let (lo, hi) = (f64::from(min), f64::from(max));
    if k == 1 {
        return vec![lo];
    }
    let step = (hi - lo) / (k - 1) as f64;
    let mut e: Vec<f64> = (0..k).map(|i| lo + i as f64 * step).collect();
    e[k - 1] = hi;
    e
}

fn check(data: &[f32], k: usize) -> Result<(f32, f32), KernelError> {
    if k == 0 || k > MAX_BINS {
        return Err(KernelError::InvalidParameter {
            kernel: KERNEL,
            name: "k",
            value: k.to_string(),
            allowed: "1 ..= 2^24",
        });
    }
    if data.is_empty() {
        return Err(KernelError::EmptyInput { kernel: KERNEL });
    }
    if let Some(index) = data.iter().position(|v| !v.is_finite()) {
        return Err(KernelError::NonFiniteInput {
            kernel: KERNEL,
            index,
            value: data[index],
        });
    }
    Ok(data
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        }))
}

/// Neumaier-compensated accumulation of one value.
#[inline]
fn add_compensated(sum: &mut f64, comp: &mut f64, x: f64) {
    let t = *sum + x;
    if sum.abs() >= x.abs() {
        *comp += (*sum - t) + x;
    } else {
        *comp += (x - t) + *sum;
    }
    *sum = t;
}

/// Drops empty bins and builds the result from per-value raw bin ids.
fn compact(
    k: usize,
    min: f32,
    max: f32,
    data: &[f32],
    raw: Vec<u32>,
    compensated: bool,
) -> UniformBins {
    let mut counts = vec![0u64; k];
    let mut sums = vec![0f64; k];
    let mut comps = vec![0f64; k];
    for (&b, &x) in raw.iter().zip(data) {
        let b = b as usize;
        counts[b] += 1;
        if compensated {
            add_compensated(&mut sums[b], &mut comps[b], f64::from(x));
        } else {
            sums[b] += f64::from(x);
        }
    }
    // Renumbering of the non-empty bins, ascending.
    let mut renum = vec![u32::MAX; k];
    let mut out_counts = Vec::new();
    let mut out_sums = Vec::new();
    let mut bins = Vec::new();
    for b in 0..k {
        if counts[b] > 0 {
            renum[b] = bins.len() as u32;
            bins.push(b as u32);
            out_counts.push(counts[b]);
            out_sums.push(sums[b] + comps[b]);
        }
    }
    let values = out_sums
        .iter()
        .zip(&out_counts)
        .map(|(s, c)| (s / *c as f64) as f32)
        .collect();
    let labels = raw.into_iter().map(|b| renum[b as usize]).collect();
    UniformBins {
        k,
        min,
        max,
        values,
        counts: out_counts,
        sums: out_sums,
        bins,
        labels,
    }
}

/// Uniform binning of `data` into `k` linspace bins over `[min, max]` (see the module
/// documentation for the exact rule), `O(N)`.
///
/// # Errors
/// [`KernelError::EmptyInput`], [`KernelError::NonFiniteInput`] (NaN or ±∞, with the
/// index of the first), [`KernelError::InvalidParameter`] for `k` outside
/// `1 ..= MAX_BINS`.
pub fn uniform_bins(data: &[f32], k: usize) -> Result<UniformBins, KernelError> {
    let (min, max) = check(data, k)?;
    let edges = linspace_edges(min, max, k);
    let raw: Vec<u32> = if min == max {
        // Every edge equals the value: digitize counts all k of them.
        vec![(k - 1) as u32; data.len()]
    } else {
        let lo = f64::from(min);
        let inv = (k - 1) as f64 / (f64::from(max) - lo);
        let last = k - 1;
        let bin = |x: f32| -> u32 {
            let x = f64::from(x);
            // Arithmetic guess, then corrected against the exact edges: the guess is
            // off by at most one or two because of rounding, so the loops are short.
            let mut j = (((x - lo) * inv).floor().max(0.0) as usize).min(last);
            while j < last && edges[j + 1] <= x {
                j += 1;
            }
            while j > 0 && edges[j] > x {
                j -= 1;
            }
            j as u32
        };
        let mut raw = vec![0u32; data.len()];
        raw.par_chunks_mut(CHUNK)
            .zip(data.par_chunks(CHUNK))
            .for_each(|(out, xs)| {
                for (o, &x) in out.iter_mut().zip(xs) {
                    *o = bin(x);
                }
            });
        raw
    };
    Ok(compact(k, min, max, data, raw, true))
}

/// The `O(N k)` reference of [`uniform_bins`]: each value's bin is the number of
/// edges `<= x` minus one (a linear scan, `numpy.digitize`'s definition), and bin
/// sums are plain `f64` sums in input order. Same errors.
pub fn uniform_bins_naive(data: &[f32], k: usize) -> Result<UniformBins, KernelError> {
    let (min, max) = check(data, k)?;
    let edges = linspace_edges(min, max, k);
    let raw: Vec<u32> = data
        .iter()
        .map(|&x| {
            let x = f64::from(x);
            (edges.iter().filter(|&&e| e <= x).count() - 1) as u32
        })
        .collect();
    Ok(compact(k, min, max, data, raw, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_edges_put_the_maximum_alone() {
        let r = uniform_bins(&[0.0, 0.5, 1.0, 0.25], 2).unwrap();
        assert_eq!(r.bins, vec![0, 1]);
        assert_eq!(r.counts, vec![3, 1]);
        assert_eq!(r.values, vec![0.25, 1.0]);
        assert_eq!(r.labels, vec![0, 0, 1, 0]);
    }

    #[test]
    fn linspace_endpoints_are_exact() {
        let e = linspace_edges(-0.3, 0.7, 11);
        assert_eq!(e[0], f64::from(-0.3f32));
        assert_eq!(e[10], f64::from(0.7f32));
        assert!(e.windows(2).all(|w| w[0] < w[1]));
    }
}
