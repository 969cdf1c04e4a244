//! The timed pass, per execution path: separate from the accuracy pass, on a fixed
//! seeded sample of inputs, at batch 1 and a throughput batch.
//!
//! Rows whose artifacts run on the same path execute the same graph, so the path is
//! timed, once per (model, dataset, path, threads, batch), interleaved with the FP32
//! reference of the same model in the same process (`wb_measure::ab`), and every row
//! on that path carries the same numbers and the measurement's id (`timing_ref`).
//! Measurements are kept in `results/<exp>/paths/<id>.json` (raw per-call samples
//! included) and reused by later cells and runs; the FP32 reference is re-timed at the
//! start of every model group and every [`REFERENCE_EVERY`] timed rows, into
//! `paths/reference-checks.jsonl`, from which the report reads drift.

use crate::experiment::TimingSettings;
use crate::results::{ResultsDir, Row};
use anyhow::{anyhow, Context, Result};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use wb_measure::ab::{measure_ab, AbConfig, AbTiming, ReferenceCheck};
use wb_measure::energy::EnergyBackend;
use wb_report::paths::{PathEnergy, PathTiming, ReferenceLog};
use wb_torch::{Int8Model, NativeModel, TimedBatch, TimingInputs, TorchModel, INT8_NATIVE};

/// Timed rows between two re-timings of the FP32 reference.
pub const REFERENCE_EVERY: usize = 20;

/// The path every artifact runs on after decoding: the FP32 graph.
pub const F32_DENSE: &str = "f32-dense";
/// libtorch's native bfloat16 kernels (BF16-exact artifacts).
pub const BF16_NATIVE: &str = "bf16-native";
/// libtorch's native half kernels (FP16-exact artifacts).
pub const FP16_NATIVE: &str = "fp16-native";

/// The second path an artifact runs on, besides f32-dense.
pub enum SecondPath<'a> {
    /// BF16- or FP16-exact weights on libtorch's native kernels (installed here).
    Native(&'a mut NativeModel),
    /// An int8 artifact on the quantized kernels, installed and calibrated already.
    Int8(&'a Int8Model),
    /// The artifact qualifies for `path`, which cannot run here, and why.
    Unavailable {
        /// The path's name.
        path: &'static str,
        /// Why it cannot run.
        why: String,
    },
}

/// The path measurements of one (model, dataset) group, and when the reference was
/// last re-timed.
#[derive(Default)]
pub struct PathCache {
    known: HashMap<String, PathTiming>,
    rows_since_check: usize,
    started: bool,
}

/// What a path measurement needs to know about the run.
pub struct TimingRun<'a> {
    /// The experiment's timing settings.
    pub settings: &'a TimingSettings,
    /// The results folder.
    pub dir: &'a ResultsDir,
    /// Model name and dataset of the group.
    pub model: &'a str,
    /// Dataset of the timing inputs.
    pub dataset: &'a str,
    /// Intra-op threads, fixed for the run.
    pub threads: u64,
    /// This machine.
    pub host: &'a str,
    /// Energy backend chosen for the run.
    pub energy: EnergyBackend,
}

/// The interleaving derived from the experiment's settings: about `min_time_s` of each
/// path per batch size, in 20 rounds.
pub fn ab_config(settings: &TimingSettings) -> AbConfig {
    let rounds = 20;
    AbConfig {
        warmup_s: settings.min_time_s.clamp(0.01, 1.0),
        rounds,
        block_s: settings.min_time_s / rounds as f64,
        min_calls: settings.min_samples,
        min_rounds: 10,
        ..AbConfig::default()
    }
}

/// Widest ratio interval (high over low) of a valid path measurement: about ±10 %.
pub const MAX_RATIO_SPREAD: f64 = 1.2;

