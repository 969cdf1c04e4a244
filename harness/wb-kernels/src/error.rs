//! Typed errors returned by the kernels of this crate.

/// Error returned by a kernel when its input or its parameters are unusable.
///
/// Every variant names the kernel (`kernel`) that rejected the call, so that a
/// message bubbling up through a compression method still says where it came
/// from.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum KernelError {
    /// The input slice holds no element.
    #[error("{kernel}: input data is empty; at least one element is required")]
    EmptyInput {
        /// Name of the kernel that rejected the input.
        kernel: &'static str,
    },

    /// The input holds a NaN or an infinity.
    #[error(
        "{kernel}: input value at index {index} is not finite ({value}); \
         all values must be finite"
    )]
    NonFiniteInput {
        /// Name of the kernel that rejected the input.
        kernel: &'static str,
        /// Index of the first non-finite value in the input slice.
        index: usize,
        /// The offending value (NaN, `inf` or `-inf`).
        value: f32,
    },

    /// A parameter lies outside its allowed range.
    #[error("{kernel}: invalid parameter `{name}` = {value}; allowed: {allowed}")]
    InvalidParameter {
        /// Name of the kernel whose parameters were rejected.
        kernel: &'static str,
        /// Name of the parameter, as spelled in the parameter struct.
        name: &'static str,
        /// The rejected value, formatted with `Display`.
        value: String,
        /// Human-readable description of the allowed range.
        allowed: &'static str,
    },

    /// The input violates the kernel's format or contract (a symbol without a code,
    /// a truncated or malformed bit stream, an invalid code table, …).
    #[error("{kernel}: {reason}")]
    InvalidInput {
        /// Name of the kernel that rejected the input.
        kernel: &'static str,
        /// What is wrong.
        reason: String,
    },
}
