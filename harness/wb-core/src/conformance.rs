//! The conformance kit: the contract every method keeps, checked on a small
//! ResNet-shaped weight set with the core's deterministic fakes. Every method crate
//! runs it from its tests with [`method_conformance!`](crate::method_conformance):
//!
//! ```ignore
//! wb_core::method_conformance!(
//!     my_method::MY_METHOD,
//!     params = [{}, {"k": 4}],      // the defaults and edge settings, as JSON objects
//!     bad = [{"k_min": 8, "k_max": 4}], // cross-field mistakes the method must refuse
//! );
//! ```
//!
//! What it checks, for every parameter set:
//! - the same seed gives the same candidates (labels, container bytes, diagnostics);
//! - the claimed size equals the container's bytes (total and by component);
//! - the container decodes bit-for-bit to the artifact's weights, with the input's
//!   names, shapes and flags;
//! - the input weights are not changed;
//! - NaN and infinite weights are refused before any evaluation is spent;
//! - a missing capability (evaluator, fine-tuner, gradients) is a clean error, and a method that
//!   does not declare one runs without it;
//! - and, from the declaration alone, every parameter rejects an out-of-range value,
//!   a value of the wrong type and an unknown choice, before any work.

use std::collections::BTreeMap;

use crate::container;
use crate::error::CoreError;
use crate::eval::{Evaluator, FakeEvaluator};
use crate::grad::FakeGradients;
use crate::method::{compress_checked, Candidate, Context, MethodError, MethodInfo};
use crate::params::{ParamKind, ParamSpec, Value};
use crate::train::FakeFineTuner;
use crate::weights::{Tensor, WeightSet};

/// Images the fake evaluator scores (its top-1 is a count out of these).
pub const FAKE_IMAGES: usize = 1000;
/// Correct images of the reference weights under the fake evaluator.
pub const FAKE_BASE_CORRECT: usize = 900;
/// Images lost per unit of relative squared weight error under the fake evaluator.
pub const FAKE_SENSITIVITY: f64 = 2.0;
/// Seed of every compression the kit runs.
pub const SEED: u64 = 7;

/// A small weight set shaped like a CIFAR ResNet: a 3→8 stem convolution, BatchNorm
/// affine parameters (not compressible), two 3×3 convolutions and a classifier with a
/// bias; about 2,500 compressible weights with Kaiming-scaled, seeded values.
pub fn resnet_like_weights(seed: u64) -> WeightSet {
    let mut state = seed ^ 0x5EED_C0DE;
    let mut normal = move || {
        // Box–Muller over two splitmix64 draws: deterministic and dependency-free.
        let mut uniform =
            || (crate::rng::splitmix64(&mut state) >> 11) as f64 / (1u64 << 53) as f64;
        let (u1, u2) = (uniform().max(1e-12), uniform());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    };
    let mut tensor = |name: &str, shape: Vec<usize>, fan_in: usize, compressible: bool| {
        let n = shape.iter().product();
        let scale = (2.0 / fan_in as f64).sqrt();
        let data = (0..n).map(|_| (normal() * scale) as f32).collect();
        Tensor::new(name, shape, data, compressible).expect("shape and data agree")
    };
    let tensors = vec![
        tensor("conv1.weight", vec![8, 3, 3, 3], 27, true),
        tensor("bn1.weight", vec![8], 1, false),
        tensor("bn1.bias", vec![8], 1, false),
        tensor("layer1.0.conv1.weight", vec![8, 8, 3, 3], 72, true),
        tensor("layer1.0.conv2.weight", vec![16, 8, 3, 3], 72, true),
        tensor("linear.weight", vec![10, 16], 16, true),
        tensor("linear.bias", vec![10], 16, false),
    ];
    WeightSet::new(tensors).expect("names are unique")
}

fn object(given: &Value) -> Result<BTreeMap<String, Value>, String> {
    serde_json::from_value(given.clone())
        .map_err(|e| format!("parameter case {given} is not a JSON object: {e}"))
}

