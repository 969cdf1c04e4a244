//! Product quantization ([`Pq`]): a tensor's row-major values are cut into sub-vectors
//! of `dim` consecutive values, and each sub-vector is stored as one index into a
//! codebook of `k` codewords of `dim` values.
//!
//! - **Axis.** Sub-vectors run along the row-major order, i.e. along the innermost
//!   dimensions: for a `[out, in, 3, 3]` convolution with `dim = 9` they are exactly its
//!   3×3 kernels; for a linear or 1×1 layer they are runs of input channels.
//! - **Padding.** When `dim` does not divide the tensor's `n` values, the last
//!   sub-vector holds `n mod dim` values and decodes to the first `n mod dim` values of
//!   its codeword. Nothing else is stored for it: it costs one full index, which the
//!   size accounting counts.
//! - **Storage.** `k·dim` codeword values (FP32, or IEEE half as an option, stored as
//!   such), `⌈n/dim⌉` indices under any [`IndexCoding`]: fixed width ⌈log2 k⌉, or
//!   Huffman (so the harness's entropy-coding stage applies to PQ indices too).
//!   Bits per weight are `⌈log2 k⌉/dim` plus the codebook's share: below 1 whenever
//!   `log2 k < dim`.

use super::indexed::{IndexCoding, SharedTables};
use half::f16;

/// The codewords of a [`Pq`] encoding, `k × dim` values row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum PqCodewords {
    /// FP32 codewords.
    F32(Vec<f32>),
    /// IEEE half bit patterns.
    F16(Vec<u16>),
}

impl PqCodewords {
    /// Number of stored values (`k·dim`).
    pub fn len(&self) -> usize {
        match self {
            PqCodewords::F32(v) => v.len(),
            PqCodewords::F16(v) => v.len(),
        }
    }

    /// True when there is no codeword value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bits of one stored value.
    pub fn value_bits(&self) -> u64 {
        match self {
            PqCodewords::F32(_) => 32,
            PqCodewords::F16(_) => 16,
        }
    }

    /// The codeword values as f32 (exactly what decoding uses).
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            PqCodewords::F32(v) => v.clone(),
            PqCodewords::F16(v) => v.iter().map(|b| f16::from_bits(*b).to_f32()).collect(),
        }
    }
}

/// A product-quantized tensor (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct Pq {
    /// Sub-vector dimension (at least 1).
    pub dim: u32,
    /// `k × dim` codeword values.
    pub codewords: PqCodewords,
    /// How the indices are stored.
    pub coding: IndexCoding,
    /// One index per sub-vector, `⌈values/dim⌉` of them.
    pub indices: Vec<u32>,
    /// Number of weights encoded (the tensor's size).
    pub values: usize,
}

impl Pq {
    /// A PQ encoding with fixed-width indices.
    pub fn fixed(dim: u32, codewords: PqCodewords, indices: Vec<u32>, values: usize) -> Self {
        let k = codewords.len() / dim.max(1) as usize;
        Pq {
            dim,
            codewords,
            coding: IndexCoding::fixed(k),
            indices,
            values,
        }
    }

    /// Number of codewords `k`.
    pub fn k(&self) -> usize {
        self.codewords.len() / self.dim.max(1) as usize
    }

    /// Checks the encoding.
    pub(crate) fn check(&self, shared: SharedTables<'_>) -> Result<(), String> {
        let d = self.dim as usize;
        if d == 0 {
            return Err("PQ sub-vector dimension 0".into());
        }
        if self.codewords.is_empty() || self.codewords.len() % d != 0 {
            return Err(format!(
                "{} codeword values are not a non-zero multiple of dim {d}",
                self.codewords.len()
            ));
        }
        let m = self.values.div_ceil(d);
        if self.indices.len() != m {
            return Err(format!(
                "{} indices for {} values at dim {d} (needs {m})",
                self.indices.len(),
                self.values
            ));
        }
        self.coding
            .check(self.k(), &self.indices, "a PQ codebook", shared)
    }

    /// The decoded values (validated).
    pub(crate) fn decode(&self) -> Vec<f32> {
        let d = self.dim as usize;
        let words = self.codewords.to_f32();
        let mut out = Vec::with_capacity(self.values);
        for i in &self.indices {
            let take = (self.values - out.len()).min(d);
            let start = *i as usize * d;
            out.extend_from_slice(&words[start..start + take]);
        }
        out
    }
}