/// The experiment's own validity rules on top of the interleaving's: enough timed
/// calls, enough measured time per path, and a ratio interval narrow enough to say
/// something (a machine too noisy for ±10 % is flagged, not trusted).
fn check_minimums(settings: &TimingSettings, t: &mut AbTiming) {
    let spread = t.ratio.ci_high / t.ratio.ci_low;
    if spread.is_nan() || spread > MAX_RATIO_SPREAD {
        t.validity.invalidate(format!(
            "ratio interval [{:.3}, {:.3}] wider than ±10 %",
            t.ratio.ci_low, t.ratio.ci_high
        ));
    }
    let calls = t.candidate_calls_ms.len();
    if calls < settings.min_samples {
        t.validity
            .invalidate(format!("samples {calls} < {}", settings.min_samples));
    }
    let measured_s = t.candidate_calls_ms.iter().sum::<f64>() / 1e3;
    if measured_s < settings.min_time_s {
        t.validity.invalidate(format!(
            "min time not met ({measured_s:.2} s < {} s)",
            settings.min_time_s
        ));
    }
}

/// Times the row's paths (once each per group) and fills its timing columns.
///
/// `second` is the artifact's other path, when it has one: BF16- or FP16-exact weights
/// on the native kernels (the `*_bf16` or `*_f16` columns), an int8 artifact on the
/// quantized kernels (the `*_int8` columns), or the reason such a path could not run;
/// the main columns are the f32-dense path every row runs.
pub fn timed_pass(
    run: &TimingRun,
    cache: &mut PathCache,
    model: &TorchModel,
    second: Option<SecondPath<'_>>,
    decoded: &wb_core::WeightSet,
    inputs: &TimingInputs,
    r: &mut Row,
) -> Result<()> {
    let cfg = ab_config(run.settings);
    if !cache.started {
        reference_check(
            run,
            model,
            inputs,
            &format!("start of the {} group", run.model),
        )?;
        cache.started = true;
    }
    let f32t = path_timing(
        run,
        cache,
        F32_DENSE,
        inputs,
        |b| {
            let t = measure_ab(
                &cfg,
                || inputs.run_f32(model, b),
                || inputs.run_f32(model, b),
            )?;
            Ok(t)
        },
        || {
            energy_of(run, inputs, || {
                inputs.run_f32(model, TimedBatch::Throughput)
            })
        },
    )?;
    fill_f32(r, &f32t);
    if let Some(second) = second {
        time_second(run, cache, model, second, decoded, inputs, r);
    }

    cache.rows_since_check += 1;
    if cache.rows_since_check >= REFERENCE_EVERY {
        reference_check(
            run,
            model,
            inputs,
            &format!("after {REFERENCE_EVERY} more timed rows"),
        )?;
        cache.rows_since_check = 0;
    }
    Ok(())
}

/// Times the artifact's second path against FP32 and fills its columns; a path that
/// cannot run or fails is named in `timed_path` with the reason, never an error of
/// the row (the f32-dense timing stands).
fn time_second(
    run: &TimingRun,
    cache: &mut PathCache,
    model: &TorchModel,
    second: SecondPath<'_>,
    decoded: &wb_core::WeightSet,
    inputs: &TimingInputs,
    r: &mut Row,
) {
    let cfg = ab_config(run.settings);
    let (path, res) = match second {
        SecondPath::Unavailable { path, why } => {
            r.timed_path = Some(format!("{F32_DENSE} ({path} unavailable: {why})"));
            return;
        }
        SecondPath::Native(m) => {
            let p = m.precision();
            let res = m
                .install(decoded)
                .map_err(anyhow::Error::from)
                .and_then(|()| {
                    let time = |b| {
                        Ok(measure_ab(
                            &cfg,
                            || inputs.run_f32(model, b),
                            || inputs.run_native(m, b),
                        )?)
                    };
                    let energy =
                        || energy_of(run, inputs, || inputs.run_native(m, TimedBatch::Throughput));
                    path_timing(run, cache, p.path(), inputs, time, energy)
                });
            (p.path(), res)
        }
        SecondPath::Int8(m) => {
            let time = |b| {
                Ok(measure_ab(
                    &cfg,
                    || inputs.run_f32(model, b),
                    || inputs.run_int8(m, b),
                )?)
            };
            let energy = || energy_of(run, inputs, || inputs.run_int8(m, TimedBatch::Throughput));
            let res = path_timing(run, cache, INT8_NATIVE, inputs, time, energy);
            (INT8_NATIVE, res)
        }
    };
    match res {
        Ok(t) => fill_second(r, path, &t),
        Err(e) => r.timed_path = Some(format!("{F32_DENSE} ({path} failed: {e:#})")),
    }
}

