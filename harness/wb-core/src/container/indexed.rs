//! The container payload of an indexed encoding (value table × index coding).
//!
//! Every combination is laid out in the same order:
//!
//! ```text
//! table header | coding header | table parameter | local table | local code table
//!   | indices | per-value residual
//! ```
//!
//! - table header: ref u8 (0 local, 1 shared) | k u32 (local) or id u32 (shared);
//!   kind 6 leaves out the ref byte (its table is always local);
//! - coding header: fixed: bits u8 | Huffman: ref u8 | t u32 (local) or id u32 (shared)
//!   | stream bits u64;
//! - table parameter: exponent table: mantissa bits u8; others: nothing;
//! - local table: k entries of 4 (FP32), 2 (FP16, BF16) or 1 (exponent) bytes;
//! - local code table: t code-length bytes;
//! - indices: ⌈n·bits/8⌉ bytes LSB-first packed, or ⌈stream bits/8⌉ bytes of canonical
//!   Huffman codes, MSB first;
//! - residual (exponent table only): ⌈n·(1+m)/8⌉ bytes of packed `sign << m | mantissa`.
//!
//! The four combinations that existed before tables and codings were separated keep
//! their kind tag and bytes (3: FP32 codebook + fixed, 5: exponent table + fixed,
//! 6: BF16 table + fixed, 7: FP32 codebook + Huffman), so every artifact written
//! before reads and writes unchanged. Every other combination is kind 8, whose payload
//! starts with a table kind u8 (0 FP32, 1 FP16, 2 BF16, 3 exponent) and a coding kind
//! u8 (0 fixed, 1 Huffman) and then follows the order above. A reader from before
//! kind 8 refuses such a tensor as "unknown kind 8".

use super::{code_length_byte, code_length_from_byte, malformed, put_f32s, Reader};
use crate::bf16fields::{sign_mantissa_codes, split_sign_mantissa};
use crate::bitpack::{pack, packed_len, unpack};
use crate::encoding::{
    Bf16Exponents, CodeLengths, Encoding, IndexCoding, Pq, PqCodewords, Ref, ValueTable,
};
use crate::error::{CoreError, Result};
use wb_kernels::huffman::CanonicalCode;

/// Kind tag of the generic layout.
pub(crate) const KIND_GENERIC: u8 = 8;

/// The kind tag of a table × coding combination.
pub(crate) fn kind_tag(table: &ValueTable, coding: &IndexCoding) -> u8 {
    match (table, coding) {
        (ValueTable::F32(_), IndexCoding::Fixed { .. }) => 3,
        (ValueTable::Bf16Exponents(_), IndexCoding::Fixed { .. }) => 5,
        (ValueTable::Bf16(_), IndexCoding::Fixed { .. }) => 6,
        (ValueTable::F32(_), IndexCoding::Huffman { .. }) => 7,
        _ => KIND_GENERIC,
    }
}

fn table_kind(table: &ValueTable) -> u8 {
    match table {
        ValueTable::F32(_) => 0,
        ValueTable::F16(_) => 1,
        ValueTable::Bf16(_) => 2,
        ValueTable::Bf16Exponents(_) => 3,
    }
}

/// Bytes of the payload before the local table (after the kind byte).
pub(crate) fn header_bytes(table: &ValueTable, coding: &IndexCoding) -> u64 {
    let kind = kind_tag(table, coding);
    let generic = if kind == KIND_GENERIC { 2 } else { 0 };
    let table_header = if kind == 6 { 4 } else { 5 };
    let coding_header = match coding {
        IndexCoding::Fixed { .. } => 1,
        IndexCoding::Huffman { .. } => 1 + 4 + 8,
    };
    let param = match table {
        ValueTable::Bf16Exponents(_) => 1,
        _ => 0,
    };
    generic + table_header + coding_header + param
}

fn put_ref<T>(out: &mut Vec<u8>, r: &Ref<T>, len: impl Fn(&T) -> usize) {
    match r {
        Ref::Local(t) => {
            out.push(0);
            out.extend_from_slice(&(len(t) as u32).to_le_bytes());
        }
        Ref::Shared(id) => {
            out.push(1);
            out.extend_from_slice(&id.to_le_bytes());
        }
    }
}

