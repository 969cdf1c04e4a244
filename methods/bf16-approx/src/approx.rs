//! The numeric core of `bf16-approx`: bfloat16 rounding, mantissa approximation, the
//! choice of the allowed exponents (exponent sharing and approximation) and the
//! projection of a tensor onto the allowed set.

use half::bf16;
use wb_core::bf16fields::{bf16_bits_to_f32, exponent_field, BF16_MANTISSA_BITS};
use wb_core::bitpack::index_bits;

wb_core::param_choice! {
    /// How dropped mantissa bits are rounded away.
    pub enum Rounding {
        /// Round to nearest, ties to even (IEEE default); a carry may raise the exponent.
        NearestEven = "nearest-even",
        /// Drop the bits (round toward zero).
        Truncate = "truncate",
    }
}

/// Whether and how zero is a snapping candidate in exponent approximation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZeroMode {
    /// Zero is no candidate: a weight whose exponent is not kept snaps to the nearest
    /// kept weight; the table holds the `2^(b−r)` largest exponents.
    Off,
    /// Zero is a candidate (the authors' code) and takes one of the `2^(b−r)` table
    /// entries (exponent field 0): the `2^(b−r) − 1` largest non-zero exponents are kept,
    /// so the index is exactly `b − r` bits wide.
    InBudget,
    /// The authors' candidate set exactly: the `2^(b−r)` largest non-zero exponents and
    /// zero. Zero is one more table entry, so the stored index is `b − r + 1` bits wide
    /// (the authors' accounting counts `b − r`; both are reported).
    ExtraEntry,
}

/// The bfloat16 pattern of `w` (round to nearest even, as the `bf16-cast` baseline).
#[inline]
pub fn bf16_bits(w: f32) -> u16 {
    bf16::from_f32(w).to_bits()
}

/// Keeps the top `m` of the 7 mantissa bits of a bfloat16 pattern. Rounding to nearest
/// even may carry into the exponent (as IEEE rounding does); the result can then be an
/// infinity pattern, which the caller must refuse. Ties go to the even bit pattern: the
/// last kept mantissa bit, or with `m = 0` the exponent field's last bit.
#[inline]
pub fn round_mantissa(bits: u16, m: u8, rounding: Rounding) -> u16 {
    debug_assert!(m <= BF16_MANTISSA_BITS);
    let d = BF16_MANTISSA_BITS - m;
    if d == 0 {
        return bits;
    }
    let sign = bits & 0x8000;
    let mag = bits & 0x7FFF;
    let mag = match rounding {
        Rounding::Truncate => mag & !((1u16 << d) - 1),
        Rounding::NearestEven => {
            let lsb = (mag >> d) & 1;
            let bias = (1u16 << (d - 1)) - 1 + lsb;
            ((mag + bias) >> d) << d
        }
    };
    sign | mag
}

/// `w` → bfloat16 (RNE) → `m` mantissa bits; `None` when the result is not finite
/// (NaN input, or a magnitude that rounds past the largest finite bfloat16).
#[inline]
pub fn round_weight(w: f32, m: u8, rounding: Rounding) -> Option<u16> {
    let b = round_mantissa(bf16_bits(w), m, rounding);
    (exponent_field(b) != 0xFF).then_some(b)
}

/// The allowed set of one scope (a layer or the whole model): which exponent fields may
/// be stored, the stored table, whether zero is a snapping candidate, and the mantissa
/// width.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedSet {
    allowed: [bool; 256],
    /// The exponent table, in descending order (the authors' sort; index 0 = largest).
    pub table: Vec<u8>,
    /// Whether 0 is a snapping candidate.
    pub zero_candidate: bool,
    /// Kept mantissa bits.
    pub mantissa_bits: u8,
    /// Mantissa rounding.
    pub rounding: Rounding,
}

/// How a scope's exponents were reduced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExponentPlan {
    /// Distinct exponent fields of the scope, descending (0 = zero/subnormals included).
    pub distinct: Vec<u8>,
    /// Lossless index width ⌈log2 |E|⌉.
    pub lossless_bits: u8,
    /// Index width the authors' accounting uses: `lossless_bits − r`.
    pub nominal_bits: u8,
    /// Table entries the authors' accounting uses (`2^(b−r)`, or |E| without reduction).
    pub nominal_entries: usize,
    /// The allowed set (its table is what is stored).
    pub set: AllowedSet,
}

impl ExponentPlan {
    /// Width of the stored indices, ⌈log2 |table|⌉.
    pub fn index_bits(&self) -> u8 {
        index_bits(self.set.table.len())
    }
}

/// Why a scope cannot lose `r` index bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooFewExponents {
    /// Distinct exponents of the scope.
    pub distinct: usize,
    /// Their lossless index width.
    pub bits: u8,
}

