//! `moea-bins` keeps the method contract (wb_core::conformance): defaults, Random UB,
//! per-layer Huffman with the other merge order and the paper's stages, fixed-width
//! indices over every tensor, and the cross-field rule lb <= ub.

wb_core::method_conformance!(
    moea_bins::MOEA_BINS,
    params = [
        {},
        {"mode": "random-ub", "ub": 16},
        {"huffman": "layer", "merge": "center_to_end", "emit_stages": true,
         "pop_size": 10, "generations": 3},
        {"huffman": "none", "scope": "all", "merge": "none", "merge_which": "all",
         "pop_size": 10, "generations": 3},
    ],
    bad = [{"lb": 300, "ub": 200}],
    readme = include_str!("../README.md"),
);
