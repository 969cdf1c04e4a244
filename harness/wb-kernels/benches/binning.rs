//! Uniform binning (O(N)) against the O(N k) reference, and Huffman encode/decode of the
//! resulting indices, on ResNet20-sized normally distributed weights.
//!
//! Run with `cargo bench -p wb-kernels --bench binning` (add `-- --quick` for a short
//! run). Throughput is reported in weights (elements) per second.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wb_kernels::{uniform_bins, uniform_bins_naive, CanonicalCode};

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

fn bench_binning(c: &mut Criterion) {
    let data = normal_weights(N, 20);
    let mut group = c.benchmark_group("uniform_bins_270k");
    group.throughput(Throughput::Elements(N as u64));
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
    for k in [16usize, 256, 1024] {
        group.bench_with_input(BenchmarkId::new("fast", k), &k, |b, &k| {
            b.iter(|| uniform_bins(black_box(&data), k).expect("valid input"));
        });
    }
    // The reference scans every edge per value: only the small k.
    group.bench_with_input(BenchmarkId::new("naive", 16), &16usize, |b, &k| {
        b.iter(|| uniform_bins_naive(black_box(&data), k).expect("valid input"));
    });
    group.finish();

    let mut group = c.benchmark_group("huffman_270k");
    group.throughput(Throughput::Elements(N as u64));
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
    let bins = uniform_bins(&data, 256).expect("valid input");
    let code = CanonicalCode::from_frequencies(&bins.counts).expect("valid code");
    let (bytes, bits) = code.encode(&bins.labels).expect("every label has a code");
    group.bench_function("encode_k256", |b| {
        b.iter(|| code.encode(black_box(&bins.labels)).expect("valid"));
    });
    group.bench_function("decode_k256", |b| {
        b.iter(|| code.decode(black_box(&bytes), bits, N).expect("valid"));
    });
    group.finish();
}

criterion_group!(benches, bench_binning);
criterion_main!(benches);
