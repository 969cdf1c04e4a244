//! Timing per execution path: the record the runner writes once per (model, dataset,
//! path, threads, batch) in `results/<exp>/paths/`, the FP32 reference checks it logs
//! through a run, and the report section built from them.
//!
//! Every row whose artifact runs on the same path executes the same graph, so the
//! path — not the row — is what is timed: once, interleaved with the FP32 reference of
//! the same model in the same process ([`wb_measure::ab`]), and reported as a ratio with
//! a paired interval. Rows carry the numbers of their path and its id (`timing_ref`).

use crate::ReportError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use wb_measure::ab::{detect_drift, AbTiming, ReferenceCheck};

/// Relative change of the FP32 reference beyond which (with intervals apart) a run is
/// flagged as drifted.
pub const DRIFT_TOLERANCE: f64 = 0.05;

/// Noise band of the ratio verdicts (±2 %, as criterion's default noise threshold).
pub const RATIO_NOISE: f64 = 0.02;

/// Energy of a path's throughput batch (package, idle-subtracted), or why there is none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct PathEnergy {
    /// `rapl`, `rapl-energy`, or the `unavailable: …` reason.
    pub source: String,
    /// Gross package joules per image.
    pub j_per_img: Option<f64>,
    /// Net (idle-subtracted) package joules per image.
    pub j_per_img_net: Option<f64>,
    /// Net DRAM joules per image.
    pub dram_j_per_img_net: Option<f64>,
    /// Package idle power.
    pub idle_w: Option<f64>,
    /// Window length.
    pub window_s: Option<f64>,
    /// Counter wraps in the window.
    pub wraps: Option<u64>,
}

/// One execution path timed against FP32.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathTiming {
    /// The file stem and the rows' `timing_ref`.
    pub id: String,
    /// Model name.
    pub model: String,
    /// Dataset of the timing inputs.
    pub dataset: String,
    /// `f32-dense` (every artifact after decoding: the FP32 graph itself, so its ratio
    /// is the A/A noise floor) or `bf16-native`.
    pub path: String,
    /// Intra-op threads of the run.
    pub threads: u64,
    /// The throughput batch size.
    pub batch: u64,
    /// Machine the measurement was taken on.
    pub host: String,
    /// When (UTC, RFC 3339).
    pub timestamp: String,
    /// Batch 1: FP32 (A) against the path (B), interleaved.
    pub b1: AbTiming,
    /// The throughput batch, the same way.
    pub bn: AbTiming,
    /// Energy of the path's throughput batch (NULL with the reason where it could
    /// not be measured).
    pub energy: PathEnergy,
    /// The CPU's extensions that this path's kernels can use (e.g. `avx512_bf16`,
    /// `amx_bf16` for `bf16-native`); empty: none, the path runs on generic code
    /// (BF16 converted in software).
    #[serde(default)]
    pub native_extensions: Vec<String>,
}

impl PathTiming {
    /// The id of a path measurement.
    pub fn make_id(model: &str, dataset: &str, path: &str, threads: u64, batch: u64) -> String {
        format!("{model}__{dataset}__{path}__t{threads}__b{batch}")
    }

    /// Whether both batch sizes met the validity rules.
    pub fn valid(&self) -> bool {
        self.b1.validity.valid && self.bn.validity.valid
    }

    /// The invalidity reasons, each naming its batch.
    pub fn reasons(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .b1
            .validity
            .reasons
            .iter()
            .map(|r| format!("b1: {r}"))
            .collect();
        v.extend((self.bn.validity.reasons.iter()).map(|r| format!("b{}: {r}", self.batch)));
        v
    }

    /// Images per second of the path at the throughput batch (from the median call).
    pub fn throughput_img_s(&self) -> f64 {
        1e3 * self.batch as f64 / self.bn.candidate.median_ms
    }
}

/// One FP32 reference check, with the key it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceLog {
    /// Model name.
    pub model: String,
    /// Intra-op threads.
    pub threads: u64,
    /// Batch size timed (1 or the throughput batch).
    pub batch: u64,
    /// Machine.
    pub host: String,
    /// The check.
    pub check: ReferenceCheck,
}

