#![doc = include_str!("../README.md")]

pub mod ab;
pub mod energy;
pub mod env;
pub mod memory;
pub mod paired;
mod rng;
pub mod stats;
pub mod timing;

pub use energy::{
    measure_energy, probe, probe_with, DomainEnergy, DomainInfo, DomainKind, EnergyBackend,
    EnergyConfig, EnergyCounter, EnergyError, EnergyMeasureError, EnergyMeasurement, EnergyReading,
    EnergySource, RaplCounter, Sampler,
};
pub use env::Manifest;
pub use memory::{current_rss_bytes, peak_rss_bytes, reset_peak};
pub use paired::{mcnemar_exact_p, mean_ci, Paired, Verdict};
pub use stats::Stats;
pub use timing::{measure, throughput, Timing, TimingConfig, Validity};
