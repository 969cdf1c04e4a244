//! A deterministic in-memory [`EnergyCounter`] for tests of code that
//! measures energy (no sysfs needed).

use super::{DomainInfo, EnergyCounter, EnergyError};

#[derive(Debug, Clone)]
enum Mode {
    /// Return these readings in order, then repeat the last one.
    Scripted(Vec<Vec<u64>>),
    /// Read `k` returns `(start + k * step) mod (max + 1)` per domain.
    Stepping { start: Vec<u64>, step: Vec<u64> },
}

/// A fake energy counter with deterministic, scripted readings.
#[derive(Debug, Clone)]
pub struct FakeCounter {
    domains: Vec<DomainInfo>,
    mode: Mode,
    reads: usize,
}

impl FakeCounter {
    /// Returns `readings[0]`, `readings[1]`, … on successive reads, then
    /// repeats the last one (a frozen counter). Each reading must have one
    /// value per domain (otherwise reads fail with
    /// [`EnergyError::DomainCount`]).
    pub fn scripted(domains: Vec<DomainInfo>, readings: Vec<Vec<u64>>) -> Self {
        Self {
            domains,
            mode: Mode::Scripted(readings),
            reads: 0,
        }
    }

    /// Read `k` (from 0) returns `(start[i] + k * step[i]) mod
    /// (max_energy_range_uj[i] + 1)` for each domain `i`: a counter that
    /// advances by `step` microjoules per read and wraps like RAPL.
    pub fn stepping(domains: Vec<DomainInfo>, start: Vec<u64>, step: Vec<u64>) -> Self {
        Self {
            domains,
            mode: Mode::Stepping { start, step },
            reads: 0,
        }
    }

    /// Number of reads so far.
    pub fn reads(&self) -> usize {
        self.reads
    }
}

impl EnergyCounter for FakeCounter {
    fn domains(&self) -> Vec<DomainInfo> {
        self.domains.clone()
    }

    fn read_uj(&mut self) -> Result<Vec<u64>, EnergyError> {
        let k = self.reads;
        self.reads += 1;
        let v = match &self.mode {
            Mode::Scripted(r) => match r.get(k).or_else(|| r.last()) {
                Some(v) => v.clone(),
                None => Vec::new(),
            },
            Mode::Stepping { start, step } => self
                .domains
                .iter()
                .zip(start.iter().zip(step))
                .map(|(d, (&s, &st))| {
                    let m = u128::from(d.max_energy_range_uj) + 1;
                    ((u128::from(s) + k as u128 * u128::from(st)) % m) as u64
                })
                .collect(),
        };
        if v.len() != self.domains.len() {
            return Err(EnergyError::DomainCount {
                expected: self.domains.len(),
                got: v.len(),
            });
        }
        Ok(v)
    }
}
