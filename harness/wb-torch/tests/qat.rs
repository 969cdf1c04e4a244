//! Quantization-aware training on the real ResNet20 and training images: the loop of
//! `wb_core::qat` over the libtorch backend.

mod common;
use common::{card, data_dir};

use wb_core::qat::{
    BatchNormMode, IdentityHook, Optimizer, QatConfig, QatHook, Schedule, TensorCurvature,
};
use wb_core::{CoreError, FineTuner, NoProgress, QatOutcome, Tensor};
use wb_torch::{dataset, TorchFineTuner, TorchModel, TRAIN_DATASET};

/// Rounds compressible weights to a grid of 1/64 and records the curvature it is given.
#[derive(Default)]
struct Grid {
    curvature: Vec<TensorCurvature>,
}

impl QatHook for Grid {
    fn forward(&mut self, _i: usize, latent: &Tensor, out: &mut [f32]) -> Result<(), CoreError> {
        for (o, v) in out.iter_mut().zip(&latent.data) {
            *o = (v * 64.0).round() / 64.0;
        }
        Ok(())
    }
    fn curvature(&mut self, c: &[TensorCurvature]) -> Result<(), CoreError> {
        self.curvature = c.to_vec();
        Ok(())
    }
}

fn config() -> QatConfig {
    QatConfig {
        epochs: 1,
        max_steps: 3,
        optimizer: Optimizer::ADAM,
        lr: 1e-4,
        schedule: Schedule::Cosine,
        weight_decay: 1e-4,
        batch: 32,
        seed: 5,
        holdout_images: 200,
        refresh_steps: 0,
        curvature_every: 1,
        curvature_batches: 1,
        batchnorm: BatchNormMode::Frozen,
    }
}

fn run(hook: &mut dyn QatHook) -> QatOutcome {
    let card = card("resnet20");
    let model = TorchModel::load(&card, tch::Device::Cpu).unwrap();
    let start = model.weights().clone();
    let train = dataset(TRAIN_DATASET).unwrap().load(&data_dir()).unwrap();
    let mut t = TorchFineTuner::new(model, train);
    let mut out = t.train_qat(&start, &config(), hook, &NoProgress).unwrap();
    out.epochs.iter_mut().for_each(|e| e.wall_s = 0.0);
    out
}

#[test]
fn qat_runs_quantized_forward_weights_deterministically_with_curvature() {
    tch::set_num_threads(1);
    let mut a = Grid::default();
    let out = run(&mut a);
    assert_eq!(out.steps, 3);
    assert_eq!(out.curvature_estimates, 1);
    assert_eq!(out.start_holdout.total, 200);
    for t in out.forward.tensors.iter().filter(|t| t.compressible) {
        assert!(
            t.data.iter().all(|v| (v * 64.0).fract() == 0.0),
            "{}",
            t.name
        );
    }
    // The latent weights moved off the grid: the optimizer trains them, not the image.
    let latent_moved = out
        .latent
        .tensors
        .iter()
        .filter(|t| t.compressible)
        .any(|t| t.data.iter().any(|v| (v * 64.0).fract() != 0.0));
    assert!(latent_moved);
    // One estimate per compressible tensor; a trained network's loss is locally convex
    // on average, so most traces are positive, and every value is finite.
    assert_eq!(a.curvature.len(), 20);
    assert!(a
        .curvature
        .iter()
        .all(|c| c.trace_per_weight.is_finite() && c.grad_std > 0.0));
    let positive = a
        .curvature
        .iter()
        .filter(|c| c.trace_per_weight > 0.0)
        .count();
    assert!(
        positive >= 15,
        "{positive} of 20 traces positive: {:?}",
        a.curvature
    );
    let mut b = Grid::default();
    assert_eq!(run(&mut b), out, "the same seed gave another run");
    assert_eq!(b.curvature, a.curvature);
}

#[test]
fn identity_hook_fine_tunes_every_parameter() {
    tch::set_num_threads(1);
    let out = run(&mut IdentityHook);
    assert_eq!(out.forward, out.latent);
    assert_eq!(out.steps, 3);
    assert!(out.epochs[0].train_loss.is_finite() && out.epochs[0].train_loss > 0.0);
    let card = card("resnet20");
    let start = TorchModel::load(&card, tch::Device::Cpu)
        .unwrap()
        .weights()
        .clone();
    let best = if out.best_epoch == 0 {
        &start
    } else {
        &out.latent
    };
    if out.best_epoch > 0 {
        // Biases or BatchNorm parameters moved too, not only the compressible weights.
        let moved = best
            .tensors
            .iter()
            .zip(&start.tensors)
            .filter(|(a, b)| !a.compressible && a.data != b.data)
            .count();
        assert!(moved > 0);
    }
}

#[test]
fn trained_batchnorm_is_folded_and_the_statistics_are_put_back() {
    tch::set_num_threads(1);
    let card = card("resnet20");
    let model = TorchModel::load(&card, tch::Device::Cpu).unwrap();
    let start = model.weights().clone();
    let train = dataset(TRAIN_DATASET).unwrap().load(&data_dir()).unwrap();
    let mut t = TorchFineTuner::new(model, train);
    let mut cfg = config();
    cfg.batchnorm = BatchNormMode::Train;
    cfg.curvature_every = 0;
    cfg.max_steps = 6;
    let a = t
        .train_qat(&start, &cfg, &mut IdentityHook, &NoProgress)
        .unwrap();
    // The fine-tuner's model got its starting statistics back: a second run is the same.
    let b = t
        .train_qat(&start, &cfg, &mut IdentityHook, &NoProgress)
        .unwrap();
    let strip = |mut o: QatOutcome| {
        o.epochs.iter_mut().for_each(|e| e.wall_s = 0.0);
        o
    };
    assert_eq!(strip(a.clone()), strip(b));
    if a.best_epoch > 0 {
        // The statistics moved, so folding changed γ/β beyond the optimizer's steps.
        let gamma = |w: &wb_core::WeightSet| {
            w.tensors
                .iter()
                .find(|t| t.name == "bn1.weight")
                .unwrap()
                .data
                .clone()
        };
        assert_ne!(gamma(&a.forward), gamma(&start));
    }
}
