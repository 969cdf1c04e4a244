//! Declarative method parameters: each method lists its [`ParamSpec`]s, and the runner
//! checks a whole experiment grid against them before any work starts.

pub use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// The type and allowed range of one parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParamKind {
    /// An integer in `min..=max`.
    Int {
        /// Smallest allowed value.
        min: i64,
        /// Largest allowed value.
        max: i64,
    },
    /// A finite float in `min..=max`.
    Float {
        /// Smallest allowed value.
        min: f64,
        /// Largest allowed value.
        max: f64,
    },
    /// `true` or `false`.
    Bool,
    /// One of a fixed set of strings.
    Choice(&'static [&'static str]),
}

impl fmt::Display for ParamKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamKind::Int { min, max } => write!(f, "an integer in {min}..={max}"),
            ParamKind::Float { min, max } => write!(f, "a number in [{min}, {max}]"),
            ParamKind::Bool => write!(f, "true or false"),
            ParamKind::Choice(c) => write!(f, "one of {}", c.join(", ")),
        }
    }
}

/// A default value, constructible in a `const`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParamDefault {
    /// Integer default.
    Int(i64),
    /// Float default.
    Float(f64),
    /// Boolean default.
    Bool(bool),
    /// String default (for [`ParamKind::Choice`]).
    Str(&'static str),
}

impl ParamDefault {
    /// The default as the JSON value written to `params_json`.
    pub fn to_value(self) -> Value {
        match self {
            ParamDefault::Int(i) => Value::from(i),
            ParamDefault::Float(x) => Value::from(x),
            ParamDefault::Bool(b) => Value::from(b),
            ParamDefault::Str(s) => Value::from(s),
        }
    }
}

/// One parameter of a method: name, type and range, default (None = required), doc.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParamSpec {
    /// Name as written in the experiment TOML.
    pub name: &'static str,
    /// Type and allowed values.
    pub kind: ParamKind,
    /// Default; `None` makes the parameter required.
    pub default: Option<ParamDefault>,
    /// One line for `weightbench methods` and the README.
    pub doc: &'static str,
}

/// A parameter that failed its check; the runner adds file and line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("field `{field}`: {message}")]
pub struct ParamError {
    /// The offending field.
    pub field: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl ParamError {
    /// Builds an error for `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Checked parameters with defaults filled in; keys sorted, so its JSON is canonical.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Params(BTreeMap<String, Value>);

impl Params {
    /// Canonical JSON (sorted keys, defaults included): the identity of a parameter set.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).expect("JSON values always serialize")
    }

    /// The raw map.
    pub fn as_map(&self) -> &BTreeMap<String, Value> {
        &self.0
    }

    fn missing(name: &str) -> ParamError {
        ParamError::new(name, "missing (not declared by the method)")
    }

    /// Integer parameter (checked already, so a mismatch is a method bug reported as error).
    pub fn int(&self, name: &str) -> Result<i64, ParamError> {
        self.0
            .get(name)
            .and_then(Value::as_i64)
            .ok_or_else(|| Self::missing(name))
    }

    /// Float parameter.
    pub fn float(&self, name: &str) -> Result<f64, ParamError> {
        self.0
            .get(name)
            .and_then(Value::as_f64)
            .ok_or_else(|| Self::missing(name))
    }

    /// Boolean parameter.
    pub fn bool(&self, name: &str) -> Result<bool, ParamError> {
        self.0
            .get(name)
            .and_then(Value::as_bool)
            .ok_or_else(|| Self::missing(name))
    }

    /// String parameter.
    pub fn str(&self, name: &str) -> Result<&str, ParamError> {
        self.0
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| Self::missing(name))
    }

    /// Typed parameter: the value of `name` converted to `T`. A missing field, a wrong
    /// type or an unknown choice is an error naming the field, never a default.
    pub fn get<T: ParamType>(&self, name: &str) -> Result<T, ParamError> {
        let v = self.0.get(name).ok_or_else(|| Self::missing(name))?;
        T::from_value(v)
            .ok_or_else(|| ParamError::new(name, format!("got {v}, which is not {}", T::EXPECTED)))
    }

