//! Text rendering: parameter strings, Markdown and LaTeX tables.

use std::fmt::Write as _;
use wb_core::io::sanitize_name;

/// One result row as shown in the tables (already rendered where useful).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    pub method: String,
    /// Rendered parameters, e.g. `k=16`, or `-`.
    pub params: String,
    pub candidate: String,
    pub seed: Option<i64>,
    pub top1: Option<f64>,
    pub delta_pp: Option<f64>,
    pub ratio: Option<f64>,
    pub artifact_bytes: Option<i64>,
    /// Batch-1 latency: median and bootstrap 95 % CI, ms.
    pub latency_b1: Option<(f64, Option<f64>, Option<f64>)>,
    /// Throughput-batch images per second.
    pub throughput: Option<f64>,
    /// The same on libtorch's native BF16 path (BF16-exact artifacts only).
    pub throughput_bf16: Option<f64>,
    /// Images per second on the native FP16 path, for FP16-exact artifacts.
    pub throughput_f16: Option<f64>,
    /// Whether the timed pass met its validity rules.
    pub timing_valid: Option<bool>,
    /// Why not.
    pub timing_reasons: Option<String>,
    pub error: Option<String>,
}

/// All rows of one model × dataset pair.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Section {
    pub model: String,
    pub dataset: String,
    /// Distinct evaluation splits seen in the rows.
    pub eval_splits: Vec<String>,
    /// Distinct evaluation image counts seen in the rows.
    pub eval_images: Vec<i64>,
    /// FP32 top-1 of this model on this dataset (first non-null value).
    pub baseline_top1: Option<f64>,
    /// Successful rows, in table order.
    pub ok: Vec<Row>,
    /// Failed rows, in table order.
    pub failed: Vec<Row>,
}

impl Section {
    /// Whether the candidate column is shown (some candidate is not `default`).
    pub fn show_candidate(&self) -> bool {
        self.ok.iter().any(|r| r.candidate != "default")
    }

    /// Whether the seed column is shown (more than one distinct seed).
    pub fn show_seed(&self) -> bool {
        let mut seeds: Vec<i64> = self.ok.iter().filter_map(|r| r.seed).collect();
        seeds.sort_unstable();
        seeds.dedup();
        seeds.len() > 1
    }
}

/// Render a method's canonical `params_json` compactly: `{"k":16}` → `k=16`,
/// `{"bits":4,"k":16}` → `bits=4, k=16`, `{}` / empty / null → `-`.
///
/// String values are shown without quotes; arrays and nested objects as
/// compact JSON. Text that is not a JSON object is returned trimmed, as is.
pub fn render_params(params_json: Option<&str>) -> String {
    let raw = params_json.map(str::trim).unwrap_or("");
    if raw.is_empty() || raw == "null" {
        return "-".to_string();
    }
    match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(serde_json::Value::Object(map)) => {
            if map.is_empty() {
                return "-".to_string();
            }
            map.iter()
                .map(|(k, v)| {
                    let v = match v {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    format!("{k}={v}")
                })
                .collect::<Vec<_>>()
                .join(", ")
        }
        Ok(serde_json::Value::Null) => "-".to_string(),
        _ => raw.to_string(),
    }
}

