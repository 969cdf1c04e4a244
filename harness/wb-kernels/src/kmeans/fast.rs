//! Sort-based 1-D k-means: one sort of the data, then `O(k log n)` per
//! iteration.

use std::cmp::Ordering;

use rayon::prelude::*;

use super::{
    cluster_mean, cmp_to_midpoint, finish, linspace_init, lloyd, validate_data, KMeans1d,
    KMeans1dParams, PAR_THRESHOLD,
};
use crate::KernelError;

const KERNEL: &str = "kmeans_1d";

/// Exact 1-D k-means, fast implementation.
///
/// Semantics (initialisation, exact nearest-centroid assignment with ties to
/// the lowest index, empty clusters to `0.0`, stopping rule, labels against
/// the final centroids) are described in the [module documentation](super)
/// and are identical to [`kmeans_1d_naive`](super::kmeans_1d_naive).
///
/// # Algorithm
/// In one dimension, the values nearest to a centroid form a contiguous run
/// of the *sorted* data, bounded by the midpoints to the neighbouring
/// centroids. The data is therefore sorted once (an `O(n)` radix sort of
/// order-preserving `u32` keys; comparison sort below 2048 values) and
/// prefix sums of the sorted values are built (compensated `f64`, so range
/// sums lose no accuracy to large prefixes; stored once per 64 values, a
/// prefix elsewhere adds at most 63 values). Each iteration then sorts the
/// `k` centroids (equal values merged into the lowest index), finds the run
/// boundaries by binary search with the exact midpoint comparison, and takes
/// every cluster's sum and count from the prefix sums:
/// `O(k log k + k log n + 64 k)`, independent of `n` but for the `log n`.
/// For the final labels, the boundaries against the final centroids become
/// `f32` thresholds taken from the sorted data, and each value's label is a
/// binary search over them (`O(n log k)`, parallel for large inputs).
///
/// # Errors
/// * [`KernelError::InvalidParameter`] if `params` fails
///   [`KMeans1dParams::validate`];
/// * [`KernelError::EmptyInput`] if `data` is empty;
/// * [`KernelError::NonFiniteInput`] with the index of the first NaN or
///   infinity in `data`.
pub fn kmeans_1d(data: &[f32], params: &KMeans1dParams) -> Result<KMeans1d, KernelError> {
    params.validate_for(KERNEL)?;
    let (min, max) = validate_data(data, KERNEL)?;

    let sorted = sort_f32(data);
    let prefix = PrefixSums::new(&sorted);

    let mut codebook = Codebook::default();
    let outcome = lloyd(
        linspace_init(min, max, params.k),
        params,
        |current, next| {
            codebook.rebuild(current);
            next.fill(0.0);
            let mut start = 0;
            for (&rep, end) in codebook.reps.iter().zip(codebook.run_ends(&sorted)) {
                if end > start {
                    next[rep as usize] = cluster_mean(prefix.range_sum(start, end), end - start);
                }
                start = end;
            }
        },
    );

    codebook.rebuild(&outcome.centroids);
    let labels = codebook.assign_members(data, &sorted);
    Ok(finish(data, outcome, labels))
}

/// Knuth's TwoSum: `a + b = s + e` exactly.
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let b_virtual = s - a;
    let a_virtual = s - b_virtual;
    (s, (a - a_virtual) + (b - b_virtual))
}

/// Values per block of [`PrefixSums`].
const BLOCK: usize = 64;

/// Compensated prefix sums of the sorted values, stored once per block of
/// [`BLOCK`] values: `hi[b] + lo[b]` is `Σ values[..b * BLOCK]` to about 106
/// bits. A prefix at any position continues from the last stored block over
/// the (at most `BLOCK − 1`) values past it. Sampling keeps the table small (`n / 32` `f64`s):
/// a full-length table costs more in fresh-memory page faults than every
/// iteration together.
struct PrefixSums<'a> {
    values: &'a [f32],
    hi: Vec<f64>,
    lo: Vec<f64>,
}

impl<'a> PrefixSums<'a> {
    fn new(values: &'a [f32]) -> Self {
        let blocks = values.len() / BLOCK + 1;
        let mut hi = Vec::with_capacity(blocks);
        let mut lo = Vec::with_capacity(blocks);
        let (mut h, mut l) = (0.0f64, 0.0f64);
        hi.push(h);
        lo.push(l);
        for block in values.chunks_exact(BLOCK) {
            for &x in block {
                let (s, e) = two_sum(h, f64::from(x));
                h = s;
                l += e;
            }
            hi.push(h);
            lo.push(l);
        }
        Self { values, hi, lo }
    }

