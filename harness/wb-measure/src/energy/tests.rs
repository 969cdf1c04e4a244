//! Energy tests with deterministic fake counters and a fake sysfs tree.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;

fn pkg(name: &str, max: u64) -> DomainInfo {
    DomainInfo::new(name, DomainKind::Package, max)
}

// --- accumulator ------------------------------------------------------------

#[test]
fn single_wrap_is_counted_exactly() {
    let d = [pkg("package-0", 999)];
    let mut acc = Accumulator::new(&d, &[900]).unwrap();
    acc.update(&[100]).unwrap();
    // 900 -> 999 is 99, 999 -> 0 is 1, 0 -> 100 is 100.
    assert_eq!(acc.total_uj(), &[200]);
    assert_eq!(acc.wraps(), &[1]);
    acc.update(&[150]).unwrap();
    assert_eq!(acc.total_uj(), &[250]);
    assert_eq!(acc.wraps(), &[1]);
    assert_eq!(acc.reads(), 3);
}

#[test]
fn wrap_to_exactly_zero_and_from_max() {
    let d = [pkg("p", 999)];
    let mut acc = Accumulator::new(&d, &[999]).unwrap();
    acc.update(&[0]).unwrap();
    assert_eq!((acc.total_uj()[0], acc.wraps()[0]), (1, 1));
    acc.update(&[0]).unwrap();
    assert_eq!((acc.total_uj()[0], acc.wraps()[0]), (1, 1));
}

#[test]
fn multiple_wraps_over_a_sequence() {
    let d = [
        pkg("p", 999),
        DomainInfo::new("p/dram", DomainKind::Dram, 1_000_000),
    ];
    let mut acc = Accumulator::new(&d, &[0, 5]).unwrap();
    for r in [[600, 10], [200, 20], [800, 30], [400, 40]] {
        acc.update(&r).unwrap();
    }
    assert_eq!(acc.total_uj(), &[2400, 35]);
    assert_eq!(acc.wraps(), &[2, 0]);
}

#[test]
fn accumulator_rejects_bad_input() {
    let d = [pkg("p", 999)];
    assert!(matches!(
        Accumulator::new(&d, &[1000]),
        Err(EnergyError::OutOfRange {
            value: 1000,
            max: 999,
            ..
        })
    ));
    assert!(matches!(
        Accumulator::new(&d, &[1, 2]),
        Err(EnergyError::DomainCount {
            expected: 1,
            got: 2
        })
    ));
    assert!(matches!(
        Accumulator::new(&[pkg("z", 0)], &[0]),
        Err(EnergyError::ZeroRange { .. })
    ));
    let mut acc = Accumulator::new(&d, &[1]).unwrap();
    assert!(acc.update(&[5000]).is_err());
    assert!(acc.update(&[]).is_err());
}

// --- sampler ------------------------------------------------------------------

#[test]
fn safe_period_is_a_tenth_of_the_shortest_wrap_and_at_most_100ms() {
    // 262 kJ at 1000 W wraps in 262 s: capped at 100 ms.
    let big = [pkg("p", 262_143_999_999)];
    assert_eq!(safe_period(&big, Duration::from_secs(1)), MAX_SAMPLE_PERIOD);
    assert_eq!(
        safe_period(&big, Duration::from_millis(20)),
        Duration::from_millis(20)
    );
    // 50 J at 1000 W wraps in 50 ms: sample every 5 ms.
    let small = [
        pkg("p", 262_143_999_999),
        DomainInfo::new("d", DomainKind::Dram, 50_000_000),
    ];
    assert!((min_wrap_period_s(&small) - 0.05).abs() < 1e-12);
    let p = safe_period(&small, Duration::from_secs(1));
    assert!((p.as_secs_f64() - 0.005).abs() < 1e-9, "{p:?}");
    // Never below 1 ms.
    assert_eq!(
        safe_period(&[pkg("p", 10)], MAX_SAMPLE_PERIOD),
        Duration::from_millis(1)
    );
}

