//! libtorch's inference mode (`c10::InferenceMode`), which tch does not expose.
//!
//! Compared with `no_grad`, inference mode also skips the autograd bookkeeping every op
//! does on its outputs (version counters, view tracking); PyTorch's own evaluation
//! (`torch.inference_mode()`) runs under it, so weightbench's evaluator does too. The
//! guard is a small C++ shim compiled by `build.rs` against libtorch's headers; where
//! they are missing the crate falls back to `no_grad` ([`INFERENCE_MODE`] is `false`).
//!
//! Tensors created inside are *inference tensors*: they can be read, and used by
//! functional ops, outside, but never modified in place there nor used by autograd.
//! The model's parameters are created and written outside, so installing weights and
//! fine-tuning are unaffected.
//!
//! This module and `alloc` (glibc `mallopt`) hold the workspace's only `unsafe` code:
//! two FFI calls into the shim.
#![allow(unsafe_code)]

/// Whether [`inference_mode`] really enters libtorch's inference mode (the shim was
/// compiled) or falls back to `no_grad`.
pub const INFERENCE_MODE: bool = cfg!(wb_inference_mode);

#[cfg(wb_inference_mode)]
mod ffi {
    use std::ffi::c_void;
    extern "C" {
        pub fn wb_inference_mode_enter() -> *mut c_void;
        pub fn wb_inference_mode_exit(guard: *mut c_void);
    }
}

/// Runs `f` under libtorch's inference mode (grad mode off as well), restoring the
/// previous mode afterwards, also when `f` panics.
pub fn inference_mode<T>(f: impl FnOnce() -> T) -> T {
    #[cfg(wb_inference_mode)]
    {
        struct Guard(*mut std::ffi::c_void);
        impl Drop for Guard {
            fn drop(&mut self) {
                // SAFETY: the pointer came from `wb_inference_mode_enter` on this
                // thread (the guard is neither Send nor Sync) and is freed once; guards
                // nest in LIFO order because they live on the stack.
                unsafe { ffi::wb_inference_mode_exit(self.0) }
            }
        }
        // SAFETY: no arguments; returns an owned guard or null when the constructor
        // threw, in which case `no_grad` is the fallback.
        let g = unsafe { ffi::wb_inference_mode_enter() };
        if g.is_null() {
            return tch::no_grad(f);
        }
        let _guard = Guard(g);
        f()
    }
    #[cfg(not(wb_inference_mode))]
    {
        tch::no_grad(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    #[test]
    fn guard_marks_inference_tensors_and_restores_the_mode() {
        let before = Tensor::ones([2], (Kind::Float, tch::Device::Cpu));
        assert!(!before.is_inference());
        let (inside, nested) = inference_mode(|| {
            let a = &before * 2.0;
            let b = inference_mode(|| &before + 1.0);
            // Still inside after the nested guard is dropped.
            let c = &before - 1.0;
            (a.is_inference() && c.is_inference(), b.is_inference())
        });
        // The build compiles the shim wherever libtorch ships its headers (pip wheels
        // and the official zip do): then the guard must really be inference mode.
        assert_eq!(inside, INFERENCE_MODE);
        assert_eq!(nested, INFERENCE_MODE);
        let after = &before * 3.0;
        assert!(!after.is_inference(), "the mode is restored");
        // Autograd works again outside.
        let x = Tensor::ones([3], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
        let y = (&x * &x).sum(Kind::Float);
        y.backward();
        assert_eq!(Vec::<f32>::try_from(&x.grad()).unwrap(), vec![2.0; 3]);
        // A panic inside does not leave the thread in inference mode.
        let r = std::panic::catch_unwind(|| inference_mode(|| panic!("inside")));
        assert!(r.is_err());
        assert!(!(&before * 1.0).is_inference());
    }

    #[test]
    // A test, not a const assertion: a build without the headers must still compile.
    #[allow(clippy::assertions_on_constants)]
    fn headers_were_found() {
        // libtorch from pip or the official zip ships its headers; without them the
        // evaluator silently loses inference mode, which this makes visible.
        assert!(INFERENCE_MODE, "the inference-mode shim was not compiled");
    }
}
