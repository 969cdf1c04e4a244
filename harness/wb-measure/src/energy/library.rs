//! A second energy backend: the `rapl-energy` crate, adapted to [`EnergyCounter`].
//!
//! The crate is GPL-3.0, so it is linked only with the `rapl-energy` cargo feature (off
//! by default; the crate README says what turning it on means for a binary's licence).
//! The adapter itself is always built and tested: it only needs a [`ZoneSource`] — a
//! library's zones and their raw counter values — so the fake in the tests exercises
//! exactly the code the crate runs through. Everything downstream (the background
//! [`super::Sampler`], wrap accounting, idle subtraction, validity, the NULL-with-reason
//! rule) is the same as for the sysfs reader.

use super::{DomainInfo, DomainKind, EnergyCounter, EnergyError};

/// One zone as a RAPL library lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibraryZone {
    /// The top-level zone's name, e.g. `package-0` or `psys`.
    pub package: String,
    /// The subzone's own name (`core`, `uncore`, `dram`), `None` for the zone itself.
    pub subzone: Option<String>,
    /// The counter's largest value (`max_energy_range_uj`).
    pub max_energy_range_uj: u64,
}

/// What the adapter needs from a RAPL library.
pub trait ZoneSource {
    /// The zones, in the order of [`ZoneSource::read_raw_uj`]'s values.
    fn zones(&self) -> Vec<LibraryZone>;
    /// The current raw (wrapping) counter values in microjoules, or why not.
    fn read_raw_uj(&mut self) -> Result<Vec<u64>, String>;
    /// The library's name, for provenance (`energy_source`).
    fn name(&self) -> &'static str;
}

/// An [`EnergyCounter`] over a [`ZoneSource`], with the sysfs reader's domain names
/// (`package-0`, `package-0/dram`, `psys`) and kinds, so that results from both
/// backends compare column for column.
#[derive(Debug)]
pub struct LibraryCounter<S> {
    source: S,
    domains: Vec<DomainInfo>,
}

impl<S: ZoneSource> LibraryCounter<S> {
    /// Wraps `source`, refusing a source without zones or with a zero range (no wrap
    /// detection is possible then), and reading it once to prove it is readable.
    pub fn new(mut source: S) -> Result<Self, EnergyError> {
        let domains: Vec<DomainInfo> = source
            .zones()
            .into_iter()
            .map(|z| {
                let (name, kind) = match &z.subzone {
                    None => (z.package.clone(), DomainKind::from_zone_name(&z.package)),
                    Some(s) => (format!("{}/{s}", z.package), DomainKind::from_zone_name(s)),
                };
                DomainInfo::new(name, kind, z.max_energy_range_uj)
            })
            .collect();
        if domains.is_empty() {
            return Err(EnergyError::Library(format!(
                "{}: no RAPL zones found",
                source.name()
            )));
        }
        if let Some(d) = domains.iter().find(|d| d.max_energy_range_uj == 0) {
            return Err(EnergyError::ZeroRange {
                domain: d.name.clone(),
            });
        }
        let first = source
            .read_raw_uj()
            .map_err(|e| EnergyError::Library(format!("{}: {e}", source.name())))?;
        if first.len() != domains.len() {
            return Err(EnergyError::DomainCount {
                expected: domains.len(),
                got: first.len(),
            });
        }
        Ok(Self { source, domains })
    }

    /// The library's name.
    pub fn library(&self) -> &'static str {
        self.source.name()
    }

    /// The wrapped source (tests make it fail).
    #[cfg(test)]
    pub(crate) fn source_mut(&mut self) -> &mut S {
        &mut self.source
    }
}

impl<S: ZoneSource> EnergyCounter for LibraryCounter<S> {
    fn domains(&self) -> Vec<DomainInfo> {
        self.domains.clone()
    }

    fn read_uj(&mut self) -> Result<Vec<u64>, EnergyError> {
        let name = self.source.name();
        let v = self
            .source
            .read_raw_uj()
            .map_err(|e| EnergyError::Library(format!("{name}: {e}")))?;
        if v.len() != self.domains.len() {
            return Err(EnergyError::DomainCount {
                expected: self.domains.len(),
                got: v.len(),
            });
        }
        Ok(v)
    }
}

/// The `rapl-energy` crate as a [`ZoneSource`] (feature `rapl-energy`).
#[cfg(feature = "rapl-energy")]
pub mod crate_source {
    use super::{LibraryZone, ZoneSource};
    use std::panic::{catch_unwind, AssertUnwindSafe};

    /// The machine's `intel-rapl:N` packages and their subzones, read through the
    /// crate. Its `intel-rapl-mmio:*` packages are not opened: on Intel client parts
    /// they repeat the package energy, as the sysfs reader notes.
    #[derive(Debug)]
    pub struct RaplEnergyCrate {
        packages: Vec<rapl_energy::Package>,
    }

    impl RaplEnergyCrate {
        /// Opens every package the crate finds. The crate panics on unreadable or
        /// malformed files; such a panic becomes an error here.
        pub fn open() -> Result<Self, String> {
            let opened = catch_unwind(|| {
                (0..u8::MAX)
                    .map_while(|id| rapl_energy::Package::new(id, true))
                    .collect::<Vec<_>>()
            });
            match opened {
                Ok(packages) if packages.is_empty() => Err(
                    "no readable intel-rapl:N zone (missing powercap, or energy_uj readable \
                     by root only since CVE-2020-8694)"
                        .into(),
                ),
                Ok(packages) => Ok(Self { packages }),
                Err(_) => Err("the rapl-energy crate failed while opening the zones".into()),
            }
        }
    }

    impl ZoneSource for RaplEnergyCrate {
        fn zones(&self) -> Vec<LibraryZone> {
            let mut z = Vec::new();
            for p in &self.packages {
                z.push(LibraryZone {
                    package: p.name.clone(),
                    subzone: None,
                    max_energy_range_uj: p.max_energy_range_uj,
                });
                for s in p.iter_subzones() {
                    // The crate names a subzone "<package>-<subzone>".
                    let own = s
                        .name
                        .strip_prefix(&format!("{}-", p.name))
                        .unwrap_or(&s.name)
                        .to_string();
                    z.push(LibraryZone {
                        package: p.name.clone(),
                        subzone: Some(own),
                        max_energy_range_uj: s.max_energy_range_uj,
                    });
                }
            }
            z
        }

        fn read_raw_uj(&mut self) -> Result<Vec<u64>, String> {
            // `reset` re-reads every counter into the public fields: the raw values.
            catch_unwind(AssertUnwindSafe(|| {
                let mut v = Vec::new();
                for p in self.packages.iter_mut() {
                    p.reset();
                    v.push(p.package_energy_uj);
                    v.extend(p.iter_subzones().map(|s| s.energy_uj));
                }
                v
            }))
            .map_err(|_| "the rapl-energy crate failed to read a counter".to_string())
        }

        fn name(&self) -> &'static str {
            "rapl-energy"
        }
    }
}
