//! Behaviour of every baseline through the public registry.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};
use wb_baselines::{methods, METHODS};
use wb_core::{
    check_params, container, Artifact, Candidate, CodebookRef, Context, CoreError, Encoding,
    IndexCoding, MethodError, MethodInfo, Tensor, ValueTable, WeightSet,
};

/// Deterministic pseudo-random values in roughly [-scale, scale] (SplitMix64).
fn values(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let u = (z >> 40) as f32 / (1u64 << 24) as f32; // [0, 1)
            (2.0 * u - 1.0) * scale
        })
        .collect()
}

/// A small model: two conv weights, a linear weight (compressible) and FP32 extras.
fn model() -> WeightSet {
    let t = |name: &str, shape: Vec<usize>, seed: u64, scale: f32, compressible: bool| {
        let n = shape.iter().product();
        Tensor::new(name, shape, values(seed, n, scale), compressible).unwrap()
    };
    let mut conv2 = t("layer1.conv2.weight", vec![4, 8, 3, 3], 2, 0.05, true);
    // One all-zero output channel and one channel of tiny values.
    conv2.data[..72].fill(0.0);
    for v in &mut conv2.data[72..144] {
        *v *= 1e-30;
    }
    WeightSet::new(vec![
        t("conv1.weight", vec![8, 3, 3, 3], 1, 0.5, true),
        t("conv1.bias", vec![8], 11, 0.1, false),
        t("bn1.weight", vec![8], 12, 1.0, false),
        conv2,
        t("fc.weight", vec![10, 32], 3, 2.0, true),
        t("fc.bias", vec![10], 13, 0.2, false),
    ])
    .unwrap()
}

fn info(id: &str) -> MethodInfo {
    *METHODS.iter().find(|m| m.id == id).expect("registered")
}

fn params(v: Value) -> BTreeMap<String, Value> {
    serde_json::from_value(v).unwrap()
}

fn run_with(id: &str, given: Value, weights: &WeightSet) -> Result<Vec<Candidate>, MethodError> {
    let info = info(id);
    let p = check_params(info.params, &params(given)).unwrap();
    let method = (info.build)(&p).unwrap();
    wb_core::compress_checked(info.id, method.as_ref(), weights, &mut Context::bare(0))
}

fn artifact(id: &str, given: Value, weights: &WeightSet) -> Artifact {
    let mut c = run_with(id, given, weights).unwrap();
    assert_eq!(c.len(), 1);
    c.remove(0).artifact
}

fn decoded(a: &Artifact) -> WeightSet {
    a.decode().unwrap()
}

