#![doc = include_str!("../README.md")]

mod cast;
mod int8;
mod kmeans;
mod random;

pub use cast::{Bf16Cast, Fp16Cast, Fp32};
pub use int8::{int8_per_channel, Int8Affine};
pub use kmeans::{KMeansUniform, KMEANS_DEFAULT_K, KMEANS_DEFAULT_MAX_ITER, KMEANS_DEFAULT_TOL};
pub use random::RandomSharing;

use wb_core::MethodInfo;

/// Registry entry of `fp32`: every tensor stored as FP32 (the reference).
pub const FP32: MethodInfo = MethodInfo {
    id: "fp32",
    summary: "reference: every tensor stored as FP32",
    params: &[],
    build: cast::build_fp32,
    view: None,
};

/// Registry entry of `bf16-cast`: compressible tensors as bfloat16 (round to nearest even).
pub const BF16_CAST: MethodInfo = MethodInfo {
    id: "bf16-cast",
    summary: "compressible tensors cast to bfloat16 (round to nearest even)",
    params: &[],
    build: cast::build_bf16,
    view: None,
};

/// Registry entry of `fp16-cast`: compressible tensors as IEEE half (round to nearest
/// even; a weight beyond the half range is an error).
pub const FP16_CAST: MethodInfo = MethodInfo {
    id: "fp16-cast",
    summary: "compressible tensors cast to IEEE half (round to nearest even)",
    params: &[],
    build: cast::build_f16,
    view: None,
};

/// Registry entry of `int8-affine`: symmetric int8 with one FP32 scale per output channel.
pub const INT8_AFFINE: MethodInfo = MethodInfo {
    id: "int8-affine",
    summary: "symmetric per-output-channel int8 (scale = max|w|/127, round half to even)",
    params: &[],
    build: int8::build,
    view: None,
};

/// Registry entry of `kmeans-uniform`: 1-D k-means weight sharing with the same `k` in
/// every compressible layer (params `k`, `max_iter`, `tol`).
pub const KMEANS_UNIFORM: MethodInfo = MethodInfo {
    id: "kmeans-uniform",
    summary: "per-layer 1-D k-means weight sharing, same k in every compressible layer",
    params: KMeansUniform::SPECS,
    build: kmeans::build,
    view: None,
};

/// Registry entry of `random-sharing`: each weight in one of `k` random groups, replaced
/// by the group's mean — the floor any weight-sharing method must clear (param `k`).
pub const RANDOM_SHARING: MethodInfo = MethodInfo {
    id: "random-sharing",
    summary: "control: per layer, each weight in one of k random groups sharing the group mean",
    params: RandomSharing::SPECS,
    build: random::build,
    view: None,
};

/// Every baseline, in registry order: `fp32`, `bf16-cast`, `fp16-cast`, `int8-affine`,
/// `kmeans-uniform`, `random-sharing`.
pub static METHODS: &[MethodInfo] = &[
    FP32,
    BF16_CAST,
    FP16_CAST,
    INT8_AFFINE,
    KMEANS_UNIFORM,
    RANDOM_SHARING,
];

/// [`METHODS`] as a vector, for registries that collect methods from several crates.
pub fn methods() -> Vec<MethodInfo> {
    METHODS.to_vec()
}
