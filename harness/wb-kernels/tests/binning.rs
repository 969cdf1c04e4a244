//! Uniform binning: the O(N) kernel against the O(N k) `digitize` reference on seeded
//! random and adversarial inputs, plus the documented edge cases.

mod common;

use common::{sample, DISTS};
use proptest::prelude::*;
use wb_kernels::binning::linspace_edges;
use wb_kernels::{uniform_bins, uniform_bins_naive, KernelError, UniformBins};

/// Same bins, labels and counts; shared values equal up to one f32 ulp (compensated
/// sums against plain f64 sums).
fn assert_equivalent(data: &[f32], k: usize) -> UniformBins {
    let fast = uniform_bins(data, k).unwrap();
    let naive = uniform_bins_naive(data, k).unwrap();
    assert_eq!(fast.bins, naive.bins, "k = {k}");
    assert_eq!(fast.counts, naive.counts, "k = {k}");
    assert_eq!(fast.labels, naive.labels, "k = {k}");
    // Plain f64 sums (the reference) err by at most n·2^-53·Σ|x| where the kernel's
    // compensated sums are nearly exact; beyond that, one f32 rounding step.
    let mut abs_sum = vec![0f64; fast.len()];
    for (&x, &l) in data.iter().zip(&fast.labels) {
        abs_sum[l as usize] += f64::from(x).abs();
    }
    for (i, (a, b)) in fast.values.iter().zip(&naive.values).enumerate() {
        let n = fast.counts[i] as f64;
        let tol = (n + 2.0) * f64::EPSILON * abs_sum[i] / n;
        let ulp = f64::from(a.abs().max(b.abs())) * f64::from(f32::EPSILON);
        let diff = (f64::from(*a) - f64::from(*b)).abs();
        assert!(diff <= tol + ulp || a == b, "k = {k}: {a} vs {b}");
    }
    check_invariants(data, &fast);
    fast
}

/// Every value sits in its bin's half-open interval (the maximum in the last bin),
/// each shared value lies between its bin's smallest and largest member, counts add up.
fn check_invariants(data: &[f32], r: &UniformBins) {
    let e = linspace_edges(r.min, r.max, r.k);
    assert_eq!(r.counts.iter().sum::<u64>(), data.len() as u64);
    assert!(r.bins.windows(2).all(|w| w[0] < w[1]));
    assert!(r.values.windows(2).all(|w| w[0] <= w[1]));
    let mut lo = vec![f32::INFINITY; r.len()];
    let mut hi = vec![f32::NEG_INFINITY; r.len()];
    for (&x, &l) in data.iter().zip(&r.labels) {
        let b = r.bins[l as usize] as usize;
        let xf = f64::from(x);
        assert!(e[b] <= xf, "{x} below edge {b} = {}", e[b]);
        if b + 1 < r.k {
            assert!(xf < e[b + 1], "{x} not below edge {} = {}", b + 1, e[b + 1]);
        }
        lo[l as usize] = lo[l as usize].min(x);
        hi[l as usize] = hi[l as usize].max(x);
    }
    for (i, v) in r.values.iter().enumerate() {
        assert!(
            lo[i] <= *v && *v <= hi[i],
            "mean {v} outside [{}, {}]",
            lo[i],
            hi[i]
        );
    }
}

#[test]
fn fast_matches_naive_on_seeded_distributions() {
    for (s, dist) in DISTS.iter().enumerate() {
        for &n in &[1usize, 2, 17, 1000, 40_000] {
            for &k in &[1usize, 2, 3, 7, 64, 256, 1024] {
                assert_equivalent(&sample(*dist, n, 100 + s as u64), k);
            }
        }
    }
}

#[test]
fn values_exactly_on_edges() {
    // The data are the f32 edges themselves: each lands in its own bin, except where
    // rounding to f32 moved an edge below its f64 value (then it belongs to the bin
    // before), which the reference decides the same way.
    for k in [2usize, 5, 33, 1000] {
        let e = linspace_edges(-1.0, 3.0, k);
        let data: Vec<f32> = e.iter().map(|&x| x as f32).collect();
        let r = assert_equivalent(&data, k);
        assert_eq!(r.labels[0], 0);
        assert_eq!(
            *r.bins.last().unwrap() as usize,
            k - 1,
            "the maximum is bin k - 1"
        );
    }
    // Exactly representable edges: one value per bin.
    let data = [0.0f32, 0.25, 0.5, 0.75, 1.0];
    let r = assert_equivalent(&data, 5);
    assert_eq!(r.bins, vec![0, 1, 2, 3, 4]);
    assert_eq!(r.values, data.to_vec());
}

