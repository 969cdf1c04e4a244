//! Exact one-dimensional k-means (Lloyd's algorithm) for weight sharing.
//!
//! Two implementations with identical semantics are offered:
//!
//! * [`kmeans_1d`]: the fast one. It sorts the data once and builds prefix
//!   sums, after which one Lloyd iteration costs `O(k log n)` instead of
//!   `O(n k)`.
//! * [`kmeans_1d_naive`]: a straightforward `O(n k)`-per-iteration
//!   implementation, kept public as the reference for tests and benchmarks.
//!
//! # Semantics
//!
//! Both follow the k-means used by the published weight-sharing method
//! (Dupuis et al., ASP-DAC 2022, run with the defaults of
//! `fast_pytorch_kmeans`), with one documented deviation for the labels:
//!
//! 1. **Initialisation**: `k` centroids evenly spaced between the minimum and
//!    the maximum of the data (`linspace(min, max, k)`, computed in `f64`,
//!    rounded to `f32`, both endpoints exact). With `k = 1` the single
//!    centroid starts at the minimum; the first update moves it to the mean.
//! 2. **Assignment**: every value goes to its nearest centroid. Distances are
//!    compared *exactly* (as real numbers, not after rounding); a value at
//!    exactly the same distance from several centroids goes to the one with
//!    the lowest index.
//! 3. **Update**: each centroid becomes the mean of the values assigned to it
//!    (summed in `f64`, the quotient rounded to `f32`). **Empty-cluster rule**:
//!    a centroid with no value assigned becomes `0.0`. The reference computes
//!    `0 / 0 = NaN` and replaces it with `0` (`nan_to_num`); this crate does
//!    the same on purpose, so that results match the published method. Such a
//!    centroid may coincide with another one; coinciding centroids are
//!    resolved by the lowest-index rule of step 2.
//! 4. **Stopping rule**: after each update, the shift
//!    `Σ_j (c_new[j] − c_old[j])²` (in `f64`, absolute units of the data) is
//!    compared with [`KMeans1dParams::tol`]; the loop stops when
//!    `shift <= tol` ([`KMeans1d::converged`] is then `true`) or after
//!    [`KMeans1dParams::max_iter`] iterations.
//! 5. **Labels rule (harness rule)**: the reference library returns the
//!    labels of its last assignment step, i.e. labels computed against the
//!    centroids *before* the last update. This crate instead returns labels
//!    computed by one more assignment pass against the **final** centroids
//!    it returns. Every value therefore maps to its nearest shared value, and
//!    `centroids[labels[i]]` is exactly the value a compressed model decodes.
//!    [`KMeans1d::inertia`] is measured with these labels and centroids.

mod fast;
mod naive;

use std::cmp::Ordering;

use rayon::prelude::*;

use crate::KernelError;

pub use fast::kmeans_1d;
pub use naive::kmeans_1d_naive;

/// Parameters of the 1-D k-means.
///
/// The defaults match `fast_pytorch_kmeans` (`max_iter = 100`,
/// `tol = 1e-4`) with 16 clusters (4-bit weight sharing).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KMeans1dParams {
    /// Number of clusters (shared values). Allowed: `1 ..= u32::MAX`.
    pub k: usize,
    /// Maximum number of Lloyd iterations. Allowed: `>= 1`.
    pub max_iter: usize,
    /// Convergence threshold on the sum of squared centroid shifts of one
    /// iteration, in absolute (squared data) units. Allowed: finite, `>= 0`.
    /// `0.0` iterates until the centroids stop moving or `max_iter`.
    pub tol: f64,
}

impl Default for KMeans1dParams {
    fn default() -> Self {
        Self {
            k: 16,
            max_iter: 100,
            tol: 1e-4,
        }
    }
}

impl KMeans1dParams {
    /// Default parameters with `k` clusters.
    pub fn with_k(k: usize) -> Self {
        Self {
            k,
            ..Self::default()
        }
    }

