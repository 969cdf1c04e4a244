//! The container reader against damaged and hostile files: a bounded, seeded mutation
//! fuzzer over real containers (`tests/corpus/`) and synthetic ones covering every
//! encoding kind and container version, plus the hand-made inputs that once crashed it.
//!
//! Every mutated file is resealed with a fresh sha256 trailer (anyone can recompute
//! it), so the parser itself is exercised, not only the checksum. The promise tested:
//! no panic, no abort, and no single allocation above the stated bound
//! ([`ReadLimits`]: `4 · max_values` bytes for decoded values, plus 48 bytes per byte of
//! the file for the reader's bookkeeping, plus 64 KiB).
//!
//! `WB_FUZZ_SECONDS` (default 20) bounds the run; the mutations are a fixed sequence
//! from one seed, so a failure names the iteration that reproduces it.
// The allocation bound is measured by a counting global allocator: the only way to see
// every request, including those inside `Vec` and `String`. It forwards to the system
// allocator unchanged; this test binary is its only user.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
mod common;

use common::{synthetic, tensor};
use wb_core::container::{self, ReadLimits};
use wb_core::rng::splitmix64;
use wb_core::{Artifact, CoreError, Encoding, Tensor};

/// The system allocator, recording the largest single request.
struct Tracking;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

/// The allocator's record is process-wide: tests that read it take turns.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Tracking = Tracking;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// Replaces the trailer with the checksum of everything before it (files shorter than
/// a trailer are left as they are).
fn reseal(mut b: Vec<u8>) -> Vec<u8> {
    if b.len() >= 32 {
        let n = b.len() - 32;
        let digest = <sha2::Sha256 as sha2::Digest>::digest(&b[..n]);
        b[n..].copy_from_slice(&digest);
    }
    b
}

/// Seed files: the synthetic artifacts and every real container in `tests/corpus/`.
fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = synthetic()
        .iter()
        .enumerate()
        .map(|(i, a)| (format!("synthetic-{i}"), container::write(a).unwrap()))
        .collect();
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        out.push((name, std::fs::read(&f).unwrap()));
    }
    out
}

/// Values held by the artifact in `bytes` (which must read).
fn total_values(bytes: &[u8]) -> u64 {
    let a = container::read(bytes).unwrap();
    a.tensors.iter().map(|t| t.encoding.len() as u64).sum()
}

/// Interesting 32-bit values for length and count fields.
const WIDE: [u32; 8] = [0, 1, 2, 255, 0xFFFF, 0x8000_0000, u32::MAX, 0x0100_0000];

/// Applies one to four seeded mutations.
fn mutate(src: &[u8], state: &mut u64) -> Vec<u8> {
    let mut b = src.to_vec();
    let ops = 1 + splitmix64(state) % 4;
    for _ in 0..ops {
        if b.is_empty() {
            break;
        }
        let len = b.len();
        // Headers hold most of the lengths: aim there half the time.
        let at = if splitmix64(state) % 2 == 0 {
            (splitmix64(state) as usize) % len.min(256)
        } else {
            (splitmix64(state) as usize) % len
        };
        match splitmix64(state) % 7 {
            0 => b[at] ^= 1 << (splitmix64(state) % 8),
            1 => b[at] = [0u8, 1, 0x7F, 0x80, 0xFF][(splitmix64(state) % 5) as usize],
            2 => {
                let v = WIDE[(splitmix64(state) % WIDE.len() as u64) as usize].to_le_bytes();
                let end = (at + 4).min(len);
                b[at..end].copy_from_slice(&v[..end - at]);
            }
            3 => b.truncate(at),
            4 => {
                let n = (splitmix64(state) as usize % 64).min(len - at);
                b.drain(at..at + n);
            }
            5 => {
                let n = splitmix64(state) as usize % 64;
                let extra: Vec<u8> = (0..n).map(|_| splitmix64(state) as u8).collect();
                b.splice(at..at, extra);
            }
            _ => {
                let n = (splitmix64(state) as usize % 64).min(len - at);
                let copy = b[at..at + n].to_vec();
                b.splice(at..at, copy);
            }
        }
    }
    reseal(b)
}