#[test]
fn sampler_counts_multiple_wraps() {
    // Advances 450 J per read on a 1 kJ range: wraps every 2-3 reads. (At
    // the assumed 1000 W the range wraps in 1 s, so 10 ms is a safe period.)
    let max = 999_999_999;
    let step = 450_000_000;
    let fake = FakeCounter::stepping(vec![pkg("package-0", max)], vec![0], vec![step]);
    let s = Sampler::start(fake, Duration::from_millis(10)).unwrap();
    assert_eq!(s.period(), Duration::from_millis(10));
    std::thread::sleep(Duration::from_millis(150));
    let (counter, r) = s.finish();
    let r = r.unwrap();
    let counter = counter.unwrap();
    assert_eq!(counter.reads() as u64, r.reads);
    assert!(r.reads >= 4, "reads {}", r.reads);
    let n = r.reads - 1;
    assert_eq!(r.energy_uj, vec![n * step]);
    assert_eq!(r.wraps, vec![n * step / (max + 1)]);
    assert!(r.wraps[0] >= 1);
    assert!(r.elapsed_s >= 0.15 && r.max_gap_s > 0.0);
    assert!(!r.possible_missed_wrap);
}

#[test]
fn sampler_flags_gaps_that_could_hide_a_wrap() {
    // A 1 J range could wrap within 1 ms at 1000 W; the sampler cannot read
    // faster than every 1 ms, so the reading is flagged.
    let fake = FakeCounter::stepping(vec![pkg("package-0", 999_999)], vec![0], vec![1]);
    let s = Sampler::start(fake, Duration::from_millis(10)).unwrap();
    assert_eq!(s.period(), Duration::from_millis(1));
    std::thread::sleep(Duration::from_millis(5));
    let r = s.stop().unwrap();
    assert!(r.possible_missed_wrap && r.max_gap_s >= 0.001);
    let d = vec![pkg("package-0", 999_999)];
    let idle = EnergyReading {
        possible_missed_wrap: false,
        ..r.clone()
    };
    let m = EnergyMeasurement::from_readings(&idle, &r, 1).unwrap();
    assert!(m.possible_missed_wrap);
    assert_eq!(idle.domains, d);
    let v = m.validity(0.0);
    assert!(
        v.reasons
            .iter()
            .any(|x| x.contains("may have hidden a wrap")),
        "{v:?}"
    );
}

#[test]
fn sampler_reports_counter_errors() {
    // The second reading has the wrong length.
    let fake = FakeCounter::scripted(vec![pkg("p", 100)], vec![vec![1], vec![]]);
    let s = Sampler::start(fake, Duration::from_millis(5)).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert!(matches!(s.stop(), Err(EnergyError::DomainCount { .. })));
}

// --- idle subtraction and totals ----------------------------------------------

fn reading(domains: &[DomainInfo], uj: &[u64], elapsed_s: f64) -> EnergyReading {
    EnergyReading {
        domains: domains.to_vec(),
        energy_uj: uj.to_vec(),
        wraps: vec![0; uj.len()],
        elapsed_s,
        reads: 10,
        max_gap_s: 0.1,
        possible_missed_wrap: false,
    }
}

fn four_domains() -> Vec<DomainInfo> {
    let m = 262_143_999_999;
    vec![
        pkg("package-0", m),
        DomainInfo::new("package-0/core", DomainKind::Core, m),
        DomainInfo::new("package-0/dram", DomainKind::Dram, m),
        DomainInfo::new("psys", DomainKind::Psys, m),
    ]
}

