//! Declarative method parameters: each method lists its [`ParamSpec`]s, and the runner
//! checks a whole experiment grid against them before any work starts.

use serde_json::Value;
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
    fn to_value(self) -> Value {
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
}

/// Checks `given` against `specs`: unknown fields, missing required fields, types and
/// ranges. Returns the parameters with defaults filled in.
pub fn check_params(
    specs: &[ParamSpec],
    given: &BTreeMap<String, Value>,
) -> Result<Params, ParamError> {
    if let Some(unknown) = given.keys().find(|k| !specs.iter().any(|s| s.name == *k)) {
        let allowed: Vec<&str> = specs.iter().map(|s| s.name).collect();
        return Err(ParamError::new(
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
        let value = match (given.get(spec.name), spec.default) {
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
        let value = match spec.kind {
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
        };
        out.insert(spec.name.to_string(), value);
    }
    Ok(Params(out))
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
