//! The paper's two compression ratios (papers.md §2.5).

/// Size of one layer under weight sharing: `n` weights, `k` shared values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerCost {
    /// Weights of the layer.
    pub n: usize,
    /// Shared values (clusters).
    pub k: usize,
}

impl LayerCost {
    /// `n·⌈log2 k⌉ + 32·k`: bit-packed indices plus an FP32 codebook.
    pub fn bits(&self) -> u64 {
        self.n as u64 * u64::from(wb_core::bitpack::index_bits(self.k)) + 32 * self.k as u64
    }
}

/// `CR_global = Σ 32·n_l / Σ (n_l·⌈log2 k_l⌉ + 32·k_l)`: what the paper reports, and
/// exactly the harness' `compression_ratio` of the artifact (conv and linear weights
/// only).
pub fn cr_global(layers: &[LayerCost]) -> f64 {
    let base: u64 = layers.iter().map(|l| 32 * l.n as u64).sum();
    let comp: u64 = layers.iter().map(LayerCost::bits).sum();
    base as f64 / comp as f64
}

/// `CR_obj = Σ_l (n_l/N)·32·n_l / (n_l·⌈log2 k_l⌉ + 32·k_l)`: the weight-averaged
/// per-layer ratio the reference code's NSGA-II maximises (`combination.py::CR`).
pub fn cr_obj(layers: &[LayerCost]) -> f64 {
    let total: f64 = layers.iter().map(|l| l.n as f64).sum();
    layers
        .iter()
        .map(|l| (l.n as f64 / total) * (32.0 * l.n as f64) / l.bits() as f64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_by_hand() {
        // Layer A: 1000 weights, k = 4 → 2000 + 128 = 2128 bits.
        // Layer B: 100 weights, k = 16 → 400 + 512 = 912 bits.
        let l = [LayerCost { n: 1000, k: 4 }, LayerCost { n: 100, k: 16 }];
        assert_eq!(l[0].bits(), 2128);
        assert_eq!(l[1].bits(), 912);
        let g = cr_global(&l);
        assert!((g - 35_200.0 / 3040.0).abs() < 1e-12);
        let o = cr_obj(&l);
        let expect = (1000.0 / 1100.0) * (32_000.0 / 2128.0) + (100.0 / 1100.0) * (3200.0 / 912.0);
        assert!((o - expect).abs() < 1e-12);
        // The two differ: the weighted mean of ratios is not the ratio of sums.
        assert!(o > g);
        // k = 2: one index bit per weight + 64 codebook bits; 64 weights → 128 bits,
        // CR 2048 / 128 = 16. Identical layers make both ratios equal.
        let u = [LayerCost { n: 64, k: 2 }, LayerCost { n: 64, k: 2 }];
        assert!((cr_global(&u) - 16.0).abs() < 1e-12);
        assert!((cr_obj(&u) - 16.0).abs() < 1e-12);
    }
}
