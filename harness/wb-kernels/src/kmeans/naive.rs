//! Straightforward `O(n k)`-per-iteration 1-D k-means, the reference.

use super::{
    cluster_mean, finish, linspace_init, lloyd, strictly_nearer, validate_data, KMeans1d,
    KMeans1dParams,
};
use crate::KernelError;

const KERNEL: &str = "kmeans_1d_naive";

/// Exact 1-D k-means, naive reference implementation.
///
/// Same semantics and same errors as [`kmeans_1d`](super::kmeans_1d) (see the
/// [module documentation](super)), written as the textbook Lloyd loop: every
/// iteration scans all `k` centroids for every value (`O(n k)`) and sums the
/// clusters in input order in plain `f64`. It is public as the reference
/// against which the fast implementation is tested and benchmarked; use
/// [`kmeans_1d`](super::kmeans_1d) for real work.
///
/// # Errors
/// * [`KernelError::InvalidParameter`] if `params` fails
///   [`KMeans1dParams::validate`];
/// * [`KernelError::EmptyInput`] if `data` is empty;
/// * [`KernelError::NonFiniteInput`] with the index of the first NaN or
///   infinity in `data`.
pub fn kmeans_1d_naive(data: &[f32], params: &KMeans1dParams) -> Result<KMeans1d, KernelError> {
    params.validate_for(KERNEL)?;
    let (min, max) = validate_data(data, KERNEL)?;
    let k = params.k;

    let mut sums = vec![0.0f64; k];
    let mut counts = vec![0usize; k];
    let outcome = lloyd(linspace_init(min, max, k), params, |current, next| {
        sums.fill(0.0);
        counts.fill(0);
        for &x in data {
            let j = nearest(x, current);
            sums[j] += f64::from(x);
            counts[j] += 1;
        }
        for ((c, &s), &n) in next.iter_mut().zip(&sums).zip(&counts) {
            *c = if n > 0 { cluster_mean(s, n) } else { 0.0 };
        }
    });

    let labels = data
        .iter()
        .map(|&x| nearest(x, &outcome.centroids) as u32)
        .collect();
    Ok(finish(data, outcome, labels))
}

/// Index of the centroid nearest to `x`, exactly, ties to the lowest index.
///
/// The rounded `f64` distance `|x − c|` is a monotone function of the exact
/// distance, so a strict `<` between rounded distances is a strict `<`
/// between exact ones; only rounded ties need the exact comparison.
fn nearest(x: f32, centroids: &[f32]) -> usize {
    let xf = f64::from(x);
    let mut best = 0;
    let mut best_d = (xf - f64::from(centroids[0])).abs();
    for (j, &c) in centroids.iter().enumerate().skip(1) {
        let d = (xf - f64::from(c)).abs();
        if d < best_d || (d == best_d && strictly_nearer(x, c, centroids[best])) {
            best = j;
            best_d = d;
        }
    }
    best
}
