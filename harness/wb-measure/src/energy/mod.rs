//! Energy from cumulative RAPL counters, with provenance.
//!
//! * [`probe`] opens the machine's counters or says why it cannot
//!   ([`EnergySource::Unavailable`] with a reason starting `"unavailable:"`);
//!   there is no estimate and no fallback.
//! * [`Accumulator`] turns raw readings into per-domain `u64` microjoules with
//!   wrap-around handling and a wrap count per domain.
//! * [`Sampler`] reads the counters on a background thread often enough that
//!   no wrap can be missed.
//! * [`measure_energy`] measures idle power, then a workload window, and
//!   reports gross, idle and net energy per domain and per image.
//!
//! Domains are never summed across levels: package energy is the sum of the
//! `Package` domains only, DRAM energy the sum of the `Dram` domains only;
//! `Core` and `Uncore` (parts of a package) and `Psys` (the whole SoC) are
//! reported per domain and never added into either total.

mod error;
mod fake;
mod library;
mod rapl;
mod sampler;

use serde::{Deserialize, Serialize};

pub use error::{EnergyError, EnergyMeasureError};
pub use fake::FakeCounter;
#[cfg(feature = "rapl-energy")]
pub use library::crate_source::RaplEnergyCrate;
pub use library::{LibraryCounter, LibraryZone, ZoneSource};
pub use rapl::{RaplCounter, DEFAULT_POWERCAP_ROOT};
pub use sampler::{
    measure_energy, min_wrap_period_s, safe_period, EnergyConfig, EnergyReading, Sampler,
    ASSUMED_MAX_POWER_W, MAX_SAMPLE_PERIOD,
};

use crate::timing::Validity;

/// Level of a RAPL domain in the power hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DomainKind {
    /// A CPU package (socket or die): `package-N`.
    Package,
    /// DRAM attached to a package (not included in the package domain).
    Dram,
    /// The cores of a package (included in the package domain).
    Core,
    /// The uncore / integrated GPU of a package (included in the package).
    Uncore,
    /// The whole platform / SoC (includes the packages).
    Psys,
    /// Anything else.
    Other,
}

impl DomainKind {
    /// Classify a powercap zone by its `name` file: `package-*` → Package,
    /// `dram` → Dram, `core` → Core, `uncore` → Uncore, `psys` → Psys.
    pub fn from_zone_name(name: &str) -> DomainKind {
        let n = name.trim().to_ascii_lowercase();
        if n.starts_with("package") {
            DomainKind::Package
        } else if n == "dram" {
            DomainKind::Dram
        } else if n == "core" {
            DomainKind::Core
        } else if n == "uncore" {
            DomainKind::Uncore
        } else if n == "psys" {
            DomainKind::Psys
        } else {
            DomainKind::Other
        }
    }
}

/// Static description of one energy domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainInfo {
    /// Name, e.g. `package-0` or `package-0/dram`.
    pub name: String,
    /// Level in the hierarchy.
    pub kind: DomainKind,
    /// The counter's largest value in microjoules (`max_energy_range_uj`):
    /// readings lie in `0..=max_energy_range_uj`.
    pub max_energy_range_uj: u64,
}

impl DomainInfo {
    /// Convenience constructor.
    pub fn new(name: impl Into<String>, kind: DomainKind, max_energy_range_uj: u64) -> Self {
        Self {
            name: name.into(),
            kind,
            max_energy_range_uj,
        }
    }
}

/// A set of cumulative energy counters, one per domain.
pub trait EnergyCounter {
    /// The domains, in the order of [`EnergyCounter::read_uj`]'s values.
    fn domains(&self) -> Vec<DomainInfo>;
    /// Current raw counter values in microjoules, one per domain. Values
    /// wrap to 0 after `max_energy_range_uj`.
    fn read_uj(&mut self) -> Result<Vec<u64>, EnergyError>;
}

impl<T: EnergyCounter + ?Sized> EnergyCounter for Box<T> {
    fn domains(&self) -> Vec<DomainInfo> {
        (**self).domains()
    }
    fn read_uj(&mut self) -> Result<Vec<u64>, EnergyError> {
        (**self).read_uj()
    }
}

