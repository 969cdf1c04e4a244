//! The one file format for a whole compressed model.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! magic "WBCONT01" (8) | n_shared u32 | n_tensors u32                      fixed header, 16 B
//!   or, when the artifact has shared exponent tables (version 2):
//! magic "WBCONT02" (8) | n_shared u32 | n_tensors u32 | n_exp u32          fixed header, 20 B
//!   or, when the artifact has shared Huffman code tables (version 3):
//! magic "WBCONT03" (8) | n_shared u32 | n_tensors u32 | n_exp u32 | n_code u32   24 B
//! n_shared × ( k u32 | k × f32 )                                           shared codebooks
//! n_exp × ( k u32 | k × u8 )                    shared exponent tables (versions 2 and 3)
//! n_code × ( k u32 | k × u8 code-length byte )   shared Huffman code tables (version 3)
//! n_tensors × ( name_len u16 | name | ndim u8 | ndim × u32 | flags u8 | kind u8 | payload )
//!   kind 0 f32:      n × f32
//!   kind 1 bf16:     n × u16
//!   kind 2 f16:      n × u16
//!   kind 3 codebook: ref u8 (0 local, 1 shared) | k u32 (local) or id u32 (shared)
//!                    | bits u8 | local: k × f32 | ⌈n·bits/8⌉ bytes of LSB-first packed indices
//!   kind 4 int8:     c × f32 scales (c = shape[0]) | n × i8
//!   kind 5 bf16-fields: ref u8 (0 local, 1 shared) | k u32 (local) or id u32 (shared)
//!                    | b u8 (index bits) | m u8 (mantissa bits) | local: k × u8 exponents
//!                    | ⌈n·b/8⌉ bytes of packed exponent indices
//!                    | ⌈n·(1+m)/8⌉ bytes of packed (sign << m | mantissa) codes
//!   kind 6 bf16-table: k u32 | bits u8 | k × u16 | ⌈n·bits/8⌉ bytes of packed indices
//!   kind 7 huffman-codebook: cb ref u8 (0 local, 1 shared) | k u32 (local) or id u32
//!                    | table ref u8 (0 local, 1 shared) | t u32 (local) or id u32
//!                    | stream bits u64 | local: k × f32 | local: t × u8 code-length bytes
//!                    | ⌈stream bits/8⌉ bytes of canonical Huffman codes, MSB first
//!   kind 8 indexed:  table kind u8 | coding kind u8 | any value table × index coding
//!                    in the order of kinds 3–7 ([`indexed`])
//!   kind 9 pq:       words u8 (0 f32, 1 f16) | dim u32 | k u32 | coding kind u8
//!                    | fixed: bits u8, or huffman: table ref u8 | t u32 or id u32
//!                    | stream bits u64 | k·dim codeword values (f32 or u16)
//!                    | local: t × u8 code-length bytes | the ⌈n/dim⌉ indices, packed
//!                    or Huffman-coded as in kinds 3 and 7 ([`crate::encoding::pq`])
//! sha256 of everything above (32)                                           trailer
//! ```
//!
//! A code-length byte is 0 for a codebook entry without code and `1 + length` otherwise
//! (a lone symbol has a 0-bit code, byte 1); the canonical code follows from the
//! lengths ([`wb_kernels::huffman`]).
//!
//! A writer emits version 1 whenever the artifact has neither shared exponent tables
//! nor shared code tables, version 2 when it has only the former, so the bytes of
//! every artifact that does not use them are unchanged; the reader takes all three.
//!
//! [`crate::Artifact::size`] predicts every byte of this layout; [`write_with_spans`]
//! reports what was actually written so tests can compare the two per tensor.

use crate::encoding::{Artifact, CodeLengths, EncodedTensor, Encoding};
use crate::error::{CoreError, Result};
use sha2::{Digest, Sha256};
use std::path::Path;

pub mod indexed;

