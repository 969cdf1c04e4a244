//! Product-quantization k-means: `k` codewords of dimension `d` for the sub-vectors of a
//! flat slice, with an optional per-element **importance** that turns each centroid update
//! into an importance-weighted mean (the gradient-weighted k-means of Sakthi et al. 2022,
//! as reconstructed in the `gwk` method's README).
//!
//! # Sub-vectors and the partial tail
//!
//! A slice of `n` values is cut into `m = ⌈n/d⌉` sub-vectors of `d` consecutive values.
//! When `d` does not divide `n`, the last one holds only `r = n mod d` values: it is
//! assigned on those `r` dimensions alone and contributes to those dimensions of its
//! centroid alone, so no padding value is ever invented (a decoder takes the first `r`
//! values of its codeword).
//!
//! # Semantics
//!
//! 1. **Initialisation** ([`PqParams::seed`]): k-means++ (Arthur & Vassilvitskii 2007) over
//!    the full sub-vectors with a seeded generator; when there are fewer distinct full
//!    sub-vectors than `k`, the remaining codewords repeat the last one chosen (they stay
//!    empty and are harmless). With no full sub-vector at all (`n < d`) the single partial
//!    one is padded with zeros to seed every codeword.
//! 2. **Assignment** ([`assign`]): squared Euclidean distance over the valid dimensions,
//!    summed in `f32` in dimension order; a tie goes to the lowest index.
//! 3. **Update** ([`update`]): per cluster and dimension, `Σ wᵢ·vᵢ / Σ wᵢ` over the members
//!    (in `f64`) where `w` is the importance; where the importance of a cluster's members
//!    sums to zero in a dimension, the plain mean of that dimension is used instead. With
//!    no importance, every weight is 1 (plain k-means). A cluster without members keeps
//!    its codeword.
//! 4. **Stopping**: after an assignment that changes no label, or after
//!    [`PqParams::max_iter`] update steps. The labels returned are those of the last
//!    assignment against the codewords returned, so `codeword[label]` is what a model
//!    decodes.

use rayon::prelude::*;

use crate::KernelError;

const KERNEL: &str = "pq_kmeans";

/// Parameters of [`pq_kmeans`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PqParams {
    /// Sub-vector dimension `d` (at least 1).
    pub dim: usize,
    /// Number of codewords `k` (at least 1).
    pub k: usize,
    /// Maximum number of update steps.
    pub max_iter: usize,
    /// Seed of the k-means++ initialisation.
    pub seed: u64,
}

/// The result of [`pq_kmeans`].
#[derive(Debug, Clone, PartialEq)]
pub struct PqResult {
    /// `k × d` codeword values, row-major.
    pub codewords: Vec<f32>,
    /// One codeword index per sub-vector (`⌈n/d⌉` of them).
    pub labels: Vec<u32>,
    /// Update steps run.
    pub iterations: usize,
    /// Whether the last assignment changed no label.
    pub converged: bool,
}

/// Number of sub-vectors of `n` values at dimension `d`.
pub fn subvectors(n: usize, d: usize) -> usize {
    n.div_ceil(d.max(1))
}

fn check(data: &[f32], dim: usize, k: usize) -> Result<(), KernelError> {
    if data.is_empty() {
        return Err(KernelError::EmptyInput { kernel: KERNEL });
    }
    if let Some((index, value)) = data.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(KernelError::NonFiniteInput {
            kernel: KERNEL,
            index,
            value: *value,
        });
    }
    let bad = |name, value: usize| KernelError::InvalidParameter {
        kernel: KERNEL,
        name,
        value: value.to_string(),
        allowed: "at least 1",
    };
    if dim == 0 {
        return Err(bad("dim", dim));
    }
    if k == 0 {
        return Err(bad("k", k));
    }
    Ok(())
}

/// Squared distance of `v` (its valid values) to the first `v.len()` values of `c`.
fn dist2(v: &[f32], c: &[f32]) -> f32 {
    v.iter().zip(c).map(|(a, b)| (a - b) * (a - b)).sum()
}