/// Turns successive raw counter readings into accumulated microjoules.
///
/// Wrap-around rule: a counter's values lie in `0..=max` with
/// `max = max_energy_range_uj`. Between two readings `last` and `current`:
///
/// * `current >= last`: the energy is `current - last` (no wrap);
/// * `current < last`: the counter wrapped exactly once, and the energy is
///   `(max - last) + 1 + current`: the rest of the range up to `max`, one
///   step from `max` to 0, then `current`. The wrap count is incremented.
///
/// The hardware counter really wraps at `max + 1 energy unit` (the kernel
/// reports `0xFFFF_FFFF × unit` as the range), so each wrap is accounted
/// with an error below one energy unit (about 15–61 µJ), negligible against
/// the hundreds of kilojoules of a typical wrap period.
///
/// More than one wrap between two readings is undetectable by construction;
/// [`Sampler`] reads often enough (see [`safe_period`]) that it cannot
/// happen at any plausible power.
#[derive(Debug, Clone)]
pub struct Accumulator {
    names: Vec<String>,
    max_uj: Vec<u64>,
    last: Vec<u64>,
    total_uj: Vec<u64>,
    wraps: Vec<u64>,
    reads: u64,
}

impl Accumulator {
    /// Start accumulating from the first reading `first` of `domains`.
    pub fn new(domains: &[DomainInfo], first: &[u64]) -> Result<Self, EnergyError> {
        if first.len() != domains.len() {
            return Err(EnergyError::DomainCount {
                expected: domains.len(),
                got: first.len(),
            });
        }
        for (d, &v) in domains.iter().zip(first) {
            if d.max_energy_range_uj == 0 {
                return Err(EnergyError::ZeroRange {
                    domain: d.name.clone(),
                });
            }
            if v > d.max_energy_range_uj {
                return Err(EnergyError::OutOfRange {
                    domain: d.name.clone(),
                    value: v,
                    max: d.max_energy_range_uj,
                });
            }
        }
        Ok(Self {
            names: domains.iter().map(|d| d.name.clone()).collect(),
            max_uj: domains.iter().map(|d| d.max_energy_range_uj).collect(),
            last: first.to_vec(),
            total_uj: vec![0; domains.len()],
            wraps: vec![0; domains.len()],
            reads: 1,
        })
    }

    /// Account one more reading.
    pub fn update(&mut self, reading: &[u64]) -> Result<(), EnergyError> {
        if reading.len() != self.last.len() {
            return Err(EnergyError::DomainCount {
                expected: self.last.len(),
                got: reading.len(),
            });
        }
        for (i, &cur) in reading.iter().enumerate() {
            let max = self.max_uj[i];
            if cur > max {
                return Err(EnergyError::OutOfRange {
                    domain: self.names[i].clone(),
                    value: cur,
                    max,
                });
            }
            let last = self.last[i];
            let delta = if cur >= last {
                cur - last
            } else {
                self.wraps[i] += 1;
                (max - last) + 1 + cur
            };
            self.total_uj[i] = self.total_uj[i].saturating_add(delta);
            self.last[i] = cur;
        }
        self.reads += 1;
        Ok(())
    }

    /// Accumulated microjoules per domain since the first reading.
    pub fn total_uj(&self) -> &[u64] {
        &self.total_uj
    }

    /// Number of wraps seen per domain.
    pub fn wraps(&self) -> &[u64] {
        &self.wraps
    }

    /// Number of readings accounted, the first included.
    pub fn reads(&self) -> u64 {
        self.reads
    }
}

/// Energy of one domain over a measurement window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainEnergy {
    /// Domain name.
    pub name: String,
    /// Domain level.
    pub kind: DomainKind,
    /// Energy counted in the window (joules).
    pub gross_j: f64,
    /// Idle power measured before the window (watts).
    pub idle_w: f64,
    /// `gross_j - idle_w * window_s`, clamped at 0 (then `clamped`).
    pub net_j: f64,
    /// Whether `net_j` was clamped at zero.
    pub clamped: bool,
    /// Counter wraps seen during the window.
    pub wraps: u64,
}

