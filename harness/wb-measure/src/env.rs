//! Environment manifest: what a measurement ran on, recorded with every
//! result row.
//!
//! Everything is read from procfs/sysfs and two `git` subprocesses; every
//! probe is tolerant: what cannot be read is `None`, never a guess.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::energy;

/// Description of the software and hardware environment of a run.
///
/// Fields that only the caller knows (`tch_version`, `libtorch_version`,
/// `device`, `threads_intra`, `threads_inter`) are `None` after
/// [`Manifest::collect`]; set them directly or with
/// [`Manifest::with_torch_versions`] and [`Manifest::with_threads`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Version of the harness crates.
    pub harness_version: String,
    /// `git rev-parse HEAD` of the repository, if git and the repository are
    /// available.
    pub git_sha: Option<String>,
    /// Whether `git status --porcelain` reported changes (untracked files
    /// included).
    pub git_dirty: Option<bool>,
    /// SHA-256 (hex) of the repository's `Cargo.lock`.
    pub cargo_lock_sha256: Option<String>,
    /// Version of the `tch` crate (set by the caller).
    pub tch_version: Option<String>,
    /// Version of libtorch (set by the caller).
    pub libtorch_version: Option<String>,
    /// Compute device of the timed passes, e.g. `cpu` or `cuda:0` (set by
    /// the caller).
    pub device: Option<String>,
    /// CPU model name (`model name` in `/proc/cpuinfo`), `"unknown"` if absent.
    pub cpu_model: String,
    /// CPU microcode revision, where `/proc/cpuinfo` reports it.
    pub cpu_microcode: Option<String>,
    /// The CPU's vector and matrix extensions that reduced-precision execution paths
    /// can use (of [`CPU_EXTENSIONS`], in that order), from `/proc/cpuinfo`'s flags.
    #[serde(default)]
    pub cpu_extensions: Vec<String>,
    /// Logical CPUs (hardware threads) of the machine.
    pub cpu_cores_logical: usize,
    /// Physical cores (distinct package/core pairs), if the topology is
    /// readable.
    pub cpu_cores_physical: Option<usize>,
    /// Whether simultaneous multithreading is active.
    pub smt: Option<bool>,
    /// CPUs this process may run on (`Cpus_allowed_list`), i.e. the pinning.
    pub cpus_allowed: Option<String>,
    /// Intra-op threads used (set by the caller).
    pub threads_intra: Option<usize>,
    /// Inter-op threads used (set by the caller).
    pub threads_inter: Option<usize>,
    /// Allocator settings in effect for the tensors (set by the caller), e.g. the glibc
    /// `mallopt` parameters; absent in manifests written before this field existed.
    #[serde(default)]
    pub allocator: Option<String>,
    /// cpufreq governor of CPU 0.
    pub governor: Option<String>,
    /// Turbo state, e.g. `"on (intel_pstate/no_turbo=0)"` or
    /// `"off (cpufreq/boost=0)"`.
    pub turbo: Option<String>,
    /// Kernel release (`uname -r`), `"unknown"` if unreadable.
    pub kernel: String,
    /// Host name, `"unknown"` if unreadable.
    pub hostname: String,
    /// Evidence of virtualization (systemd-detect-virt, the cpuinfo
    /// `hypervisor` flag, the DMI product name), `None` when no probe found
    /// any.
    pub virtualization: Option<String>,
    /// Evidence of a container (`/.dockerenv`, `/run/.containerenv`,
    /// `/proc/1/cgroup`, systemd-detect-virt), `None` when none found.
    pub container: Option<String>,
    /// RAPL domain names available (empty when energy is unavailable).
    pub rapl_domains: Vec<String>,
    /// `"rapl"` or the unavailability reason (`"unavailable: …"`).
    pub energy_source: String,
    /// Collection time, UTC, RFC 3339 (`2024-05-01T12:00:00Z`).
    pub timestamp: String,
}

