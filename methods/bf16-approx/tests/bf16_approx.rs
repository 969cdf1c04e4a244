//! Behaviour of `bf16-approx` through its public registry entry: the field codec on every
//! bfloat16 pattern, rounding, projection, size accounting, determinism, retraining with a
//! fake fine-tuner, and parameter errors.

use std::collections::{BTreeMap, BTreeSet};

use bf16_approx::{
    methods, plan, project, round_mantissa, round_weight, Bf16Approx, Rounding, Stage, ZeroMode,
    BF16_APPROX,
};
use proptest::prelude::*;
use serde_json::{json, Value};
use wb_core::bf16fields::exponent_field;
use wb_core::{
    check_params, container, Artifact, Bf16Exponents, Candidate, Context, CoreError, Encoding,
    ExpTableRef, FakeFineTuner, FineTuneConfig, FineTuneOutcome, FineTuner, IndexCoding,
    MethodError, Progress, Projection, Tensor, ValueTable, WeightSet,
};

/// Deterministic pseudo-random values, roughly normal with standard deviation `scale`
/// (sum of four uniforms, SplitMix64), so that exponents spread over many binades.
fn values(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut s = seed;
    let mut u = move || {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 24) as f32
    };
    (0..n)
        .map(|_| ((u() + u() + u() + u()) - 2.0) * scale * 1.7)
        .collect()
}

/// A small model: conv and linear weights (compressible) and FP32 extras.
fn model() -> WeightSet {
    let t = |name: &str, shape: Vec<usize>, seed: u64, scale: f32, compressible: bool| {
        let n = shape.iter().product();
        Tensor::new(name, shape, values(seed, n, scale), compressible).unwrap()
    };
    WeightSet::new(vec![
        t("conv1.weight", vec![16, 3, 3, 3], 1, 0.2, true),
        t("bn1.weight", vec![16], 11, 1.0, false),
        t("bn1.bias", vec![16], 12, 0.1, false),
        t("layer1.conv.weight", vec![16, 16, 3, 3], 2, 0.05, true),
        t("fc.weight", vec![10, 16], 3, 0.3, true),
        t("fc.bias", vec![10], 13, 0.2, false),
    ])
    .unwrap()
}

fn run_with(
    given: Value,
    weights: &WeightSet,
    ctx: &mut Context<'_>,
) -> Result<Vec<Candidate>, MethodError> {
    let p = check_params(BF16_APPROX.params, &serde_json::from_value(given).unwrap()).unwrap();
    let method = (BF16_APPROX.build)(&p).unwrap();
    method.compress(weights, ctx)
}

fn run(given: Value, weights: &WeightSet) -> Candidate {
    let mut c = run_with(given, weights, &mut Context::bare(0)).unwrap();
    assert_eq!(c.len(), 1);
    c.remove(0)
}

fn bf16_cast(w: &WeightSet) -> WeightSet {
    Artifact::map_compressible(w, |t| Ok(Encoding::bf16_from_f32(&t.data)))
        .unwrap()
        .decode()
        .unwrap()
}

/// Checks the artifact: container size = analytic size per tensor, read-back decodes bit
/// for bit, and the paper accounting `Σ n(1 + b + m) + 8·|table|` (+16·U for value
/// tables) equals `bits_compressed`.
fn check_sizes(a: &Artifact) {
    let (bytes, spans) = container::write_with_spans(a).unwrap();
    let size = a.size();
    assert_eq!(bytes.len() as u64, size.total_bytes);
    for (t, span) in a.tensors.iter().zip(&spans) {
        assert_eq!(span.end - span.start, t.size().bytes(), "{}", t.name);
    }
    let back = container::read(&bytes).unwrap();
    assert_eq!(&back, a);
    assert!(back.decode().unwrap().bit_identical(&a.decode().unwrap()));
    let mut paper = 8 * a.shared_exp_tables.iter().map(Vec::len).sum::<usize>() as u64;
    for t in a.tensors.iter().filter(|t| t.compressible) {
        let n = t.encoding.len() as u64;
        paper += match &t.encoding {
            Encoding::Indexed {
                table: ValueTable::Bf16Exponents(e),
                coding: IndexCoding::Fixed { bits },
                ..
            } => {
                n * (1 + *bits as u64 + e.mantissa_bits as u64)
                    + match &e.table {
                        ExpTableRef::Local(t) => 8 * t.len() as u64,
                        ExpTableRef::Shared(_) => 0,
                    }
            }
            Encoding::Indexed {
                table: ValueTable::Bf16(values),
                coding: IndexCoding::Fixed { bits },
                ..
            } => n * *bits as u64 + 16 * values.len() as u64,
            other => panic!("unexpected encoding {}", other.kind()),
        };
    }
    assert_eq!(size.bits_compressed, paper);
}

