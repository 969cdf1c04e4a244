//! Indexed encodings: a **value table** × an **index coding**.
//!
//! Every weight-sharing encoding stores a table of values and one index per weight. The
//! two halves vary independently:
//!
//! | value table ([`ValueTable`]) | entry | where |
//! |---|---|---|
//! | [`ValueTable::F32`] codebook | 32 bits | tensor or shared section |
//! | [`ValueTable::F16`] codebook | 16 bits | tensor |
//! | [`ValueTable::Bf16`] value table | 16 bits | tensor |
//! | [`ValueTable::Bf16Exponents`] exponent table (+ sign and kept mantissa bits per weight) | 8 bits | tensor or shared section |
//!
//! | index coding ([`IndexCoding`]) | bits per index | code table |
//! |---|---|---|
//! | [`IndexCoding::Fixed`] | ⌈log2 k⌉ | none |
//! | [`IndexCoding::Huffman`] | canonical Huffman code of the index | one byte per table entry, in the tensor or a shared section |
//!
//! Any table combines with any coding, so entropy coding applies to every method's
//! codebook ([`super::Artifact::huffman_coded`]). Validation, decoding and the exact
//! size accounting are written once per half.

use super::CodeLengths;
use crate::bf16fields::{self, BF16_MANTISSA_BITS};
use crate::bitpack::index_bits;
use half::f16;
use wb_kernels::huffman::CanonicalCode;

/// Where a table lives: in the tensor itself, or in one of the artifact's shared
/// sections (by number), so that several tensors can use it while it is stored once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ref<T> {
    /// The tensor carries its own table.
    Local(T),
    /// The tensor uses entry `id` of the matching shared section of the artifact.
    Shared(u32),
}

impl<T> Ref<T> {
    /// The local table, `None` for a shared one.
    pub fn local(&self) -> Option<&T> {
        match self {
            Ref::Local(t) => Some(t),
            Ref::Shared(_) => None,
        }
    }

    /// The table itself, looked up in `shared` when shared; `what` names the section in
    /// the error.
    pub(crate) fn resolve<'a>(
        &'a self,
        shared: &'a [T],
        what: &str,
    ) -> std::result::Result<&'a T, String> {
        match self {
            Ref::Local(t) => Ok(t),
            Ref::Shared(id) => shared.get(*id as usize).ok_or_else(|| {
                format!(
                    "shared {what} {id} does not exist ({} present)",
                    shared.len()
                )
            }),
        }
    }
}

/// Where a codebook finds its FP32 values ([`crate::Artifact::shared_codebooks`]).
pub type CodebookRef = Ref<Vec<f32>>;
/// Where a BF16 exponent table lives ([`crate::Artifact::shared_exp_tables`]).
pub type ExpTableRef = Ref<Vec<u8>>;
/// Where a Huffman code table lives ([`crate::Artifact::shared_code_tables`]).
pub type CodeTableRef = Ref<CodeLengths>;

/// The artifact's shared sections, which [`Ref::Shared`] entries point into.
#[derive(Debug, Clone, Copy, Default)]
pub struct SharedTables<'a> {
    /// Shared FP32 codebooks.
    pub codebooks: &'a [Vec<f32>],
    /// Shared 8-bit exponent tables.
    pub exp_tables: &'a [Vec<u8>],
    /// Shared Huffman code tables.
    pub code_tables: &'a [CodeLengths],
}

/// The per-weight sign and kept mantissa bits that complete a
/// [`ValueTable::Bf16Exponents`] table ([`crate::bf16fields`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bf16Exponents {
    /// The table of 8-bit biased exponents (1 to 256 entries).
    pub table: ExpTableRef,
    /// Kept mantissa bits, 0–7.
    pub mantissa_bits: u8,
    /// Sign bits (`true` = negative), row-major.
    pub signs: Vec<bool>,
    /// Kept mantissa bits of each value, right-aligned, row-major.
    pub mantissas: Vec<u8>,
}

/// The values an index points to.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueTable {
    /// A codebook of FP32 values: weight = `codebook[index]`.
    F32(CodebookRef),
    /// A codebook of IEEE half bit patterns (16 bits per entry, in the tensor).
    F16(Vec<u16>),
    /// A table of distinct bfloat16 bit patterns (16 bits per entry, in the tensor).
    Bf16(Vec<u16>),
    /// bfloat16 stored by fields (exponent sharing): the index picks an 8-bit biased
    /// exponent; each weight also keeps its sign and top `mantissa_bits` mantissa bits.
    /// The decoded value is the bfloat16 `sign | table[index] | mantissa << (7 − m)`;
    /// exponent field 0 (zero, subnormals) and 255 (inf, NaN) are ordinary entries.
    Bf16Exponents(Bf16Exponents),
}

