//! Edge cases and documented rules of the 1-D k-means, checked on both
//! implementations.

mod common;

use common::{assert_equivalent, sample, Dist};
use wb_kernels::{kmeans_1d, kmeans_1d_naive, KMeans1d, KMeans1dParams, KernelError};

type KMeansFn = fn(&[f32], &KMeans1dParams) -> Result<KMeans1d, KernelError>;

const BOTH: [(&str, KMeansFn); 2] = [("fast", kmeans_1d), ("naive", kmeans_1d_naive)];

#[test]
fn all_equal_weights() {
    for (name, f) in BOTH {
        let data = vec![0.3f32; 50];
        let res = f(&data, &KMeans1dParams::with_k(8)).unwrap();
        // Init: all 8 centroids at 0.3; every value ties, lowest index wins;
        // the 7 empty clusters go to 0.0; the second iteration moves nothing.
        let mut expected = vec![0.0f32; 8];
        expected[0] = 0.3;
        assert_eq!(res.centroids, expected, "{name}");
        assert!(res.labels.iter().all(|&l| l == 0), "{name}");
        assert_eq!(res.iterations, 2, "{name}");
        assert!(res.converged, "{name}");
        assert_eq!(res.inertia, 0.0, "{name}");
    }
}

#[test]
fn all_zero_weights_converge_in_one_iteration() {
    for (name, f) in BOTH {
        let res = f(&[0.0f32; 10], &KMeans1dParams::with_k(4)).unwrap();
        assert_eq!(res.centroids, vec![0.0; 4], "{name}");
        assert_eq!(res.iterations, 1, "{name}");
        assert!(res.converged, "{name}");
        assert!(res.labels.iter().all(|&l| l == 0), "{name}");
    }
}

#[test]
fn more_clusters_than_distinct_values_empty_go_to_zero() {
    for (name, f) in BOTH {
        let data = [1.0f32, 1.0, 2.0, 2.0, 3.0, 3.0];
        let res = f(&data, &KMeans1dParams::with_k(5)).unwrap();
        // Init linspace(1, 3, 5) = [1, 1.5, 2, 2.5, 3]: 1.5 and 2.5 get
        // nothing and become 0.0 (nan_to_num rule).
        assert_eq!(res.centroids, vec![1.0, 0.0, 2.0, 0.0, 3.0], "{name}");
        assert_eq!(res.labels, vec![0, 0, 2, 2, 4, 4], "{name}");
        assert_eq!(res.iterations, 2, "{name}");
        assert!(res.converged, "{name}");
        assert_eq!(res.inertia, 0.0, "{name}");
    }
}

#[test]
fn empty_cluster_at_zero_can_recapture_values() {
    for (name, f) in BOTH {
        let data = [0.1f32, 0.2, 5.0, 6.0, 100.0];
        let res = f(&data, &KMeans1dParams::with_k(3)).unwrap();
        // it 1: init [0.1, 50.05, 100]; c1 is empty -> 0.0; c0 = mean(0.1, 0.2, 5, 6)
        // it 2: 0.1 and 0.2 now go to c1 = 0.0; c0 = 5.5, c1 = 0.15
        // it 3: stable.
        assert_eq!(res.centroids, vec![5.5, 0.15, 100.0], "{name}");
        assert_eq!(res.labels, vec![1, 1, 0, 0, 2], "{name}");
        assert_eq!(res.iterations, 3, "{name}");
        assert!(res.converged, "{name}");
    }
}

#[test]
fn single_element() {
    for (name, f) in BOTH {
        let res = f(&[0.7f32], &KMeans1dParams::with_k(4)).unwrap();
        assert_eq!(res.centroids, vec![0.7, 0.0, 0.0, 0.0], "{name}");
        assert_eq!(res.labels, vec![0], "{name}");
        assert_eq!(res.inertia, 0.0, "{name}");
        let res = f(&[-2.5f32], &KMeans1dParams::with_k(1)).unwrap();
        assert_eq!(res.centroids, vec![-2.5], "{name}");
        assert_eq!(res.iterations, 1, "{name}");
    }
}

#[test]
fn k1_gives_the_mean() {
    for dist in [Dist::Normal, Dist::Uniform, Dist::Offset] {
        let data = sample(dist, 12_345, 77);
        let mean = data.iter().map(|&x| f64::from(x)).sum::<f64>() / data.len() as f64;
        for (name, f) in BOTH {
            let res = f(&data, &KMeans1dParams::with_k(1)).unwrap();
            assert_eq!(res.centroids.len(), 1);
            let c = f64::from(res.centroids[0]);
            assert!(
                (c - mean).abs() <= 1e-6 * mean.abs().max(1e-3),
                "{name} {dist:?}: centroid {c} vs mean {mean}"
            );
            assert!(res.labels.iter().all(|&l| l == 0));
            assert!(res.converged && res.iterations <= 2, "{name}");
            let var = data
                .iter()
                .map(|&x| (f64::from(x) - mean).powi(2))
                .sum::<f64>();
            assert!((res.inertia - var).abs() <= 1e-6 * var, "{name}");
        }
    }
}

#[test]
fn midpoint_ties_go_to_lower_index() {
    for (name, f) in BOTH {
        // Init [0, 1]; 0.5 is equidistant and goes to centroid 0.
        let res = f(&[0.0f32, 1.0, 0.5], &KMeans1dParams::with_k(2)).unwrap();
        assert_eq!(res.centroids, vec![0.25, 1.0], "{name}");
        assert_eq!(res.labels, vec![0, 1, 0], "{name}");
    }
}