/// The folder of path measurements of a results folder.
pub fn paths_dir(results_dir: &Path) -> PathBuf {
    results_dir.join("paths")
}

/// The reference log of a results folder (JSON lines, appended by every worker).
pub fn reference_log(results_dir: &Path) -> PathBuf {
    paths_dir(results_dir).join("reference-checks.jsonl")
}

/// Every path measurement of a results folder, by id; a file that does not parse is an
/// error naming it.
pub fn load(results_dir: &Path) -> Result<BTreeMap<String, PathTiming>, ReportError> {
    let dir = paths_dir(results_dir);
    let mut out = BTreeMap::new();
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(source) => return Err(ReportError::Io { path: dir, source }),
    };
    for entry in entries {
        let path = entry
            .map_err(|source| ReportError::Io {
                path: dir.clone(),
                source,
            })?
            .path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let text = fs::read_to_string(&path).map_err(|source| ReportError::Io {
            path: path.clone(),
            source,
        })?;
        let t: PathTiming = serde_json::from_str(&text).map_err(|e| ReportError::Invalid {
            path: path.clone(),
            why: format!("not a path timing: {e}"),
        })?;
        out.insert(t.id.clone(), t);
    }
    Ok(out)
}

/// The reference checks of a results folder; unparsable lines (a worker killed
/// mid-write) are skipped and counted.
pub fn load_reference_log(results_dir: &Path) -> Result<(Vec<ReferenceLog>, usize), ReportError> {
    let path = reference_log(results_dir);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(source) => return Err(ReportError::Io { path, source }),
    };
    let mut bad = 0;
    let logs = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| match serde_json::from_str(l) {
            Ok(x) => Some(x),
            Err(_) => {
                bad += 1;
                None
            }
        })
        .collect();
    Ok((logs, bad))
}

/// Drift notes, one per (model, threads, batch, host) with two or more checks.
pub fn drift_notes(logs: &[ReferenceLog]) -> Vec<(bool, String)> {
    let mut groups: BTreeMap<(String, u64, u64, String), Vec<ReferenceCheck>> = BTreeMap::new();
    for l in logs {
        groups
            .entry((l.model.clone(), l.threads, l.batch, l.host.clone()))
            .or_default()
            .push(l.check.clone());
    }
    groups
        .into_iter()
        .filter_map(|((model, threads, batch, host), checks)| {
            detect_drift(&checks, DRIFT_TOLERANCE).map(|d| {
                (
                    d.drifted,
                    format!(
                        "{model}, batch {batch}, {threads} thread(s) on {host}, {} checks: {}",
                        checks.len(),
                        d.note
                    ),
                )
            })
        })
        .collect()
}

fn ratio_cell(t: &AbTiming) -> String {
    format!(
        "{:.3} [{:.3}, {:.3}] {}",
        t.ratio.ratio,
        t.ratio.ci_low,
        t.ratio.ci_high,
        t.ratio.verdict(RATIO_NOISE)
    )
}