#[test]
fn registry_lists_every_baseline_in_order() {
    let ids: Vec<&str> = methods().iter().map(|m| m.id).collect();
    assert_eq!(
        ids,
        [
            "fp32",
            "bf16-cast",
            "fp16-cast",
            "int8-affine",
            "kmeans-uniform",
            "random-sharing"
        ]
    );
    assert_eq!(METHODS.len(), methods().len());
    for m in METHODS {
        assert!(!m.summary.is_empty());
        // Defaults alone form a valid parameter set.
        check_params(m.params, &BTreeMap::new()).unwrap();
    }
    let km = info("kmeans-uniform");
    let names: Vec<&str> = km.params.iter().map(|p| p.name).collect();
    assert_eq!(names, ["k", "max_iter", "tol"]);
    let p = check_params(km.params, &BTreeMap::new()).unwrap();
    assert_eq!(p.to_json(), r#"{"k":16,"max_iter":100,"tol":0.0001}"#);
}

#[test]
fn every_method_round_trips_through_the_container() {
    let w = model();
    for m in METHODS {
        let given = if m.id == "kmeans-uniform" {
            json!({"k": 5})
        } else {
            json!({})
        };
        let a = artifact(m.id, given, &w);
        let bytes = container::write(&a).unwrap();
        assert_eq!(bytes.len() as u64, a.size().total_bytes, "{}", m.id);
        let back = container::read(&bytes).unwrap();
        assert_eq!(back, a, "{}", m.id);
        let (d1, d2) = (decoded(&a), decoded(&back));
        assert!(d1.bit_identical(&d2), "{}", m.id);
        // Names, shapes, order and flags of the model are kept.
        for (t, o) in d1.tensors.iter().zip(&w.tensors) {
            assert_eq!(
                (&t.name, &t.shape, t.compressible),
                (&o.name, &o.shape, o.compressible)
            );
        }
        // Non-compressible tensors are FP32 and exact.
        for (e, o) in a.tensors.iter().zip(&w.tensors) {
            if !o.compressible {
                assert_eq!(e.encoding, Encoding::F32(o.data.clone()), "{}", m.id);
            }
        }
    }
}

#[test]
fn fp32_is_the_dense_reference() {
    let w = model();
    let a = artifact("fp32", json!({}), &w);
    assert_eq!(a, Artifact::dense(&w));
    assert!(decoded(&a).bit_identical(&w));
    let s = a.size();
    assert_eq!(s.bits_compressed, s.bits_baseline);
    assert_eq!(s.compression_ratio(), 1.0);
}

#[test]
fn bf16_cast_relative_error_is_within_unit_roundoff() {
    let w = model();
    let a = artifact("bf16-cast", json!({}), &w);
    let d = decoded(&a);
    let mut worst = 0.0f64;
    for (o, t) in w.tensors.iter().zip(&d.tensors) {
        for (x, y) in o.data.iter().zip(&t.data) {
            if !o.compressible {
                assert_eq!(x.to_bits(), y.to_bits());
            } else if x.abs() >= f32::MIN_POSITIVE {
                let rel = (f64::from(*x) - f64::from(*y)).abs() / f64::from(*x).abs();
                assert!(rel <= 2f64.powi(-8), "{x} -> {y}: relative error {rel}");
                worst = worst.max(rel);
            }
        }
    }
    assert!(worst > 0.0);
    let s = a.size();
    assert_eq!(s.bits_compressed, 16 * s.counted_params);
    assert_eq!(s.compression_ratio(), 2.0);
}

#[test]
fn bf16_cast_rounds_to_nearest_even_and_its_bound_is_2_pow_minus_8() {
    let x = |v: f32| {
        let w = WeightSet::new(vec![Tensor::new("w", vec![1], vec![v], true).unwrap()]).unwrap();
        decoded(&artifact("bf16-cast", json!({}), &w)).tensors[0].data[0]
    };
    // bfloat16 has 8 significant bits: ulp(1) = 2^-7.
    assert_eq!(x(1.0 + 2f32.powi(-8)), 1.0); // tie -> even
    assert_eq!(x(1.0 + 3.0 * 2f32.powi(-8)), 1.0 + 2f32.powi(-6)); // tie -> even (up)
    assert_eq!(x(1.0 + 2f32.powi(-8) + 2f32.powi(-20)), 1.0 + 2f32.powi(-7));
    // Hence the relative error bound is 2^-8, not 2^-9: this value is off by nearly 2^-8.
    let v = 1.0 + 2f32.powi(-8) - 2f32.powi(-20);
    let rel = (f64::from(v) - f64::from(x(v))).abs() / f64::from(v);
    assert!(rel > 2f64.powi(-9) && rel <= 2f64.powi(-8), "{rel}");
}

#[test]
fn fp16_cast_rounds_to_nearest_even() {
    let w = WeightSet::new(vec![Tensor::new(
        "w",
        vec![7],
        vec![
            1.0 + 2f32.powi(-11),       // tie between 1 and 1 + 2^-10 -> 1
            1.0 + 3.0 * 2f32.powi(-11), // tie -> 1 + 2^-9 (even)
            1.0 + 2f32.powi(-11) + 2f32.powi(-20),
            65519.0,               // largest value that still rounds to 65504
            2f32.powi(-25),        // half the smallest subnormal: tie -> 0
            -3.0 * 2f32.powi(-25), // tie between 1 and 2 subnormal ulps -> 2 (even)
            1e-10,                 // underflows to +0
        ],
        true,
    )
    .unwrap()])
    .unwrap();
    let d = decoded(&artifact("fp16-cast", json!({}), &w));
    let want = [
        1.0,
        1.0 + 2f32.powi(-9),
        1.0 + 2f32.powi(-10),
        65504.0,
        0.0,
        -2.0 * 2f32.powi(-24),
        0.0,
    ];
    for (got, want) in d.tensors[0].data.iter().zip(want) {
        assert_eq!(got.to_bits(), want.to_bits(), "{got} vs {want}");
    }
    // Relative error on the model stays within the half unit roundoff 2^-11.
    let w = model();
    let d = decoded(&artifact("fp16-cast", json!({}), &w));
    for (o, t) in w.compressible().zip(d.compressible()) {
        for (x, y) in o.data.iter().zip(&t.data) {
            if x.abs() >= 2f32.powi(-14) {
                let rel = (f64::from(*x) - f64::from(*y)).abs() / f64::from(*x).abs();
                assert!(rel <= 2f64.powi(-11), "{x} -> {y}");
            }
        }
    }
}

#[test]
fn fp16_and_bf16_overflow_is_an_error_not_infinity() {
    let w = |v: f32| {
        WeightSet::new(vec![
            Tensor::new("ok", vec![2], vec![1.0, -2.0], true).unwrap(),
            Tensor::new("big.weight", vec![3], vec![0.0, 1.0, v], true).unwrap(),
        ])
        .unwrap()
    };
    for v in [65520.0f32, -65520.0, 1e6] {
        let e = run_with("fp16-cast", json!({}), &w(v)).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, MethodError::Other(_)), "{e:?}");
        assert!(
            msg.contains("big.weight") && msg.contains("index 2"),
            "{msg}"
        );
    }
    // Large but representable in bfloat16; and the bfloat16 overflow itself.
    artifact("bf16-cast", json!({}), &w(1e6));
    artifact("bf16-cast", json!({}), &w(f32::from_bits(0x7F7F_7FFF)));
    let e = run_with("bf16-cast", json!({}), &w(f32::MAX)).unwrap_err();
    assert!(e.to_string().contains("big.weight"), "{e}");
    // Non-compressible tensors are never cast, so they may be large.
    let big_bias =
        WeightSet::new(vec![Tensor::new("b", vec![1], vec![1e30], false).unwrap()]).unwrap();
    artifact("fp16-cast", json!({}), &big_bias);
}

