#![doc = include_str!("../README.md")]

pub mod claim;
pub mod experiment;
pub mod export;
pub mod layers;
pub mod load_cost;
pub mod lock;
pub mod manifest;
pub mod progress;
pub mod registry;
pub mod results;
pub mod run;
pub mod search_log;
pub mod slurm;
pub mod timed;
mod toml_shape;

pub use experiment::{Cell, Experiment, ExperimentError};
pub use run::{run, RunOptions, RunSummary};
