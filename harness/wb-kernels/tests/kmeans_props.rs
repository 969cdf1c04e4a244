//! Property tests of the 1-D k-means.

mod common;

use common::{assert_labels_nearest, check_equivalent, init_inertia, range};
use proptest::prelude::*;
use wb_kernels::{kmeans_1d, kmeans_1d_naive, KMeans1dParams};

/// Data mixing continuous values, a few repeated levels and exact zeros.
fn data_strategy() -> impl Strategy<Value = Vec<f32>> {
    let value = prop_oneof![
        4 => -10.0f32..10.0,
        2 => prop::sample::select(vec![-1.5f32, -0.25, 0.0, 0.125, 0.5, 3.0]),
        1 => -1e-3f32..1e-3,
        1 => 900.0f32..1100.0,
    ];
    prop_oneof![
        3 => prop::collection::vec(value.clone(), 1..64),
        1 => prop::collection::vec(value, 64..3000),
    ]
}

fn params_strategy() -> impl Strategy<Value = KMeans1dParams> {
    (
        1usize..48,
        1usize..60,
        prop::sample::select(vec![0.0, 1e-6, 1e-4, 1e-2]),
    )
        .prop_map(|(k, max_iter, tol)| KMeans1dParams { k, max_iter, tol })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        // Integration tests have no lib.rs next to them to store regressions.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Every label points to a nearest final centroid.
    #[test]
    fn labels_are_nearest(data in data_strategy(), params in params_strategy()) {
        let res = kmeans_1d(&data, &params).unwrap();
        assert_labels_nearest(&data, &res, "fast");
        let res = kmeans_1d_naive(&data, &params).unwrap();
        assert_labels_nearest(&data, &res, "naive");
    }

    /// Lloyd never does worse than its linspace initialisation.
    #[test]
    fn inertia_not_above_init(data in data_strategy(), params in params_strategy()) {
        let res = kmeans_1d(&data, &params).unwrap();
        let init = init_inertia(&data, params.k);
        let r = range(&data);
        let slack = 1e-9 * init + 1e-12 * r * r * data.len() as f64;
        prop_assert!(
            res.inertia <= init + slack,
            "inertia {} > init {}", res.inertia, init
        );
    }

    /// Fast and naive agree (same tolerances as the seeded sweep).
    #[test]
    fn fast_equals_naive(data in data_strategy(), params in params_strategy()) {
        let fast = kmeans_1d(&data, &params).unwrap();
        let naive = kmeans_1d_naive(&data, &params).unwrap();
        check_equivalent(&data, &fast, &naive, &format!("{params:?}"));
    }

    /// Output shape and basic invariants.
    #[test]
    fn result_invariants(data in data_strategy(), params in params_strategy()) {
        let res = kmeans_1d(&data, &params).unwrap();
        prop_assert_eq!(res.centroids.len(), params.k);
        prop_assert_eq!(res.labels.len(), data.len());
        prop_assert!(res.iterations >= 1 && res.iterations <= params.max_iter);
        prop_assert!(res.converged || res.iterations == params.max_iter);
        let lo = data.iter().copied().fold(0.0f32, f32::min);
        let hi = data.iter().copied().fold(0.0f32, f32::max);
        for &c in &res.centroids {
            // Means of values stay within [min, max]; empty clusters sit at 0.
            prop_assert!(c >= lo && c <= hi, "centroid {} outside [{}, {}]", c, lo, hi);
        }
        prop_assert!(res.labels.iter().all(|&l| (l as usize) < params.k));
        prop_assert!(res.inertia >= 0.0 && res.inertia.is_finite());
    }
}
