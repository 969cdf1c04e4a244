//! End-to-end test of `generate` on synthetic cell files.

use std::fs;
use std::path::Path;

use polars::prelude::*;
use wb_report::{generate, load_results, ReportError, ReportOptions};

/// One synthetic result row (only the fields the test varies).
struct R {
    model: &'static str,
    dataset: &'static str,
    method: &'static str,
    params: &'static str,
    status: &'static str,
    error: Option<&'static str>,
    top1: Option<f64>,
    ratio: Option<f64>,
    bytes: Option<i64>,
}

/// FP32 top-1 of the synthetic model on each dataset.
fn base(dataset: &str) -> f64 {
    if dataset == "cifar10" {
        93.1
    } else {
        76.0
    }
}

fn r(method: &'static str, params: &'static str, top1: f64, ratio: f64, bytes: i64) -> R {
    R {
        model: "resnet18",
        dataset: "imagenette",
        method,
        params,
        status: "ok",
        error: None,
        top1: Some(top1),
        ratio: Some(ratio),
        bytes: Some(bytes),
    }
}

/// A frame with the runner's full row schema.
fn full_frame(rows: &[R]) -> DataFrame {
    let n = rows.len();
    let s = |f: &dyn Fn(&R) -> Option<String>| rows.iter().map(f).collect::<Vec<_>>();
    let top1: Vec<Option<f64>> = rows.iter().map(|r| r.top1).collect();
    let delta: Vec<Option<f64>> = rows
        .iter()
        .map(|r| r.top1.map(|t| t - base(r.dataset)))
        .collect();
    let f = |v: f64| vec![Some(v); n];
    let i = |v: i64| vec![Some(v); n];
    df!(
        "experiment" => s(&|_| Some("smoke".into())),
        "cell_id" => s(&|r| Some(format!("{}-{}", r.method, r.params))),
        "model" => s(&|r| Some(r.model.into())),
        "dataset" => s(&|r| Some(r.dataset.into())),
        "eval_split" => s(&|_| Some("val".into())),
        "eval_images" => i(3925),
        "method" => s(&|r| Some(r.method.into())),
        "params_json" => s(&|r| Some(r.params.into())),
        "seed" => i(0),
        "candidate" => s(&|_| Some("default".into())),
        "status" => s(&|r| Some(r.status.into())),
        "error" => s(&|r| r.error.map(String::from)),
        "top1" => top1.clone(),
        "top5" => top1.iter().map(|t| t.map(|t| (t + 15.0).min(100.0))).collect::<Vec<_>>(),
        "top1_correct" => i(2983),
        "top1_baseline" => rows.iter().map(|r| Some(base(r.dataset))).collect::<Vec<_>>(),
        "top1_delta_pp" => delta,
        "counted_params" => i(11_689_512),
        "bits_baseline" => i(374_064_384),
        "bits_compressed" => rows.iter().map(|r| r.ratio.map(|q| (374_064_384.0 / q) as i64)).collect::<Vec<_>>(),
        "compression_ratio" => rows.iter().map(|r| r.ratio).collect::<Vec<_>>(),
        "memory_saving_pct" => rows.iter().map(|r| r.ratio.map(|q| 100.0 * (1.0 - 1.0 / q))).collect::<Vec<_>>(),
        "artifact_bytes" => rows.iter().map(|r| r.bytes).collect::<Vec<_>>(),
        "model_bytes_fp32" => i(46_827_520),
        "latency_ms_b1_median" => f(5.1),
        "latency_ms_b1_ci_low" => f(5.0),
        "latency_ms_b1_ci_high" => f(5.3),
        "throughput_img_s" => f(190.0),
        "decode_ms" => f(1.5),
        "energy_j_per_img" => vec![None::<f64>; n],
        "energy_source" => s(&|_| Some("none".into())),
        "compress_s" => f(2.0),
        "search_evaluations" => i(0),
        "peak_rss_bytes" => i(1 << 30),
        "device" => s(&|_| Some("cpu".into())),
        "harness_version" => s(&|_| Some("0.1.0".into())),
        "git_sha" => s(&|_| Some("abc123".into())),
        "host" => s(&|_| Some("test".into())),
        "threads" => i(2),
        "timestamp" => s(&|_| Some("2025-01-01T00:00:00Z".into())),
        "extra_json" => s(&|_| Some("{}".into())),
    )
    .unwrap()
}