/// Result of [`measure_energy`] (or [`EnergyMeasurement::from_readings`]).
///
/// Totals: package = Σ `Package` domains, DRAM = Σ `Dram` domains; the
/// aggregate net values are `Σ gross − (Σ idle_w) · window_s`, clamped at 0
/// as a whole (not a sum of clamped per-domain values).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnergyMeasurement {
    /// Every domain separately.
    pub domains: Vec<DomainEnergy>,
    /// Window length in seconds, between the first and the last counter
    /// reading of the window.
    pub window_s: f64,
    /// Length of the idle measurement in seconds.
    pub idle_s: f64,
    /// Images processed in the window.
    pub images: usize,
    /// Package energy in the window (joules).
    pub package_gross_j: f64,
    /// Package idle power (watts).
    pub package_idle_w: f64,
    /// Package net energy (joules), clamped at 0.
    pub package_net_j: f64,
    /// `package_gross_j / images`.
    pub package_j_per_img_gross: f64,
    /// `package_net_j / images`.
    pub package_j_per_img_net: f64,
    /// DRAM energy in the window, if the machine exposes DRAM domains.
    pub dram_gross_j: Option<f64>,
    /// DRAM net energy, clamped at 0, if there are DRAM domains.
    pub dram_net_j: Option<f64>,
    /// `dram_net_j / images`, if there are DRAM domains.
    pub dram_j_per_img_net: Option<f64>,
    /// Whether any net value (a domain's or an aggregate) was clamped at 0.
    pub clamped: bool,
    /// Total counter wraps in the window over all domains.
    pub wraps: u64,
    /// Largest gap between two counter readings (seconds), idle and window.
    pub max_gap_s: f64,
    /// Whether a gap between readings was long enough that a wrap could have
    /// been missed (see [`EnergyReading::possible_missed_wrap`]).
    pub possible_missed_wrap: bool,
}

impl EnergyMeasurement {
    /// Combine an idle reading and a window reading of the same counter.
    pub fn from_readings(
        idle: &EnergyReading,
        window: &EnergyReading,
        images: usize,
    ) -> Result<Self, EnergyError> {
        if idle.domains != window.domains {
            return Err(EnergyError::DomainMismatch {
                a: idle.domains.iter().map(|d| d.name.clone()).collect(),
                b: window.domains.iter().map(|d| d.name.clone()).collect(),
            });
        }
        if idle.elapsed_s.is_nan() || idle.elapsed_s <= 0.0 {
            return Err(EnergyError::InvalidConfig(format!(
                "idle reading lasted {} s; idle power needs a positive duration",
                idle.elapsed_s
            )));
        }
        if images == 0 {
            return Err(EnergyError::NoImages);
        }
        if !window.domains.iter().any(|d| d.kind == DomainKind::Package) {
            return Err(EnergyError::NoPackageDomain(
                window.domains.iter().map(|d| d.name.clone()).collect(),
            ));
        }
        let t = window.elapsed_s;
        let mut clamped_any = false;
        let domains: Vec<DomainEnergy> = window
            .domains
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let gross_j = window.energy_uj[i] as f64 / 1e6;
                let idle_w = idle.energy_uj[i] as f64 / 1e6 / idle.elapsed_s;
                let (net_j, clamped) = clamp_net(gross_j - idle_w * t);
                clamped_any |= clamped;
                DomainEnergy {
                    name: d.name.clone(),
                    kind: d.kind,
                    gross_j,
                    idle_w,
                    net_j,
                    clamped,
                    wraps: window.wraps[i],
                }
            })
            .collect();

        let sum_kind = |k: DomainKind| -> Option<(f64, f64)> {
            let sel: Vec<&DomainEnergy> = domains.iter().filter(|d| d.kind == k).collect();
            (!sel.is_empty()).then(|| {
                (
                    sel.iter().map(|d| d.gross_j).sum(),
                    sel.iter().map(|d| d.idle_w).sum(),
                )
            })
        };
        let (package_gross_j, package_idle_w) = sum_kind(DomainKind::Package).unwrap_or((0.0, 0.0));
        let (package_net_j, c) = clamp_net(package_gross_j - package_idle_w * t);
        clamped_any |= c;
        let dram = sum_kind(DomainKind::Dram).map(|(g, w)| {
            let (net, c) = clamp_net(g - w * t);
            clamped_any |= c;
            (g, net)
        });
        let img = images as f64;
        Ok(EnergyMeasurement {
            window_s: t,
            idle_s: idle.elapsed_s,
            images,
            package_gross_j,
            package_idle_w,
            package_net_j,
            package_j_per_img_gross: package_gross_j / img,
            package_j_per_img_net: package_net_j / img,
            dram_gross_j: dram.map(|d| d.0),
            dram_net_j: dram.map(|d| d.1),
            dram_j_per_img_net: dram.map(|d| d.1 / img),
            clamped: clamped_any,
            wraps: window.wraps.iter().sum(),
            max_gap_s: idle.max_gap_s.max(window.max_gap_s),
            possible_missed_wrap: idle.possible_missed_wrap || window.possible_missed_wrap,
            domains,
        })
    }

    /// Validity reasons of this measurement: a net value clamped at zero
    /// (`"energy net clamped at 0"`), a reading gap long enough to miss a
    /// wrap, a window shorter than `min_window_s`.
    pub fn validity(&self, min_window_s: f64) -> Validity {
        let mut v = Validity::ok();
        if self.window_s < min_window_s {
            v.invalidate(format!(
                "energy window {:.2} s < {} s",
                self.window_s, min_window_s
            ));
        }
        if self.clamped {
            v.invalidate("energy net clamped at 0");
        }
        if self.possible_missed_wrap {
            v.invalidate(format!(
                "energy counter gap {:.1} s may have hidden a wrap",
                self.max_gap_s
            ));
        }
        v
    }
}

