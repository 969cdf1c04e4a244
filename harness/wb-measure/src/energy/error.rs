//! Errors of energy measurement.

use std::path::PathBuf;

/// Why energy could not be read or accumulated.
///
/// The `Display` texts of the first four variants are the reasons written
/// after `"unavailable: "` by [`crate::energy::probe`].
#[derive(Debug, thiserror::Error)]
pub enum EnergyError {
    /// The powercap sysfs directory does not exist (typical in VMs and in
    /// containers without the sysfs bind-mount).
    #[error("no powercap ({} does not exist)", path.display())]
    NoPowercap {
        /// The directory that was looked for.
        path: PathBuf,
    },
    /// A counter exists but may not be read (root-only since CVE-2020-8694).
    #[error(
        "permission denied ({} is readable by root only since CVE-2020-8694; \
         see the wb-measure README for granting read access)",
        path.display()
    )]
    PermissionDenied {
        /// The file that could not be read.
        path: PathBuf,
    },
    /// The powercap directory holds no `intel-rapl:*` zone with an
    /// `energy_uj` file.
    #[error("no RAPL domains (no intel-rapl:* zone with energy_uj under {})", path.display())]
    NoDomains {
        /// The powercap directory.
        path: PathBuf,
    },
    /// `max_energy_range_uj` is missing, unreadable or not a positive
    /// integer; without it counter wrap-around cannot be handled, so the
    /// domain is refused rather than read without wrap detection.
    #[error("max_energy_range_uj unreadable ({}: {detail})", path.display())]
    MaxRangeUnreadable {
        /// The `max_energy_range_uj` file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// Any other I/O error on a sysfs file.
    #[error("read error on {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A counter file did not hold an unsigned integer.
    #[error("cannot parse {} ({content:?}) as microjoules", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Its (trimmed) content.
        content: String,
    },
    /// A counter returned a different number of values than it has domains.
    #[error("counter returned {got} values for {expected} domains")]
    DomainCount {
        /// Number of domains.
        expected: usize,
        /// Number of values read.
        got: usize,
    },
    /// Two readings to be combined describe different domains.
    #[error("readings describe different domains ({a:?} vs {b:?})")]
    DomainMismatch {
        /// Domain names of the first reading.
        a: Vec<String>,
        /// Domain names of the second reading.
        b: Vec<String>,
    },
    /// A raw reading exceeds the domain's `max_energy_range_uj`.
    #[error("domain {domain}: reading {value} uJ exceeds max_energy_range_uj {max}")]
    OutOfRange {
        /// Domain name.
        domain: String,
        /// The raw value.
        value: u64,
        /// The domain's range.
        max: u64,
    },
    /// A domain declares `max_energy_range_uj = 0`.
    #[error("domain {domain}: max_energy_range_uj is 0, wrap-around cannot be handled")]
    ZeroRange {
        /// Domain name.
        domain: String,
    },
    /// The counter has no package domain, so package energy is undefined.
    #[error("no package domain among {0:?}")]
    NoPackageDomain(Vec<String>),
    /// The workload reported zero images in the measurement window.
    #[error("the workload processed no images in the measurement window")]
    NoImages,
    /// An [`crate::energy::EnergyConfig`] value is out of range.
    #[error("invalid energy config: {0}")]
    InvalidConfig(String),
    /// The background sampler thread panicked.
    #[error("energy sampler thread panicked")]
    SamplerPanicked,
    /// A RAPL library backend (the `rapl-energy` crate) could not open or read its
    /// counters; the text names the library and what failed.
    #[error("{0}")]
    Library(String),
    /// An energy backend that this binary was built without.
    #[error("energy backend {0} is not built in (build with `--features rapl-energy`)")]
    BackendNotBuilt(String),
}

impl EnergyError {
    /// Classify an I/O error on `path`: permission problems become
    /// [`EnergyError::PermissionDenied`], everything else [`EnergyError::Io`].
    pub fn from_io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::PermissionDenied {
            EnergyError::PermissionDenied { path }
        } else {
            EnergyError::Io { path, source }
        }
    }
}

/// Error of [`crate::energy::measure_energy`]: the counter or the workload.
#[derive(Debug, thiserror::Error)]
pub enum EnergyMeasureError<E> {
    /// Reading or accumulating the counters failed.
    #[error("energy counter: {0}")]
    Counter(#[from] EnergyError),
    /// The measured closure returned an error.
    #[error("workload failed: {0}")]
    Workload(E),
}