/// Distinct exponent fields of bfloat16 patterns, as a presence table.
pub fn exponent_presence(bits: impl IntoIterator<Item = u16>, seen: &mut [bool; 256]) {
    for b in bits {
        seen[exponent_field(b) as usize] = true;
    }
}

/// Chooses the table of a scope with distinct exponent fields `seen`: all of them when
/// `r = 0` (lossless exponent sharing), otherwise the largest ones (§1.2 B of the
/// reference notes) according to `zero`.
pub fn plan(
    seen: &[bool; 256],
    r: u8,
    zero: ZeroMode,
    mantissa_bits: u8,
    rounding: Rounding,
) -> Result<ExponentPlan, TooFewExponents> {
    let distinct: Vec<u8> = (0..=255u8).rev().filter(|e| seen[*e as usize]).collect();
    let b = index_bits(distinct.len());
    let (table, zero_candidate, nominal_entries) = if r == 0 {
        (distinct.clone(), false, distinct.len())
    } else {
        if r >= b {
            return Err(TooFewExponents {
                distinct: distinct.len(),
                bits: b,
            });
        }
        let k = 1usize << (b - r);
        // |E| > 2^(b−1) ≥ k, so at least k non-zero exponents exist.
        let nonzero: Vec<u8> = distinct.iter().copied().filter(|e| *e != 0).collect();
        let table = match zero {
            ZeroMode::Off => nonzero[..k].to_vec(),
            ZeroMode::InBudget => [&nonzero[..k - 1], &[0u8][..]].concat(),
            ZeroMode::ExtraEntry => [&nonzero[..k], &[0u8][..]].concat(),
        };
        (table, zero != ZeroMode::Off, k)
    };
    let mut allowed = [false; 256];
    for e in &table {
        allowed[*e as usize] = true;
    }
    Ok(ExponentPlan {
        lossless_bits: b,
        nominal_bits: b - r,
        nominal_entries,
        distinct,
        set: AllowedSet {
            allowed,
            table,
            zero_candidate,
            mantissa_bits,
            rounding,
        },
    })
}

impl AllowedSet {
    /// Whether a bfloat16 pattern's exponent field is allowed.
    #[inline]
    pub fn allows(&self, bits: u16) -> bool {
        self.allowed[exponent_field(bits) as usize]
    }

    /// Every value the set can store (both signs, every mantissa), ascending; used only
    /// when a tensor has no allowed weight to snap to.
    fn representable(&self) -> Vec<f32> {
        let m = self.mantissa_bits;
        let mut v: Vec<f32> = self
            .table
            .iter()
            .flat_map(|e| {
                (0..1u16 << m).flat_map(move |man| {
                    let mag = ((*e as u16) << 7) | (man << (BF16_MANTISSA_BITS - m));
                    [mag, mag | 0x8000]
                })
            })
            .map(bf16_bits_to_f32)
            .collect();
        v.sort_by(f32::total_cmp);
        v.dedup();
        v
    }
}

/// Which projection to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// During retraining (the authors' projection): a weight whose rounded exponent is not
    /// allowed is replaced by the nearest allowed weight of the tensor (or 0); every other
    /// weight keeps its f32 value, so small SGD updates accumulate.
    Step,
    /// The stored values: every weight is rounded to bfloat16 with `mantissa_bits` bits,
    /// then each one whose exponent is not allowed is replaced by the nearest allowed
    /// rounded weight (or 0).
    Final,
}

/// What a projection changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProjectStats {
    /// Weights replaced by another weight's value (or by 0).
    pub snapped: usize,
    /// Of those, weights replaced by 0.
    pub zeroed: usize,
}

/// A weight that cannot be stored in bfloat16.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NotRepresentable {
    /// Flat index.
    pub index: usize,
    /// The value.
    pub value: f32,
}

