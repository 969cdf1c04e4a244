//! The timed pass: separate from the accuracy pass, on a fixed seeded sample of inputs,
//! batch size 1 and a throughput batch, through `wb-measure`'s statistics. Every raw
//! sample is kept in `results/<exp>/samples/<cell>.parquet`.

use crate::experiment::TimingSettings;
use crate::results::{write_parquet_atomic, ResultsDir, Row};
use anyhow::{anyhow, Result};
use polars::prelude::*;
use wb_torch::{Bf16Model, TimedBatch, TimingInputs, TorchModel};

/// Timings of one path at batch 1 and the throughput batch.
struct PathTiming {
    t1: wb_measure::timing::Timing,
    tn: wb_measure::timing::Timing,
}

impl PathTiming {
    fn valid(&self) -> bool {
        self.t1.validity.valid && self.tn.validity.valid
    }
    /// Invalidity reasons, each naming its batch size (and path, if given).
    fn reasons(&self, batch: usize, path: &str) -> Vec<String> {
        let p = if path.is_empty() {
            String::new()
        } else {
            format!("{path} ")
        };
        let mut v: Vec<String> = (self.t1.validity.reasons.iter())
            .map(|x| format!("{p}b1: {x}"))
            .collect();
        v.extend((self.tn.validity.reasons.iter()).map(|x| format!("{p}b{batch}: {x}")));
        v
    }
}

/// Times `run` (one finished forward pass) at batch 1, then at the throughput batch.
fn time_path<E>(
    cfg: &wb_measure::timing::TimingConfig,
    run: impl Fn(TimedBatch) -> std::result::Result<(), E>,
) -> std::result::Result<PathTiming, E> {
    let t1 = wb_measure::timing::measure(cfg, || run(TimedBatch::One))?;
    let tn = wb_measure::timing::measure(cfg, || run(TimedBatch::Throughput))?;
    Ok(PathTiming { t1, tn })
}

