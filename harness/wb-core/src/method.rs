//! The [`Method`] trait every compression method implements, and what it receives.

use crate::encoding::Artifact;
use crate::error::CoreError;
use crate::eval::{EvalError, Evaluator};
use crate::grad::GradientSource;
use crate::params::{check_params_all, ParamError, ParamSpec, Params, Value};
use crate::train::FineTuner;
use crate::view::ViewFn;
use crate::weights::WeightSet;
use std::collections::BTreeMap;

/// A compression method. It computes; the harness measures (sizes come from the
/// artifact, accuracy from the evaluator, time and energy from the runner).
pub trait Method: Send {
    /// Compresses `weights` into one or more candidates (a Pareto set for search methods).
    ///
    /// Must be deterministic given `ctx.seed` and must not touch files, clocks or the
    /// environment.
    ///
    /// The harness has already checked the parameters, that every weight is finite and
    /// that the capabilities of [`Method::needs`] are present (see [`compress_checked`]).
    fn compress(
        &self,
        weights: &WeightSet,
        ctx: &mut Context<'_>,
    ) -> Result<Vec<Candidate>, MethodError>;

    /// What this method (with its parameters) needs from the harness besides the
    /// weights. The harness checks it before `compress` runs. Default: nothing.
    fn needs(&self) -> Needs {
        Needs::NONE
    }

    /// For a method that retrains: the parameters (as an experiment file would give
    /// them) of its **lossless control**, the same method fine-tuned on the same
    /// schedule without compression. Fine-tuning alone moves top-1, so a retrained
    /// candidate is judged against this control as well as against FP32; the runner
    /// adds the control's cell to the grid and names it in every row
    /// (`control_cell_id`). `None` (the default) for methods that do not retrain, and
    /// for the control itself.
    fn control(&self) -> Option<BTreeMap<String, Value>> {
        None
    }
}

/// Capabilities a method asks the harness for, checked before `compress` runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// Accuracy of candidate weights on the search split ([`Context::evaluator`]).
    pub evaluator: bool,
    /// Fine-tuning on the training images ([`Context::trainer`]).
    pub trainer: bool,
    /// Gradient statistics on labelled search images ([`Context::gradients`]).
    pub gradients: bool,
}

impl Needs {
    /// Nothing beyond the weights.
    pub const NONE: Needs = Needs {
        evaluator: false,
        trainer: false,
        gradients: false,
    };
    /// An evaluator on the search split.
    pub const EVALUATOR: Needs = Needs {
        evaluator: true,
        ..Needs::NONE
    };

    /// Whether the method looks at search images (evaluator or gradients), so that the
    /// reported images must be disjoint from them.
    pub const fn sees_search_images(&self) -> bool {
        self.evaluator || self.gradients
    }
}

/// The harness's side of the method contract, the one way a method is run: checks that
/// every weight is finite and that what [`Method::needs`] asks for is in `ctx`, then
/// compresses and checks that at least one candidate came back. `id` names the method
/// in errors.
///
/// # Errors
/// [`MethodError::Core`] for a NaN or infinite weight, [`MethodError::NeedsEvaluator`] /
/// [`MethodError::NeedsTrainer`] / [`MethodError::NeedsGradients`] for a missing capability (before any work), the
/// method's own error, or [`MethodError::Other`] when it returned no candidate or
/// marked more than one as its choice.
pub fn compress_checked(
    id: &'static str,
    method: &dyn Method,
    weights: &WeightSet,
    ctx: &mut Context<'_>,
) -> Result<Vec<Candidate>, MethodError> {
    weights.check_finite()?;
    let needs = method.needs();
    if needs.evaluator && ctx.evaluator.is_none() {
        return Err(MethodError::NeedsEvaluator(id));
    }
    if needs.trainer && ctx.trainer.is_none() {
        return Err(MethodError::NeedsTrainer(id));
    }
    if needs.gradients && ctx.gradients.is_none() {
        return Err(MethodError::NeedsGradients(id));
    }
    let candidates = method.compress(weights, ctx)?;
    if candidates.is_empty() {
        return Err(MethodError::Other(format!(
            "method `{id}` returned no candidate"
        )));
    }
    let chosen = candidates.iter().filter(|c| c.chosen).count();
    if chosen > 1 {
        return Err(MethodError::Other(format!(
            "method `{id}` marked {chosen} candidates as its choice; a method picks at most one"
        )));
    }
    Ok(candidates)
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
    /// Whether this is the candidate the method's own rule picks on its search data
    /// (the headline of a report). A method that returns one candidate chooses it; one
    /// that returns a front marks at most one (none when its rule picks nothing, e.g.
    /// no point meets its target on the search images).
    pub chosen: bool,
}

