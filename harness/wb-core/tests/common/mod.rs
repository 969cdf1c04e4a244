//! Synthetic artifacts of every encoding kind and container version, shared by the
//! container tests (included by path).

// Each test file compiles this module on its own and uses only some of it.
#![allow(dead_code)]

use wb_core::rng::splitmix64;
use wb_core::{Artifact, EncodedTensor, Encoding, HuffmanScope, Pq, PqCodewords, Ref, ValueTable};

pub fn tensor(name: &str, shape: Vec<usize>, encoding: Encoding) -> EncodedTensor {
    EncodedTensor {
        name: name.into(),
        shape,
        compressible: true,
        encoding,
    }
}

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| (splitmix64(&mut s) % 2001) as f32 / 1000.0 - 1.0)
        .collect()
}

fn indices(n: usize, k: u64, seed: u64) -> Vec<u32> {
    let mut s = seed;
    // Skewed, so that Huffman codes have several lengths.
    (0..n)
        .map(|_| (splitmix64(&mut s) % k).min(splitmix64(&mut s) % k) as u32)
        .collect()
}

/// Synthetic artifacts of every kind and every container version.
pub fn synthetic() -> Vec<Artifact> {
    let v = values(24, 1);
    let bf16: Vec<u16> = match Encoding::bf16_from_f32(&v) {
        Encoding::Bf16(b) => b,
        _ => unreachable!(),
    };
    // Exponents of `v` and a table holding them all, for the exponent-table kinds.
    let mut exps: Vec<u8> = bf16
        .iter()
        .map(|b| wb_core::bf16fields::exponent_field(*b))
        .collect();
    exps.sort_unstable();
    exps.dedup();
    let local = Artifact {
        tensors: vec![
            tensor("f32", vec![2, 3], Encoding::F32(values(6, 2))),
            tensor("bf16", vec![24], Encoding::bf16_from_f32(&v)),
            tensor("f16", vec![4, 6], Encoding::f16_from_f32(&v)),
            tensor(
                "int8",
                vec![2, 3],
                Encoding::Int8PerChannel {
                    scales: vec![0.5, 0.25],
                    q: vec![1, -2, 3, -128, 127, 0],
                },
            ),
            tensor(
                "codebook",
                vec![3, 8],
                Encoding::codebook_local(values(5, 3), indices(24, 5, 4)),
            ),
            tensor(
                "one-entry",
                vec![7],
                Encoding::codebook_local(vec![0.25], vec![0; 7]),
            ),
            tensor(
                "huffman",
                vec![40],
                Encoding::huffman_local(values(6, 5), indices(40, 6, 6)).unwrap(),
            ),
            tensor(
                "fields",
                vec![24],
                Encoding::bf16_fields_local(&bf16, exps.clone(), 7).unwrap(),
            ),
            tensor("table", vec![24], Encoding::bf16_table(&bf16)),
            tensor(
                "f16-table",
                vec![24],
                Encoding::indexed_fixed(
                    ValueTable::F16(vec![0x3C00, 0x4000, 0xBC00]),
                    3,
                    indices(24, 3, 7),
                ),
            ),
            // 27 values at dim 4: six full sub-vectors and a partial one of 3.
            tensor(
                "pq",
                vec![3, 9],
                Encoding::ProductQuantized(Pq::fixed(
                    4,
                    PqCodewords::F32(values(5 * 4, 10)),
                    indices(7, 5, 11),
                    27,
                )),
            ),
            tensor(
                "pq-f16",
                vec![2, 2, 3, 3],
                Encoding::ProductQuantized(Pq::fixed(
                    9,
                    PqCodewords::F16(vec![0x3C00; 2 * 9]),
                    indices(4, 2, 12),
                    36,
                )),
            ),
        ],
        ..Default::default()
    };
    let shared = Artifact {
        shared_codebooks: vec![values(4, 8)],
        shared_exp_tables: vec![exps.clone()],
        tensors: vec![
            tensor(
                "shared-codebook",
                vec![16],
                Encoding::indexed_fixed(ValueTable::F32(Ref::Shared(0)), 4, indices(16, 4, 9)),
            ),
            tensor(
                "shared-fields",
                vec![24],
                Encoding::bf16_fields_shared(&bf16, 0, &exps, 7).unwrap(),
            ),
        ],
        ..Default::default()
    };
    let model_codes = local.huffman_coded(HuffmanScope::Model).unwrap();
    vec![local, shared, model_codes]
}