#[test]
fn midpoint_tie_goes_to_lower_index_even_when_it_is_the_upper_value() {
    for (name, f) in BOTH {
        // it 1: init [0.25, 1.625, 3]; 0.25 and 0.75 -> c0 = 0.5; c1 empty -> 0.0.
        // it 2: 0.25 is exactly halfway between c1 = 0.0 and c0 = 0.5: the
        // lower index (0) wins although its value is the upper one.
        let res = f(&[0.25f32, 3.0, 0.75], &KMeans1dParams::with_k(3)).unwrap();
        assert_eq!(res.centroids, vec![0.5, 0.0, 3.0], "{name}");
        assert_eq!(res.labels, vec![0, 2, 0], "{name}");
        assert_eq!(res.iterations, 2, "{name}");
    }
}

#[test]
fn max_iter_reached_is_reported() {
    let data = sample(Dist::Uniform, 1000, 9);
    for (name, f) in BOTH {
        let params = KMeans1dParams {
            k: 16,
            max_iter: 1,
            tol: 0.0,
        };
        let res = f(&data, &params).unwrap();
        assert_eq!(res.iterations, 1, "{name}");
        assert!(!res.converged, "{name}");
    }
}

#[test]
fn extreme_and_signed_zero_values() {
    let cases: [&[f32]; 5] = [
        &[f32::MAX, f32::MIN, 0.0, 1e-30, -1e-30],
        &[f32::MAX, f32::MAX, f32::MAX],
        &[-0.0, 0.0, -0.0, 1.0],
        &[1e-45, -1e-45, 0.0, 3e-45],
        &[1e30, 1e30, 5e29, -1e-30, 1e-30],
    ];
    for data in cases {
        for k in 1..=6 {
            let params = KMeans1dParams::with_k(k);
            let agreement = assert_equivalent(data, &params, &format!("{data:?} k={k}"));
            assert!(agreement.identical, "{data:?} k={k}");
            let res = kmeans_1d(data, &params).unwrap();
            assert!(res.centroids.iter().all(|c| c.is_finite()));
            assert!(res.inertia.is_finite());
        }
    }
}

#[test]
fn non_finite_input_rejected_with_index() {
    for (name, f) in BOTH {
        let err = f(
            &[1.0, 2.0, f32::NAN, f32::INFINITY],
            &KMeans1dParams::default(),
        )
        .unwrap_err();
        match err {
            KernelError::NonFiniteInput { index, value, .. } => {
                assert_eq!(index, 2, "{name}");
                assert!(value.is_nan(), "{name}");
            }
            other => panic!("{name}: unexpected {other:?}"),
        }
        let err = f(&[f32::NEG_INFINITY], &KMeans1dParams::default()).unwrap_err();
        assert!(
            matches!(err, KernelError::NonFiniteInput { index: 0, .. }),
            "{name}"
        );
    }
}

#[test]
fn empty_input_rejected() {
    for (name, f) in BOTH {
        let err = f(&[], &KMeans1dParams::default()).unwrap_err();
        assert!(matches!(err, KernelError::EmptyInput { .. }), "{name}");
    }
}

#[test]
fn invalid_params_rejected() {
    let data = [1.0f32, 2.0];
    for (name, f) in BOTH {
        let err = f(&data, &KMeans1dParams::with_k(0)).unwrap_err();
        match &err {
            KernelError::InvalidParameter { name: p, value, .. } => {
                assert_eq!(*p, "k", "{name}");
                assert_eq!(value, "0", "{name}");
            }
            other => panic!("{name}: unexpected {other:?}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains("`k`") && msg.contains("1 ..="),
            "{name}: {msg}"
        );

        let bad_tol = KMeans1dParams {
            tol: f64::NAN,
            ..Default::default()
        };
        assert!(matches!(
            f(&data, &bad_tol).unwrap_err(),
            KernelError::InvalidParameter { name: "tol", .. }
        ));
        // Parameters are checked before the data.
        assert!(matches!(
            f(&[], &KMeans1dParams::with_k(0)).unwrap_err(),
            KernelError::InvalidParameter { name: "k", .. }
        ));
    }
}

#[test]
fn deterministic_bit_identical() {
    let data = sample(Dist::Normal, 100_000, 11);
    let params = KMeans1dParams::with_k(16);
    let a = kmeans_1d(&data, &params).unwrap();
    let b = kmeans_1d(&data, &params).unwrap();
    let single = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(|| kmeans_1d(&data, &params).unwrap());
    for other in [&b, &single] {
        assert_eq!(a.labels, other.labels);
        assert_eq!(a.iterations, other.iterations);
        assert_eq!(a.converged, other.converged);
        assert_eq!(a.inertia.to_bits(), other.inertia.to_bits());
        let bits = |r: &KMeans1d| r.centroids.iter().map(|c| c.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a), bits(other));
    }
    let n1 = kmeans_1d_naive(&data, &params).unwrap();
    let n2 = kmeans_1d_naive(&data, &params).unwrap();
    assert_eq!(n1, n2);
}

#[test]
fn dequantize_matches_inertia() {
    let data = sample(Dist::HeavyTailed, 5000, 12);
    let res = kmeans_1d(&data, &KMeans1dParams::with_k(16)).unwrap();
    let rec = res.dequantize();
    let sse: f64 = data
        .iter()
        .zip(&rec)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    assert!((sse - res.inertia).abs() <= 1e-9 * res.inertia.max(1e-30));
}
