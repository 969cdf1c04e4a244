//! The result-row schema, defined once: the [`Row`] the runner fills, the columns and
//! Parquet types it writes ([`to_frame`]) and the types the report reads back
//! ([`column_types`]) all come from the one field list below. Units are in the names;
//! `None` is NULL, with the reason in a companion column where one exists (e.g.
//! `energy_source`). A new column is one line here.

use polars::prelude::*;

/// Whether a row's cell ran to the end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Status {
    /// Every measurement of the row was taken.
    #[default]
    Ok,
    /// The cell or candidate failed; `error` says why.
    Failed,
}

impl Status {
    /// The value in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Failed => "failed",
        }
    }
}

/// How a field is stored in a column, and the type the report reads it as.
trait ColumnValue {
    /// What goes into the Parquet column.
    type Stored;
    /// The type the report casts the column to (integers read back as `Int64`).
    fn read_type() -> DataType;
    /// The stored value.
    fn stored(&self) -> Self::Stored;
}

macro_rules! column_value {
    ($($t:ty => $dtype:expr),* $(,)?) => {$(
        impl ColumnValue for $t {
            type Stored = $t;
            fn read_type() -> DataType {
                $dtype
            }
            fn stored(&self) -> $t {
                self.clone()
            }
        }
    )*};
}
column_value!(
    String => DataType::String,
    Option<String> => DataType::String,
    f64 => DataType::Float64,
    Option<f64> => DataType::Float64,
    u64 => DataType::Int64,
    Option<u64> => DataType::Int64,
    Option<bool> => DataType::Boolean,
);

impl ColumnValue for Status {
    type Stored = String;
    fn read_type() -> DataType {
        DataType::String
    }
    fn stored(&self) -> String {
        self.as_str().to_string()
    }
}

