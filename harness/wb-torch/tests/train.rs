//! Fine-tuning with a projection hook on the real ResNet20 and training images.

mod common;
use common::{card, data_dir};
use std::cell::Cell;
use std::path::PathBuf;

use wb_core::{
    CoreError, Encoding, FineTuneConfig, FineTuner, NoProgress, Projection, Tensor, WeightSet,
};
use wb_torch::{dataset, TorchFineTuner, TorchModel, TRAIN_DATASET};

/// Rounds compressible weights to bfloat16 in `finalize`; in `step` only clamps them to
/// ±`limit`, counting calls and whether any weight had moved since the start.
struct Clamp<'a> {
    limit: f32,
    start: &'a WeightSet,
    steps: Cell<u64>,
    moved: Cell<bool>,
}

impl Projection for Clamp<'_> {
    fn step(&mut self, t: &mut Tensor) -> Result<(), CoreError> {
        self.steps.set(self.steps.get() + 1);
        let s = self.start.get(&t.name)?;
        if s.data
            .iter()
            .zip(&t.data)
            .any(|(a, b)| a.to_bits() != b.to_bits())
        {
            self.moved.set(true);
        }
        for v in &mut t.data {
            *v = v.clamp(-self.limit, self.limit);
        }
        Ok(())
    }
    fn finalize(&mut self, t: &mut Tensor) -> Result<(), CoreError> {
        self.step(t)?;
        self.steps.set(self.steps.get() - 1);
        let Encoding::Bf16(b) = Encoding::bf16_from_f32(&t.data) else {
            unreachable!()
        };
        t.data = b
            .iter()
            .map(|x| f32::from_bits((*x as u32) << 16))
            .collect();
        Ok(())
    }
}

fn tuner() -> (TorchFineTuner, WeightSet) {
    let card = card("resnet20");
    let model = TorchModel::load(&card, tch::Device::Cpu).unwrap();
    let start = model.weights().clone();
    let train = dataset(TRAIN_DATASET).unwrap().load(&data_dir()).unwrap();
    (TorchFineTuner::new(model, train), start)
}

#[test]
fn fine_tuning_projects_every_step_and_is_deterministic() {
    let cfg = FineTuneConfig {
        epochs: 2,
        max_steps: 3,
        lr: 1e-2,
        momentum: 0.0,
        batch: 32,
        seed: 5,
        holdout_images: 200,
    };
    let run = || {
        let (mut t, start) = tuner();
        let mut p = Clamp {
            limit: 0.25,
            start: &start,
            steps: Cell::new(0),
            moved: Cell::new(false),
        };
        let out = t.fine_tune(&start, &cfg, &mut p, &NoProgress).unwrap();
        (out, p.steps.get(), p.moved.get(), start)
    };
    let (out, steps, moved, start) = run();
    let compressible = start.compressible().count() as u64;
    assert_eq!(
        out.steps, 3,
        "max_steps caps the run inside the first epoch"
    );
    assert_eq!(out.epochs.len(), 1);
    assert_eq!(
        steps,
        3 * compressible,
        "one step projection per tensor per step"
    );
    assert!(moved, "SGD changed the weights");
    assert_eq!(out.start_holdout.total, 200);
    assert_eq!(out.epochs[0].holdout.total, 200);
    assert!(out.epochs[0].train_loss.is_finite() && out.epochs[0].train_loss > 0.0);
    // The returned weights are finalized: compressible ones bfloat16 and clamped.
    for t in out.weights.compressible() {
        assert!(t
            .data
            .iter()
            .all(|v| v.to_bits() & 0xFFFF == 0 && v.abs() <= 0.25));
    }
    let best = out.best_holdout().top1_correct;
    assert!(best >= out.start_holdout.top1_correct);
    assert!(out.epochs.iter().all(|e| e.holdout.top1_correct <= best));
    // Same seed, fresh fine-tuner: bit-identical outcome.
    let (again, ..) = run();
    assert!(again.weights.bit_identical(&out.weights));
    assert_eq!(again.epochs, out.epochs);
}

#[test]
fn lazy_fine_tuner_names_the_missing_data() {
    let card = card("resnet20");
    let mut t = TorchFineTuner::lazy(card, tch::Device::Cpu, PathBuf::from("no/such/dir"));
    let start = TorchModel::load(&self::card("resnet20"), tch::Device::Cpu)
        .unwrap()
        .weights()
        .clone();
    let cfg = FineTuneConfig {
        epochs: 1,
        max_steps: 1,
        lr: 1e-3,
        momentum: 0.0,
        batch: 8,
        seed: 0,
        holdout_images: 100,
    };
    let mut p = Clamp {
        limit: 1.0,
        start: &start,
        steps: Cell::new(0),
        moved: Cell::new(false),
    };
    let e = t.fine_tune(&start, &cfg, &mut p, &NoProgress).unwrap_err();
    assert!(e.to_string().contains("no/such/dir"), "{e}");
    assert_eq!(p.steps.get(), 0);
}