#[test]
fn idle_subtraction_and_no_cross_level_sums() {
    let d = four_domains();
    // Idle 2 s: package 10 W, core 4 W, dram 2 W, psys 20 W.
    let idle = reading(&d, &[20_000_000, 8_000_000, 4_000_000, 40_000_000], 2.0);
    // Window 1.5 s: package 30 J, core 20 J, dram 4.5 J, psys 60 J.
    let win = reading(&d, &[30_000_000, 20_000_000, 4_500_000, 60_000_000], 1.5);
    let m = EnergyMeasurement::from_readings(&idle, &win, 30).unwrap();
    assert_eq!(m.domains.len(), 4);
    assert_eq!(m.domains[0].idle_w, 10.0);
    assert_eq!(m.domains[0].net_j, 15.0);
    assert_eq!(m.domains[1].net_j, 14.0);
    // Core and psys are never added into the package total.
    assert_eq!(m.package_gross_j, 30.0);
    assert_eq!(m.package_idle_w, 10.0);
    assert_eq!(m.package_net_j, 15.0);
    assert_eq!(m.package_j_per_img_gross, 1.0);
    assert_eq!(m.package_j_per_img_net, 0.5);
    // DRAM separate: 4.5 - 2 * 1.5 = 1.5 J.
    assert_eq!(m.dram_gross_j, Some(4.5));
    assert_eq!(m.dram_net_j, Some(1.5));
    assert_eq!(m.dram_j_per_img_net, Some(0.05));
    assert!(!m.clamped);
    assert_eq!((m.window_s, m.idle_s, m.images), (1.5, 2.0, 30));
    assert!(m.validity(1.0).valid);
}

#[test]
fn packages_sum_and_dram_absent_is_none() {
    let m = 1_000_000_000;
    let d = vec![pkg("package-0", m), pkg("package-1", m)];
    let idle = reading(&d, &[1_000_000, 3_000_000], 1.0);
    let win = reading(&d, &[5_000_000, 7_000_000], 1.0);
    let e = EnergyMeasurement::from_readings(&idle, &win, 4).unwrap();
    assert_eq!(e.package_gross_j, 12.0);
    assert_eq!(e.package_idle_w, 4.0);
    assert_eq!(e.package_net_j, 8.0);
    assert_eq!(e.package_j_per_img_net, 2.0);
    assert_eq!(
        (e.dram_gross_j, e.dram_net_j, e.dram_j_per_img_net),
        (None, None, None)
    );
}

#[test]
fn net_is_clamped_at_zero_and_flagged() {
    let d = four_domains();
    let idle = reading(&d, &[20_000_000, 8_000_000, 4_000_000, 40_000_000], 2.0);
    // Package 10 J in 1.5 s at 10 W idle: net would be -5 J.
    let win = reading(&d, &[10_000_000, 6_000_000, 3_000_000, 30_000_000], 1.5);
    let m = EnergyMeasurement::from_readings(&idle, &win, 10).unwrap();
    assert_eq!(m.domains[0].gross_j, 10.0);
    assert_eq!(m.domains[0].net_j, 0.0);
    assert!(m.domains[0].clamped);
    assert_eq!(m.package_net_j, 0.0);
    assert_eq!(m.package_j_per_img_net, 0.0);
    // Gross is still reported.
    assert_eq!(m.package_j_per_img_gross, 1.0);
    // DRAM exactly zero is not a clamp: 3 - 2 * 1.5 = 0.
    assert_eq!(m.dram_net_j, Some(0.0));
    assert!(!m.domains[2].clamped);
    assert!(m.clamped);
    let v = m.validity(1.0);
    assert!(!v.valid);
    assert_eq!(v.reasons, vec!["energy net clamped at 0".to_string()]);
}

