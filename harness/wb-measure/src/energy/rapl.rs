//! RAPL counters read directly from the Linux powercap sysfs tree.
//!
//! Read directly rather than through a RAPL crate so that every failure is a
//! typed error with the offending path (missing directory, permission,
//! unreadable `max_energy_range_uj`) instead of a panic or a silent `None`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{DomainInfo, DomainKind, EnergyCounter, EnergyError};

/// Where the kernel exposes powercap zones.
pub const DEFAULT_POWERCAP_ROOT: &str = "/sys/class/powercap";

/// One readable RAPL zone.
#[derive(Debug, Clone)]
struct Zone {
    info: DomainInfo,
    energy_path: PathBuf,
}

/// The machine's RAPL energy counters (`intel-rapl:N` packages/psys and their
/// `intel-rapl:N:M` subzones such as core, uncore and dram; also used by the
/// kernel for AMD parts).
///
/// * Domain names are the zone's `name`, prefixed by the parent zone's name
///   for subzones: `package-0`, `package-0/dram`, `package-0/core`, `psys`.
/// * `intel-rapl-mmio:*` zones are skipped: on Intel client parts they report
///   the same package energy through MMIO, and counting both would double it.
/// * `max_energy_range_uj` is read once at open; a zone whose range cannot be
///   read is an error, never a zone without wrap detection.
#[derive(Debug, Clone)]
pub struct RaplCounter {
    root: PathBuf,
    zones: Vec<Zone>,
}

impl RaplCounter {
    /// Open the counters under [`DEFAULT_POWERCAP_ROOT`].
    pub fn open() -> Result<Self, EnergyError> {
        Self::open_at(Path::new(DEFAULT_POWERCAP_ROOT))
    }

    /// Open the counters under `root` (a powercap directory laid out like
    /// `/sys/class/powercap`; tests point it at a fake tree). Every counter
    /// is read once to prove it is readable.
    pub fn open_at(root: &Path) -> Result<Self, EnergyError> {
        let entries = match fs::read_dir(root) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(EnergyError::NoPowercap {
                    path: root.to_path_buf(),
                })
            }
            Err(e) => return Err(EnergyError::from_io(root, e)),
        };
        let mut ids: Vec<(u32, Option<u32>, String)> = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| EnergyError::from_io(root, e))?;
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str() else {
                continue;
            };
            if let Some(id) = parse_zone_id(name) {
                ids.push((id.0, id.1, name.to_string()));
            }
        }
        ids.sort();

        let mut zones: Vec<Zone> = Vec::new();
        for (pkg, sub, dir_name) in &ids {
            let dir = root.join(dir_name);
            let energy_path = dir.join("energy_uj");
            if !energy_path.exists() {
                continue;
            }
            let zone_name = read_trimmed(&dir.join("name")).unwrap_or_else(|_| dir_name.clone());
            let kind = DomainKind::from_zone_name(&zone_name);
            let display_name = match sub {
                None => zone_name,
                Some(_) => {
                    let parent = root.join(format!("intel-rapl:{pkg}"));
                    let parent_name = read_trimmed(&parent.join("name"))
                        .unwrap_or_else(|_| format!("intel-rapl:{pkg}"));
                    format!("{parent_name}/{zone_name}")
                }
            };
            let range_path = dir.join("max_energy_range_uj");
            let max_energy_range_uj = match read_trimmed(&range_path) {
                Ok(s) => match s.parse::<u64>() {
                    Ok(0) => {
                        return Err(EnergyError::MaxRangeUnreadable {
                            path: range_path,
                            detail: "value is 0".into(),
                        })
                    }
                    Ok(v) => v,
                    Err(_) => {
                        return Err(EnergyError::MaxRangeUnreadable {
                            path: range_path,
                            detail: format!("not an integer: {s:?}"),
                        })
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                    return Err(EnergyError::PermissionDenied { path: range_path })
                }
                Err(e) => {
                    return Err(EnergyError::MaxRangeUnreadable {
                        path: range_path,
                        detail: e.to_string(),
                    })
                }
            };
            zones.push(Zone {
                info: DomainInfo {
                    name: display_name,
                    kind,
                    max_energy_range_uj,
                },
                energy_path,
            });
        }
        if zones.is_empty() {
            return Err(EnergyError::NoDomains {
                path: root.to_path_buf(),
            });
        }
        let mut counter = RaplCounter {
            root: root.to_path_buf(),
            zones,
        };
        counter.read_uj()?;
        Ok(counter)
    }

    /// The powercap directory the counters were opened from.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl EnergyCounter for RaplCounter {
    fn domains(&self) -> Vec<DomainInfo> {
        self.zones.iter().map(|z| z.info.clone()).collect()
    }

    fn read_uj(&mut self) -> Result<Vec<u64>, EnergyError> {
        self.zones
            .iter()
            .map(|z| read_u64(&z.energy_path))
            .collect()
    }
}

/// `intel-rapl:3` → `(3, None)`, `intel-rapl:0:1` → `(0, Some(1))`; anything
/// else (including `intel-rapl-mmio:0` and the bare `intel-rapl` control
/// type) → `None`.
fn parse_zone_id(name: &str) -> Option<(u32, Option<u32>)> {
    let rest = name.strip_prefix("intel-rapl:")?;
    let mut parts = rest.split(':');
    let pkg = parts.next()?.parse().ok()?;
    let sub = match parts.next() {
        None => None,
        Some(s) => Some(s.parse().ok()?),
    };
    if parts.next().is_some() {
        return None;
    }
    Some((pkg, sub))
}

fn read_trimmed(path: &Path) -> io::Result<String> {
    fs::read_to_string(path).map(|s| s.trim().to_string())
}

fn read_u64(path: &Path) -> Result<u64, EnergyError> {
    let s = read_trimmed(path).map_err(|e| EnergyError::from_io(path, e))?;
    s.parse::<u64>().map_err(|_| EnergyError::Parse {
        path: path.to_path_buf(),
        content: s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_ids() {
        assert_eq!(parse_zone_id("intel-rapl:0"), Some((0, None)));
        assert_eq!(parse_zone_id("intel-rapl:1:2"), Some((1, Some(2))));
        assert_eq!(parse_zone_id("intel-rapl"), None);
        assert_eq!(parse_zone_id("intel-rapl-mmio:0"), None);
        assert_eq!(parse_zone_id("intel-rapl:0:1:2"), None);
        assert_eq!(parse_zone_id("intel-rapl:x"), None);
    }
}