// ---------------------------------------------------------------------------------------
// Every bfloat16 bit pattern
// ---------------------------------------------------------------------------------------

/// Every finite bfloat16 value (±0, subnormals, normals: the 65,536 − 256 patterns whose
/// exponent field is not 255) as a weight: lossless exponent sharing stores and decodes each one bit for bit, with
/// the exponent field 0 (zero and subnormals) as an ordinary table entry.
#[test]
fn lossless_sharing_round_trips_every_finite_bf16_pattern() {
    let finite: Vec<f32> = (0..=u16::MAX)
        .filter(|b| exponent_field(*b) != 0xFF)
        .map(|b| f32::from_bits((b as u32) << 16))
        .collect();
    assert_eq!(finite.len(), 65_536 - 256);
    let w = WeightSet::new(vec![Tensor::new(
        "all",
        vec![finite.len()],
        finite.clone(),
        true,
    )
    .unwrap()])
    .unwrap();
    let c = run(json!({}), &w);
    let Encoding::Indexed {
        table:
            ValueTable::Bf16Exponents(Bf16Exponents {
                table: ExpTableRef::Local(table),
                ..
            }),
        coding: IndexCoding::Fixed { bits: index_bits },
        ..
    } = &c.artifact.tensors[0].encoding
    else {
        panic!("expected local bf16 fields")
    };
    assert_eq!(table.len(), 255, "exponent fields 0..=254");
    assert_eq!(*index_bits, 8);
    check_sizes(&c.artifact);
    let d = c.artifact.decode().unwrap();
    for (a, b) in finite.iter().zip(&d.tensors[0].data) {
        assert_eq!(a.to_bits(), b.to_bits());
    }
}

/// Infinity and every NaN pattern are refused before any work, naming the tensor.
#[test]
fn every_non_finite_pattern_is_refused() {
    for b in (0..=u16::MAX).filter(|b| exponent_field(*b) == 0xFF) {
        let v = f32::from_bits((b as u32) << 16);
        let w =
            WeightSet::new(vec![Tensor::new("w", vec![2], vec![0.5, v], true).unwrap()]).unwrap();
        match run_with(json!({}), &w, &mut Context::bare(0)) {
            Err(MethodError::Core(CoreError::NonFinite { name, index, .. })) => {
                assert_eq!((name.as_str(), index), ("w", 1))
            }
            other => panic!("{b:#06x}: {other:?}"),
        }
    }
}

/// A finite f32 that rounds past the largest bfloat16 is an error, never an infinity.
#[test]
fn bf16_overflow_is_refused() {
    let w = WeightSet::new(vec![
        Tensor::new("w", vec![1], vec![f32::MAX], true).unwrap()
    ])
    .unwrap();
    let e = run_with(json!({}), &w, &mut Context::bare(0)).unwrap_err();
    assert!(e.to_string().contains("does not fit in bfloat16"), "{e}");
}

