//! The `int8-native` execution path: an int8 artifact on libtorch's quantized CPU
//! kernels (int8 weights, calibrated uint8 activations), with its own accuracy.
//!
//! The model card names a second TorchScript module (`int8_file`, built by
//! `models/int8_program.py`): the model's graph as a program of quantized operators
//! that holds no weights. [`Int8Model::install`] hands it the decoded artifact's
//! weights and, for each int8 tensor, the artifact's per-output-channel scales; the
//! module folds BatchNorm into the convolutions keeping the artifact's integer codes.
//! [`Int8Model::calibrate`] records activation ranges on calibration images (never the
//! reported ones: the runner passes a disjoint set) and prepacks the weights; then
//! [`Int8Model::forward`] runs float input to float logits through the int8 kernels.
//!
//! Accuracy on this path differs from the artifact's accuracy of record (its decoded
//! f32 weights on the FP32 graph) because activations are quantized too; both are
//! reported, labelled by path.

use crate::card::ModelCard;
use crate::error::{short_tch, Result, TorchError};
use crate::eval::{hits_and_classes, Batches};
use tch::{CModule, Device, IValue, Kind, Tensor};
use wb_core::{Accuracy, WeightSet};

/// The path's name in rows and reports.
pub const INT8_NATIVE: &str = "int8-native";

/// A model's int8 program on libtorch's quantized engine.
pub struct Int8Model {
    name: String,
    module: CModule,
    /// The float model's BatchNorm running statistics (buffers, which artifacts do not
    /// carry; methods that retrain fold their change into γ/β).
    statistics: Vec<(String, Vec<f32>)>,
    /// Whether weights are installed and activations calibrated.
    ready: bool,
}

impl std::fmt::Debug for Int8Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Int8Model")
            .field("name", &self.name)
            .field("ready", &self.ready)
            .finish()
    }
}

impl Int8Model {
    /// Loads the card's int8 program, reading the BatchNorm statistics from a float
    /// copy of the model loaded for the purpose.
    ///
    /// # Errors
    /// The card names no int8 program, the file is missing or not loadable, or the
    /// device is not the CPU (libtorch's quantized engine runs on CPUs only).
    pub fn load(card: &ModelCard, device: Device) -> Result<Int8Model> {
        Self::open(card, device, || {
            Ok(crate::model::TorchModel::load(card, Device::Cpu)?
                .batchnorm()?
                .initial())
        })
    }

    /// Loads the int8 program of `model`'s card, reading the BatchNorm statistics from
    /// `model` itself (no second float copy).
    ///
    /// # Errors
    /// As [`Self::load`].
    pub fn for_model(model: &crate::model::TorchModel) -> Result<Int8Model> {
        Self::open(model.card(), model.device(), || {
            Ok(model.batchnorm()?.initial())
        })
    }

    /// The checks and the load; `statistics` is asked for once they pass.
    fn open(
        card: &ModelCard,
        device: Device,
        statistics: impl FnOnce() -> Result<Vec<(String, Vec<f32>)>>,
    ) -> Result<Int8Model> {
        let model_err = |message: String| TorchError::Model {
            model: card.name.clone(),
            message,
        };
        if device != Device::Cpu {
            return Err(model_err(format!(
                "no int8 path on {}: libtorch's quantized engine runs on CPUs only",
                crate::device_name(device)
            )));
        }
        let Some(file) = &card.int8_file else {
            return Err(model_err(format!(
                "the model card `{}` names no int8 program (`int8_file`)",
                card.card_path.display()
            )));
        };
        let path = card.card_dir.join(file);
        if !path.exists() {
            return Err(TorchError::Missing {
                what: "int8 TorchScript program",
                path,
                hint: " (built by `just export-models`)".into(),
            });
        }
        if !card.batchnorm {
            return Err(model_err(format!(
                "the int8 program folds BatchNorm, but the card `{}` does not declare \
                 `batchnorm = true`",
                card.card_path.display()
            )));
        }
        let statistics = statistics()?;
        let mut module = CModule::load_on_device(&path, Device::Cpu).map_err(|e| {
            model_err(format!(
                "cannot load int8 program `{}`: {}",
                path.display(),
                short_tch(&e)
            ))
        })?;
        module.f_set_eval()?;
        Ok(Int8Model {
            name: card.name.clone(),
            module,
            statistics,
            ready: false,
        })
    }

