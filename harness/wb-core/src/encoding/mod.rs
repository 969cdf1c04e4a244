//! Encodings of one tensor and of a whole compressed model ([`Artifact`]), with the
//! analytic size accounting that the container must match byte for byte.

use crate::bf16fields::{self, FieldError, Fields};
use crate::error::{CoreError, Result};
use crate::weights::{Tensor, WeightSet};
use half::{bf16, f16};
use std::collections::BTreeMap;
use wb_kernels::huffman::CanonicalCode;

pub mod indexed;
pub mod pq;

pub use indexed::{
    frequencies, Bf16Exponents, CodeTableRef, CodebookRef, ExpTableRef, IndexCoding, Ref,
    SharedTables, ValueTable,
};
pub use pq::{Pq, PqCodewords};

/// A Huffman code table: one entry per table entry, `None` for an entry that has no
/// code (never used), `Some(len)` for its code length in bits. The canonical code is a
/// function of the lengths alone ([`wb_kernels::huffman`]).
pub type CodeLengths = Vec<Option<u8>>;

/// How one tensor's values are stored.
#[derive(Debug, Clone, PartialEq)]
pub enum Encoding {
    /// Plain IEEE f32, 32 bits per value.
    F32(Vec<f32>),
    /// bfloat16 bit patterns, 16 bits per value.
    Bf16(Vec<u16>),
    /// IEEE half bit patterns, 16 bits per value.
    F16(Vec<u16>),
    /// Symmetric int8 per output channel: value = `q * scales[channel]`, channel = the
    /// outermost dimension.
    Int8PerChannel {
        /// One FP32 scale per output channel.
        scales: Vec<f32>,
        /// Quantized values, row-major.
        q: Vec<i8>,
    },
    /// Weight sharing: every value comes from `table` through its index; the indices
    /// are stored with `coding` (see [`indexed`] for the combinations).
    Indexed {
        /// The shared values.
        table: ValueTable,
        /// How the indices are stored.
        coding: IndexCoding,
        /// One index per value, row-major.
        indices: Vec<u32>,
    },
    /// Product quantization: one index per sub-vector of `dim` consecutive values into a
    /// codebook of `dim`-value codewords ([`pq`]).
    ProductQuantized(Pq),
}

/// The error of an encoding whose tensor is not known yet (the constructors below).
fn unnamed(reason: impl Into<String>) -> CoreError {
    CoreError::InvalidEncoding {
        name: "?".into(),
        reason: reason.into(),
    }
}

impl Encoding {
    /// Casts to bfloat16 with round-to-nearest-even (NaN stays NaN).
    pub fn bf16_from_f32(values: &[f32]) -> Self {
        Encoding::Bf16(
            values
                .iter()
                .map(|v| bf16::from_f32(*v).to_bits())
                .collect(),
        )
    }

    /// Casts to IEEE half with round-to-nearest-even (overflow becomes ±inf).
    pub fn f16_from_f32(values: &[f32]) -> Self {
        Encoding::F16(values.iter().map(|v| f16::from_f32(*v).to_bits()).collect())
    }

    /// `indices` into a table of `k` entries (local or shared) at ⌈log2 k⌉ bits.
    pub fn indexed_fixed(table: ValueTable, k: usize, indices: Vec<u32>) -> Self {
        Encoding::Indexed {
            table,
            coding: IndexCoding::fixed(k),
            indices,
        }
    }

    /// A codebook encoding with a local FP32 codebook and the narrowest index width.
    pub fn codebook_local(codebook: Vec<f32>, indices: Vec<u32>) -> Self {
        let k = codebook.len();
        Self::indexed_fixed(ValueTable::F32(Ref::Local(codebook)), k, indices)
    }

