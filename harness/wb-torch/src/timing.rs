//! The libtorch side of the timed pass: a fixed seeded sample of inputs on the model's
//! device, and single forward calls that return only when the device has finished.
//! The clock, the statistics and the energy window belong to `wb-measure`; this module
//! only gives them something to time.

use tch::{Device, Kind, Tensor};

use crate::data::{balanced_subset, Images};
use crate::error::{Result, TorchError};
use crate::model::{NativeModel, NativePrecision, TorchModel};

/// Seed of the timing sample (fixed so every cell times the same images).
const TIMING_SEED: u64 = 0x71_3E;

/// Which of the two timed batch sizes to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimedBatch {
    /// Batch size 1 (latency).
    One,
    /// The throughput batch ([`TimingInputs::batch`] images).
    Throughput,
}

/// The inputs of the timed pass, prepared once per (model, dataset): the same images
/// in f32, bfloat16 and half, at batch 1 and at the throughput batch.
pub struct TimingInputs {
    b1: Tensor,
    bn: Tensor,
    b1_bf16: Tensor,
    bn_bf16: Tensor,
    b1_f16: Tensor,
    bn_f16: Tensor,
    batch: usize,
}

impl TimingInputs {
    /// A seeded class-balanced sample of `batch` images from `images` (the first of them
    /// is the batch-1 input), prepared for `model` on its device.
    ///
    /// # Errors
    /// The dataset is too small for the sample, or libtorch fails.
    pub fn new(model: &TorchModel, images: &Images, batch: usize) -> Result<Self> {
        let batch = batch.clamp(1, images.len().saturating_sub(1).max(1));
        let idx = balanced_subset(&images.labels, batch, TIMING_SEED)
            .map_err(|e| TorchError::Sample(format!("timing sample: {e}")))?;
        let sample = images.subset(&idx);
        let x = model.prepare(&sample)?.to_device(model.device());
        let xb = x.to_kind(Kind::BFloat16);
        let xh = x.to_kind(Kind::Half);
        Ok(Self {
            b1: x.narrow(0, 0, 1).contiguous(),
            bn: x,
            b1_bf16: xb.narrow(0, 0, 1).contiguous(),
            bn_bf16: xb,
            b1_f16: xh.narrow(0, 0, 1).contiguous(),
            bn_f16: xh,
            batch,
        })
    }

    /// Images in the throughput batch.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// One f32 forward pass of `model` on batch `b`, finished on the device.
    ///
    /// # Errors
    /// libtorch fails.
    pub fn run_f32(&self, model: &TorchModel, b: TimedBatch) -> Result<()> {
        let x = match b {
            TimedBatch::One => &self.b1,
            TimedBatch::Throughput => &self.bn,
        };
        let y = model.forward(x)?;
        sync(model.device());
        drop(y);
        Ok(())
    }

    /// One native forward pass of `model` (bfloat16 or half) on batch `b`, finished on
    /// the device.
    ///
    /// # Errors
    /// libtorch fails (e.g. a CPU build without kernels for the dtype).
    pub fn run_native(&self, model: &NativeModel, b: TimedBatch) -> Result<()> {
        let x = match (model.precision(), b) {
            (NativePrecision::Bf16, TimedBatch::One) => &self.b1_bf16,
            (NativePrecision::Bf16, TimedBatch::Throughput) => &self.bn_bf16,
            (NativePrecision::Fp16, TimedBatch::One) => &self.b1_f16,
            (NativePrecision::Fp16, TimedBatch::Throughput) => &self.bn_f16,
        };
        let y = model.forward(x)?;
        sync(model.device());
        drop(y);
        Ok(())
    }
}

impl TimingInputs {
    /// One forward pass of the int8 program on batch `b` (float input, as for FP32).
    ///
    /// # Errors
    /// The program is not calibrated, or libtorch fails.
    pub fn run_int8(&self, model: &crate::int8::Int8Model, b: TimedBatch) -> Result<()> {
        let x = match b {
            TimedBatch::One => &self.b1,
            TimedBatch::Throughput => &self.bn,
        };
        drop(model.forward(x)?);
        Ok(())
    }
}

/// Waits for the device so the clock stops after the work, not after its launch.
fn sync(d: Device) {
    if let Device::Cuda(i) = d {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Sets libtorch's intra-op and inter-op thread counts; call once, before libtorch
/// starts any parallel work.
pub fn set_threads(intra: usize, inter: usize) {
    tch::set_num_interop_threads(inter as i32);
    tch::set_num_threads(intra as i32);
}
