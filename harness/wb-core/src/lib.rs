#![doc = include_str!("../README.md")]

pub mod bf16fields;
pub mod bitpack;
pub mod conformance;
pub mod container;
pub mod encoding;
pub mod error;
pub mod eval;
pub mod grad;
pub mod inspect;
pub mod io;
pub mod method;
pub mod params;
pub mod qat;
pub mod race;
pub mod rng;
pub mod train;
pub mod view;
pub mod weights;

pub use encoding::{
    Artifact, ArtifactSize, Bf16Exponents, CodeLengths, CodeTableRef, CodebookRef, EncodedTensor,
    Encoding, ExpTableRef, HuffmanScope, IndexCoding, PostCoding, Pq, PqCodewords, Ref,
    SharedTables, TensorSize, ValueTable,
};
pub use error::{CoreError, Result};
pub use eval::{
    Accuracy, Cached, EvalError, EvalStats, Evaluator, FakeEvaluator, Memo, Raced, Threshold,
};
pub use grad::{
    FakeGradients, GradientConfig, GradientSource, Gradients, Importance, TensorGradients,
};
pub use method::{
    compress_checked, Candidate, Context, Method, MethodError, MethodInfo, Needs, NoProgress,
    Progress,
};
pub use params::{
    check_params, check_params_all, markdown_table, ParamDefault, ParamError, ParamKind, ParamSpec,
    ParamType, Params, SharedSpec,
};
pub use qat::{
    BatchNormMode, FakeQatBackend, IdentityHook, Optimizer, QatBackend, QatConfig, QatEpoch,
    QatHook, QatOutcome, Schedule, TensorCurvature,
};
pub use race::Accel;
pub use train::{
    EpochRecord, FakeFineTuner, FineTuneConfig, FineTuneOutcome, FineTuner, Projection,
};
pub use view::{Block, Figure, Series, ViewFn, ViewRow};
pub use weights::{Tensor, WeightSet};

/// `serde_json::json!`, for the parameter cases of [`method_conformance!`].
#[doc(hidden)]
pub use serde_json::json as __json;
