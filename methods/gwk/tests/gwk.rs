//! GWK on the fake trainer: the artifact is the best epoch's PQ and decodes to the
//! weights the trainer evaluated; the gradient weighting changes the codebooks; kept
//! layers stay FP32; the control shares the schedule.

use gwk::{Gwk, GwkHook, HookConfig, Importance};
use wb_core::conformance::resnet_like_weights;
use wb_core::qat::QatHook;
use wb_core::{
    Context, Encoding, FakeFineTuner, Gradients, Method, NoProgress, TensorGradients, WeightSet,
};

fn run(m: &Gwk, w: &WeightSet) -> Vec<wb_core::Candidate> {
    let mut target = w.clone();
    target.tensors.iter_mut().for_each(|t| {
        t.data.iter_mut().for_each(|v| *v *= 1.01);
    });
    let mut trainer = FakeFineTuner::new(target, 5, 200);
    let mut ctx = Context {
        seed: 3,
        evaluator: None,
        trainer: Some(&mut trainer),
        gradients: None,
        progress: &NoProgress,
        accel: wb_core::race::Accel::default(),
    };
    wb_core::compress_checked("gwk", m, w, &mut ctx).unwrap()
}

#[test]
fn artifact_is_pq_below_one_bit_and_decodes_to_the_evaluated_weights() {
    let w = resnet_like_weights(1);
    let m = Gwk {
        dim: 8,
        k: 4,
        epochs: 2,
        recluster_every: 2,
        ..Gwk::default()
    };
    let c = run(&m, &w);
    assert_eq!(c.len(), 1);
    assert!(c[0].chosen);
    let a = &c[0].artifact;
    for t in a.tensors.iter().filter(|t| t.compressible) {
        let Encoding::ProductQuantized(p) = &t.encoding else {
            panic!("{} is not PQ", t.name);
        };
        assert_eq!(p.indices.len(), t.encoding.len().div_ceil(8));
        // 2-bit indices per 8 weights: 0.25 bits per weight before the codebook.
        assert!(t.size().index_bits <= t.encoding.len() as u64 / 4 + 2);
    }
    let bytes = wb_core::container::write(a).unwrap();
    assert_eq!(bytes.len() as u64, a.size().total_bytes);
    let extra = &c[0].extra;
    assert!(extra["refreshes"].as_u64().unwrap() >= 4, "{extra}");
    assert_eq!(extra["epochs"].as_array().unwrap().len(), 2);
}

#[test]
fn kept_layers_stay_fp32_and_the_control_is_dense() {
    let w = resnet_like_weights(2);
    let m = Gwk {
        keep: gwk::Keep::FirstLast,
        epochs: 1,
        ..Gwk::default()
    };
    let a = &run(&m, &w)[0].artifact;
    let comp: Vec<_> = a.tensors.iter().filter(|t| t.compressible).collect();
    assert_eq!(comp.first().unwrap().encoding.kind(), "f32");
    assert_eq!(comp.last().unwrap().encoding.kind(), "f32");
    assert!(comp[1..comp.len() - 1]
        .iter()
        .all(|t| t.encoding.kind() == "pq-f16"));
    let control = m.control().unwrap();
    assert_eq!(control["quantize"], serde_json::json!(false));
    assert!(!control.contains_key("dim") && !control.contains_key("k"));
    let cm = Gwk {
        quantize: false,
        ..m
    };
    let c = run(&cm, &w);
    assert!(c[0]
        .artifact
        .tensors
        .iter()
        .all(|t| t.encoding.kind() == "f32"));
    assert!(cm.control().is_none());
}

fn hook(importance: Importance, w: &WeightSet) -> GwkHook {
    let n = w.tensors.iter().filter(|t| t.compressible).count();
    GwkHook::new(
        w,
        &vec![false; n],
        HookConfig {
            dim: 4,
            k: 8,
            precision: gwk::CodewordPrecision::F32,
            importance,
            delta_mode: gwk::DeltaMode::Off,
            delta: 0.0,
            kmeans_iter: 5,
            seed: 9,
            codeword_lr: 0.0,
        },
    )
    .unwrap()
}

#[test]
fn gradient_weighting_moves_the_codewords_and_plain_mean_is_the_fallback() {
    let w = resnet_like_weights(4);
    let comp: Vec<_> = w.tensors.iter().filter(|t| t.compressible).collect();
    // A skewed importance: every other sub-vector counts 100 times less.
    let skew = |t: &wb_core::Tensor| -> Vec<f32> {
        (0..t.numel())
            .map(|i| if (i / 4) % 2 == 0 { 1.0 } else { 0.01 })
            .collect()
    };
    let grads = |f: &dyn Fn(&wb_core::Tensor) -> Vec<f32>| Gradients {
        tensors: comp
            .iter()
            .map(|t| TensorGradients {
                name: t.name.clone(),
                mean: f(t),
                mean_abs: f(t),
                mean_sq: f(t),
            })
            .collect(),
        images: 1,
        batches: 1,
        loss: 0.0,
    };
    let mut plain = hook(Importance::None, &w);
    let mut weighted = hook(Importance::Grad, &w);
    let mut zero = hook(Importance::Grad, &w);
    plain.refresh(&w, &grads(&skew)).unwrap();
    weighted.refresh(&w, &grads(&skew)).unwrap();
    zero.refresh(&w, &grads(&|t| vec![0.0; t.numel()])).unwrap();
    assert_ne!(plain.layers[1].codewords, weighted.layers[1].codewords);
    // Zero importance everywhere falls back to the plain mean.
    assert_eq!(plain.layers[1].codewords, zero.layers[1].codewords);
}

#[test]
fn codeword_learning_takes_an_adam_step_on_the_members_summed_gradient() {
    let w = resnet_like_weights(5);
    let n = w.tensors.iter().filter(|t| t.compressible).count();
    let cfg = HookConfig {
        dim: 4,
        k: 8,
        precision: gwk::CodewordPrecision::F32,
        importance: Importance::None,
        delta_mode: gwk::DeltaMode::Off,
        delta: 0.0,
        kmeans_iter: 5,
        seed: 9,
        codeword_lr: 0.01,
    };
    let mut h = GwkHook::new(&w, &vec![false; n], cfg).unwrap();
    let t = w.tensors.iter().find(|t| t.compressible).unwrap();
    let mut fw = vec![0.0; t.numel()];
    h.forward(0, t, &mut fw).unwrap();
    let before = h.layers[0].codewords.clone();
    // A positive gradient on every weight: Adam's first step lowers every used codeword
    // value by lr (unused codewords have no gradient and stay).
    let mut g = vec![1.0; t.numel()];
    h.backward(0, &t.data, &fw, &mut g).unwrap();
    let used: std::collections::BTreeSet<u32> = h.layers[0].labels.iter().copied().collect();
    for (j, (a, b)) in before
        .chunks(4)
        .zip(h.layers[0].codewords.chunks(4))
        .enumerate()
    {
        for (x, y) in a.iter().zip(b) {
            if used.contains(&(j as u32)) {
                assert!((x - y - 0.01).abs() < 1e-5, "codeword {j}: {x} -> {y}");
            } else {
                assert_eq!(x, y);
            }
        }
    }
    // With EWGS off the latent gradient passes unchanged.
    assert!(g.iter().all(|v| *v == 1.0));
}