/// File magic, including the format version.
pub const MAGIC: &[u8; 8] = b"WBCONT01";
/// Magic of version 2: version 1 plus shared exponent tables.
pub const MAGIC_V2: &[u8; 8] = b"WBCONT02";
/// Bytes of the version-1 fixed header (magic + two counts).
pub const FIXED_HEADER_BYTES: u64 = 16;
/// Bytes of the version-2 fixed header (magic + three counts).
pub const FIXED_HEADER_BYTES_V2: u64 = 20;
/// Magic of version 3: version 2 plus shared Huffman code tables.
pub const MAGIC_V3: &[u8; 8] = b"WBCONT03";
/// Bytes of the version-3 fixed header (magic + four counts).
pub const FIXED_HEADER_BYTES_V3: u64 = 24;

/// Container version `artifact` is written with: 3 with shared code tables, else 2
/// with shared exponent tables, else 1.
pub fn version(artifact: &Artifact) -> u8 {
    if !artifact.shared_code_tables.is_empty() {
        3
    } else if !artifact.shared_exp_tables.is_empty() {
        2
    } else {
        1
    }
}

/// Bytes of the fixed header `artifact` is written with (see [`version`]).
pub fn header_bytes(artifact: &Artifact) -> u64 {
    match version(artifact) {
        1 => FIXED_HEADER_BYTES,
        2 => FIXED_HEADER_BYTES_V2,
        _ => FIXED_HEADER_BYTES_V3,
    }
}

/// Stored byte of one code-length table entry (0 = no code, else 1 + length).
fn code_length_byte(l: Option<u8>) -> u8 {
    l.map_or(0, |l| l + 1)
}

fn code_length_from_byte(b: u8) -> Option<u8> {
    b.checked_sub(1)
}
/// Bytes of the checksum trailer.
pub const TRAILER_BYTES: u64 = 32;

/// Byte span that one tensor occupies in a written container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpan {
    /// Tensor name.
    pub name: String,
    /// Offset of its first byte.
    pub start: u64,
    /// Offset one past its last byte.
    pub end: u64,
}

/// Serializes `artifact`, validating it first.
pub fn write(artifact: &Artifact) -> Result<Vec<u8>> {
    write_with_spans(artifact).map(|(b, _)| b)
}

/// Serializes `artifact` and reports where each tensor landed.
pub fn write_with_spans(artifact: &Artifact) -> Result<(Vec<u8>, Vec<TensorSpan>)> {
    artifact.validate()?;
    let mut out = Vec::with_capacity(artifact.size().total_bytes as usize);
    let v = version(artifact);
    out.extend_from_slice(match v {
        1 => MAGIC,
        2 => MAGIC_V2,
        _ => MAGIC_V3,
    });
    out.extend_from_slice(&(artifact.shared_codebooks.len() as u32).to_le_bytes());
    out.extend_from_slice(&(artifact.tensors.len() as u32).to_le_bytes());
    if v >= 2 {
        out.extend_from_slice(&(artifact.shared_exp_tables.len() as u32).to_le_bytes());
    }
    if v >= 3 {
        out.extend_from_slice(&(artifact.shared_code_tables.len() as u32).to_le_bytes());
    }
    for cb in &artifact.shared_codebooks {
        out.extend_from_slice(&(cb.len() as u32).to_le_bytes());
        put_f32s(&mut out, cb);
    }
    for t in &artifact.shared_exp_tables {
        out.extend_from_slice(&(t.len() as u32).to_le_bytes());
        out.extend_from_slice(t);
    }
    for t in &artifact.shared_code_tables {
        out.extend_from_slice(&(t.len() as u32).to_le_bytes());
        out.extend(t.iter().map(|l| code_length_byte(*l)));
    }
    let mut spans = Vec::with_capacity(artifact.tensors.len());
    for t in &artifact.tensors {
        let start = out.len() as u64;
        write_tensor(&mut out, t, &artifact.shared_code_tables)?;
        spans.push(TensorSpan {
            name: t.name.clone(),
            start,
            end: out.len() as u64,
        });
    }
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    Ok((out, spans))
}

fn put_f32s(out: &mut Vec<u8>, v: &[f32]) {
    for x in v {
        out.extend_from_slice(&x.to_bits().to_le_bytes());
    }
}

