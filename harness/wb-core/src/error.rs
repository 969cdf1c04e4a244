//! Errors of the core crate.

use std::path::PathBuf;

/// Everything that can go wrong in core: malformed weights, inconsistent encodings,
/// unreadable containers.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// A tensor's data length does not match the product of its shape.
    #[error("tensor `{name}`: shape {shape:?} holds {expected} values but {got} were given")]
    ShapeMismatch {
        /// Tensor name.
        name: String,
        /// Declared shape.
        shape: Vec<usize>,
        /// Product of the shape.
        expected: usize,
        /// Number of values present.
        got: usize,
    },
    /// A weight is NaN or infinite; compression of such a model is refused.
    #[error("tensor `{name}` holds a non-finite value ({value}) at flat index {index}")]
    NonFinite {
        /// Tensor name.
        name: String,
        /// Flat index of the first offending value.
        index: usize,
        /// The value itself.
        value: f32,
    },
    /// Two tensors share a name.
    #[error("duplicate tensor name `{0}`")]
    DuplicateName(String),
    /// A tensor was expected but is absent.
    #[error("no tensor named `{0}`")]
    MissingTensor(String),
    /// An encoding is internally inconsistent (index out of range, wrong bit width, …).
    #[error("tensor `{name}`: invalid encoding: {reason}")]
    InvalidEncoding {
        /// Tensor name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// Gradient statistics do not fit the weights they were taken at.
    #[error("invalid gradients: {0}")]
    InvalidGradients(String),
    /// The container bytes are not a valid container.
    #[error("malformed container{}: {reason}", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    MalformedContainer {
        /// File the bytes came from, when known.
        path: Option<PathBuf>,
        /// What is wrong.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Result alias for core.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;
