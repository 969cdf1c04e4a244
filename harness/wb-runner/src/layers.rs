//! Per-layer memory breakdown of every candidate: `results/<exp>/layers/<cell>__<cand>.parquet`,
//! one row per tensor with its encoding, its bytes by component and its span in the file.

use crate::results::{write_parquet_atomic, ResultsDir};
use anyhow::{ensure, Result};
use polars::prelude::*;
use wb_core::container::TensorSpan;
use wb_core::{Artifact, ArtifactSize};

/// Writes the per-tensor breakdown and checks that each tensor's analytic size equals the
/// bytes it occupies in the written container.
pub fn write_layers(
    dir: &ResultsDir,
    cell_id: &str,
    candidate: &str,
    artifact: &Artifact,
    size: &ArtifactSize,
    spans: &[TensorSpan],
) -> Result<()> {
    ensure!(
        spans.len() == artifact.tensors.len() && size.tensors.len() == artifact.tensors.len(),
        "container spans do not cover every tensor"
    );
    let n = artifact.tensors.len();
    let mut name = Vec::with_capacity(n);
    let mut shape = Vec::with_capacity(n);
    let mut numel = Vec::with_capacity(n);
    let mut compressible = Vec::with_capacity(n);
    let mut encoding = Vec::with_capacity(n);
    let (mut header, mut codebook, mut indices, mut values, mut scales) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut bytes, mut span_bytes, mut payload_bits) = (vec![], vec![], vec![]);
    for ((t, (sname, s)), span) in artifact.tensors.iter().zip(&size.tensors).zip(spans) {
        ensure!(
            t.name == *sname && t.name == span.name,
            "tensor order differs"
        );
        let span_len = span.end - span.start;
        ensure!(
            s.bytes() == span_len,
            "tensor `{}`: analytic {} B but {} B in the container",
            t.name,
            s.bytes(),
            span_len
        );
        name.push(t.name.clone());
        shape.push(format!("{:?}", t.shape));
        numel.push(t.shape.iter().product::<usize>() as u64);
        compressible.push(t.compressible);
        encoding.push(t.encoding.kind().to_string());
        header.push(s.header);
        codebook.push(s.codebook);
        indices.push(s.indices);
        values.push(s.values);
        scales.push(s.scales);
        bytes.push(s.bytes());
        span_bytes.push(span_len);
        payload_bits.push(s.payload_bits());
    }
    let mut df = DataFrame::new(
        n,
        vec![
            Column::new("cell_id".into(), vec![cell_id.to_string(); n]),
            Column::new("candidate".into(), vec![candidate.to_string(); n]),
            Column::new("tensor".into(), name),
            Column::new("shape".into(), shape),
            Column::new("numel".into(), numel),
            Column::new("compressible".into(), compressible),
            Column::new("encoding".into(), encoding),
            Column::new("bytes_header".into(), header),
            Column::new("bytes_codebook".into(), codebook),
            Column::new("bytes_indices".into(), indices),
            Column::new("bytes_values".into(), values),
            Column::new("bytes_scales".into(), scales),
            Column::new("bytes_total".into(), bytes),
            Column::new("bytes_in_file".into(), span_bytes),
            Column::new("payload_bits".into(), payload_bits),
        ],
    )?;
    let path = dir.root.join("layers").join(format!(
        "{cell_id}__{}.parquet",
        wb_core::io::sanitize_name(candidate)
    ));
    write_parquet_atomic(&mut df, &path)
}