    /// A Huffman-coded FP32 codebook encoding of `indices` under the code table
    /// `lengths` (which `code` refers to: the local table itself or the shared one's
    /// entries), with the stream length computed.
    ///
    /// # Errors
    /// [`CoreError::InvalidEncoding`] (tensor name `?`) when `lengths` is not a valid
    /// code or an index has no code.
    pub fn huffman_codebook(
        codebook: CodebookRef,
        code: CodeTableRef,
        lengths: &[Option<u8>],
        indices: Vec<u32>,
    ) -> Result<Self> {
        let coding = IndexCoding::huffman(code, lengths, &indices).map_err(unnamed)?;
        Ok(Encoding::Indexed {
            table: ValueTable::F32(codebook),
            coding,
            indices,
        })
    }

    /// A Huffman-coded codebook encoding with its own codebook and its own code table,
    /// built from the frequencies of `indices` (one tree for this tensor).
    pub fn huffman_local(codebook: Vec<f32>, indices: Vec<u32>) -> Result<Self> {
        let coding = IndexCoding::huffman_local(codebook.len(), &indices).map_err(unnamed)?;
        Ok(Encoding::Indexed {
            table: ValueTable::F32(Ref::Local(codebook)),
            coding,
            indices,
        })
    }

    /// Splits bfloat16 bit patterns into exponent-table fields with the tensor's own
    /// exponent table (exact: fails when an exponent is not in `table` or a dropped
    /// mantissa bit is set).
    pub fn bf16_fields_local(
        bits: &[u16],
        table: Vec<u8>,
        mantissa_bits: u8,
    ) -> std::result::Result<Self, FieldError> {
        let f = bf16fields::split(bits, &table, mantissa_bits)?;
        let k = table.len();
        Ok(Self::from_fields(Ref::Local(table), k, mantissa_bits, f))
    }

    /// Like [`Self::bf16_fields_local`] but referencing shared table `id`, whose entries
    /// are `table`.
    pub fn bf16_fields_shared(
        bits: &[u16],
        id: u32,
        table: &[u8],
        mantissa_bits: u8,
    ) -> std::result::Result<Self, FieldError> {
        let f = bf16fields::split(bits, table, mantissa_bits)?;
        Ok(Self::from_fields(
            Ref::Shared(id),
            table.len(),
            mantissa_bits,
            f,
        ))
    }

    fn from_fields(table: ExpTableRef, k: usize, mantissa_bits: u8, f: Fields) -> Self {
        Self::indexed_fixed(
            ValueTable::Bf16Exponents(Bf16Exponents {
                table,
                mantissa_bits,
                signs: f.signs,
                mantissas: f.mantissas,
            }),
            k,
            f.indices.into_iter().map(u32::from).collect(),
        )
    }

    /// Value sharing of bfloat16 bit patterns: the table holds the distinct patterns in
    /// ascending bit order, the indices point into it at ⌈log2 k⌉ bits.
    pub fn bf16_table(bits: &[u16]) -> Self {
        let mut values = bits.to_vec();
        values.sort_unstable();
        values.dedup();
        let indices = bits
            .iter()
            .map(|b| values.binary_search(b).expect("value is in the table") as u32)
            .collect();
        let k = values.len();
        Self::indexed_fixed(ValueTable::Bf16(values), k, indices)
    }

    /// The same encoding with its indices Huffman-coded under a code table of their own
    /// (one optimal tree for this tensor); encodings without indices, and indices that
    /// are Huffman-coded already, are returned unchanged. `k` is the number of table
    /// entries (see [`ValueTable::entries`]).
    ///
    /// # Errors
    /// [`CoreError::InvalidEncoding`] (tensor name `?`) when an index is out of range.
    pub fn with_huffman_indices(self, k: usize) -> Result<Self> {
        match self {
            Encoding::Indexed {
                table,
                coding: IndexCoding::Fixed { .. },
                indices,
            } => Ok(Encoding::Indexed {
                coding: IndexCoding::huffman_local(k, &indices).map_err(unnamed)?,
                table,
                indices,
            }),
            Encoding::ProductQuantized(mut p) if !p.coding.is_huffman() => {
                p.coding = IndexCoding::huffman_local(k, &p.indices).map_err(unnamed)?;
                Ok(Encoding::ProductQuantized(p))
            }
            other => Ok(other),
        }
    }