    /// Installs `weights` (every tensor by name), quantizing each layer with its
    /// artifact's per-output-channel `scales` (`(tensor name, scales)`; a layer without
    /// is quantized from its own weights). The calibration is reset.
    ///
    /// # Errors
    /// A tensor the program needs is missing, or libtorch fails.
    pub fn install(&mut self, weights: &WeightSet, scales: &[(String, Vec<f32>)]) -> Result<()> {
        self.ready = false;
        let mut names: Vec<String> = weights.tensors.iter().map(|t| t.name.clone()).collect();
        let mut tensors: Vec<Tensor> = weights
            .tensors
            .iter()
            .map(|t| {
                let shape: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
                Tensor::from_slice(&t.data).view(shape.as_slice())
            })
            .collect();
        for (name, values) in &self.statistics {
            names.push(name.clone());
            tensors.push(Tensor::from_slice(values));
        }
        let scale_names: Vec<String> = scales.iter().map(|(n, _)| n.clone()).collect();
        let scale_values: Vec<Tensor> = scales.iter().map(|(_, s)| Tensor::from_slice(s)).collect();
        let args = [
            IValue::StringList(names),
            IValue::TensorList(tensors),
            IValue::StringList(scale_names),
            IValue::TensorList(scale_values),
        ];
        tch::no_grad(|| self.call("install", &args))?;
        Ok(())
    }

    /// Records activation ranges on every batch of `images` (calibration images,
    /// disjoint from the reported ones) and prepacks the weights for the kernels.
    ///
    /// # Errors
    /// No weights installed, or libtorch fails.
    pub fn calibrate(&mut self, images: &Batches) -> Result<()> {
        self.ready = false;
        tch::no_grad(|| -> Result<()> {
            self.call("reset_calibration", &[])?;
            for x in images.inputs() {
                self.call("calibrate", &[IValue::Tensor(x.shallow_clone())])?;
            }
            self.call("finalize", &[])
        })?;
        self.ready = true;
        Ok(())
    }

    /// Float logits of a float input batch (prepared as for the FP32 model).
    ///
    /// # Errors
    /// Not calibrated, or libtorch fails.
    pub fn forward(&self, input: &Tensor) -> Result<Tensor> {
        if !self.ready {
            return Err(TorchError::Model {
                model: self.name.clone(),
                message: "int8 program run before install and calibrate".into(),
            });
        }
        Ok(crate::inference_mode(|| self.module.forward_ts(&[input]))?)
    }

    /// Accuracy on `batches` with every image's top-1 class, in order.
    ///
    /// # Errors
    /// As [`Self::forward`]; non-finite logits.
    pub fn predict(&self, batches: &Batches) -> Result<(Accuracy, Vec<u16>)> {
        let (mut t1, mut t5) = (0, 0);
        let mut classes = Vec::with_capacity(batches.images());
        for (x, y) in batches.inputs().iter().zip(batches.labels()) {
            let logits = self.forward(x)?;
            let (a, b, top) = hits_and_classes(&logits, y)?;
            t1 += a;
            t5 += b;
            let v = Vec::<i64>::try_from(&top.to_kind(Kind::Int64))?;
            classes.extend(v.into_iter().map(|c| c as u16));
        }
        let acc = Accuracy {
            top1_correct: t1,
            top5_correct: t5,
            total: batches.images(),
        };
        Ok((acc, classes))
    }

    fn call(&self, method: &str, args: &[IValue]) -> Result<()> {
        self.module
            .method_is(method, args)
            .map(|_| ())
            .map_err(|e| TorchError::Model {
                model: self.name.clone(),
                message: format!("int8 program `{method}()`: {}", short_tch(&e)),
            })
    }
}

/// The per-output-channel int8 scales of every compressible tensor of `artifact`,
/// when each is int8 per-channel (`int8-affine`'s encoding): such an artifact runs on
/// the int8 path with its own integer codes. `None` for any other artifact.
pub fn int8_scales(artifact: &wb_core::Artifact) -> Option<Vec<(String, Vec<f32>)>> {
    let mut out = Vec::new();
    for t in &artifact.tensors {
        match &t.encoding {
            wb_core::Encoding::Int8PerChannel { scales, .. } => {
                out.push((t.name.clone(), scales.clone()));
            }
            wb_core::Encoding::F32(_) if !t.compressible => {}
            _ => return None,
        }
    }
    (!out.is_empty()).then_some(out)
}