#[test]
fn int8_error_is_at_most_half_a_scale() {
    let w = model();
    let a = artifact("int8-affine", json!({}), &w);
    let d = decoded(&a);
    for (e, (o, t)) in a.tensors.iter().zip(w.tensors.iter().zip(&d.tensors)) {
        let Encoding::Int8PerChannel { scales, q } = &e.encoding else {
            assert!(!o.compressible);
            continue;
        };
        let c = o.shape[0];
        let per = o.numel() / c;
        assert_eq!(scales.len(), c);
        for ch in 0..c {
            let row = &o.data[ch * per..(ch + 1) * per];
            let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let s = scales[ch];
            assert_eq!(s, max / 127.0, "{} channel {ch}", o.name);
            let qs = &q[ch * per..(ch + 1) * per];
            if max == 0.0 {
                assert!(qs.iter().all(|v| *v == 0));
                continue;
            }
            assert!(qs.iter().any(|v| v.abs() == 127));
            for (i, x) in row.iter().enumerate() {
                let y = t.data[ch * per + i];
                assert_eq!(y, qs[i] as f32 * s);
                let err = (f64::from(*x) - f64::from(y)).abs();
                // scale / 2, plus the f32 rounding of the decoded product (and a hair for
                // the f64 quotient at an exact tie).
                let slack = f64::from(y.abs()) * f64::from(f32::EPSILON) / 2.0;
                let bound = f64::from(s) / 2.0 * (1.0 + 2f64.powi(-40)) + slack;
                assert!(err <= bound, "{x} -> {y}, scale {s}");
            }
        }
    }
    let s = a.size();
    let channels: u64 = w.compressible().map(|t| t.shape[0] as u64).sum();
    assert_eq!(s.bits_compressed, 8 * s.counted_params + 32 * channels);
}

