//! Encode/decode throughput of the BF16 field codec on ResNet20-sized weights.
//!
//! Run with `cargo bench -p bf16-approx --bench codec` (add `-- --quick` for a short
//! run). Throughput is reported in weights (elements) per second.
//!
//! - `split` / `join_f32`: bfloat16 patterns ↔ sign / exponent-index / mantissa fields
//!   (in memory), the latter straight to f32 values;
//! - `write` / `read_decode`: the whole path through the container — fields bit-packed
//!   into bytes with the SHA-256 trailer, and bytes parsed, checked and decoded to f32;
//! - `project_final`: the method's retraining-free projection (bfloat16 rounding,
//!   mantissa approximation, snapping of removed exponents).

use std::hint::black_box;
use std::time::Duration;

use bf16_approx::{plan, project, round_weight, Rounding, Stage, ZeroMode};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wb_core::bf16fields::{self, bf16_bits_to_f32, exponent_field};
use wb_core::{container, Artifact, EncodedTensor, Encoding};

/// Number of weights of ResNet20 (CIFAR-10), rounded.
const N: usize = 270_000;

/// `n` roughly normal values with standard deviation 0.05 (sum of four uniforms), a
/// typical conv-weight spread; SplitMix64, so no extra dependency.
fn weights(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    let mut u = move || {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 24) as f32
    };
    (0..n)
        .map(|_| ((u() + u() + u() + u()) - 2.0) * 0.05 * 1.7)
        .collect()
}

fn bench_codec(c: &mut Criterion) {
    let w = weights(N, 20);
    let mut group = c.benchmark_group("bf16_fields_270k");
    group.throughput(Throughput::Elements(N as u64));
    group.sample_size(20);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
    for m in [7u8, 3] {
        let bits: Vec<u16> = w
            .iter()
            .map(|v| round_weight(*v, m, Rounding::NearestEven).expect("finite"))
            .collect();
        let mut seen = [false; 256];
        for b in &bits {
            seen[exponent_field(*b) as usize] = true;
        }
        let table: Vec<u8> = (0..=255u8).rev().filter(|e| seen[*e as usize]).collect();
        let fields = bf16fields::split(&bits, &table, m).expect("lossless");
        group.bench_with_input(BenchmarkId::new("split", m), &bits, |b, bits| {
            b.iter(|| bf16fields::split(black_box(bits), &table, m).expect("lossless"));
        });
        group.bench_with_input(BenchmarkId::new("join_f32", m), &fields, |b, f| {
            b.iter(|| {
                bf16fields::join(&table, m, black_box(f))
                    .into_iter()
                    .map(bf16_bits_to_f32)
                    .collect::<Vec<f32>>()
            });
        });
        let artifact = |bits: &[u16]| Artifact {
            tensors: vec![EncodedTensor {
                name: "w".into(),
                shape: vec![N],
                compressible: true,
                encoding: Encoding::bf16_fields_local(bits, table.clone(), m).expect("lossless"),
            }],
            ..Default::default()
        };
        group.bench_with_input(BenchmarkId::new("write", m), &bits, |b, bits| {
            b.iter(|| container::write(&artifact(black_box(bits))).expect("valid"));
        });
        let bytes = container::write(&artifact(&bits)).expect("valid");
        group.bench_with_input(BenchmarkId::new("read_decode", m), &bytes, |b, bytes| {
            b.iter(|| {
                container::read(black_box(bytes))
                    .expect("valid")
                    .decode()
                    .expect("valid")
            });
        });
    }
    // Projection with one removed index bit (zero in the table budget).
    let mut seen = [false; 256];
    for v in &w {
        seen[exponent_field(round_weight(*v, 7, Rounding::NearestEven).expect("finite"))
            as usize] = true;
    }
    let p = plan(&seen, 1, ZeroMode::InBudget, 7, Rounding::NearestEven).expect("r < b");
    group.bench_with_input(BenchmarkId::new("project_final", "r1"), &w, |b, w| {
        b.iter(|| {
            let mut d = w.clone();
            project(black_box(&mut d), &p.set, Stage::Final).expect("finite");
            d
        });
    });
    group.finish();
}

criterion_group!(benches, bench_codec);
criterion_main!(benches);
