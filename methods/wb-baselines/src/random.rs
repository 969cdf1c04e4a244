//! `random-sharing`: the floor of weight sharing — each weight joins one of `k` groups
//! at random and is replaced by its group's mean.

use serde_json::json;
use wb_core::rng::splitmix64;
use wb_core::{
    Artifact, Candidate, Context, Encoding, Method, MethodError, ParamError, Params, WeightSet,
};

wb_core::method_params! {
    /// Random weight sharing, the control every sharing method must clear: in each
    /// compressible layer every weight is assigned to one of `k` groups uniformly at
    /// random (seeded by the cell's seed and the layer's position), and each group's
    /// shared value is the mean of its weights (0 for an empty group). It stores exactly
    /// what `kmeans-uniform` with the same `k` stores — a local FP32 codebook of `k`
    /// entries and ⌈log2 k⌉-bit indices — so any gain over it is the clustering's.
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub struct RandomSharing {
        /// groups (shared values) per compressible layer; indices take ⌈log2 k⌉ bits
        pub k: usize = 16 => int(2, 65536),
    }
}

pub(crate) fn build(p: &Params) -> Result<Box<dyn Method>, ParamError> {
    Ok(Box::new(RandomSharing::from_params(p)?))
}

/// Random groups of `data` with their means: (codebook of `k` values, labels).
fn random_groups(data: &[f32], k: usize, state: &mut u64) -> (Vec<f32>, Vec<u32>) {
    let labels: Vec<u32> = data
        .iter()
        .map(|_| (splitmix64(state) % k as u64) as u32)
        .collect();
    let mut sum = vec![0f64; k];
    let mut n = vec![0u64; k];
    for (&w, &l) in data.iter().zip(&labels) {
        sum[l as usize] += f64::from(w);
        n[l as usize] += 1;
    }
    let codebook = sum
        .iter()
        .zip(&n)
        .map(|(&s, &c)| if c == 0 { 0.0 } else { (s / c as f64) as f32 })
        .collect();
    (codebook, labels)
}

impl Method for RandomSharing {
    fn compress(
        &self,
        weights: &WeightSet,
        ctx: &mut Context<'_>,
    ) -> Result<Vec<Candidate>, MethodError> {
        let mut layer = 0u64;
        let artifact = Artifact::map_compressible(weights, |t| {
            // One stream per layer, so a layer's groups do not depend on the others.
            let mut state = ctx.seed ^ layer.wrapping_mul(0xA24B_AED4_963E_E407);
            layer += 1;
            let (codebook, labels) = random_groups(&t.data, self.k, &mut state);
            Ok(Encoding::codebook_local(codebook, labels))
        })?;
        Ok(vec![Candidate::chosen(
            "default",
            artifact,
            json!({ "k": self.k }),
        )])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_uniform_and_values_are_their_means() {
        let data: Vec<f32> = (0..40_000).map(|i| (i % 97) as f32).collect();
        let mut s = 7;
        let (cb, labels) = random_groups(&data, 4, &mut s);
        let mut counts = [0usize; 4];
        for &l in &labels {
            counts[l as usize] += 1;
        }
        // 10,000 expected per group; 5 standard deviations is 250.
        assert!(
            counts.iter().all(|&c| c.abs_diff(10_000) < 250),
            "{counts:?}"
        );
        for (g, &v) in cb.iter().enumerate() {
            let members: Vec<f64> = data
                .iter()
                .zip(&labels)
                .filter(|(_, &l)| l as usize == g)
                .map(|(&w, _)| f64::from(w))
                .collect();
            let mean = members.iter().sum::<f64>() / members.len() as f64;
            assert!((f64::from(v) - mean).abs() < 1e-4);
        }
    }

    #[test]
    fn an_empty_group_shares_zero() {
        let mut s = 1;
        let (cb, labels) = random_groups(&[5.0], 8, &mut s);
        let used = labels[0] as usize;
        assert_eq!(cb[used], 5.0);
        assert!(cb.iter().enumerate().all(|(i, &v)| i == used || v == 0.0));
    }
}