/// What one compression run gave: the candidates, or the error, and the evaluations
/// the fake evaluator was asked for.
struct Outcome {
    result: Result<Vec<Candidate>, MethodError>,
    evaluations: u64,
}

/// Which fake capabilities a run gets.
#[derive(Clone, Copy)]
struct Caps {
    evaluator: bool,
    trainer: bool,
    gradients: bool,
}

const ALL: Caps = Caps {
    evaluator: true,
    trainer: true,
    gradients: true,
};

/// Runs `info` with `given` on `weights` through [`compress_checked`], with the fakes
/// for the capabilities that are switched on.
fn run(
    info: &MethodInfo,
    given: &Value,
    weights: &WeightSet,
    reference: &WeightSet,
    caps: Caps,
) -> Result<Outcome, String> {
    let (_, method) = info
        .instantiate(&object(given)?)
        .map_err(|e| format!("{} {given}: valid parameters refused: {e}", info.id))?;
    let mut ev = FakeEvaluator::new(
        reference.clone(),
        FAKE_IMAGES,
        FAKE_BASE_CORRECT,
        FAKE_SENSITIVITY,
    );
    let mut tuner = FakeFineTuner::new(reference.clone(), 4, FAKE_IMAGES);
    let mut grads = FakeGradients::new(FAKE_IMAGES);
    let mut ctx = Context::bare(SEED);
    if caps.evaluator {
        ctx.evaluator = Some(&mut ev);
    }
    if caps.trainer {
        ctx.trainer = Some(&mut tuner);
    }
    if caps.gradients {
        ctx.gradients = Some(&mut grads);
    }
    let result = compress_checked(info.id, method.as_ref(), weights, &mut ctx);
    Ok(Outcome {
        result,
        evaluations: ev.stats().evaluations,
    })
}

/// Determinism, claimed size = container bytes, bit-exact decode with the input's
/// layout, an untouched input, and a lossless, exactly sized Huffman post-stage, for one
/// parameter set.
///
/// # Errors
/// A message naming the method, the parameters, the candidate and the broken rule.
pub fn check_artifacts(info: &MethodInfo, given: &Value) -> Result<(), String> {
    let weights = resnet_like_weights(1);
    let before = weights.clone();
    let at = |what: &str| format!("{} {given}: {what}", info.id);
    let first = run(info, given, &weights, &before, ALL)?
        .result
        .map_err(|e| at(&format!("compress failed: {e}")))?;
    if !weights.bit_identical(&before) {
        return Err(at("the input weights were changed"));
    }
    let second = run(info, given, &weights, &before, ALL)?
        .result
        .map_err(|e| at(&format!("second compress failed: {e}")))?;
    if first.len() != second.len() {
        return Err(at("the same seed gave a different number of candidates"));
    }
    for (a, b) in first.iter().zip(&second) {
        let at = |what: &str| at(&format!("candidate `{}`: {what}", a.label));
        let bytes = container::write(&a.artifact).map_err(|e| at(&format!("write: {e}")))?;
        let again = container::write(&b.artifact).map_err(|e| at(&format!("write: {e}")))?;
        if a.label != b.label || bytes != again || a.extra != b.extra {
            return Err(at("the same seed gave a different candidate"));
        }
        check_size(&a.artifact, bytes.len() as u64).map_err(|e| at(&e))?;
        let decoded = container::read(&bytes)
            .and_then(|art| art.decode())
            .map_err(|e| at(&format!("container does not decode: {e}")))?;
        let direct = a
            .artifact
            .decode()
            .map_err(|e| at(&format!("artifact does not decode: {e}")))?;
        if !decoded.bit_identical(&direct) {
            return Err(at(
                "the container decodes to other weights than the artifact",
            ));
        }
        same_layout(&weights, &decoded).map_err(|e| at(&e))?;
        check_huffman_post_stage(&a.artifact, &direct).map_err(|e| at(&e))?;
    }
    Ok(())
}