/// Times the weights currently installed in `model` and fills the row's timing columns.
///
/// `bf16` is given for an artifact whose compressible weights are all BF16 values: the
/// artifact is then also timed on libtorch's native BF16 kernels (its own columns,
/// `*_bf16`); the main columns always time the f32 path that every row shares.
#[allow(clippy::too_many_arguments)]
pub fn timed_pass(
    model: &TorchModel,
    bf16: Option<std::result::Result<&mut Bf16Model, String>>,
    decoded: &wb_core::WeightSet,
    inputs: &TimingInputs,
    settings: &TimingSettings,
    r: &mut Row,
    dir: &ResultsDir,
    cell_id: &str,
) -> Result<()> {
    let cfg = wb_measure::timing::TimingConfig {
        min_time_s: settings.min_time_s,
        min_samples: settings.min_samples,
        max_time_s: (settings.min_time_s * 10.0).max(10.0),
        max_samples: 100_000,
        ..Default::default()
    };
    let batch = inputs.batch();
    let f32t = time_path(&cfg, |b| inputs.run_f32(model, b))?;
    let (t1, tn) = (&f32t.t1, &f32t.tn);
    r.timed_path = Some("f32-dense".into());
    r.latency_ms_b1_median = Some(t1.stats.median_ms);
    r.latency_ms_b1_ci_low = Some(t1.stats.ci_low_ms);
    r.latency_ms_b1_ci_high = Some(t1.stats.ci_high_ms);
    r.latency_ms_b1_p90 = Some(t1.stats.p90_ms);
    r.latency_ms_b1_p99 = Some(t1.stats.p99_ms);
    r.latency_ms_bn_median = Some(tn.stats.median_ms);
    r.latency_ms_bn_ci_low = Some(tn.stats.ci_low_ms);
    r.latency_ms_bn_ci_high = Some(tn.stats.ci_high_ms);
    r.throughput_batch = Some(batch as u64);
    r.throughput_img_s = Some(wb_measure::timing::throughput(batch, &tn.stats));
    let valid = f32t.valid();
    r.timing_valid = Some(valid);
    r.timing_invalid_reasons = (!valid).then(|| f32t.reasons(batch, "").join("; "));

    // The native BF16 path, where the artifact allows it and libtorch runs it.
    let mut bf16t = None;
    match bf16 {
        None => {}
        Some(Err(why)) => {
            r.timed_path = Some(format!("f32-dense (bf16-native unavailable: {why})"));
        }
        Some(Ok(m)) => {
            let res = m
                .install(decoded)
                .map_err(anyhow::Error::from)
                .and_then(|()| {
                    time_path(&cfg, |b| inputs.run_bf16(m, b)).map_err(anyhow::Error::from)
                });
            match res {
                Ok(t) => {
                    r.timed_path = Some("f32-dense+bf16-native".into());
                    r.latency_ms_b1_median_bf16 = Some(t.t1.stats.median_ms);
                    r.latency_ms_bn_median_bf16 = Some(t.tn.stats.median_ms);
                    r.throughput_img_s_bf16 =
                        Some(wb_measure::timing::throughput(batch, &t.tn.stats));
                    r.timing_valid_bf16 = Some(t.valid());
                    if !t.valid() {
                        let extra = t.reasons(batch, "bf16-native").join("; ");
                        r.timing_invalid_reasons = Some(match r.timing_invalid_reasons.take() {
                            Some(x) => format!("{x}; {extra}"),
                            None => extra,
                        });
                    }
                    bf16t = Some(t);
                }
                Err(e) => {
                    r.timed_path = Some(format!("f32-dense (bf16-native failed: {e:#})"));
                }
            }
        }
    }

    if settings.energy {
        energy_pass(model, inputs, r)?;
    }

    // Raw samples, one row per timed call.
    let mut path: Vec<String> = Vec::new();
    let mut batches: Vec<u32> = Vec::new();
    let mut index: Vec<u32> = Vec::new();
    let mut ms: Vec<f64> = Vec::new();
    let mut push = |p: &str, b: usize, m: &wb_measure::timing::Timing| {
        for (i, x) in m.samples_ms.iter().enumerate() {
            path.push(p.to_string());
            batches.push(b as u32);
            index.push(i as u32);
            ms.push(*x);
        }
    };
    push("f32-dense", 1, t1);
    push("f32-dense", batch, tn);
    if let Some(t) = &bf16t {
        push("bf16-native", 1, &t.t1);
        push("bf16-native", batch, &t.tn);
    }
    let n = ms.len();
    let mut df = DataFrame::new(
        n,
        vec![
            Column::new("cell_id".into(), vec![cell_id.to_string(); n]),
            Column::new("candidate".into(), vec![r.candidate.clone(); n]),
            Column::new("timed_path".into(), path),
            Column::new("batch".into(), batches),
            Column::new("sample".into(), index),
            Column::new("ms".into(), ms),
        ],
    )?;
    let path = dir.root.join("samples").join(format!(
        "{cell_id}__{}.parquet",
        wb_core::io::sanitize_name(&r.candidate)
    ));
    write_parquet_atomic(&mut df, &path)?;
    Ok(())
}

/// RAPL energy of the throughput batch over a window of at least one second, after an
/// idle measurement; NULL with the reason where RAPL cannot be read.
fn energy_pass(model: &TorchModel, inputs: &TimingInputs, r: &mut Row) -> Result<()> {
    use wb_measure::energy::{
        measure_energy, probe, EnergyConfig, EnergyMeasureError, EnergySource,
    };
    let mut counter = match probe() {
        EnergySource::Available(c) => c,
        EnergySource::Unavailable(reason) => {
            r.energy_source = reason;
            return Ok(());
        }
    };
    let res = measure_energy(&mut counter, &EnergyConfig::default(), || {
        inputs.run_f32(model, TimedBatch::Throughput)?;
        Ok::<usize, wb_torch::TorchError>(inputs.batch())
    });
    match res {
        Ok(m) => {
            r.energy_source = "rapl".into();
            r.energy_j_per_img = Some(m.package_j_per_img_gross);
            r.energy_j_per_img_net = Some(m.package_j_per_img_net);
            r.energy_dram_j_per_img_net = m.dram_j_per_img_net;
            r.energy_idle_w = Some(m.package_idle_w);
            r.energy_window_s = Some(m.window_s);
            r.energy_wraps = Some(m.wraps);
        }
        Err(EnergyMeasureError::Counter(e)) => {
            r.energy_source = format!("unavailable: {e}");
        }
        Err(EnergyMeasureError::Workload(e)) => return Err(anyhow!(e)),
    }
    Ok(())
}
