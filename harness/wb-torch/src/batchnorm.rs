//! BatchNorm statistics a trainer updates, and the fold that carries their change into
//! γ/β.
//!
//! A model whose card declares `batchnorm = true` exports two TorchScript methods:
//! `batchnorm_layers() -> List[Tuple[str, float]]` (per BatchNorm layer in model order,
//! its parameter name prefix and its eps) and `batchnorm_buffers() -> List[Tensor]`
//! (running mean and variance of each of those layers, the buffers themselves, not
//! copies). Training in train mode updates the buffers in place; an artifact carries only
//! parameters, so what the trainer learnt into the statistics is moved into the affine
//! parameters by [`fold`], which is exact in real arithmetic:
//!
//! `γ' = γ·s₀/s₁`, `β' = β + γ·(μ₀ − μ₁)/s₁` with `sᵢ = √(varᵢ + eps)`, so that
//! `γ'(x − μ₀)/s₀ + β' = γ(x − μ₁)/s₁ + β` for every input `x`.

use tch::{CModule, IValue, Tensor};
use wb_core::WeightSet;

use crate::model::tensor_to_vec;

/// One BatchNorm layer: its live buffers and the statistics it started with.
struct Layer {
    prefix: String,
    eps: f64,
    mean: Tensor,
    var: Tensor,
    mean0: Vec<f32>,
    var0: Vec<f32>,
}

/// The BatchNorm layers of a module, with their statistics at the time of [`Self::read`].
pub(crate) struct BatchNormStats {
    model: String,
    layers: Vec<Layer>,
}