/// Projects `data` onto `set` (see [`Stage`]). Deterministic; idempotent for both
/// stages; a [`Stage::Final`] result consists of values that the set stores exactly.
///
/// The replacement of a weight `w` is `argmin_j |v_j − w|` over the allowed weights `v_j`
/// of the same tensor — plus 0 when zero is a candidate — with ties going to the
/// candidate that occurs first in the flattened tensor (0 "occurs" at the first weight
/// being replaced), exactly as the authors' `argmin` over the layer with zeros in place of
/// the other weights. A tensor without any allowed weight (possible with a model-wide
/// table) snaps to the nearest value the set can store.
pub fn project(
    data: &mut [f32],
    set: &AllowedSet,
    stage: Stage,
) -> Result<ProjectStats, NotRepresentable> {
    let m = set.mantissa_bits;
    let mut rounded = Vec::with_capacity(data.len());
    let mut first_bad = None;
    for (i, w) in data.iter().enumerate() {
        let b = round_weight(*w, m, set.rounding).ok_or(NotRepresentable {
            index: i,
            value: *w,
        })?;
        if first_bad.is_none() && !set.allows(b) {
            first_bad = Some(i);
        }
        rounded.push(b);
    }
    let value = |i: usize, w: f32| match stage {
        Stage::Step => w,
        Stage::Final => bf16_bits_to_f32(rounded[i]),
    };
    let Some(first_bad) = first_bad else {
        if stage == Stage::Final {
            for (w, b) in data.iter_mut().zip(&rounded) {
                *w = bf16_bits_to_f32(*b);
            }
        }
        return Ok(ProjectStats::default());
    };
    // Candidates: distinct allowed values, each with the first index where it occurs.
    let mut cand: Vec<(f32, usize)> = data
        .iter()
        .enumerate()
        .filter(|(i, _)| set.allows(rounded[*i]))
        .map(|(i, w)| (value(i, *w), i))
        .collect();
    if set.zero_candidate {
        cand.push((0.0, first_bad));
    }
    cand.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    cand.dedup_by(|later, earlier| later.0.to_bits() == earlier.0.to_bits());
    let fallback;
    let (vals, idx): (Vec<f32>, Vec<usize>) = if cand.is_empty() {
        fallback = set.representable();
        (fallback.clone(), vec![0; fallback.len()])
    } else {
        cand.into_iter().unzip()
    };
    let mut stats = ProjectStats::default();
    for i in 0..data.len() {
        let x = value(i, data[i]);
        if set.allows(rounded[i]) {
            data[i] = x;
            continue;
        }
        let p = vals.partition_point(|v| v.total_cmp(&x).is_lt());
        let mut best: Option<(f64, usize, f32)> = None;
        for j in [p.wrapping_sub(1), p] {
            if let Some(v) = vals.get(j) {
                let d = (*v as f64 - x as f64).abs();
                let better = match best {
                    None => true,
                    Some((bd, bi, _)) => d < bd || (d == bd && idx[j] < bi),
                };
                if better {
                    best = Some((d, idx[j], *v));
                }
            }
        }
        let (_, _, v) = best.expect("at least one candidate");
        // Equal values at ±0 compare equal in distance; the tie rule picked one of them.
        data[i] = v;
        stats.snapped += 1;
        if v == 0.0 {
            stats.zeroed += 1;
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rne_carries_into_the_exponent() {
        // 1.9921875 = 0x3FFF: 7 mantissa bits all ones; with 3 bits it rounds up to 2.0.
        assert_eq!(round_mantissa(0x3FFF, 3, Rounding::NearestEven), 0x4000);
        assert_eq!(round_mantissa(0x3FFF, 3, Rounding::Truncate), 0x3FF0);
        // Tie to even: mantissa 0b0001000 with 3 bits kept → 0b000 (even), 0b0011000 → 0b010.
        assert_eq!(round_mantissa(0x3F88, 3, Rounding::NearestEven), 0x3F80);
        assert_eq!(round_mantissa(0x3F98, 3, Rounding::NearestEven), 0x3FA0);
        // The largest finite bfloat16 rounds to infinity with fewer bits: refused.
        assert_eq!(
            round_weight(f32::from_bits(0x7F7F_0000), 6, Rounding::NearestEven),
            None
        );
    }

    #[test]
    fn plan_keeps_the_largest_exponents() {
        let mut seen = [false; 256];
        for e in [120u8, 121, 122, 123, 124, 125] {
            seen[e as usize] = true;
        }
        // |E| = 6 → b = 3; r = 1 → k = 4.
        let p = plan(&seen, 1, ZeroMode::Off, 7, Rounding::NearestEven).unwrap();
        assert_eq!(p.set.table, vec![125, 124, 123, 122]);
        let p = plan(&seen, 1, ZeroMode::InBudget, 7, Rounding::NearestEven).unwrap();
        assert_eq!(p.set.table, vec![125, 124, 123, 0]);
        assert_eq!(p.index_bits(), 2);
        let p = plan(&seen, 1, ZeroMode::ExtraEntry, 7, Rounding::NearestEven).unwrap();
        assert_eq!(p.set.table, vec![125, 124, 123, 122, 0]);
        assert_eq!((p.index_bits(), p.nominal_bits), (3, 2));
        assert_eq!(
            plan(&seen, 3, ZeroMode::Off, 7, Rounding::NearestEven),
            Err(TooFewExponents {
                distinct: 6,
                bits: 3
            })
        );
    }
}