/// The harness's index-coding post-stages ([`crate::Artifact::recoded`]: fixed width,
/// Huffman per tensor and per model) apply to the method's artifact: sized exactly and
/// decoding to the same weights.
fn check_huffman_post_stage(artifact: &crate::Artifact, direct: &WeightSet) -> Result<(), String> {
    for (scope, coding) in crate::PostCoding::ALL {
        let coded = artifact
            .recoded(coding)
            .map_err(|e| format!("post-stage {scope}: {e}"))?;
        let bytes = container::write(&coded).map_err(|e| format!("post-stage {scope}: {e}"))?;
        check_size(&coded, bytes.len() as u64).map_err(|e| format!("post-stage {scope}: {e}"))?;
        let back = container::read(&bytes)
            .and_then(|a| a.decode())
            .map_err(|e| format!("post-stage {scope} does not decode: {e}"))?;
        if !back.bit_identical(direct) {
            return Err(format!("post-stage {scope} decodes to other weights"));
        }
    }
    Ok(())
}

/// The SHA-256 of every candidate's container and of its diagnostics,
/// `label=container+diagnostics` in candidate order, for
/// `given` on the kit's weights with the fakes: a golden value that pins a method's
/// output across refactors (update it only for an intended change, and say so).
///
/// # Errors
/// The parameters are refused or compression fails.
pub fn artifact_digests(info: &MethodInfo, given: &Value) -> Result<Vec<String>, String> {
    use sha2::{Digest, Sha256};
    let weights = resnet_like_weights(1);
    let candidates = run(info, given, &weights, &weights, ALL)?
        .result
        .map_err(|e| format!("{} {given}: compress failed: {e}", info.id))?;
    candidates
        .iter()
        .map(|c| {
            let bytes = container::write(&c.artifact).map_err(|e| e.to_string())?;
            Ok(format!(
                "{}={}+{}",
                c.label,
                crate::weights::hex(&Sha256::digest(&bytes)),
                crate::weights::hex(&Sha256::digest(c.extra.to_string().as_bytes()))
            ))
        })
        .collect()
}

/// One SHA-256 over [`artifact_digests`] (`label=hex` lines), with the candidate count:
/// `"N:hex"`.
///
/// # Errors
/// As [`artifact_digests`].
pub fn combined_digest(info: &MethodInfo, given: &Value) -> Result<String, String> {
    use sha2::{Digest, Sha256};
    let lines = artifact_digests(info, given)?;
    let all = Sha256::digest(lines.join("\n").as_bytes());
    Ok(format!("{}:{}", lines.len(), crate::weights::hex(&all)))
}

/// Every `(parameters as JSON, golden combined digest)` pair still holds; a failure
/// lists each parameter set whose output changed, with the digest it gives now.
///
/// # Errors
/// One line per changed or failing parameter set.
pub fn check_golden(info: &MethodInfo, golden: &[(&str, &str)]) -> Result<(), String> {
    let mut wrong = Vec::new();
    for (params, want) in golden {
        let given: Value =
            serde_json::from_str(params).map_err(|e| format!("golden parameters {params}: {e}"))?;
        match combined_digest(info, &given) {
            Ok(got) if got == *want => {}
            Ok(got) => wrong.push(format!("{params}: got {got}, golden {want}")),
            Err(e) => wrong.push(e),
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("\n"))
    }
}

fn check_size(artifact: &crate::Artifact, file_bytes: u64) -> Result<(), String> {
    let size = artifact.size();
    if size.total_bytes != file_bytes {
        return Err(format!(
            "claims {} bytes, the container has {file_bytes}",
            size.total_bytes
        ));
    }
    let parts = size.container_overhead
        + size.shared_codebooks
        + size.shared_exp_tables
        + size.shared_code_tables
        + size.tensors.iter().map(|(_, t)| t.bytes()).sum::<u64>();
    if parts != file_bytes {
        return Err(format!(
            "components add up to {parts} bytes, the container has {file_bytes}"
        ));
    }
    Ok(())
}

fn same_layout(input: &WeightSet, decoded: &WeightSet) -> Result<(), String> {
    let key = |w: &WeightSet| -> Vec<(String, Vec<usize>, bool)> {
        w.tensors
            .iter()
            .map(|t| (t.name.clone(), t.shape.clone(), t.compressible))
            .collect()
    };
    if key(input) != key(decoded) {
        return Err("decoded names, shapes or flags differ from the input's".into());
    }
    Ok(())
}