impl BatchNormStats {
    /// Reads the layers and their current statistics from the module's exported methods.
    ///
    /// # Errors
    /// A message naming the method that is missing or returned something else.
    pub(crate) fn read(module: &CModule, model: &str) -> std::result::Result<Self, String> {
        let none: &[IValue] = &[];
        let why = |m: &str, e: tch::TchError| {
            format!(
                "the card declares batchnorm, but the module's `{m}()` fails: {}",
                crate::error::short_tch(&e)
            )
        };
        let items = match module.method_is("batchnorm_layers", none) {
            Ok(IValue::GenericList(items)) => items,
            Ok(other) => return Err(format!("batchnorm_layers() returned {other:?}")),
            Err(e) => return Err(why("batchnorm_layers", e)),
        };
        let named = items
            .into_iter()
            .map(|v| match v {
                IValue::Tuple(t) => match &t[..] {
                    [IValue::String(p), IValue::Double(eps)] => Ok((p.clone(), *eps)),
                    _ => Err(format!("batchnorm_layers() holds {t:?}, not (str, float)")),
                },
                other => Err(format!("batchnorm_layers() holds {other:?}, not a tuple")),
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let buffers = match module.method_is("batchnorm_buffers", none) {
            Ok(IValue::TensorList(b)) => b,
            Ok(other) => return Err(format!("batchnorm_buffers() returned {other:?}")),
            Err(e) => return Err(why("batchnorm_buffers", e)),
        };
        if buffers.len() != 2 * named.len() {
            return Err(format!(
                "batchnorm_buffers() returned {} tensors for {} layers (expected two each)",
                buffers.len(),
                named.len()
            ));
        }
        let mut buffers = buffers.into_iter();
        let mut layers = Vec::with_capacity(named.len());
        for (prefix, eps) in named {
            let (mean, var) = (buffers.next(), buffers.next());
            let (Some(mean), Some(var)) = (mean, var) else {
                unreachable!("two buffers per layer were counted above")
            };
            let read = |t: &Tensor| tensor_to_vec(t).map_err(|e| e.to_string());
            let (mean0, var0) = (read(&mean)?, read(&var)?);
            if mean0.len() != var0.len() || eps.is_nan() || eps < 0.0 {
                return Err(format!(
                    "BatchNorm `{prefix}`: {} means, {} variances, eps {eps}",
                    mean0.len(),
                    var0.len()
                ));
            }
            layers.push(Layer {
                prefix,
                eps,
                mean,
                var,
                mean0,
                var0,
            });
        }
        Ok(Self {
            model: model.to_string(),
            layers,
        })
    }

    /// The statistics read at the start, as `(<prefix>running_mean, values)` and
    /// `(<prefix>running_var, values)` per layer: the buffers an artifact does not carry.
    pub(crate) fn initial(&self) -> Vec<(String, Vec<f32>)> {
        let mut out = Vec::with_capacity(2 * self.layers.len());
        for l in &self.layers {
            out.push((format!("{}running_mean", l.prefix), l.mean0.clone()));
            out.push((format!("{}running_var", l.prefix), l.var0.clone()));
        }
        out
    }

    /// Number of layers.
    pub(crate) fn len(&self) -> usize {
        self.layers.len()
    }

    /// Puts the statistics read at the start back into the module.
    pub(crate) fn restore(&self) -> crate::Result<()> {
        let _guard = tch::no_grad_guard();
        for l in &self.layers {
            for (live, start) in [(&l.mean, &l.mean0), (&l.var, &l.var0)] {
                let mut live = live.shallow_clone();
                let src = Tensor::from_slice(start)
                    .to_device(live.device())
                    .view(live.size().as_slice());
                live.f_copy_(&src)?;
            }
        }
        Ok(())
    }

    /// `weights` with each layer's γ (`<prefix>weight`) and β (`<prefix>bias`) refolded
    /// from the current statistics onto the starting ones (see the module documentation).
    ///
    /// # Errors
    /// A layer whose γ or β is missing from `weights` or has the wrong length.
    pub(crate) fn fold(&self, weights: &WeightSet) -> crate::Result<WeightSet> {
        let mut out = weights.clone();
        for l in &self.layers {
            let (mean1, var1) = (tensor_to_vec(&l.mean)?, tensor_to_vec(&l.var)?);
            let find = |suffix: &str| {
                let name = format!("{}{suffix}", l.prefix);
                out.tensors
                    .iter()
                    .position(|t| t.name == name && t.numel() == l.mean0.len())
                    .ok_or_else(|| crate::TorchError::Model {
                        model: self.model.clone(),
                        message: format!(
                            "BatchNorm `{}`: no parameter `{name}` of {} values to fold into",
                            l.prefix,
                            l.mean0.len()
                        ),
                    })
            };
            let (g, b) = (find("weight")?, find("bias")?);
            let start = Stats {
                mean: &l.mean0,
                var: &l.var0,
            };
            let now = Stats {
                mean: &mean1,
                var: &var1,
            };
            let (gamma, beta) = fold_affine(
                &out.tensors[g].data,
                &out.tensors[b].data,
                start,
                now,
                l.eps,
            );
            out.tensors[g].data = gamma;
            out.tensors[b].data = beta;
        }
        Ok(out)
    }
}

/// Running statistics of one layer.
#[derive(Clone, Copy)]
pub(crate) struct Stats<'a> {
    pub mean: &'a [f32],
    pub var: &'a [f32],
}

/// γ', β' that compute with `start` statistics what `gamma`, `beta` compute with `now`
/// (in f64, rounded once to f32).
pub(crate) fn fold_affine(
    gamma: &[f32],
    beta: &[f32],
    start: Stats<'_>,
    now: Stats<'_>,
    eps: f64,
) -> (Vec<f32>, Vec<f32>) {
    let mut g_out = Vec::with_capacity(gamma.len());
    let mut b_out = Vec::with_capacity(beta.len());
    for c in 0..gamma.len() {
        let s0 = (start.var[c] as f64 + eps).sqrt();
        let s1 = (now.var[c] as f64 + eps).sqrt();
        let g = gamma[c] as f64;
        g_out.push((g * s0 / s1) as f32);
        b_out.push((beta[c] as f64 + g * (start.mean[c] as f64 - now.mean[c] as f64) / s1) as f32);
    }
    (g_out, b_out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{dataset, TorchModel, TRAIN_DATASET};
    use std::path::PathBuf;

    fn repo() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    /// On the real modules: training-mode passes move the statistics, the folded weights
    /// reproduce the moved model's logits with the restored starting statistics, and the
    /// restore is exact.
    #[test]
    fn fold_and_restore_on_the_reference_models() {
        tch::set_num_threads(1);
        let data = std::env::var_os("WEIGHTBENCH_DATA")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo().join("../shared/data"));
        let images = dataset(TRAIN_DATASET).unwrap().load(&data).unwrap();
        let (train, eval) = (
            images.subset(&(0..96).collect::<Vec<_>>()),
            images.subset(&(100..164).collect::<Vec<_>>()),
        );
        for name in ["resnet20", "resnet8"] {
            let card = crate::find_card(&repo().join("models"), name).unwrap();
            let mut model = TorchModel::load(&card, tch::Device::Cpu).unwrap();
            let before = model.logits(&eval, 64).unwrap();
            let stats = model.batchnorm().unwrap();
            assert!(stats.len() >= 7, "{name}: {} layers", stats.len());
            model.set_training(true).unwrap();
            let x = model.prepare(&train).unwrap();
            let _ = model.forward(&x).unwrap();
            model.set_training(false).unwrap();
            let moved = model.logits(&eval, 64).unwrap();
            assert_ne!(moved, before, "{name}: training mode left the statistics");
            let folded = stats.fold(model.weights()).unwrap();
            stats.restore().unwrap();
            assert_eq!(model.logits(&eval, 64).unwrap(), before, "{name}: restore");
            model.install(&folded).unwrap();
            let again = model.logits(&eval, 64).unwrap();
            let worst = moved
                .iter()
                .zip(&again)
                .map(|(a, b)| (a - b).abs() / (1.0 + a.abs()))
                .fold(0.0f32, f32::max);
            assert!(worst < 1e-4, "{name}: folded logits differ by {worst}");
        }
    }

    /// BatchNorm in evaluation mode, in f64.
    fn bn(x: f64, g: f32, b: f32, mean: f32, var: f32, eps: f64) -> f64 {
        g as f64 * (x - mean as f64) / (var as f64 + eps).sqrt() + b as f64
    }

    #[test]
    fn folded_affine_parameters_compute_the_same_with_the_starting_statistics() {
        let (gamma, beta) = ([0.7f32, -1.3], [0.2f32, 0.05]);
        let (m0, v0) = ([0.1f32, -2.0], [1.5f32, 0.04]);
        let (m1, v1) = ([0.4f32, -1.0], [0.3f32, 0.2]);
        let eps = 1e-5;
        let start = Stats {
            mean: &m0,
            var: &v0,
        };
        let now = Stats {
            mean: &m1,
            var: &v1,
        };
        let (g, b) = fold_affine(&gamma, &beta, start, now, eps);
        for c in 0..2 {
            for x in [-3.0, 0.0, 0.25, 4.0] {
                let want = bn(x, gamma[c], beta[c], m1[c], v1[c], eps);
                let got = bn(x, g[c], b[c], m0[c], v0[c], eps);
                assert!(
                    (want - got).abs() < 1e-5 * (1.0 + want.abs()),
                    "{c} {x}: {want} {got}"
                );
            }
        }
        // Hand-computed channel 0: γ' = 0.7·√1.50001/√0.30001, β' = 0.2 + 0.7·(−0.3)/√0.30001.
        assert!((g[0] as f64 - 0.7 * (1.50001f64 / 0.30001).sqrt()).abs() < 1e-6);
        assert!((b[0] as f64 - (0.2 - 0.21 / 0.30001f64.sqrt())).abs() < 1e-6);
    }

    #[test]
    fn unchanged_statistics_fold_to_the_same_parameters() {
        let (m, v) = ([0.3f32, 1.0], [0.5f32, 2.0]);
        let s = Stats { mean: &m, var: &v };
        let (g, b) = fold_affine(&[1.1, -0.4], &[0.0, 3.0], s, s, 1e-3);
        assert_eq!(g, vec![1.1, -0.4]);
        assert_eq!(b, vec![0.0, 3.0]);
    }
}