/// Mantissa rounding of every bfloat16 pattern at every width agrees with an f64
/// reference: nearest with ties to even (with m' = 0, to the even exponent), or
/// truncation toward zero.
#[test]
fn mantissa_rounding_matches_reference_on_every_pattern() {
    for m in 0..=7u8 {
        for b in (0..=u16::MAX).filter(|b| exponent_field(*b) != 0xFF) {
            let x = f32::from_bits((b as u32) << 16) as f64;
            let e = exponent_field(b) as i32;
            // Spacing of m-bit values in this binade (subnormals share the binade of 1).
            let ulp = 2f64.powi(e.max(1) - 127 - m as i32);
            let q = x.abs() / ulp;
            let rne = {
                let f = q.floor();
                let d = q - f;
                // Ties go to the even bit pattern: the last kept mantissa bit, or with
                // m' = 0 (no mantissa bit left) the exponent field's last bit.
                let odd = if m == 0 { e % 2 == 1 } else { f % 2.0 == 1.0 };
                if d > 0.5 || (d == 0.5 && odd) {
                    f + 1.0
                } else {
                    f
                }
            };
            for (rounding, want) in [
                (Rounding::NearestEven, rne * ulp),
                (Rounding::Truncate, q.floor() * ulp),
            ] {
                let got = round_mantissa(b, m, rounding);
                // A carry past the largest finite value gives the infinity pattern, which
                // stands for 2^128 here (the callers refuse it).
                let got_v = if got & 0x7FFF == 0x7F80 {
                    2f64.powi(128).copysign(x)
                } else {
                    f32::from_bits((got as u32) << 16) as f64
                };
                assert_eq!(got_v, want.copysign(x), "{b:#06x} m={m} {rounding:?}");
                assert_eq!(got & 0x8000, b & 0x8000, "sign of {b:#06x}");
                if exponent_field(got) != 0xFF {
                    assert_eq!(got & ((1 << (7 - m)) - 1), 0);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Exponent approximation and projection
// ---------------------------------------------------------------------------------------

fn seen_of(data: &[f32]) -> [bool; 256] {
    let mut s = [false; 256];
    for w in data {
        s[exponent_field(round_weight(*w, 7, Rounding::NearestEven).unwrap()) as usize] = true;
    }
    s
}

/// The authors' rule on a hand-made layer: a weight whose exponent is removed becomes the
/// nearest kept weight of the layer, or 0 when zero is a candidate and nearer; ties go to
/// the first occurrence.
#[test]
fn snapping_follows_the_authors_rule() {
    // Exponent fields: 1.0 → 127, 0.5 → 126, 0.25 → 125, 0.125 → 124, 2^-10 → 117.
    let data = vec![1.0f32, 0.5, -0.25, 0.125, 0.0009765625, -0.0625, 0.375];
    // Distinct exponents {127, 126, 125, 124, 123 (−0.0625), 117} = 6 → b = 3; r = 1 → k = 4.
    let seen = seen_of(&data);
    let off = plan(&seen, 1, ZeroMode::Off, 7, Rounding::NearestEven).unwrap();
    assert_eq!(off.set.table, vec![127, 126, 125, 124]);
    let mut d = data.clone();
    let s = project(&mut d, &off.set, Stage::Final).unwrap();
    // 2^-10 → nearest kept weight is 0.125; −0.0625 → nearest is 0.125 too (distance
    // 0.1875) vs −0.25 (0.1875): a tie, won by −0.25 which occurs first (index 2 < 3).
    assert_eq!(d, vec![1.0, 0.5, -0.25, 0.125, 0.125, -0.25, 0.375]);
    assert_eq!((s.snapped, s.zeroed), (2, 0));

    let inb = plan(&seen, 1, ZeroMode::InBudget, 7, Rounding::NearestEven).unwrap();
    assert_eq!(inb.set.table, vec![127, 126, 125, 0]);
    let mut d = data.clone();
    let s = project(&mut d, &inb.set, Stage::Final).unwrap();
    // 0.125 is no longer kept: nearest of {1, .5, −.25, .375, 0} is 0.0 (dist .125) vs
    // .25? not present; 0.375 (.25): zero wins. 2^-10 and −0.0625 → 0.
    assert_eq!(d, vec![1.0, 0.5, -0.25, 0.0, 0.0, 0.0, 0.375]);
    assert_eq!((s.snapped, s.zeroed), (3, 3));

    let extra = plan(&seen, 1, ZeroMode::ExtraEntry, 7, Rounding::NearestEven).unwrap();
    assert_eq!(extra.set.table, vec![127, 126, 125, 124, 0]);
    let mut d = data;
    project(&mut d, &extra.set, Stage::Final).unwrap();
    assert_eq!(d, vec![1.0, 0.5, -0.25, 0.125, 0.0, 0.0, 0.375]);
}

fn zero_modes() -> impl Strategy<Value = ZeroMode> {
    prop_oneof![
        Just(ZeroMode::Off),
        Just(ZeroMode::InBudget),
        Just(ZeroMode::ExtraEntry)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Projection is idempotent at both stages, and a final projection yields only values
    /// whose exponent is in the table and whose dropped mantissa bits are zero.
    #[test]
    fn projection_is_idempotent_and_lands_in_the_set(
        seed in any::<u64>(),
        n in 1usize..400,
        scale in prop_oneof![Just(1e-3f32), Just(0.05), Just(1.0)],
        r in 0u8..=3,
        m in 0u8..=7,
        zero in zero_modes(),
        truncate in any::<bool>(),
    ) {
        let rounding = if truncate { Rounding::Truncate } else { Rounding::NearestEven };
        let data = values(seed, n, scale);
        let mut seen = [false; 256];
        for w in &data {
            seen[exponent_field(round_weight(*w, m, rounding).unwrap()) as usize] = true;
        }
        let Ok(p) = plan(&seen, r, zero, m, rounding) else {
            // r too large for this data: the only way plan may fail.
            prop_assert!(r >= wb_core::bitpack::index_bits(seen.iter().filter(|s| **s).count()));
            return Ok(());
        };
        for stage in [Stage::Step, Stage::Final] {
            let mut once = data.clone();
            project(&mut once, &p.set, stage).unwrap();
            let mut twice = once.clone();
            let s = project(&mut twice, &p.set, stage).unwrap();
            prop_assert_eq!(s.snapped, 0);
            prop_assert_eq!(
                once.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                twice.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
            for v in &once {
                let b = round_weight(*v, m, rounding).unwrap();
                prop_assert!(p.set.allows(b), "{v} has exponent {}", exponent_field(b));
                if stage == Stage::Final {
                    prop_assert_eq!(v.to_bits() & 0xFFFF, 0);
                    prop_assert_eq!(b as u32, v.to_bits() >> 16);
                }
            }
        }
        // Step then final equals final directly only in the stored values' set; both are
        // storable by the table.
        let mut d = data.clone();
        project(&mut d, &p.set, Stage::Step).unwrap();
        project(&mut d, &p.set, Stage::Final).unwrap();
        let bits: Vec<u16> = d.iter().map(|v| (v.to_bits() >> 16) as u16).collect();
        prop_assert!(wb_core::bf16fields::split(&bits, &p.set.table, m).is_ok());
        prop_assert_eq!(p.index_bits(), wb_core::bitpack::index_bits(p.set.table.len()));
    }
}

// ---------------------------------------------------------------------------------------
// The method: sizes, determinism, variants
// ---------------------------------------------------------------------------------------

#[test]
fn registry_entry_and_defaults() {
    let ids: Vec<&str> = methods().iter().map(|m| m.id).collect();
    assert_eq!(ids, vec!["bf16-approx"]);
    let p = check_params(BF16_APPROX.params, &BTreeMap::new()).unwrap();
    assert_eq!(Bf16Approx::from_params(&p).unwrap(), Bf16Approx::default());
}

/// Lossless exponent sharing decodes bit for bit to the bfloat16 cast (so every logit is
/// the BF16 cast's), with `1 + ⌈log2 |E_l|⌉ + 7` bits per weight + 8 per table entry.
#[test]
fn lossless_sharing_equals_the_bf16_cast() {
    let w = model();
    for table in ["layer", "model"] {
        let c = run(json!({ "table": table }), &w);
        check_sizes(&c.artifact);
        let d = c.artifact.decode().unwrap();
        assert!(d.bit_identical(&bf16_cast(&w)), "table = {table}");
        let x = &c.extra;
        assert_eq!(x["snapped_weights"], 0);
        assert_eq!(x["bits_bf16_baseline"], 16 * w.counted_params());
        assert_eq!(x["bits_compressed"], c.artifact.size().bits_compressed);
        let saving = x["saving_vs_bf16_pct"].as_f64().unwrap();
        assert!(saving > 0.0 && saving < 50.0, "{saving}");
        if table == "model" {
            assert_eq!(c.artifact.shared_exp_tables.len(), 1);
            assert!(c
                .artifact
                .tensors
                .iter()
                .filter(|t| t.compressible)
                .all(|t| t.encoding.kind() == "bf16-fields-shared"));
        } else {
            assert!(c.artifact.shared_exp_tables.is_empty());
            for (t, l) in c
                .artifact
                .tensors
                .iter()
                .filter(|t| t.compressible)
                .zip(x["layers"].as_array().unwrap())
            {
                let distinct = l["distinct_exponents"].as_u64().unwrap() as usize;
                assert_eq!(
                    t.size().payload_bits(),
                    t.encoding.len() as u64
                        * (1 + wb_core::bitpack::index_bits(distinct) as u64 + 7)
                        + 8 * distinct as u64
                );
            }
        }
        // Non-compressible tensors stay FP32, untouched.
        assert_eq!(d.get("bn1.weight").unwrap(), w.get("bn1.weight").unwrap());
    }
}

/// Every variant: container = analytic size, same seed ⇒ identical bytes, more removal or
/// fewer mantissa bits ⇒ never more bits, and values are in the declared format.
#[test]
fn variants_are_exact_deterministic_and_monotone() {
    let w = model();
    for table in ["layer", "model"] {
        for zero in [json!(true), json!(false)] {
            let mut last_bits = u64::MAX;
            for (r, m) in [(0, 7), (1, 7), (1, 5), (2, 5), (2, 3), (3, 0)] {
                let given = json!({
                    "table": table, "remove_bits": r, "mantissa_bits": m, "zero_candidate": zero
                });
                let c = run(given.clone(), &w);
                check_sizes(&c.artifact);
                let again = run(given, &w);
                assert_eq!(
                    container::write(&c.artifact).unwrap(),
                    container::write(&again.artifact).unwrap()
                );
                let bits = c.artifact.size().bits_compressed;
                assert!(
                    bits <= last_bits,
                    "{table} r={r} m={m}: {bits} > {last_bits}"
                );
                last_bits = bits;
                for t in c.artifact.tensors.iter().filter(|t| t.compressible) {
                    let Encoding::Indexed {
                        table: ValueTable::Bf16Exponents(e),
                        coding: IndexCoding::Fixed { bits: index_bits },
                        ..
                    } = &t.encoding
                    else {
                        panic!("fields expected")
                    };
                    assert_eq!(e.mantissa_bits, m);
                    if r > 0 && table == "layer" {
                        let l = c.extra["layers"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .find(|l| l["name"] == t.name.as_str())
                            .unwrap();
                        let b = l["lossless_index_bits"].as_u64().unwrap() as u8;
                        assert_eq!(*index_bits, b - r, "{}", t.name);
                    }
                }
            }
        }
    }
}

/// `zero_entry = "extra"` keeps the authors' candidate set and pays one more index bit,
/// reported next to the authors' nominal accounting.
#[test]
fn extra_zero_entry_costs_an_index_bit_and_reports_the_nominal_accounting() {
    let w = model();
    let inb = run(json!({"remove_bits": 1}), &w);
    let extra = run(json!({"remove_bits": 1, "zero_entry": "extra"}), &w);
    check_sizes(&extra.artifact);
    let bits = |c: &Candidate| c.artifact.size().bits_compressed;
    assert!(bits(&extra) > bits(&inb));
    let nominal = extra.extra["bits_nominal_authors"].as_u64().unwrap();
    assert!(nominal < bits(&extra));
    // in-budget: nominal and stored accounting coincide.
    assert_eq!(
        inb.extra["bits_nominal_authors"].as_u64().unwrap(),
        bits(&inb)
    );
}

/// Value sharing: `auto` never takes more bits than the fields and decodes to the same
/// weights; `always` stores value tables only.
#[test]
fn value_sharing_is_chosen_only_where_smaller() {
    let w = model();
    for m in [7, 2, 0] {
        let fields = run(json!({"mantissa_bits": m, "remove_bits": 1}), &w);
        let auto = run(
            json!({"mantissa_bits": m, "remove_bits": 1, "value_sharing": "auto"}),
            &w,
        );
        let always = run(
            json!({"mantissa_bits": m, "remove_bits": 1, "value_sharing": "always"}),
            &w,
        );
        for c in [&auto, &always] {
            check_sizes(&c.artifact);
            assert!(c
                .artifact
                .decode()
                .unwrap()
                .bit_identical(&fields.artifact.decode().unwrap()));
        }
        let bits = |c: &Candidate| c.artifact.size().bits_compressed;
        assert!(bits(&auto) <= bits(&fields) && bits(&auto) <= bits(&always));
        assert!(always
            .artifact
            .tensors
            .iter()
            .filter(|t| t.compressible)
            .all(|t| t.encoding.kind() == "bf16-table"));
    }
    // A layer of 16 distinct values spread over 16 exponents: 12 bits per weight as
    // fields (1 + 4 + 7), 4 bits + 16·16 as a value table; `auto` takes the table.
    let few: Vec<f32> = (0..2048).map(|i| 2f32.powi(-(i % 16))).collect();
    let w = WeightSet::new(vec![Tensor::new("few", vec![2048], few, true).unwrap()]).unwrap();
    let auto = run(json!({"value_sharing": "auto"}), &w);
    check_sizes(&auto.artifact);
    assert_eq!(auto.artifact.tensors[0].encoding.kind(), "bf16-table");
    assert_eq!(auto.artifact.size().bits_compressed, 2048 * 4 + 16 * 16);
    assert_eq!(auto.extra["layers"][0]["bits_fields"], 2048 * 12 + 8 * 16);
}

/// Truncation never increases a magnitude; nearest-even is never farther than truncation.
#[test]
fn mantissa_approximation_modes() {
    let w = model();
    let rne = run(json!({"mantissa_bits": 3}), &w)
        .artifact
        .decode()
        .unwrap();
    let tr = run(
        json!({"mantissa_bits": 3, "mantissa_rounding": "truncate"}),
        &w,
    )
    .artifact
    .decode()
    .unwrap();
    let cast = bf16_cast(&w);
    for ((a, b), c) in rne.tensors.iter().zip(&tr.tensors).zip(&cast.tensors) {
        if !a.compressible {
            continue;
        }
        for ((x, y), z) in a.data.iter().zip(&b.data).zip(&c.data) {
            assert!(y.abs() <= z.abs());
            assert!((x - z).abs() <= (y - z).abs());
        }
    }
}

// ---------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------

#[test]
fn bad_parameters_are_rejected_before_any_work() {
    let params = |v: Value| serde_json::from_value::<BTreeMap<String, Value>>(v).unwrap();
    // Declared ranges: m' > 7 and r > 7 never reach the method.
    for bad in [
        json!({"mantissa_bits": 8}),
        json!({"remove_bits": 8}),
        json!({"remove_bits": -1}),
        json!({"table": "global"}),
        json!({"value_sharing": true}),
    ] {
        assert!(
            check_params(BF16_APPROX.params, &params(bad.clone())).is_err(),
            "{bad}"
        );
    }
    // Cross-field checks in build.
    for (bad, field) in [
        (
            json!({"zero_candidate": false, "zero_entry": "extra"}),
            "zero_entry",
        ),
        (json!({"retrain_steps": 10}), "retrain_steps"),
        (json!({"retrain_epochs": 1, "lr": 0.0}), "lr"),
    ] {
        let p = check_params(BF16_APPROX.params, &params(bad.clone())).unwrap();
        let e = (BF16_APPROX.build)(&p).err().expect("rejected");
        assert_eq!(e.field, field, "{bad}");
    }
    // r ≥ b of a layer: a Params error naming the layer, before the trainer is touched.
    let w = model();
    let mut fake = FakeFineTuner::new(w.clone(), 3, 100);
    let mut ctx = Context::bare(0);
    ctx.trainer = Some(&mut fake);
    let e = run_with(json!({"remove_bits": 7, "retrain_epochs": 1}), &w, &mut ctx).unwrap_err();
    match &e {
        MethodError::Params(p) => {
            assert_eq!(p.field, "remove_bits");
            assert!(p.message.contains("layer `conv1.weight`"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.steps_seen, 0);
    let e = run_with(
        json!({"remove_bits": 7, "table": "model"}),
        &w,
        &mut Context::bare(0),
    )
    .unwrap_err();
    assert!(e.to_string().contains("model-wide table"), "{e}");
    // Retraining without a trainer.
    let e = run_with(json!({"retrain_epochs": 1}), &w, &mut Context::bare(0)).unwrap_err();
    assert!(
        matches!(e, MethodError::NeedsTrainer("bf16-approx")),
        "{e:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Retraining with projection
// ---------------------------------------------------------------------------------------

/// Wraps the fake fine-tuner and checks after every step that each compressible tensor is
/// inside the allowed set (every step is projected).
struct Checking {
    inner: FakeFineTuner,
    tables: BTreeMap<String, BTreeSet<u8>>,
    checked: u64,
}

struct CheckProj<'a> {
    inner: &'a mut dyn Projection,
    tables: &'a BTreeMap<String, BTreeSet<u8>>,
    checked: &'a mut u64,
}

impl Projection for CheckProj<'_> {
    fn step(&mut self, t: &mut Tensor) -> Result<(), CoreError> {
        self.inner.step(t)?;
        let table = &self.tables[&t.name];
        for v in &t.data {
            let b = round_weight(*v, 7, Rounding::NearestEven).unwrap();
            assert!(table.contains(&exponent_field(b)), "{}: {v}", t.name);
        }
        *self.checked += 1;
        Ok(())
    }
    fn finalize(&mut self, t: &mut Tensor) -> Result<(), CoreError> {
        self.inner.finalize(t)
    }
}

impl FineTuner for Checking {
    fn fine_tune(
        &mut self,
        start: &WeightSet,
        cfg: &FineTuneConfig,
        project: &mut dyn Projection,
        progress: &dyn Progress,
    ) -> Result<FineTuneOutcome, wb_core::EvalError> {
        let mut p = CheckProj {
            inner: project,
            tables: &self.tables,
            checked: &mut self.checked,
        };
        self.inner.fine_tune(start, cfg, &mut p, progress)
    }
}

#[test]
fn retraining_projects_every_step_and_returns_the_best_epoch() {
    let w = model();
    let given = json!({"remove_bits": 2, "retrain_epochs": 3});
    // The allowed tables, from a retraining-free run with the same parameters.
    let free = run(json!({"remove_bits": 2}), &w);
    let tables: BTreeMap<String, BTreeSet<u8>> = free.extra["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap().to_string(),
                l["table"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e.as_u64().unwrap() as u8)
                    .collect(),
            )
        })
        .collect();
    // Pull toward the FP32 weights: retraining should recover accuracy on the fake.
    let mut t = Checking {
        inner: FakeFineTuner::new(w.clone(), 4, 1000),
        tables,
        checked: 0,
    };
    let mut ctx = Context::bare(7);
    ctx.trainer = Some(&mut t);
    let c = run_with(given.clone(), &w, &mut ctx).unwrap().remove(0);
    check_sizes(&c.artifact);
    assert_eq!(t.inner.steps_seen, 12);
    assert_eq!(
        t.checked,
        12 * 3,
        "every compressible tensor after every step"
    );
    let r = &c.extra["retrain"];
    assert_eq!(r["steps"], 12);
    assert_eq!(r["history"].as_array().unwrap().len(), 3);
    let best_top1 = r["best_holdout"]["top1_correct"].as_u64().unwrap();
    for h in r["history"].as_array().unwrap() {
        assert!(h["holdout"]["top1_correct"].as_u64().unwrap() <= best_top1);
    }
    assert!(best_top1 >= r["start_holdout"]["top1_correct"].as_u64().unwrap());
    // Same index widths as the retraining-free variant (same tables).
    for (a, b) in c.artifact.tensors.iter().zip(&free.artifact.tensors) {
        assert_eq!(a.size().index_bits, b.size().index_bits, "{}", a.name);
    }
    // Deterministic given the seed.
    let mut t2 = FakeFineTuner::new(w.clone(), 4, 1000);
    let mut ctx = Context::bare(7);
    ctx.trainer = Some(&mut t2);
    let again = run_with(given.clone(), &w, &mut ctx).unwrap().remove(0);
    assert_eq!(
        container::write(&again.artifact).unwrap(),
        container::write(&c.artifact).unwrap()
    );
    // A step cap stops early.
    let mut t3 = FakeFineTuner::new(w.clone(), 4, 1000);
    let mut ctx = Context::bare(7);
    ctx.trainer = Some(&mut t3);
    let mut capped = given;
    capped["retrain_steps"] = json!(5);
    let c = run_with(capped, &w, &mut ctx).unwrap().remove(0);
    assert_eq!(c.extra["retrain"]["steps"], 5);
    assert_eq!(t3.steps_seen, 5);
}
