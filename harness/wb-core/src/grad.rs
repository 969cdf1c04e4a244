//! Per-weight statistics of the loss gradient: the [`GradientSource`] capability
//! (implemented on libtorch in the torch crate, and by [`FakeGradients`] for unit tests),
//! so that a method can weigh weights by their importance without depending on libtorch.
//!
//! The contract, which every implementation follows:
//!
//! 1. The calibration images are `cfg.images` labelled images of the **search subset**
//!    (a seeded, class-balanced draw with `cfg.seed`; all of them when `cfg.images` is 0
//!    or at least the subset's size), never the reported images.
//! 2. `weights` are installed; the model stays in evaluation mode (BatchNorm uses its
//!    running statistics and never updates them).
//! 3. The images are visited in order in batches of `cfg.batch`. For batch `b`, `g_b` is
//!    the gradient of the **mean** cross-entropy over the batch with respect to every
//!    compressible weight.
//! 4. Per weight: [`TensorGradients::mean`] is the gradient of the mean loss over all
//!    calibration images (`Σ_b n_b·g_b / Σ_b n_b`); [`TensorGradients::mean_abs`] and
//!    [`TensorGradients::mean_sq`] are `mean_b |g_b|` and `mean_b g_b²`. With `batch = 1`
//!    the latter two are per-image statistics (`mean_sq` is then the empirical Fisher
//!    diagonal); with larger batches they are those of batch gradients.
//! 5. The result is deterministic for a seed (on the CPU for a fixed thread count).

use std::collections::HashMap;

use crate::error::CoreError;
use crate::eval::EvalError;
use crate::method::Progress;
use crate::weights::WeightSet;

/// Which calibration images and how many per backward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GradientConfig {
    /// Calibration images drawn from the search subset (0: all of them).
    pub images: usize,
    /// Images per backward pass (at least 1; 1 gives per-image statistics).
    pub batch: usize,
    /// Seed of the draw.
    pub seed: u64,
}

/// Gradient statistics of one compressible tensor, one entry per weight.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorGradients {
    /// Tensor name (as in the weight set).
    pub name: String,
    /// Gradient of the mean loss over the calibration images.
    pub mean: Vec<f32>,
    /// Mean over batches of the gradient's magnitude.
    pub mean_abs: Vec<f32>,
    /// Mean over batches of the squared gradient (Fisher-like).
    pub mean_sq: Vec<f32>,
}

/// Gradient statistics of every compressible tensor of a model.
#[derive(Debug, Clone, PartialEq)]
pub struct Gradients {
    /// One entry per compressible tensor, in model order.
    pub tensors: Vec<TensorGradients>,
    /// Calibration images used.
    pub images: usize,
    /// Backward passes run.
    pub batches: usize,
    /// Mean cross-entropy over the calibration images.
    pub loss: f64,
}

crate::param_choice! {
    /// How a weight's importance is read from its gradient statistics.
    pub enum Importance {
        /// SNIP connection sensitivity `|ḡ·w|` (Lee et al. 2019), `ḡ` the gradient of
        /// the mean loss.
        Snip = "snip",
        /// Mean gradient magnitude `mean |g|`.
        Grad = "grad",
        /// Mean squared gradient `mean g²` (the empirical Fisher diagonal at batch 1).
        Fisher = "fisher",
    }
}

impl Gradients {
    /// Checks that there is one entry per compressible tensor of `weights`, in order,
    /// with one finite value per weight in each statistic.
    ///
    /// # Errors
    /// [`CoreError::InvalidGradients`] naming the tensor.
    pub fn check(&self, weights: &WeightSet) -> Result<(), CoreError> {
        let comp: Vec<_> = weights.tensors.iter().filter(|t| t.compressible).collect();
        if comp.len() != self.tensors.len() {
            return Err(CoreError::InvalidGradients(format!(
                "gradients cover {} tensors, the model has {} compressible ones",
                self.tensors.len(),
                comp.len()
            )));
        }
        for (t, g) in comp.iter().zip(&self.tensors) {
            let fits = |v: &[f32]| v.len() == t.numel() && v.iter().all(|x| x.is_finite());
            if g.name != t.name || !fits(&g.mean) || !fits(&g.mean_abs) || !fits(&g.mean_sq) {
                return Err(CoreError::InvalidGradients(format!(
                    "gradients of `{}` do not fit tensor `{}` of {} weights (or are not finite)",
                    g.name,
                    t.name,
                    t.numel()
                )));
            }
        }
        Ok(())
    }