/// The report section: one line per model and path, then the drift notes.
pub fn markdown(
    timings: &BTreeMap<String, PathTiming>,
    logs: &[ReferenceLog],
    bad_lines: usize,
) -> String {
    if timings.is_empty() && logs.is_empty() {
        return String::new();
    }
    let mut md = String::from(
        "\n## Inference time per execution path\n\n\
         Every artifact that decodes to dense f32 weights runs the FP32 graph \
         (`f32-dense`): its rows share this one measurement, whose ratio is the A/A noise \
         floor. Each path is timed once, in interleaved blocks against the FP32 reference \
         of the same model in the same process; ratio = path time / FP32 time (geometric \
         mean over rounds, 95 % paired-bootstrap interval; \"same\" within ±2 %).\n\n\
         | model | dataset | path | CPU extensions used | threads | FP32 b1 ms | path b1 ms | b1 ratio | batch | FP32 bN ms | path bN ms | bN ratio | img/s | energy J/img (net) | valid |\n\
         |---|---|---|---|--:|--:|--:|---|--:|--:|--:|---|--:|---|---|\n",
    );
    for t in timings.values() {
        let energy = match t.energy.j_per_img_net {
            Some(j) => format!("{j:.4} ({})", t.energy.source),
            None if t.energy.source.is_empty() => "—".into(),
            None => format!("NULL: {}", t.energy.source),
        };
        let valid = if t.valid() {
            "yes".to_string()
        } else {
            format!("**no**: {}", t.reasons().join("; "))
        };
        md += &format!(
            "| {} | {} | {} | {} | {} | {:.3} | {:.3} | {} | {} | {:.3} | {:.3} | {} | {:.0} | {} | {} |\n",
            t.model,
            t.dataset,
            t.path,
            if t.native_extensions.is_empty() {
                "none".to_string()
            } else {
                t.native_extensions.join(", ")
            },
            t.threads,
            t.b1.reference.median_ms,
            t.b1.candidate.median_ms,
            ratio_cell(&t.b1),
            t.batch,
            t.bn.reference.median_ms,
            t.bn.candidate.median_ms,
            ratio_cell(&t.bn),
            t.throughput_img_s(),
            energy,
            valid
        );
    }
    let notes = drift_notes(logs);
    if !notes.is_empty() {
        md += "\n**FP32 reference through the run** (re-timed before each model group, in \
               every path measurement and every 20 timed rows):\n\n";
        for (drifted, n) in &notes {
            md += &format!("- {}{n}\n", if *drifted { "**DRIFT** " } else { "" });
        }
        if notes.iter().any(|(d, _)| *d) {
            md += "\nThe machine changed speed during this run: absolute times above are \
                   not comparable across the drifted checks; ratios, measured interleaved, \
                   are.\n";
        }
    }
    if bad_lines > 0 {
        md += &format!("\n{bad_lines} unreadable line(s) of the reference log were skipped.\n");
    }
    md
}

/// The artifact's size and load cost beside FP32's, one line per artifact (rows with a
/// measured load), and which execution path it runs on.
pub fn load_table(ok_sorted: &polars::prelude::DataFrame) -> polars::prelude::PolarsResult<String> {
    use crate::load::{candidate_label, f64_col, i64_col, str_col};
    use crate::render::render_params;
    let (model, dataset, method) = (
        str_col(ok_sorted, "model")?,
        str_col(ok_sorted, "dataset")?,
        str_col(ok_sorted, "method")?,
    );
    let (label, pj, cand, coding, path) = (
        str_col(ok_sorted, "params_label")?,
        str_col(ok_sorted, "params_json")?,
        str_col(ok_sorted, "candidate")?,
        str_col(ok_sorted, "index_coding")?,
        str_col(ok_sorted, "timed_path")?,
    );
    let (bytes, fp32_bytes) = (
        i64_col(ok_sorted, "artifact_bytes")?,
        i64_col(ok_sorted, "model_bytes_fp32")?,
    );
    let (decode, load, load_fp32) = (
        f64_col(ok_sorted, "decode_ms")?,
        f64_col(ok_sorted, "load_ms")?,
        f64_col(ok_sorted, "load_ms_fp32")?,
    );
    let (rss, rss_fp32) = (
        i64_col(ok_sorted, "load_peak_rss_bytes")?,
        i64_col(ok_sorted, "load_peak_rss_bytes_fp32")?,
    );
    let mib = |b: Option<i64>| b.map_or("-".into(), |b| format!("{:.2}", b as f64 / 1048576.0));
    let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
    let mut lines = Vec::new();
    for i in 0..ok_sorted.height() {
        let Some(l) = load[i] else { continue };
        let params = render_params(
            label[i]
                .as_deref()
                .filter(|s| !s.is_empty())
                .or(pj[i].as_deref()),
        );
        let runs = match path[i].as_deref() {
            Some(p) if p.contains("-native") && !p.contains('(') => {
                format!(
                    "f32-dense (FP32 speed) + {}",
                    p.trim_start_matches("f32-dense+")
                )
            }
            Some(_) => "f32-dense (FP32 speed)".to_string(),
            None => "not timed".to_string(),
        };
        lines.push(format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} ({:.2}×) | {} | {} | {} |",
            model[i].as_deref().unwrap_or("?"),
            dataset[i].as_deref().unwrap_or("?"),
            method[i].as_deref().unwrap_or("?"),
            params,
            candidate_label(cand[i].as_deref(), coding[i].as_deref()),
            mib(bytes[i]),
            mib(fp32_bytes[i]),
            ms(decode[i]),
            ms(Some(l)),
            load_fp32[i].map_or(f64::NAN, |f| l / f),
            mib(rss[i]),
            mib(rss_fp32[i]),
            runs
        ));
    }
    if lines.is_empty() {
        return Ok(String::new());
    }
    Ok(format!(
        "\n## Size and load cost per artifact\n\n\
         Load = read the container file + decode + install the weights into the libtorch \
         model (median of 3); its ratio is to loading the FP32 weights' dense container the \
         same way. Peak RSS = rise of the resident set's high-water mark during the load \
         (fresh window). Every artifact decodes to dense f32 weights and then runs the FP32 \
         graph at FP32 speed (`f32-dense`); BF16-exact (FP16-exact) artifacts are also \
         timed on libtorch's native BF16 (FP16) kernels, and int8 artifacts on its quantized \
         int8 kernels (next section). What compression saves on `f32-dense` is disk and \
         load, not inference time.\n\n\
         | model | dataset | method | params | candidate | file MiB | FP32 file MiB | decode ms | load ms (× FP32) | peak RSS at load MiB | FP32 peak RSS MiB | runs on |\n\
         |---|---|---|---|---|--:|--:|--:|--:|--:|--:|---|\n{}\n",
        lines.join("\n")
    ))
}