/// NaN and infinite weights are refused through the harness's entry point before any
/// evaluation is spent.
///
/// # Errors
/// A message naming the method, the parameters and what was accepted.
pub fn check_non_finite(info: &MethodInfo, given: &Value) -> Result<(), String> {
    let reference = resnet_like_weights(1);
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut weights = reference.clone();
        let t = weights
            .tensors
            .iter_mut()
            .find(|t| t.compressible)
            .expect("the kit's weights have compressible tensors");
        t.data[3] = bad;
        let out = run(info, given, &weights, &reference, ALL)?;
        match out.result {
            Err(MethodError::Core(CoreError::NonFinite { .. })) if out.evaluations == 0 => {}
            Err(MethodError::Core(CoreError::NonFinite { .. })) => {
                return Err(format!(
                    "{} {given}: weight {bad} refused only after {} evaluations",
                    info.id, out.evaluations
                ))
            }
            Err(e) => {
                return Err(format!(
                    "{} {given}: weight {bad} gave `{e}` instead of a non-finite error",
                    info.id
                ))
            }
            Ok(_) => return Err(format!("{} {given}: weight {bad} was accepted", info.id)),
        }
    }
    Ok(())
}

/// A capability the method declares is a clean error when missing; one it does not
/// declare is not needed.
///
/// # Errors
/// A message naming the method, the parameters and the capability.
pub fn check_capabilities(info: &MethodInfo, given: &Value) -> Result<(), String> {
    let weights = resnet_like_weights(1);
    let (_, method) = info
        .instantiate(&object(given)?)
        .map_err(|e| format!("{} {given}: valid parameters refused: {e}", info.id))?;
    let needs = method.needs();
    let without = |caps: Caps| run(info, given, &weights, &weights, caps);
    let declared = [
        ("an evaluator", needs.evaluator),
        ("a fine-tuner", needs.trainer),
        ("gradients", needs.gradients),
    ];
    for (i, (what, declares)) in declared.into_iter().enumerate() {
        let caps = Caps {
            evaluator: i != 0,
            trainer: i != 1,
            gradients: i != 2,
        };
        let out = without(caps)?;
        let clean_error = matches!(
            (i, &out.result),
            (0, Err(MethodError::NeedsEvaluator(_)))
                | (1, Err(MethodError::NeedsTrainer(_)))
                | (2, Err(MethodError::NeedsGradients(_)))
        );
        match (declares, out.result) {
            (true, _) if clean_error => {}
            (false, Ok(_)) => {}
            (true, r) => {
                return Err(format!(
                    "{} {given}: declares {what} but without them gave {}",
                    info.id,
                    describe(&r)
                ))
            }
            (false, Err(e)) => {
                return Err(format!(
                    "{} {given}: declares no need for {what} but failed without them: {e}",
                    info.id
                ))
            }
        }
    }
    Ok(())
}

fn describe(r: &Result<Vec<Candidate>, MethodError>) -> String {
    match r {
        Ok(c) => format!("{} candidates", c.len()),
        Err(e) => format!("`{e}`"),
    }
}

/// Values that `spec` must refuse: out of range, of the wrong type, an unknown choice.
pub fn invalid_values(spec: &ParamSpec) -> Vec<Value> {
    match spec.kind {
        ParamKind::Int { min, max } => {
            let mut v = vec![Value::from("7"), Value::from(0.5)];
            v.extend(min.checked_sub(1).map(Value::from));
            v.extend(max.checked_add(1).map(Value::from));
            v
        }
        ParamKind::Float { min, max } => vec![
            Value::from("0.5"),
            Value::from(min - 1.0 - min.abs()),
            Value::from(max + 1.0 + max.abs()),
        ],
        ParamKind::Bool => vec![Value::from("yes"), Value::from(1)],
        ParamKind::Choice(_) => vec![Value::from("no-such-choice"), Value::from(3)],
    }
}