    /// The number of table entries, the index coding and the indices of an encoding
    /// that has indices (indexed or product-quantized), `None` otherwise.
    pub fn index_view(&self, shared: SharedTables<'_>) -> Option<(usize, &IndexCoding, &[u32])> {
        match self {
            Encoding::Indexed {
                table,
                coding,
                indices,
            } => Some((table.entries(shared).ok()?, coding, indices)),
            Encoding::ProductQuantized(p) => Some((p.k(), &p.coding, &p.indices)),
            _ => None,
        }
    }

    /// The index coding, mutably, of an encoding that has indices.
    fn coding_mut(&mut self) -> Option<&mut IndexCoding> {
        match self {
            Encoding::Indexed { coding, .. } => Some(coding),
            Encoding::ProductQuantized(p) => Some(&mut p.coding),
            _ => None,
        }
    }

    /// Short name of the encoding kind, as used in per-layer breakdowns: `f32`, `bf16`,
    /// `f16`, `int8-per-channel`, or for an indexed encoding the table's name
    /// ([`ValueTable::name`]) with `-shared` when the table is shared, and the
    /// Huffman-coded FP32 codebook `huffman-codebook[-shared]`, any other Huffman-coded
    /// table `…+huffman`.
    pub fn kind(&self) -> &'static str {
        let Encoding::Indexed { table, coding, .. } = self else {
            return match self {
                Encoding::F32(_) => "f32",
                Encoding::Bf16(_) => "bf16",
                Encoding::F16(_) => "f16",
                Encoding::ProductQuantized(p) => match (&p.codewords, p.coding.is_huffman()) {
                    (PqCodewords::F32(_), false) => "pq",
                    (PqCodewords::F32(_), true) => "pq+huffman",
                    (PqCodewords::F16(_), false) => "pq-f16",
                    (PqCodewords::F16(_), true) => "pq-f16+huffman",
                },
                _ => "int8-per-channel",
            };
        };
        match (table, table.is_shared(), coding.is_huffman()) {
            (ValueTable::F32(_), false, false) => "codebook",
            (ValueTable::F32(_), true, false) => "codebook-shared",
            (ValueTable::F32(_), false, true) => "huffman-codebook",
            (ValueTable::F32(_), true, true) => "huffman-codebook-shared",
            (ValueTable::F16(_), _, false) => "f16-codebook",
            (ValueTable::F16(_), _, true) => "f16-codebook+huffman",
            (ValueTable::Bf16(_), _, false) => "bf16-table",
            (ValueTable::Bf16(_), _, true) => "bf16-table+huffman",
            (ValueTable::Bf16Exponents(_), false, false) => "bf16-fields",
            (ValueTable::Bf16Exponents(_), true, false) => "bf16-fields-shared",
            (ValueTable::Bf16Exponents(_), false, true) => "bf16-fields+huffman",
            (ValueTable::Bf16Exponents(_), true, true) => "bf16-fields-shared+huffman",
        }
    }

    /// Number of encoded values.
    pub fn len(&self) -> usize {
        match self {
            Encoding::F32(v) => v.len(),
            Encoding::Bf16(v) | Encoding::F16(v) => v.len(),
            Encoding::Int8PerChannel { q, .. } => q.len(),
            Encoding::Indexed { indices, .. } => indices.len(),
            Encoding::ProductQuantized(p) => p.values,
        }
    }

    /// True when no value is encoded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One tensor of a compressed model.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedTensor {
    /// Parameter name.
    pub name: String,
    /// Shape, outermost first.
    pub shape: Vec<usize>,
    /// Whether the tensor counts as compressible (and so enters `bits_compressed`).
    pub compressible: bool,
    /// The stored values.
    pub encoding: Encoding,
}