/// The nearest of the `codewords` (`k × dim`, row-major) for every sub-vector of `data`
/// (ties: the lowest index).
///
/// # Errors
/// [`KernelError`] for empty or non-finite data, `dim = 0`, or a codeword slice that is
/// empty or not a multiple of `dim`.
pub fn assign(data: &[f32], dim: usize, codewords: &[f32]) -> Result<Vec<u32>, KernelError> {
    check(data, dim, codewords.len() / dim.max(1))?;
    if codewords.len() % dim != 0 {
        return Err(KernelError::InvalidParameter {
            kernel: KERNEL,
            name: "codewords",
            value: format!("{} values for dim {dim}", codewords.len()),
            allowed: "a non-zero multiple of dim",
        });
    }
    Ok(assign_unchecked(data, dim, codewords))
}

fn assign_unchecked(data: &[f32], dim: usize, codewords: &[f32]) -> Vec<u32> {
    data.par_chunks(dim)
        .with_min_len(256)
        .map(|v| {
            let mut best = (f32::INFINITY, 0u32);
            for (j, c) in codewords.chunks_exact(dim).enumerate() {
                let d = dist2(v, c);
                if d < best.0 {
                    best = (d, j as u32);
                }
            }
            best.1
        })
        .collect()
}

/// Moves every codeword to the (importance-weighted) mean of its members, in place; see
/// the module documentation for the rules. `importance`, when given, has one
/// non-negative finite value per element of `data`.
///
/// # Errors
/// [`KernelError`] for mismatched lengths, a label out of range, or a negative or
/// non-finite importance.
pub fn update(
    data: &[f32],
    dim: usize,
    labels: &[u32],
    importance: Option<&[f32]>,
    codewords: &mut [f32],
) -> Result<(), KernelError> {
    let k = codewords.len() / dim.max(1);
    check(data, dim, k)?;
    let mismatch = |name, value: String, allowed| KernelError::InvalidParameter {
        kernel: KERNEL,
        name,
        value,
        allowed,
    };
    if labels.len() != subvectors(data.len(), dim) {
        return Err(mismatch(
            "labels",
            format!(
                "{} for {} sub-vectors",
                labels.len(),
                subvectors(data.len(), dim)
            ),
            "one per sub-vector",
        ));
    }
    if let Some(l) = labels.iter().find(|l| **l as usize >= k) {
        return Err(mismatch("label", format!("{l} with k = {k}"), "below k"));
    }
    check_importance(data, importance)?;
    update_unchecked(data, dim, labels, importance, codewords);
    Ok(())
}

/// One non-negative finite importance per value of `data`, when given.
fn check_importance(data: &[f32], importance: Option<&[f32]>) -> Result<(), KernelError> {
    let Some(w) = importance else {
        return Ok(());
    };
    if w.len() != data.len() {
        return Err(KernelError::InvalidParameter {
            kernel: KERNEL,
            name: "importance",
            value: format!("{} values for {}", w.len(), data.len()),
            allowed: "one per value",
        });
    }
    match w
        .iter()
        .enumerate()
        .find(|(_, v)| !(v.is_finite() && **v >= 0.0))
    {
        Some((index, value)) => Err(KernelError::NonFiniteInput {
            kernel: "pq_kmeans importance (finite, >= 0)",
            index,
            value: *value,
        }),
        None => Ok(()),
    }
}

fn update_unchecked(
    data: &[f32],
    dim: usize,
    labels: &[u32],
    importance: Option<&[f32]>,
    codewords: &mut [f32],
) {
    let k = codewords.len() / dim;
    // Per cluster and dimension: Σw·v, Σw, Σv, count (f64).
    let mut sums = vec![[0f64; 4]; k * dim];
    for (i, (v, l)) in data.chunks(dim).zip(labels).enumerate() {
        let base = *l as usize * dim;
        for (t, x) in v.iter().enumerate() {
            let w = importance.map_or(1.0, |w| w[i * dim + t] as f64);
            let s = &mut sums[base + t];
            s[0] += w * *x as f64;
            s[1] += w;
            s[2] += *x as f64;
            s[3] += 1.0;
        }
    }
    for (c, s) in codewords.iter_mut().zip(&sums) {
        if s[1] > 0.0 {
            *c = (s[0] / s[1]) as f32;
        } else if s[3] > 0.0 {
            *c = (s[2] / s[3]) as f32;
        }
    }
}