/// Writes the payload of an indexed encoding (the kind byte is written already).
/// `name` names the tensor in errors; the encoding has been validated.
pub(crate) fn write(
    out: &mut Vec<u8>,
    name: &str,
    (table, coding, indices): (&ValueTable, &IndexCoding, &[u32]),
    shared_code: &[CodeLengths],
) -> Result<()> {
    let kind = kind_tag(table, coding);
    if kind == KIND_GENERIC {
        out.push(table_kind(table));
        out.push(coding.is_huffman() as u8);
    }
    // table header
    match table {
        ValueTable::F32(r) => put_ref(out, r, Vec::len),
        ValueTable::Bf16Exponents(e) => put_ref(out, &e.table, Vec::len),
        ValueTable::F16(v) | ValueTable::Bf16(v) => {
            if kind != 6 {
                out.push(0);
            }
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        }
    }
    // coding header
    match coding {
        IndexCoding::Fixed { bits } => out.push(*bits),
        IndexCoding::Huffman { code, stream_bits } => {
            put_ref(out, code, Vec::len);
            out.extend_from_slice(&stream_bits.to_le_bytes());
        }
    }
    if let ValueTable::Bf16Exponents(e) = table {
        out.push(e.mantissa_bits);
    }
    // local tables
    match table {
        ValueTable::F32(Ref::Local(cb)) => put_f32s(out, cb),
        ValueTable::F16(v) | ValueTable::Bf16(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        ValueTable::Bf16Exponents(Bf16Exponents {
            table: Ref::Local(t),
            ..
        }) => out.extend_from_slice(t),
        _ => {}
    }
    if let IndexCoding::Huffman {
        code: Ref::Local(t),
        ..
    } = coding
    {
        out.extend(t.iter().map(|l| code_length_byte(*l)));
    }
    write_indices(out, name, coding, indices, shared_code)?;
    if let ValueTable::Bf16Exponents(e) = table {
        let codes = sign_mantissa_codes(&e.signs, &e.mantissas, e.mantissa_bits);
        out.extend_from_slice(&pack(&codes, 1 + e.mantissa_bits));
    }
    Ok(())
}

fn write_indices(
    out: &mut Vec<u8>,
    name: &str,
    coding: &IndexCoding,
    indices: &[u32],
    shared_code: &[CodeLengths],
) -> Result<()> {
    match coding {
        IndexCoding::Fixed { bits } => out.extend_from_slice(&pack(indices, *bits)),
        IndexCoding::Huffman { code, stream_bits } => {
            let invalid = |reason: String| CoreError::InvalidEncoding {
                name: name.to_string(),
                reason,
            };
            let table = code.resolve(shared_code, "code table").map_err(invalid)?;
            let (bytes, bits) = CanonicalCode::new(table)
                .and_then(|c| c.encode(indices))
                .map_err(|e| invalid(e.to_string()))?;
            debug_assert_eq!(bits, *stream_bits);
            out.extend_from_slice(&bytes);
        }
    }
    Ok(())
}

/// A table or code-table header: a ref tag and a length or shared id.
#[derive(Clone, Copy)]
struct RefHeader {
    shared: bool,
    len_or_id: u32,
}

fn read_ref_header(r: &mut Reader<'_>, name: &str, what: &str) -> Result<RefHeader> {
    let shared = match r.u8()? {
        0 => false,
        1 => true,
        t => {
            return Err(malformed(format!(
                "tensor `{name}`: unknown {what} reference {t}"
            )))
        }
    };
    Ok(RefHeader {
        shared,
        len_or_id: r.u32()?,
    })
}

/// The kind of table (0–3) and whether the indices are Huffman-coded, for a tensor of
/// kind `kind` (3, 5, 6, 7 or 8; reads the two kind bytes of kind 8).
fn read_kinds(r: &mut Reader<'_>, name: &str, kind: u8) -> Result<(u8, bool)> {
    Ok(match kind {
        3 => (0, false),
        5 => (3, false),
        6 => (2, false),
        7 => (0, true),
        _ => {
            let table = r.u8()?;
            let coding = r.u8()?;
            if table > 3 || coding > 1 {
                return Err(malformed(format!(
                    "tensor `{name}`: unknown table kind {table} or index coding {coding}"
                )));
            }
            (table, coding == 1)
        }
    })
}

/// The coding header as read: width, or code-table reference and stream length.
enum CodingHeader {
    Fixed(u8),
    Huffman(RefHeader, u64),
}

/// Reads the payload of an indexed encoding of `n` values (after the kind byte).
pub(super) fn read(
    r: &mut Reader<'_>,
    name: &str,
    n: usize,
    kind: u8,
    shared_code: &[CodeLengths],
) -> Result<Encoding> {
    let (table_kind, huffman) = read_kinds(r, name, kind)?;
    let what = ["codebook", "codebook", "value table", "exponent table"][table_kind as usize];
    let table_header = if kind == 6 {
        RefHeader {
            shared: false,
            len_or_id: r.u32()?,
        }
    } else {
        read_ref_header(r, name, what)?
    };
    if table_header.shared && matches!(table_kind, 1 | 2) {
        return Err(malformed(format!(
            "tensor `{name}`: a 16-bit {what} cannot be shared"
        )));
    }
    let coding = if huffman {
        let code = read_ref_header(r, name, "code table")?;
        let stream_bits = u64::from_le_bytes(r.take(8)?.try_into().expect("8 bytes"));
        CodingHeader::Huffman(code, stream_bits)
    } else {
        CodingHeader::Fixed(r.u8()?)
    };
    let mantissa_bits = if table_kind == 3 { Some(r.u8()?) } else { None };
    check_widths(name, &coding, table_kind, mantissa_bits)?;
    let table = read_table(r, table_kind, table_header, mantissa_bits)?;
    let (coding, indices) = read_indices(r, name, n, coding, shared_code)?;
    let table = match table {
        ValueTable::Bf16Exponents(mut e) => {
            let m = e.mantissa_bits;
            let codes = unpack(r.take(packed_len(n, 1 + m))?, n, 1 + m);
            (e.signs, e.mantissas) = split_sign_mantissa(&codes, m);
            ValueTable::Bf16Exponents(e)
        }
        other => other,
    };
    Ok(Encoding::Indexed {
        table,
        coding,
        indices,
    })
}

/// Widths the reader can unpack: fixed index widths up to 32 bits (8 for an exponent
/// table) and at most 7 mantissa bits.
fn check_widths(
    name: &str,
    coding: &CodingHeader,
    table_kind: u8,
    mantissa_bits: Option<u8>,
) -> Result<()> {
    let max_bits = if table_kind == 3 { 8 } else { 32 };
    if let CodingHeader::Fixed(bits) = coding {
        if *bits > max_bits {
            return Err(malformed(format!(
                "tensor `{name}`: index width {bits} > {max_bits}"
            )));
        }
    }
    if let Some(m) = mantissa_bits.filter(|m| *m > 7) {
        return Err(malformed(format!(
            "tensor `{name}`: {m} mantissa bits (at most 7)"
        )));
    }
    Ok(())
}

/// The value table, with its local entries read (the per-value residual of an exponent
/// table is filled in after the indices).
fn read_table(
    r: &mut Reader<'_>,
    table_kind: u8,
    h: RefHeader,
    mantissa_bits: Option<u8>,
) -> Result<ValueTable> {
    let k = h.len_or_id as usize;
    Ok(match (table_kind, h.shared) {
        (0, true) => ValueTable::F32(Ref::Shared(h.len_or_id)),
        (0, false) => ValueTable::F32(Ref::Local(r.f32s(k)?)),
        (1, _) => ValueTable::F16(r.u16s(k)?),
        (2, _) => ValueTable::Bf16(r.u16s(k)?),
        (_, shared) => ValueTable::Bf16Exponents(Bf16Exponents {
            table: if shared {
                Ref::Shared(h.len_or_id)
            } else {
                Ref::Local(r.take(k)?.to_vec())
            },
            mantissa_bits: mantissa_bits.unwrap_or(0),
            signs: Vec::new(),
            mantissas: Vec::new(),
        }),
    })
}

/// The index coding and the `n` indices: the local code table, then the packed or
/// Huffman-coded stream.
fn read_indices(
    r: &mut Reader<'_>,
    name: &str,
    n: usize,
    coding: CodingHeader,
    shared_code: &[CodeLengths],
) -> Result<(IndexCoding, Vec<u32>)> {
    let (h, stream_bits) = match coding {
        CodingHeader::Fixed(bits) => {
            let indices = unpack(r.take(packed_len(n, bits))?, n, bits);
            return Ok((IndexCoding::Fixed { bits }, indices));
        }
        CodingHeader::Huffman(h, stream_bits) => (h, stream_bits),
    };
    let code = if h.shared {
        Ref::Shared(h.len_or_id)
    } else {
        Ref::Local(
            r.take(h.len_or_id as usize)?
                .iter()
                .map(|b| code_length_from_byte(*b))
                .collect(),
        )
    };
    let lengths = code
        .resolve(shared_code, "code table")
        .map_err(|e| malformed(format!("tensor `{name}`: {e}")))?;
    let canon =
        CanonicalCode::new(lengths).map_err(|e| malformed(format!("tensor `{name}`: {e}")))?;
    let n_bytes = usize::try_from(stream_bits.div_ceil(8))
        .map_err(|_| malformed("stream length overflow"))?;
    let indices = canon
        .decode(r.take(n_bytes)?, stream_bits, n)
        .map_err(|e| malformed(format!("tensor `{name}`: {e}")))?;
    Ok((IndexCoding::Huffman { code, stream_bits }, indices))
}

/// Kind tag of a product-quantized tensor.
pub(crate) const KIND_PQ: u8 = 9;

/// Bytes of a PQ payload before its codewords (after the kind byte): word kind, dim,
/// k, coding kind and the coding header.
pub(crate) fn pq_header_bytes(p: &Pq) -> u64 {
    1 + 4
        + 4
        + 1
        + match p.coding {
            IndexCoding::Fixed { .. } => 1,
            IndexCoding::Huffman { .. } => 1 + 4 + 8,
        }
}

/// Writes the payload of a PQ encoding (validated; the kind byte is written already).
pub(crate) fn write_pq(
    out: &mut Vec<u8>,
    name: &str,
    p: &Pq,
    shared_code: &[CodeLengths],
) -> Result<()> {
    out.push(matches!(p.codewords, PqCodewords::F16(_)) as u8);
    out.extend_from_slice(&p.dim.to_le_bytes());
    out.extend_from_slice(&(p.k() as u32).to_le_bytes());
    out.push(p.coding.is_huffman() as u8);
    match &p.coding {
        IndexCoding::Fixed { bits } => out.push(*bits),
        IndexCoding::Huffman { code, stream_bits } => {
            put_ref(out, code, Vec::len);
            out.extend_from_slice(&stream_bits.to_le_bytes());
        }
    }
    match &p.codewords {
        PqCodewords::F32(v) => put_f32s(out, v),
        PqCodewords::F16(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
    }
    if let IndexCoding::Huffman {
        code: Ref::Local(t),
        ..
    } = &p.coding
    {
        out.extend(t.iter().map(|l| code_length_byte(*l)));
    }
    write_indices(out, name, &p.coding, &p.indices, shared_code)
}

/// Reads the payload of a PQ encoding of `n` values (after the kind byte).
pub(super) fn read_pq(
    r: &mut Reader<'_>,
    name: &str,
    n: usize,
    shared_code: &[CodeLengths],
) -> Result<Encoding> {
    let words = r.u8()?;
    let dim = r.u32()?;
    let k = r.u32()? as usize;
    let coding = r.u8()?;
    if words > 1 || coding > 1 || dim == 0 || k == 0 {
        return Err(malformed(format!(
            "tensor `{name}`: PQ codeword kind {words}, index coding {coding}, dim {dim}, k {k}"
        )));
    }
    let coding = if coding == 1 {
        let code = read_ref_header(r, name, "code table")?;
        let stream_bits = u64::from_le_bytes(r.take(8)?.try_into().expect("8 bytes"));
        CodingHeader::Huffman(code, stream_bits)
    } else {
        CodingHeader::Fixed(r.u8()?)
    };
    check_widths(name, &coding, 0, None)?;
    let len = k
        .checked_mul(dim as usize)
        .ok_or_else(|| malformed(format!("tensor `{name}`: PQ codebook size overflows")))?;
    let codewords = match words {
        0 => PqCodewords::F32(r.f32s(len)?),
        _ => PqCodewords::F16(r.u16s(len)?),
    };
    let m = n.div_ceil(dim as usize);
    let (coding, indices) = read_indices(r, name, m, coding, shared_code)?;
    Ok(Encoding::ProductQuantized(Pq {
        dim,
        codewords,
        coding,
        indices,
        values: n,
    }))
}
