//! TorchScript models: loading on a device, extracting the weights as a [`WeightSet`] and
//! installing (decoded) weights back, bit for bit.

use crate::card::{Layout, ModelCard, PixelRange};
use crate::data::{Images, PIXELS};
use crate::error::{Result, TorchError};
use tch::{CModule, Device, Kind, Tensor};
use wb_core::{Tensor as WTensor, WeightSet};

/// Parses `cpu`, `cuda` or `cuda:N`, checking that libtorch can use the device.
pub fn parse_device(s: &str) -> Result<Device> {
    let dev = match s {
        "cpu" => Device::Cpu,
        "cuda" => Device::Cuda(0),
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(i)) => Device::Cuda(i),
            _ => {
                return Err(TorchError::Device(format!(
                    "{s}: expected `cpu`, `cuda` or `cuda:N`"
                )))
            }
        },
    };
    if let Device::Cuda(i) = dev {
        let n = tch::Cuda::device_count();
        if !tch::Cuda::is_available() || i as i64 >= n {
            return Err(TorchError::Device(format!(
                "{s}: libtorch sees {n} CUDA device(s) (is this a CUDA build of libtorch on a machine with a GPU?)"
            )));
        }
    }
    Ok(dev)
}

/// The name weightbench uses for a device in result rows.
pub fn device_name(d: Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(i) => format!("cuda:{i}"),
        Device::Mps => "mps".into(),
        Device::Vulkan => "vulkan".into(),
    }
}

/// A TorchScript model in evaluation mode with handles to its parameters.
pub struct TorchModel {
    card: ModelCard,
    module: CModule,
    device: Device,
    /// Parameter handles in the module's order (they share storage with the module).
    params: Vec<(String, Tensor)>,
    original: WeightSet,
    /// The staged forward pass, when the card declares one.
    stages: Option<crate::stages::Stages>,
}

impl std::fmt::Debug for TorchModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TorchModel")
            .field("name", &self.card.name)
            .field("device", &self.device)
            .field("params", &self.params.len())
            .finish()
    }
}

impl TorchModel {
    /// Loads the card's TorchScript file on `device` and extracts its FP32 weights.
    pub fn load(card: &ModelCard, device: Device) -> Result<TorchModel> {
        // Every forward pass allocates its activations anew: keep freed blocks in the heap
        // (see `alloc`), before the first tensor of the model exists.
        crate::tune_allocator();
        let path = card.model_path();
        if !path.exists() {
            return Err(TorchError::Missing {
                what: "TorchScript file",
                path,
                hint: format!(
                    "; named by the model card `{}` (the reference models are built by `just export-models`)",
                    card.card_path.display()
                ),
            });
        }
        let mut module = CModule::load_on_device(&path, device).map_err(|e| TorchError::Model {
            model: card.name.clone(),
            message: format!(
                "cannot load TorchScript `{}`: {}",
                path.display(),
                crate::error::short_tch(&e)
            ),
        })?;
        module.f_set_eval()?;
        let params = module.named_parameters()?;
        let model_err = |m: String| TorchError::Model {
            model: card.name.clone(),
            message: m,
        };
        if params.is_empty() {
            return Err(model_err("the module has no parameters".into()));
        }
        let mut tensors = Vec::with_capacity(params.len());
        for (name, t) in &params {
            if t.kind() != Kind::Float {
                return Err(model_err(format!(
                    "parameter `{name}` is {:?}; weightbench expects float32 models",
                    t.kind()
                )));
            }
            let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
            let data = tensor_to_vec(t)?;
            let compressible = card.weights.compressible.selects(name, &shape);
            tensors.push(WTensor::new(name.clone(), shape, data, compressible)?);
        }
        if let crate::card::Compressible::List(names) = &card.weights.compressible {
            for n in names {
                if !params.iter().any(|(p, _)| p == n) {
                    return Err(model_err(format!(
                        "card `{}` lists compressible tensor `{n}`, which the model does not have",
                        card.card_path.display()
                    )));
                }
            }
        }
        let original = WeightSet::new(tensors)?;
        if original.compressible().next().is_none() {
            return Err(model_err(
                "no parameter is compressible under the card's rule".into(),
            ));
        }
        original.check_finite()?;
        // Parameters are checked above; buffers (BatchNorm statistics …) only through the
        // archive, as libtorch does not list them. An unreadable archive is not an error:
        // every evaluation still checks its logits.
        if let crate::storages::Scan::NonFinite {
            attribute,
            key,
            index,
            value,
        } = crate::storages::scan(&path)
        {
            return Err(model_err(format!(
                "`{}`: tensor `{attribute}` (storage data/{key}) holds {value} at element \
                 {index}; a model with a non-finite parameter or buffer cannot be measured",
                path.display()
            )));
        }
        let stages = if card.stages {
            Some(crate::stages::Stages::read(&module, &original).map_err(model_err)?)
        } else {
            None
        };
        Ok(TorchModel {
            card: card.clone(),
            module,
            device,
            params,
            original,
            stages,
        })
    }