#[test]
fn kmeans_k4_gives_four_values_and_two_bit_indices() {
    let w = model();
    let mut cands = run_with("kmeans-uniform", json!({"k": 4}), &w).unwrap();
    let cand = cands.remove(0);
    let a = &cand.artifact;
    let d = decoded(a);
    for (e, t) in a.tensors.iter().zip(&d.tensors) {
        if !t.compressible {
            assert_eq!(e.encoding.kind(), "f32");
            continue;
        }
        let Encoding::Indexed {
            table: ValueTable::F32(CodebookRef::Local(cb)),
            coding: IndexCoding::Fixed { bits },
            indices,
        } = &e.encoding
        else {
            panic!("{} is not a local codebook", e.name)
        };
        assert_eq!(cb.len(), 4);
        assert_eq!(*bits, 2);
        assert!(indices.iter().all(|i| *i < 4));
        let distinct: BTreeSet<u32> = t.data.iter().map(|v| v.to_bits()).collect();
        assert!(distinct.len() <= 4, "{}: {} values", t.name, distinct.len());
        let size = e.size();
        assert_eq!(size.index_bits, 2 * t.numel() as u64);
        assert_eq!(size.codebook_bits, 32 * 4);
    }
    let s = a.size();
    let layers = w.compressible().count() as u64;
    assert_eq!(s.bits_compressed, 2 * s.counted_params + 32 * 4 * layers);
    // Diagnostics: one entry per compressible layer, in order.
    let extra = &cand.extra;
    assert_eq!(extra["k"], 4);
    let diag = extra["layers"].as_array().unwrap();
    let names: Vec<&str> = diag.iter().map(|l| l["name"].as_str().unwrap()).collect();
    let want: Vec<&str> = w.compressible().map(|t| t.name.as_str()).collect();
    assert_eq!(names, want);
    for l in diag {
        assert!(l["iterations"].as_u64().unwrap() >= 1);
        assert!(l["converged"].is_boolean());
        assert!(l["inertia"].as_f64().unwrap() >= 0.0);
    }
}

#[test]
fn kmeans_index_width_is_ceil_log2_k() {
    let w = model();
    for (k, bits) in [(2, 1), (3, 2), (5, 3), (16, 4), (17, 5), (100, 7)] {
        let a = artifact("kmeans-uniform", json!({"k": k}), &w);
        for e in a.tensors.iter().filter(|e| e.compressible) {
            let Encoding::Indexed {
                coding: IndexCoding::Fixed { bits: b },
                ..
            } = &e.encoding
            else {
                panic!("not a codebook")
            };
            assert_eq!(*b, bits, "k = {k}");
            assert_eq!(e.size().index_bits, bits as u64 * e.encoding.len() as u64);
            assert_eq!(e.size().codebook_bits, 32 * k as u64);
        }
    }
}

#[test]
fn kmeans_with_fewer_distinct_values_than_k_follows_the_kernel() {
    // Two distinct values, k = 4: the two inner clusters end up empty and are set to 0.0
    // by the kernel's empty-cluster rule; the layer still decodes exactly.
    let data: Vec<f32> = (0..12)
        .map(|i| if i % 3 == 0 { 2.0 } else { 1.0 })
        .collect();
    let w = WeightSet::new(vec![
        Tensor::new("w", vec![3, 4], data.clone(), true).unwrap()
    ])
    .unwrap();
    let a = artifact("kmeans-uniform", json!({"k": 4}), &w);
    let Encoding::Indexed {
        table: ValueTable::F32(CodebookRef::Local(cb)),
        ..
    } = &a.tensors[0].encoding
    else {
        panic!("not a local codebook")
    };
    assert_eq!(cb, &vec![1.0, 0.0, 0.0, 2.0]);
    assert_eq!(decoded(&a).tensors[0].data, data);
}