    /// Builds a parameter set from already-typed values (used by declarations'
    /// `to_params`); the caller is responsible for the values being in range.
    pub fn from_map(map: BTreeMap<String, Value>) -> Self {
        Self(map)
    }
}

/// A Rust type a parameter value converts to and from (integers, floats, `bool`, and
/// the choice enums declared with [`param_choice!`](crate::param_choice)).
pub trait ParamType: Sized {
    /// What a valid value looks like, for error messages.
    const EXPECTED: &'static str;
    /// The typed value, or `None` when `v` has the wrong type or is not representable.
    fn from_value(v: &Value) -> Option<Self>;
    /// The JSON value written to `params_json`.
    fn to_value(&self) -> Value;
}

macro_rules! int_param_type {
    ($($t:ty),*) => {$(
        impl ParamType for $t {
            const EXPECTED: &'static str = "an integer";
            fn from_value(v: &Value) -> Option<Self> {
                v.as_i64().and_then(|i| <$t>::try_from(i).ok())
            }
            fn to_value(&self) -> Value {
                Value::from(i64::try_from(*self).expect("declared ranges fit in i64"))
            }
        }
    )*};
}
int_param_type!(i64, i32, u8, u32, u64, usize);

impl ParamType for f64 {
    const EXPECTED: &'static str = "a number";
    fn from_value(v: &Value) -> Option<Self> {
        v.as_f64()
    }
    fn to_value(&self) -> Value {
        Value::from(*self)
    }
}

impl ParamType for bool {
    const EXPECTED: &'static str = "true or false";
    fn from_value(v: &Value) -> Option<Self> {
        v.as_bool()
    }
    fn to_value(&self) -> Value {
        Value::from(*self)
    }
}

/// Declares a choice parameter: an enum whose variants are named by the strings an
/// experiment file writes. It gets `NAMES`, `name()`, `Display` and [`ParamType`], so
/// an unknown string is an error (never a fallback to a default).
///
/// ```
/// wb_core::param_choice! {
///     /// How the table is shared.
///     pub enum Table {
///         /// One table per layer.
///         Layer = "layer",
///         /// One table for the model.
///         Model = "model",
///     }
/// }
/// assert_eq!(Table::NAMES, &["layer", "model"]);
/// assert_eq!(Table::Model.name(), "model");
/// ```
#[macro_export]
macro_rules! param_choice {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $s:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every choice as written in experiment files, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($s),+];
            /// This choice as written in experiment files.
            pub const fn name(self) -> &'static str {
                match self {
                    $( Self::$variant => $s ),+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl $crate::params::ParamType for $name {
            const EXPECTED: &'static str = concat!("one of" $(, " ", $s)+);
            fn from_value(v: &$crate::params::Value) -> Option<Self> {
                match v.as_str()? {
                    $( $s => Some(Self::$variant), )+
                    _ => None,
                }
            }
            fn to_value(&self) -> $crate::params::Value {
                $crate::params::Value::from(self.name())
            }
        }
    };
}