    /// The staged forward pass, when the card declares one (checked at load).
    pub fn stages(&self) -> Option<&crate::stages::Stages> {
        self.stages.as_ref()
    }

    /// Runs stages `start .. end` from the activation before `start`
    /// (`run_stages(x, 0, count)` is the forward pass, bit for bit).
    ///
    /// # Errors
    /// When the model has no stages or libtorch fails.
    pub fn run_stages(&self, x: &Tensor, start: usize, end: usize) -> Result<Tensor> {
        if self.stages.is_none() {
            return Err(TorchError::Model {
                model: self.card.name.clone(),
                message: "the card declares no stages".into(),
            });
        }
        let out = crate::inference_mode(|| {
            self.module.method_is(
                "run_stages",
                &[
                    tch::IValue::Tensor(x.shallow_clone()),
                    tch::IValue::Int(start as i64),
                    tch::IValue::Int(end as i64),
                ],
            )
        })?;
        match out {
            tch::IValue::Tensor(t) => Ok(t),
            other => Err(TorchError::Model {
                model: self.card.name.clone(),
                message: format!("run_stages returned {other:?}, not a tensor"),
            }),
        }
    }

    /// The model card.
    pub fn card(&self) -> &ModelCard {
        &self.card
    }
    /// The device the model runs on.
    pub fn device(&self) -> Device {
        self.device
    }
    /// The pretrained FP32 weights as loaded.
    pub fn weights(&self) -> &WeightSet {
        &self.original
    }

    /// The TorchScript module (crate-internal: fine-tuning runs it with autograd).
    pub(crate) fn module(&self) -> &CModule {
        &self.module
    }

    /// Switches the module between training mode (BatchNorm uses batch statistics and
    /// updates its running ones) and evaluation mode, where every other caller expects it.
    pub(crate) fn set_training(&mut self, on: bool) -> Result<()> {
        if on {
            self.module.f_set_train()?;
        } else {
            self.module.f_set_eval()?;
        }
        Ok(())
    }

    /// The module's BatchNorm layers and their statistics now, when the card declares
    /// them.
    ///
    /// # Errors
    /// A card without `batchnorm = true`, or a module whose methods disagree with it.
    pub(crate) fn batchnorm(&self) -> Result<crate::batchnorm::BatchNormStats> {
        let err = |message: String| TorchError::Model {
            model: self.card.name.clone(),
            message,
        };
        if !self.card.batchnorm {
            return Err(err(format!(
                "the card `{}` does not declare `batchnorm = true`, so its BatchNorm statistics \
                 cannot be trained (use frozen BatchNorm)",
                self.card.card_path.display()
            )));
        }
        let stats =
            crate::batchnorm::BatchNormStats::read(&self.module, &self.card.name).map_err(err)?;
        if stats.len() == 0 {
            return Err(err("the module lists no BatchNorm layer".into()));
        }
        Ok(stats)
    }

