//! Encodings of one tensor and of a whole compressed model ([`Artifact`]), with the
//! analytic size accounting that the container must match byte for byte.

use crate::bf16fields::{self, FieldError, Fields};
use crate::bitpack::index_bits;
use crate::error::{CoreError, Result};
use crate::weights::{Tensor, WeightSet};
use half::{bf16, f16};
use wb_kernels::huffman::CanonicalCode;

/// A Huffman code table: one entry per codebook entry, `None` for an entry that has no
/// code (never used), `Some(len)` for its code length in bits. The canonical code is a
/// function of the lengths alone ([`wb_kernels::huffman`]).
pub type CodeLengths = Vec<Option<u8>>;

/// Where a codebook encoding finds its shared values.
#[derive(Debug, Clone, PartialEq)]
pub enum CodebookRef {
    /// The tensor carries its own FP32 codebook.
    Local(Vec<f32>),
    /// The tensor uses codebook number `id` of [`Artifact::shared_codebooks`].
    Shared(u32),
}

/// Where a [`Encoding::Bf16Fields`] encoding finds its table of exponents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpTableRef {
    /// The tensor carries its own table of 8-bit biased exponents (a per-layer table).
    Local(Vec<u8>),
    /// The tensor uses table number `id` of [`Artifact::shared_exp_tables`] (e.g. one
    /// model-wide table).
    Shared(u32),
}

/// Where a [`Encoding::HuffmanCodebook`] encoding finds its Huffman code table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeTableRef {
    /// The tensor carries its own code table (one Huffman tree per layer).
    Local(CodeLengths),
    /// The tensor uses table number `id` of [`Artifact::shared_code_tables`] (e.g. one
    /// Huffman tree for the whole model).
    Shared(u32),
}

/// How one tensor's values are stored.
#[derive(Debug, Clone, PartialEq)]
pub enum Encoding {
    /// Plain IEEE f32, 32 bits per value.
    F32(Vec<f32>),
    /// bfloat16 bit patterns, 16 bits per value.
    Bf16(Vec<u16>),
    /// IEEE half bit patterns, 16 bits per value.
    F16(Vec<u16>),
    /// Weight sharing: every value is `codebook[index]`; indices are stored bit-packed
    /// at `bits` = ⌈log2 k⌉ bits, centroids as FP32.
    Codebook {
        /// The shared values.
        codebook: CodebookRef,
        /// Index width in bits; must equal ⌈log2 k⌉ of the codebook.
        bits: u8,
        /// One index per value, row-major.
        indices: Vec<u32>,
    },
    /// Symmetric int8 per output channel: value = `q * scales[channel]`, channel = the
    /// outermost dimension.
    Int8PerChannel {
        /// One FP32 scale per output channel.
        scales: Vec<f32>,
        /// Quantized values, row-major.
        q: Vec<i8>,
    },
    /// bfloat16 stored by fields (exponent sharing, [`crate::bf16fields`]): each value is
    /// its sign bit, an `index_bits`-bit index into a table of 8-bit biased exponents and
    /// the top `mantissa_bits` bits of its mantissa (the dropped low bits are zero). The
    /// decoded value is the bfloat16 `sign | table[index] | mantissa << (7 − mantissa_bits)`.
    /// Exponent field 0 (zero, subnormals) and 255 (inf, NaN) are ordinary table entries.
    Bf16Fields {
        /// The exponent table.
        exp_table: ExpTableRef,
        /// Index width; must equal ⌈log2 |table|⌉ (0 for a single entry).
        index_bits: u8,
        /// Kept mantissa bits, 0–7.
        mantissa_bits: u8,
        /// Sign bits (`true` = negative), row-major.
        signs: Vec<bool>,
        /// Exponent indices, row-major.
        indices: Vec<u8>,
        /// Kept mantissa bits of each value, right-aligned, row-major.
        mantissas: Vec<u8>,
    },
    /// Value sharing in bfloat16: every value is the bfloat16 `values[index]`; the table
    /// is stored at 16 bits per entry and the indices bit-packed at `bits` = ⌈log2 k⌉.
    Bf16Table {
        /// The distinct bfloat16 bit patterns.
        values: Vec<u16>,
        /// Index width in bits; must equal ⌈log2 k⌉.
        bits: u8,
        /// One index per value, row-major.
        indices: Vec<u32>,
    },
    /// Weight sharing with Huffman-coded indices: every value is `codebook[index]`;
    /// the indices are stored as one canonical-Huffman bit stream under the code
    /// table, centroids as FP32, the table at one byte per codebook entry.
    HuffmanCodebook {
        /// The shared values.
        codebook: CodebookRef,
        /// The code lengths (as many entries as the codebook).
        code: CodeTableRef,
        /// Length of the coded index stream in bits (`Σ length(code[index])`); checked
        /// against the table by `validate`.
        stream_bits: u64,
        /// One index per value, row-major.
        indices: Vec<u32>,
    },
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