/// A seeded draw in [0, 1).
fn uniform(s: &mut u64) -> f64 {
    *s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
}

/// k-means++ seeding over the full sub-vectors (module documentation, rule 1).
fn init(data: &[f32], dim: usize, k: usize, seed: u64) -> Vec<f32> {
    let full: Vec<&[f32]> = data.chunks_exact(dim).collect();
    if full.is_empty() {
        let mut one = data.to_vec();
        one.resize(dim, 0.0);
        return one.repeat(k);
    }
    let mut s = seed ^ 0x5EED_C0DE_B00C_0DE5;
    let mut words: Vec<f32> = Vec::with_capacity(k * dim);
    let first = (uniform(&mut s) * full.len() as f64) as usize % full.len();
    words.extend_from_slice(full[first]);
    let mut d2: Vec<f64> = full.iter().map(|v| dist2(v, full[first]) as f64).collect();
    while words.len() < k * dim {
        let total: f64 = d2.iter().sum();
        if total <= 0.0 {
            // Fewer distinct sub-vectors than k: repeat the last codeword.
            let last = words[words.len() - dim..].to_vec();
            words.extend_from_slice(&last);
            continue;
        }
        let mut r = uniform(&mut s) * total;
        let mut pick = full.len() - 1;
        for (i, d) in d2.iter().enumerate() {
            if r < *d {
                pick = i;
                break;
            }
            r -= d;
        }
        words.extend_from_slice(full[pick]);
        let c = full[pick];
        d2.par_iter_mut()
            .zip(full.par_iter())
            .with_min_len(256)
            .for_each(|(d, v)| *d = d.min(dist2(v, c) as f64));
    }
    words
}

/// Product-quantization k-means of `data` (see the module documentation), optionally
/// weighted by a per-element `importance` (the GWK update). `init_codewords`, when given
/// (`k × dim` values), replaces the k-means++ seeding: a periodic re-clustering starts
/// from the codebook it refines.
///
/// # Errors
/// [`KernelError`] for empty or non-finite data, `dim` or `k` of 0, a bad importance, or
/// initial codewords of the wrong length.
pub fn pq_kmeans(
    data: &[f32],
    params: &PqParams,
    importance: Option<&[f32]>,
    init_codewords: Option<&[f32]>,
) -> Result<PqResult, KernelError> {
    let (dim, k) = (params.dim, params.k);
    check(data, dim, k)?;
    let mut codewords = match init_codewords {
        Some(c) if c.len() == k * dim && c.iter().all(|v| v.is_finite()) => c.to_vec(),
        Some(c) => {
            return Err(KernelError::InvalidParameter {
                kernel: KERNEL,
                name: "init_codewords",
                value: format!("{} values for k × dim = {}", c.len(), k * dim),
                allowed: "k × dim finite values",
            })
        }
        None => init(data, dim, k, params.seed),
    };
    check_importance(data, importance)?;
    let mut labels = assign_unchecked(data, dim, &codewords);
    let mut iterations = 0;
    let mut converged = false;
    while iterations < params.max_iter {
        update_unchecked(data, dim, &labels, importance, &mut codewords);
        iterations += 1;
        let next = assign_unchecked(data, dim, &codewords);
        let same = next == labels;
        labels = next;
        if same {
            converged = true;
            break;
        }
    }
    Ok(PqResult {
        codewords,
        labels,
        iterations,
        converged,
    })
}

