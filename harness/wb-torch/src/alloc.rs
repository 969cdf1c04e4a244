//! glibc allocator settings for libtorch's CPU tensors.
//!
//! libtorch allocates every activation with `posix_memalign`. With glibc's defaults a
//! batch of 500 CIFAR images produces activations of 8–32 MB, which glibc either serves
//! with a fresh `mmap` or trims back to the kernel when freed; either way the next
//! forward pass touches brand-new pages and the kernel zeroes them on the first write.
//! Measured on a 2-core VM (ResNet20, batch 500): 375,000 minor page faults per second
//! and 40 % of the CPU time in the kernel. Keeping freed memory in the heap instead
//! removes almost all of them (24 M → 0.5 M faults for the same benchmark) and makes
//! the evaluation ~1.4× faster.
//!
//! [`tune_allocator`] sets, once per process:
//!
//! - `M_MMAP_THRESHOLD` = 32 MiB (glibc's maximum): blocks up to 32 MiB come from the heap,
//! - `M_TRIM_THRESHOLD` = 1 GiB and `M_TOP_PAD` = 64 MiB: free memory at the top of the
//!   heap is kept for the next pass instead of being returned at every `free`.
//!
//! Blocks larger than 32 MiB (batches above ~500 CIFAR images in the first stage of a
//! ResNet) are still `mmap`ed: glibc does not allow a higher threshold.
//!
//! Set `WEIGHTBENCH_MALLOC=default` to keep glibc's defaults (for A/B measurements).
//! The retained memory is given back by [`release_free_memory`], which the runner calls
//! before it resets the peak-RSS counter of a cell, so per-cell peaks stay the cell's own.
//! On other platforms (musl, macOS, Windows) both functions do nothing.
//!
//! Besides the inference-mode shim, this is the workspace's only `unsafe` code outside
//! tests (a counting allocator measures the container reader's allocations): two libc
//! calls that take plain integers.
#![allow(unsafe_code)]

use std::sync::OnceLock;

/// The environment variable that turns the tuning off (`default`).
pub const MALLOC_ENV: &str = "WEIGHTBENCH_MALLOC";

const MMAP_THRESHOLD: i32 = 32 << 20;
const TRIM_THRESHOLD: i32 = 1 << 30;
const TOP_PAD: i32 = 64 << 20;

/// Applies the allocator settings (once per process) and returns what is in effect, in
/// words, for the environment manifest: e.g. `glibc: mmap_threshold=32MiB
/// trim_threshold=1024MiB top_pad=64MiB`, `glibc defaults (WEIGHTBENCH_MALLOC=default)`
/// or `platform allocator`.
pub fn tune_allocator() -> &'static str {
    static STATE: OnceLock<String> = OnceLock::new();
    STATE.get_or_init(apply).as_str()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn apply() -> String {
    if std::env::var(MALLOC_ENV).is_ok_and(|v| v == "default") {
        return format!("glibc defaults ({MALLOC_ENV}=default)");
    }
    // SAFETY: mallopt only changes allocator parameters; it is thread-safe in glibc and
    // valid at any time (memory allocated before keeps working).
    let ok = unsafe {
        [
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD),
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD),
            libc::mallopt(libc::M_TOP_PAD, TOP_PAD),
        ]
    };
    if ok.contains(&0) {
        // mallopt returns 0 on a rejected value; say so instead of claiming the setting.
        return format!("glibc: mallopt rejected a setting ({ok:?}); defaults may apply");
    }
    format!(
        "glibc: mmap_threshold={}MiB trim_threshold={}MiB top_pad={}MiB",
        MMAP_THRESHOLD >> 20,
        TRIM_THRESHOLD >> 20,
        TOP_PAD >> 20
    )
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn apply() -> String {
    "platform allocator".to_string()
}

/// Returns free heap memory to the kernel (`malloc_trim(0)`), so that the resident size
/// reflects live memory only. Cheap; call it between cells, not inside a timed loop.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuning_is_applied_once_and_described() {
        let a = tune_allocator();
        let b = tune_allocator();
        assert!(std::ptr::eq(a, b), "applied twice");
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        if std::env::var(MALLOC_ENV).is_err() {
            assert_eq!(
                a,
                "glibc: mmap_threshold=32MiB trim_threshold=1024MiB top_pad=64MiB"
            );
        }
        release_free_memory();
    }

    #[test]
    fn large_blocks_still_work_after_tuning() {
        tune_allocator();
        // Below and above the 32 MiB threshold: heap and mmap paths.
        for mib in [1usize, 31, 33] {
            let v = vec![1u8; mib << 20];
            assert_eq!(v.iter().map(|&b| b as usize).sum::<usize>(), mib << 20);
        }
        release_free_memory();
    }
}