/// Reads (and, when that succeeds, decodes) `bytes` under `limits`; any outcome but a
/// panic is fine, errors must be the container's own.
fn exercise(bytes: &[u8], limits: ReadLimits) -> Result<(), String> {
    match container::read_with_limits(bytes, limits) {
        Ok(a) => {
            let _ = a.decode();
            let _ = a.size();
            Ok(())
        }
        Err(CoreError::MalformedContainer { .. } | CoreError::InvalidEncoding { .. }) => Ok(()),
        Err(e) => Err(format!("unexpected error kind: {e}")),
    }
}

#[test]
fn mutated_containers_never_crash_or_overallocate() {
    let _turn = serial();
    let seeds = seeds();
    assert!(
        seeds.len() >= 5,
        "corpus missing: {}",
        corpus_dir().display()
    );
    let budget = Duration::from_secs(
        std::env::var("WB_FUZZ_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20),
    );
    let started = Instant::now();
    let mut state = 0x5EED_u64;
    let (mut iterations, mut read_ok) = (0u64, 0u64);
    let mut worst = 0.0f64;
    while started.elapsed() < budget && iterations < 1_000_000 {
        let (name, src) = &seeds[(iterations % seeds.len() as u64) as usize];
        // A bound proportional to the seed's own values: a mutated shape may not make
        // the reader allocate more than a few times what the real file holds.
        let limits = ReadLimits {
            max_values: 4 * total_values(src) + 1024,
        };
        let bytes = mutate(src, &mut state);
        LARGEST.store(0, Ordering::Relaxed);
        let outcome = exercise(&bytes, limits);
        let largest = LARGEST.load(Ordering::Relaxed);
        let bound = 4 * limits.max_values as usize + 48 * bytes.len() + (64 << 10);
        assert!(
            outcome.is_ok(),
            "iteration {iterations} ({name}): {}",
            outcome.unwrap_err()
        );
        assert!(
            largest <= bound,
            "iteration {iterations} ({name}): an allocation of {largest} bytes exceeds the bound {bound}"
        );
        worst = worst.max(largest as f64 / bound as f64);
        read_ok += u64::from(container::read_with_limits(&bytes, limits).is_ok());
        iterations += 1;
    }
    eprintln!(
        "{iterations} mutated containers in {:.1} s ({read_ok} still read); largest allocation {:.0} % of its bound",
        started.elapsed().as_secs_f64(),
        100.0 * worst
    );
    assert!(iterations >= 1000, "only {iterations} mutations ran");
}

/// A one-tensor container whose tensor has the given shape bytes patched in, resealed.
fn with_shape(a: &Artifact, dims: &[u32]) -> Vec<u8> {
    let mut b = container::write(a).unwrap();
    // Version-1 header (16 B), name length (2 B), the name, ndim (1 B), then the dims.
    let name_len = a.tensors[0].name.len();
    let ndim_at = 16 + 2 + name_len;
    assert_eq!(b[ndim_at] as usize, dims.len(), "patch keeps the rank");
    for (i, d) in dims.iter().enumerate() {
        let at = ndim_at + 1 + 4 * i;
        b[at..at + 4].copy_from_slice(&d.to_le_bytes());
    }
    reseal(b)
}

/// Sets the index width of the one-tensor codebook container `b` (name `w`, two dims)
/// to 32 bits, resealed.
fn at_32_bits(mut b: Vec<u8>) -> Vec<u8> {
    // Header 16, name length 2, name 1, ndim 1, two dims 8, flags 1: the kind byte.
    let kind_at = 16 + 2 + 1 + 1 + 8 + 1;
    assert_eq!(b[kind_at], 3, "a local codebook encoding");
    // Kind 3: ref u8, k u32, then the index width.
    b[kind_at + 6] = 32;
    reseal(b)
}

fn one(name: &str, shape: Vec<usize>, encoding: Encoding) -> Artifact {
    Artifact {
        tensors: vec![tensor(name, shape, encoding)],
        ..Default::default()
    }
}

/// The shapes of the crashes found before the reader had a values bound: a 0-bit index
/// stream (one-entry codebook, or a Huffman code with a single symbol) holds any number
/// of values in no bytes, and `n · bits` overflowed at 32 bits.
#[test]
fn crafted_inputs_are_refused_without_allocating() {
    let _turn = serial();
    let zero_bits = one(
        "w",
        vec![2, 2],
        Encoding::codebook_local(vec![0.5], vec![0; 4]),
    );
    let lone_symbol = one(
        "w",
        vec![2, 2],
        Encoding::huffman_local(vec![0.5], vec![0; 4]).unwrap(),
    );
    let wide = one(
        "w",
        vec![1, 1],
        Encoding::codebook_local(vec![0.5, 1.0], vec![1]),
    );
    let int8 = one(
        "w",
        vec![1, 2],
        Encoding::Int8PerChannel {
            scales: vec![1.0],
            q: vec![1, 2],
        },
    );
    let cases = [
        (
            "0-bit indices, 2^64 values",
            with_shape(&zero_bits, &[u32::MAX, u32::MAX]),
        ),
        (
            "0-bit indices, 2^40 values",
            with_shape(&zero_bits, &[1 << 20, 1 << 20]),
        ),
        (
            "one Huffman symbol, 2^62 values",
            with_shape(&lone_symbol, &[1 << 31, 1 << 31]),
        ),
        (
            "32-bit indices, n·bits overflows",
            at_32_bits(with_shape(&wide, &[1 << 30, 1 << 30])),
        ),
        ("int8, 2^63 values", with_shape(&int8, &[1 << 31, 1 << 31])),
    ];
    for (what, bytes) in cases {
        assert!(bytes.len() < 100, "{what}: {} bytes", bytes.len());
        LARGEST.store(0, Ordering::Relaxed);
        let e = container::read(&bytes).expect_err(what);
        let largest = LARGEST.load(Ordering::Relaxed);
        assert!(
            matches!(e, CoreError::MalformedContainer { .. }),
            "{what}: {e}"
        );
        assert!(largest < 1 << 20, "{what}: allocated {largest} bytes");
    }
}

/// Within the default bound a 0-bit tensor still reads: the bound is a budget, not a
/// ban on cheap encodings.
#[test]
fn default_limit_admits_cheap_encodings_and_states_its_bound() {
    let _turn = serial();
    let zero_bits = one(
        "w",
        vec![2, 2],
        Encoding::codebook_local(vec![0.5], vec![0; 4]),
    );
    let bytes = with_shape(&zero_bits, &[1 << 10, 1 << 10]);
    let a = container::read(&bytes).unwrap();
    assert_eq!(a.tensors[0].encoding.len(), 1 << 20);
    let limits = ReadLimits::for_input(bytes.len());
    assert_eq!(
        limits.max_values,
        ReadLimits::BASE_VALUES + ReadLimits::VALUES_PER_BYTE * bytes.len() as u64
    );
    let tight = ReadLimits {
        max_values: (1 << 20) - 1,
    };
    let e = container::read_with_limits(&bytes, tight).unwrap_err();
    assert!(
        e.to_string()
            .contains("exceed the reader's remaining budget"),
        "{e}"
    );
}

/// Real weights survive the trip through the corpus files: they are containers the
/// harness wrote, and they decode to finite values of the model's size.
#[test]
fn corpus_files_are_real_containers() {
    let _turn = serial();
    for (name, bytes) in seeds().into_iter().filter(|(n, _)| n.ends_with(".wbc")) {
        let w = container::read(&bytes).unwrap().decode().unwrap();
        assert!(w.total_params() > 70_000, "{name}: {}", w.total_params());
        assert!(w
            .tensors
            .iter()
            .all(|t: &Tensor| t.data.iter().all(|v| v.is_finite())));
    }
}