fn clamp_net(net: f64) -> (f64, bool) {
    if net < 0.0 {
        (0.0, true)
    } else {
        (net, false)
    }
}

/// Which code reads the RAPL counters. Both feed the same sampler, wrap accounting,
/// idle subtraction and validity rules; they differ in who opens and reads the files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum EnergyBackend {
    /// weightbench's own powercap reader ([`RaplCounter`]): typed errors with paths.
    #[default]
    Sysfs,
    /// The `rapl-energy` crate (GPL-3.0; cargo feature `rapl-energy`).
    RaplEnergy,
}

impl EnergyBackend {
    /// Every backend name, built in or not.
    pub const NAMES: [&'static str; 2] = ["sysfs", "rapl-energy"];

    /// The name used on the command line and in `energy_source`.
    pub fn name(self) -> &'static str {
        match self {
            EnergyBackend::Sysfs => "sysfs",
            EnergyBackend::RaplEnergy => "rapl-energy",
        }
    }

    /// Whether this binary was built with the backend.
    pub fn is_built(self) -> bool {
        match self {
            EnergyBackend::Sysfs => true,
            EnergyBackend::RaplEnergy => cfg!(feature = "rapl-energy"),
        }
    }

    /// The backends this binary was built with.
    pub fn built() -> Vec<EnergyBackend> {
        [EnergyBackend::Sysfs, EnergyBackend::RaplEnergy]
            .into_iter()
            .filter(|b| b.is_built())
            .collect()
    }
}

impl std::str::FromStr for EnergyBackend {
    type Err = EnergyError;

    /// `sysfs` or `rapl-energy`; a backend not built in is an error that says how to
    /// build it.
    fn from_str(s: &str) -> Result<Self, EnergyError> {
        let b = match s {
            "sysfs" => EnergyBackend::Sysfs,
            "rapl-energy" => EnergyBackend::RaplEnergy,
            other => {
                return Err(EnergyError::InvalidConfig(format!(
                    "unknown energy backend {other:?} (one of: {})",
                    EnergyBackend::NAMES.join(", ")
                )))
            }
        };
        if b.is_built() {
            Ok(b)
        } else {
            Err(EnergyError::BackendNotBuilt(s.to_string()))
        }
    }
}