    /// Parameter handles in the module's order, sharing storage with the module.
    pub(crate) fn param_handles(&self) -> &[(String, Tensor)] {
        &self.params
    }

    /// Copies `weights` into the module's parameters (exact f32 values). Every parameter
    /// must be present with its shape; extra or missing tensors are errors.
    pub fn install(&mut self, weights: &WeightSet) -> Result<()> {
        if weights.tensors.len() != self.params.len() {
            return Err(TorchError::Model {
                model: self.card.name.clone(),
                message: format!(
                    "weight set has {} tensors, the model {}",
                    weights.tensors.len(),
                    self.params.len()
                ),
            });
        }
        let device = self.device;
        tch::no_grad(|| -> Result<()> {
            for (name, p) in self.params.iter_mut() {
                let w = weights.get(name)?;
                let shape: Vec<i64> = w.shape.iter().map(|&d| d as i64).collect();
                if shape != p.size() {
                    return Err(TorchError::Model {
                        model: self.card.name.clone(),
                        message: format!(
                            "tensor `{name}`: shape {:?} does not fit the model's {:?}",
                            w.shape,
                            p.size()
                        ),
                    });
                }
                let src = Tensor::from_slice(&w.data)
                    .view(shape.as_slice())
                    .to_device(device);
                p.f_copy_(&src)?;
            }
            Ok(())
        })
    }

    /// Saves the module, with the weights currently installed, as a TorchScript file
    /// (`torch.jit.load` reads it; buffers are the original model's).
    pub fn save_torchscript(&self, path: &std::path::Path) -> Result<()> {
        self.module.save(path).map_err(|e| TorchError::Model {
            model: self.card.name.clone(),
            message: format!(
                "cannot save TorchScript `{}`: {}",
                path.display(),
                crate::error::short_tch(&e)
            ),
        })
    }

    /// The weights currently installed in the module (read back from libtorch).
    pub fn installed(&self) -> Result<WeightSet> {
        let mut out = Vec::with_capacity(self.params.len());
        for (orig, (_, t)) in self.original.tensors.iter().zip(&self.params) {
            out.push(WTensor::new(
                orig.name.clone(),
                orig.shape.clone(),
                tensor_to_vec(t)?,
                orig.compressible,
            )?);
        }
        Ok(WeightSet::new(out)?)
    }

    /// Builds the model's float input from images as the card describes, on the CPU.
    pub fn prepare(&self, images: &Images) -> Result<Tensor> {
        prepare_input(&self.card, images)
    }

    /// Runs the module on an input batch under libtorch's inference mode
    /// ([`crate::inference_mode`]); returns logits `[N, classes]` (an inference tensor:
    /// read it, do not modify it in place).
    pub fn forward(&self, input: &Tensor) -> Result<Tensor> {
        let out = crate::inference_mode(|| self.module.forward_ts(&[input]))?;
        self.check_logits_shape(out)
    }

    /// The logits from the activation before stage `start` (the input when 0): the last
    /// stages of the forward pass, bit-identical to [`Self::forward`] from the input.
    ///
    /// # Errors
    /// As [`Self::forward`], and when the model has no stages.
    pub fn forward_from(&self, activation: &Tensor, start: usize) -> Result<Tensor> {
        match (&self.stages, start) {
            (_, 0) => self.forward(activation),
            (Some(s), _) => {
                let out = self.run_stages(activation, start, s.count)?;
                self.check_logits_shape(out)
            }
            (None, _) => self.run_stages(activation, start, start),
        }
    }

    fn check_logits_shape(&self, out: Tensor) -> Result<Tensor> {
        let size = out.size();
        if size.len() != 2 || size[1] != self.card.num_classes as i64 {
            return Err(TorchError::Model {
                model: self.card.name.clone(),
                message: format!(
                    "output shape {size:?}, expected [N, {}] logits (num_classes of the card)",
                    self.card.num_classes
                ),
            });
        }
        Ok(out)
    }