fn write_parquet(path: &Path, mut df: DataFrame) {
    let file = fs::File::create(path).unwrap();
    ParquetWriter::new(file).finish(&mut df).unwrap();
}

fn setup(root: &Path) -> ReportOptions {
    let cells = root.join("results").join("smoke").join("cells");
    fs::create_dir_all(&cells).unwrap();
    // Cell 1: full schema, including one failed row.
    let mut failed = r("uniform", r#"{"bits":4}"#, 0.0, 8.0, 0);
    failed.status = "failed";
    failed.error = Some("quantizer diverged");
    failed.top1 = None;
    failed.ratio = None;
    failed.bytes = None;
    write_parquet(
        &cells.join("cell-000.parquet"),
        full_frame(&[
            r("kmeans", r#"{"k":16}"#, 75.5, 7.98, 6_000_123),
            r("fp32", "{}", 76.0, 1.0, 46_827_520),
            r("kmeans", r#"{"k":4}"#, 70.25, 15.9, 3_100_000),
            r("uniform", r#"{"bits":8}"#, 75.9, 4.0, 11_800_000),
            // Dominated by kmeans k=16 (lower ratio, lower accuracy).
            r("uniform", r#"{"bits":6}"#, 74.0, 5.3, 9_000_000),
            failed,
        ]),
    );
    // Cell 2: an older writer without latency/energy/top5/extra_json columns,
    // and a second dataset.
    let mut old = full_frame(&[
        R {
            dataset: "cifar10",
            ..r("fp32", "{}", 93.1, 1.0, 46_827_520)
        },
        R {
            dataset: "cifar10",
            ..r("kmeans", r#"{"k":16}"#, 92.7, 7.98, 6_000_123)
        },
    ]);
    for c in [
        "latency_ms_b1_median",
        "latency_ms_b1_ci_low",
        "latency_ms_b1_ci_high",
        "energy_j_per_img",
        "energy_source",
        "top5",
        "extra_json",
    ] {
        old = old.drop(c).unwrap();
    }
    write_parquet(&cells.join("cell-001.parquet"), old);
    // Things that must be ignored.
    fs::write(cells.join("notes.txt"), "not a result").unwrap();
    fs::create_dir_all(root.join("results/smoke/logs")).unwrap();
    fs::write(root.join("results/smoke/logs/x.parquet"), "garbage").unwrap();

    ReportOptions {
        name: "smoke".into(),
        results_dir: root.join("results").join("smoke"),
        out_dir: root.join("reports").join("smoke"),
        reference: Some("fp32".into()),
        views: Vec::new(),
    }
}

#[test]
fn load_concatenates_with_nulls() {
    let dir = tempfile::tempdir().unwrap();
    let opts = setup(dir.path());
    let df = load_results(&opts.results_dir).unwrap();
    assert_eq!(df.height(), 8);
    let lat = df.column("latency_ms_b1_median").unwrap();
    assert_eq!(lat.dtype(), &DataType::Float64);
    assert_eq!(lat.null_count(), 2);
    assert_eq!(df.column("top5").unwrap().null_count(), 3); // 2 missing + 1 failed
}

#[test]
fn generate_writes_all_files() {
    let dir = tempfile::tempdir().unwrap();
    let opts = setup(dir.path());
    let summary = generate(&opts).unwrap();
    assert_eq!(summary.rows_ok, 7);
    assert_eq!(summary.rows_failed, 1);

    let out = &opts.out_dir;
    let expected = [
        "tables.md",
        "tables.tex",
        "smoke.csv",
        "fig_resnet18_cifar10.png",
        "fig_resnet18_cifar10.svg",
        "fig_resnet18_imagenette.png",
        "fig_resnet18_imagenette.svg",
        "index.html",
    ];
    for f in expected {
        assert!(out.join(f).is_file(), "missing {f}");
        assert!(summary.files.contains(&out.join(f)), "{f} not in summary");
    }
    // And the index over every experiment, one folder up.
    let index = out.parent().unwrap().join("index.html");
    assert!(summary.files.contains(&index));
    assert!(fs::read_to_string(&index)
        .unwrap()
        .contains("href=\"smoke/index.html\""));
    assert_eq!(summary.files.len(), expected.len() + 1);
    let page = fs::read_to_string(out.join("index.html")).unwrap();
    assert!(
        page.contains("<img src=\"fig_resnet18_cifar10.svg\""),
        "the SVG is shown"
    );
    assert!(page.contains("<td>kmeans</td><td>k=16</td><td>75.50</td>"));
    // Nothing else (no temporaries) in the output folder.
    assert_eq!(fs::read_dir(out).unwrap().count(), expected.len());

    let md = fs::read_to_string(out.join("tables.md")).unwrap();
    println!("{md}");
    assert!(md.contains("results/smoke"));
    assert!(md.contains("8 rows: 7 ok, 1 failed"));
    assert!(md.contains("## resnet18 on imagenette"));
    assert!(md.contains("## resnet18 on cifar10"));
    assert!(!md.contains("| candidate |"));
    assert!(md.contains("| fp32 | - | 76.00 | +0.00 | 1.00× | 46827520 |"));
    assert!(md.contains("| kmeans | k=16 | 75.50 | -0.50 | 7.98× | 6000123 |"));
    assert!(md.contains("| kmeans | k=4 | 70.25 | -5.75 | 15.90× | 3100000 |"));
    assert!(md.contains("| uniform | bits=8 | 75.90 | -0.10 | 4.00× | 11800000 |"));
    assert!(md.contains("| kmeans | k=16 | 92.70 | -0.40 | 7.98× | 6000123 |"));
    assert!(md.contains("- uniform bits=4: quantizer diverged"));
    // Order inside the imagenette table: fp32, kmeans by ratio, uniform by ratio.
    let pos = |s: &str| md.find(s).unwrap_or_else(|| panic!("{s} not found"));
    let sec = pos("## resnet18 on imagenette");
    let at = |s: &str| sec + md[sec..].find(s).unwrap();
    assert!(at("| fp32 |") < at("| kmeans | k=16 |"));
    assert!(at("| kmeans | k=16 |") < at("| kmeans | k=4 |"));
    assert!(at("| kmeans | k=4 |") < at("| uniform | bits=8 |"));
    assert!(at("| uniform | bits=8 |") < at("| uniform | bits=6 |"));

    let tex = fs::read_to_string(out.join("tables.tex")).unwrap();
    assert!(tex.contains("\\toprule") && tex.contains("\\midrule") && tex.contains("\\bottomrule"));
    assert_eq!(tex.matches("\\begin{table}").count(), 2);
    assert!(tex.contains("Top-1 (\\%)"));
    assert!(tex.contains("kmeans & k=16 & 75.50 & $-0.50$ & 7.98 & 6000123 \\\\"));

    let csv = fs::read_to_string(out.join("smoke.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + 7, "{csv}");
    assert!(
        lines[0].starts_with(
            "model,dataset,method,params,candidate,top1,top1_delta_pp,compression_ratio,\
             artifact_bytes,eval_split,eval_images,seed,index_coding,chosen,params_json,"
        ),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].ends_with(",artifact_sha256,cell_id"),
        "{}",
        lines[0]
    );
    assert!(lines
        .iter()
        .any(|l| l.starts_with("resnet18,imagenette,kmeans,k=16,default,75.5,-0.5")));

    let png = fs::read(out.join("fig_resnet18_imagenette.png")).unwrap();
    assert!(png.starts_with(&[0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a]));
    let svg = fs::read_to_string(out.join("fig_resnet18_imagenette.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("resnet18 on imagenette"));
    assert!(svg.contains("Pareto front"));

    // Keep a copy for manual inspection when asked to.
    if let Ok(keep) = std::env::var("WB_REPORT_KEEP") {
        let keep = Path::new(&keep);
        fs::create_dir_all(keep).unwrap();
        for f in &summary.files {
            fs::copy(f, keep.join(f.file_name().unwrap())).unwrap();
        }
    }

    // A second run overwrites cleanly.
    let again = generate(&opts).unwrap();
    assert_eq!(again, summary);
}

#[test]
fn missing_results_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let opts = ReportOptions {
        name: "nothing".into(),
        results_dir: dir.path().join("results").join("nothing"),
        out_dir: dir.path().join("reports").join("nothing"),
        reference: Some("fp32".into()),
        views: Vec::new(),
    };
    match generate(&opts) {
        Err(ReportError::NoResults { dir: d }) => assert_eq!(d, opts.results_dir),
        other => panic!("expected NoResults, got {other:?}"),
    }
    assert!(!opts.out_dir.exists());
}

#[test]
fn corrupt_cell_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cells = dir.path().join("results/bad/cells");
    fs::create_dir_all(&cells).unwrap();
    fs::write(cells.join("c.parquet"), "not parquet").unwrap();
    match load_results(&dir.path().join("results/bad")) {
        Err(ReportError::Parquet { path, .. }) => assert_eq!(path, cells.join("c.parquet")),
        other => panic!("expected Parquet error, got {other:?}"),
    }
}

#[test]
fn busy_figure_with_many_methods() {
    let dir = tempfile::tempdir().unwrap();
    let cells = dir.path().join("results/busy/cells");
    fs::create_dir_all(&cells).unwrap();
    let methods = [
        "kmeans",
        "uniform",
        "pruning_magnitude",
        "product_quantization_long_name",
        "lowrank",
        "hashing",
        "ternary",
        "binary",
    ];
    let params = [
        r#"{"k":2}"#,
        r#"{"k":4}"#,
        r#"{"k":16}"#,
        r#"{"k":64}"#,
        r#"{"k":256}"#,
    ];
    let mut rows = vec![r("fp32", "{}", 76.0, 1.0, 46_827_520)];
    for (m, name) in methods.iter().enumerate() {
        for (p, par) in params.iter().enumerate() {
            let ratio = 1.5 * (m as f64 * 0.35 + p as f64 * 0.9).exp2();
            let top1 = 76.0 - 0.08 * ratio * (1.0 + m as f64 * 0.3) - p as f64 * 0.2;
            rows.push(r(
                name,
                par,
                top1.max(10.0),
                ratio,
                1_000_000 / (p as i64 + 1),
            ));
        }
    }
    write_parquet(&cells.join("c.parquet"), full_frame(&rows));
    let opts = ReportOptions {
        name: "busy".into(),
        results_dir: dir.path().join("results/busy"),
        out_dir: dir.path().join("reports/busy"),
        reference: Some("fp32".into()),
        views: Vec::new(),
    };
    let summary = generate(&opts).unwrap();
    assert_eq!(summary.rows_ok, 1 + methods.len() * params.len());
    let png = opts.out_dir.join("fig_resnet18_imagenette.png");
    assert!(fs::read(&png).unwrap().starts_with(b"\x89PNG"));
    if let Ok(keep) = std::env::var("WB_REPORT_KEEP") {
        fs::copy(&png, Path::new(&keep).join("busy.png")).unwrap();
    }
}

#[test]
fn cells_missing_from_the_current_list_are_left_out_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let opts = setup(dir.path());
    // The experiment as last run has only cell 1 (e.g. cell 0's method gained a
    // parameter since, so its id changed).
    fs::write(
        opts.results_dir.join(wb_report::CURRENT_CELLS),
        "cell-001\n",
    )
    .unwrap();
    assert_eq!(load_results(&opts.results_dir).unwrap().height(), 2);
    let s = generate(&opts).unwrap();
    assert_eq!((s.rows_ok, s.rows_failed), (2, 0));
    let md = fs::read_to_string(opts.out_dir.join("tables.md")).unwrap();
    assert!(md.contains("1 further cell file(s)"), "{md}");
    // Both files are still on disk.
    assert!(opts.results_dir.join("cells/cell-000.parquet").is_file());
}

#[test]
fn a_corrupt_cell_does_not_cost_the_other_cells() {
    let dir = tempfile::tempdir().unwrap();
    let opts = setup(dir.path());
    let bad = opts.results_dir.join("cells/cell-002.parquet");
    fs::write(&bad, "PAR1 truncated").unwrap();
    let s = generate(&opts).unwrap();
    assert_eq!((s.rows_ok, s.rows_failed), (7, 1));
    let md = fs::read_to_string(opts.out_dir.join("tables.md")).unwrap();
    assert!(
        md.contains("Unreadable cell file") && md.contains("cell-002.parquet"),
        "{md}"
    );
    assert!(bad.is_file(), "kept on disk");
}