    /// Checks every parameter against its allowed range.
    ///
    /// # Errors
    /// [`KernelError::InvalidParameter`] naming the first parameter out of
    /// range and the range allowed.
    pub fn validate(&self) -> Result<(), KernelError> {
        self.validate_for("kmeans_1d")
    }

    pub(crate) fn validate_for(&self, kernel: &'static str) -> Result<(), KernelError> {
        if self.k == 0 || u32::try_from(self.k).is_err() {
            return Err(KernelError::InvalidParameter {
                kernel,
                name: "k",
                value: self.k.to_string(),
                allowed: "an integer in 1 ..= 4294967295 (u32::MAX)",
            });
        }
        if self.max_iter == 0 {
            return Err(KernelError::InvalidParameter {
                kernel,
                name: "max_iter",
                value: self.max_iter.to_string(),
                allowed: "an integer >= 1",
            });
        }
        if !(self.tol.is_finite() && self.tol >= 0.0) {
            return Err(KernelError::InvalidParameter {
                kernel,
                name: "tol",
                value: self.tol.to_string(),
                allowed: "a finite number >= 0",
            });
        }
        Ok(())
    }
}

/// Result of a 1-D k-means run.
///
/// `centroids[labels[i] as usize]` is the nearest centroid to `data[i]`
/// among the returned (final) centroids; see the labels rule in the
/// [module documentation](self).
#[derive(Debug, Clone, PartialEq)]
pub struct KMeans1d {
    /// The `k` final centroids (shared values), indexed by label. They are
    /// not sorted, and may repeat (for instance several empty clusters all
    /// sit at `0.0`).
    pub centroids: Vec<f32>,
    /// For every input value, in input order, the index of its nearest
    /// final centroid (ties to the lowest index).
    pub labels: Vec<u32>,
    /// Number of Lloyd iterations (assignment + update) performed,
    /// `1 ..= max_iter`.
    pub iterations: usize,
    /// `true` when the loop stopped because the squared centroid shift fell
    /// to `tol` or below, `false` when it hit `max_iter`.
    pub converged: bool,
    /// `Σ_i (data[i] − centroids[labels[i]])²`, accumulated in `f64`.
    pub inertia: f64,
}

impl KMeans1d {
    /// The data as reconstructed from the shared values:
    /// `centroids[labels[i]]` for every input value, in input order.
    pub fn dequantize(&self) -> Vec<f32> {
        self.labels
            .iter()
            .map(|&l| self.centroids[l as usize])
            .collect()
    }
}

/// Inputs from this length on use rayon for the per-value passes.
pub(crate) const PAR_THRESHOLD: usize = 1 << 15;

/// Block length of the deterministic chunked reductions.
const CHUNK: usize = 1 << 13;

/// Checks the data and returns its `(min, max)`.
pub(crate) fn validate_data(data: &[f32], kernel: &'static str) -> Result<(f32, f32), KernelError> {
    if data.is_empty() {
        return Err(KernelError::EmptyInput { kernel });
    }
    if let Some(index) = data.iter().position(|x| !x.is_finite()) {
        return Err(KernelError::NonFiniteInput {
            kernel,
            index,
            value: data[index],
        });
    }
    let (mut min, mut max) = (data[0], data[0]);
    for &x in &data[1..] {
        if x < min {
            min = x;
        }
        if x > max {
            max = x;
        }
    }
    Ok((min, max))
}

/// `linspace(min, max, k)` in `f64`, rounded to `f32`; the first half is
/// stepped up from `min`, the second half down from `max`, so both endpoints
/// are exact. `k = 1` gives `[min]`.
pub(crate) fn linspace_init(min: f32, max: f32, k: usize) -> Vec<f32> {
    if k == 1 {
        return vec![min];
    }
    let (lo, hi) = (f64::from(min), f64::from(max));
    let step = (hi - lo) / (k - 1) as f64;
    (0..k)
        .map(|j| {
            if j < k / 2 {
                (lo + step * j as f64) as f32
            } else {
                (hi - step * (k - 1 - j) as f64) as f32
            }
        })
        .collect()
}

