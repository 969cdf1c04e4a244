//! The bfloat16 field codec behind [`crate::ValueTable::Bf16Exponents`]: a BF16 bit pattern
//! `s | eeeeeeee | mmmmmmm` is stored as its sign bit, an index into a table of 8-bit
//! biased exponents, and the top `mantissa_bits` (0–7) bits of its mantissa.
//!
//! The codec is exact: [`split`] refuses a value whose exponent is not in the table or
//! whose dropped mantissa bits are not zero (approximation is the method's business and
//! happens before), and [`join`] rebuilds the same 16-bit pattern. Every one of the
//! 65,536 patterns can pass through it:
//!
//! - **zero and subnormals** have the biased exponent field 0, which is one more table
//!   entry like any other; the sign of zero and the subnormal mantissa are kept;
//! - **infinities and NaNs** have the field 255 and also round-trip bit for bit (NaN
//!   payload included) when 255 is in the table. Methods never produce them: they reject
//!   non-finite weights ([`crate::WeightSet::check_finite`]) before any work.

use std::fmt;

/// Width of the bfloat16 mantissa field.
pub const BF16_MANTISSA_BITS: u8 = 7;

/// The biased exponent field (0–255) of a bfloat16 bit pattern.
#[inline]
pub fn exponent_field(bits: u16) -> u8 {
    ((bits >> 7) & 0xFF) as u8
}

/// The three field streams of a tensor, one entry per value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fields {
    /// Sign bits (`true` = negative).
    pub signs: Vec<bool>,
    /// Index of each value's exponent in the table.
    pub indices: Vec<u8>,
    /// The top `mantissa_bits` mantissa bits of each value, right-aligned.
    pub mantissas: Vec<u8>,
}

/// Why a value cannot be split into fields without loss.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldError {
    /// `mantissa_bits` is larger than 7.
    MantissaBits(u8),
    /// The table has more than 256 entries (indices are 8 bits at most).
    TableTooLong(usize),
    /// The value at `index` has an exponent field the table does not hold.
    ExponentNotInTable {
        /// Flat index of the value.
        index: usize,
        /// Its bit pattern.
        bits: u16,
    },
    /// The value at `index` has non-zero mantissa bits below the kept `mantissa_bits`.
    MantissaNotRepresentable {
        /// Flat index of the value.
        index: usize,
        /// Its bit pattern.
        bits: u16,
        /// Kept mantissa bits.
        mantissa_bits: u8,
    },
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldError::MantissaBits(m) => {
                write!(f, "{m} mantissa bits requested; bfloat16 has 7")
            }
            FieldError::TableTooLong(n) => {
                write!(f, "exponent table of {n} entries; at most 256 exist")
            }
            FieldError::ExponentNotInTable { index, bits } => write!(
                f,
                "value {bits:#06x} at flat index {index}: exponent field {} is not in the table",
                exponent_field(*bits)
            ),
            FieldError::MantissaNotRepresentable {
                index,
                bits,
                mantissa_bits,
            } => write!(
                f,
                "value {bits:#06x} at flat index {index}: mantissa needs more than \
                 {mantissa_bits} bits"
            ),
        }
    }
}

impl std::error::Error for FieldError {}

/// Lookup from exponent field to table index (`None`: not in the table). When the table
/// repeats an exponent, its first position is used.
pub fn exponent_lookup(table: &[u8]) -> [Option<u8>; 256] {
    let mut lut = [None; 256];
    for (i, e) in table.iter().enumerate().take(256) {
        if lut[*e as usize].is_none() {
            lut[*e as usize] = Some(i as u8);
        }
    }
    lut
}

