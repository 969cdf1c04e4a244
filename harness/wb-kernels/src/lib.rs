#![doc = include_str!("../README.md")]

mod error;
pub mod kmeans;

pub use error::KernelError;
pub use kmeans::{kmeans_1d, kmeans_1d_naive, KMeans1d, KMeans1dParams};