impl Manifest {
    /// Collect the manifest of this machine and of the repository at
    /// `repo_root` (for git state and `Cargo.lock`).
    pub fn collect(repo_root: &Path) -> Manifest {
        let cpuinfo = read("/proc/cpuinfo").unwrap_or_default();
        let cpu = parse_cpuinfo(&cpuinfo);
        let logical = if cpu.logical > 0 {
            cpu.logical
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        };
        let physical = physical_cores_sysfs().or(cpu.physical);
        let smt = match read("/sys/devices/system/cpu/smt/active").as_deref() {
            Some("1") => Some(true),
            Some("0") => Some(false),
            _ => physical.map(|p| logical > p),
        };
        let source = energy::probe();
        Manifest {
            harness_version: env!("CARGO_PKG_VERSION").to_string(),
            git_sha: git(repo_root, &["rev-parse", "HEAD"]),
            git_dirty: git(repo_root, &["status", "--porcelain"]).map(|s| !s.is_empty()),
            cargo_lock_sha256: fs::read(repo_root.join("Cargo.lock"))
                .ok()
                .map(|b| sha256_hex(&b)),
            tch_version: None,
            libtorch_version: None,
            device: None,
            cpu_model: cpu.model.unwrap_or_else(|| "unknown".to_string()),
            cpu_microcode: cpu.microcode,
            cpu_extensions: cpu.extensions,
            cpu_cores_logical: logical,
            cpu_cores_physical: physical,
            smt,
            cpus_allowed: read("/proc/self/status")
                .and_then(|s| status_value(&s, "Cpus_allowed_list")),
            threads_intra: None,
            threads_inter: None,
            allocator: None,
            governor: read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
            turbo: turbo_from(
                read("/sys/devices/system/cpu/intel_pstate/no_turbo").as_deref(),
                read("/sys/devices/system/cpu/cpufreq/boost").as_deref(),
            ),
            kernel: read("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".into()),
            hostname: hostname(),
            virtualization: virtualization_from(
                detect_virt("--vm").as_deref(),
                cpu.hypervisor_flag,
                read("/sys/class/dmi/id/product_name").as_deref(),
            ),
            container: container_from(
                Path::new("/.dockerenv").exists(),
                Path::new("/run/.containerenv").exists(),
                read("/proc/1/cgroup").as_deref(),
                detect_virt("--container").as_deref(),
            ),
            rapl_domains: source.domains().into_iter().map(|d| d.name).collect(),
            energy_source: source.description(),
            timestamp: rfc3339_utc(SystemTime::now()),
        }
    }

    /// Set the tch and libtorch versions.
    pub fn with_torch_versions(
        mut self,
        tch_version: impl Into<String>,
        libtorch_version: impl Into<String>,
    ) -> Self {
        self.tch_version = Some(tch_version.into());
        self.libtorch_version = Some(libtorch_version.into());
        self
    }

    /// Set the intra-op and inter-op thread counts.
    pub fn with_threads(mut self, intra: usize, inter: usize) -> Self {
        self.threads_intra = Some(intra);
        self.threads_inter = Some(inter);
        self
    }

    /// A stable 16-hex-digit identifier: the first 64 bits of the SHA-256
    /// of the JSON serialization with the timestamp blanked. Equal
    /// environments collected at different times share an id.
    pub fn id(&self) -> String {
        let mut m = self.clone();
        m.timestamp.clear();
        sha256_hex(m.to_json().as_bytes())[..16].to_string()
    }

