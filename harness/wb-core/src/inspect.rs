//! What is inside an artifact: per tensor its encoding, table, index coding, bits per
//! weight, index entropy and bytes by container component, with totals that add up to
//! the container file exactly (`weightbench inspect`).

use crate::encoding::{Artifact, Encoding, IndexCoding, TensorSize};
use serde::Serialize;

/// One tensor of an artifact, as `inspect` describes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TensorReport {
    /// Parameter name.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Whether the compression accounting counts it.
    pub compressible: bool,
    /// Encoding kind ([`Encoding::kind`]).
    pub kind: String,
    /// Entries of its value table (codebook, exponent table …), for indexed encodings.
    pub table_entries: Option<usize>,
    /// Whether that table is a shared section of the artifact.
    pub table_shared: bool,
    /// Index coding: `fixed N bits`, `huffman (local)` or `huffman (shared)`.
    pub coding: Option<String>,
    /// Payload bits per weight (the paper accounting of this tensor: indices, local
    /// table, values and scales; shared sections are counted once, in the totals).
    pub bits_per_weight: f64,
    /// Shannon entropy of the index histogram, bits per index: the floor any
    /// per-tensor entropy coder can reach for these indices.
    pub index_entropy_bits: Option<f64>,
    /// Bits per index as stored (fixed width, or the Huffman stream's average).
    pub index_bits_stored: Option<f64>,
    /// Bytes by container component.
    pub bytes: ComponentBytes,
}

/// Bytes of one tensor, by container component ([`TensorSize`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ComponentBytes {
    /// Name, shape, kind tag and encoding header.
    pub header: u64,
    /// Local value table (and local Huffman code table).
    pub table: u64,
    /// Packed or Huffman-coded indices.
    pub indices: u64,
    /// Dense values (and sign/mantissa fields).
    pub values: u64,
    /// Per-channel scales.
    pub scales: u64,
    /// Their sum.
    pub total: u64,
}

impl From<&TensorSize> for ComponentBytes {
    fn from(s: &TensorSize) -> Self {
        ComponentBytes {
            header: s.header,
            table: s.codebook,
            indices: s.indices,
            values: s.values,
            scales: s.scales,
            total: s.bytes(),
        }
    }
}

/// A whole artifact, as `inspect` describes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArtifactReport {
    /// Every tensor, in model order.
    pub tensors: Vec<TensorReport>,
    /// Fixed header, shared-section length fields and checksum trailer, in bytes.
    pub container_overhead: u64,
    /// Shared FP32 codebooks, bytes.
    pub shared_codebooks: u64,
    /// Shared exponent tables, bytes.
    pub shared_exp_tables: u64,
    /// Shared Huffman code tables, bytes.
    pub shared_code_tables: u64,
    /// Weights the compression accounting counts.
    pub counted_params: u64,
    /// FP32 bits of those weights over their compressed bits.
    pub compression_ratio: f64,
    /// Size of the container file: the sum of every component above.
    pub total_bytes: u64,
}

