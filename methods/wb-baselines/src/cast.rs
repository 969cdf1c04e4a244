//! `fp32`, `bf16-cast` and `fp16-cast`: dense storage at 32 or 16 bits per weight.

use wb_core::{
    Artifact, Candidate, Context, Encoding, Method, MethodError, ParamError, Params, Tensor,
    WeightSet,
};

/// The reference: every tensor stored as FP32 ([`Artifact::dense`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fp32;

/// Compressible tensors stored as bfloat16, rounded to nearest even
/// ([`Encoding::bf16_from_f32`]); other tensors stay FP32.
///
/// A finite weight whose magnitude rounds beyond the bfloat16 range (≥ 2^128 · (1 − 2^-9),
/// i.e. above `bf16::MAX` by half an ulp or more) is a [`MethodError`], never a silent
/// infinity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bf16Cast;

/// Compressible tensors stored as IEEE half, rounded to nearest even
/// ([`Encoding::f16_from_f32`]); other tensors stay FP32.
///
/// A weight with |w| ≥ 65520 (which rounds to infinity in half precision; the largest
/// half is 65504) is a [`MethodError`], never a silent infinity. Weights below the half
/// subnormal range round to (signed) zero, as IEEE rounding prescribes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fp16Cast;

pub(crate) fn build_fp32(_: &Params) -> Result<Box<dyn Method>, ParamError> {
    Ok(Box::new(Fp32))
}

pub(crate) fn build_bf16(_: &Params) -> Result<Box<dyn Method>, ParamError> {
    Ok(Box::new(Bf16Cast))
}

pub(crate) fn build_f16(_: &Params) -> Result<Box<dyn Method>, ParamError> {
    Ok(Box::new(Fp16Cast))
}

impl Method for Fp32 {
    fn compress(
        &self,
        weights: &WeightSet,
        _ctx: &mut Context<'_>,
    ) -> Result<Vec<Candidate>, MethodError> {
        Ok(Candidate::single(Artifact::dense(weights)))
    }
}

/// Bit pattern of +infinity (without sign) in a 16-bit format, and the format's name.
struct Half16 {
    name: &'static str,
    inf_magnitude: u16,
    largest: &'static str,
}

const BF16: Half16 = Half16 {
    name: "bfloat16",
    inf_magnitude: 0x7F80,
    largest: "3.3895314e38",
};

const F16: Half16 = Half16 {
    name: "IEEE half",
    inf_magnitude: 0x7C00,
    largest: "65504",
};

/// Encodes every compressible tensor with `cast`, then refuses any finite weight that
/// became an infinity.
fn cast_all(
    weights: &WeightSet,
    format: &Half16,
    cast: fn(&[f32]) -> Encoding,
) -> Result<Vec<Candidate>, MethodError> {
    let mut overflow: Option<MethodError> = None;
    let artifact = Artifact::map_compressible(weights, |t: &Tensor| {
        let enc = cast(&t.data);
        if overflow.is_none() {
            if let Encoding::Bf16(bits) | Encoding::F16(bits) = &enc {
                if let Some(i) = bits.iter().position(|b| b & 0x7FFF == format.inf_magnitude) {
                    overflow = Some(MethodError::Other(format!(
                        "tensor `{}`: weight {} at flat index {i} overflows {} \
                         (largest finite value {}); it would be stored as infinity",
                        t.name, t.data[i], format.name, format.largest
                    )));
                }
            }
        }
        Ok(enc)
    })?;
    match overflow {
        Some(e) => Err(e),
        None => Ok(Candidate::single(artifact)),
    }
}

impl Method for Bf16Cast {
    fn compress(
        &self,
        weights: &WeightSet,
        _ctx: &mut Context<'_>,
    ) -> Result<Vec<Candidate>, MethodError> {
        cast_all(weights, &BF16, Encoding::bf16_from_f32)
    }
}

impl Method for Fp16Cast {
    fn compress(
        &self,
        weights: &WeightSet,
        _ctx: &mut Context<'_>,
    ) -> Result<Vec<Candidate>, MethodError> {
        cast_all(weights, &F16, Encoding::f16_from_f32)
    }
}