    /// Pretty-printed JSON.
    pub fn to_json(&self) -> String {
        // Serializing plain strings, integers and options cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// Format `t` as RFC 3339 UTC with second precision, e.g.
/// `2023-11-14T22:13:20Z` (sub-second parts are truncated).
pub fn rfc3339_utc(t: SystemTime) -> String {
    let secs: i64 = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => {
            let d = e.duration();
            -(d.as_secs() as i64) - i64::from(d.subsec_nanos() > 0)
        }
    };
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// This machine's host name (`unknown` where the system does not say).
pub fn hostname() -> String {
    read("/proc/sys/kernel/hostname")
        .or_else(|| read("/etc/hostname"))
        .unwrap_or_else(|| "unknown".into())
}

fn read(path: &str) -> Option<String> {
    let s = fs::read_to_string(path).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

fn git(root: &Path, args: &[&str]) -> Option<String> {
    // No optional locks: never touch the index of a repository others edit.
    let out = Command::new("git")
        .arg("--no-optional-locks")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn detect_virt(flag: &str) -> Option<String> {
    // Exits non-zero and prints "none" when nothing is detected.
    let out = Command::new("systemd-detect-virt")
        .arg(flag)
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !s.is_empty() && s != "none").then_some(s)
}

/// The `/proc/cpuinfo` flags the manifest records: the vector and matrix extensions
/// behind libtorch's fast f32, BF16, FP16 and int8 kernels.
pub const CPU_EXTENSIONS: [&str; 12] = [
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_fp16",
    "amx_int8",
];

/// The [`CPU_EXTENSIONS`] this machine has (empty where `/proc/cpuinfo` is missing).
pub fn cpu_extensions() -> Vec<String> {
    fs::read_to_string("/proc/cpuinfo")
        .map(|t| parse_cpuinfo(&t).extensions)
        .unwrap_or_default()
}

/// What `/proc/cpuinfo` says about the CPU.
#[derive(Debug, Default, PartialEq, Eq)]
struct CpuInfo {
    model: Option<String>,
    microcode: Option<String>,
    logical: usize,
    physical: Option<usize>,
    hypervisor_flag: bool,
    extensions: Vec<String>,
}

fn parse_cpuinfo(text: &str) -> CpuInfo {
    let mut info = CpuInfo::default();
    let mut pairs = std::collections::BTreeSet::new();
    let mut phys_id: Option<String> = None;
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            if line.trim().is_empty() {
                phys_id = None;
            }
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        match k {
            "processor" => info.logical += 1,
            "model name" if info.model.is_none() => info.model = Some(v.to_string()),
            "microcode" if info.microcode.is_none() => info.microcode = Some(v.to_string()),
            "flags" => {
                let flags: Vec<&str> = v.split_whitespace().collect();
                info.hypervisor_flag |= flags.contains(&"hypervisor");
                if info.extensions.is_empty() {
                    info.extensions = (CPU_EXTENSIONS.iter())
                        .filter(|e| flags.contains(e))
                        .map(|e| e.to_string())
                        .collect();
                }
            }
            "physical id" => phys_id = Some(v.to_string()),
            "core id" => {
                pairs.insert((phys_id.clone().unwrap_or_default(), v.to_string()));
            }
            _ => {}
        }
    }
    if !pairs.is_empty() {
        info.physical = Some(pairs.len());
    }
    info
}

/// Distinct (package, core) pairs from the sysfs CPU topology.
fn physical_cores_sysfs() -> Option<usize> {
    let mut pairs = std::collections::BTreeSet::new();
    for entry in fs::read_dir("/sys/devices/system/cpu").ok()? {
        let entry = entry.ok()?;
        let name = entry.file_name();
        let name = name.to_str().unwrap_or("");
        let is_cpu = name
            .strip_prefix("cpu")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if !is_cpu {
            continue;
        }
        let topo = entry.path().join("topology");
        let pkg = fs::read_to_string(topo.join("physical_package_id")).ok();
        let core = fs::read_to_string(topo.join("core_id")).ok();
        if let (Some(p), Some(c)) = (pkg, core) {
            pairs.insert((p.trim().to_string(), c.trim().to_string()));
        }
    }
    (!pairs.is_empty()).then_some(pairs.len())
}

fn status_value(status: &str, key: &str) -> Option<String> {
    status.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.trim().to_string())
    })
}

fn turbo_from(intel_no_turbo: Option<&str>, cpufreq_boost: Option<&str>) -> Option<String> {
    if let Some(v) = intel_no_turbo {
        let state = match v {
            "0" => "on",
            "1" => "off",
            _ => "unknown",
        };
        return Some(format!("{state} (intel_pstate/no_turbo={v})"));
    }
    cpufreq_boost.map(|v| {
        let state = match v {
            "1" => "on",
            "0" => "off",
            _ => "unknown",
        };
        format!("{state} (cpufreq/boost={v})")
    })
}

