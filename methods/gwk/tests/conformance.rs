//! `gwk` keeps the method contract (wb_core::conformance): the default GWK point, the
//! ablations (plain k-means, straight-through estimator), fixed δ, FP32 codewords,
//! kept layers, a partial last sub-vector (dim 5), SGD, and the lossless control.

wb_core::method_conformance!(
    gwk::INFO,
    params = [
        {"epochs": 1, "recluster_every": 2},
        {"epochs": 1, "codeword_lr": 0.001, "keep": "first-last"},
        {"epochs": 1, "importance": "none", "ewgs": "off", "dim": 5, "k": 8},
        {"epochs": 2, "ewgs": "fixed", "delta": 0.5, "codewords": "f32", "keep": "first-last"},
        {"epochs": 1, "optimizer": "sgd", "lr": 0.01, "importance": "snip", "recluster_every": 0},
        {"epochs": 1, "quantize": false},
    ],
    bad = [
        {"epochs": 3, "max_steps": 2},
    ],
    readme = include_str!("../README.md"),
);