/// Splits bfloat16 bit patterns into sign / exponent-index / mantissa fields, exactly.
pub fn split(bits: &[u16], table: &[u8], mantissa_bits: u8) -> Result<Fields, FieldError> {
    if mantissa_bits > BF16_MANTISSA_BITS {
        return Err(FieldError::MantissaBits(mantissa_bits));
    }
    if table.len() > 256 {
        return Err(FieldError::TableTooLong(table.len()));
    }
    let lut = exponent_lookup(table);
    let drop = BF16_MANTISSA_BITS - mantissa_bits;
    let low_mask: u16 = (1u16 << drop) - 1;
    let n = bits.len();
    let mut out = Fields {
        signs: Vec::with_capacity(n),
        indices: Vec::with_capacity(n),
        mantissas: Vec::with_capacity(n),
    };
    for (index, &b) in bits.iter().enumerate() {
        let idx = lut[exponent_field(b) as usize]
            .ok_or(FieldError::ExponentNotInTable { index, bits: b })?;
        if b & low_mask != 0 {
            return Err(FieldError::MantissaNotRepresentable {
                index,
                bits: b,
                mantissa_bits,
            });
        }
        out.signs.push(b & 0x8000 != 0);
        out.indices.push(idx);
        out.mantissas.push(((b & 0x7F) >> drop) as u8);
    }
    Ok(out)
}

/// Rebuilds one bfloat16 bit pattern from its fields (no range checks: the caller has
/// validated `index < table.len()` and `mantissa < 2^mantissa_bits`).
#[inline]
pub fn join_one(table: &[u8], mantissa_bits: u8, sign: bool, index: u8, mantissa: u8) -> u16 {
    ((sign as u16) << 15)
        | ((table[index as usize] as u16) << 7)
        | ((mantissa as u16) << (BF16_MANTISSA_BITS - mantissa_bits))
}

/// Rebuilds the bfloat16 bit patterns from fields (inverse of [`split`]).
///
/// # Panics
/// When the streams differ in length, an index is outside the table or
/// `mantissa_bits > 7` (the encoding validates all three before decoding).
pub fn join(table: &[u8], mantissa_bits: u8, fields: &Fields) -> Vec<u16> {
    assert!(mantissa_bits <= BF16_MANTISSA_BITS);
    assert!(
        fields.signs.len() == fields.indices.len()
            && fields.indices.len() == fields.mantissas.len()
    );
    fields
        .signs
        .iter()
        .zip(&fields.indices)
        .zip(&fields.mantissas)
        .map(|((s, i), m)| join_one(table, mantissa_bits, *s, *i, *m))
        .collect()
}

/// The f32 value of a bfloat16 bit pattern (exact; NaN payloads are kept).
#[inline]
pub fn bf16_bits_to_f32(bits: u16) -> f32 {
    f32::from_bits((bits as u32) << 16)
}

/// Packs signs and mantissas into one stream of `1 + mantissa_bits`-bit codes
/// (`sign << mantissa_bits | mantissa`), the layout the container writes.
pub fn sign_mantissa_codes(signs: &[bool], mantissas: &[u8], mantissa_bits: u8) -> Vec<u32> {
    signs
        .iter()
        .zip(mantissas)
        .map(|(s, m)| ((*s as u32) << mantissa_bits) | *m as u32)
        .collect()
}

/// Inverse of [`sign_mantissa_codes`].
pub fn split_sign_mantissa(codes: &[u32], mantissa_bits: u8) -> (Vec<bool>, Vec<u8>) {
    let mask = (1u32 << mantissa_bits) - 1;
    codes
        .iter()
        .map(|c| ((c >> mantissa_bits) & 1 == 1, (c & mask) as u8))
        .unzip()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_refuses_what_it_cannot_store() {
        assert_eq!(
            split(&[0x3F80], &[127], 8),
            Err(FieldError::MantissaBits(8))
        );
        assert!(matches!(
            split(&[0x3F80, 0x4000], &[127], 7),
            Err(FieldError::ExponentNotInTable { index: 1, .. })
        ));
        // 1.0078125 = 0x3F81 needs the last mantissa bit.
        assert!(matches!(
            split(&[0x3F81], &[127], 6),
            Err(FieldError::MantissaNotRepresentable { index: 0, .. })
        ));
        let f = split(&[0x3F80, 0xBFC0], &[127], 1).unwrap();
        assert_eq!(f.signs, vec![false, true]);
        assert_eq!(f.mantissas, vec![0, 1]);
        assert_eq!(join(&[127], 1, &f), vec![0x3F80, 0xBFC0]);
    }
}
