//! Fast vs naive 1-D k-means on ResNet20-sized normally distributed weights.
//!
//! Run with `cargo bench -p wb-kernels --bench kmeans` (add `-- --quick` for a
//! short run). Throughput is reported in weights (elements) per second.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wb_kernels::{kmeans_1d, kmeans_1d_naive, KMeans1dParams};

/// Number of weights of ResNet20 (CIFAR-10), rounded.
const N: usize = 270_000;

/// `n` samples of N(0, 0.05²) (Box–Muller), a typical conv-weight spread.
fn normal_weights(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let u1: f64 = 1.0 - rng.random::<f64>();
            let u2: f64 = rng.random::<f64>();
            let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            (0.05 * z) as f32
        })
        .collect()
}

fn bench_kmeans(c: &mut Criterion) {
    let data = normal_weights(N, 20);
    let mut group = c.benchmark_group("kmeans_1d_270k");
    group.throughput(Throughput::Elements(N as u64));
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
    for k in [4usize, 16, 64, 256] {
        let params = KMeans1dParams::with_k(k);
        group.bench_with_input(BenchmarkId::new("fast", k), &params, |b, p| {
            b.iter(|| kmeans_1d(black_box(&data), p).expect("valid input"));
        });
        group.bench_with_input(BenchmarkId::new("naive", k), &params, |b, p| {
            b.iter(|| kmeans_1d_naive(black_box(&data), p).expect("valid input"));
        });
    }
    group.finish();

    // With the default absolute `tol = 1e-4`, weight-scale data converges in
    // a handful of iterations, so the runs above are dominated by the
    // one-off work (sort, final labels). `tol = 0` runs Lloyd until the
    // centroids stop moving (or 100 iterations) and shows the per-iteration
    // gap.
    let mut group = c.benchmark_group("kmeans_1d_270k_tol0");
    group.throughput(Throughput::Elements(N as u64));
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
    let params = KMeans1dParams {
        k: 16,
        max_iter: 100,
        tol: 0.0,
    };
    group.bench_with_input(BenchmarkId::new("fast", 16), &params, |b, p| {
        b.iter(|| kmeans_1d(black_box(&data), p).expect("valid input"));
    });
    group.bench_with_input(BenchmarkId::new("naive", 16), &params, |b, p| {
        b.iter(|| kmeans_1d_naive(black_box(&data), p).expect("valid input"));
    });
    group.finish();
}

criterion_group!(benches, bench_kmeans);
criterion_main!(benches);
