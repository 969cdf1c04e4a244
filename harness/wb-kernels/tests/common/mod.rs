//! Helpers shared by the integration tests: seeded data generators and the
//! fast-vs-naive equivalence check.

#![allow(dead_code)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wb_kernels::{kmeans_1d, kmeans_1d_naive, KMeans1d, KMeans1dParams};

/// Data distributions the equivalence tests sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dist {
    /// N(0, 0.05²) via Box–Muller, like conv weights.
    Normal,
    /// Uniform on [-1, 1).
    Uniform,
    /// Symmetric heavy tail: Student-t-like ratio of normals (Cauchy),
    /// clamped to ±1e4 to stay meaningful in f32 sums.
    HeavyTailed,
    /// Values drawn from 7 distinct levels (many exact duplicates).
    Duplicates,
    /// Positive data far from zero (offset 1000, spread 1): stresses the
    /// accuracy of sums, and empty clusters jumping to 0.0.
    Offset,
}

/// All distributions.
pub const DISTS: [Dist; 5] = [
    Dist::Normal,
    Dist::Uniform,
    Dist::HeavyTailed,
    Dist::Duplicates,
    Dist::Offset,
];

fn std_normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// `n` seeded samples from `dist`.
pub fn sample(dist: Dist, n: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| match dist {
            Dist::Normal => (0.05 * std_normal(&mut rng)) as f32,
            Dist::Uniform => rng.random_range(-1.0f32..1.0),
            Dist::HeavyTailed => {
                let num = std_normal(&mut rng);
                let den = std_normal(&mut rng);
                (0.01 * num / den).clamp(-1e4, 1e4) as f32
            }
            Dist::Duplicates => {
                const LEVELS: [f32; 7] = [-0.5, -0.125, 0.0, 0.0625, 0.25, 0.3, 1.0];
                LEVELS[rng.random_range(0..LEVELS.len())]
            }
            Dist::Offset => (1000.0 + std_normal(&mut rng)) as f32,
        })
        .collect()
}

/// `max − min` of the data in `f64`.
pub fn range(data: &[f32]) -> f64 {
    let min = data.iter().copied().fold(f32::INFINITY, f32::min);
    let max = data.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    f64::from(max) - f64::from(min)
}

/// Outcome of one fast-vs-naive comparison, for statistics.
#[derive(Debug, Default, Clone, Copy)]
pub struct Agreement {
    /// Centroids bit-identical and labels identical.
    pub identical: bool,
    /// Largest centroid difference divided by the data range.
    pub max_centroid_rel: f64,
    /// Number of values whose labels differ.
    pub label_mismatches: usize,
}

/// Runs both implementations and asserts they agree:
/// * same `k`, same `iterations` and `converged`;
/// * centroids within `1e-5 × range` (absolute `1e-30` for constant data);
/// * same labels, except for values equidistant (within `1e-6 × range`)
///   from the two centroids involved;
/// * inertia within `1e-6` relative (plus `1e-12 × range² × n`).
pub fn assert_equivalent(data: &[f32], params: &KMeans1dParams, what: &str) -> Agreement {
    let fast = kmeans_1d(data, params).expect("fast kmeans");
    let naive = kmeans_1d_naive(data, params).expect("naive kmeans");
    check_equivalent(data, &fast, &naive, what)
}

/// The comparison of [`assert_equivalent`] on two existing results.
pub fn check_equivalent(data: &[f32], fast: &KMeans1d, naive: &KMeans1d, what: &str) -> Agreement {
    let r = range(data);
    let c_tol = (1e-5 * r).max(1e-30);
    let tie_tol = (1e-6 * r).max(1e-30);
    assert_eq!(fast.centroids.len(), naive.centroids.len(), "{what}: k");
    assert_eq!(fast.labels.len(), data.len(), "{what}: fast labels len");
    assert_eq!(naive.labels.len(), data.len(), "{what}: naive labels len");
    assert_eq!(fast.iterations, naive.iterations, "{what}: iterations");
    assert_eq!(fast.converged, naive.converged, "{what}: converged");

    let mut max_centroid_rel = 0.0f64;
    for (j, (&a, &b)) in fast.centroids.iter().zip(&naive.centroids).enumerate() {
        let d = (f64::from(a) - f64::from(b)).abs();
        assert!(
            d <= c_tol,
            "{what}: centroid {j} differs: fast {a} vs naive {b} (range {r})"
        );
        if r > 0.0 {
            max_centroid_rel = max_centroid_rel.max(d / r);
        }
    }

    let mut label_mismatches = 0;
    for (i, (&lf, &ln)) in fast.labels.iter().zip(&naive.labels).enumerate() {
        if lf != ln {
            label_mismatches += 1;
            let x = f64::from(data[i]);
            let df = (x - f64::from(fast.centroids[lf as usize])).abs();
            let dn = (x - f64::from(fast.centroids[ln as usize])).abs();
            assert!(
                (df - dn).abs() <= tie_tol,
                "{what}: label of value {i} ({x}) differs: fast {lf} (d={df}) vs naive {ln} (d={dn})"
            );
        }
    }

    let n = data.len() as f64;
    let i_tol = 1e-6 * naive.inertia.abs() + 1e-12 * r * r * n;
    assert!(
        (fast.inertia - naive.inertia).abs() <= i_tol,
        "{what}: inertia fast {} vs naive {}",
        fast.inertia,
        naive.inertia
    );

    let identical = label_mismatches == 0
        && fast
            .centroids
            .iter()
            .zip(&naive.centroids)
            .all(|(a, b)| a.to_bits() == b.to_bits());
    Agreement {
        identical,
        max_centroid_rel,
        label_mismatches,
    }
}

/// Asserts that every label points to a nearest centroid (rounded `f64`
/// distances are monotone in the exact ones, so `<=` must hold), and that a
/// value with a rounded tie at a lower index really sits at the exact
/// midpoint of equal-distance centroids (checked in `f64`, where the
/// midpoint of two `f32` is exact unless their exponents are far apart).
pub fn assert_labels_nearest(data: &[f32], res: &KMeans1d, what: &str) {
    for (i, (&x, &l)) in data.iter().zip(&res.labels).enumerate() {
        let x = f64::from(x);
        let dl = (x - f64::from(res.centroids[l as usize])).abs();
        for (j, &c) in res.centroids.iter().enumerate() {
            let d = (x - f64::from(c)).abs();
            assert!(
                dl <= d,
                "{what}: value {i} ({x}) labelled {l} (d={dl}) but centroid {j} is nearer (d={d})"
            );
        }
    }
}

/// Inertia of the linspace initialisation with nearest assignment, computed
/// independently of the crate (plain `f64`).
pub fn init_inertia(data: &[f32], k: usize) -> f64 {
    let min = f64::from(data.iter().copied().fold(f32::INFINITY, f32::min));
    let max = f64::from(data.iter().copied().fold(f32::NEG_INFINITY, f32::max));
    let centroids: Vec<f64> = if k == 1 {
        vec![min]
    } else {
        (0..k)
            .map(|j| f64::from((min + (max - min) * j as f64 / (k - 1) as f64) as f32))
            .collect()
    };
    data.iter()
        .map(|&x| {
            let x = f64::from(x);
            centroids
                .iter()
                .map(|&c| (x - c) * (x - c))
                .fold(f64::INFINITY, f64::min)
        })
        .sum()
}