    /// A codebook encoding with a local codebook and the narrowest index width.
    pub fn codebook_local(codebook: Vec<f32>, indices: Vec<u32>) -> Self {
        let bits = index_bits(codebook.len());
        Encoding::Codebook {
            codebook: CodebookRef::Local(codebook),
            bits,
            indices,
        }
    }

    /// A Huffman-coded codebook encoding of `indices` under the code table `lengths`
    /// (which `code` refers to: the local table itself or the shared one's entries),
    /// with the stream length computed.
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
        let invalid = |e: wb_kernels::KernelError| CoreError::InvalidEncoding {
            name: "?".into(),
            reason: e.to_string(),
        };
        let stream_bits = CanonicalCode::new(lengths)
            .map_err(invalid)?
            .encoded_bits(&indices)
            .map_err(invalid)?;
        Ok(Encoding::HuffmanCodebook {
            codebook,
            code,
            stream_bits,
            indices,
        })
    }

    /// A Huffman-coded codebook encoding with its own codebook and its own code table,
    /// built from the frequencies of `indices` (one tree for this tensor).
    pub fn huffman_local(codebook: Vec<f32>, indices: Vec<u32>) -> Result<Self> {
        let mut freqs = vec![0u64; codebook.len()];
        for &i in &indices {
            match freqs.get_mut(i as usize) {
                Some(f) => *f += 1,
                None => {
                    return Err(CoreError::InvalidEncoding {
                        name: "?".into(),
                        reason: format!(
                            "index {i} out of range for a codebook of {}",
                            codebook.len()
                        ),
                    })
                }
            }
        }
        let lengths =
            wb_kernels::huffman::code_lengths(&freqs).map_err(|e| CoreError::InvalidEncoding {
                name: "?".into(),
                reason: e.to_string(),
            })?;
        Self::huffman_codebook(
            CodebookRef::Local(codebook),
            CodeTableRef::Local(lengths.clone()),
            &lengths,
            indices,
        )
    }

    /// Splits bfloat16 bit patterns into a [`Encoding::Bf16Fields`] with its own exponent
    /// table (exact: fails when an exponent is not in `table` or a dropped mantissa bit
    /// is set).
    pub fn bf16_fields_local(
        bits: &[u16],
        table: Vec<u8>,
        mantissa_bits: u8,
    ) -> std::result::Result<Self, FieldError> {
        let f = bf16fields::split(bits, &table, mantissa_bits)?;
        Ok(Self::from_fields(
            ExpTableRef::Local(table.clone()),
            table.len(),
            mantissa_bits,
            f,
        ))
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
            ExpTableRef::Shared(id),
            table.len(),
            mantissa_bits,
            f,
        ))
    }

    fn from_fields(exp_table: ExpTableRef, k: usize, mantissa_bits: u8, f: Fields) -> Self {
        Encoding::Bf16Fields {
            exp_table,
            index_bits: index_bits(k),
            mantissa_bits,
            signs: f.signs,
            indices: f.indices,
            mantissas: f.mantissas,
        }
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
        Encoding::Bf16Table {
            bits: index_bits(values.len()),
            values,
            indices,
        }
    }

    /// Short name of the encoding kind, as used in per-layer breakdowns.
    pub fn kind(&self) -> &'static str {
        match self {
            Encoding::F32(_) => "f32",
            Encoding::Bf16(_) => "bf16",
            Encoding::F16(_) => "f16",
            Encoding::Codebook {
                codebook: CodebookRef::Local(_),
                ..
            } => "codebook",
            Encoding::Codebook {
                codebook: CodebookRef::Shared(_),
                ..
            } => "codebook-shared",
            Encoding::Int8PerChannel { .. } => "int8-per-channel",
            Encoding::Bf16Fields {
                exp_table: ExpTableRef::Local(_),
                ..
            } => "bf16-fields",
            Encoding::Bf16Fields {
                exp_table: ExpTableRef::Shared(_),
                ..
            } => "bf16-fields-shared",
            Encoding::Bf16Table { .. } => "bf16-table",
            Encoding::HuffmanCodebook {
                codebook: CodebookRef::Local(_),
                ..
            } => "huffman-codebook",
            Encoding::HuffmanCodebook {
                codebook: CodebookRef::Shared(_),
                ..
            } => "huffman-codebook-shared",
        }
    }

    pub(crate) fn kind_tag(&self) -> u8 {
        match self {
            Encoding::F32(_) => 0,
            Encoding::Bf16(_) => 1,
            Encoding::F16(_) => 2,
            Encoding::Codebook { .. } => 3,
            Encoding::Int8PerChannel { .. } => 4,
            Encoding::Bf16Fields { .. } => 5,
            Encoding::Bf16Table { .. } => 6,
            Encoding::HuffmanCodebook { .. } => 7,
        }
    }

    /// Number of encoded values.
    pub fn len(&self) -> usize {
        match self {
            Encoding::F32(v) => v.len(),
            Encoding::Bf16(v) | Encoding::F16(v) => v.len(),
            Encoding::Codebook { indices, .. }
            | Encoding::Bf16Table { indices, .. }
            | Encoding::HuffmanCodebook { indices, .. } => indices.len(),
            Encoding::Int8PerChannel { q, .. } => q.len(),
            Encoding::Bf16Fields { signs, .. } => signs.len(),
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

    /// Checks the encoding against the shape and the artifact's shared codebooks and
    /// exponent tables (for an artifact without shared Huffman code tables; see
    /// [`Self::validate_with`]).
    pub fn validate(&self, shared: &[Vec<f32>], shared_exp: &[Vec<u8>]) -> Result<()> {
        self.validate_with(shared, shared_exp, &[])
    }

    /// Checks the encoding against the shape and the artifact's shared codebooks,
    /// exponent tables and Huffman code tables.
    pub fn validate_with(
        &self,
        shared: &[Vec<f32>],
        shared_exp: &[Vec<u8>],
        shared_code: &[CodeLengths],
    ) -> Result<()> {
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
            Encoding::Codebook {
                codebook,
                bits,
                indices,
            } => {
                let k = self.codebook_len(codebook, shared)?;
                if k == 0 {
                    return Err(self.invalid("empty codebook"));
                }
                self.check_width(*bits, k, "a codebook")?;
                self.check_indices(indices, k, "index", "a codebook")
            }
            Encoding::Int8PerChannel { scales, .. } => {
                let c = self.shape.first().copied().unwrap_or(1).max(1);
                if scales.len() != c {
                    return Err(
                        self.invalid(format!("{} scales for {c} output channels", scales.len()))
                    );
                }
                Ok(())
            }
            Encoding::Bf16Fields { .. } => self.check_bf16_fields(shared_exp),
            Encoding::Bf16Table {
                values,
                bits,
                indices,
            } => {
                let k = values.len();
                if k == 0 {
                    return Err(self.invalid("empty value table"));
                }
                self.check_width(*bits, k, "a value table")?;
                self.check_indices(indices, k, "index", "a value table")
            }
            Encoding::HuffmanCodebook { .. } => self.check_huffman(shared, shared_code),
            _ => Ok(()),
        }
    }

    /// A fixed index width must be exactly ⌈log2 k⌉ for a table of `k` entries.
    fn check_width(&self, bits: u8, k: usize, table: &str) -> Result<()> {
        if bits != index_bits(k) {
            return Err(self.invalid(format!(
                "index width {bits} bits but {table} of {k} needs exactly {}",
                index_bits(k)
            )));
        }
        Ok(())
    }

    /// Every index must point into a table of `k` entries.
    fn check_indices<T: Copy + Into<u64> + std::fmt::Display>(
        &self,
        indices: &[T],
        k: usize,
        what: &str,
        table: &str,
    ) -> Result<()> {
        match indices
            .iter()
            .enumerate()
            .find(|(_, v)| (**v).into() >= k as u64)
        {
            Some((i, v)) => Err(self.invalid(format!(
                "{what} {v} at position {i} out of range for {table} of {k}"
            ))),
            None => Ok(()),
        }
    }

    /// BF16 fields: table size, index and mantissa widths, field lengths, indices and
    /// mantissas in range.
    fn check_bf16_fields(&self, shared_exp: &[Vec<u8>]) -> Result<()> {
        let Encoding::Bf16Fields {
            exp_table,
            index_bits: bits,
            mantissa_bits,
            signs,
            indices,
            mantissas,
        } = &self.encoding
        else {
            return Ok(());
        };
        let table = self.exp_table(exp_table, shared_exp)?;
        let k = table.len();
        if k == 0 || k > 256 {
            return Err(self.invalid(format!("exponent table of {k} entries (1 to 256 allowed)")));
        }
        self.check_width(*bits, k, "an exponent table")?;
        if *mantissa_bits > bf16fields::BF16_MANTISSA_BITS {
            return Err(self.invalid(format!("{mantissa_bits} mantissa bits; bfloat16 has 7")));
        }
        if indices.len() != signs.len() || mantissas.len() != signs.len() {
            return Err(self.invalid(format!(
                "{} signs, {} indices and {} mantissas",
                signs.len(),
                indices.len(),
                mantissas.len()
            )));
        }
        self.check_indices(indices, k, "exponent index", "a table")?;
        if let Some((i, m)) = mantissas
            .iter()
            .enumerate()
            .find(|(_, m)| (**m as u32) >> *mantissa_bits != 0)
        {
            return Err(self.invalid(format!(
                "mantissa {m} at position {i} does not fit in {mantissa_bits} bits"
            )));
        }
        Ok(())
    }

    /// Huffman-coded codebook: code table as long as the codebook and a valid prefix
    /// code, indices in range, and the stream length they code to.
    fn check_huffman(&self, shared: &[Vec<f32>], shared_code: &[CodeLengths]) -> Result<()> {
        let Encoding::HuffmanCodebook {
            codebook,
            code,
            stream_bits,
            indices,
        } = &self.encoding
        else {
            return Ok(());
        };
        let k = self.codebook_len(codebook, shared)?;
        if k == 0 {
            return Err(self.invalid("empty codebook"));
        }
        let table = self.code_table(code, shared_code)?;
        if table.len() != k {
            return Err(self.invalid(format!(
                "code table of {} entries for a codebook of {k}",
                table.len()
            )));
        }
        let canon = CanonicalCode::new(table).map_err(|e| self.invalid(e.to_string()))?;
        self.check_indices(indices, k, "index", "a codebook")?;
        let bits = canon
            .encoded_bits(indices)
            .map_err(|e| self.invalid(e.to_string()))?;
        if bits != *stream_bits {
            return Err(self.invalid(format!(
                "stream length {stream_bits} bits but the indices code to {bits}"
            )));
        }
        Ok(())
    }

    fn codebook_len(&self, codebook: &CodebookRef, shared: &[Vec<f32>]) -> Result<usize> {
        match codebook {
            CodebookRef::Local(cb) => Ok(cb.len()),
            CodebookRef::Shared(id) => shared.get(*id as usize).map(Vec::len).ok_or_else(|| {
                self.invalid(format!(
                    "shared codebook {id} does not exist ({} present)",
                    shared.len()
                ))
            }),
        }
    }

    fn code_table<'s>(
        &self,
        r: &'s CodeTableRef,
        shared_code: &'s [CodeLengths],
    ) -> Result<&'s [Option<u8>]> {
        match r {
            CodeTableRef::Local(t) => Ok(t),
            CodeTableRef::Shared(id) => shared_code
                .get(*id as usize)
                .map(Vec::as_slice)
                .ok_or_else(|| {
                    self.invalid(format!(
                        "shared code table {id} does not exist ({} present)",
                        shared_code.len()
                    ))
                }),
        }
    }

    fn exp_table<'s>(&self, r: &'s ExpTableRef, shared_exp: &'s [Vec<u8>]) -> Result<&'s [u8]> {
        match r {
            ExpTableRef::Local(t) => Ok(t),
            ExpTableRef::Shared(id) => {
                shared_exp
                    .get(*id as usize)
                    .map(Vec::as_slice)
                    .ok_or_else(|| {
                        self.invalid(format!(
                            "shared exponent table {id} does not exist ({} present)",
                            shared_exp.len()
                        ))
                    })
            }
        }
    }

    /// Decodes to f32 values (exactly what the container reader reproduces), for an
    /// artifact without shared Huffman code tables; see [`Self::decode_with`].
    pub fn decode(&self, shared: &[Vec<f32>], shared_exp: &[Vec<u8>]) -> Result<Vec<f32>> {
        self.decode_with(shared, shared_exp, &[])
    }

    /// Decodes to f32 values given all of the artifact's shared sections.
    pub fn decode_with(
        &self,
        shared: &[Vec<f32>],
        shared_exp: &[Vec<u8>],
        shared_code: &[CodeLengths],
    ) -> Result<Vec<f32>> {
        self.validate_with(shared, shared_exp, shared_code)?;
        Ok(match &self.encoding {
            Encoding::F32(v) => v.clone(),
            Encoding::Bf16(v) => v.iter().map(|b| bf16::from_bits(*b).to_f32()).collect(),
            Encoding::F16(v) => v.iter().map(|b| f16::from_bits(*b).to_f32()).collect(),
            Encoding::Codebook {
                codebook, indices, ..
            }
            | Encoding::HuffmanCodebook {
                codebook, indices, ..
            } => {
                let cb: &[f32] = match codebook {
                    CodebookRef::Local(cb) => cb,
                    CodebookRef::Shared(id) => &shared[*id as usize],
                };
                indices.iter().map(|i| cb[*i as usize]).collect()
            }
            Encoding::Int8PerChannel { scales, q } => {
                let per = q.len() / scales.len().max(1);
                q.iter()
                    .enumerate()
                    .map(|(i, v)| *v as f32 * scales[i.checked_div(per).unwrap_or(0)])
                    .collect()
            }
            Encoding::Bf16Fields {
                exp_table,
                mantissa_bits,
                signs,
                indices,
                mantissas,
                ..
            } => {
                let table = self.exp_table(exp_table, shared_exp)?;
                signs
                    .iter()
                    .zip(indices)
                    .zip(mantissas)
                    .map(|((s, i), m)| {
                        bf16fields::bf16_bits_to_f32(bf16fields::join_one(
                            table,
                            *mantissa_bits,
                            *s,
                            *i,
                            *m,
                        ))
                    })
                    .collect()
            }
            Encoding::Bf16Table {
                values, indices, ..
            } => indices
                .iter()
                .map(|i| bf16fields::bf16_bits_to_f32(values[*i as usize]))
                .collect(),
        })
    }

    /// The tensor's size, component by component, exactly as the container writes it.
    pub fn size(&self) -> TensorSize {
        let n = self.encoding.len() as u64;
        // name_len u16 + name + ndim u8 + dims u32 each + flags u8 + kind u8
        let mut header = 2 + self.name.len() as u64 + 1 + 4 * self.shape.len() as u64 + 1 + 1;
        let mut s = TensorSize::default();
        match &self.encoding {
            Encoding::F32(_) => {
                s.value_bits = 32 * n;
                s.values = 4 * n;
            }
            Encoding::Bf16(_) | Encoding::F16(_) => {
                s.value_bits = 16 * n;
                s.values = 2 * n;
            }
            Encoding::Codebook { codebook, bits, .. } => {
                // codebook ref tag u8 + (k u32 | shared id u32) + bits u8
                header += 1 + 4 + 1;
                if let CodebookRef::Local(cb) = codebook {
                    s.codebook_bits = 32 * cb.len() as u64;
                    s.codebook = 4 * cb.len() as u64;
                }
                s.index_bits = *bits as u64 * n;
                s.indices = s.index_bits.div_ceil(8);
            }
            Encoding::Int8PerChannel { scales, .. } => {
                s.scale_bits = 32 * scales.len() as u64;
                s.scales = 4 * scales.len() as u64;
                s.value_bits = 8 * n;
                s.values = n;
            }
            Encoding::Bf16Fields {
                exp_table,
                index_bits: bits,
                mantissa_bits,
                ..
            } => {
                // table ref tag u8 + (k u32 | shared id u32) + index bits u8 + mantissa bits u8
                header += 1 + 4 + 1 + 1;
                if let ExpTableRef::Local(t) = exp_table {
                    s.codebook_bits = 8 * t.len() as u64;
                    s.codebook = t.len() as u64;
                }
                s.index_bits = *bits as u64 * n;
                s.indices = s.index_bits.div_ceil(8);
                // sign and mantissa packed together, 1 + m bits per value
                s.value_bits = (1 + *mantissa_bits as u64) * n;
                s.values = s.value_bits.div_ceil(8);
            }
            Encoding::HuffmanCodebook {
                codebook,
                code,
                stream_bits,
                ..
            } => {
                // codebook ref u8 + (k | id) u32 + table ref u8 + (entries | id) u32
                // + stream length u64
                header += 1 + 4 + 1 + 4 + 8;
                if let CodebookRef::Local(cb) = codebook {
                    s.codebook_bits += 32 * cb.len() as u64;
                    s.codebook += 4 * cb.len() as u64;
                }
                // A local code table is a table like the codebook: one byte per entry.
                if let CodeTableRef::Local(t) = code {
                    s.codebook_bits += 8 * t.len() as u64;
                    s.codebook += t.len() as u64;
                }
                s.index_bits = *stream_bits;
                s.indices = stream_bits.div_ceil(8);
            }
            Encoding::Bf16Table { values, bits, .. } => {
                // k u32 + bits u8
                header += 4 + 1;
                s.codebook_bits = 16 * values.len() as u64;
                s.codebook = 2 * values.len() as u64;
                s.index_bits = *bits as u64 * n;
                s.indices = s.index_bits.div_ceil(8);
            }
        }
        s.header = header;
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

    /// Checks every shared code table and every tensor's encoding.
    pub fn validate(&self) -> Result<()> {
        for (id, t) in self.shared_code_tables.iter().enumerate() {
            CanonicalCode::new(t).map_err(|e| CoreError::InvalidEncoding {
                name: format!("<shared code table {id}>"),
                reason: e.to_string(),
            })?;
        }
        self.tensors.iter().try_for_each(|t| {
            t.validate_with(
                &self.shared_codebooks,
                &self.shared_exp_tables,
                &self.shared_code_tables,
            )
        })
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
                    t.decode_with(
                        &self.shared_codebooks,
                        &self.shared_exp_tables,
                        &self.shared_code_tables,
                    )?,
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