/// Bytes the container spends on `t` before its values: name, shape, flags, kind and
/// the encoding's own header.
pub fn tensor_header_bytes(t: &EncodedTensor) -> u64 {
    // name_len u16 + name + ndim u8 + dims u32 each + flags u8 + kind u8
    let fixed = 2 + t.name.len() as u64 + 1 + 4 * t.shape.len() as u64 + 1 + 1;
    fixed
        + match &t.encoding {
            Encoding::Indexed { table, coding, .. } => indexed::header_bytes(table, coding),
            Encoding::ProductQuantized(p) => indexed::pq_header_bytes(p),
            _ => 0,
        }
}

fn kind_tag(e: &Encoding) -> u8 {
    match e {
        Encoding::F32(_) => 0,
        Encoding::Bf16(_) => 1,
        Encoding::F16(_) => 2,
        Encoding::Int8PerChannel { .. } => 4,
        Encoding::Indexed { table, coding, .. } => indexed::kind_tag(table, coding),
        Encoding::ProductQuantized(_) => indexed::KIND_PQ,
    }
}

fn write_tensor(out: &mut Vec<u8>, t: &EncodedTensor, shared_code: &[CodeLengths]) -> Result<()> {
    out.extend_from_slice(&(t.name.len() as u16).to_le_bytes());
    out.extend_from_slice(t.name.as_bytes());
    out.push(t.shape.len() as u8);
    for d in &t.shape {
        out.extend_from_slice(&(*d as u32).to_le_bytes());
    }
    out.push(t.compressible as u8);
    out.push(kind_tag(&t.encoding));
    match &t.encoding {
        Encoding::F32(v) => put_f32s(out, v),
        Encoding::Bf16(v) | Encoding::F16(v) => {
            for x in v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        Encoding::Int8PerChannel { scales, q } => {
            put_f32s(out, scales);
            out.extend(q.iter().map(|v| *v as u8));
        }
        Encoding::Indexed {
            table,
            coding,
            indices,
        } => indexed::write(out, &t.name, (table, coding, indices), shared_code)?,
        Encoding::ProductQuantized(p) => indexed::write_pq(out, &t.name, p, shared_code)?,
    }
    Ok(())
}

/// Writes `artifact` to `path` atomically (temporary file in the same directory, then
/// rename) and returns the bytes written.
pub fn write_file(artifact: &Artifact, path: &Path) -> Result<u64> {
    let bytes = write(artifact)?;
    crate::io::atomic_write(path, &bytes)?;
    Ok(bytes.len() as u64)
}

/// Reads a container file.
pub fn read_file(path: &Path) -> Result<Artifact> {
    let bytes = std::fs::read(path).map_err(|source| CoreError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    read(&bytes).map_err(|e| match e {
        CoreError::MalformedContainer { reason, .. } => CoreError::MalformedContainer {
            path: Some(path.to_path_buf()),
            reason,
        },
        other => other,
    })
}

/// What the reader may decode from one container, so that a damaged or hostile file
/// cannot make it allocate more than it states.
///
/// Lengths in the file are checked against the bytes present before anything is
/// allocated, except where an encoding spends no bits per value (a one-entry codebook,
/// a Huffman code with one symbol): there only the shape says how many values there are,
/// and this bound caps them. The reader's largest single allocation is then at most
/// `4 · max_values` bytes plus 48 bytes per byte of the file (its list of tensors: a
/// tensor takes at least 5 bytes of the file and about 200 bytes of memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// Total values (over all tensors) the container may hold.
    pub max_values: u64,
}

impl ReadLimits {
    /// Values allowed without regard to the file size: 2^26 (256 MiB as f32).
    pub const BASE_VALUES: u64 = 1 << 26;
    /// Further values allowed per byte of the file: 64, i.e. 1/8 bit per value, far
    /// below any real encoding's average (a 1-bit index is 8 values per byte).
    pub const VALUES_PER_BYTE: u64 = 64;

    /// The default for a file of `len` bytes: [`Self::BASE_VALUES`] plus
    /// [`Self::VALUES_PER_BYTE`] per byte.
    pub fn for_input(len: usize) -> Self {
        ReadLimits {
            max_values: Self::BASE_VALUES
                .saturating_add((len as u64).saturating_mul(Self::VALUES_PER_BYTE)),
        }
    }
}

pub(crate) struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
    /// Values the tensors still to come may hold ([`ReadLimits::max_values`] minus the
    /// values of the tensors read so far).
    values_left: u64,
}

