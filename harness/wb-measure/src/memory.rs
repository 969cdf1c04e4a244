//! Resident memory of the current process, from `/proc/self/status` (Linux).
//!
//! Peak RSS (`VmHWM`) is per process. For per-cell peaks, run each cell in a
//! fresh process, or call [`reset_peak`] before the cell and check that it
//! returned `true`.

use std::fs;

const STATUS: &str = "/proc/self/status";
const CLEAR_REFS: &str = "/proc/self/clear_refs";

/// Peak resident set size ("high water mark", `VmHWM`) in bytes, or `None`
/// where `/proc/self/status` is unavailable (non-Linux).
pub fn peak_rss_bytes() -> Option<u64> {
    status_field_bytes("VmHWM")
}

/// Current resident set size (`VmRSS`) in bytes, or `None` where
/// `/proc/self/status` is unavailable.
pub fn current_rss_bytes() -> Option<u64> {
    status_field_bytes("VmRSS")
}

/// Reset the peak RSS to the current RSS by writing `5` to
/// `/proc/self/clear_refs` (Linux ≥ 4.0). Returns whether the write
/// succeeded; when it did not, [`peak_rss_bytes`] keeps the whole-process
/// peak.
pub fn reset_peak() -> bool {
    fs::write(CLEAR_REFS, b"5").is_ok()
}

fn status_field_bytes(key: &str) -> Option<u64> {
    let text = fs::read_to_string(STATUS).ok()?;
    parse_status_kib(&text, key).map(|kib| kib * 1024)
}

/// Parse a `Key:   1234 kB` line of a `/proc/<pid>/status` text and return the
/// value in KiB (the kernel's "kB" means 1024 bytes).
pub fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let (k, rest) = line.split_once(':')?;
        if k.trim() != key {
            return None;
        }
        let mut parts = rest.split_whitespace();
        let value: u64 = parts.next()?.parse().ok()?;
        match parts.next() {
            Some("kB") | None => Some(value),
            Some(_) => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_lines() {
        let text = "Name:\tcat\nVmPeak:\t    3060 kB\nVmHWM:\t    1748 kB\nVmRSS:\t    1700 kB\n";
        assert_eq!(parse_status_kib(text, "VmHWM"), Some(1748));
        assert_eq!(parse_status_kib(text, "VmRSS"), Some(1700));
        assert_eq!(parse_status_kib(text, "VmSwap"), None);
        assert_eq!(parse_status_kib(text, "Name"), None);
        assert_eq!(parse_status_kib("VmHWM: 12 MB\n", "VmHWM"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn peak_is_at_least_current_and_tracks_allocation() {
        let cur = current_rss_bytes().expect("VmRSS on Linux");
        let peak = peak_rss_bytes().expect("VmHWM on Linux");
        assert!(peak >= cur, "peak {peak} < current {cur}");
        assert!(cur > 0);

        // Touch 64 MiB: the peak must rise by most of it.
        let before = peak_rss_bytes().unwrap();
        let mut v = vec![0u8; 64 << 20];
        for i in (0..v.len()).step_by(4096) {
            v[i] = 1;
        }
        std::hint::black_box(&v);
        // Current first, then the peak: other test threads allocate meanwhile, and a
        // current RSS read after the peak could exceed it.
        let now = current_rss_bytes().unwrap();
        let after = peak_rss_bytes().unwrap();
        assert!(
            after >= before.max(now),
            "peak {after} < max({before}, {now})"
        );
        assert!(after >= 48 << 20, "peak {after} after touching 64 MiB");
        drop(v);

        if reset_peak() {
            let reset = peak_rss_bytes().unwrap();
            assert!(reset < after, "reset peak {reset} not below {after}");
        }
    }
}