    /// Importance of every weight of every compressible tensor of `weights` (the weights
    /// the gradients were taken at), in model order.
    ///
    /// # Errors
    /// As [`Gradients::check`].
    pub fn importance(
        &self,
        kind: Importance,
        weights: &WeightSet,
    ) -> Result<Vec<Vec<f32>>, CoreError> {
        self.check(weights)?;
        let comp = weights.tensors.iter().filter(|t| t.compressible);
        Ok(comp
            .zip(&self.tensors)
            .map(|(t, g)| match kind {
                Importance::Snip => g
                    .mean
                    .iter()
                    .zip(&t.data)
                    .map(|(g, w)| (g * w).abs())
                    .collect(),
                Importance::Grad => g.mean_abs.clone(),
                Importance::Fisher => g.mean_sq.clone(),
            })
            .collect())
    }
}

/// Gradient statistics of a model's loss on labelled calibration images (see the
/// module documentation for the contract).
pub trait GradientSource {
    /// Statistics of the gradient at `weights` (every tensor of the model).
    fn gradients(
        &mut self,
        weights: &WeightSet,
        cfg: &GradientConfig,
        progress: &dyn Progress,
    ) -> Result<Gradients, EvalError>;

    /// Labelled images available for calibration (the search subset's size).
    fn images(&self) -> usize;

    /// Gradient computations run so far (search cost is a result).
    fn calls(&self) -> u64;
}

/// Checks a configuration against a pool of `available` images and returns how many
/// images it uses.
///
/// # Errors
/// [`EvalError::Backend`] for a zero batch or an empty pool.
pub fn calibration_images(cfg: &GradientConfig, available: usize) -> Result<usize, EvalError> {
    if cfg.batch == 0 {
        return Err(EvalError::Backend(
            "gradients: the batch must be at least 1 image".into(),
        ));
    }
    if available == 0 {
        return Err(EvalError::Backend(
            "gradients: there are no calibration images".into(),
        ));
    }
    Ok(if cfg.images == 0 || cfg.images >= available {
        available
    } else {
        cfg.images
    })
}

/// A deterministic stand-in for real gradients, for unit tests. "Image" `i` gives the
/// per-weight gradient `g_i(w) = s_t·(w + ε_i)`, with `s_t` the scale of the weight's
/// tensor (1 unless set) and `ε_i` a small seeded perturbation, so that `mean ≈ s_t·w`,
/// SNIP `≈ s_t·w²`: a tensor's importance is known from its scale and its weights.
#[derive(Debug, Clone)]
pub struct FakeGradients {
    images: usize,
    scales: HashMap<String, f32>,
    calls: u64,
}

impl FakeGradients {
    /// A fake with `images` calibration images and every scale 1.
    pub fn new(images: usize) -> Self {
        Self {
            images,
            scales: HashMap::new(),
            calls: 0,
        }
    }

    /// Sets the gradient scale of tensor `name`.
    pub fn with_scale(mut self, name: &str, scale: f32) -> Self {
        self.scales.insert(name.to_string(), scale);
        self
    }
}

