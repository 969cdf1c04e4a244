//! The [`Method`] trait every compression method implements, and what it receives.

use crate::encoding::Artifact;
use crate::error::CoreError;
use crate::eval::{EvalError, Evaluator};
use crate::params::{ParamError, ParamSpec, Params};
use crate::train::FineTuner;
use crate::weights::WeightSet;

/// A compression method. It computes; the harness measures (sizes come from the
/// artifact, accuracy from the evaluator, time and energy from the runner).
pub trait Method: Send {
    /// Compresses `weights` into one or more candidates (a Pareto set for search methods).
    ///
    /// Must be deterministic given `ctx.seed` and must not touch files, clocks or the
    /// environment.
    fn compress(
        &self,
        weights: &WeightSet,
        ctx: &mut Context<'_>,
    ) -> Result<Vec<Candidate>, MethodError>;
}

/// One compressed model proposed by a method.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Label of this candidate within the cell (`"default"` for single-candidate methods).
    pub label: String,
    /// The compressed model.
    pub artifact: Artifact,
    /// Method-specific diagnostics; lands in the `extra_json` column.
    pub extra: serde_json::Value,
}

impl Candidate {
    /// A single candidate labelled `"default"` with no diagnostics.
    pub fn single(artifact: Artifact) -> Vec<Candidate> {
        vec![Candidate {
            label: "default".into(),
            artifact,
            extra: serde_json::Value::Null,
        }]
    }
}

/// Progress reporting from inside a method (the runner draws it as a progress bar).
pub trait Progress {
    /// Sets the total number of steps.
    fn set_length(&self, _len: u64) {}
    /// Advances by `n` steps.
    fn inc(&self, _n: u64) {}
    /// Shows a short status message.
    fn message(&self, _msg: &str) {}
}

/// A [`Progress`] that shows nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;
impl Progress for NoProgress {}

/// Everything a method may use besides the weights.
pub struct Context<'a> {
    /// Seed for every random choice the method makes.
    pub seed: u64,
    /// Accuracy of candidate weights on the search split, when the runner provides one.
    pub evaluator: Option<&'a mut dyn Evaluator>,
    /// Fine-tuning on the training images with a projection hook, when the runner
    /// provides one (methods that retrain fail with [`MethodError::NeedsTrainer`] without).
    pub trainer: Option<&'a mut dyn FineTuner>,
    /// Progress sink.
    pub progress: &'a dyn Progress,
}

impl<'a> Context<'a> {
    /// A context with no evaluator, no trainer and no progress output (unit tests,
    /// retraining-free methods).
    pub fn bare(seed: u64) -> Self {
        Self {
            seed,
            evaluator: None,
            trainer: None,
            progress: &NoProgress,
        }
    }
}

/// Why a method failed.
#[derive(Debug, thiserror::Error)]
pub enum MethodError {
    /// Invalid weights or encoding.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The evaluator failed.
    #[error(transparent)]
    Eval(#[from] EvalError),
    /// A parameter turned out to be impossible for this model (e.g. more clusters than weights).
    #[error(transparent)]
    Params(#[from] ParamError),
    /// The method needs an evaluator but none was given.
    #[error("method `{0}` needs an evaluator (search split) but the runner gave none")]
    NeedsEvaluator(&'static str),
    /// The method needs a fine-tuner (training images) but none was given.
    #[error("method `{0}` needs a fine-tuner (training images) but the runner gave none")]
    NeedsTrainer(&'static str),
    /// Anything else, with a message.
    #[error("{0}")]
    Other(String),
}

/// A method's entry in the registry: id, parameters and constructor.
#[derive(Clone, Copy)]
pub struct MethodInfo {
    /// Identifier used in experiment files and result rows.
    pub id: &'static str,
    /// One-line description.
    pub summary: &'static str,
    /// Declared parameters.
    pub params: &'static [ParamSpec],
    /// Builds the method from checked parameters; cross-field checks return [`ParamError`].
    pub build: fn(&Params) -> Result<Box<dyn Method>, ParamError>,
}

impl std::fmt::Debug for MethodInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MethodInfo")
            .field("id", &self.id)
            .field("params", &self.params)
            .finish()
    }
}
