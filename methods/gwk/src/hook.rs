//! The GWK training hook: product-quantized forward weights, EWGS backward, periodic
//! gradient-weighted re-clustering (see the crate documentation for what is
//! reconstructed).

use std::collections::BTreeMap;

use half::f16;
use wb_core::qat::{QatHook, TensorCurvature};
use wb_core::{CoreError, Gradients, Tensor, WeightSet};
use wb_kernels::pq::{self, PqParams};

use crate::{ewgs, CodewordPrecision, DeltaMode, Importance};

/// What the hook needs to know besides the weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HookConfig {
    /// Sub-vector dimension.
    pub dim: usize,
    /// Codewords per layer (at most the layer's sub-vectors are used).
    pub k: usize,
    /// Codeword precision (what the forward pass uses is what is stored).
    pub precision: CodewordPrecision,
    /// Importance of the re-clustering's weighted mean.
    pub importance: Importance,
    /// How EWGS's δ is set.
    pub delta_mode: DeltaMode,
    /// δ when fixed.
    pub delta: f64,
    /// Lloyd iterations per clustering.
    pub kmeans_iter: usize,
    /// Seed of the initial k-means++.
    pub seed: u64,
    /// Learning rate of the codewords themselves (Adam on the summed gradient of their
    /// members, every step); 0: codewords move only when re-clustered.
    pub codeword_lr: f64,
}

/// One compressible layer's quantizer state.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// Tensor name.
    pub name: String,
    /// Kept at full precision (trained, never quantized).
    pub kept: bool,
    /// Codewords used, `k × dim` (already at the stored precision).
    pub codewords: Vec<f32>,
    /// The last assignment (one index per sub-vector).
    pub labels: Vec<u32>,
    /// EWGS normalisation range `R = 6σ` of the layer's initial weights.
    pub range: f64,
    /// Current EWGS δ.
    pub delta: f64,
    /// FP32 master copy of the codewords (what codeword learning updates; `codewords`
    /// is its rounding to the stored precision).
    master: Vec<f32>,
    /// Adam moments of the codewords and steps taken.
    adam: (Vec<f32>, Vec<f32>, u64),
}

/// The codewords and labels of one layer at one moment.
pub type LayerSnapshot = (Vec<f32>, Vec<u32>);

/// The hook (see the module documentation).
#[derive(Debug, Clone)]
pub struct GwkHook {
    cfg: HookConfig,
    /// One entry per compressible tensor, in model order.
    pub layers: Vec<Layer>,
    /// `(codewords, labels)` of every quantized layer when each epoch's forward weights
    /// were evaluated (epoch 0 = the start).
    pub snapshots: BTreeMap<usize, Vec<LayerSnapshot>>,
    /// Re-clusterings run.
    pub refreshes: u64,
    /// δ of every quantized layer after each curvature estimate.
    pub deltas: Vec<Vec<f64>>,
}