/// The int8 path's accuracy beside the artifact's accuracy of record, one line per
/// int8 artifact that ran on it.
pub fn int8_table(ok_sorted: &polars::prelude::DataFrame) -> polars::prelude::PolarsResult<String> {
    use crate::load::{candidate_label, f64_col, str_col};
    let (model, dataset, method) = (
        str_col(ok_sorted, "model")?,
        str_col(ok_sorted, "dataset")?,
        str_col(ok_sorted, "method")?,
    );
    let (cand, coding, calib) = (
        str_col(ok_sorted, "candidate")?,
        str_col(ok_sorted, "index_coding")?,
        str_col(ok_sorted, "int8_calibration")?,
    );
    let (top1, base, int8, ratio) = (
        f64_col(ok_sorted, "top1")?,
        f64_col(ok_sorted, "top1_baseline")?,
        f64_col(ok_sorted, "top1_int8")?,
        f64_col(ok_sorted, "latency_ratio_bn_int8")?,
    );
    let pct = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
    let mut lines = Vec::new();
    for i in 0..ok_sorted.height() {
        let Some(q) = int8[i] else { continue };
        lines.push(format!(
            "| {} | {} | {} | {} | {} | {} | {} | {:+.2} | {} | {} |",
            model[i].as_deref().unwrap_or("?"),
            dataset[i].as_deref().unwrap_or("?"),
            method[i].as_deref().unwrap_or("?"),
            candidate_label(cand[i].as_deref(), coding[i].as_deref()),
            pct(base[i]),
            pct(top1[i]),
            pct(Some(q)),
            base[i].map_or(f64::NAN, |b| q - b),
            ratio[i].map_or("-".into(), |r| format!("{r:.3}")),
            calib[i].as_deref().unwrap_or("-"),
        ));
    }
    if lines.is_empty() {
        return Ok(String::new());
    }
    Ok(format!(
        "\n## Accuracy on the int8 path\n\n\
         int8 artifacts also run on libtorch's quantized CPU kernels (`int8-native`): the \
         artifact's own int8 weight codes (BatchNorm folded into the scales), activations \
         in uint8 with ranges calibrated on training images, never the reported ones. Its \
         top-1 differs from the artifact's top-1 of record (decoded weights on the FP32 \
         graph) because the activations are quantized too. Time ratio: the int8 path over \
         FP32 at the throughput batch (the section above has its interval).\n\n\
         | model | dataset | method | candidate | FP32 top-1 % | top-1 % (f32-dense) | top-1 % (int8-native) | Δ int8 vs FP32 pp | time ratio | calibration |\n\
         |---|---|---|---|--:|--:|--:|--:|--:|---|\n{}\n",
        lines.join("\n")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wb_measure::ab::{summarise, AbConfig, AbRound};

    fn ab(reference: f64, candidate: f64) -> AbTiming {
        let rounds = (0..12)
            .map(|i| AbRound {
                reference_ms: reference * (1.0 + 0.001 * i as f64),
                candidate_ms: candidate * (1.0 + 0.001 * i as f64),
            })
            .collect();
        summarise(&AbConfig::default(), 4, rounds)
    }

    fn timing(path: &str, ratio: f64) -> PathTiming {
        PathTiming {
            id: PathTiming::make_id("resnet20", "cifar10-jpeg75", path, 2, 64),
            model: "resnet20".into(),
            dataset: "cifar10-jpeg75".into(),
            path: path.into(),
            threads: 2,
            batch: 64,
            host: "h".into(),
            timestamp: "t".into(),
            b1: ab(2.0, 2.0 * ratio),
            bn: ab(40.0, 40.0 * ratio),
            energy: PathEnergy {
                source: "unavailable: no powercap".into(),
                ..PathEnergy::default()
            },
            native_extensions: vec![],
        }
    }

    fn log(model: &str, median: f64) -> ReferenceLog {
        ReferenceLog {
            model: model.into(),
            threads: 2,
            batch: 1,
            host: "h".into(),
            check: ReferenceCheck {
                label: format!("at {median}"),
                median_ms: median,
                ci_low_ms: median * 0.99,
                ci_high_ms: median * 1.01,
            },
        }
    }

    #[test]
    fn one_line_per_path_with_ratio_and_verdict() {
        let mut m = BTreeMap::new();
        for t in [timing("f32-dense", 1.0), timing("bf16-native", 0.5)] {
            m.insert(t.id.clone(), t);
        }
        let md = markdown(&m, &[], 0);
        let lines: Vec<&str> = md.lines().filter(|l| l.starts_with("| resnet20")).collect();
        assert_eq!(lines.len(), 2, "{md}");
        assert!(lines
            .iter()
            .any(|l| l.contains("f32-dense") && l.contains("1.000 [1.000, 1.000] same")));
        assert!(lines
            .iter()
            .any(|l| l.contains("bf16-native") && l.contains("faster")));
        assert!(md.contains("NULL: unavailable: no powercap"));
    }

    #[test]
    fn drift_is_noted_per_model_and_flagged() {
        let logs = [
            log("resnet20", 2.0),
            log("resnet20", 2.5),
            log("resnet56", 6.0),
            log("resnet56", 6.01),
        ];
        let notes = drift_notes(&logs);
        assert_eq!(notes.len(), 2);
        assert!(
            notes[0].0 && notes[0].1.starts_with("resnet20"),
            "{notes:?}"
        );
        assert!(!notes[1].0);
        let md = markdown(&BTreeMap::new(), &logs, 1);
        assert!(
            md.contains("**DRIFT** resnet20") && md.contains("changed speed"),
            "{md}"
        );
        assert!(md.contains("1 unreadable line"));
    }

    #[test]
    fn path_files_round_trip_and_a_corrupt_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths_dir(dir.path());
        fs::create_dir_all(&p).unwrap();
        let t = timing("f32-dense", 1.0);
        fs::write(
            p.join(format!("{}.json", t.id)),
            serde_json::to_string(&t).unwrap(),
        )
        .unwrap();
        let loaded = load(dir.path()).unwrap();
        // serde_json parses floats to within one ulp; the record is the same.
        let back = &loaded[&t.id];
        assert_eq!(
            (&back.path, back.batch, back.b1.rounds.len()),
            (&t.path, t.batch, 12)
        );
        assert!((back.bn.candidate.median_ms - t.bn.candidate.median_ms).abs() < 1e-9);
        fs::write(p.join("broken.json"), "{").unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("broken.json"), "{e}");
        fs::write(
            reference_log(dir.path()),
            format!(
                "{}\n{{\"trunc\n",
                serde_json::to_string(&log("resnet20", 2.0)).unwrap()
            ),
        )
        .unwrap();
        let (logs, bad) = load_reference_log(dir.path()).unwrap();
        assert_eq!((logs.len(), bad), (1, 1));
    }
}
