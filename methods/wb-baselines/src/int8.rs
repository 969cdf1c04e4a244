//! `int8-affine`: symmetric int8 with one FP32 scale per output channel.

use wb_core::{
    Artifact, Candidate, Context, Encoding, Method, MethodError, ParamError, Params, Tensor,
    WeightSet,
};

/// Symmetric per-output-channel int8 (Jacob et al., CVPR 2018, symmetric variant):
/// for every output channel `c` (the outermost dimension), `scale_c = max|w_c| / 127`
/// and `q = round_half_even(w / scale_c)` clamped to `[-127, 127]`; the core decodes
/// `q · scale_c`. See [`int8_per_channel`] for the exact arithmetic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Int8Affine;

pub(crate) fn build(_: &Params) -> Result<Box<dyn Method>, ParamError> {
    Ok(Box::new(Int8Affine))
}

impl Method for Int8Affine {
    fn compress(
        &self,
        weights: &WeightSet,
        _ctx: &mut Context<'_>,
    ) -> Result<Vec<Candidate>, MethodError> {
        let artifact = Artifact::map_compressible(weights, |t| Ok(int8_per_channel(t)))?;
        Ok(Candidate::single(artifact))
    }
}

/// Quantizes one tensor to [`Encoding::Int8PerChannel`].
///
/// Channels are the outermost dimension (`Tensor::channels`: one channel for a scalar
/// or a tensor whose first dimension is 0), each holding `numel / channels` consecutive
/// values. Per channel:
///
/// - `scale = max|w| / 127` in f32. An all-zero channel gets `scale = 0` and all `q = 0`.
///   If the division underflows to 0 although the channel is not all zero (|w| below
///   about 1.8e-43), the scale becomes the smallest positive subnormal f32 instead, so that
///   such a channel is still represented (exactly). If `127 · scale` would overflow f32
///   (weights near `f32::MAX`), the scale is lowered ulp by ulp until it does not, so the
///   decoded values stay finite.
/// - `q = round_half_even(w / scale)` with the quotient computed in f64, clamped to
///   `[-127, 127]`.
///
/// Decoding is `q as f32 * scale` in f32 (the core's rule), so the per-element error is
/// `|w − q·scale| ≤ scale / 2` up to the final f32 rounding of the product.
///
/// Expects finite values (callers check with `WeightSet::check_finite` first).
pub fn int8_per_channel(t: &Tensor) -> Encoding {
    let channels = t.channels();
    let per = t.numel() / channels;
    let mut scales = Vec::with_capacity(channels);
    let mut q = Vec::with_capacity(t.numel());
    for c in 0..channels {
        let row = &t.data[c * per..(c + 1) * per];
        let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let scale = channel_scale(max);
        scales.push(scale);
        if scale == 0.0 {
            q.extend(std::iter::repeat_n(0i8, row.len()));
        } else {
            let s = f64::from(scale);
            q.extend(
                row.iter()
                    .map(|w| (f64::from(*w) / s).round_ties_even().clamp(-127.0, 127.0) as i8),
            );
        }
    }
    Encoding::Int8PerChannel { scales, q }
}

/// `max / 127`, kept positive for a non-zero channel and small enough that `127 · scale`
/// is finite.
fn channel_scale(max: f32) -> f32 {
    if max == 0.0 {
        return 0.0;
    }
    let mut scale = max / 127.0;
    if scale == 0.0 {
        scale = f32::from_bits(1);
    }
    while !(127.0 * scale).is_finite() {
        scale = f32::from_bits(scale.to_bits() - 1);
    }
    scale
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(shape: Vec<usize>, data: Vec<f32>) -> Tensor {
        Tensor::new("w", shape, data, true).unwrap()
    }

    #[test]
    fn ties_round_to_even_and_zero_channel_is_zero() {
        // Channel 0: max 127 -> scale 1; 2.5 -> 2, 3.5 -> 4, -2.5 -> -2.
        // Channel 1: all zero.
        let t = tensor(vec![2, 4], vec![127.0, 2.5, 3.5, -2.5, 0.0, 0.0, -0.0, 0.0]);
        let Encoding::Int8PerChannel { scales, q } = int8_per_channel(&t) else {
            panic!("not int8")
        };
        assert_eq!(scales, vec![1.0, 0.0]);
        assert_eq!(q, vec![127, 2, 4, -2, 0, 0, 0, 0]);
    }

    #[test]
    fn tiny_channel_keeps_a_positive_scale() {
        let tiny = f32::from_bits(3); // 3 * 2^-149
        let t = tensor(vec![1, 2], vec![tiny, -tiny]);
        let Encoding::Int8PerChannel { scales, q } = int8_per_channel(&t) else {
            panic!("not int8")
        };
        assert!(scales[0] > 0.0);
        let dec: Vec<f32> = q.iter().map(|v| *v as f32 * scales[0]).collect();
        assert_eq!(dec, vec![tiny, -tiny]);
    }

    #[test]
    fn huge_channel_decodes_finite() {
        let t = tensor(vec![1, 3], vec![f32::MAX, -f32::MAX, 1.0]);
        let Encoding::Int8PerChannel { scales, q } = int8_per_channel(&t) else {
            panic!("not int8")
        };
        assert!(q.iter().zip([127i8, -127, 0]).all(|(a, b)| *a == b));
        assert!(q.iter().all(|v| (*v as f32 * scales[0]).is_finite()));
    }
}