#[test]
fn all_equal_weights_give_one_shared_value_in_the_last_bin() {
    for k in [1usize, 2, 10, 1024] {
        let data = vec![0.125f32; 100];
        let r = assert_equivalent(&data, k);
        assert_eq!(r.bins, vec![(k - 1) as u32]);
        assert_eq!(r.values, vec![0.125]);
        assert_eq!(r.counts, vec![100]);
        assert_eq!(r.dequantize(), data);
    }
}

#[test]
fn single_outlier_gets_its_own_bin_and_empty_bins_are_dropped() {
    let mut data: Vec<f32> = (0..1000).map(|i| (i as f32) * 5e-5).collect();
    data.push(100.0);
    let r = assert_equivalent(&data, 1024);
    assert_eq!(r.len(), 2, "bulk in bin 0, outlier alone in bin k - 1");
    assert_eq!(r.bins, vec![0, 1023]);
    assert_eq!(r.counts, vec![1000, 1]);
    assert_eq!(r.values[1], 100.0);
    // A low outlier: it is the minimum and bin 0; the bulk spreads over the top bins.
    let mut low = vec![-50.0f32];
    low.extend((0..100).map(|i| i as f32 * 0.01));
    let r = assert_equivalent(&low, 16);
    assert_eq!(r.bins[0], 0);
    assert_eq!(r.counts[0], 1);
    assert_eq!(r.values[0], -50.0);
}

#[test]
fn more_bins_than_distinct_values_decodes_each_value_exactly() {
    let data: Vec<f32> = (0..500).map(|i| [-0.5f32, 0.1, 0.3][i % 3]).collect();
    let r = assert_equivalent(&data, 1000);
    assert_eq!(r.len(), 3);
    assert_eq!(r.dequantize(), data);
}

#[test]
fn k_one_is_the_mean_of_everything() {
    let data = [1.0f32, 2.0, 3.0, 6.0];
    let r = assert_equivalent(&data, 1);
    assert_eq!(r.values, vec![3.0]);
    assert_eq!(r.bins, vec![0]);
}

#[test]
fn extreme_magnitudes_and_signed_zeros() {
    let data = [
        f32::MAX,
        -f32::MAX,
        0.0,
        -0.0,
        f32::MIN_POSITIVE,
        1e-45,
        -1e-45,
    ];
    for k in [1usize, 2, 3, 1024] {
        assert_equivalent(&data, k);
    }
    // Sums in f64 do not overflow where f32 would.
    let r = uniform_bins(&[f32::MAX, f32::MAX, f32::MAX], 4).unwrap();
    assert_eq!(r.values, vec![f32::MAX]);
}

#[test]
fn invalid_input_is_rejected() {
    assert_eq!(
        uniform_bins(&[], 4).unwrap_err(),
        KernelError::EmptyInput {
            kernel: "uniform_bins"
        }
    );
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        match uniform_bins(&[0.0, 1.0, bad], 4).unwrap_err() {
            KernelError::NonFiniteInput { index, .. } => assert_eq!(index, 2),
            e => panic!("unexpected {e}"),
        }
        assert!(uniform_bins_naive(&[bad], 4).is_err());
    }
    assert!(matches!(
        uniform_bins(&[1.0], 0),
        Err(KernelError::InvalidParameter { name: "k", .. })
    ));
    assert!(uniform_bins(&[1.0], wb_kernels::binning::MAX_BINS + 1).is_err());
}

#[test]
fn deterministic_across_thread_counts() {
    let data = sample(common::Dist::Normal, 200_000, 7);
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(|| uniform_bins(&data, 300).unwrap());
    let many = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build()
        .unwrap()
        .install(|| uniform_bins(&data, 300).unwrap());
    assert_eq!(one, many);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn prop_fast_equals_naive(
        data in prop::collection::vec(
            prop_oneof![-1.0f32..1.0, Just(0.0f32), Just(-0.0f32), -1e30f32..1e30],
            1..400,
        ),
        k in 1usize..300,
    ) {
        assert_equivalent(&data, k);
    }
}
