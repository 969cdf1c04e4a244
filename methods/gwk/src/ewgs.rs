//! Element-wise gradient scaling (EWGS; Lee, Kim, Ham, CVPR 2021), applied to the PQ
//! reconstruction.
//!
//! EWGS works on weights normalised to `[0, 1]` by `[lW, uW] = ±3σ` (the official code's
//! initialisation); here the interval is fixed at the layer's initial `±3σ`, so
//! `x − x_q = (w − q) / R` with `R = 6σ`. In those units the backward pass is
//! `g_latent = g · (1 + δ · sign(g) · (w − q) / R)`, and the Hessian rule
//! `δ = (tr(H_x)/n) / (3 · std(g_x))` becomes `δ = R · (tr(H_w)/n) / (3 · std(g_w))`,
//! clipped at 0. `δ = 0` is the straight-through estimator.

/// Scales `grad` (the gradient at the forward weights `q`) into the gradient of the
/// latent weights `w`, in place.
pub fn scale(grad: &mut [f32], latent: &[f32], forward: &[f32], delta: f64, range: f64) {
    if delta == 0.0 || range <= 0.0 {
        return;
    }
    let c = (delta / range) as f32;
    for ((g, w), q) in grad.iter_mut().zip(latent).zip(forward) {
        *g *= 1.0 + c * g.signum() * (w - q);
    }
}

/// δ from a curvature estimate (module documentation), 0 when it is not positive or
/// the gradient does not vary.
pub fn delta_from_curvature(trace_per_weight: f64, grad_std: f64, range: f64) -> f64 {
    if grad_std.is_nan() || grad_std <= 0.0 || !trace_per_weight.is_finite() {
        return 0.0;
    }
    (range * trace_per_weight / (3.0 * grad_std)).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_matches_hand_computed_values() {
        // δ = 0.5, R = 2: c = 0.25. g = 2, w − q = 0.4 → 2·(1 + 0.25·0.4) = 2.2;
        // g = −1, w − q = 0.4 → −1·(1 − 0.1) = −0.9; g = 3, w − q = −2 → 3·(1 − 0.5) = 1.5.
        let mut g = [2.0f32, -1.0, 3.0];
        scale(&mut g, &[1.4, 1.4, -1.0], &[1.0, 1.0, 1.0], 0.5, 2.0);
        for (a, b) in g.iter().zip([2.2f32, -0.9, 1.5]) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn delta_zero_is_the_straight_through_estimator() {
        let mut g = [2.0f32, -1.0];
        scale(&mut g, &[5.0, -5.0], &[0.0, 0.0], 0.0, 1.0);
        assert_eq!(g, [2.0, -1.0]);
    }

    #[test]
    fn delta_follows_the_hessian_rule_and_is_clipped() {
        // R = 0.6, tr/n = 0.02, std = 0.001 → 0.6·0.02/0.003 = 4.
        assert!((delta_from_curvature(0.02, 0.001, 0.6) - 4.0).abs() < 1e-12);
        assert_eq!(delta_from_curvature(-0.02, 0.001, 0.6), 0.0);
        assert_eq!(delta_from_curvature(0.02, 0.0, 0.6), 0.0);
        assert_eq!(delta_from_curvature(f64::NAN, 0.1, 0.6), 0.0);
    }
}