/// Declares a method's parameters once: a struct whose fields are the parameters (doc
/// comment, type, default, range), with `Default`, the checked spec table `SPECS`,
/// `from_params` (typed, an unknown choice is an error) and `to_params`. The doc
/// comment of each field is its one-line description in `weightbench methods` and the
/// README table.
///
/// A field's kind is one of `int(min, max)`, `float(min, max)`, `flag`, `choice` (a
/// type declared with [`param_choice!`](crate::param_choice)), or `shared(SPEC)`: the
/// range and description of a [`ParamSpec`] declared once for several methods (e.g.
/// [`nsga2`]), with this method's own default.
///
/// ```
/// wb_core::method_params! {
///     /// Parameters of a demo method.
///     #[derive(Debug, Clone, PartialEq)]
///     pub struct Demo {
///         /// Number of shared values per layer.
///         pub k: usize = 16 => int(2, 65536),
///         /// Relative tolerance.
///         pub tol: f64 = 1e-4 => float(0.0, 1.0),
///         /// Emit extra candidates.
///         pub verbose: bool = false => flag,
///         /// NSGA-II population.
///         pub pop_size: usize = 24 => shared(wb_core::params::nsga2::POP_SIZE),
///     }
/// }
/// assert_eq!(Demo::SPECS.len(), 4);
/// let p = wb_core::check_params(Demo::SPECS, &Default::default()).unwrap();
/// assert_eq!(Demo::from_params(&p).unwrap(), Demo::default());
/// assert_eq!(Demo::default().to_params(), p);
/// ```
#[macro_export]
macro_rules! method_params {
    (
        $(#[$smeta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[doc = $doc:literal])*
                $fvis:vis $field:ident : $ty:ty = $default:expr => $kind:ident $( ( $($arg:expr),* ) )?
            ),* $(,)?
        }
    ) => {
        $(#[$smeta])*
        $vis struct $name {
            $(
                $(#[doc = $doc])*
                $fvis $field: $ty,
            )*
        }

        impl ::std::default::Default for $name {
            fn default() -> Self {
                Self { $( $field: $default, )* }
            }
        }

        impl $name {
            /// The declared parameters: names, types, ranges, defaults and descriptions.
            pub const SPECS: &'static [$crate::ParamSpec] = &[
                $( $crate::__param_spec!(
                    $kind ( $($($arg),*)? ),
                    stringify!($field),
                    $ty,
                    $default,
                    concat!($($doc),*)
                ), )*
            ];

            /// The typed parameters from checked [`Params`]($crate::Params) (defaults
            /// filled in). Cross-field constraints are the method's own `check`.
            ///
            /// # Errors
            /// A field missing or of the wrong type, or an unknown choice.
            pub fn from_params(p: &$crate::Params) -> ::std::result::Result<Self, $crate::ParamError> {
                Ok(Self {
                    $( $field: p.get::<$ty>(stringify!($field))?, )*
                })
            }

            /// Checks these values against the declared ranges and choices (for a value
            /// built by hand rather than from checked parameters).
            ///
            /// # Errors
            /// [`ParamError`]($crate::ParamError) naming the first field out of range.
            pub fn check_ranges(&self) -> ::std::result::Result<(), $crate::ParamError> {
                $crate::check_params(Self::SPECS, self.to_params().as_map()).map(|_| ())
            }

            /// These values as a parameter set (the canonical `params_json`).
            pub fn to_params(&self) -> $crate::Params {
                let mut m = ::std::collections::BTreeMap::new();
                $(
                    m.insert(
                        stringify!($field).to_string(),
                        $crate::params::ParamType::to_value(&self.$field),
                    );
                )*
                $crate::Params::from_map(m)
            }
        }
    };
}

/// One [`ParamSpec`] of a [`method_params!`](crate::method_params) field.
#[doc(hidden)]
#[macro_export]
macro_rules! __param_spec {
    (int ($min:expr, $max:expr), $name:expr, $ty:ty, $default:expr, $doc:expr) => {
        $crate::ParamSpec {
            name: $name,
            kind: $crate::ParamKind::Int {
                min: $min as i64,
                max: $max as i64,
            },
            default: Some($crate::ParamDefault::Int($default as i64)),
            doc: $doc,
        }
    };
    (float ($min:expr, $max:expr), $name:expr, $ty:ty, $default:expr, $doc:expr) => {
        $crate::ParamSpec {
            name: $name,
            kind: $crate::ParamKind::Float {
                min: $min as f64,
                max: $max as f64,
            },
            default: Some($crate::ParamDefault::Float($default as f64)),
            doc: $doc,
        }
    };
    (flag (), $name:expr, $ty:ty, $default:expr, $doc:expr) => {
        $crate::ParamSpec {
            name: $name,
            kind: $crate::ParamKind::Bool,
            default: Some($crate::ParamDefault::Bool($default)),
            doc: $doc,
        }
    };
    (choice (), $name:expr, $ty:ty, $default:expr, $doc:expr) => {
        $crate::ParamSpec {
            name: $name,
            kind: $crate::ParamKind::Choice(<$ty>::NAMES),
            default: Some($crate::ParamDefault::Str(<$ty>::name($default))),
            doc: $doc,
        }
    };
    (shared ($spec:expr), $name:expr, $ty:ty, $default:expr, $doc:expr) => {
        $crate::params::SharedSpec::with_default($spec, $name, $default as f64)
    };
}