    /// `Σ values[..i]` as `(hi, lo)`: the stored block prefix continued
    /// with the same compensated steps over the values past it, so the
    /// result is bit-identical to a full-length table.
    fn prefix(&self, i: usize) -> (f64, f64) {
        let b = i / BLOCK;
        let (mut h, mut l) = (self.hi[b], self.lo[b]);
        for &x in &self.values[b * BLOCK..i] {
            let (s, e) = two_sum(h, f64::from(x));
            h = s;
            l += e;
        }
        (h, l)
    }

    /// `Σ values[start..end]`.
    fn range_sum(&self, start: usize, end: usize) -> f64 {
        let (h_end, l_end) = self.prefix(end);
        let (h_start, l_start) = self.prefix(start);
        (h_end - h_start) + (l_end - l_start)
    }
}

/// The boundary between two neighbouring distinct centroids `lo < hi`.
#[derive(Debug, Clone, Copy)]
struct Boundary {
    lo: f32,
    hi: f32,
    /// Whether a value exactly at the midpoint goes to `hi` (its centroid
    /// has the lower index).
    tie_up: bool,
}

impl Boundary {
    /// Whether `x` belongs to `hi` rather than `lo`; monotone in `x`.
    fn goes_upper(&self, x: f32) -> bool {
        match cmp_to_midpoint(x, self.lo, self.hi) {
            Ordering::Greater => true,
            Ordering::Less => false,
            Ordering::Equal => self.tie_up,
        }
    }
}

/// The centroids sorted by value, duplicates merged into the lowest index.
#[derive(Debug, Default)]
struct Codebook {
    order: Vec<u32>,
    /// Original index of each distinct value, in increasing value order.
    reps: Vec<u32>,
    /// `reps.len() - 1` boundaries between consecutive distinct values.
    boundaries: Vec<Boundary>,
}

impl Codebook {
    fn rebuild(&mut self, centroids: &[f32]) {
        let k = u32::try_from(centroids.len()).expect("k validated to fit in u32");
        self.order.clear();
        self.order.extend(0..k);
        self.order.sort_unstable_by(|&a, &b| {
            let (ca, cb) = (centroids[a as usize], centroids[b as usize]);
            ca.partial_cmp(&cb)
                .unwrap_or_else(|| ca.total_cmp(&cb))
                .then(a.cmp(&b))
        });
        self.reps.clear();
        self.boundaries.clear();
        let mut last: Option<(f32, u32)> = None;
        for &j in &self.order {
            let c = centroids[j as usize];
            match last {
                // Equal value (incl. -0.0 == 0.0): j has a higher index, it
                // can never win a value, its cluster stays empty.
                Some((v, _)) if v == c => {}
                Some((v, r)) => {
                    self.boundaries.push(Boundary {
                        lo: v,
                        hi: c,
                        tie_up: j < r,
                    });
                    self.reps.push(j);
                    last = Some((c, j));
                }
                None => {
                    self.reps.push(j);
                    last = Some((c, j));
                }
            }
        }
    }

    /// End (exclusive) in `sorted` of the run of values nearest to each
    /// distinct centroid, in increasing centroid order; the last end is
    /// `sorted.len()`. `O(m log n)` binary searches with the exact midpoint
    /// rule (the boundary predicate is monotone along the sorted data).
    fn run_ends<'a>(&'a self, sorted: &'a [f32]) -> impl Iterator<Item = usize> + 'a {
        let mut start = 0;
        self.boundaries
            .iter()
            .map(move |b| {
                start += sorted[start..].partition_point(|&x| !b.goes_upper(x));
                start
            })
            .chain(std::iter::once(sorted.len()))
    }

    /// Labels of the values of `data`, in order; `sorted` must hold exactly
    /// the values of `data`, sorted.
    ///
    /// Each boundary's run end `e` in `sorted` turns into the threshold
    /// `sorted[e]` (`+inf` past the end): since the boundary predicate is
    /// monotone and depends only on the value, a value of the data goes
    /// above a boundary exactly when it is `>=` that threshold. The label of
    /// a value is then a plain `f32` binary search over `m − 1` thresholds,
    /// without any exact-midpoint arithmetic. (This shortcut only holds for
    /// values present in `sorted`.)
    fn assign_members(&self, data: &[f32], sorted: &[f32]) -> Vec<u32> {
        let thresholds: Vec<f32> = self
            .run_ends(sorted)
            .take(self.boundaries.len())
            .map(|e| sorted.get(e).copied().unwrap_or(f32::INFINITY))
            .collect();
        let label_of = |&x: &f32| self.reps[thresholds.partition_point(|&t| t <= x)];
        if data.len() >= PAR_THRESHOLD {
            data.par_iter().map(label_of).collect()
        } else {
            data.iter().map(label_of).collect()
        }
    }
}

/// Length from which [`sort_f32`] uses a radix sort.
const RADIX_THRESHOLD: usize = 1 << 11;