impl EncodedTensor {
    /// Wraps `t` unchanged as FP32 (what every method does with tensors it does not compress).
    pub fn dense(t: &Tensor) -> Self {
        Self {
            name: t.name.clone(),
            shape: t.shape.clone(),
            compressible: t.compressible,
            encoding: Encoding::F32(t.data.clone()),
        }
    }

    /// Encodes `t` with `encoding`, keeping its name, shape and flag.
    pub fn with(t: &Tensor, encoding: Encoding) -> Self {
        Self {
            name: t.name.clone(),
            shape: t.shape.clone(),
            compressible: t.compressible,
            encoding,
        }
    }

    fn invalid(&self, reason: impl Into<String>) -> CoreError {
        CoreError::InvalidEncoding {
            name: self.name.clone(),
            reason: reason.into(),
        }
    }

    /// Checks the encoding against the shape and the artifact's shared sections.
    pub fn validate(&self, shared: SharedTables<'_>) -> Result<()> {
        // A checked product: a wrapped one (e.g. four dimensions of 2^16 wrap to 0) would
        // accept an encoding the reader then refuses ("shape overflows").
        let n = self
            .shape
            .iter()
            .try_fold(1usize, |a, d| a.checked_mul(*d))
            .ok_or_else(|| {
                self.invalid(format!(
                    "shape {:?} holds more values than fit in usize",
                    self.shape
                ))
            })?;
        if self.encoding.len() != n {
            return Err(self.invalid(format!(
                "shape {:?} holds {n} values but the encoding has {}",
                self.shape,
                self.encoding.len()
            )));
        }
        if self.name.len() > u16::MAX as usize || self.shape.len() > u8::MAX as usize {
            return Err(self.invalid("name longer than 65535 bytes or more than 255 dims"));
        }
        if let Some(d) = self.shape.iter().find(|d| **d > u32::MAX as usize) {
            return Err(self.invalid(format!("dimension {d} exceeds u32")));
        }
        match &self.encoding {
            Encoding::Int8PerChannel { scales, .. } => {
                let c = self.shape.first().copied().unwrap_or(1).max(1);
                if scales.len() != c {
                    return Err(
                        self.invalid(format!("{} scales for {c} output channels", scales.len()))
                    );
                }
                Ok(())
            }
            Encoding::Indexed {
                table,
                coding,
                indices,
            } => {
                let k = table.check(n, shared).map_err(|r| self.invalid(r))?;
                let table_name = match table {
                    ValueTable::F32(_) | ValueTable::F16(_) => "a codebook",
                    ValueTable::Bf16(_) => "a value table",
                    ValueTable::Bf16Exponents(_) => "an exponent table",
                };
                coding
                    .check(k, indices, table_name, shared)
                    .map_err(|r| self.invalid(r))
            }
            Encoding::ProductQuantized(p) => p.check(shared).map_err(|r| self.invalid(r)),
            Encoding::F32(_) | Encoding::Bf16(_) | Encoding::F16(_) => Ok(()),
        }
    }

    /// Decodes to f32 values (exactly what the container reader reproduces).
    pub fn decode(&self, shared: SharedTables<'_>) -> Result<Vec<f32>> {
        self.validate(shared)?;
        Ok(match &self.encoding {
            Encoding::F32(v) => v.clone(),
            Encoding::Bf16(v) => v.iter().map(|b| bf16::from_bits(*b).to_f32()).collect(),
            Encoding::F16(v) => v.iter().map(|b| f16::from_bits(*b).to_f32()).collect(),
            Encoding::Int8PerChannel { scales, q } => {
                let per = q.len() / scales.len().max(1);
                q.iter()
                    .enumerate()
                    .map(|(i, v)| *v as f32 * scales[i.checked_div(per).unwrap_or(0)])
                    .collect()
            }
            Encoding::Indexed { table, indices, .. } => table.decode(indices, shared),
            Encoding::ProductQuantized(p) => p.decode(),
        })
    }

