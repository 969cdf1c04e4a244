//! The layer-sweep grid of cluster counts.

/// The reference code's grid: `unique(int(logspace(log2 k_min, log2 k_max,
/// num = points, base = 2)))`, ascending. The exponents follow numpy's
/// `linspace` (`i · step + start`, the last one set to `stop` exactly), each
/// power is truncated toward zero, and duplicates are removed. With
/// `(2, 1024, 100)` this gives the paper's 81 values `2, 3, …, 961, 1024`.
/// `points = 1` gives `[k_min]`.
pub fn k_grid(k_min: usize, k_max: usize, points: usize) -> Vec<usize> {
    if points == 0 || k_min > k_max {
        return Vec::new();
    }
    let start = (k_min as f64).log2();
    let stop = (k_max as f64).log2();
    let mut out: Vec<usize> = Vec::with_capacity(points);
    if points == 1 {
        return vec![k_min];
    }
    let step = (stop - start) / (points - 1) as f64;
    for i in 0..points {
        let y = if i == points - 1 {
            stop
        } else {
            i as f64 * step + start
        };
        let k = 2f64.powf(y) as usize;
        if out.last() != Some(&k) {
            out.push(k);
        }
    }
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_grid_matches_numpy() {
        // sorted(set(np.logspace(1, 10, num=100, base=2).astype(int)))
        let numpy = [
            2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 23, 24, 26, 28,
            30, 32, 34, 36, 38, 41, 43, 46, 49, 52, 56, 60, 64, 68, 72, 77, 82, 87, 93, 99, 105,
            112, 120, 128, 136, 145, 154, 164, 175, 186, 198, 211, 225, 240, 256, 272, 290, 309,
            329, 350, 373, 397, 423, 451, 480, 512, 545, 580, 618, 658, 701, 747, 795, 847, 902,
            961, 1024,
        ];
        assert_eq!(k_grid(2, 1024, 100), numpy.to_vec());
        assert_eq!(numpy.len(), 81);
    }

    #[test]
    fn small_grids() {
        assert_eq!(k_grid(2, 16, 4), vec![2, 4, 8, 16]);
        assert_eq!(k_grid(4, 4, 10), vec![4]);
        assert_eq!(k_grid(3, 100, 1), vec![3]);
        assert!(k_grid(8, 4, 10).is_empty());
        // A dense grid: strictly increasing, exact endpoints, and every small integer
        // (log steps of 0.6 % are finer than 1/k for k ≤ 100).
        let g = k_grid(2, 1024, 1000);
        assert!(g.windows(2).all(|w| w[0] < w[1]));
        assert_eq!((g[0], g[g.len() - 1]), (2, 1024));
        assert!((2..=100).all(|k| g.contains(&k)));
    }
}