/// The measurement of `path` in this group: known, on disk from an earlier cell or
/// run, or taken now (`ab` times one batch size) and published without replacing one
/// a concurrent worker published first.
fn path_timing(
    run: &TimingRun,
    cache: &mut PathCache,
    path: &str,
    inputs: &TimingInputs,
    mut ab: impl FnMut(TimedBatch) -> Result<AbTiming>,
    energy: impl FnOnce() -> Result<PathEnergy>,
) -> Result<PathTiming> {
    let batch = inputs.batch() as u64;
    let id = PathTiming::make_id(run.model, run.dataset, path, run.threads, batch);
    if let Some(t) = cache.known.get(&id) {
        return Ok(t.clone());
    }
    let file = wb_report::paths::paths_dir(&run.dir.root).join(format!("{id}.json"));
    if let Some(t) = read_path_timing(&file)? {
        cache.known.insert(id, t.clone());
        return Ok(t);
    }
    let mut b1 = ab(TimedBatch::One)?;
    let mut bn = ab(TimedBatch::Throughput)?;
    check_minimums(run.settings, &mut b1);
    check_minimums(run.settings, &mut bn);
    let t = PathTiming {
        id: id.clone(),
        model: run.model.to_string(),
        dataset: run.dataset.to_string(),
        path: path.to_string(),
        threads: run.threads,
        batch,
        host: run.host.to_string(),
        timestamp: wb_measure::env::rfc3339_utc(std::time::SystemTime::now()),
        energy: energy()?,
        native_extensions: native_extensions(path),
        b1,
        bn,
    };
    for (b, ab) in [(1, &t.b1), (batch, &t.bn)] {
        log_reference(
            run,
            b,
            ReferenceCheck::from_stats(
                format!("{path} measurement at {}", t.timestamp),
                &ab.reference,
            ),
        )?;
    }
    let t = publish(&file, t)?;
    cache.known.insert(id, t.clone());
    Ok(t)
}

/// The CPU extensions this machine has that the path's CPU kernels are built to use
/// (oneDNN dispatches to them at run time). On a CUDA device they are irrelevant; the
/// manifest names the device.
fn native_extensions(path: &str) -> Vec<String> {
    let wanted: &[&str] = match path {
        BF16_NATIVE => &["avx512_bf16", "amx_bf16"],
        FP16_NATIVE => &["avx512_fp16", "amx_fp16", "f16c"],
        INT8_NATIVE => &["avx2", "avx512_vnni", "avx_vnni", "amx_int8"],
        _ => &["avx2", "fma", "avx512f"],
    };
    wb_measure::env::cpu_extensions()
        .into_iter()
        .filter(|e| wanted.contains(&e.as_str()))
        .collect()
}