    /// Logits of `images` as a row-major `Vec` (`len · classes`), in batches of `batch`.
    pub fn logits(&self, images: &Images, batch: usize) -> Result<Vec<f32>> {
        let input = self.prepare(images)?;
        let mut out = Vec::with_capacity(images.len() * self.card.num_classes);
        for chunk in input.split(batch.max(1) as i64, 0) {
            let l = self.forward(&chunk.to_device(self.device))?;
            out.extend(tensor_to_vec(&l)?);
        }
        Ok(out)
    }
}

/// Copies any float tensor to a host `Vec<f32>` (row-major).
pub fn tensor_to_vec(t: &Tensor) -> Result<Vec<f32>> {
    let flat = t
        .detach()
        .to_device(Device::Cpu)
        .to_kind(Kind::Float)
        .contiguous()
        .view(-1);
    Ok(Vec::<f32>::try_from(&flat)?)
}

/// uint8 CHW images → the float tensor the card's model expects (CPU, contiguous).
pub fn prepare_input(card: &ModelCard, images: &Images) -> Result<Tensor> {
    let n = images.len() as i64;
    debug_assert_eq!(images.pixels.len(), images.len() * PIXELS);
    let mut x = Tensor::from_slice(&images.pixels)
        .view([n, 3, 32, 32])
        .to_kind(Kind::Float);
    if card.input.range == PixelRange::Unit {
        x /= 255.0;
    }
    if let (Some(mean), Some(std)) = (card.input.mean, card.input.std) {
        let m = Tensor::from_slice(&mean).view([1, 3, 1, 1]);
        let s = Tensor::from_slice(&std).view([1, 3, 1, 1]);
        x = (x - m) / s;
    }
    if card.input.layout == Layout::Nhwc {
        x = x.permute([0, 2, 3, 1]);
    }
    Ok(x.contiguous())
}

/// A reduced floating-point precision libtorch runs natively, and the execution path
/// named after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NativePrecision {
    /// bfloat16 (`bf16-native`).
    Bf16,
    /// IEEE half (`fp16-native`).
    Fp16,
}

impl NativePrecision {
    /// libtorch's dtype.
    pub fn kind(self) -> Kind {
        match self {
            NativePrecision::Bf16 => Kind::BFloat16,
            NativePrecision::Fp16 => Kind::Half,
        }
    }

    /// The execution path's name.
    pub fn path(self) -> &'static str {
        match self {
            NativePrecision::Bf16 => "bf16-native",
            NativePrecision::Fp16 => "fp16-native",
        }
    }

    /// Whether every compressible weight of `w` is exactly a value of this precision,
    /// so that the artifact runs on its kernels without changing those weights.
    pub fn is_exact(self, w: &WeightSet) -> bool {
        match self {
            NativePrecision::Bf16 => is_bf16_exact(w),
            NativePrecision::Fp16 => is_f16_exact(w),
        }
    }
}

/// The model with every parameter and buffer in a reduced precision (bfloat16 or
/// half), for timing such artifacts on libtorch's native kernels (the accuracy of
/// record is always measured by [`TorchModel`] with the decoded f32 weights).
///
/// A second copy of the TorchScript module is loaded and converted with `module.to(…,
/// kind)`; biases and BatchNorm parameters and statistics are rounded too, which is
/// what running a network in that precision means in libtorch.
pub struct NativeModel {
    name: String,
    module: CModule,
    device: Device,
    precision: NativePrecision,
    params: Vec<(String, Tensor)>,
}

/// The bfloat16 model (the first native path; kept under its old name).
pub type Bf16Model = NativeModel;

impl std::fmt::Debug for NativeModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeModel")
            .field("name", &self.name)
            .field("device", &self.device)
            .field("precision", &self.precision)
            .finish()
    }
}

impl NativeModel {
    /// Loads the card's module on `device` and converts it to bfloat16.
    pub fn load(card: &ModelCard, device: Device) -> Result<NativeModel> {
        Self::load_as(card, device, NativePrecision::Bf16)
    }