impl ValueTable {
    /// Short name used in per-layer breakdowns: `codebook`, `f16-codebook`,
    /// `bf16-table` or `bf16-fields`.
    pub fn name(&self) -> &'static str {
        match self {
            ValueTable::F32(_) => "codebook",
            ValueTable::F16(_) => "f16-codebook",
            ValueTable::Bf16(_) => "bf16-table",
            ValueTable::Bf16Exponents(_) => "bf16-fields",
        }
    }

    /// True when the table is one of the artifact's shared sections.
    pub fn is_shared(&self) -> bool {
        match self {
            ValueTable::F32(r) => r.local().is_none(),
            ValueTable::Bf16Exponents(e) => e.table.local().is_none(),
            ValueTable::F16(_) | ValueTable::Bf16(_) => false,
        }
    }

    /// Number of entries `k`, looked up in `shared` when shared.
    pub fn entries(&self, shared: SharedTables<'_>) -> std::result::Result<usize, String> {
        Ok(match self {
            ValueTable::F32(r) => r.resolve(shared.codebooks, "codebook")?.len(),
            ValueTable::F16(v) | ValueTable::Bf16(v) => v.len(),
            ValueTable::Bf16Exponents(e) => {
                e.table.resolve(shared.exp_tables, "exponent table")?.len()
            }
        })
    }

    /// Entries stored in the tensor (0 when shared).
    pub fn local_entries(&self) -> usize {
        match self {
            ValueTable::F32(r) => r.local().map_or(0, Vec::len),
            ValueTable::F16(v) | ValueTable::Bf16(v) => v.len(),
            ValueTable::Bf16Exponents(e) => e.table.local().map_or(0, Vec::len),
        }
    }

    /// Bits of one table entry.
    pub fn entry_bits(&self) -> u64 {
        match self {
            ValueTable::F32(_) => 32,
            ValueTable::F16(_) | ValueTable::Bf16(_) => 16,
            ValueTable::Bf16Exponents(_) => 8,
        }
    }

    /// Bits stored per weight besides its index (sign and kept mantissa of
    /// [`ValueTable::Bf16Exponents`], else 0).
    pub fn residual_bits_per_value(&self) -> u64 {
        match self {
            ValueTable::Bf16Exponents(e) => 1 + e.mantissa_bits as u64,
            _ => 0,
        }
    }

    /// Checks the table for `n` weights and returns its number of entries.
    pub(crate) fn check(
        &self,
        n: usize,
        shared: SharedTables<'_>,
    ) -> std::result::Result<usize, String> {
        let k = self.entries(shared)?;
        match self {
            ValueTable::F32(_) | ValueTable::F16(_) if k == 0 => Err("empty codebook".into()),
            ValueTable::Bf16(_) if k == 0 => Err("empty value table".into()),
            ValueTable::Bf16Exponents(e) => {
                check_bf16_exponents(e, k, n)?;
                Ok(k)
            }
            _ => Ok(k),
        }
    }

    /// The f32 values of `indices` (validated: every index is in the table).
    pub(crate) fn decode(&self, indices: &[u32], shared: SharedTables<'_>) -> Vec<f32> {
        match self {
            ValueTable::F32(r) => {
                let cb = r.resolve(shared.codebooks, "codebook").expect("validated");
                indices.iter().map(|i| cb[*i as usize]).collect()
            }
            ValueTable::F16(v) => indices
                .iter()
                .map(|i| f16::from_bits(v[*i as usize]).to_f32())
                .collect(),
            ValueTable::Bf16(v) => indices
                .iter()
                .map(|i| bf16fields::bf16_bits_to_f32(v[*i as usize]))
                .collect(),
            ValueTable::Bf16Exponents(e) => {
                let table = e
                    .table
                    .resolve(shared.exp_tables, "exponent table")
                    .expect("validated");
                e.signs
                    .iter()
                    .zip(indices)
                    .zip(&e.mantissas)
                    .map(|((s, i), m)| {
                        bf16fields::bf16_bits_to_f32(bf16fields::join_one(
                            table,
                            e.mantissa_bits,
                            *s,
                            *i as u8,
                            *m,
                        ))
                    })
                    .collect()
            }
        }
    }
}

/// Exponent table size, mantissa width and per-weight field lengths and ranges.
fn check_bf16_exponents(e: &Bf16Exponents, k: usize, n: usize) -> std::result::Result<(), String> {
    if k == 0 || k > 256 {
        return Err(format!("exponent table of {k} entries (1 to 256 allowed)"));
    }
    if e.mantissa_bits > BF16_MANTISSA_BITS {
        return Err(format!("{} mantissa bits; bfloat16 has 7", e.mantissa_bits));
    }
    if e.signs.len() != n || e.mantissas.len() != n {
        return Err(format!(
            "{} signs, {n} indices and {} mantissas",
            e.signs.len(),
            e.mantissas.len()
        ));
    }
    match e
        .mantissas
        .iter()
        .enumerate()
        .find(|(_, m)| (**m as u32) >> e.mantissa_bits != 0)
    {
        Some((i, m)) => Err(format!(
            "mantissa {m} at position {i} does not fit in {} bits",
            e.mantissa_bits
        )),
        None => Ok(()),
    }
}