macro_rules! schema {
    ($( $(#[$meta:meta])* $name:ident : $ty:ty ),* $(,)?) => {
        /// One row of the results table: one (experiment, model, dataset, method,
        /// params, seed, candidate).
        #[derive(Debug, Clone, Default)]
        #[allow(missing_docs)]
        pub struct Row {
            $( $(#[$meta])* pub $name: $ty, )*
        }

        /// Every column of the schema with the type the report reads it as, in order.
        pub fn column_types() -> Vec<(&'static str, DataType)> {
            vec![$( (stringify!($name), <$ty as ColumnValue>::read_type()) ),*]
        }

        /// The rows as a frame with the schema's columns, in order.
        ///
        /// # Errors
        /// Polars refuses the frame (never for rows built from this type).
        pub fn to_frame(rows: &[Row]) -> PolarsResult<DataFrame> {
            let cols = vec![$(
                Column::new(
                    stringify!($name).into(),
                    rows.iter().map(|r| ColumnValue::stored(&r.$name)).collect::<Vec<_>>(),
                )
            ),*];
            DataFrame::new(rows.len(), cols)
        }
    };
}

schema! {
    experiment: String,
    cell_id: String,
    model: String,
    dataset: String,
    eval_split: String,
    eval_images: u64,
    method: String,
    params_json: String,
    /// The parameters set in the experiment file (defaults left out), for labels.
    params_label: String,
    seed: u64,
    candidate: String,
    /// Whether the candidate is the method's own choice on its search data (one per
    /// cell at most; a single-candidate method's candidate is its choice). NULL in rows
    /// written before the column existed.
    chosen: Option<bool>,
    /// The dataset the cell's search subset was drawn from (the reported one unless
    /// `[search] dataset` names another, e.g. training images: then labelled so).
    search_dataset: Option<String>,
    /// Size of the search subset.
    search_images: Option<u64>,
    /// Seed of the search subset draw (`[search] seed` + the cell's seed).
    search_seed: Option<u64>,
    /// The cell of the lossless control fine-tuned on the same schedule (methods that
    /// retrain), the reference their targets are judged against.
    control_cell_id: Option<String>,
    /// `method` for the artifact as the method coded it; a post-stage name
    /// (`fixed`, `huffman-tensor`, `huffman-model`) for the same candidate with its
    /// indices recoded by the harness (accuracy and inference timing carried over from
    /// the method's row: the decoded weights are bit-identical, checked). NULL in rows
    /// written before the column existed (= `method`).
    index_coding: Option<String>,
    /// `ok` or `failed`.
    status: Status,
    error: Option<String>,
    /// Top-1 accuracy in percent.
    top1: Option<f64>,
    /// Top-5 accuracy in percent.
    top5: Option<f64>,
    top1_correct: Option<u64>,
    /// FP32 top-1 of the same model on the same split, percent.
    top1_baseline: Option<f64>,
    top1_delta_pp: Option<f64>,
    /// Paired against FP32 on the same images: images this candidate gets right and
    /// FP32 wrong.
    paired_gain: Option<u64>,
    /// Images FP32 gets right and this candidate wrong.
    paired_loss: Option<u64>,
    /// Two-sided exact McNemar p-value of "same top-1 as FP32".
    mcnemar_p: Option<f64>,
    /// 95 % paired-bootstrap interval of `top1_delta_pp`.
    top1_delta_ci_low_pp: Option<f64>,
    top1_delta_ci_high_pp: Option<f64>,
    /// Top-1 of the candidate on the search subset, measured by the harness (the data a
    /// choice may use; never reported as the result).
    top1_search: Option<f64>,
    /// FP32 top-1 on the same search subset.
    top1_search_baseline: Option<f64>,
    counted_params: Option<u64>,
    bits_baseline: Option<u64>,
    bits_compressed: Option<u64>,
    compression_ratio: Option<f64>,
    memory_saving_pct: Option<f64>,
    artifact_bytes: Option<u64>,
    /// Container header bytes (file header, per-tensor headers, checksum).
    artifact_bytes_header: Option<u64>,
    /// Codebook / table bytes (local and shared).
    artifact_bytes_codebooks: Option<u64>,
    /// Packed index bytes.
    artifact_bytes_indices: Option<u64>,
    /// Dense value bytes (f32/bf16/f16/int8).
    artifact_bytes_values: Option<u64>,
    /// Per-channel scale bytes.
    artifact_bytes_scales: Option<u64>,
    artifact_sha256: Option<String>,
    model_bytes_fp32: Option<u64>,
    latency_ms_b1_median: Option<f64>,
    latency_ms_b1_ci_low: Option<f64>,
    latency_ms_b1_ci_high: Option<f64>,
    latency_ms_b1_p90: Option<f64>,
    latency_ms_b1_p99: Option<f64>,
    latency_ms_bn_median: Option<f64>,
    latency_ms_bn_ci_low: Option<f64>,
    latency_ms_bn_ci_high: Option<f64>,
    throughput_batch: Option<u64>,
    throughput_img_s: Option<f64>,
    timed_path: Option<String>,
    /// Id of the f32-dense path measurement the timing columns come from
    /// (`results/<exp>/paths/<id>.json`): rows with the same id show the same numbers.
    timing_ref: Option<String>,
    /// Batch-1 time of the row's path over FP32's, interleaved (f32-dense: the A/A
    /// noise floor), with its 95 % paired interval.
    latency_ratio_b1: Option<f64>,
    latency_ratio_b1_ci_low: Option<f64>,
    latency_ratio_b1_ci_high: Option<f64>,
    /// The same at the throughput batch.
    latency_ratio_bn: Option<f64>,
    latency_ratio_bn_ci_low: Option<f64>,
    latency_ratio_bn_ci_high: Option<f64>,
    /// Id of the bf16-native path measurement, for BF16-exact artifacts.
    timing_ref_bf16: Option<String>,
    /// Throughput-batch time of the native BF16 path over FP32's, with its interval.
    latency_ratio_bn_bf16: Option<f64>,
    latency_ratio_bn_bf16_ci_low: Option<f64>,
    latency_ratio_bn_bf16_ci_high: Option<f64>,
    /// The native FP16 path (FP16-exact artifacts): its measurement's id, batch-1 and
    /// throughput-batch medians, images per second, ratio to FP32 with its interval,
    /// validity.
    timing_ref_f16: Option<String>,
    latency_ms_b1_median_f16: Option<f64>,
    latency_ms_bn_median_f16: Option<f64>,
    throughput_img_s_f16: Option<f64>,
    latency_ratio_bn_f16: Option<f64>,
    latency_ratio_bn_f16_ci_low: Option<f64>,
    latency_ratio_bn_f16_ci_high: Option<f64>,
    timing_valid_f16: Option<bool>,
    /// The int8 path (int8 artifacts on libtorch's quantized kernels, activations
    /// calibrated on training images): top-1 on the reported images, its difference
    /// from FP32's, and the calibration used; then its timing as for the other paths.
    top1_int8: Option<f64>,
    top1_int8_delta_pp: Option<f64>,
    int8_calibration: Option<String>,
    timing_ref_int8: Option<String>,
    latency_ms_b1_median_int8: Option<f64>,
    latency_ms_bn_median_int8: Option<f64>,
    throughput_img_s_int8: Option<f64>,
    latency_ratio_bn_int8: Option<f64>,
    latency_ratio_bn_int8_ci_low: Option<f64>,
    latency_ratio_bn_int8_ci_high: Option<f64>,
    timing_valid_int8: Option<bool>,
    /// Batch-1 median latency on libtorch's native BF16 kernels (BF16-exact artifacts).
    latency_ms_b1_median_bf16: Option<f64>,
    /// Throughput-batch median latency on the native BF16 path.
    latency_ms_bn_median_bf16: Option<f64>,
    /// Images per second on the native BF16 path.
    throughput_img_s_bf16: Option<f64>,
    /// Whether the native BF16 timings met the validity rules.
    timing_valid_bf16: Option<bool>,
    timing_valid: Option<bool>,
    timing_invalid_reasons: Option<String>,
    decode_ms: Option<f64>,
    /// Median time to read the artifact file, decode it and install the weights into
    /// the ready-to-run libtorch model.
    load_ms: Option<f64>,
    /// Rise of the peak resident set during that load (fresh window), bytes.
    load_peak_rss_bytes: Option<u64>,
    /// The same for the model's FP32 weights as a dense container, for comparison.
    load_ms_fp32: Option<f64>,
    load_peak_rss_bytes_fp32: Option<u64>,
    energy_j_per_img: Option<f64>,
    energy_j_per_img_net: Option<f64>,
    /// DRAM energy per image, idle-subtracted (never added to the package figure).
    energy_dram_j_per_img_net: Option<f64>,
    /// Package idle power measured before the window.
    energy_idle_w: Option<f64>,
    /// Length of the energy window.
    energy_window_s: Option<f64>,
    /// Counter wrap-arounds seen during the window.
    energy_wraps: Option<u64>,
    energy_source: String,
    compress_s: Option<f64>,
    search_evaluations: Option<u64>,
    peak_rss_bytes: Option<u64>,
    weights_in_memory_bytes: Option<u64>,
    device: String,
    harness_version: String,
    git_sha: String,
    manifest_id: String,
    host: String,
    threads: u64,
    timestamp: String,
    extra_json: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_and_read_columns_agree() {
        let row = Row {
            status: Status::Failed,
            ..Row::default()
        };
        let df = to_frame(&[row]).unwrap();
        let types = column_types();
        let names: Vec<&str> = df.get_column_names().iter().map(|s| s.as_str()).collect();
        let expected: Vec<&str> = types.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, expected);
        assert_eq!(
            df.column("status").unwrap().str().unwrap().get(0),
            Some("failed")
        );
        for (name, dtype) in types {
            assert!(df.column(name).unwrap().cast(&dtype).is_ok(), "{name}");
        }
    }
}