/// A path measurement on disk, if there is one; a corrupt one is an error naming the
/// file (delete it to time the path again).
fn read_path_timing(file: &Path) -> Result<Option<PathTiming>> {
    match std::fs::read_to_string(file) {
        Ok(text) => serde_json::from_str(&text).map(Some).with_context(|| {
            format!(
                "{} is not a path timing (delete it to time the path again)",
                file.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", file.display())),
    }
}

/// Writes `t` to `file` unless a concurrent worker got there first; returns the one
/// on disk.
fn publish(file: &Path, t: PathTiming) -> Result<PathTiming> {
    let dir = file.parent().expect("paths/ folder");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = wb_core::io::temp_sibling(file, false);
    let json = serde_json::to_vec(&t)?;
    std::fs::write(&tmp, json).with_context(|| format!("writing {}", tmp.display()))?;
    let linked = std::fs::hard_link(&tmp, file);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read_path_timing(file)?.ok_or_else(|| anyhow!("{} vanished", file.display()))
        }
        Err(e) => Err(e).with_context(|| format!("publishing {}", file.display())),
    }
}

/// Appends one reference check to the run's log (one short line with O_APPEND, so
/// concurrent workers do not interleave within a line).
fn log_reference(run: &TimingRun, batch: u64, check: ReferenceCheck) -> Result<()> {
    let path = wb_report::paths::reference_log(&run.dir.root);
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let line = serde_json::to_string(&ReferenceLog {
        model: run.model.to_string(),
        threads: run.threads,
        batch,
        host: run.host.to_string(),
        check,
    })? + "\n";
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .with_context(|| format!("appending to {}", path.display()))
}

/// Re-times the FP32 reference at batch 1 (about `min_time_s`) and logs it.
pub fn reference_check(
    run: &TimingRun,
    model: &TorchModel,
    inputs: &TimingInputs,
    label: &str,
) -> Result<()> {
    let cfg = wb_measure::timing::TimingConfig {
        min_time_s: run.settings.min_time_s,
        min_samples: run.settings.min_samples,
        max_time_s: (run.settings.min_time_s * 10.0).max(10.0),
        max_samples: 100_000,
        ..Default::default()
    };
    let t = wb_measure::timing::measure(&cfg, || inputs.run_f32(model, TimedBatch::One))?;
    log_reference(run, 1, ReferenceCheck::from_stats(label, &t.stats))
}

/// The main timing columns from the f32-dense measurement.
fn fill_f32(r: &mut Row, t: &PathTiming) {
    let (b1, bn) = (&t.b1.candidate, &t.bn.candidate);
    r.timed_path = Some(F32_DENSE.into());
    r.timing_ref = Some(t.id.clone());
    r.latency_ms_b1_median = Some(b1.median_ms);
    r.latency_ms_b1_ci_low = Some(b1.ci_low_ms);
    r.latency_ms_b1_ci_high = Some(b1.ci_high_ms);
    r.latency_ms_b1_p90 = Some(b1.p90_ms);
    r.latency_ms_b1_p99 = Some(b1.p99_ms);
    r.latency_ms_bn_median = Some(bn.median_ms);
    r.latency_ms_bn_ci_low = Some(bn.ci_low_ms);
    r.latency_ms_bn_ci_high = Some(bn.ci_high_ms);
    r.latency_ratio_b1 = Some(t.b1.ratio.ratio);
    r.latency_ratio_b1_ci_low = Some(t.b1.ratio.ci_low);
    r.latency_ratio_b1_ci_high = Some(t.b1.ratio.ci_high);
    r.latency_ratio_bn = Some(t.bn.ratio.ratio);
    r.latency_ratio_bn_ci_low = Some(t.bn.ratio.ci_low);
    r.latency_ratio_bn_ci_high = Some(t.bn.ratio.ci_high);
    r.throughput_batch = Some(t.batch);
    r.throughput_img_s = Some(t.throughput_img_s());
    r.timing_valid = Some(t.valid());
    r.timing_invalid_reasons = (!t.valid()).then(|| t.reasons().join("; "));
    let e = &t.energy;
    r.energy_source = e.source.clone();
    r.energy_j_per_img = e.j_per_img;
    r.energy_j_per_img_net = e.j_per_img_net;
    r.energy_dram_j_per_img_net = e.dram_j_per_img_net;
    r.energy_idle_w = e.idle_w;
    r.energy_window_s = e.window_s;
    r.energy_wraps = e.wraps;
}

/// The columns of a second path's measurement (`*_bf16`, `*_f16` or `*_int8`).
fn fill_second(r: &mut Row, path: &str, t: &PathTiming) {
    r.timed_path = Some(format!("{F32_DENSE}+{path}"));
    let (b1, bn, ratio) = (
        Some(t.b1.candidate.median_ms),
        Some(t.bn.candidate.median_ms),
        &t.bn.ratio,
    );
    let (id, img_s, valid) = (
        Some(t.id.clone()),
        Some(t.throughput_img_s()),
        Some(t.valid()),
    );
    match path {
        BF16_NATIVE => {
            r.timing_ref_bf16 = id;
            r.latency_ms_b1_median_bf16 = b1;
            r.latency_ms_bn_median_bf16 = bn;
            r.latency_ratio_bn_bf16 = Some(ratio.ratio);
            r.latency_ratio_bn_bf16_ci_low = Some(ratio.ci_low);
            r.latency_ratio_bn_bf16_ci_high = Some(ratio.ci_high);
            r.throughput_img_s_bf16 = img_s;
            r.timing_valid_bf16 = valid;
        }
        FP16_NATIVE => {
            r.timing_ref_f16 = id;
            r.latency_ms_b1_median_f16 = b1;
            r.latency_ms_bn_median_f16 = bn;
            r.latency_ratio_bn_f16 = Some(ratio.ratio);
            r.latency_ratio_bn_f16_ci_low = Some(ratio.ci_low);
            r.latency_ratio_bn_f16_ci_high = Some(ratio.ci_high);
            r.throughput_img_s_f16 = img_s;
            r.timing_valid_f16 = valid;
        }
        _ => {
            r.timing_ref_int8 = id;
            r.latency_ms_b1_median_int8 = b1;
            r.latency_ms_bn_median_int8 = bn;
            r.latency_ratio_bn_int8 = Some(ratio.ratio);
            r.latency_ratio_bn_int8_ci_low = Some(ratio.ci_low);
            r.latency_ratio_bn_int8_ci_high = Some(ratio.ci_high);
            r.throughput_img_s_int8 = img_s;
            r.timing_valid_int8 = valid;
        }
    }
    append_reasons(r, path, t);
}

/// Adds a native path's invalidity reasons to the row's.
fn append_reasons(r: &mut Row, path: &str, t: &PathTiming) {
    if t.valid() {
        return;
    }
    let extra = (t.reasons().iter())
        .map(|x| format!("{path} {x}"))
        .collect::<Vec<_>>()
        .join("; ");
    r.timing_invalid_reasons = Some(match r.timing_invalid_reasons.take() {
        Some(x) => format!("{x}; {extra}"),
        None => extra,
    });
}

/// RAPL energy of a path's throughput batch (`work` runs one) over a window of at least
/// one second, after an idle measurement; NULL with the reason where RAPL cannot be read
/// or energy is off in the experiment.
fn energy_of(
    run: &TimingRun,
    inputs: &TimingInputs,
    mut work: impl FnMut() -> wb_torch::Result<()>,
) -> Result<PathEnergy> {
    use wb_measure::energy::{
        measure_energy, probe_with, EnergyConfig, EnergyMeasureError, EnergySource,
    };
    if !run.settings.energy {
        return Ok(PathEnergy {
            source: "not measured: energy = false in the experiment".into(),
            ..PathEnergy::default()
        });
    }
    let (mut counter, label) = match probe_with(run.energy) {
        EnergySource::Available(c, label) => (c, label),
        EnergySource::Unavailable(reason) => {
            return Ok(PathEnergy {
                source: reason,
                ..PathEnergy::default()
            })
        }
    };
    let res = measure_energy(&mut counter, &EnergyConfig::default(), || {
        work()?;
        Ok::<usize, wb_torch::TorchError>(inputs.batch())
    });
    match res {
        Ok(m) => Ok(PathEnergy {
            source: label.into(),
            j_per_img: Some(m.package_j_per_img_gross),
            j_per_img_net: Some(m.package_j_per_img_net),
            dram_j_per_img_net: m.dram_j_per_img_net,
            idle_w: Some(m.package_idle_w),
            window_s: Some(m.window_s),
            wraps: Some(m.wraps),
        }),
        Err(EnergyMeasureError::Counter(e)) => Ok(PathEnergy {
            source: format!("unavailable: {e}"),
            ..PathEnergy::default()
        }),
        Err(EnergyMeasureError::Workload(e)) => Err(anyhow!(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interleaving_spends_about_min_time_per_path_and_batch() {
        let s = TimingSettings {
            min_time_s: 2.0,
            ..TimingSettings::default()
        };
        let c = ab_config(&s);
        assert!((c.block_s * c.rounds as f64 - 2.0).abs() < 1e-12);
        assert!(c.min_rounds <= c.rounds);
    }
}