/// Order-preserving map of an `f32` onto a `u32` (same order as
/// [`f32::total_cmp`]).
fn radix_key(x: f32) -> u32 {
    let bits = x.to_bits();
    if bits & 0x8000_0000 != 0 {
        !bits
    } else {
        bits | 0x8000_0000
    }
}

/// Inverse of [`radix_key`].
fn from_radix_key(key: u32) -> f32 {
    if key & 0x8000_0000 != 0 {
        f32::from_bits(key & 0x7fff_ffff)
    } else {
        f32::from_bits(!key)
    }
}

/// A sorted copy of `data` in [`f32::total_cmp`] order: comparison sort for
/// short inputs, otherwise an LSD radix sort of the order-preserving `u32`
/// keys (3 passes of 11 bits, `O(n)`, skipping passes where every key shares
/// the digit).
fn sort_f32(data: &[f32]) -> Vec<f32> {
    if data.len() < RADIX_THRESHOLD {
        let mut sorted = data.to_vec();
        sorted.sort_unstable_by(f32::total_cmp);
        return sorted;
    }
    const BITS: u32 = 11;
    const BUCKETS: usize = 1 << BITS;
    const SHIFTS: [u32; 3] = [0, BITS, 2 * BITS];
    let mut keys: Vec<u32> = data.iter().map(|&x| radix_key(x)).collect();
    let mut counts = vec![[0usize; BUCKETS]; SHIFTS.len()];
    for &key in &keys {
        for (c, &shift) in counts.iter_mut().zip(&SHIFTS) {
            c[((key >> shift) as usize) & (BUCKETS - 1)] += 1;
        }
    }
    let mut scratch = vec![0u32; keys.len()];
    for (c, &shift) in counts.iter_mut().zip(&SHIFTS) {
        if c.contains(&keys.len()) {
            continue;
        }
        let mut offset = 0;
        for slot in c.iter_mut() {
            let count = *slot;
            *slot = offset;
            offset += count;
        }
        for &key in &keys {
            let digit = ((key >> shift) as usize) & (BUCKETS - 1);
            scratch[c[digit]] = key;
            c[digit] += 1;
        }
        std::mem::swap(&mut keys, &mut scratch);
    }
    keys.into_iter().map(from_radix_key).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radix_sort_matches_total_cmp() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for n in [0, 1, 5, RADIX_THRESHOLD - 1, RADIX_THRESHOLD, 50_000] {
            // Random bit patterns (finite ones), plus signed zeros and repeats.
            let mut data: Vec<f32> = (0..n)
                .map(|_| f32::from_bits(next() as u32))
                .filter(|x| x.is_finite())
                .collect();
            data.extend([0.0, -0.0, 1.5, 1.5, -1.5, f32::MIN, f32::MAX]);
            let mut expected = data.clone();
            expected.sort_unstable_by(f32::total_cmp);
            let got = sort_f32(&data);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&expected), "n = {n}");
        }
        // Narrow data: some passes are skipped.
        let data: Vec<f32> = (0..10_000).map(|i| 1.0 + (i % 7) as f32).collect();
        let mut expected = data.clone();
        expected.sort_unstable_by(f32::total_cmp);
        assert_eq!(sort_f32(&data), expected);
    }

    #[test]
    fn block_prefix_sums_are_accurate_everywhere() {
        // Small values between huge ones of opposite signs: a plain prefix
        // would cancel them away.
        let mut values = vec![-1e30f32; 3];
        values.extend(std::iter::repeat_n(1e-3f32, 200));
        values.extend([1e30f32; 3]);
        let prefix = PrefixSums::new(&values);
        for start in [3usize, 5, 63, 64, 65, 100, 128] {
            for end in [start, start + 1, 130, 192, 203] {
                if end < start {
                    continue;
                }
                let exact = (end - start) as f64 * f64::from(1e-3f32);
                let got = prefix.range_sum(start, end);
                assert!(
                    (got - exact).abs() <= 1e-15 * exact.max(1e-300),
                    "[{start}, {end}): {got} vs {exact}"
                );
            }
        }
        assert_eq!(
            prefix.range_sum(0, values.len()),
            200.0 * f64::from(1e-3f32)
        );
        assert_eq!(prefix.range_sum(0, 3), 3.0 * f64::from(-1e30f32));
    }

    #[test]
    fn radix_key_roundtrip_and_order() {
        let values = [
            f32::MIN,
            -1.0,
            -f32::MIN_POSITIVE,
            -0.0,
            0.0,
            1e-45,
            1.0,
            f32::MAX,
        ];
        for w in values.windows(2) {
            assert!(radix_key(w[0]) < radix_key(w[1]), "{w:?}");
        }
        for v in values {
            assert_eq!(from_radix_key(radix_key(v)).to_bits(), v.to_bits());
        }
    }
}
