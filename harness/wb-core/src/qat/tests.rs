use super::*;
use crate::method::NoProgress;

fn weights(vals: &[f32], bias: f32) -> WeightSet {
    WeightSet::new(vec![
        Tensor::new("conv.weight", vec![vals.len()], vals.to_vec(), true).unwrap(),
        Tensor::new("conv.bias", vec![1], vec![bias], false).unwrap(),
    ])
    .unwrap()
}

fn config(optimizer: Optimizer) -> QatConfig {
    QatConfig {
        epochs: 3,
        max_steps: 0,
        optimizer,
        lr: 0.5,
        schedule: Schedule::Constant,
        weight_decay: 0.0,
        batch: 4,
        seed: 11,
        holdout_images: 10,
        refresh_steps: 0,
        curvature_every: 0,
        curvature_batches: 1,
        batchnorm: BatchNormMode::Frozen,
    }
}

#[test]
fn sgd_and_adam_steps_match_hand_computed_values() {
    // SGD with momentum 0.9: v1 = g, v2 = 0.9·v1 + g.
    let opt = Optimizer::Sgd { momentum: 0.9 };
    let mut s = OptState {
        first: vec![0.0],
        second: vec![],
    };
    let mut w = [1.0f32];
    opt_step(&opt, &mut s, &mut w, &[2.0], 0.1, 1);
    assert!((w[0] - 0.8).abs() < 1e-7);
    opt_step(&opt, &mut s, &mut w, &[2.0], 0.1, 2);
    assert!((w[0] - (0.8 - 0.1 * 3.8)).abs() < 1e-6);
    // Adam's first step moves every weight by lr·sign(g) (bias-corrected m/√v = ±1).
    let mut s = OptState {
        first: vec![0.0, 0.0],
        second: vec![0.0, 0.0],
    };
    let mut w = [1.0f32, 1.0];
    opt_step(&Optimizer::ADAM, &mut s, &mut w, &[3.0, -0.01], 0.01, 1);
    assert!((w[0] - 0.99).abs() < 1e-6, "{}", w[0]);
    assert!((w[1] - 1.01).abs() < 1e-5, "{}", w[1]);
    // Second step by hand: m = 0.9·0.3 + 0.1·1, v = 0.999·0.009 + 0.001·1.
    let (m, v) = (0.9f64 * 0.3 + 0.1, 0.999f64 * 0.009 + 0.001);
    let expect = 0.99 - 0.01 * (m / (1.0 - 0.81)) / ((v / (1.0 - 0.998_001)).sqrt() + 1e-8);
    opt_step(&Optimizer::ADAM, &mut s, &mut w, &[1.0, 0.0], 0.01, 2);
    assert!((w[0] as f64 - expect).abs() < 1e-6, "{} vs {expect}", w[0]);
}

#[test]
fn cosine_schedule_runs_from_lr_to_zero() {
    let s = Schedule::Cosine;
    assert_eq!(s.lr(0.1, 0, 10), 0.1);
    assert!((s.lr(0.1, 5, 10) - 0.05).abs() < 1e-12);
    assert!(s.lr(0.1, 9, 10) < 0.003);
    assert_eq!(Schedule::Constant.lr(0.1, 9, 10), 0.1);
}

#[test]
fn identity_hook_is_plain_fine_tuning_and_deterministic() {
    let target = weights(&[0.5, -0.25, 1.0, 0.0], 0.1);
    let start = weights(&[0.0, 0.0, 0.0, 0.0], 0.0);
    let run = || {
        let mut b = FakeQatBackend::new(target.clone(), 40, 100);
        let out = train(
            &mut b,
            &start,
            &config(Optimizer::Sgd { momentum: 0.0 }),
            &mut IdentityHook,
            &NoProgress,
        )
        .unwrap();
        let mut out = out;
        // Wall time is the only thing allowed to differ between runs.
        out.epochs.iter_mut().for_each(|e| e.wall_s = 0.0);
        (out, b.steps_seen)
    };
    let (a, steps) = run();
    let (b, _) = run();
    assert_eq!(a, b);
    assert_eq!(steps, 30);
    assert_eq!(a.steps, 30);
    assert_eq!(a.forward, a.latent);
    assert_eq!(a.epochs.len(), 3);
    let d = (a.latent.tensors[0].data[0] - 0.5).abs();
    assert!(d < 0.01, "did not move toward the target: {d}");
    assert!(a.best_holdout().top1_correct >= a.start_holdout.top1_correct);
}

/// Rounds to a grid of 0.25 and records every call.
#[derive(Default)]
struct GridHook {
    forwards: usize,
    backwards: usize,
    refreshes: Vec<usize>,
    curvatures: usize,
    evaluated: Vec<usize>,
}

