//! The timed pass: separate from the accuracy pass, on a fixed seeded sample of inputs,
//! batch size 1 and a throughput batch, through `wb-measure`'s statistics. Every raw
//! sample is kept in `results/<exp>/samples/<cell>.parquet`.

use crate::experiment::TimingSettings;
use crate::results::{write_parquet_atomic, ResultsDir, Row};
use anyhow::{anyhow, Result};
use polars::prelude::*;
use tch::{Device, Kind, Tensor};
use wb_torch::{Bf16Model, Images, TorchModel};

/// Seed of the timing sample (fixed so every cell times the same images).
const TIMING_SEED: u64 = 0x71_3E;

/// The inputs of the timed pass, prepared once per (model, dataset).
pub struct TimingInputs {
    b1: Tensor,
    bn: Tensor,
    b1_bf16: Tensor,
    bn_bf16: Tensor,
    batch: usize,
}

impl TimingInputs {
    /// A seeded class-balanced sample of `batch` images from `images` (the first of them
    /// is the batch-1 input), prepared for `model` on its device.
    pub fn new(model: &TorchModel, images: &Images, batch: usize) -> Result<Self> {
        let batch = batch.clamp(1, images.len().saturating_sub(1).max(1));
        let idx = wb_torch::data::balanced_subset(&images.labels, batch.max(1), TIMING_SEED)
            .map_err(|e| anyhow!("timing sample: {e}"))?;
        let sample = images.subset(&idx);
        let x = model.prepare(&sample)?.to_device(model.device());
        let xb = x.to_kind(Kind::BFloat16);
        Ok(Self {
            b1: x.narrow(0, 0, 1).contiguous(),
            bn: x,
            b1_bf16: xb.narrow(0, 0, 1).contiguous(),
            bn_bf16: xb,
            batch,
        })
    }
}

fn sync(d: Device) {
    if let Device::Cuda(i) = d {
        tch::Cuda::synchronize(i as i64);
    }
}

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

fn time_path<E>(
    cfg: &wb_measure::timing::TimingConfig,
    dev: Device,
    forward: impl Fn(&Tensor) -> std::result::Result<Tensor, E>,
    b1: &Tensor,
    bn: &Tensor,
) -> std::result::Result<PathTiming, E> {
    let run = |x: &Tensor| -> std::result::Result<(), E> {
        let y = forward(x)?;
        sync(dev);
        drop(y);
        Ok(())
    };
    let t1 = wb_measure::timing::measure(cfg, || run(b1))?;
    let tn = wb_measure::timing::measure(cfg, || run(bn))?;
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
    let dev = model.device();
    let f32t = time_path(&cfg, dev, |x| model.forward(x), &inputs.b1, &inputs.bn)?;
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
    r.throughput_batch = Some(inputs.batch as u64);
    r.throughput_img_s = Some(wb_measure::timing::throughput(inputs.batch, &tn.stats));
    let valid = f32t.valid();
    r.timing_valid = Some(valid);
    r.timing_invalid_reasons = (!valid).then(|| f32t.reasons(inputs.batch, "").join("; "));

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
                    time_path(
                        &cfg,
                        m.device(),
                        |x| m.forward(x),
                        &inputs.b1_bf16,
                        &inputs.bn_bf16,
                    )
                    .map_err(anyhow::Error::from)
                });
            match res {
                Ok(t) => {
                    r.timed_path = Some("f32-dense+bf16-native".into());
                    r.latency_ms_b1_median_bf16 = Some(t.t1.stats.median_ms);
                    r.latency_ms_bn_median_bf16 = Some(t.tn.stats.median_ms);
                    r.throughput_img_s_bf16 =
                        Some(wb_measure::timing::throughput(inputs.batch, &t.tn.stats));
                    r.timing_valid_bf16 = Some(t.valid());
                    if !t.valid() {
                        let extra = t.reasons(inputs.batch, "bf16-native").join("; ");
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
    let mut batch: Vec<u32> = Vec::new();
    let mut index: Vec<u32> = Vec::new();
    let mut ms: Vec<f64> = Vec::new();
    let mut push = |p: &str, b: usize, m: &wb_measure::timing::Timing| {
        for (i, x) in m.samples_ms.iter().enumerate() {
            path.push(p.to_string());
            batch.push(b as u32);
            index.push(i as u32);
            ms.push(*x);
        }
    };
    push("f32-dense", 1, t1);
    push("f32-dense", inputs.batch, tn);
    if let Some(t) = &bf16t {
        push("bf16-native", 1, &t.t1);
        push("bf16-native", inputs.batch, &t.tn);
    }
    let n = ms.len();
    let mut df = DataFrame::new(
        n,
        vec![
            Column::new("cell_id".into(), vec![cell_id.to_string(); n]),
            Column::new("candidate".into(), vec![r.candidate.clone(); n]),
            Column::new("timed_path".into(), path),
            Column::new("batch".into(), batch),
            Column::new("sample".into(), index),
            Column::new("ms".into(), ms),
        ],
    )?;
    let path = dir.root.join("samples").join(format!(
        "{cell_id}__{}.parquet",
        wb_report::sanitize_name(&r.candidate)
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
    let dev = model.device();
    let res = measure_energy(&mut counter, &EnergyConfig::default(), || {
        let y = model.forward(&inputs.bn)?;
        sync(dev);
        drop(y);
        Ok::<usize, wb_torch::TorchError>(inputs.batch)
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