fn noise(seed: u64, image: usize, weight: usize) -> f32 {
    let mut s = seed ^ (image as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (weight as u64) << 20;
    let z = crate::rng::splitmix64(&mut s);
    ((z >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 1e-2
}

impl GradientSource for FakeGradients {
    fn gradients(
        &mut self,
        weights: &WeightSet,
        cfg: &GradientConfig,
        progress: &dyn Progress,
    ) -> Result<Gradients, EvalError> {
        let n = calibration_images(cfg, self.images)?;
        self.calls += 1;
        let batches: Vec<(usize, usize)> = (0..n)
            .step_by(cfg.batch)
            .map(|s| (s, (s + cfg.batch).min(n)))
            .collect();
        progress.set_length(batches.len() as u64);
        let mut tensors = Vec::new();
        for t in weights.tensors.iter().filter(|t| t.compressible) {
            let s = self.scales.get(&t.name).copied().unwrap_or(1.0);
            let mut g = TensorGradients {
                name: t.name.clone(),
                mean: vec![0.0; t.numel()],
                mean_abs: vec![0.0; t.numel()],
                mean_sq: vec![0.0; t.numel()],
            };
            for (j, w) in t.data.iter().enumerate() {
                let (mut sum, mut abs, mut sq) = (0.0f64, 0.0f64, 0.0f64);
                for &(a, b) in &batches {
                    let gb: f64 = (a..b)
                        .map(|i| f64::from(s * (w + noise(cfg.seed, i, j))))
                        .sum::<f64>()
                        / (b - a) as f64;
                    sum += gb * (b - a) as f64;
                    abs += gb.abs();
                    sq += gb * gb;
                }
                let nb = batches.len() as f64;
                g.mean[j] = (sum / n as f64) as f32;
                g.mean_abs[j] = (abs / nb) as f32;
                g.mean_sq[j] = (sq / nb) as f32;
            }
            tensors.push(g);
        }
        progress.inc(batches.len() as u64);
        Ok(Gradients {
            tensors,
            images: n,
            batches: batches.len(),
            loss: 0.0,
        })
    }

    fn images(&self) -> usize {
        self.images
    }

    fn calls(&self) -> u64 {
        self.calls
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method::NoProgress;
    use crate::weights::Tensor;

    fn ws() -> WeightSet {
        WeightSet {
            tensors: vec![
                Tensor::new("a", vec![4], vec![0.1, -0.2, 0.3, -0.4], true).unwrap(),
                Tensor::new("bias", vec![1], vec![1.0], false).unwrap(),
                Tensor::new("b", vec![2], vec![0.5, -0.5], true).unwrap(),
            ],
        }
    }

    fn cfg(images: usize, batch: usize) -> GradientConfig {
        GradientConfig {
            images,
            batch,
            seed: 7,
        }
    }

    #[test]
    fn fake_is_deterministic_and_follows_its_scales() {
        let w = ws();
        let mut f = FakeGradients::new(100).with_scale("b", 10.0);
        let g1 = f.gradients(&w, &cfg(40, 8), &NoProgress).unwrap();
        let g2 = f.gradients(&w, &cfg(40, 8), &NoProgress).unwrap();
        assert_eq!(g1, g2);
        assert_eq!(f.calls(), 2);
        assert_eq!((g1.images, g1.batches), (40, 5));
        let snip = g1.importance(Importance::Snip, &w).unwrap();
        assert_eq!(snip.len(), 2);
        // |s·w·w|: 0.16 for a's last weight, 2.5 for b's.
        assert!((snip[0][3] - 0.16).abs() < 1e-2, "{}", snip[0][3]);
        assert!((snip[1][0] - 2.5).abs() < 0.1, "{}", snip[1][0]);
        let fisher = g1.importance(Importance::Fisher, &w).unwrap();
        assert!(fisher[1][0] > fisher[0][0]);
    }

    #[test]
    fn configurations_and_shapes_are_checked() {
        let w = ws();
        let mut f = FakeGradients::new(10);
        assert!(f.gradients(&w, &cfg(5, 0), &NoProgress).is_err());
        assert_eq!(calibration_images(&cfg(0, 1), 10).unwrap(), 10);
        assert_eq!(calibration_images(&cfg(50, 1), 10).unwrap(), 10);
        assert!(calibration_images(&cfg(5, 1), 0).is_err());
        let mut g = f.gradients(&w, &cfg(0, 3), &NoProgress).unwrap();
        g.tensors[1].mean.pop();
        let e = g.importance(Importance::Snip, &w).unwrap_err().to_string();
        assert!(e.contains("`b`"), "{e}");
        g.tensors.pop();
        assert!(g.check(&w).is_err());
    }
}
