//! The first pass over an experiment file: TOML syntax and the shape of every field
//! (known names, value types), with every problem collected.
//!
//! `serde` stops at the first unknown field or wrong type, and its messages name
//! neither the field nor its table (`invalid type: string "big", expected i64`). This
//! pass walks the parsed document against the file's schema first, so that a file with
//! several such slips gets them all in one report, each with its table, field and what
//! is allowed. The TOML parser recovers from syntax errors, so several of those are
//! reported together too. Values (ranges, names of models, methods …) are checked by
//! the second pass, in `experiment`.

use std::ops::Range;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// What a field may hold.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Str,
    Int,
    /// An integer or a float.
    Num,
    Bool,
    List(&'static Shape),
    Table(&'static [Field]),
    /// An array of tables (`[[methods]]`).
    Tables(&'static [Field]),
    /// A table whose keys belong to someone else (a method's `params`).
    AnyTable,
}

/// One field of a table: name, shape, required.
type Field = (&'static str, Shape, bool);

const EVALUATION: &[Field] = &[
    ("split", Shape::Str, false),
    ("batch_size", Shape::Int, false),
];
const SEARCH: &[Field] = &[
    ("images", Shape::Int, false),
    ("dataset", Shape::Str, false),
    ("seed", Shape::Int, false),
    ("race", Shape::Num, false),
    ("surrogate", Shape::Bool, false),
];
const TIMING: &[Field] = &[
    ("enabled", Shape::Bool, false),
    ("min_time_s", Shape::Num, false),
    ("min_samples", Shape::Int, false),
    ("throughput_batch", Shape::Int, false),
    ("energy", Shape::Bool, false),
];
const METHOD: &[Field] = &[
    ("id", Shape::Str, true),
    ("params", Shape::AnyTable, false),
    ("index_codings", Shape::List(&Shape::Str), false),
    ("models", Shape::List(&Shape::Str), false),
    ("seeds", Shape::List(&Shape::Int), false),
];
/// The top level of an experiment file.
const TOP: &[Field] = &[
    ("name", Shape::Str, false),
    ("description", Shape::Str, false),
    ("models", Shape::List(&Shape::Str), true),
    ("datasets", Shape::List(&Shape::Str), true),
    ("seeds", Shape::List(&Shape::Int), false),
    ("evaluation", Shape::Table(EVALUATION), false),
    ("search", Shape::Table(SEARCH), false),
    ("timing", Shape::Table(TIMING), false),
    ("methods", Shape::Tables(METHOD), true),
];

/// One problem: where in the text, which field (`[timing] speed`, `methods[2].id` …),
/// and what is wrong.
pub(crate) type Problem = (Range<usize>, String, String);

/// Every syntax and shape problem of `text`; empty when the file can be deserialized.
pub(crate) fn problems(text: &str) -> Vec<Problem> {
    let (doc, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        // The parser recovers and goes on, but one slip often cascades into several
        // errors on its line: the first of each line is the one to fix.
        let mut out: Vec<Problem> = Vec::new();
        let mut lines_seen: Vec<usize> = Vec::new();
        for e in &errors {
            let span = e.span().unwrap_or(0..0);
            let line = text[..span.start.min(text.len())].matches('\n').count();
            if !lines_seen.contains(&line) {
                lines_seen.push(line);
                out.push((
                    span,
                    "syntax".to_string(),
                    e.message().trim_end().to_string(),
                ));
            }
        }
        out.sort_by_key(|(span, _, _)| span.start);
        return out;
    }
    let mut out = Vec::new();
    check_table(doc.get_ref(), doc.span(), TOP, "", &mut out);
    // In file order (tables are walked in key order).
    out.sort_by_key(|(span, _, _)| span.start);
    out
}

fn describe(v: &DeValue<'_>) -> String {
    match v {
        DeValue::String(s) => format!("the string \"{s}\""),
        DeValue::Integer(_) => "an integer".into(),
        DeValue::Float(_) => "a float".into(),
        DeValue::Boolean(b) => format!("the boolean {b}"),
        DeValue::Datetime(_) => "a date".into(),
        DeValue::Array(_) => "an array".into(),
        DeValue::Table(_) => "a table".into(),
    }
}

fn expected(shape: Shape) -> String {
    match shape {
        Shape::Str => "a string".into(),
        Shape::Int => "an integer".into(),
        Shape::Num => "a number".into(),
        Shape::Bool => "true or false".into(),
        Shape::List(inner) => format!(
            "an array of {}s",
            expected(*inner)
                .trim_start_matches("a ")
                .trim_start_matches("an ")
        ),
        Shape::Table(_) | Shape::AnyTable => "a table".into(),
        Shape::Tables(_) => "an array of tables ([[…]])".into(),
    }
}

/// The field's name in messages: `models`, `[timing] speed`, `methods[1].id`.
fn field_name(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else if prefix.starts_with('[') {
        format!("{prefix} {key}")
    } else {
        format!("{prefix}.{key}")
    }
}

fn check_table(
    table: &DeTable<'_>,
    span: Range<usize>,
    fields: &[Field],
    prefix: &str,
    out: &mut Vec<Problem>,
) {
    let allowed: Vec<&str> = fields.iter().map(|f| f.0).collect();
    for (key, value) in table.iter() {
        let name = key.get_ref().as_ref();
        match fields.iter().find(|f| f.0 == name) {
            None => out.push((
                key.span(),
                field_name(prefix, name),
                format!("unknown field; allowed: {}", allowed.join(", ")),
            )),
            Some(&(_, shape, _)) => check_value(value, shape, &field_name(prefix, name), out),
        }
    }
    for (name, _, required) in fields {
        if *required && !table.iter().any(|(k, _)| k.get_ref().as_ref() == *name) {
            let place = if prefix.is_empty() {
                "the file"
            } else {
                prefix
            };
            out.push((
                span.start..span.start,
                field_name(prefix, name),
                format!("missing: {place} needs `{name}`"),
            ));
        }
    }
}

fn check_value(value: &Spanned<DeValue<'_>>, shape: Shape, field: &str, out: &mut Vec<Problem>) {
    let v = value.get_ref();
    let ok = match (shape, v) {
        (Shape::Str, DeValue::String(_))
        | (Shape::Int, DeValue::Integer(_))
        | (Shape::Num, DeValue::Integer(_) | DeValue::Float(_))
        | (Shape::Bool, DeValue::Boolean(_))
        | (Shape::AnyTable, DeValue::Table(_)) => true,
        (Shape::List(inner), DeValue::Array(a)) => {
            for (i, x) in a.iter().enumerate() {
                check_value(x, *inner, &format!("{field}[{i}]"), out);
            }
            true
        }
        (Shape::Table(fields), DeValue::Table(t)) => {
            check_table(t, value.span(), fields, &format!("[{field}]"), out);
            true
        }
        (Shape::Tables(fields), DeValue::Array(a)) => {
            for (i, x) in a.iter().enumerate() {
                match x.get_ref() {
                    DeValue::Table(t) => {
                        check_table(t, x.span(), fields, &format!("{field}[{i}]"), out)
                    }
                    other => out.push((
                        x.span(),
                        format!("{field}[{i}]"),
                        format!("expected a table, found {}", describe(other)),
                    )),
                }
            }
            true
        }
        _ => false,
    };
    if !ok {
        out.push((
            value.span(),
            field.to_string(),
            format!("expected {}, found {}", expected(shape), describe(v)),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str) -> Vec<String> {
        problems(text)
            .into_iter()
            .map(|(_, f, m)| format!("{f}: {m}"))
            .collect()
    }

    #[test]
    fn every_shape_problem_is_reported_with_its_table() {
        let got = fields(
            "models = [\"a\", 3]\ncolour = 1\n[timing]\nspeed = 3\nmin_time_s = \"x\"\n\
             [evaluation]\nbatch_size = \"big\"\n[[methods]]\nparams = 1\n",
        );
        assert_eq!(
            got,
            [
                "datasets: missing: the file needs `datasets`",
                "models[1]: expected a string, found an integer",
                "colour: unknown field; allowed: name, description, models, datasets, seeds, evaluation, search, timing, methods",
                "[timing] speed: unknown field; allowed: enabled, min_time_s, min_samples, throughput_batch, energy",
                "[timing] min_time_s: expected a number, found the string \"x\"",
                "[evaluation] batch_size: expected an integer, found the string \"big\"",
                "methods[0].id: missing: methods[0] needs `id`",
                "methods[0].params: expected a table, found an integer",
            ]
        );
    }

    #[test]
    fn several_syntax_errors_are_reported_together() {
        let p = problems("models = [\"a\"\nx = = 1\ny = 'unterminated\n");
        assert!(p.len() >= 2, "{p:?}");
        assert!(p.iter().all(|(_, f, _)| f == "syntax"));
    }

    #[test]
    fn a_valid_file_has_no_problem() {
        assert!(problems(
            "models = [\"a\"]\ndatasets = [\"d\"]\nseeds = [0, 1]\n[timing]\nmin_time_s = 1\n\
             [[methods]]\nid = \"fp32\"\nparams = { k = [1, 2] }\n"
        )
        .is_empty());
    }
}