impl Candidate {
    /// A single, chosen candidate labelled `"default"` with no diagnostics.
    pub fn single(artifact: Artifact) -> Vec<Candidate> {
        vec![Candidate::chosen(
            "default",
            artifact,
            serde_json::Value::Null,
        )]
    }

    /// A candidate the method's rule picks.
    pub fn chosen(label: impl Into<String>, artifact: Artifact, extra: serde_json::Value) -> Self {
        Candidate {
            label: label.into(),
            artifact,
            extra,
            chosen: true,
        }
    }

    /// A candidate the method offers but does not pick (another point of its front).
    pub fn offered(label: impl Into<String>, artifact: Artifact, extra: serde_json::Value) -> Self {
        Candidate {
            chosen: false,
            ..Candidate::chosen(label, artifact, extra)
        }
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
    /// Gradient statistics on labelled images of the search split, when the runner
    /// provides them (see [`crate::grad`]).
    pub gradients: Option<&'a mut dyn GradientSource>,
    /// Progress sink.
    pub progress: &'a dyn Progress,
    /// Search accelerations the experiment turned on (racing, surrogate); all off is
    /// the paper's search ([`crate::race`]).
    pub accel: crate::race::Accel,
}

impl<'a> Context<'a> {
    /// The evaluator, or [`MethodError::NeedsEvaluator`] naming method `id` (a method
    /// that declares [`Needs::evaluator`] never sees the error under the harness).
    pub fn require_evaluator(
        &mut self,
        id: &'static str,
    ) -> Result<&mut (dyn Evaluator + 'a), MethodError> {
        self.evaluator
            .as_deref_mut()
            .ok_or(MethodError::NeedsEvaluator(id))
    }

    /// The fine-tuner, or [`MethodError::NeedsTrainer`] naming method `id`.
    pub fn require_trainer(
        &mut self,
        id: &'static str,
    ) -> Result<&mut (dyn FineTuner + 'a), MethodError> {
        self.trainer
            .as_deref_mut()
            .ok_or(MethodError::NeedsTrainer(id))
    }

    /// The gradient source, or [`MethodError::NeedsGradients`] naming method `id`.
    pub fn require_gradients(
        &mut self,
        id: &'static str,
    ) -> Result<&mut (dyn GradientSource + 'a), MethodError> {
        self.gradients
            .as_deref_mut()
            .ok_or(MethodError::NeedsGradients(id))
    }

    /// A context with no evaluator, no trainer, no gradients and no progress output
    /// (unit tests, retraining-free methods).
    pub fn bare(seed: u64) -> Self {
        Self {
            seed,
            evaluator: None,
            trainer: None,
            gradients: None,
            progress: &NoProgress,
            accel: crate::race::Accel::default(),
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
    /// The method needs gradient statistics (labelled search images) but none were given.
    #[error("method `{0}` needs gradients (labelled search images) but the runner gave none")]
    NeedsGradients(&'static str),
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
    /// The method's own section of a report (tables and figures from its rows), if any.
    pub view: Option<ViewFn>,
}

impl MethodInfo {
    /// Checks `given` against the declared parameters (unknown fields, types, ranges,
    /// choices), fills in defaults and builds the method (its cross-field checks).
    ///
    /// # Errors
    /// [`ParamError`] naming the field.
    pub fn instantiate(
        &self,
        given: &BTreeMap<String, Value>,
    ) -> Result<(Params, Box<dyn Method>), ParamError> {
        self.instantiate_all(given).map_err(|mut all| all.remove(0))
    }

    /// [`Self::instantiate`], reporting every parameter problem of `given` at once (the
    /// cross-field checks of `build` run only once each field is valid).
    ///
    /// # Errors
    /// Every [`ParamError`], at least one.
    pub fn instantiate_all(
        &self,
        given: &BTreeMap<String, Value>,
    ) -> Result<(Params, Box<dyn Method>), Vec<ParamError>> {
        let params = check_params_all(self.params, given)?;
        let method = (self.build)(&params).map_err(|e| vec![e])?;
        Ok((params, method))
    }
}

impl std::fmt::Debug for MethodInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MethodInfo")
            .field("id", &self.id)
            .field("params", &self.params)
            .finish()
    }
}