/// The range and description of a parameter that several methods declare with their
/// own defaults (the `shared(..)` kind of [`method_params!`](crate::method_params)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SharedSpec {
    /// Type and allowed values (integer or float).
    pub kind: ParamKind,
    /// One line for `weightbench methods` and the README.
    pub doc: &'static str,
}

impl SharedSpec {
    /// The full spec of field `name` with this method's `default`. The name is the
    /// field's, so that a shared declaration cannot silently rename a parameter.
    pub const fn with_default(self, name: &'static str, default: f64) -> ParamSpec {
        let default = match self.kind {
            ParamKind::Int { .. } => ParamDefault::Int(default as i64),
            _ => ParamDefault::Float(default),
        };
        ParamSpec {
            name,
            kind: self.kind,
            default: Some(default),
            doc: self.doc,
        }
    }
}

/// NSGA-II parameters shared by the searching methods (`ws-dse`, `moea-bins`): one
/// range and description each, the default chosen by each method. They live here and
/// not in `wb-kernels` (which owns the NSGA-II itself) because `wb-kernels` depends on
/// nothing of the project, and a spec is a core type.
pub mod nsga2 {
    use super::{ParamKind, SharedSpec};

    /// `pop_size`: NSGA-II population size.
    pub const POP_SIZE: SharedSpec = SharedSpec {
        kind: ParamKind::Int {
            min: 2,
            max: 10_000,
        },
        doc: "NSGA-II population size",
    };
    /// `generations`: NSGA-II generations, the initial population counting as the first.
    pub const GENERATIONS: SharedSpec = SharedSpec {
        kind: ParamKind::Int {
            min: 1,
            max: 10_000,
        },
        doc: "NSGA-II generations, the initial population counting as the first",
    };
    /// `sbx_prob`: probability that a pair of parents is crossed.
    pub const SBX_PROB: SharedSpec = SharedSpec {
        kind: ParamKind::Float { min: 0.0, max: 1.0 },
        doc: "probability that a pair of parents is crossed (SBX)",
    };
    /// `sbx_eta`: SBX distribution index.
    pub const SBX_ETA: SharedSpec = SharedSpec {
        kind: ParamKind::Float {
            min: 0.0,
            max: 1000.0,
        },
        doc: "SBX distribution index (pymoo 0.6: 15 for real SBX, 30 for integer SBX)",
    };
    /// `pm_eta`: polynomial-mutation distribution index.
    pub const PM_ETA: SharedSpec = SharedSpec {
        kind: ParamKind::Float {
            min: 0.0,
            max: 1000.0,
        },
        doc: "polynomial-mutation distribution index (pymoo 0.6: 20)",
    };
    /// `pm_prob`: probability that a variable is mutated.
    pub const PM_PROB: SharedSpec = SharedSpec {
        kind: ParamKind::Float { min: 0.0, max: 1.0 },
        doc: "probability that a variable is mutated (pymoo 0.6 PM: min(0.5, 1/n_var))",
    };
}

/// The parameter table of a method's README, generated from its declaration, so the
/// README cannot drift from the code (a test compares them).
pub fn markdown_table(specs: &[ParamSpec]) -> String {
    let mut s =
        String::from("| parameter | type and range | default | meaning |\n|---|---|---|---|\n");
    for p in specs {
        let default = match p.default {
            None => "required".to_string(),
            Some(d) => format!("`{}`", d.to_value()).replace('"', ""),
        };
        s.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            p.name,
            p.kind,
            default,
            p.doc.trim().replace('|', "\\|")
        ));
    }
    s
}

/// Checks `given` against `specs`: unknown fields, missing required fields, types and
/// ranges. Returns the parameters with defaults filled in.
///
/// # Errors
/// The first problem; [`check_params_all`] gives every one.
pub fn check_params(
    specs: &[ParamSpec],
    given: &BTreeMap<String, Value>,
) -> Result<Params, ParamError> {
    check_params_all(specs, given).map_err(|mut all| all.remove(0))
}