#[test]
fn kmeans_k_larger_than_a_layer_is_a_params_error_naming_it() {
    let w = model(); // fc.weight has 320 weights, conv1.weight 216
    let e = run_with("kmeans-uniform", json!({"k": 300}), &w).unwrap_err();
    let MethodError::Params(p) = &e else {
        panic!("expected a params error, got {e:?}")
    };
    assert_eq!(p.field, "k");
    assert!(
        p.message.contains("conv1.weight") && p.message.contains("216"),
        "{e}"
    );
    // Exactly as many weights as clusters is fine.
    artifact("kmeans-uniform", json!({"k": 216}), &w);
    // Non-compressible layers do not count.
    let w = WeightSet::new(vec![
        Tensor::new("bias", vec![1], vec![0.5], false).unwrap(),
        Tensor::new("w", vec![2, 2], vec![1.0, 2.0, 3.0, 4.0], true).unwrap(),
    ])
    .unwrap();
    artifact("kmeans-uniform", json!({"k": 4}), &w);
    assert!(run_with("kmeans-uniform", json!({"k": 5}), &w).is_err());
}

#[test]
fn methods_are_deterministic() {
    let w = model();
    for m in METHODS {
        let given = if m.id == "kmeans-uniform" {
            json!({"k": 7, "max_iter": 30, "tol": 0.0})
        } else {
            json!({})
        };
        let a = container::write(&artifact(m.id, given.clone(), &w)).unwrap();
        let b = container::write(&artifact(m.id, given, &w)).unwrap();
        assert_eq!(a, b, "{}", m.id);
    }
}

#[test]
fn non_finite_weights_are_refused_by_every_method() {
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        for compressible in [true, false] {
            let w = WeightSet::new(vec![
                Tensor::new("a", vec![4], vec![1.0, 2.0, 3.0, 4.0], true).unwrap(),
                Tensor::new(
                    "b.weight",
                    vec![2, 2],
                    vec![1.0, 2.0, bad, 4.0],
                    compressible,
                )
                .unwrap(),
            ])
            .unwrap();
            for m in METHODS {
                let given = if m.id == "kmeans-uniform" {
                    json!({"k": 2})
                } else {
                    json!({})
                };
                let e = run_with(m.id, given, &w).unwrap_err();
                match &e {
                    MethodError::Core(CoreError::NonFinite { name, index, .. }) => {
                        assert_eq!((name.as_str(), *index), ("b.weight", 2), "{}", m.id);
                    }
                    other => panic!("{}: expected NonFinite, got {other:?}", m.id),
                }
                assert!(e.to_string().contains("b.weight"));
            }
        }
    }
}

#[test]
fn unknown_and_out_of_range_params_are_rejected() {
    for m in METHODS {
        let e = check_params(m.params, &params(json!({"kk": 3}))).unwrap_err();
        assert_eq!(e.field, "kk", "{}", m.id);
    }
    let km = info("kmeans-uniform").params;
    assert!(check_params(km, &params(json!({"k": 1}))).is_err());
    assert!(check_params(km, &params(json!({"k": 65537}))).is_err());
    assert!(check_params(km, &params(json!({"k": 65536}))).is_ok());
    assert!(check_params(km, &params(json!({"max_iter": 0}))).is_err());
    assert!(check_params(km, &params(json!({"tol": -1e-9}))).is_err());
    assert!(check_params(km, &params(json!({"k": "16"}))).is_err());
    assert!(check_params(info("fp32").params, &params(json!({"k": 4}))).is_err());
}
