#![doc = include_str!("../README.md")]

pub mod alloc;
mod batchnorm;
pub mod card;
pub mod data;
pub mod error;
pub mod eval;
pub mod grad;
mod infer;
pub mod int8;
pub mod model;
mod qat;
pub mod stages;
pub mod storages;
pub mod timing;
pub mod train;

pub use alloc::{release_free_memory, tune_allocator};
pub use card::{find_card, find_card_in, list_cards, ModelCard};
pub use data::{dataset, DatasetSpec, Images, Role, Split, DATASETS};
pub use error::{Result, TorchError};
pub use eval::{Batches, TorchEvaluator};
pub use grad::TorchGradients;
pub use infer::{inference_mode, INFERENCE_MODE};
pub use int8::{int8_scales, Int8Model, INT8_NATIVE};
pub use model::{
    device_name, is_bf16_exact, is_f16_exact, parse_device, Bf16Model, NativeModel,
    NativePrecision, TorchModel,
};
pub use timing::{set_threads, TimedBatch, TimingInputs};
pub use train::{TorchFineTuner, TRAIN_DATASET};

/// The device type of every model and tensor of this crate (libtorch's), so that
/// callers name devices without linking libtorch themselves.
pub use tch::Device;
