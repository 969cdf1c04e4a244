//! Search logs as tables: a method that searches puts its log in a candidate's
//! `extra.search` object (see the method's README); every array of records in it — a
//! sweep table, the per-generation history, … — is written to
//! `results/<exp>/search/<cell>__<key>.parquet`, one row per record, so that search cost
//! (evaluations, hypervolume after each generation, …) can be analysed with any Parquet
//! reader and not only from the JSON column.

use std::collections::BTreeSet;

use anyhow::Result;
use polars::prelude::*;
use serde_json::Value;

use crate::results::{write_parquet_atomic, ResultsDir};

/// Writes the record arrays of every candidate's `extra.search`; returns the files written.
pub fn write_search_logs(
    dir: &ResultsDir,
    cell_id: &str,
    extras: &[&Value],
) -> Result<Vec<std::path::PathBuf>> {
    let mut written = Vec::new();
    for extra in extras {
        let Some(Value::Object(log)) = extra.get("search") else {
            continue;
        };
        for (key, v) in log {
            let Value::Array(items) = v else { continue };
            if items.is_empty() || !items.iter().all(Value::is_object) {
                continue;
            }
            let mut df = records_to_frame(items)?;
            let path = dir.root.join("search").join(format!(
                "{cell_id}__{}.parquet",
                wb_core::io::sanitize_name(key)
            ));
            write_parquet_atomic(&mut df, &path)?;
            written.push(path);
        }
    }
    Ok(written)
}

/// One column per key (in first-seen order); a column's type is the narrowest that holds
/// every value: Int64, Float64, Boolean or String; nested values are stored as JSON text.
pub fn records_to_frame(items: &[Value]) -> PolarsResult<DataFrame> {
    let mut keys: Vec<String> = Vec::new();
    let mut seen = BTreeSet::new();
    for it in items {
        if let Value::Object(m) = it {
            for k in m.keys() {
                if seen.insert(k.clone()) {
                    keys.push(k.clone());
                }
            }
        }
    }
    let mut cols = Vec::with_capacity(keys.len());
    for k in &keys {
        let vals: Vec<&Value> = items
            .iter()
            .map(|it| it.get(k).unwrap_or(&Value::Null))
            .collect();
        let present = || vals.iter().filter(|v| !v.is_null());
        let name = PlSmallStr::from(k.as_str());
        let col = if present().all(|v| v.is_i64() || v.is_u64()) {
            Column::new(name, vals.iter().map(|v| v.as_i64()).collect::<Vec<_>>())
        } else if present().all(|v| v.is_number()) {
            Column::new(name, vals.iter().map(|v| v.as_f64()).collect::<Vec<_>>())
        } else if present().all(|v| v.is_boolean()) {
            Column::new(name, vals.iter().map(|v| v.as_bool()).collect::<Vec<_>>())
        } else {
            let text: Vec<Option<String>> = vals
                .iter()
                .map(|v| match v {
                    Value::Null => None,
                    Value::String(s) => Some(s.clone()),
                    other => Some(other.to_string()),
                })
                .collect();
            Column::new(name, text)
        };
        cols.push(col);
    }
    DataFrame::new(items.len(), cols)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_take_the_narrowest_type_and_keep_nulls() {
        let items = vec![
            json!({"generation": 1, "hv": 0.5, "ok": true, "k": [2, 4]}),
            json!({"generation": 2, "hv": 1, "ok": null, "k": "x", "late": 3}),
        ];
        let df = records_to_frame(&items).unwrap();
        assert_eq!(df.height(), 2);
        assert_eq!(df.column("generation").unwrap().dtype(), &DataType::Int64);
        assert_eq!(df.column("hv").unwrap().dtype(), &DataType::Float64);
        assert_eq!(df.column("ok").unwrap().dtype(), &DataType::Boolean);
        assert_eq!(df.column("k").unwrap().dtype(), &DataType::String);
        let late = df.column("late").unwrap().i64().unwrap();
        assert_eq!(late.get(0), None);
        assert_eq!(late.get(1), Some(3));
    }
}