/// Every declared parameter refuses [`invalid_values`], naming itself; every `bad`
/// combination (cross-field rules) is refused; the defaults are accepted and every
/// declared parameter appears in the canonical parameters.
///
/// # Errors
/// A message naming the method, the parameter and the value that got through.
pub fn check_bad_params(info: &MethodInfo, bad: &[Value]) -> Result<(), String> {
    let (params, _) = info
        .instantiate(&BTreeMap::new())
        .map_err(|e| format!("{}: the defaults are refused: {e}", info.id))?;
    for spec in info.params {
        if !params.as_map().contains_key(spec.name) {
            return Err(format!("{}: `{}` has no default", info.id, spec.name));
        }
        if spec.doc.trim().is_empty() {
            return Err(format!("{}: `{}` has no description", info.id, spec.name));
        }
        for v in invalid_values(spec) {
            let given = BTreeMap::from([(spec.name.to_string(), v.clone())]);
            match info.instantiate(&given) {
                Err(e) if e.field == spec.name => {}
                Err(e) => {
                    return Err(format!(
                        "{}: `{} = {v}` was refused under field `{}`",
                        info.id, spec.name, e.field
                    ))
                }
                Ok(_) => return Err(format!("{}: `{} = {v}` was accepted", info.id, spec.name)),
            }
        }
    }
    for given in bad {
        if info.instantiate(&object(given)?).is_ok() {
            return Err(format!("{}: {given} was accepted", info.id));
        }
    }
    Ok(())
}

/// Marker lines around the generated parameter table in a method README.
pub const README_PARAMS_BEGIN: &str = "<!-- params:begin -->";
/// See [`README_PARAMS_BEGIN`].
pub const README_PARAMS_END: &str = "<!-- params:end -->";

/// The README's parameter table (between [`README_PARAMS_BEGIN`] and
/// [`README_PARAMS_END`]) is the one generated from the declaration.
///
/// # Errors
/// A message with the table the README should hold.
pub fn check_readme(info: &MethodInfo, readme: &str) -> Result<(), String> {
    let want = crate::params::markdown_table(info.params);
    let found = readme
        .split_once(README_PARAMS_BEGIN)
        .and_then(|(_, rest)| rest.split_once(README_PARAMS_END))
        .map(|(table, _)| table.trim());
    match found {
        Some(t) if t == want.trim() => Ok(()),
        Some(_) => Err(format!(
            "{}: the README's parameter table differs from the declaration; it should be:\n{want}",
            info.id
        )),
        None => Err(format!(
            "{}: the README has no `{README_PARAMS_BEGIN}` … `{README_PARAMS_END}` block; \
             put this table between them:\n{want}",
            info.id
        )),
    }
}

