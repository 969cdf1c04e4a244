//! `kmeans-uniform`: per-layer 1-D k-means weight sharing with one `k` for every layer.

use serde_json::json;
use wb_core::{
    Artifact, Candidate, Context, EncodedTensor, Encoding, Method, MethodError, ParamError, Params,
    WeightSet,
};
use wb_kernels::{kmeans_1d, KMeans1dParams};

/// Default number of clusters per layer (4-bit indices).
pub const KMEANS_DEFAULT_K: usize = 16;
/// Default maximum number of Lloyd iterations.
pub const KMEANS_DEFAULT_MAX_ITER: usize = 100;
/// Default convergence threshold on the squared centroid shift of one iteration.
pub const KMEANS_DEFAULT_TOL: f64 = 1e-4;

wb_core::method_params! {
    /// Uniform k-means weight sharing (Deep Compression, Han et al., ICLR 2016, without
    /// pruning, retraining or Huffman coding): each compressible layer is clustered on its
    /// own with [`wb_kernels::kmeans_1d`] (linear initialisation between the layer's min and
    /// max) and stored as a local FP32 codebook of exactly `k` entries plus ⌈log2 k⌉-bit
    /// indices.
    ///
    /// A layer with fewer distinct values than `k` still gets exactly `k` codebook entries
    /// and `n·⌈log2 k⌉ + 32·k` bits. Nothing special is done for it: the kernel's
    /// empty-cluster rule sets every centroid whose cluster is empty to `0.0` (so the
    /// codebook may repeat `0.0`, and a value may even move to such a centroid at the next
    /// iteration), and Lloyd's algorithm is not guaranteed to give each distinct value its
    /// own centroid, so two distinct values can still share one (their mean). Every value
    /// is mapped to its nearest final centroid.
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub struct KMeansUniform {
        /// clusters (shared values) per compressible layer; indices take ⌈log2 k⌉ bits
        pub k: usize = KMEANS_DEFAULT_K => int(2, 65536),
        /// maximum Lloyd iterations per layer
        pub max_iter: usize = KMEANS_DEFAULT_MAX_ITER => int(1, 100_000),
        /// stop when Σ (centroid shift)² of one iteration ≤ tol (absolute)
        pub tol: f64 = KMEANS_DEFAULT_TOL => float(0.0, 1.0),
    }
}

pub(crate) fn build(p: &Params) -> Result<Box<dyn Method>, ParamError> {
    Ok(Box::new(KMeansUniform::from_params(p)?))
}

impl Method for KMeansUniform {
    fn compress(
        &self,
        weights: &WeightSet,
        ctx: &mut Context<'_>,
    ) -> Result<Vec<Candidate>, MethodError> {
        // Refuse an impossible k before spending time on any layer.
        if let Some(t) = weights.compressible().find(|t| t.numel() < self.k) {
            return Err(ParamError::new(
                "k",
                format!(
                    "k = {} exceeds the {} weights of layer `{}` (shape {:?}); \
                     every compressible layer needs at least k weights",
                    self.k,
                    t.numel(),
                    t.name,
                    t.shape
                ),
            )
            .into());
        }
        let params = KMeans1dParams {
            k: self.k,
            max_iter: self.max_iter,
            tol: self.tol,
        };
        let layers = weights.compressible().count() as u64;
        ctx.progress.set_length(layers);
        let mut diagnostics = Vec::new();
        let mut tensors = Vec::with_capacity(weights.tensors.len());
        for t in &weights.tensors {
            if !t.compressible {
                tensors.push(EncodedTensor::dense(t));
                continue;
            }
            ctx.progress.message(&t.name);
            let km = kmeans_1d(&t.data, &params)
                .map_err(|e| MethodError::Other(format!("layer `{}`: {e}", t.name)))?;
            diagnostics.push(json!({
                "name": t.name,
                "iterations": km.iterations,
                "converged": km.converged,
                "inertia": km.inertia,
            }));
            tensors.push(EncodedTensor::with(
                t,
                Encoding::codebook_local(km.centroids, km.labels),
            ));
            ctx.progress.inc(1);
        }
        let artifact = Artifact {
            tensors,
            ..Default::default()
        };
        artifact.validate()?;
        Ok(vec![Candidate::chosen(
            "default",
            artifact,
            json!({
                "k": self.k,
                "max_iter": self.max_iter,
                "tol": self.tol,
                "layers": diagnostics,
            }),
        )])
    }
}