/// How the indices are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexCoding {
    /// Bit-packed at `bits` = ⌈log2 k⌉ bits per index (LSB first).
    Fixed {
        /// Index width; must equal ⌈log2 k⌉ of the table.
        bits: u8,
    },
    /// One canonical-Huffman bit stream under a code table with one entry per table
    /// entry ([`wb_kernels::huffman`]).
    Huffman {
        /// The code lengths.
        code: CodeTableRef,
        /// Length of the coded stream in bits (`Σ length(code[index])`), checked
        /// against the table by validation.
        stream_bits: u64,
    },
}

impl IndexCoding {
    /// Fixed-width indices into a table of `k` entries.
    pub fn fixed(k: usize) -> Self {
        IndexCoding::Fixed {
            bits: index_bits(k),
        }
    }

    /// Huffman-coded `indices` under the code table `lengths` (which `code` refers to:
    /// the local table itself or the shared one's entries), with the stream length
    /// computed.
    ///
    /// # Errors
    /// The reason, when `lengths` is not a valid code or an index has no code.
    pub fn huffman(
        code: CodeTableRef,
        lengths: &[Option<u8>],
        indices: &[u32],
    ) -> std::result::Result<Self, String> {
        let stream_bits = CanonicalCode::new(lengths)
            .and_then(|c| c.encoded_bits(indices))
            .map_err(|e| e.to_string())?;
        Ok(IndexCoding::Huffman { code, stream_bits })
    }

    /// Huffman-coded `indices` into a table of `k` entries with a local code table built
    /// from their frequencies (one optimal tree for this tensor).
    ///
    /// # Errors
    /// The reason, when an index is not below `k`.
    pub fn huffman_local(k: usize, indices: &[u32]) -> std::result::Result<Self, String> {
        let lengths = wb_kernels::huffman::code_lengths(&frequencies(k, indices)?)
            .map_err(|e| e.to_string())?;
        Self::huffman(Ref::Local(lengths.clone()), &lengths, indices)
    }

    /// True for a Huffman coding.
    pub fn is_huffman(&self) -> bool {
        matches!(self, IndexCoding::Huffman { .. })
    }

    /// Code-table entries stored in the tensor (0 for fixed width or a shared table).
    pub fn local_entries(&self) -> usize {
        match self {
            IndexCoding::Huffman {
                code: Ref::Local(t),
                ..
            } => t.len(),
            _ => 0,
        }
    }

    /// Bits of the `n` stored indices.
    pub fn index_bits(&self, n: usize) -> u64 {
        match self {
            IndexCoding::Fixed { bits } => *bits as u64 * n as u64,
            IndexCoding::Huffman { stream_bits, .. } => *stream_bits,
        }
    }

    /// Checks the coding of `indices` into a table of `k` entries.
    pub(crate) fn check(
        &self,
        k: usize,
        indices: &[u32],
        table_name: &str,
        shared: SharedTables<'_>,
    ) -> std::result::Result<(), String> {
        match self {
            IndexCoding::Fixed { bits } => {
                if *bits != index_bits(k) {
                    return Err(format!(
                        "index width {bits} bits but {table_name} of {k} needs exactly {}",
                        index_bits(k)
                    ));
                }
                check_indices(indices, k, table_name)
            }
            IndexCoding::Huffman { code, stream_bits } => {
                let lengths = code.resolve(shared.code_tables, "code table")?;
                if lengths.len() != k {
                    return Err(format!(
                        "code table of {} entries for {table_name} of {k}",
                        lengths.len()
                    ));
                }
                let canon = CanonicalCode::new(lengths).map_err(|e| e.to_string())?;
                check_indices(indices, k, table_name)?;
                let bits = canon.encoded_bits(indices).map_err(|e| e.to_string())?;
                if bits != *stream_bits {
                    return Err(format!(
                        "stream length {stream_bits} bits but the indices code to {bits}"
                    ));
                }
                Ok(())
            }
        }
    }
}

/// Every index must point into a table of `k` entries.
fn check_indices(indices: &[u32], k: usize, table_name: &str) -> std::result::Result<(), String> {
    match indices.iter().enumerate().find(|(_, v)| **v as usize >= k) {
        Some((i, v)) => Err(format!(
            "index {v} at position {i} out of range for {table_name} of {k}"
        )),
        None => Ok(()),
    }
}

/// How often each of `k` table entries is used by `indices`.
///
/// # Errors
/// The reason, when an index is not below `k`.
pub fn frequencies(k: usize, indices: &[u32]) -> std::result::Result<Vec<u64>, String> {
    let mut freqs = vec![0u64; k];
    for &i in indices {
        *freqs
            .get_mut(i as usize)
            .ok_or_else(|| format!("index {i} out of range for a table of {k}"))? += 1;
    }
    Ok(freqs)
}