    /// Loads the card's module on `device` and converts it to `precision`.
    pub fn load_as(
        card: &ModelCard,
        device: Device,
        precision: NativePrecision,
    ) -> Result<NativeModel> {
        crate::tune_allocator();
        let path = card.model_path();
        let mut module = CModule::load_on_device(&path, device).map_err(|e| TorchError::Model {
            model: card.name.clone(),
            message: format!(
                "cannot load TorchScript `{}`: {}",
                path.display(),
                crate::error::short_tch(&e)
            ),
        })?;
        module.f_set_eval()?;
        module.to(device, precision.kind(), false);
        let params = module.named_parameters()?;
        Ok(NativeModel {
            name: card.name.clone(),
            module,
            device,
            precision,
            params,
        })
    }

    /// The precision the module runs in.
    pub fn precision(&self) -> NativePrecision {
        self.precision
    }

    /// Copies `weights` into the module (rounded to its precision, nearest even, by
    /// libtorch's `copy_`; exact for weights that are already values of it).
    pub fn install(&mut self, weights: &WeightSet) -> Result<()> {
        let device = self.device;
        tch::no_grad(|| -> Result<()> {
            for (name, p) in self.params.iter_mut() {
                let w = weights.get(name)?;
                let shape: Vec<i64> = w.shape.iter().map(|&d| d as i64).collect();
                if shape != p.size() {
                    return Err(TorchError::Model {
                        model: self.name.clone(),
                        message: format!("tensor `{name}`: shape {:?} does not fit", w.shape),
                    });
                }
                let src = Tensor::from_slice(&w.data)
                    .view(shape.as_slice())
                    .to_device(device);
                p.f_copy_(&src)?;
            }
            Ok(())
        })
    }

    /// Runs the module on an input of its precision under libtorch's inference mode.
    pub fn forward(&self, input: &Tensor) -> Result<Tensor> {
        Ok(crate::inference_mode(|| self.module.forward_ts(&[input]))?)
    }

    /// The device the model runs on.
    pub fn device(&self) -> Device {
        self.device
    }
}

/// Whether every compressible tensor of `w` holds only IEEE half values (each f32 survives
/// the round trip through f16 unchanged, subnormals included).
pub fn is_f16_exact(w: &WeightSet) -> bool {
    w.compressible().all(|t| {
        t.data
            .iter()
            .all(|&v| half::f16::from_f32(v).to_f32().to_bits() == v.to_bits())
    })
}

/// Whether every compressible tensor of `w` holds only BF16 values (the low 16 bits of
/// every f32 are zero): such an artifact can run on BF16 kernels without changing its
/// compressible weights.
pub fn is_bf16_exact(w: &WeightSet) -> bool {
    w.compressible()
        .all(|t| t.data.iter().all(|v| v.to_bits() & 0xFFFF == 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wb_core::Tensor as WTensor;

    fn conv(values: Vec<f32>) -> WeightSet {
        let n = values.len();
        let t = WTensor::new("conv.weight", vec![n, 1, 1, 1], values, true).unwrap();
        WeightSet::new(vec![t]).unwrap()
    }

    #[test]
    fn exactness_per_precision() {
        // 0.5 and 1 + 2^-10 are FP16 values; 1 + 2^-10 is not a BF16 value (7 mantissa
        // bits); 2^-30 is below FP16's smallest subnormal, 1e20 beyond its range.
        let f16_only = conv(vec![0.5, 1.0 + 2f32.powi(-10)]);
        assert!(NativePrecision::Fp16.is_exact(&f16_only));
        assert!(!NativePrecision::Bf16.is_exact(&f16_only));
        let big = f32::from_bits(1e20f32.to_bits() & 0xFFFF_0000);
        let bf16_only = conv(vec![2f32.powi(-30), big]);
        assert!(NativePrecision::Bf16.is_exact(&bf16_only));
        assert!(!NativePrecision::Fp16.is_exact(&bf16_only));
        assert!(!NativePrecision::Fp16.is_exact(&conv(vec![0.1])));
        assert_eq!(NativePrecision::Fp16.path(), "fp16-native");
    }
}
