#![doc = include_str!("../README.md")]

mod error;
pub mod kmeans;
pub mod nsga2;

pub use error::KernelError;
pub use kmeans::{kmeans_1d, kmeans_1d_naive, KMeans1d, KMeans1dParams};
pub use nsga2::{
    crowding_distance, dominates, hypervolume_2d, non_dominated_sort, nsga2, GenerationInfo,
    Individual, Nsga2Error, Nsga2Params, Nsga2Result,
};