/// Sign of `x − (a + b) / 2`, computed exactly.
///
/// `2x` is exact in `f64`; `a + b = s + e` exactly (Knuth's TwoSum). If
/// `t = 2x − s` is exact (Sterbenz: `2x` and `s` within a factor 2, or one is
/// zero) the comparison `t` vs `e` is exact. Otherwise `|2x − s| > |s| / 2`,
/// which dwarfs `|e| <= ulp(s) / 2`, so the rounded `t` already has the right
/// sign relative to `e`.
pub(crate) fn cmp_to_midpoint(x: f32, a: f32, b: f32) -> Ordering {
    let (a, b) = (f64::from(a), f64::from(b));
    let s = a + b;
    let b_virtual = s - a;
    let a_virtual = s - b_virtual;
    let e = (a - a_virtual) + (b - b_virtual);
    let t = 2.0 * f64::from(x) - s;
    t.partial_cmp(&e).unwrap_or(Ordering::Equal)
}

/// Whether `x` is strictly nearer to `cand` than to `cur`, exactly.
pub(crate) fn strictly_nearer(x: f32, cand: f32, cur: f32) -> bool {
    match cand.partial_cmp(&cur) {
        Some(Ordering::Less) => cmp_to_midpoint(x, cand, cur) == Ordering::Less,
        Some(Ordering::Greater) => cmp_to_midpoint(x, cand, cur) == Ordering::Greater,
        _ => false,
    }
}

/// Mean of a cluster from its `f64` sum and its (non-zero) count.
pub(crate) fn cluster_mean(sum: f64, count: usize) -> f32 {
    (sum / count as f64) as f32
}

/// `Σ_j (new[j] − old[j])²` in `f64`.
fn centroid_shift(old: &[f32], new: &[f32]) -> f64 {
    old.iter()
        .zip(new)
        .map(|(&o, &n)| {
            let d = f64::from(n) - f64::from(o);
            d * d
        })
        .sum()
}

/// Outcome of the shared Lloyd loop.
pub(crate) struct LloydOutcome {
    pub(crate) centroids: Vec<f32>,
    pub(crate) iterations: usize,
    pub(crate) converged: bool,
}

/// The Lloyd loop shared by both implementations: `update(current, next)`
/// must write into every slot of `next` the centroid after one assignment +
/// update step (`0.0` for empty clusters).
pub(crate) fn lloyd(
    init: Vec<f32>,
    params: &KMeans1dParams,
    mut update: impl FnMut(&[f32], &mut [f32]),
) -> LloydOutcome {
    let mut centroids = init;
    let mut next = vec![0.0f32; centroids.len()];
    for iteration in 1..=params.max_iter {
        update(&centroids, &mut next);
        let shift = centroid_shift(&centroids, &next);
        std::mem::swap(&mut centroids, &mut next);
        if shift <= params.tol {
            return LloydOutcome {
                centroids,
                iterations: iteration,
                converged: true,
            };
        }
    }
    LloydOutcome {
        centroids,
        iterations: params.max_iter,
        converged: false,
    }
}

/// `Σ_i (data[i] − centroids[labels[i]])²` in `f64`, summed per fixed block
/// and then over blocks in order, so the result does not depend on the
/// number of threads.
pub(crate) fn inertia(data: &[f32], centroids: &[f32], labels: &[u32]) -> f64 {
    let block = |(d, l): (&[f32], &[u32])| -> f64 {
        d.iter()
            .zip(l)
            .map(|(&x, &j)| {
                let r = f64::from(x) - f64::from(centroids[j as usize]);
                r * r
            })
            .sum()
    };
    let partials: Vec<f64> = if data.len() >= PAR_THRESHOLD {
        data.par_chunks(CHUNK)
            .zip(labels.par_chunks(CHUNK))
            .map(block)
            .collect()
    } else {
        data.chunks(CHUNK)
            .zip(labels.chunks(CHUNK))
            .map(block)
            .collect()
    };
    partials.iter().sum()
}