#[test]
fn from_readings_errors() {
    let d = four_domains();
    let idle = reading(&d, &[1, 1, 1, 1], 1.0);
    let win = reading(&d, &[2, 2, 2, 2], 1.0);
    assert!(matches!(
        EnergyMeasurement::from_readings(&idle, &win, 0),
        Err(EnergyError::NoImages)
    ));
    let zero = reading(&d, &[1, 1, 1, 1], 0.0);
    assert!(matches!(
        EnergyMeasurement::from_readings(&zero, &win, 1),
        Err(EnergyError::InvalidConfig(_))
    ));
    let other = reading(&d[1..], &[1, 1, 1], 1.0);
    assert!(matches!(
        EnergyMeasurement::from_readings(&other, &win, 1),
        Err(EnergyError::DomainMismatch { .. })
    ));
    let no_pkg = reading(&d[1..], &[1, 1, 1], 1.0);
    assert!(matches!(
        EnergyMeasurement::from_readings(&no_pkg, &no_pkg, 1),
        Err(EnergyError::NoPackageDomain(_))
    ));
}

// --- end to end with a time-driven fake -----------------------------------------

/// Package 5 W + workload, core 3 W + workload (a part of the package),
/// DRAM 1 W + a tenth of the workload; the workload adds energy through a
/// shared counter.
struct PowerFake {
    t0: Instant,
    work_uj: Arc<AtomicU64>,
}

impl EnergyCounter for PowerFake {
    fn domains(&self) -> Vec<DomainInfo> {
        let m = 1_000_000_000_000;
        vec![
            pkg("package-0", m),
            DomainInfo::new("package-0/core", DomainKind::Core, m),
            DomainInfo::new("package-0/dram", DomainKind::Dram, m),
        ]
    }
    fn read_uj(&mut self) -> Result<Vec<u64>, EnergyError> {
        let us = self.t0.elapsed().as_micros() as u64;
        let w = self.work_uj.load(Ordering::SeqCst);
        Ok(vec![5 * us + w, 3 * us + w, us + w / 10])
    }
}

#[test]
fn measure_energy_subtracts_idle_and_counts_images() {
    let work = Arc::new(AtomicU64::new(0));
    let mut fake = PowerFake {
        t0: Instant::now(),
        work_uj: Arc::clone(&work),
    };
    let mut calls = 0u64;
    let cfg = EnergyConfig {
        idle_s: 0.15,
        min_window_s: 0.15,
    };
    let m = measure_energy(&mut fake, &cfg, || -> Result<usize, String> {
        std::thread::sleep(Duration::from_millis(10));
        work.fetch_add(500_000, Ordering::SeqCst);
        calls += 1;
        Ok(4)
    })
    .unwrap();
    let work_j = calls as f64 * 0.5;
    // Timing jitter between the fake's clock and the sampler's timestamps
    // (a few ms at 5 W) bounds the agreement; forgetting the idle
    // subtraction (0.75 J) or adding core into package (> 1 J) is far
    // outside it.
    let tol = 0.02 * work_j + 0.03;
    assert!(calls >= 3, "calls {calls}");
    assert_eq!(m.images as u64, 4 * calls);
    assert!(m.window_s >= 0.15 && m.idle_s >= 0.15);
    assert!(
        (m.domains[0].idle_w - 5.0).abs() < 0.25,
        "{:?}",
        m.domains[0]
    );
    assert!((m.package_net_j - work_j).abs() < tol, "{m:?}");
    assert!((m.package_gross_j - (work_j + 5.0 * m.window_s)).abs() < tol);
    // Core is a part of the package and is not added to it.
    assert!((m.domains[1].net_j - work_j).abs() < tol);
    let dram = m.dram_net_j.unwrap();
    assert!((dram - 0.1 * work_j).abs() < tol, "dram {dram}");
    assert!((m.package_j_per_img_net - 0.125).abs() < tol / m.images as f64);
    assert!(!m.clamped && m.wraps == 0 && !m.possible_missed_wrap);
}