/// A counter of either backend.
pub type BoxedCounter = Box<dyn EnergyCounter + Send>;

/// Outcome of [`probe`]: readable counters, or why there are none.
pub enum EnergySource {
    /// Counters that were opened and read once successfully, and the backend's
    /// provenance label (`"rapl"` for the sysfs reader, `"rapl-energy"` for the crate).
    Available(BoxedCounter, &'static str),
    /// No usable counters; the string starts with `"unavailable: "`, e.g.
    /// `"unavailable: no powercap (/sys/class/powercap does not exist)"`,
    /// `"unavailable: permission denied (…)"`, `"unavailable: no RAPL
    /// domains (…)"`.
    Unavailable(String),
}

impl std::fmt::Debug for EnergySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnergySource::Available(c, label) => f
                .debug_struct("Available")
                .field("label", label)
                .field("domains", &c.domains())
                .finish(),
            EnergySource::Unavailable(r) => f.debug_tuple("Unavailable").field(r).finish(),
        }
    }
}

impl EnergySource {
    /// Whether counters are available.
    pub fn is_available(&self) -> bool {
        matches!(self, EnergySource::Available(..))
    }

    /// The provenance label when available (`"rapl"` or `"rapl-energy"`), otherwise
    /// the unavailability reason: the value for an `energy_source` column or manifest
    /// field.
    pub fn description(&self) -> String {
        match self {
            EnergySource::Available(_, label) => label.to_string(),
            EnergySource::Unavailable(r) => r.clone(),
        }
    }

    /// The reason, when unavailable.
    pub fn reason(&self) -> Option<&str> {
        match self {
            EnergySource::Available(..) => None,
            EnergySource::Unavailable(r) => Some(r),
        }
    }

    /// The domains, empty when unavailable.
    pub fn domains(&self) -> Vec<DomainInfo> {
        match self {
            EnergySource::Available(c, _) => c.domains(),
            EnergySource::Unavailable(_) => Vec::new(),
        }
    }

    /// A source from an opened counter (or the error that kept it closed).
    pub fn from_counter<C: EnergyCounter + Send + 'static>(
        r: Result<C, EnergyError>,
        label: &'static str,
    ) -> Self {
        match r {
            Ok(c) => EnergySource::Available(Box::new(c), label),
            Err(e) => EnergySource::Unavailable(format!("unavailable: {e}")),
        }
    }
}

impl From<Result<RaplCounter, EnergyError>> for EnergySource {
    fn from(r: Result<RaplCounter, EnergyError>) -> Self {
        EnergySource::from_counter(r, "rapl")
    }
}

/// Probe the machine's RAPL counters under [`DEFAULT_POWERCAP_ROOT`] with the default
/// (sysfs) backend.
pub fn probe() -> EnergySource {
    RaplCounter::open().into()
}

/// Probe the RAPL counters through `backend`.
pub fn probe_with(backend: EnergyBackend) -> EnergySource {
    match backend {
        EnergyBackend::Sysfs => probe(),
        EnergyBackend::RaplEnergy => probe_rapl_energy(),
    }
}

#[cfg(feature = "rapl-energy")]
fn probe_rapl_energy() -> EnergySource {
    let opened = RaplEnergyCrate::open()
        .map_err(|e| EnergyError::Library(format!("rapl-energy: {e}")))
        .and_then(LibraryCounter::new);
    EnergySource::from_counter(opened, "rapl-energy")
}

#[cfg(not(feature = "rapl-energy"))]
fn probe_rapl_energy() -> EnergySource {
    EnergySource::Unavailable(format!(
        "unavailable: {}",
        EnergyError::BackendNotBuilt("rapl-energy".into())
    ))
}

/// Probe the RAPL counters under `root` (a powercap-like directory).
pub fn probe_at(root: &std::path::Path) -> EnergySource {
    RaplCounter::open_at(root).into()
}

#[cfg(test)]
mod tests;