/// The values `codewords[labels]` decode to: `n` values, the last sub-vector cut to the
/// tail's length.
pub fn reconstruct(n: usize, dim: usize, codewords: &[f32], labels: &[u32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(n);
    for l in labels {
        let c = &codewords[*l as usize * dim..(*l as usize + 1) * dim];
        let take = (n - out.len()).min(dim);
        out.extend_from_slice(&c[..take]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_update_matches_a_hand_computed_mean() {
        // Two 2-d sub-vectors in one cluster: (1, 10) w (3, 0), (5, 20) w (1, 0).
        let data = [1.0, 10.0, 5.0, 20.0];
        let w = [3.0, 0.0, 1.0, 0.0];
        let mut c = vec![0.0, 0.0];
        update(&data, 2, &[0, 0], Some(&w), &mut c).unwrap();
        // dim 0: (3·1 + 1·5)/4 = 2; dim 1: weights sum to 0 → plain mean 15.
        assert_eq!(c, vec![2.0, 15.0]);
        update(&data, 2, &[0, 0], None, &mut c).unwrap();
        assert_eq!(c, vec![3.0, 15.0]);
    }

    #[test]
    fn partial_tail_counts_on_its_own_dimensions() {
        // n = 5, d = 2: the last sub-vector holds one value.
        let data = [1.0, 2.0, 3.0, 4.0, 9.0];
        let mut c = vec![0.0, 0.0];
        update(&data, 2, &[0, 0, 0], None, &mut c).unwrap();
        assert_eq!(c, vec![(1.0 + 3.0 + 9.0) / 3.0, 3.0]);
        assert_eq!(reconstruct(5, 2, &c, &[0, 0, 0]).len(), 5);
        // Assignment of the tail uses its one dimension: 9 is nearer (9, -100) than (0, 0).
        let words = [0.0, 0.0, 9.0, -100.0];
        assert_eq!(assign(&data, 2, &words).unwrap(), vec![0, 0, 1]);
    }

    #[test]
    fn empty_cluster_keeps_its_codeword_and_ties_go_low() {
        let data = [1.0, 1.0];
        let mut c = vec![0.0, 0.0, 7.0, 7.0];
        update(&data, 2, &[0], None, &mut c).unwrap();
        assert_eq!(c, vec![1.0, 1.0, 7.0, 7.0]);
        assert_eq!(assign(&[0.5], 1, &[0.0, 1.0]).unwrap(), vec![0]);
    }

    #[test]
    fn kmeans_is_seeded_and_separates_clear_groups() {
        let mut data = Vec::new();
        for i in 0..40 {
            let base = if i % 2 == 0 { -1.0 } else { 1.0 };
            data.extend_from_slice(&[base + i as f32 * 1e-3, -base]);
        }
        let p = PqParams {
            dim: 2,
            k: 2,
            max_iter: 50,
            seed: 7,
        };
        let a = pq_kmeans(&data, &p, None, None).unwrap();
        let b = pq_kmeans(&data, &p, None, None).unwrap();
        assert_eq!(a, b);
        assert!(a.converged);
        assert_ne!(a.labels[0], a.labels[1]);
        assert!(a.labels.iter().step_by(2).all(|l| *l == a.labels[0]));
    }

    #[test]
    fn bad_input_is_an_error() {
        let p = PqParams {
            dim: 2,
            k: 2,
            max_iter: 5,
            seed: 0,
        };
        assert!(pq_kmeans(&[], &p, None, None).is_err());
        assert!(pq_kmeans(&[f32::NAN, 1.0], &p, None, None).is_err());
        assert!(pq_kmeans(&[1.0, 2.0], &p, Some(&[-1.0, 0.0]), None).is_err());
        assert!(pq_kmeans(&[1.0, 2.0], &p, None, Some(&[1.0])).is_err());
        assert!(assign(&[1.0, 2.0], 2, &[1.0, 2.0, 3.0]).is_err());
        let p0 = PqParams { dim: 0, ..p };
        assert!(pq_kmeans(&[1.0], &p0, None, None).is_err());
    }

    #[test]
    fn fewer_distinct_subvectors_than_k_is_fine() {
        let p = PqParams {
            dim: 2,
            k: 8,
            max_iter: 10,
            seed: 1,
        };
        let r = pq_kmeans(&[1.0, 1.0, 1.0, 1.0, 1.0], &p, None, None).unwrap();
        assert_eq!(reconstruct(5, 2, &r.codewords, &r.labels), vec![1.0; 5]);
        let tiny = pq_kmeans(&[3.0], &p, None, None).unwrap();
        assert_eq!(reconstruct(1, 2, &tiny.codewords, &tiny.labels), vec![3.0]);
    }
}