/// Fewest bytes a tensor takes: name length (2), ndim, flags and kind (1 each).
const MIN_TENSOR_BYTES: usize = 5;

impl<'a> Reader<'a> {
    /// How many of `count` announced entries of at least `min_bytes` each the bytes
    /// left can hold: the capacity to reserve, so a damaged count cannot make the
    /// reader reserve memory for entries that are not there.
    fn room_for(&self, count: usize, min_bytes: usize) -> usize {
        count.min((self.b.len() - self.pos) / min_bytes)
    }

    /// Accounts for a tensor of `n` values before anything of that size is allocated.
    fn claim_values(&mut self, name: &str, n: usize) -> Result<()> {
        match self.values_left.checked_sub(n as u64) {
            Some(left) => {
                self.values_left = left;
                Ok(())
            }
            None => Err(malformed(format!(
                "tensor `{name}`: {n} values exceed the reader's remaining budget of {} \
                 (a damaged shape, or a container larger than ReadLimits allows)",
                self.values_left
            ))),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.b.len() - self.pos < n {
            return Err(malformed(format!(
                "truncated: wanted {n} bytes at offset {} of {}",
                self.pos,
                self.b.len()
            )));
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn f32s(&mut self, n: usize) -> Result<Vec<f32>> {
        Ok(self
            .take(
                n.checked_mul(4)
                    .ok_or_else(|| malformed("length overflow"))?,
            )?
            .chunks_exact(4)
            .map(|c| f32::from_bits(u32::from_le_bytes(c.try_into().expect("4 bytes"))))
            .collect())
    }
    fn u16s(&mut self, n: usize) -> Result<Vec<u16>> {
        Ok(self
            .take(
                n.checked_mul(2)
                    .ok_or_else(|| malformed("length overflow"))?,
            )?
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes(c.try_into().expect("2 bytes")))
            .collect())
    }
}

fn malformed(reason: impl Into<String>) -> CoreError {
    CoreError::MalformedContainer {
        path: None,
        reason: reason.into(),
    }
}

/// Parses container bytes, verifying magic and checksum, and validates every encoding,
/// under the default [`ReadLimits::for_input`].
pub fn read(bytes: &[u8]) -> Result<Artifact> {
    read_with_limits(bytes, ReadLimits::for_input(bytes.len()))
}

/// [`read`] with explicit limits (a model too large for the default, or a test that
/// wants a tighter bound).
pub fn read_with_limits(bytes: &[u8], limits: ReadLimits) -> Result<Artifact> {
    let (version, body) = check_envelope(bytes)?;
    let mut r = Reader {
        b: body,
        pos: 8,
        values_left: limits.max_values,
    };
    let counts = read_counts(&mut r, version)?;
    let (shared_codebooks, shared_exp_tables, shared_code_tables) = read_shared(&mut r, &counts)?;
    let mut tensors = Vec::with_capacity(r.room_for(counts.tensors, MIN_TENSOR_BYTES));
    for _ in 0..counts.tensors {
        tensors.push(read_tensor(&mut r, &shared_code_tables)?);
    }
    if r.pos != body.len() {
        return Err(malformed(format!(
            "{} trailing bytes after the last tensor",
            body.len() - r.pos
        )));
    }
    let artifact = Artifact {
        shared_codebooks,
        shared_exp_tables,
        shared_code_tables,
        tensors,
    };
    artifact.validate()?;
    Ok(artifact)
}

/// The format version from the magic, and the body (everything before the checksum
/// trailer) once the checksum matches.
fn check_envelope(bytes: &[u8]) -> Result<(u8, &[u8])> {
    let min = (FIXED_HEADER_BYTES + TRAILER_BYTES) as usize;
    if bytes.len() < min {
        return Err(malformed(format!(
            "{} bytes is shorter than the minimum {min}",
            bytes.len()
        )));
    }
    let version = match &bytes[..8] {
        m if m == MAGIC => 1,
        m if m == MAGIC_V2 => 2,
        m if m == MAGIC_V3 => 3,
        _ => {
            return Err(malformed(
                "bad magic (not a weightbench container, or another version)",
            ))
        }
    };
    let (body, trailer) = bytes.split_at(bytes.len() - TRAILER_BYTES as usize);
    if Sha256::digest(body).as_slice() != trailer {
        return Err(malformed("checksum mismatch (file corrupted or truncated)"));
    }
    Ok((version, body))
}

/// How many shared tables of each kind and tensors the header announces.
struct Counts {
    codebooks: usize,
    tensors: usize,
    exp_tables: usize,
    code_tables: usize,
}

fn read_counts(r: &mut Reader<'_>, version: u8) -> Result<Counts> {
    let codebooks = r.u32()? as usize;
    let tensors = r.u32()? as usize;
    let exp_tables = if version >= 2 { r.u32()? as usize } else { 0 };
    let code_tables = if version >= 3 { r.u32()? as usize } else { 0 };
    if version == 2 && exp_tables == 0 {
        return Err(malformed(
            "version-2 container without shared exponent tables (must be written as version 1)",
        ));
    }
    if version == 3 && code_tables == 0 {
        return Err(malformed(
            "version-3 container without shared code tables (must be written as version 1 or 2)",
        ));
    }
    Ok(Counts {
        codebooks,
        tensors,
        exp_tables,
        code_tables,
    })
}

/// The shared codebooks, exponent tables and code tables, in that order.
type Shared = (Vec<Vec<f32>>, Vec<Vec<u8>>, Vec<CodeLengths>);

fn read_shared(r: &mut Reader<'_>, n: &Counts) -> Result<Shared> {
    // Every shared table starts with its u32 length.
    let mut codebooks = Vec::with_capacity(r.room_for(n.codebooks, 4));
    for _ in 0..n.codebooks {
        let k = r.u32()? as usize;
        codebooks.push(r.f32s(k)?);
    }
    let mut exp_tables = Vec::with_capacity(r.room_for(n.exp_tables, 4));
    for _ in 0..n.exp_tables {
        let k = r.u32()? as usize;
        exp_tables.push(r.take(k)?.to_vec());
    }
    let mut code_tables: Vec<CodeLengths> = Vec::with_capacity(r.room_for(n.code_tables, 4));
    for _ in 0..n.code_tables {
        let k = r.u32()? as usize;
        code_tables.push(
            r.take(k)?
                .iter()
                .map(|b| code_length_from_byte(*b))
                .collect(),
        );
    }
    Ok((codebooks, exp_tables, code_tables))
}

/// One tensor: name, shape, flag and its encoding.
fn read_tensor(r: &mut Reader<'_>, shared_code_tables: &[CodeLengths]) -> Result<EncodedTensor> {
    let name_len = r.u16()? as usize;
    let name = String::from_utf8(r.take(name_len)?.to_vec())
        .map_err(|_| malformed("tensor name is not UTF-8"))?;
    let ndim = r.u8()? as usize;
    let shape = (0..ndim)
        .map(|_| r.u32().map(|d| d as usize))
        .collect::<Result<Vec<_>>>()?;
    let n = shape
        .iter()
        .try_fold(1usize, |a, d| a.checked_mul(*d))
        .ok_or_else(|| malformed(format!("tensor `{name}`: shape overflows")))?;
    r.claim_values(&name, n)?;
    let compressible = r.u8()? & 1 == 1;
    let kind = r.u8()?;
    let encoding = match kind {
        0 => Encoding::F32(r.f32s(n)?),
        1 => Encoding::Bf16(r.u16s(n)?),
        2 => Encoding::F16(r.u16s(n)?),
        4 => {
            let c = shape.first().copied().unwrap_or(1).max(1);
            let scales = r.f32s(c)?;
            let q = r.take(n)?.iter().map(|b| *b as i8).collect();
            Encoding::Int8PerChannel { scales, q }
        }
        3 | 5..=indexed::KIND_GENERIC => indexed::read(r, &name, n, kind, shared_code_tables)?,
        indexed::KIND_PQ => indexed::read_pq(r, &name, n, shared_code_tables)?,
        k => return Err(malformed(format!("tensor `{name}`: unknown kind {k}"))),
    };
    Ok(EncodedTensor {
        name,
        shape,
        compressible,
        encoding,
    })
}
