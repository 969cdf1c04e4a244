//! Named f32 tensors of a model: what methods read and what the harness installs.

use crate::error::{CoreError, Result};
use sha2::{Digest, Sha256};
use std::collections::HashSet;

/// One named tensor of a model, in row-major order, with its compressibility flag.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Parameter name as the model knows it (e.g. `layer1.0.conv1.weight`).
    pub name: String,
    /// Shape, outermost dimension first (`[out, in, kh, kw]` for a convolution).
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<f32>,
    /// Whether methods may compress this tensor. Others stay FP32 and are still counted
    /// in the whole-model artifact.
    pub compressible: bool,
}

impl Tensor {
    /// Builds a tensor, checking that `data` matches `shape`.
    pub fn new(
        name: impl Into<String>,
        shape: Vec<usize>,
        data: Vec<f32>,
        compressible: bool,
    ) -> Result<Self> {
        let name = name.into();
        let expected: usize = shape.iter().product();
        if expected != data.len() {
            return Err(CoreError::ShapeMismatch {
                name,
                shape,
                expected,
                got: data.len(),
            });
        }
        Ok(Self {
            name,
            shape,
            data,
            compressible,
        })
    }

    /// Number of values.
    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// Size of the outermost dimension (output channels for conv/linear weights); 1 for scalars.
    pub fn channels(&self) -> usize {
        self.shape.first().copied().unwrap_or(1).max(1)
    }

    /// Fails on the first NaN or infinity.
    pub fn check_finite(&self) -> Result<()> {
        match self.data.iter().position(|v| !v.is_finite()) {
            None => Ok(()),
            Some(index) => Err(CoreError::NonFinite {
                name: self.name.clone(),
                index,
                value: self.data[index],
            }),
        }
    }
}

/// All parameters of a model, in the model's own order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WeightSet {
    /// The tensors, in a stable order (the model's parameter order).
    pub tensors: Vec<Tensor>,
}

impl WeightSet {
    /// Builds a weight set, rejecting duplicate names.
    pub fn new(tensors: Vec<Tensor>) -> Result<Self> {
        let mut seen = HashSet::new();
        for t in &tensors {
            if !seen.insert(t.name.as_str()) {
                return Err(CoreError::DuplicateName(t.name.clone()));
            }
        }
        Ok(Self { tensors })
    }

    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Result<&Tensor> {
        self.tensors
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| CoreError::MissingTensor(name.to_string()))
    }

    /// Iterates over the compressible tensors.
    pub fn compressible(&self) -> impl Iterator<Item = &Tensor> {
        self.tensors.iter().filter(|t| t.compressible)
    }

    /// Number of compressible weights: the paper accounting's denominator.
    pub fn counted_params(&self) -> u64 {
        self.compressible().map(|t| t.numel() as u64).sum()
    }

    /// Number of all parameters.
    pub fn total_params(&self) -> u64 {
        self.tensors.iter().map(|t| t.numel() as u64).sum()
    }

    /// Fails on the first NaN or infinity in any tensor.
    pub fn check_finite(&self) -> Result<()> {
        self.tensors.iter().try_for_each(Tensor::check_finite)
    }

    /// SHA-256 over names, shapes, flags and the exact bit patterns of every value:
    /// two weight sets hash equal iff they are bit-for-bit the same.
    pub fn content_hash(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        for t in &self.tensors {
            h.update((t.name.len() as u64).to_le_bytes());
            h.update(t.name.as_bytes());
            h.update((t.shape.len() as u64).to_le_bytes());
            for d in &t.shape {
                h.update((*d as u64).to_le_bytes());
            }
            h.update([t.compressible as u8]);
            let mut buf = Vec::with_capacity(t.data.len() * 4);
            for v in &t.data {
                buf.extend_from_slice(&v.to_bits().to_le_bytes());
            }
            h.update(&buf);
        }
        h.finalize().into()
    }

    /// [`Self::content_hash`] as lowercase hex.
    pub fn content_hash_hex(&self) -> String {
        hex(&self.content_hash())
    }

    /// True iff both sets have the same names, shapes and bit-identical values.
    pub fn bit_identical(&self, other: &WeightSet) -> bool {
        self.tensors.len() == other.tensors.len()
            && self.tensors.iter().zip(&other.tensors).all(|(a, b)| {
                a.name == b.name
                    && a.shape == b.shape
                    && a.data.len() == b.data.len()
                    && a.data
                        .iter()
                        .zip(&b.data)
                        .all(|(x, y)| x.to_bits() == y.to_bits())
            })
    }
}

/// Lowercase hex of a byte slice.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