/// DMI product names of common hypervisors (substring match).
const VM_PRODUCTS: &[&str] = &[
    "KVM",
    "QEMU",
    "VirtualBox",
    "VMware",
    "Virtual Machine",
    "HVM domU",
    "Google Compute Engine",
    "BHYVE",
    "OpenStack",
    "Standard PC",
    "Cloud Hypervisor",
];

fn virtualization_from(
    detect: Option<&str>,
    hypervisor_flag: bool,
    dmi_product: Option<&str>,
) -> Option<String> {
    let mut ev = Vec::new();
    if let Some(d) = detect {
        ev.push(format!("{d} (systemd-detect-virt)"));
    }
    if hypervisor_flag {
        ev.push("cpuinfo hypervisor flag".to_string());
    }
    if let Some(p) = dmi_product {
        if VM_PRODUCTS.iter().any(|v| p.contains(v)) {
            ev.push(format!("dmi product {p:?}"));
        }
    }
    (!ev.is_empty()).then(|| ev.join("; "))
}

fn container_from(
    dockerenv: bool,
    containerenv: bool,
    init_cgroup: Option<&str>,
    detect: Option<&str>,
) -> Option<String> {
    let mut ev = Vec::new();
    if let Some(d) = detect {
        ev.push(format!("{d} (systemd-detect-virt)"));
    }
    if dockerenv {
        ev.push("docker (/.dockerenv)".to_string());
    }
    if containerenv {
        ev.push("podman (/run/.containerenv)".to_string());
    }
    if let Some(cg) = init_cgroup {
        for marker in ["docker", "kubepods", "containerd", "libpod", "lxc"] {
            if cg.contains(marker) {
                ev.push(format!("{marker} (/proc/1/cgroup)"));
                break;
            }
        }
    }
    (!ev.is_empty()).then(|| ev.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: i64) -> String {
        let t = if secs >= 0 {
            UNIX_EPOCH + Duration::from_secs(secs as u64)
        } else {
            UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
        };
        rfc3339_utc(t)
    }

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(951_868_799), "2000-02-29T23:59:59Z");
        assert_eq!(at(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(at(1_709_164_800), "2024-02-29T00:00:00Z");
        assert_eq!(at(4_102_444_800), "2100-01-01T00:00:00Z");
        assert_eq!(at(-1), "1969-12-31T23:59:59Z");
        assert_eq!(at(-86_400 * 365), "1969-01-01T00:00:00Z");
        let sub = UNIX_EPOCH + Duration::from_millis(1_700_000_000_999);
        assert_eq!(rfc3339_utc(sub), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn cpuinfo_parsing() {
        let text = "processor\t: 0\nmodel name\t: Test CPU @ 3.0GHz\nmicrocode\t: 0xf0\n\
            physical id\t: 0\ncore id\t: 0\nflags\t\t: fpu sse2 hypervisor avx2\n\n\
            processor\t: 1\nmodel name\t: Test CPU @ 3.0GHz\nphysical id\t: 0\ncore id\t: 0\n\n\
            processor\t: 2\nphysical id\t: 0\ncore id\t: 1\n\n\
            processor\t: 3\nphysical id\t: 1\ncore id\t: 1\n";
        let c = parse_cpuinfo(text);
        assert_eq!(c.model.as_deref(), Some("Test CPU @ 3.0GHz"));
        assert_eq!(c.microcode.as_deref(), Some("0xf0"));
        assert_eq!(c.logical, 4);
        assert_eq!(c.physical, Some(3));
        assert!(c.hypervisor_flag);
        assert_eq!(c.extensions, ["avx2"]);
        let sapphire = parse_cpuinfo(
            "flags : fpu avx2 amx_int8 avx512_bf16 fma avx512f amx_bf16 amx_tile avx512_fp16\n",
        );
        assert_eq!(
            sapphire.extensions,
            [
                "avx2",
                "fma",
                "avx512f",
                "avx512_bf16",
                "avx512_fp16",
                "amx_tile",
                "amx_bf16",
                "amx_int8"
            ]
        );
        let bare = parse_cpuinfo("processor : 0\nflags : fpu\n");
        assert_eq!(
            (bare.logical, bare.physical, bare.hypervisor_flag),
            (1, None, false)
        );
    }

    #[test]
    fn turbo_virtualization_container_evidence() {
        assert_eq!(
            turbo_from(Some("0"), None).unwrap(),
            "on (intel_pstate/no_turbo=0)"
        );
        assert_eq!(
            turbo_from(Some("1"), Some("1")).unwrap(),
            "off (intel_pstate/no_turbo=1)"
        );
        assert_eq!(
            turbo_from(None, Some("0")).unwrap(),
            "off (cpufreq/boost=0)"
        );
        assert_eq!(turbo_from(None, None), None);

        assert_eq!(
            virtualization_from(None, false, Some("PowerEdge R740")),
            None
        );
        assert_eq!(
            virtualization_from(Some("kvm"), true, Some("KVM")).unwrap(),
            "kvm (systemd-detect-virt); cpuinfo hypervisor flag; dmi product \"KVM\""
        );
        assert_eq!(
            container_from(false, false, Some("0::/init.scope\n"), None),
            None
        );
        assert_eq!(
            container_from(true, false, Some("0::/system.slice/docker-abc.scope"), None).unwrap(),
            "docker (/.dockerenv); docker (/proc/1/cgroup)"
        );
        assert_eq!(
            container_from(false, true, None, None).unwrap(),
            "podman (/run/.containerenv)"
        );
    }

    #[test]
    fn collect_without_git_repo_and_stable_id() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("Cargo.lock"), b"abc").unwrap();
        let m = Manifest::collect(tmp.path());
        // Not a repository: git fields are None rather than an error.
        assert_eq!(m.git_sha, None);
        assert_eq!(m.git_dirty, None);
        assert_eq!(
            m.cargo_lock_sha256.as_deref(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert!(m.cpu_cores_logical >= 1);
        assert!(!m.energy_source.is_empty());
        if m.energy_source != "rapl" {
            assert!(m.energy_source.starts_with("unavailable: "));
            assert!(m.rapl_domains.is_empty());
        }
        assert_eq!(m.timestamp.len(), "2023-11-14T22:13:20Z".len());
        assert!(m.timestamp.ends_with('Z'));
        #[cfg(target_os = "linux")]
        assert!(m.kernel != "unknown" && m.hostname != "unknown");
        assert_eq!(m.device, None);

        // The id ignores the timestamp but nothing else.
        let mut later = m.clone();
        later.timestamp = "2099-01-01T00:00:00Z".into();
        assert_eq!(m.id(), later.id());
        assert_eq!(m.id().len(), 16);
        assert!(m.id().bytes().all(|b| b.is_ascii_hexdigit()));
        let threaded = m.clone().with_threads(1, 1);
        assert_ne!(m.id(), threaded.id());
        let torch = m.clone().with_torch_versions("0.26.0", "2.13.0");
        assert_eq!(torch.libtorch_version.as_deref(), Some("2.13.0"));
        assert_ne!(m.id(), torch.id());

        // JSON round trip.
        let back: Manifest = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn git_state_of_a_repository() {
        // The workspace itself, when it is a git checkout.
        let ws = std::env::var_os("CARGO_MANIFEST_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
            .join("../..");
        if ws.join(".git").exists() {
            let m = Manifest::collect(&ws);
            let sha = m.git_sha.expect("HEAD of the workspace");
            assert_eq!(sha.len(), 40);
            assert!(sha.bytes().all(|b| b.is_ascii_hexdigit()));
            assert!(m.git_dirty.is_some());
            assert!(m.cargo_lock_sha256.is_some());
        }
        // A fresh repository without commits: no HEAD, but a dirty flag.
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path();
        match Command::new("git")
            .arg("-C")
            .arg(p)
            .args(["init", "-q"])
            .output()
        {
            Ok(o) if o.status.success() => {}
            _ => return, // no git here: the None path is covered above
        }
        assert_eq!(git(p, &["rev-parse", "HEAD"]), None);
        assert_eq!(
            git(p, &["status", "--porcelain"]).map(|s| !s.is_empty()),
            Some(false)
        );
        std::fs::write(p.join("new.txt"), b"y").unwrap();
        let m = Manifest::collect(p);
        assert_eq!((m.git_sha, m.git_dirty), (None, Some(true)));
    }
}