/// [`check_params`], reporting every problem of the table (each unknown field, then
/// each declared parameter that is missing or out of its type and range).
///
/// # Errors
/// Every problem, at least one.
pub fn check_params_all(
    specs: &[ParamSpec],
    given: &BTreeMap<String, Value>,
) -> Result<Params, Vec<ParamError>> {
    let mut errors: Vec<ParamError> = Vec::new();
    for unknown in given.keys().filter(|k| !specs.iter().any(|s| s.name == *k)) {
        let allowed: Vec<&str> = specs.iter().map(|s| s.name).collect();
        errors.push(ParamError::new(
            unknown.as_str(),
            if allowed.is_empty() {
                "unknown field: this method takes no parameters".to_string()
            } else {
                format!("unknown field; allowed: {}", allowed.join(", "))
            },
        ));
    }
    let mut out = BTreeMap::new();
    for spec in specs {
        match checked_value(spec, given.get(spec.name)) {
            Ok(v) => {
                out.insert(spec.name.to_string(), v);
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(Params(out))
    } else {
        Err(errors)
    }
}

/// The value of one declared parameter: the given one checked against its type and
/// range, or its default.
fn checked_value(spec: &ParamSpec, given: Option<&Value>) -> Result<Value, ParamError> {
    let value = match (given, spec.default) {
        (Some(v), _) => v.clone(),
        (None, Some(d)) => d.to_value(),
        (None, None) => {
            return Err(ParamError::new(
                spec.name,
                format!("required; expected {}", spec.kind),
            ))
        }
    };
    let bad =
        |got: &Value| ParamError::new(spec.name, format!("got {got}, expected {}", spec.kind));
    Ok(match spec.kind {
        ParamKind::Int { min, max } => {
            let i = value.as_i64().ok_or_else(|| bad(&value))?;
            if i < min || i > max {
                return Err(bad(&value));
            }
            Value::from(i)
        }
        ParamKind::Float { min, max } => {
            let x = value.as_f64().ok_or_else(|| bad(&value))?;
            if !x.is_finite() || x < min || x > max {
                return Err(bad(&value));
            }
            Value::from(x)
        }
        ParamKind::Bool => Value::from(value.as_bool().ok_or_else(|| bad(&value))?),
        ParamKind::Choice(choices) => {
            let s = value.as_str().ok_or_else(|| bad(&value))?;
            if !choices.contains(&s) {
                return Err(bad(&value));
            }
            Value::from(s)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[ParamSpec] = &[
        ParamSpec {
            name: "k",
            kind: ParamKind::Int { min: 1, max: 65536 },
            default: None,
            doc: "clusters",
        },
        ParamSpec {
            name: "mode",
            kind: ParamKind::Choice(&["a", "b"]),
            default: Some(ParamDefault::Str("a")),
            doc: "mode",
        },
    ];

    fn given(v: serde_json::Value) -> BTreeMap<String, Value> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn every_problem_of_a_table_is_reported() {
        let e = check_params_all(
            SPECS,
            &given(serde_json::json!({"q": 1, "r": 2, "mode": "z"})),
        )
        .unwrap_err();
        let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["q", "r", "k", "mode"]);
        assert_eq!(
            check_params(SPECS, &given(serde_json::json!({"q": 1})))
                .unwrap_err()
                .field,
            "q"
        );
    }

    #[test]
    fn defaults_are_filled_and_json_is_canonical() {
        let p = check_params(SPECS, &given(serde_json::json!({"k": 4}))).unwrap();
        assert_eq!(p.to_json(), r#"{"k":4,"mode":"a"}"#);
    }

    #[test]
    fn unknown_field_is_rejected_with_the_allowed_list() {
        let e = check_params(SPECS, &given(serde_json::json!({"k": 4, "kk": 1}))).unwrap_err();
        assert_eq!(e.field, "kk");
        assert!(e.message.contains("allowed: k, mode"), "{e}");
    }

    #[test]
    fn out_of_range_names_the_range() {
        let e = check_params(SPECS, &given(serde_json::json!({"k": 0}))).unwrap_err();
        assert_eq!(e.field, "k");
        assert!(e.message.contains("1..=65536"), "{e}");
    }

    #[test]
    fn required_field_must_be_present() {
        let e = check_params(SPECS, &given(serde_json::json!({}))).unwrap_err();
        assert_eq!(e.field, "k");
    }

    #[test]
    fn wrong_choice_lists_choices() {
        let e = check_params(SPECS, &given(serde_json::json!({"k": 2, "mode": "c"}))).unwrap_err();
        assert!(e.message.contains("one of a, b"), "{e}");
    }
}
