//! The fast 1-D k-means agrees with the naive reference on seeded random
//! data: several distributions, `k` from 1 to 256, `n` from 1 to 100 000.

mod common;

use common::{assert_equivalent, assert_labels_nearest, sample, Dist, DISTS};
use wb_kernels::{kmeans_1d, KMeans1dParams};

fn sweep(ns: &[usize], ks: &[usize], tols: &[f64], seed_base: u64) -> (usize, usize) {
    let (mut runs, mut identical) = (0, 0);
    let mut worst_rel = 0.0f64;
    let mut mismatches = 0;
    for (d, &dist) in DISTS.iter().enumerate() {
        for &n in ns {
            let data = sample(dist, n, seed_base + 1000 * d as u64 + n as u64);
            for &k in ks {
                for &tol in tols {
                    let params = KMeans1dParams {
                        k,
                        max_iter: 100,
                        tol,
                    };
                    let what = format!("{dist:?} n={n} k={k} tol={tol}");
                    let agreement = assert_equivalent(&data, &params, &what);
                    runs += 1;
                    identical += usize::from(agreement.identical);
                    worst_rel = worst_rel.max(agreement.max_centroid_rel);
                    mismatches += agreement.label_mismatches;
                }
            }
        }
    }
    eprintln!(
        "{identical}/{runs} runs bit-identical; worst centroid diff {worst_rel:e} x range; \
         {mismatches} label mismatches in total"
    );
    (runs, identical)
}

#[test]
fn fast_matches_naive_small_n_all_k() {
    let ns = [1, 2, 3, 5, 17, 64, 257, 1000];
    let ks = [1, 2, 3, 4, 5, 8, 16, 31, 64, 128, 255, 256];
    sweep(&ns, &ks, &[1e-4, 0.0], 1);
}

#[test]
fn fast_matches_naive_medium_n() {
    sweep(&[10_000], &[1, 2, 4, 16, 64, 256], &[1e-4, 0.0], 2);
}

#[test]
fn fast_matches_naive_large_n() {
    sweep(&[100_000], &[1, 3, 16, 64, 256], &[1e-4], 3);
}

#[test]
fn fast_matches_naive_large_n_to_full_convergence() {
    // tol = 0: iterate until the centroids stop moving (or 100 iterations).
    for k in [16, 256] {
        let data = sample(Dist::Normal, 100_000, 4);
        let params = KMeans1dParams {
            k,
            max_iter: 100,
            tol: 0.0,
        };
        assert_equivalent(&data, &params, &format!("normal n=100000 k={k} tol=0"));
    }
}

#[test]
fn fast_labels_are_nearest_large() {
    for dist in DISTS {
        let data = sample(dist, 50_000, 5);
        let res = kmeans_1d(&data, &KMeans1dParams::with_k(64)).unwrap();
        assert_labels_nearest(&data, &res, &format!("{dist:?}"));
    }
}