    /// The tensor's size, component by component, exactly as the container writes it.
    pub fn size(&self) -> TensorSize {
        let n = self.encoding.len() as u64;
        let mut s = TensorSize {
            header: crate::container::tensor_header_bytes(self),
            ..TensorSize::default()
        };
        match &self.encoding {
            Encoding::F32(_) => {
                s.value_bits = 32 * n;
                s.values = 4 * n;
            }
            Encoding::Bf16(_) | Encoding::F16(_) => {
                s.value_bits = 16 * n;
                s.values = 2 * n;
            }
            Encoding::Int8PerChannel { scales, .. } => {
                s.scale_bits = 32 * scales.len() as u64;
                s.scales = 4 * scales.len() as u64;
                s.value_bits = 8 * n;
                s.values = n;
            }
            Encoding::Indexed { table, coding, .. } => {
                // A local table, and a local code table at one byte per entry, are both
                // tables: whole bytes, counted in the payload.
                s.codebook_bits = table.entry_bits() * table.local_entries() as u64
                    + 8 * coding.local_entries() as u64;
                s.codebook = s.codebook_bits / 8;
                s.index_bits = coding.index_bits(n as usize);
                s.indices = s.index_bits.div_ceil(8);
                // sign and kept mantissa of exponent sharing, packed together
                s.value_bits = table.residual_bits_per_value() * n;
                s.values = s.value_bits.div_ceil(8);
            }
            Encoding::ProductQuantized(p) => {
                // Codewords and a local code table are whole bytes, as for a codebook.
                s.codebook_bits = p.codewords.value_bits() * p.codewords.len() as u64
                    + 8 * p.coding.local_entries() as u64;
                s.codebook = s.codebook_bits / 8;
                s.index_bits = p.coding.index_bits(p.indices.len());
                s.indices = s.index_bits.div_ceil(8);
            }
        }
        s
    }
}

/// Size of one encoded tensor: bytes per container component, and the analytic bit
/// count of the payload (the "paper accounting": indices + codebook + scales + values,
/// no names or shapes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TensorSize {
    /// Name, shape, kind tag and codebook metadata, in bytes.
    pub header: u64,
    /// Local table bytes: FP32 codebook, 8-bit exponent table, 16-bit value table, or
    /// FP32 codebook plus 8-bit Huffman code table.
    pub codebook: u64,
    /// Packed index bytes.
    pub indices: u64,
    /// Dense value bytes (f32/bf16/f16/int8; sign + mantissa fields of bf16-fields).
    pub values: u64,
    /// Per-channel scale bytes.
    pub scales: u64,
    /// Analytic bits of the local codebook.
    pub codebook_bits: u64,
    /// Analytic bits of the indices (n · bits, or the Huffman stream length).
    pub index_bits: u64,
    /// Analytic bits of dense values.
    pub value_bits: u64,
    /// Analytic bits of the scales.
    pub scale_bits: u64,
}

impl TensorSize {
    /// Payload bits, the paper accounting of this tensor.
    pub fn payload_bits(&self) -> u64 {
        self.codebook_bits + self.index_bits + self.value_bits + self.scale_bits
    }

    /// Bytes the container spends on this tensor.
    pub fn bytes(&self) -> u64 {
        self.header + self.codebook + self.indices + self.values + self.scales
    }
}