/// Shannon entropy (bits per symbol) of `indices` over a table of `k` entries.
fn entropy_bits(indices: &[u32], k: usize) -> f64 {
    if indices.is_empty() {
        return 0.0;
    }
    let mut counts = vec![0u64; k.max(1)];
    for &i in indices {
        if let Some(c) = counts.get_mut(i as usize) {
            *c += 1;
        }
    }
    let n = indices.len() as f64;
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// Describes `artifact` (which must validate: one read by the container reader does).
pub fn inspect(artifact: &Artifact) -> ArtifactReport {
    let size = artifact.size();
    let shared = artifact.shared();
    let tensors = artifact
        .tensors
        .iter()
        .zip(&size.tensors)
        .map(|(t, (_, s))| {
            let n = t.encoding.len();
            let per_weight = |bits: u64| if n == 0 { 0.0 } else { bits as f64 / n as f64 };
            let mut r = TensorReport {
                name: t.name.clone(),
                shape: t.shape.clone(),
                compressible: t.compressible,
                kind: t.encoding.kind().to_string(),
                table_entries: None,
                table_shared: false,
                coding: None,
                bits_per_weight: per_weight(s.payload_bits()),
                index_entropy_bits: None,
                index_bits_stored: None,
                bytes: ComponentBytes::from(s),
            };
            if let Some((k, coding, indices)) = t.encoding.index_view(shared) {
                r.table_entries = Some(k);
                r.table_shared =
                    matches!(&t.encoding, Encoding::Indexed { table, .. } if table.is_shared());
                r.coding = Some(match coding {
                    IndexCoding::Fixed { bits } => format!("fixed {bits} bits"),
                    IndexCoding::Huffman { code, .. } => match code.local() {
                        Some(_) => "huffman (local)".to_string(),
                        None => "huffman (shared)".to_string(),
                    },
                });
                r.index_entropy_bits = Some(entropy_bits(indices, k));
                // Per index: a PQ index stands for `dim` weights.
                let m = indices.len();
                r.index_bits_stored = Some(coding.index_bits(m) as f64 / m.max(1) as f64);
            }
            r
        })
        .collect();
    ArtifactReport {
        tensors,
        container_overhead: size.container_overhead,
        shared_codebooks: size.shared_codebooks,
        shared_exp_tables: size.shared_exp_tables,
        shared_code_tables: size.shared_code_tables,
        counted_params: size.counted_params,
        compression_ratio: size.compression_ratio(),
        total_bytes: size.total_bytes,
    }
}

impl ArtifactReport {
    /// The sum of every component: tensors, shared sections and container overhead.
    /// Equals [`Self::total_bytes`] and the file size for every valid artifact.
    pub fn component_sum(&self) -> u64 {
        self.tensors.iter().map(|t| t.bytes.total).sum::<u64>()
            + self.container_overhead
            + self.shared_codebooks
            + self.shared_exp_tables
            + self.shared_code_tables
    }

    /// A plain-text table, one line per tensor, then the totals.
    pub fn to_text(&self) -> String {
        let opt = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |x| format!("{x:.3}"));
        let mut s =
            format!(
            "{:<32} {:>14} {:<26} {:>7} {:<16} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}\n",
            "tensor", "shape", "kind", "table", "coding", "bits/w", "H(idx)", "idx bits",
            "header", "table B", "indices", "values", "total B"
        );
        for t in &self.tensors {
            let shape = t
                .shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join("x");
            let table = t.table_entries.map_or_else(
                || "-".to_string(),
                |k| format!("{k}{}", if t.table_shared { "s" } else { "" }),
            );
            s.push_str(&format!(
                "{:<32} {:>14} {:<26} {:>7} {:<16} {:>8.3} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}\n",
                t.name,
                shape,
                t.kind,
                table,
                t.coding.as_deref().unwrap_or("-"),
                t.bits_per_weight,
                opt(t.index_entropy_bits),
                opt(t.index_bits_stored),
                t.bytes.header,
                t.bytes.table,
                t.bytes.indices,
                t.bytes.values + t.bytes.scales,
                t.bytes.total
            ));
        }
        let tensor_bytes: u64 = self.tensors.iter().map(|t| t.bytes.total).sum();
        s.push_str(&format!(
            "\ntensors {tensor_bytes} B + shared codebooks {} B + shared exponent tables {} B \
             + shared code tables {} B + container header and checksum {} B = {} B\n\
             compression ratio {:.2}× over {} counted weights (table column: `s` = shared)\n",
            self.shared_codebooks,
            self.shared_exp_tables,
            self.shared_code_tables,
            self.container_overhead,
            self.component_sum(),
            self.compression_ratio,
            self.counted_params
        ));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_of_known_histograms() {
        assert_eq!(entropy_bits(&[0, 0, 0, 0], 4), 0.0);
        assert!((entropy_bits(&[0, 1, 2, 3], 4) - 2.0).abs() < 1e-12);
        // p = (1/2, 1/4, 1/4): 1.5 bits.
        assert!((entropy_bits(&[0, 0, 1, 2], 3) - 1.5).abs() < 1e-12);
        assert_eq!(entropy_bits(&[], 3), 0.0);
    }
}
