//! Errors of the torch layer. Every error that concerns a file names its path.

use std::path::PathBuf;

/// Why loading a model, a dataset or running an evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum TorchError {
    /// A file or directory the harness needs is not there.
    #[error("{what} not found: looked at `{path}`{hint}")]
    Missing {
        /// What was looked for ("model card", "TorchScript file", "dataset file" …).
        what: &'static str,
        /// Where it was looked for.
        path: PathBuf,
        /// Extra advice (starts with "; " when present).
        hint: String,
    },
    /// Reading a file failed.
    #[error("cannot read `{path}`: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A model card is not valid TOML or has wrong fields (the message gives line and field).
    #[error("model card `{path}`: {message}")]
    Card {
        /// The card file.
        path: PathBuf,
        /// What is wrong, with line and column where the TOML parser knows them.
        message: String,
    },
    /// A dataset file has the wrong size, a bad label or a wrong checksum.
    #[error("dataset file `{path}`: {message}")]
    Dataset {
        /// The data file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An unknown dataset id or split.
    #[error("unknown dataset `{id}`; known: {known}")]
    UnknownDataset {
        /// The id asked for.
        id: String,
        /// The registered ids, comma-separated.
        known: String,
    },
    /// The model and the card or the weights disagree.
    #[error("model `{model}`: {message}")]
    Model {
        /// Model name (from the card).
        model: String,
        /// What disagrees.
        message: String,
    },
    /// A sample of a dataset cannot be drawn (too few images of a class).
    #[error("{0}")]
    Sample(String),
    /// An evaluation produced NaN or infinite logits.
    #[error(
        "non-finite logits (NaN or ±inf) for {rows} of {of} images: the weights, or a buffer \
         of the model such as a BatchNorm running_var, hold a NaN or an infinity"
    )]
    NonFinite {
        /// Images whose logits were not all finite.
        rows: usize,
        /// Images in the batch.
        of: usize,
    },
    /// The requested device is not usable.
    #[error("device `{0}`")]
    Device(String),
    /// libtorch reported an error (shown without its C++ stack trace).
    #[error("libtorch: {}", short_tch(.0))]
    Tch(#[from] tch::TchError),
    /// Weight-level errors from the core.
    #[error(transparent)]
    Core(#[from] wb_core::CoreError),
}

impl From<TorchError> for wb_core::EvalError {
    fn from(e: TorchError) -> Self {
        match e {
            TorchError::Core(c) => wb_core::EvalError::Core(c),
            other => wb_core::EvalError::Backend(other.to_string()),
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = TorchError> = std::result::Result<T, E>;

/// A libtorch error without the C++ stack trace libtorch appends ("Exception raised
/// from … (most recent call first):" and 20-odd `frame #N` lines): the message a user
/// needs is the lines before it.
pub fn short_tch(e: &tch::TchError) -> String {
    short_trace(&e.to_string())
}

/// [`short_tch`] on text.
pub fn short_trace(text: &str) -> String {
    let kept: Vec<&str> = text
        .lines()
        .take_while(|l| {
            let t = l.trim_start();
            !(t.starts_with("Exception raised from") || t.starts_with("frame #"))
        })
        .collect();
    let out = kept.join("\n").trim_end().to_string();
    if out.is_empty() {
        text.lines().next().unwrap_or_default().to_string()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libtorch_traces_are_cut_to_their_message() {
        let raw = "PytorchStreamReader failed reading zip archive: failed finding central directory\n\
                   Exception raised from valid at /pytorch/caffe2/serialize/inline_container.cc:185 (most recent call first):\n\
                   frame #0: c10::Error::Error(c10::SourceLocation, std::string) + 0x98 (0x7f in libc10.so)\n\
                   frame #1: c10::detail::torchCheckFail(char const*, char const*, unsigned int, std::string const&) + 0x6a";
        assert_eq!(
            short_trace(raw),
            "PytorchStreamReader failed reading zip archive: failed finding central directory"
        );
        assert_eq!(short_trace("plain"), "plain");
        assert_eq!(
            short_trace("frame #0: only frames"),
            "frame #0: only frames"
        );
    }
}