/// A whole compressed model: every tensor of the model (compressed or FP32), plus
/// codebooks and exponent tables shared across tensors.
///
/// Build it with `..Default::default()` for the fields you do not use, so that new
/// shared sections do not break your code.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Artifact {
    /// Codebooks shared across layers (FP32 values), referenced by [`CodebookRef::Shared`].
    pub shared_codebooks: Vec<Vec<f32>>,
    /// Exponent tables shared across layers (8-bit biased exponents), referenced by
    /// [`ExpTableRef::Shared`]. When empty the container keeps its version-1 layout.
    pub shared_exp_tables: Vec<Vec<u8>>,
    /// Huffman code tables shared across layers (one byte per entry), referenced by
    /// [`CodeTableRef::Shared`]. When empty the container keeps its version-1 or -2
    /// layout.
    pub shared_code_tables: Vec<CodeLengths>,
    /// One entry per model parameter, in the model's order.
    pub tensors: Vec<EncodedTensor>,
}

/// The table size and indices of a tensor whose indices are stored at fixed width.
fn fixed_indices<'a>(t: &'a EncodedTensor, shared: SharedTables<'_>) -> Option<(usize, &'a [u32])> {
    match t.encoding.index_view(shared) {
        Some((k, IndexCoding::Fixed { .. }, indices)) => Some((k, indices)),
        _ => None,
    }
}

/// Where [`Artifact::huffman_coded`] keeps its code tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HuffmanScope {
    /// One code table per tensor, in the tensor.
    Tensor,
    /// One code table per table size, shared by the whole model.
    Model,
}

/// An index-coding post-stage the harness applies to any method's artifact
/// ([`Artifact::recoded`]), so that every codebook method can be compared with and
/// without entropy coding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostCoding {
    /// Every index at fixed width ⌈log2 k⌉.
    Fixed,
    /// Huffman-coded indices, one code table per tensor or per model.
    Huffman(HuffmanScope),
}

impl PostCoding {
    /// Every post-stage, by its name.
    pub const ALL: [(&'static str, PostCoding); 3] = [
        ("fixed", PostCoding::Fixed),
        ("huffman-tensor", PostCoding::Huffman(HuffmanScope::Tensor)),
        ("huffman-model", PostCoding::Huffman(HuffmanScope::Model)),
    ];

    /// The name used in experiment files and result rows.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, c)| *c == self)
            .map(|(n, _)| *n)
            .expect("every post-stage is listed")
    }

    /// The post-stage called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
    }
}

/// Size of a whole artifact.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ArtifactSize {
    /// Per tensor, in artifact order.
    pub tensors: Vec<(String, TensorSize)>,
    /// Fixed container header + shared codebook and exponent table length fields +
    /// checksum trailer, in bytes.
    pub container_overhead: u64,
    /// Shared codebook values, in bytes (= bits / 8: FP32 values).
    pub shared_codebooks: u64,
    /// Shared exponent table entries, in bytes (= bits / 8: one byte per entry).
    pub shared_exp_tables: u64,
    /// Shared Huffman code table entries, in bytes (= bits / 8: one byte per entry).
    pub shared_code_tables: u64,
    /// Weights counted by the paper accounting (compressible tensors).
    pub counted_params: u64,
    /// 32 × counted_params.
    pub bits_baseline: u64,
    /// Payload bits of the compressible tensors plus the shared codebooks, exponent
    /// tables and Huffman code tables.
    pub bits_compressed: u64,
    /// Exact size of the container file.
    pub total_bytes: u64,
}

impl ArtifactSize {
    /// `bits_baseline / bits_compressed` (compressible weights only).
    pub fn compression_ratio(&self) -> f64 {
        if self.bits_compressed == 0 {
            f64::INFINITY
        } else {
            self.bits_baseline as f64 / self.bits_compressed as f64
        }
    }

    /// Sums a component over all tensors.
    pub fn component(&self, f: impl Fn(&TensorSize) -> u64) -> u64 {
        self.tensors.iter().map(|(_, s)| f(s)).sum()
    }
}

impl Artifact {
    /// The uncompressed artifact: every tensor as FP32.
    pub fn dense(weights: &WeightSet) -> Self {
        Self {
            tensors: weights.tensors.iter().map(EncodedTensor::dense).collect(),
            ..Default::default()
        }
    }

