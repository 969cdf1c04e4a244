#![doc = include_str!("../README.md")]

pub mod binning;
mod error;
pub mod huffman;
pub mod kmeans;
pub mod nsga2;
pub mod pq;

pub use binning::{uniform_bins, uniform_bins_naive, UniformBins};
pub use error::KernelError;
pub use huffman::{code_lengths, CanonicalCode};
pub use kmeans::{kmeans_1d, kmeans_1d_naive, KMeans1d, KMeans1dParams};
pub use nsga2::{
    crowding_distance, dominates, hypervolume_2d, non_dominated_sort, nsga2, nsga2_seeded,
    nsga2_with_initial, GenerationInfo, Individual, Nsga2Error, Nsga2Params, Nsga2Result,
};
pub use pq::{pq_kmeans, PqParams, PqResult};