impl QatHook for GridHook {
    fn forward(&mut self, i: usize, latent: &Tensor, out: &mut [f32]) -> Result<(), CoreError> {
        assert_eq!(i, 0);
        self.forwards += 1;
        for (o, v) in out.iter_mut().zip(&latent.data) {
            *o = (v * 4.0).round() / 4.0;
        }
        Ok(())
    }
    fn backward(
        &mut self,
        _i: usize,
        latent: &[f32],
        forward: &[f32],
        grad: &mut [f32],
    ) -> Result<(), CoreError> {
        self.backwards += 1;
        assert_eq!(latent.len(), forward.len());
        grad.iter_mut().for_each(|g| *g *= 2.0);
        Ok(())
    }
    fn refresh(&mut self, latent: &WeightSet, grads: &Gradients) -> Result<(), CoreError> {
        assert_eq!(grads.tensors.len(), 1);
        assert_eq!(grads.tensors[0].mean_abs.len(), latent.tensors[0].numel());
        self.refreshes.push(grads.batches);
        Ok(())
    }
    fn curvature(&mut self, c: &[TensorCurvature]) -> Result<(), CoreError> {
        assert_eq!(c.len(), 1);
        self.curvatures += 1;
        Ok(())
    }
    fn evaluated(&mut self, epoch: usize) {
        self.evaluated.push(epoch);
    }
}

#[test]
fn hook_calls_follow_the_contract() {
    let target = weights(&[0.6, -0.3, 1.1, 0.05], 0.1);
    let start = weights(&[0.0, 0.1, 0.2, 0.3], 0.0);
    let mut cfg = config(Optimizer::ADAM);
    cfg.lr = 0.05;
    cfg.curvature_every = 2;
    cfg.refresh_steps = 4;
    cfg.weight_decay = 1e-4;
    cfg.schedule = Schedule::Cosine;
    let mut b = FakeQatBackend::new(target, 40, 100);
    let mut hook = GridHook::default();
    let out = train(&mut b, &start, &cfg, &mut hook, &NoProgress).unwrap();
    assert_eq!(out.steps, 30);
    assert_eq!(hook.backwards, 30);
    // Refresh every 4 steps: 7 full ones (28 steps), the last 2 steps wait.
    assert_eq!(hook.refreshes, vec![4; 7]);
    assert_eq!(out.refreshes, 7);
    // Curvature at the start of epochs 1 and 3.
    assert_eq!(hook.curvatures, 2);
    assert_eq!(out.curvature_estimates, 2);
    assert_eq!(hook.evaluated, vec![0, 1, 2, 3]);
    // Forward weights are on the grid, latent ones need not be.
    assert!(out.forward.tensors[0]
        .data
        .iter()
        .all(|v| (v * 4.0).fract() == 0.0));
    assert_eq!(out.forward.tensors[1], out.latent.tensors[1]);
}

#[test]
fn max_steps_and_per_epoch_refresh() {
    let target = weights(&[1.0; 4], 0.0);
    let mut cfg = config(Optimizer::Sgd { momentum: 0.5 });
    cfg.max_steps = 13;
    let mut b = FakeQatBackend::new(target.clone(), 40, 100);
    let mut hook = GridHook::default();
    let out = train(
        &mut b,
        &weights(&[0.0; 4], 0.0),
        &cfg,
        &mut hook,
        &NoProgress,
    )
    .unwrap();
    assert_eq!(out.steps, 13);
    assert_eq!(out.epochs.len(), 2);
    assert_eq!(hook.refreshes, vec![10, 3]);
}

#[test]
fn bad_configurations_are_errors() {
    let w = weights(&[0.0; 4], 0.0);
    let mut b = FakeQatBackend::new(w.clone(), 40, 100);
    for f in [
        (|c: &mut QatConfig| c.epochs = 0) as fn(&mut QatConfig),
        |c| c.batch = 0,
        |c| c.batch = 41,
        |c| c.lr = f64::NAN,
        |c| c.optimizer = Optimizer::Sgd { momentum: 1.5 },
        |c| {
            c.curvature_every = 1;
            c.curvature_batches = 0
        },
    ] {
        let mut cfg = config(Optimizer::ADAM);
        f(&mut cfg);
        let e = train(&mut b, &w, &cfg, &mut IdentityHook, &NoProgress).unwrap_err();
        assert!(e.to_string().contains("quantization-aware training"), "{e}");
    }
}

