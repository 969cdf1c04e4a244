//! The timed pass: separate from the accuracy pass, on a fixed seeded sample of inputs,
//! batch size 1 and a throughput batch, through `wb-measure`'s statistics. Every raw
//! sample is kept in `results/<exp>/samples/<cell>.parquet`.

use crate::experiment::TimingSettings;
use crate::results::{write_parquet_atomic, ResultsDir, Row};
use anyhow::{anyhow, Result};
use polars::prelude::*;
use tch::{Device, Tensor};
use wb_torch::{Images, TorchModel};

/// Seed of the timing sample (fixed so every cell times the same images).
const TIMING_SEED: u64 = 0x71_3E;

/// The inputs of the timed pass, prepared once per (model, dataset).
pub struct TimingInputs {
    b1: Tensor,
    bn: Tensor,
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
        Ok(Self {
            b1: x.narrow(0, 0, 1).contiguous(),
            bn: x,
            batch,
        })
    }
}

fn sync(d: Device) {
    if let Device::Cuda(i) = d {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Times the weights currently installed in `model` and fills the row's timing columns.
pub fn timed_pass(
    model: &TorchModel,
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
    let run = |x: &Tensor| -> Result<(), wb_torch::TorchError> {
        let y = model.forward(x)?;
        sync(dev);
        drop(y);
        Ok(())
    };
    let t1 = wb_measure::timing::measure(&cfg, || run(&inputs.b1))?;
    let tn = wb_measure::timing::measure(&cfg, || run(&inputs.bn))?;
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
    // Reasons say which batch size they concern.
    let mut reasons: Vec<String> = t1
        .validity
        .reasons
        .iter()
        .map(|x| format!("b1: {x}"))
        .collect();
    reasons.extend(
        tn.validity
            .reasons
            .iter()
            .map(|x| format!("b{}: {x}", inputs.batch)),
    );
    let valid = t1.validity.valid && tn.validity.valid;
    r.timing_valid = Some(valid);
    r.timing_invalid_reasons = (!valid).then(|| reasons.join("; "));

    if settings.energy {
        energy_pass(model, inputs, r)?;
    }

    // Raw samples, one row per timed call.
    let n1 = t1.samples_ms.len();
    let nn = tn.samples_ms.len();
    let mut batch: Vec<u32> = vec![1; n1];
    batch.extend(std::iter::repeat_n(inputs.batch as u32, nn));
    let mut index: Vec<u32> = (0..n1 as u32).collect();
    index.extend(0..nn as u32);
    let mut ms = t1.samples_ms.clone();
    ms.extend_from_slice(&tn.samples_ms);
    let n = n1 + nn;
    let mut df = DataFrame::new(
        n,
        vec![
            Column::new("cell_id".into(), vec![cell_id.to_string(); n]),
            Column::new("candidate".into(), vec![r.candidate.clone(); n]),
            Column::new("timed_path".into(), vec!["f32-dense".to_string(); n]),
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