fn std_dev(v: &[f32]) -> f64 {
    let n = v.len().max(1) as f64;
    let mean = v.iter().map(|x| *x as f64).sum::<f64>() / n;
    (v.iter().map(|x| (*x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt()
}

fn kernel_err(name: &str, e: wb_kernels::KernelError) -> CoreError {
    CoreError::InvalidEncoding {
        name: name.to_string(),
        reason: e.to_string(),
    }
}

impl GwkHook {
    /// Initial PQ of every compressible tensor not in `kept` (plain k-means, k-means++
    /// seeded), with δ fixed or 0 until the first curvature estimate.
    ///
    /// # Errors
    /// A kernel error naming the tensor.
    pub fn new(weights: &WeightSet, kept: &[bool], cfg: HookConfig) -> Result<Self, CoreError> {
        let comp = weights.tensors.iter().filter(|t| t.compressible);
        let mut layers = Vec::new();
        for (i, (t, keep)) in comp.zip(kept).enumerate() {
            let mut l = Layer {
                name: t.name.clone(),
                kept: *keep,
                codewords: Vec::new(),
                labels: Vec::new(),
                range: 6.0 * std_dev(&t.data),
                delta: match cfg.delta_mode {
                    DeltaMode::Fixed => cfg.delta,
                    _ => 0.0,
                },
                master: Vec::new(),
                adam: (Vec::new(), Vec::new(), 0),
            };
            if !keep {
                let seed = cfg.seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                l.set_master(
                    cluster(&t.data, &cfg, None, None, seed).map_err(|e| kernel_err(&t.name, e))?,
                    cfg.precision,
                );
                l.labels = pq::assign(&t.data, cfg.dim, &l.codewords)
                    .map_err(|e| kernel_err(&t.name, e))?;
            }
            layers.push(l);
        }
        Ok(Self {
            cfg,
            layers,
            snapshots: BTreeMap::new(),
            refreshes: 0,
            deltas: Vec::new(),
        })
    }
}

/// Rounds codewords to the stored precision.
fn round(words: &mut [f32], p: CodewordPrecision) {
    if p == CodewordPrecision::F16 {
        words
            .iter_mut()
            .for_each(|w| *w = f16::from_f32(*w).to_f32());
    }
}

impl Layer {
    /// New FP32 codewords: the master copy, its rounding, fresh Adam moments.
    fn set_master(&mut self, words: Vec<f32>, p: CodewordPrecision) {
        self.codewords = words.clone();
        round(&mut self.codewords, p);
        self.adam = (vec![0.0; words.len()], vec![0.0; words.len()], 0);
        self.master = words;
    }

    /// One Adam step of the codewords on the summed gradient of their members.
    fn learn(&mut self, grad: &[f32], dim: usize, lr: f64, p: CodewordPrecision) {
        let mut g = vec![0.0f32; self.master.len()];
        for (s, l) in grad.chunks(dim).zip(&self.labels) {
            let base = *l as usize * dim;
            g[base..base + s.len()]
                .iter_mut()
                .zip(s)
                .for_each(|(a, b)| *a += b);
        }
        let (m, v, t) = &mut self.adam;
        *t += 1;
        let opt = wb_core::qat::Optimizer::ADAM;
        wb_core::qat::adam_step(&opt, &mut self.master, &g, (m, v), lr, *t);
        self.codewords.clone_from(&self.master);
        round(&mut self.codewords, p);
    }
}

/// (GW-)k-means of one layer: FP32 codewords and labels.
fn cluster(
    data: &[f32],
    cfg: &HookConfig,
    importance: Option<&[f32]>,
    init: Option<&[f32]>,
    seed: u64,
) -> Result<Vec<f32>, wb_kernels::KernelError> {
    let k = cfg.k.min(pq::subvectors(data.len(), cfg.dim)).max(1);
    let r = pq::pq_kmeans(
        data,
        &PqParams {
            dim: cfg.dim,
            k,
            max_iter: cfg.kmeans_iter,
            seed,
        },
        importance,
        init,
    )?;
    Ok(r.codewords)
}

impl QatHook for GwkHook {
    fn forward(&mut self, i: usize, latent: &Tensor, out: &mut [f32]) -> Result<(), CoreError> {
        let dim = self.cfg.dim;
        let l = &mut self.layers[i];
        if l.kept {
            out.copy_from_slice(&latent.data);
            return Ok(());
        }
        l.labels =
            pq::assign(&latent.data, dim, &l.codewords).map_err(|e| kernel_err(&l.name, e))?;
        out.copy_from_slice(&pq::reconstruct(
            latent.numel(),
            dim,
            &l.codewords,
            &l.labels,
        ));
        Ok(())
    }

    fn backward(
        &mut self,
        i: usize,
        latent: &[f32],
        forward: &[f32],
        grad: &mut [f32],
    ) -> Result<(), CoreError> {
        let (dim, lr, p) = (self.cfg.dim, self.cfg.codeword_lr, self.cfg.precision);
        let l = &mut self.layers[i];
        if !l.kept {
            // The codewords learn from the forward-weight gradient before EWGS rescales
            // it for the latent weights.
            if lr > 0.0 {
                l.learn(grad, dim, lr, p);
            }
            ewgs::scale(grad, latent, forward, l.delta, l.range);
        }
        Ok(())
    }

    fn refresh(&mut self, latent: &WeightSet, grads: &Gradients) -> Result<(), CoreError> {
        let comp = latent.tensors.iter().filter(|t| t.compressible);
        for ((l, t), g) in self.layers.iter_mut().zip(comp).zip(&grads.tensors) {
            if l.kept {
                continue;
            }
            let importance: Option<Vec<f32>> = match self.cfg.importance {
                Importance::None => None,
                Importance::Grad => Some(g.mean_abs.clone()),
                Importance::Fisher => Some(g.mean_sq.clone()),
                Importance::Snip => Some(
                    g.mean
                        .iter()
                        .zip(&t.data)
                        .map(|(g, w)| (g * w).abs())
                        .collect(),
                ),
            };
            let words = cluster(
                &t.data,
                &self.cfg,
                importance.as_deref(),
                Some(&l.master),
                self.cfg.seed,
            )
            .map_err(|e| kernel_err(&l.name, e))?;
            l.set_master(words, self.cfg.precision);
            l.labels = pq::assign(&t.data, self.cfg.dim, &l.codewords)
                .map_err(|e| kernel_err(&l.name, e))?;
        }
        self.refreshes += 1;
        Ok(())
    }

    fn curvature(&mut self, estimates: &[TensorCurvature]) -> Result<(), CoreError> {
        if self.cfg.delta_mode != DeltaMode::Hessian {
            return Ok(());
        }
        for (l, c) in self.layers.iter_mut().zip(estimates) {
            if !l.kept {
                l.delta = ewgs::delta_from_curvature(c.trace_per_weight, c.grad_std, l.range);
            }
        }
        self.deltas.push(
            self.layers
                .iter()
                .filter(|l| !l.kept)
                .map(|l| l.delta)
                .collect(),
        );
        Ok(())
    }

    fn evaluated(&mut self, epoch: usize) {
        let snap = self
            .layers
            .iter()
            .map(|l| (l.codewords.clone(), l.labels.clone()))
            .collect();
        self.snapshots.insert(epoch, snap);
    }
}