    /// Encodes each compressible tensor with `f` and keeps the others FP32.
    pub fn map_compressible(
        weights: &WeightSet,
        mut f: impl FnMut(&Tensor) -> Result<Encoding>,
    ) -> Result<Self> {
        let tensors = weights
            .tensors
            .iter()
            .map(|t| {
                if t.compressible {
                    Ok(EncodedTensor::with(t, f(t)?))
                } else {
                    Ok(EncodedTensor::dense(t))
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            tensors,
            ..Default::default()
        })
    }

    /// The shared sections, as [`EncodedTensor::validate`] and
    /// [`EncodedTensor::decode`] take them.
    pub fn shared(&self) -> SharedTables<'_> {
        SharedTables {
            codebooks: &self.shared_codebooks,
            exp_tables: &self.shared_exp_tables,
            code_tables: &self.shared_code_tables,
        }
    }

    /// The same model with the fixed-width indices of every indexed tensor
    /// Huffman-coded, whatever its value table (entropy coding as a post-stage for any
    /// method's codebook). Decodes to exactly the same weights.
    ///
    /// - [`HuffmanScope::Tensor`]: each tensor gets an optimal code table of its own,
    ///   stored in the tensor; a tensor keeps its fixed-width indices when the table
    ///   plus the stream would take more bits than they do (small tensors).
    /// - [`HuffmanScope::Model`]: one code table per table size `k`, built from the
    ///   pooled index frequencies of all tensors with that `k` and stored once as a
    ///   shared section (moea-bins' model-wide tree generalised).
    ///
    /// Indices that are Huffman-coded already are kept.
    ///
    /// # Errors
    /// [`CoreError::InvalidEncoding`] when the artifact does not validate.
    pub fn huffman_coded(&self, scope: HuffmanScope) -> Result<Artifact> {
        self.validate()?;
        let shared = self.shared();
        let fixed = |t| fixed_indices(t, shared);
        let mut out = self.clone();
        match scope {
            HuffmanScope::Tensor => {
                for t in &mut out.tensors {
                    let Some((k, _)) = fixed_indices(t, shared) else {
                        continue;
                    };
                    let before = t.size().payload_bits();
                    let coded = EncodedTensor {
                        encoding: t.encoding.clone().with_huffman_indices(k)?,
                        ..t.clone()
                    };
                    if coded.size().payload_bits() < before {
                        *t = coded;
                    }
                }
            }
            HuffmanScope::Model => {
                let mut pooled: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
                for (k, indices) in self.tensors.iter().filter_map(fixed) {
                    let f = frequencies(k, indices).expect("validated");
                    let sum = pooled.entry(k).or_insert_with(|| vec![0; k]);
                    sum.iter_mut().zip(f).for_each(|(a, b)| *a += b);
                }
                let mut ids = BTreeMap::new();
                for (k, freqs) in pooled {
                    let lengths = wb_kernels::huffman::code_lengths(&freqs).map_err(|e| {
                        CoreError::InvalidEncoding {
                            name: format!("<shared code table for k = {k}>"),
                            reason: e.to_string(),
                        }
                    })?;
                    ids.insert(k, out.shared_code_tables.len() as u32);
                    out.shared_code_tables.push(lengths);
                }
                for (t, orig) in out.tensors.iter_mut().zip(&self.tensors) {
                    let Some((k, indices)) = fixed(orig) else {
                        continue;
                    };
                    let id = ids[&k];
                    let coding = IndexCoding::huffman(
                        Ref::Shared(id),
                        &out.shared_code_tables[id as usize],
                        indices,
                    )
                    .map_err(|r| t.invalid(r))?;
                    if let Some(c) = t.encoding.coding_mut() {
                        *c = coding;
                    }
                }
            }
        }
        out.validate()?;
        Ok(out)
    }

