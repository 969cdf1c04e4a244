//! `inspect` on every encoding kind: the component bytes it reports add up to the
//! container file, and reading the file back describes the same thing.

mod common;

use wb_core::container;
use wb_core::inspect::inspect;

#[test]
fn components_add_up_to_the_file_for_every_encoding_kind() {
    let mut kinds = Vec::new();
    for a in common::synthetic() {
        let bytes = container::write(&a).unwrap();
        let report = inspect(&a);
        assert_eq!(report.component_sum(), bytes.len() as u64);
        assert_eq!(report.total_bytes, bytes.len() as u64);
        assert_eq!(inspect(&container::read(&bytes).unwrap()), report);
        for t in &report.tensors {
            assert_eq!(
                t.bytes.total,
                t.bytes.header + t.bytes.table + t.bytes.indices + t.bytes.values + t.bytes.scales
            );
            // Stored index bits can never beat the histogram's entropy.
            if let (Some(h), Some(stored)) = (t.index_entropy_bits, t.index_bits_stored) {
                assert!(stored + 1e-9 >= h, "{}: {stored} < {h}", t.name);
            }
            kinds.push(t.kind.clone());
        }
        assert!(report.to_text().contains(&format!("= {} B", bytes.len())));
    }
    kinds.sort();
    kinds.dedup();
    for k in [
        "f32",
        "bf16",
        "f16",
        "int8-per-channel",
        "codebook",
        "codebook-shared",
        "huffman-codebook",
        "bf16-fields",
        "bf16-fields-shared",
        "bf16-table",
        "f16-codebook",
    ] {
        assert!(
            kinds.iter().any(|x| x == k),
            "kind {k} not covered: {kinds:?}"
        );
    }
}