#[test]
fn measure_energy_returns_workload_error_and_checks_config() {
    let mut fake = FakeCounter::stepping(vec![pkg("package-0", 1_000_000)], vec![0], vec![7]);
    let cfg = EnergyConfig {
        idle_s: 0.01,
        min_window_s: 10.0,
    };
    let mut k = 0;
    let r = measure_energy(&mut fake, &cfg, || {
        k += 1;
        if k == 3 {
            Err("model failed")
        } else {
            Ok(1)
        }
    });
    assert!(matches!(
        r,
        Err(EnergyMeasureError::Workload("model failed"))
    ));
    let bad = EnergyConfig {
        idle_s: 0.0,
        min_window_s: 1.0,
    };
    let r = measure_energy(&mut fake, &bad, || Ok::<usize, ()>(1));
    assert!(matches!(
        r,
        Err(EnergyMeasureError::Counter(EnergyError::InvalidConfig(_)))
    ));
}

// --- probing and the sysfs reader ---------------------------------------------------

#[test]
fn probe_on_this_machine_is_available_or_says_why() {
    match probe() {
        EnergySource::Available(c, _) => assert!(!c.domains().is_empty()),
        EnergySource::Unavailable(r) => {
            assert!(r.starts_with("unavailable: "), "{r}");
            if !Path::new(DEFAULT_POWERCAP_ROOT).exists() {
                assert!(r.starts_with("unavailable: no powercap"), "{r}");
            }
        }
    }
}

fn write(dir: &Path, file: &str, content: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(file), content).unwrap();
}

fn zone(root: &Path, id: &str, name: &str, energy: u64, max: u64) {
    let d = root.join(id);
    write(&d, "name", &format!("{name}\n"));
    write(&d, "energy_uj", &format!("{energy}\n"));
    write(&d, "max_energy_range_uj", &format!("{max}\n"));
}

#[test]
fn fake_sysfs_is_read_with_names_kinds_and_ranges() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::create_dir_all(root.join("intel-rapl")).unwrap(); // control type, ignored
    zone(root, "intel-rapl:0", "package-0", 1000, 262_143_328_850);
    zone(root, "intel-rapl:0:0", "core", 400, 262_143_328_850);
    zone(root, "intel-rapl:0:1", "dram", 50, 65_712_999_613);
    zone(root, "intel-rapl:1", "psys", 7000, 262_143_328_850);
    zone(
        root,
        "intel-rapl-mmio:0",
        "package-0",
        1001,
        262_143_328_850,
    ); // duplicate, skipped
    let src = probe_at(root);
    assert!(src.is_available(), "{:?}", src.reason());
    assert_eq!(src.description(), "rapl");
    let EnergySource::Available(mut c, _) = src else {
        unreachable!()
    };
    let names: Vec<_> = c
        .domains()
        .iter()
        .map(|d| (d.name.clone(), d.kind))
        .collect();
    assert_eq!(
        names,
        vec![
            ("package-0".to_string(), DomainKind::Package),
            ("package-0/core".to_string(), DomainKind::Core),
            ("package-0/dram".to_string(), DomainKind::Dram),
            ("psys".to_string(), DomainKind::Psys),
        ]
    );
    assert_eq!(c.domains()[2].max_energy_range_uj, 65_712_999_613);
    assert_eq!(c.read_uj().unwrap(), vec![1000, 400, 50, 7000]);
    write(&root.join("intel-rapl:0"), "energy_uj", "1500\n");
    assert_eq!(c.read_uj().unwrap()[0], 1500);
    write(&root.join("intel-rapl:0"), "energy_uj", "garbage\n");
    assert!(matches!(c.read_uj(), Err(EnergyError::Parse { .. })));
}