/// A hook whose forward weights are NaN is refused, naming the tensor.
struct NanHook;
impl QatHook for NanHook {
    fn forward(&mut self, _i: usize, _l: &Tensor, out: &mut [f32]) -> Result<(), CoreError> {
        out.fill(f32::NAN);
        Ok(())
    }
}

#[test]
fn non_finite_forward_weights_are_an_error() {
    let w = weights(&[0.0; 4], 0.0);
    let mut b = FakeQatBackend::new(w.clone(), 40, 100);
    let e = train(
        &mut b,
        &w,
        &config(Optimizer::ADAM),
        &mut NanHook,
        &NoProgress,
    )
    .unwrap_err();
    assert!(e.to_string().contains("conv.weight"), "{e}");
}

/// A backend that "trains" BatchNorm: folding adds 1 to every non-compressible tensor,
/// so the outcome shows whether (and when) the loop folded.
struct FoldingBackend {
    inner: FakeQatBackend,
    mode: Option<BatchNormMode>,
    folds: usize,
}

impl QatBackend for FoldingBackend {
    fn pool(&self) -> usize {
        self.inner.pool()
    }
    fn gradient(
        &mut self,
        w: &WeightSet,
        batch: &[usize],
    ) -> Result<(f64, Vec<Vec<f32>>), EvalError> {
        self.inner.gradient(w, batch)
    }
    fn holdout(&mut self, w: &WeightSet) -> Result<Accuracy, EvalError> {
        self.inner.holdout(w)
    }
    fn curvature(
        &mut self,
        w: &WeightSet,
        b: &[&[usize]],
        seed: u64,
    ) -> Result<Vec<TensorCurvature>, EvalError> {
        self.inner.curvature(w, b, seed)
    }
    fn set_batchnorm(&mut self, mode: BatchNormMode) -> Result<(), EvalError> {
        self.mode = Some(mode);
        Ok(())
    }
    fn fold_batchnorm(&mut self, w: &WeightSet) -> Result<WeightSet, EvalError> {
        self.folds += 1;
        let mut out = w.clone();
        for t in out.tensors.iter_mut().filter(|t| !t.compressible) {
            t.data.iter_mut().for_each(|v| *v += 1.0);
        }
        Ok(out)
    }
}

#[test]
fn the_best_epoch_is_returned_folded_and_the_mode_reaches_the_backend() {
    let target = weights(&[0.5, -0.5, 0.25, 1.0], 0.1);
    let mut b = FoldingBackend {
        inner: FakeQatBackend::new(target, 40, 100),
        mode: None,
        folds: 0,
    };
    let mut cfg = config(Optimizer::ADAM);
    cfg.lr = 0.05;
    cfg.batchnorm = BatchNormMode::Train;
    let out = train(
        &mut b,
        &weights(&[0.0; 4], 0.0),
        &cfg,
        &mut IdentityHook,
        &NoProgress,
    )
    .unwrap();
    assert_eq!(b.mode, Some(BatchNormMode::Train));
    assert!(out.best_epoch > 0);
    // One fold of the forward and one of the latent weights per improving epoch.
    assert!(b.folds >= 2 && b.folds % 2 == 0, "{}", b.folds);
    let (f, l) = (
        &out.forward.tensors[1].data[0],
        &out.latent.tensors[1].data[0],
    );
    assert!(*f > 0.5 && f == l, "bias not folded: {f} {l}");
}

/// A backend that keeps the trait's default BatchNorm behaviour.
struct NoBatchNorm(FakeQatBackend);

impl QatBackend for NoBatchNorm {
    fn pool(&self) -> usize {
        self.0.pool()
    }
    fn gradient(
        &mut self,
        w: &WeightSet,
        batch: &[usize],
    ) -> Result<(f64, Vec<Vec<f32>>), EvalError> {
        self.0.gradient(w, batch)
    }
    fn holdout(&mut self, w: &WeightSet) -> Result<Accuracy, EvalError> {
        self.0.holdout(w)
    }
    fn curvature(
        &mut self,
        w: &WeightSet,
        b: &[&[usize]],
        seed: u64,
    ) -> Result<Vec<TensorCurvature>, EvalError> {
        self.0.curvature(w, b, seed)
    }
}

#[test]
fn a_backend_without_batchnorm_statistics_refuses_to_train_them() {
    let w = weights(&[0.0; 4], 0.0);
    let mut b = NoBatchNorm(FakeQatBackend::new(w.clone(), 40, 100));
    let mut cfg = config(Optimizer::ADAM);
    cfg.batchnorm = BatchNormMode::Train;
    let e = train(&mut b, &w, &cfg, &mut IdentityHook, &NoProgress).unwrap_err();
    assert!(e.to_string().contains("BatchNorm"), "{e}");
}