    /// The same model with every indexed tensor's indices at fixed width ⌈log2 k⌉
    /// (Huffman coding undone) and the shared code tables, then unused, dropped.
    /// Decodes to exactly the same weights.
    ///
    /// # Errors
    /// [`CoreError::InvalidEncoding`] when the artifact does not validate.
    pub fn fixed_width(&self) -> Result<Artifact> {
        self.validate()?;
        let shared = self.shared();
        let mut out = self.clone();
        for t in &mut out.tensors {
            if let Some((k, _, _)) = t.encoding.index_view(shared) {
                let fixed = IndexCoding::fixed(k);
                *t.encoding.coding_mut().expect("has indices") = fixed;
            }
        }
        out.shared_code_tables.clear();
        out.validate()?;
        Ok(out)
    }

    /// The same model with its indices recoded by `coding`: fixed width, or Huffman
    /// (from fixed width) in the given scope. Decodes to exactly the same weights.
    ///
    /// # Errors
    /// [`CoreError::InvalidEncoding`] when the artifact does not validate.
    pub fn recoded(&self, coding: PostCoding) -> Result<Artifact> {
        let fixed = self.fixed_width()?;
        match coding {
            PostCoding::Fixed => Ok(fixed),
            PostCoding::Huffman(scope) => fixed.huffman_coded(scope),
        }
    }

    /// Checks every shared code table and every tensor's encoding.
    pub fn validate(&self) -> Result<()> {
        for (id, t) in self.shared_code_tables.iter().enumerate() {
            CanonicalCode::new(t).map_err(|e| CoreError::InvalidEncoding {
                name: format!("<shared code table {id}>"),
                reason: e.to_string(),
            })?;
        }
        let shared = self.shared();
        self.tensors.iter().try_for_each(|t| t.validate(shared))
    }

    /// Decodes every tensor back to f32.
    pub fn decode(&self) -> Result<WeightSet> {
        let tensors = self
            .tensors
            .iter()
            .map(|t| {
                Tensor::new(
                    t.name.clone(),
                    t.shape.clone(),
                    t.decode(self.shared())?,
                    t.compressible,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        WeightSet::new(tensors)
    }

    /// Analytic size: what [`crate::container::write`] will produce, component by component.
    pub fn size(&self) -> ArtifactSize {
        let tensors: Vec<(String, TensorSize)> = self
            .tensors
            .iter()
            .map(|t| (t.name.clone(), t.size()))
            .collect();
        let shared_values: u64 = self.shared_codebooks.iter().map(|c| c.len() as u64).sum();
        let shared_exp: u64 = self.shared_exp_tables.iter().map(|t| t.len() as u64).sum();
        let shared_code: u64 = self.shared_code_tables.iter().map(|t| t.len() as u64).sum();
        let container_overhead = crate::container::header_bytes(self)
            + 4 * self.shared_codebooks.len() as u64
            + 4 * self.shared_exp_tables.len() as u64
            + 4 * self.shared_code_tables.len() as u64
            + crate::container::TRAILER_BYTES;
        let counted_params: u64 = self
            .tensors
            .iter()
            .filter(|t| t.compressible)
            .map(|t| t.encoding.len() as u64)
            .sum();
        let bits_compressed = self
            .tensors
            .iter()
            .zip(&tensors)
            .filter(|(t, _)| t.compressible)
            .map(|(_, (_, s))| s.payload_bits())
            .sum::<u64>()
            + 32 * shared_values
            + 8 * shared_exp
            + 8 * shared_code;
        let total_bytes = container_overhead
            + 4 * shared_values
            + shared_exp
            + shared_code
            + tensors.iter().map(|(_, s)| s.bytes()).sum::<u64>();
        ArtifactSize {
            tensors,
            container_overhead,
            shared_codebooks: 4 * shared_values,
            shared_exp_tables: shared_exp,
            shared_code_tables: shared_code,
            counted_params,
            bits_baseline: 32 * counted_params,
            bits_compressed,
            total_bytes,
        }
    }
}