#[test]
fn unavailable_reasons() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("powercap");
    let r = probe_at(&missing);
    assert!(
        r.reason()
            .unwrap()
            .starts_with("unavailable: no powercap ("),
        "{r:?}"
    );
    assert!(r.domains().is_empty());

    std::fs::create_dir_all(&missing).unwrap();
    std::fs::create_dir_all(missing.join("intel-rapl")).unwrap();
    let r = probe_at(&missing).description();
    assert!(r.starts_with("unavailable: no RAPL domains"), "{r}");

    let d = missing.join("intel-rapl:0");
    write(&d, "name", "package-0\n");
    write(&d, "energy_uj", "5\n");
    let r = probe_at(&missing).description();
    assert!(
        r.starts_with("unavailable: max_energy_range_uj unreadable"),
        "{r}"
    );
    write(&d, "max_energy_range_uj", "0\n");
    let r = probe_at(&missing).description();
    assert!(
        r.starts_with("unavailable: max_energy_range_uj unreadable"),
        "{r}"
    );
    write(&d, "max_energy_range_uj", "1000\n");
    assert!(probe_at(&missing).is_available());

    // Permission errors map to the documented reason (root can read any file,
    // so the classification is tested directly).
    let e = EnergyError::from_io(
        d.join("energy_uj"),
        std::io::Error::from(std::io::ErrorKind::PermissionDenied),
    );
    let r = EnergySource::from(Err(e)).description();
    assert!(r.starts_with("unavailable: permission denied ("), "{r}");
    assert!(r.contains("CVE-2020-8694"));
    let other = EnergyError::from_io("x", std::io::Error::from(std::io::ErrorKind::NotFound));
    assert!(matches!(other, EnergyError::Io { .. }));
}

#[cfg(unix)]
#[test]
fn unreadable_energy_file_is_permission_denied_when_not_root() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    zone(root, "intel-rapl:0", "package-0", 1, 1000);
    let f = root.join("intel-rapl:0").join("energy_uj");
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o200)).unwrap();
    if std::fs::read(&f).is_ok() {
        return; // running as root: permissions are not enforced
    }
    let r = probe_at(root).description();
    assert!(r.starts_with("unavailable: permission denied"), "{r}");
}

#[test]
fn domain_kind_from_zone_names() {
    assert_eq!(DomainKind::from_zone_name("package-0"), DomainKind::Package);
    assert_eq!(
        DomainKind::from_zone_name("package-12"),
        DomainKind::Package
    );
    assert_eq!(DomainKind::from_zone_name("dram"), DomainKind::Dram);
    assert_eq!(DomainKind::from_zone_name("core"), DomainKind::Core);
    assert_eq!(DomainKind::from_zone_name("uncore"), DomainKind::Uncore);
    assert_eq!(DomainKind::from_zone_name("psys"), DomainKind::Psys);
    assert_eq!(DomainKind::from_zone_name("mmio"), DomainKind::Other);
}

#[test]
fn workload_panic_does_not_deadlock_the_sampler() {
    let mut fake = FakeCounter::stepping(vec![pkg("package-0", 1_000_000)], vec![0], vec![7]);
    let cfg = EnergyConfig {
        idle_s: 0.01,
        min_window_s: 10.0,
    };
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        measure_energy(&mut fake, &cfg, || -> Result<usize, ()> {
            panic!("workload panic")
        })
    }));
    assert!(r.is_err());
}

/// A [`ZoneSource`] over shared values: what a RAPL library would report.
#[derive(Debug)]
struct FakeZones {
    zones: Vec<LibraryZone>,
    values: Arc<std::sync::Mutex<Vec<u64>>>,
    fail: bool,
}

impl ZoneSource for FakeZones {
    fn zones(&self) -> Vec<LibraryZone> {
        self.zones.clone()
    }
    fn read_raw_uj(&mut self) -> Result<Vec<u64>, String> {
        if self.fail {
            return Err("counter file vanished".into());
        }
        Ok(self.values.lock().unwrap().clone())
    }
    fn name(&self) -> &'static str {
        "fake-library"
    }
}

fn lib_zone(package: &str, sub: Option<&str>, max: u64) -> LibraryZone {
    LibraryZone {
        package: package.into(),
        subzone: sub.map(Into::into),
        max_energy_range_uj: max,
    }
}