/// Escape text for LaTeX (text mode): `\ { } _ % & # $ ~ ^` and newlines.
pub fn latex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\textbackslash{}"),
            '{' => out.push_str("\\{"),
            '}' => out.push_str("\\}"),
            '_' => out.push_str("\\_"),
            '%' => out.push_str("\\%"),
            '&' => out.push_str("\\&"),
            '#' => out.push_str("\\#"),
            '$' => out.push_str("\\$"),
            '~' => out.push_str("\\textasciitilde{}"),
            '^' => out.push_str("\\textasciicircum{}"),
            '×' => out.push_str("$\\times$"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Make text safe for a Markdown table cell or a one-line bullet.
pub(crate) fn md_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

fn fmt_opt_f(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    match v {
        Some(x) if x.is_finite() => f(x),
        _ => "-".to_string(),
    }
}

pub(crate) fn fmt_top1(v: Option<f64>) -> String {
    fmt_opt_f(v, |x| format!("{x:.2}"))
}

pub(crate) fn fmt_delta(v: Option<f64>) -> String {
    // Avoid "-0.00" for tiny negative deltas.
    fmt_opt_f(v, |x| {
        let s = format!("{x:+.2}");
        if s == "-0.00" {
            "+0.00".to_string()
        } else {
            s
        }
    })
}

pub(crate) fn fmt_ratio(v: Option<f64>) -> String {
    fmt_opt_f(v, |x| format!("{x:.2}"))
}

pub(crate) fn fmt_bytes(v: Option<i64>) -> String {
    v.map_or_else(|| "-".to_string(), |b| b.to_string())
}

fn context_line(s: &Section) -> Option<String> {
    let mut parts = Vec::new();
    if !s.eval_splits.is_empty() {
        parts.push(format!("split {}", s.eval_splits.join(", ")));
    }
    if !s.eval_images.is_empty() {
        let n: Vec<String> = s.eval_images.iter().map(i64::to_string).collect();
        parts.push(format!("{} images", n.join(", ")));
    }
    if let Some(b) = s.baseline_top1 {
        parts.push(format!("FP32 top-1 {b:.2} %"));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

fn failure_text(r: &Row) -> String {
    let err = r.error.as_deref().unwrap_or("(no error message)");
    let cand = if r.candidate != "default" {
        format!(" [{}]", r.candidate)
    } else {
        String::new()
    };
    format!("{} {}{}: {}", r.method, r.params, cand, err)
}

/// The whole `tables.md` document.
pub(crate) fn markdown(
    name: &str,
    rows_ok: usize,
    rows_failed: usize,
    files: usize,
    sections: &[Section],
) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# weightbench report: {}\n", md_escape(name));
    let _ = writeln!(
        md,
        "Data: `results/{}/cells/*.parquet` ({} cell files), {} rows: {} ok, {} failed. \
         Top-1 in percent; Δ pp is top-1 minus the FP32 top-1 of the same model and \
         dataset; compression ratio is baseline bits / compressed bits over the \
         compressible weights; artifact bytes is the size of the whole-model file.\n",
        md_escape(name),
        files,
        rows_ok + rows_failed,
        rows_ok,
        rows_failed
    );
    for s in sections {
        let _ = writeln!(
            md,
            "## {} on {}\n",
            md_escape(&s.model),
            md_escape(&s.dataset)
        );
        if let Some(line) = context_line(s) {
            let _ = writeln!(md, "{}\n", md_escape(&line));
        }
        if s.ok.is_empty() {
            md.push_str("No successful rows.\n\n");
        } else {
            let cand = s.show_candidate();
            let seed = s.show_seed();
            let mut head = vec!["method", "params"];
            let mut align = vec!["---", "---"];
            if cand {
                head.push("candidate");
                align.push("---");
            }
            if seed {
                head.push("seed");
                align.push("--:");
            }
            head.extend([
                "top-1 %",
                "Δ pp vs FP32",
                "compression ratio",
                "artifact bytes",
                "latency b1 ms [95 % CI]",
                "throughput img/s",
            ]);
            align.extend(["--:", "--:", "--:", "--:", "--:", "--:"]);
            let mut notes: Vec<String> = Vec::new();
            let _ = writeln!(md, "| {} |", head.join(" | "));
            let _ = writeln!(md, "|{}|", align.join("|"));
            for r in &s.ok {
                let mut cells = vec![md_escape(&r.method), md_escape(&r.params)];
                if cand {
                    cells.push(md_escape(&r.candidate));
                }
                if seed {
                    cells.push(r.seed.map_or_else(|| "-".into(), |v| v.to_string()));
                }
                cells.push(fmt_top1(r.top1));
                cells.push(fmt_delta(r.delta_pp));
                let ratio = fmt_ratio(r.ratio);
                cells.push(if ratio == "-" {
                    ratio
                } else {
                    format!("{ratio}×")
                });
                cells.push(fmt_bytes(r.artifact_bytes));
                // Invalid timings stay visible, marked and footnoted with the reason.
                let mark = if r.timing_valid == Some(false) {
                    notes.push(format!(
                        "{} {}: {}",
                        r.method,
                        r.params,
                        r.timing_reasons.as_deref().unwrap_or("invalid")
                    ));
                    format!(" ⚠{}", notes.len())
                } else {
                    String::new()
                };
                cells.push(match r.latency_b1 {
                    Some((m, Some(lo), Some(hi))) => format!("{m:.3} [{lo:.3}, {hi:.3}]{mark}"),
                    Some((m, _, _)) => format!("{m:.3}{mark}"),
                    None => "-".into(),
                });
                let bf16 = match (r.throughput_bf16, r.throughput_f16) {
                    (Some(t), _) => format!(" (BF16 native: {t:.0})"),
                    (None, Some(t)) => format!(" (FP16 native: {t:.0})"),
                    (None, None) => String::new(),
                };
                cells.push(
                    r.throughput
                        .map_or_else(|| "-".into(), |t| format!("{t:.0}{bf16}{mark}")),
                );
                let _ = writeln!(md, "| {} |", cells.join(" | "));
            }
            md.push('\n');
            if !notes.is_empty() {
                md.push_str(
                    "Timing marked ⚠ did not meet the validity rules (shown, not trusted):\n\n",
                );
                for (i, n) in notes.iter().enumerate() {
                    let _ = writeln!(md, "{}. {}", i + 1, md_escape(n));
                }
                md.push('\n');
            }
        }
        if !s.failed.is_empty() {
            let _ = writeln!(md, "Failed ({}):\n", s.failed.len());
            for r in &s.failed {
                let _ = writeln!(md, "- {}", md_escape(&failure_text(r)));
            }
            md.push('\n');
        }
    }
    md
}

fn tex_signed(v: Option<f64>) -> String {
    let s = fmt_delta(v);
    if s == "-" {
        "--".to_string()
    } else {
        format!("${s}$")
    }
}

fn tex_plain(s: String) -> String {
    if s == "-" {
        "--".to_string()
    } else {
        s
    }
}

/// The whole `tables.tex` document (a fragment to `\input`; needs booktabs).
pub(crate) fn latex(name: &str, sections: &[Section]) -> String {
    let mut tex = String::new();
    let _ = writeln!(
        tex,
        "% weightbench report: {} (generated from results/{}/cells; do not edit).",
        name.replace(['\n', '\r'], " "),
        name.replace(['\n', '\r'], " ")
    );
    tex.push_str("% Requires \\usepackage{booktabs} in the preamble.\n\n");
    for s in sections {
        if s.ok.is_empty() {
            continue;
        }
        let cand = s.show_candidate();
        let seed = s.show_seed();
        let mut spec = String::from("ll");
        let mut head = vec!["Method".to_string(), "Params".to_string()];
        if cand {
            spec.push('l');
            head.push("Candidate".into());
        }
        if seed {
            spec.push('r');
            head.push("Seed".into());
        }
        spec.push_str("rrrr");
        head.extend([
            "Top-1 (\\%)".to_string(),
            "$\\Delta$ pp vs FP32".to_string(),
            "Ratio ($\\times$)".to_string(),
            "Artifact bytes".to_string(),
        ]);
        let _ = writeln!(tex, "\\begin{{table}}[htbp]");
        tex.push_str("\\centering\n");
        let mut caption = format!(
            "{} on {}: top-1 accuracy and compression",
            s.model, s.dataset
        );
        if let Some(b) = s.baseline_top1 {
            caption.push_str(&format!(" (FP32 top-1 {b:.2}%)"));
        }
        caption.push('.');
        let _ = writeln!(tex, "\\caption{{{}}}", latex_escape(&caption));
        let _ = writeln!(
            tex,
            "\\label{{tab:{}-{}}}",
            sanitize_name(&s.model),
            sanitize_name(&s.dataset)
        );
        let _ = writeln!(tex, "\\begin{{tabular}}{{{spec}}}");
        tex.push_str("\\toprule\n");
        let _ = writeln!(tex, "{} \\\\", head.join(" & "));
        tex.push_str("\\midrule\n");
        for r in &s.ok {
            let mut cells = vec![latex_escape(&r.method), tex_plain(latex_escape(&r.params))];
            if cand {
                cells.push(latex_escape(&r.candidate));
            }
            if seed {
                cells.push(tex_plain(
                    r.seed.map_or_else(|| "-".into(), |v| v.to_string()),
                ));
            }
            cells.push(tex_plain(fmt_top1(r.top1)));
            cells.push(tex_signed(r.delta_pp));
            cells.push(tex_plain(fmt_ratio(r.ratio)));
            cells.push(tex_plain(fmt_bytes(r.artifact_bytes)));
            let _ = writeln!(tex, "{} \\\\", cells.join(" & "));
        }
        tex.push_str("\\bottomrule\n\\end{tabular}\n\\end{table}\n");
        for r in &s.failed {
            let _ = writeln!(
                tex,
                "% failed: {}",
                failure_text(r).replace(['\n', '\r'], " ")
            );
        }
        tex.push('\n');
    }
    tex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_rendering() {
        assert_eq!(render_params(Some(r#"{"k":16}"#)), "k=16");
        assert_eq!(render_params(Some(r#"{"bits":4,"k":16}"#)), "bits=4, k=16");
        assert_eq!(render_params(Some("{}")), "-");
        assert_eq!(render_params(Some("  ")), "-");
        assert_eq!(render_params(Some("null")), "-");
        assert_eq!(render_params(None), "-");
        assert_eq!(
            render_params(Some(
                r#"{"init":"kmeans++","per_channel":true,"scale":0.5}"#
            )),
            "init=kmeans++, per_channel=true, scale=0.5"
        );
        assert_eq!(
            render_params(Some(r#"{"layers":[1,2],"opt":{"lr":0.1}}"#)),
            r#"layers=[1,2], opt={"lr":0.1}"#
        );
        // Not an object: shown as is.
        assert_eq!(render_params(Some("k16")), "k16");
        assert_eq!(render_params(Some("[1,2]")), "[1,2]");
    }

    #[test]
    fn latex_escaping() {
        assert_eq!(latex_escape("resnet_18"), "resnet\\_18");
        assert_eq!(latex_escape("50% & #1"), "50\\% \\& \\#1");
        assert_eq!(latex_escape("a$b{c}"), "a\\$b\\{c\\}");
        assert_eq!(latex_escape("x\\y"), "x\\textbackslash{}y");
        assert_eq!(latex_escape("~^"), "\\textasciitilde{}\\textasciicircum{}");
        assert_eq!(latex_escape("plain k=16"), "plain k=16");
        assert_eq!(latex_escape("a\nb"), "a b");
    }

    #[test]
    fn markdown_escaping_and_numbers() {
        assert_eq!(md_escape("a|b\nc"), "a\\|b c");
        assert_eq!(fmt_delta(Some(-0.001)), "+0.00");
        assert_eq!(fmt_delta(Some(-1.234)), "-1.23");
        assert_eq!(fmt_delta(Some(0.5)), "+0.50");
        assert_eq!(fmt_delta(None), "-");
        assert_eq!(fmt_ratio(Some(f64::NAN)), "-");
        assert_eq!(fmt_ratio(Some(15.996)), "16.00");
        assert_eq!(fmt_top1(Some(76.125)), "76.12");
    }

    #[test]
    fn names_are_sanitized() {
        assert_eq!(sanitize_name(".."), "_");
        assert_eq!(sanitize_name(""), "_");
    }

    fn row(method: &str, params: &str, cand: &str, seed: i64) -> Row {
        Row {
            method: method.into(),
            params: params.into(),
            candidate: cand.into(),
            seed: Some(seed),
            top1: Some(70.0),
            delta_pp: Some(-1.0),
            ratio: Some(8.0),
            artifact_bytes: Some(100),
            latency_b1: None,
            throughput: None,
            throughput_bf16: None,
            throughput_f16: None,
            timing_valid: None,
            timing_reasons: None,
            error: None,
        }
    }

    #[test]
    fn invalid_timings_are_marked_and_footnoted_not_hidden() {
        let mut ok = row("fp32", "-", "default", 0);
        ok.latency_b1 = Some((1.5, Some(1.4), Some(1.6)));
        ok.timing_valid = Some(true);
        let mut bad = row("kmeans", "k=16", "default", 0);
        bad.latency_b1 = Some((9.0, Some(2.0), Some(20.0)));
        bad.throughput = Some(100.0);
        bad.timing_valid = Some(false);
        bad.timing_reasons = Some("b1: cv 0.5 > 0.10".into());
        let s = Section {
            model: "m".into(),
            dataset: "d".into(),
            eval_splits: vec![],
            eval_images: vec![],
            baseline_top1: None,
            ok: vec![ok, bad],
            failed: vec![],
        };
        let md = markdown("x", 2, 0, 1, std::slice::from_ref(&s));
        assert!(md.contains("| 1.500 [1.400, 1.600] |"), "{md}");
        assert!(md.contains("9.000 [2.000, 20.000] ⚠1"), "{md}");
        assert!(md.contains("1. kmeans k=16: b1: cv 0.5 > 0.10"), "{md}");
    }

    #[test]
    fn optional_columns() {
        let mut s = Section {
            model: "m_1".into(),
            dataset: "d".into(),
            eval_splits: vec![],
            eval_images: vec![],
            baseline_top1: None,
            ok: vec![
                row("fp32", "-", "default", 0),
                row("kmeans", "k=16", "default", 0),
            ],
            failed: vec![],
        };
        assert!(!s.show_candidate());
        assert!(!s.show_seed());
        let md = markdown("x", 2, 0, 1, std::slice::from_ref(&s));
        assert!(md.contains("| method | params | top-1 % |"));
        assert!(md.contains("| kmeans | k=16 | 70.00 | -1.00 | 8.00× | 100 | - | - |"));
        s.ok[1].candidate = "best".into();
        s.ok[1].seed = Some(1);
        assert!(s.show_candidate());
        assert!(s.show_seed());
        let md = markdown("x", 2, 0, 1, std::slice::from_ref(&s));
        assert!(md.contains("| method | params | candidate | seed | top-1 % |"));
        let tex = latex("x", std::slice::from_ref(&s));
        assert!(tex.contains("\\caption{m\\_1 on d"));
        assert!(tex.contains("kmeans & k=16 & best & 1 & 70.00 & $-1.00$ & 8.00 & 100 \\\\"));
    }
}