/// Finishes a run: labels are already computed against `outcome.centroids`.
pub(crate) fn finish(data: &[f32], outcome: LloydOutcome, labels: Vec<u32>) -> KMeans1d {
    let inertia = inertia(data, &outcome.centroids, &labels);
    KMeans1d {
        centroids: outcome.centroids,
        labels,
        iterations: outcome.iterations,
        converged: outcome.converged,
        inertia,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn midpoint_comparison_is_exact() {
        // Exact midpoints.
        assert_eq!(cmp_to_midpoint(1.5, 1.0, 2.0), Ordering::Equal);
        assert_eq!(cmp_to_midpoint(0.0, -1.0, 1.0), Ordering::Equal);
        // Midpoint of two adjacent f32 values is not an f32: never equal.
        let a = 1.0f32;
        let b = f32::from_bits(a.to_bits() + 1);
        assert_eq!(cmp_to_midpoint(a, a, b), Ordering::Less);
        assert_eq!(cmp_to_midpoint(b, a, b), Ordering::Greater);
        // Wide exponent range where a + b is not exact in f64:
        // (1e30 + 1e-30) / 2 is just above 5e29 (as f32 5e29 rounds).
        let big = 1e30f32;
        let tiny = 1e-30f32;
        let half = big / 2.0; // exact: power-of-two scaling
        assert_eq!(cmp_to_midpoint(half, big, tiny), Ordering::Less);
        assert_eq!(cmp_to_midpoint(half, big, -tiny), Ordering::Greater);
        assert_eq!(cmp_to_midpoint(half, big, 0.0), Ordering::Equal);
        // Extremes do not overflow.
        assert_eq!(
            cmp_to_midpoint(f32::MAX, f32::MAX, f32::MAX),
            Ordering::Equal
        );
        assert_eq!(
            cmp_to_midpoint(f32::MIN, f32::MAX, f32::MIN),
            Ordering::Less
        );
    }

    #[test]
    fn nearer_uses_lowest_index_only_via_caller() {
        assert!(strictly_nearer(0.9, 1.0, 0.0));
        assert!(!strictly_nearer(0.5, 1.0, 0.0));
        assert!(!strictly_nearer(0.5, 0.0, 1.0));
        assert!(!strictly_nearer(3.0, 2.0, 2.0));
        assert!(!strictly_nearer(0.0, -0.0, 0.0));
    }

    #[test]
    fn linspace_endpoints_exact() {
        for k in 1..40 {
            let c = linspace_init(-0.37, 1.91, k);
            assert_eq!(c.len(), k);
            assert_eq!(c[0], -0.37);
            if k > 1 {
                assert_eq!(c[k - 1], 1.91);
            }
            assert!(c.windows(2).all(|w| w[0] <= w[1]));
        }
        assert_eq!(linspace_init(2.0, 2.0, 5), vec![2.0; 5]);
    }

    #[test]
    fn validation_names_parameter() {
        let err = KMeans1dParams::with_k(0).validate().unwrap_err();
        assert!(matches!(
            err,
            KernelError::InvalidParameter { name: "k", .. }
        ));
        let p = KMeans1dParams {
            max_iter: 0,
            ..Default::default()
        };
        assert!(matches!(
            p.validate().unwrap_err(),
            KernelError::InvalidParameter {
                name: "max_iter",
                ..
            }
        ));
        for tol in [-1e-9, f64::NAN, f64::INFINITY] {
            let p = KMeans1dParams {
                tol,
                ..Default::default()
            };
            assert!(matches!(
                p.validate().unwrap_err(),
                KernelError::InvalidParameter { name: "tol", .. }
            ));
        }
        assert!(KMeans1dParams::default().validate().is_ok());
        assert!(KMeans1dParams {
            tol: 0.0,
            ..Default::default()
        }
        .validate()
        .is_ok());
    }
}