/// The zones of `fake_sysfs_is_read_with_names_kinds_and_ranges`, as a library lists
/// them, with the sysfs tree they mirror.
fn mirrored_backends(root: &Path) -> (RaplCounter, FakeZones, Arc<std::sync::Mutex<Vec<u64>>>) {
    let big = 262_143_328_850;
    zone(root, "intel-rapl:0", "package-0", 1000, big);
    zone(root, "intel-rapl:0:0", "core", 400, big);
    zone(root, "intel-rapl:0:1", "dram", 50, 65_712_999_613);
    zone(root, "intel-rapl:1", "psys", 7000, big);
    let values = Arc::new(std::sync::Mutex::new(vec![1000, 400, 50, 7000]));
    let fake = FakeZones {
        zones: vec![
            lib_zone("package-0", None, big),
            lib_zone("package-0", Some("core"), big),
            lib_zone("package-0", Some("dram"), 65_712_999_613),
            lib_zone("psys", None, big),
        ],
        values: Arc::clone(&values),
        fail: false,
    };
    (RaplCounter::open_at(root).unwrap(), fake, values)
}

#[test]
fn the_library_backend_names_domains_as_the_sysfs_reader_does() {
    let tmp = tempfile::tempdir().unwrap();
    let (sysfs, fake, _) = mirrored_backends(tmp.path());
    let lib = LibraryCounter::new(fake).unwrap();
    assert_eq!(lib.domains(), sysfs.domains());
    assert_eq!(lib.library(), "fake-library");
}

/// Runs `measure_energy` on `counter` with a workload that adds 0.5 J of package
/// energy (and 0.05 J of DRAM) per call through `add`, and checks what every backend
/// must report: no idle power (the counters do not move while idle), the work as net
/// energy, DRAM apart, core never added into the package, and a wrap accounted.
fn check_backend(counter: &mut (dyn EnergyCounter + Send), mut add: impl FnMut(u64, u64)) {
    let cfg = EnergyConfig {
        idle_s: 0.05,
        min_window_s: 0.05,
    };
    let mut calls = 0u64;
    let m = measure_energy(counter, &cfg, || -> Result<usize, String> {
        add(500_000, 50_000);
        calls += 1;
        std::thread::sleep(Duration::from_millis(5));
        Ok(2)
    })
    .unwrap();
    let work_j = 0.5 * calls as f64;
    assert_eq!(m.images as u64, 2 * calls);
    assert!((m.package_gross_j - work_j).abs() < 1e-9, "{m:?}");
    assert!((m.package_net_j - work_j).abs() < 1e-9);
    assert!((m.dram_net_j.unwrap() - 0.1 * work_j).abs() < 1e-9);
    assert_eq!(m.package_idle_w, 0.0);
    assert!(
        m.wraps >= 1,
        "the DRAM counter wraps during the window: {m:?}"
    );
}

#[test]
fn measure_energy_agrees_through_both_backends() {
    // DRAM's range is small, so that it wraps within the window on both backends.
    let dram_max = 200_000u64;
    let bump = |v: &mut [u64], pkg: u64, dram: u64| {
        v[0] += pkg;
        v[1] += pkg / 2;
        v[2] = (v[2] + dram) % (dram_max + 1);
    };

    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    zone(root, "intel-rapl:0", "package-0", 1000, 1 << 40);
    zone(root, "intel-rapl:0:0", "core", 400, 1 << 40);
    zone(root, "intel-rapl:0:1", "dram", 50, dram_max);
    let mut sysfs: Box<dyn EnergyCounter + Send> = Box::new(RaplCounter::open_at(root).unwrap());
    let mut files = vec![1000u64, 400, 50];
    check_backend(sysfs.as_mut(), |p, d| {
        bump(&mut files, p, d);
        for (dir, v) in ["intel-rapl:0", "intel-rapl:0:0", "intel-rapl:0:1"]
            .iter()
            .zip(&files)
        {
            // Renamed into place: the sampler thread never sees a half-written file.
            let tmp = root.join(dir).join("energy_uj.tmp");
            std::fs::write(&tmp, format!("{v}\n")).unwrap();
            std::fs::rename(&tmp, root.join(dir).join("energy_uj")).unwrap();
        }
    });

    let values = Arc::new(std::sync::Mutex::new(vec![1000u64, 400, 50]));
    let fake = FakeZones {
        zones: vec![
            lib_zone("package-0", None, 1 << 40),
            lib_zone("package-0", Some("core"), 1 << 40),
            lib_zone("package-0", Some("dram"), dram_max),
        ],
        values: Arc::clone(&values),
        fail: false,
    };
    let mut lib: Box<dyn EnergyCounter + Send> = Box::new(LibraryCounter::new(fake).unwrap());
    check_backend(lib.as_mut(), |p, d| bump(&mut values.lock().unwrap(), p, d));
}