/// The conformance tests of one method, as `#[test]` functions in a module
/// `conformance`: `params` lists the parameter sets to run (JSON objects; `{}` is the
/// defaults), `bad` (optional) the cross-field combinations the method must refuse,
/// `readme` (optional, `include_str!("../README.md")`) a README whose parameter table
/// must be the generated one.
/// See the [module documentation](crate::conformance).
#[macro_export]
macro_rules! method_conformance {
    (
        $info:expr,
        params = [$($p:tt),* $(,)?]
        $(, bad = [$($b:tt),* $(,)?])?
        $(, readme = $readme:expr)?
        $(,)?
    ) => {
        mod conformance {
            #[allow(unused_imports)]
            use super::*;

            fn cases() -> Vec<$crate::params::Value> {
                vec![$($crate::__json!($p)),*]
            }

            fn each(check: fn(&$crate::MethodInfo, &$crate::params::Value) -> Result<(), String>) {
                let failures: Vec<String> = cases()
                    .iter()
                    .filter_map(|c| check(&$info, c).err())
                    .collect();
                assert!(failures.is_empty(), "{}", failures.join("\n"));
            }

            #[test]
            fn deterministic_sized_and_decodes_bit_exact() {
                each($crate::conformance::check_artifacts);
            }

            #[test]
            fn non_finite_weights_are_refused_before_work() {
                each($crate::conformance::check_non_finite);
            }

            #[test]
            fn missing_capabilities_fail_cleanly() {
                each($crate::conformance::check_capabilities);
            }

            $(
                #[test]
                fn readme_parameter_table_matches_the_declaration() {
                    if let Err(e) = $crate::conformance::check_readme(&$info, $readme) {
                        panic!("{e}");
                    }
                }
            )?

            #[test]
            fn bad_parameters_are_refused_before_work() {
                let bad: Vec<$crate::params::Value> = vec![$($($crate::__json!($b)),*)?];
                if let Err(e) = $crate::conformance::check_bad_params(&$info, &bad) {
                    panic!("{e}");
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kit_weights_are_deterministic_and_resnet_shaped() {
        let a = resnet_like_weights(3);
        assert!(a.bit_identical(&resnet_like_weights(3)));
        assert!(!a.bit_identical(&resnet_like_weights(4)));
        assert_eq!(a.counted_params(), 216 + 576 + 1152 + 160);
        assert!(a.check_finite().is_ok());
    }

    #[test]
    fn invalid_values_cover_both_ends_of_a_range() {
        let spec = ParamSpec {
            name: "k",
            kind: ParamKind::Int { min: 2, max: 9 },
            default: None,
            doc: "k",
        };
        let v = invalid_values(&spec);
        assert!(v.contains(&Value::from(1)) && v.contains(&Value::from(10)));
    }
}

#[cfg(test)]
#[allow(dead_code)]
mod broken {
    //! The kit catches the mistakes it exists for.
    use super::*;
    use crate::method::{Method, Needs};
    use crate::{Artifact, Params};
    use std::sync::atomic::{AtomicU64, Ordering};

    static CALLS: AtomicU64 = AtomicU64::new(0);

    crate::param_choice! {
        /// The mistake a broken method makes.
        enum Flaw {
            None = "none",
            Random = "random",
            Undeclared = "undeclared",
        }
    }

    crate::method_params! {
        #[derive(Debug)]
        struct Broken {
            /// which mistake
            flaw: Flaw = Flaw::None => choice,
        }
    }

    impl Method for Broken {
        fn compress(
            &self,
            weights: &WeightSet,
            ctx: &mut Context<'_>,
        ) -> Result<Vec<Candidate>, MethodError> {
            if self.flaw == Flaw::Undeclared {
                ctx.require_evaluator("broken")?;
            }
            let mut w = weights.clone();
            if self.flaw == Flaw::Random {
                w.tensors[0].data[0] += CALLS.fetch_add(1, Ordering::Relaxed) as f32;
            }
            Ok(Candidate::single(Artifact::dense(&w)))
        }
        fn needs(&self) -> Needs {
            Needs::NONE
        }
    }

    fn build(p: &Params) -> Result<Box<dyn Method>, crate::ParamError> {
        Ok(Box::new(Broken::from_params(p)?))
    }

    const INFO: MethodInfo = MethodInfo {
        id: "broken",
        summary: "a method with a chosen flaw",
        params: Broken::SPECS,
        build,
        view: None,
    };

    #[test]
    fn a_sound_method_passes() {
        let none = serde_json::json!({});
        check_artifacts(&INFO, &none).unwrap();
        check_non_finite(&INFO, &none).unwrap();
        check_capabilities(&INFO, &none).unwrap();
        check_bad_params(&INFO, &[]).unwrap();
    }

    #[test]
    fn nondeterminism_is_caught() {
        let e = check_artifacts(&INFO, &serde_json::json!({"flaw": "random"})).unwrap_err();
        assert!(e.contains("same seed"), "{e}");
    }

    #[test]
    fn an_undeclared_capability_is_caught() {
        let e = check_capabilities(&INFO, &serde_json::json!({"flaw": "undeclared"})).unwrap_err();
        assert!(e.contains("declares no need for an evaluator"), "{e}");
    }

    #[test]
    fn an_unrefused_bad_combination_is_caught() {
        let e = check_bad_params(&INFO, &[serde_json::json!({"flaw": "none"})]).unwrap_err();
        assert!(e.contains("was accepted"), "{e}");
    }
}