#[test]
fn library_backend_errors_are_typed_never_panics() {
    let none = FakeZones {
        zones: vec![],
        values: Arc::default(),
        fail: false,
    };
    let e = LibraryCounter::new(none).unwrap_err();
    assert!(e.to_string().contains("no RAPL zones"), "{e}");
    let zero = FakeZones {
        zones: vec![lib_zone("package-0", None, 0)],
        values: Arc::new(std::sync::Mutex::new(vec![1])),
        fail: false,
    };
    assert!(matches!(
        LibraryCounter::new(zero),
        Err(EnergyError::ZeroRange { .. })
    ));
    let short = FakeZones {
        zones: vec![lib_zone("package-0", None, 9), lib_zone("psys", None, 9)],
        values: Arc::new(std::sync::Mutex::new(vec![1])),
        fail: false,
    };
    assert!(matches!(
        LibraryCounter::new(short),
        Err(EnergyError::DomainCount {
            expected: 2,
            got: 1
        })
    ));
    let tmp = tempfile::tempdir().unwrap();
    let (_, mut fake, _) = mirrored_backends(tmp.path());
    fake.fail = false;
    let mut c = LibraryCounter::new(fake).unwrap();
    c.source_mut().fail = true;
    let e = c.read_uj().unwrap_err();
    assert_eq!(e.to_string(), "fake-library: counter file vanished");
    // Through the probe's wording: NULL with a reason.
    let src = EnergySource::from_counter(Err::<RaplCounter, _>(e), "rapl-energy");
    assert_eq!(
        src.description(),
        "unavailable: fake-library: counter file vanished"
    );
}

#[test]
fn backends_parse_and_say_how_to_build_a_missing_one() {
    assert_eq!(
        "sysfs".parse::<EnergyBackend>().unwrap(),
        EnergyBackend::Sysfs
    );
    let e = "bogus".parse::<EnergyBackend>().unwrap_err().to_string();
    assert!(e.contains("sysfs, rapl-energy"), "{e}");
    match "rapl-energy".parse::<EnergyBackend>() {
        Ok(b) => {
            assert!(EnergyBackend::RaplEnergy.is_built());
            assert_eq!(b.name(), "rapl-energy");
            // Available on a machine with readable RAPL, otherwise NULL with a reason.
            let src = probe_with(b);
            match src.reason() {
                None => assert_eq!(src.description(), "rapl-energy"),
                Some(r) => assert!(r.starts_with("unavailable: "), "{r}"),
            }
        }
        Err(e) => {
            assert!(!EnergyBackend::RaplEnergy.is_built());
            assert!(e.to_string().contains("--features rapl-energy"), "{e}");
            let r = probe_with(EnergyBackend::RaplEnergy).description();
            assert!(
                r.starts_with("unavailable: ") && r.contains("not built"),
                "{r}"
            );
        }
    }
    assert_eq!(EnergyBackend::built()[0], EnergyBackend::Sysfs);
}
