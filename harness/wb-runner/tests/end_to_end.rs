//! The runner end to end on a real model, real images and real libtorch: rows, real bytes,
//! resume, force, failures as rows, determinism, bad input, and SIGKILL recovery.

// The same path helpers as wb-torch's tests (both crates sit in harness/).
#[path = "../../wb-torch/tests/common/mod.rs"]
mod common;
use common::{data_dir, repo_root};
use polars::prelude::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use wb_runner::experiment::{self, Catalog};
use wb_runner::results::{read_all, ResultsDir};
use wb_runner::{registry, RunOptions};

fn write_exp(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, body).unwrap();
    p
}

fn load(path: &Path) -> experiment::Experiment {
    let methods = registry::methods();
    let ok = |_: &str| Ok(());
    let cat = Catalog {
        methods: &methods,
        model: &ok,
        dataset: &ok,
        search_dataset: &ok,
    };
    experiment::load(path, &cat).unwrap()
}

fn opts(results: &Path, force: bool) -> RunOptions {
    RunOptions {
        models_dirs: vec![repo_root().join("models")],
        data_dir: data_dir(),
        results_root: results.to_path_buf(),
        repo_root: repo_root(),
        device: wb_torch::Device::Cpu,
        threads: 2,
        interop_threads: 1,
        force,
        retry_failed: false,
        progress: false,
        only_methods: Vec::new(),
        only_models: Vec::new(),
        only_params: Vec::new(),
        only_seeds: Vec::new(),
        shard: None,
        claim: None,
        stage_cache_mb: 1024,
        energy_backend: wb_measure::EnergyBackend::default(),
    }
}

const SMALL: &str = r#"
models = ["resnet20"]
datasets = ["cifar10-exact932"]
[timing]
enabled = false
[[methods]]
id = "fp32"
[[methods]]
id = "bf16-cast"
[[methods]]
id = "kmeans-uniform"
params = { k = [4, 65536] }
"#;

fn col_str(df: &DataFrame, name: &str) -> Vec<String> {
    df.column(name)
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|s| s.unwrap_or("").to_string())
        .collect()
}

fn row_of(df: &DataFrame, method: &str, params_contains: &str) -> usize {
    let m = col_str(df, "method");
    let p = col_str(df, "params_json");
    (0..df.height())
        .find(|&i| m[i] == method && p[i].contains(params_contains))
        .unwrap_or_else(|| panic!("no row for {method} {params_contains}"))
}

#[test]
fn run_resume_force_and_failures() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write_exp(tmp.path(), "small", SMALL);
    let exp = load(&path);
    assert_eq!(exp.cells.len(), 4);
    let results = tmp.path().join("results");

    let s = wb_runner::run(&exp, &registry::methods(), &opts(&results, false)).unwrap();
    assert_eq!((s.cells_ok, s.cells_failed, s.rows_written), (3, 1, 4));

    let dir = ResultsDir::new(&results, "small");
    let df = read_all(&dir).unwrap();
    assert_eq!(df.height(), 4);
    // The columns of the design's results schema.
    for c in [
        "experiment",
        "model",
        "dataset",
        "eval_split",
        "eval_images",
        "method",
        "params_json",
        "seed",
        "candidate",
        "status",
        "error",
        "top1",
        "top5",
        "top1_baseline",
        "top1_delta_pp",
        "counted_params",
        "bits_baseline",
        "bits_compressed",
        "compression_ratio",
        "memory_saving_pct",
        "artifact_bytes",
        "model_bytes_fp32",
        "latency_ms_b1_median",
        "latency_ms_b1_ci_low",
        "latency_ms_b1_ci_high",
        "throughput_img_s",
        "decode_ms",
        "energy_j_per_img",
        "energy_source",
        "compress_s",
        "search_evaluations",
        "peak_rss_bytes",
        "harness_version",
        "git_sha",
        "host",
        "threads",
        "timestamp",
        "extra_json",
    ] {
        assert!(df.column(c).is_ok(), "missing column {c}");
    }

    let fp32 = row_of(&df, "fp32", "");
    let top1c = df.column("top1_correct").unwrap().u64().unwrap();
    assert_eq!(
        top1c.get(fp32),
        Some(854),
        "ResNet20 FP32 on the 932 exact images"
    );
    let top1 = df.column("top1").unwrap().f64().unwrap();
    let bf16 = row_of(&df, "bf16-cast", "");
    assert!((top1.get(bf16).unwrap() - top1.get(fp32).unwrap()).abs() <= 1.0);

    // Every ok row's artifact_bytes is the container file's length.
    let status = col_str(&df, "status");
    let cells = col_str(&df, "cell_id");
    let bytes = df.column("artifact_bytes").unwrap().u64().unwrap();
    for i in 0..df.height() {
        if status[i] == "ok" {
            let f = dir.artifacts(&cells[i]).join("default.wbc");
            assert_eq!(bytes.get(i), Some(std::fs::metadata(&f).unwrap().len()));
        }
    }
    // k = 65536 exceeds the smallest layer: a failed row with the reason, sweep went on.
    let big = row_of(&df, "kmeans-uniform", "65536");
    assert_eq!(status[big], "failed");
    let err = col_str(&df, "error");
    assert!(
        err[big].contains("conv1.weight") || err[big].contains('k'),
        "{}",
        err[big]
    );
    let cr = df.column("compression_ratio").unwrap().f64().unwrap();
    let k4 = row_of(&df, "kmeans-uniform", "\"k\":4,");
    assert!(cr.get(k4).unwrap() > 10.0);

    // Re-running writes nothing new.
    let s = wb_runner::run(&exp, &registry::methods(), &opts(&results, false)).unwrap();
    assert_eq!((s.cells_skipped, s.rows_written), (4, 0));
    assert_eq!(read_all(&dir).unwrap().height(), 4);

    // --force recomputes, and the old results are kept under superseded/.
    let s = wb_runner::run(&exp, &registry::methods(), &opts(&results, true)).unwrap();
    assert_eq!(s.rows_written, 4);
    let superseded: Vec<_> = walk(&dir.root.join("superseded"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .filter(|p| p.parent().is_some_and(|d| d.ends_with("cells")))
        .collect();
    assert_eq!(superseded.len(), 4, "{superseded:?}");
    assert_eq!(read_all(&dir).unwrap().height(), 4);

    // A truncated cell file is not a finished cell: it is moved aside (kept) and the
    // cell alone is computed again; the report covers every cell.
    let victim = dir.cell_file(&cells[fp32]);
    let bytes_before = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &bytes_before[..bytes_before.len() / 2]).unwrap();
    let s = wb_runner::run(&exp, &registry::methods(), &opts(&results, false)).unwrap();
    assert_eq!((s.cells_skipped, s.rows_written), (3, 1));
    let kept: Vec<_> = walk(&dir.root.join("corrupt"))
        .into_iter()
        .filter(|p| p.parent().is_some_and(|d| d.ends_with("cells")))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(read_all(&dir).unwrap().height(), 4);
}

/// The `*.json` files of a folder.
fn json_files(p: &Path) -> Vec<PathBuf> {
    walk(p)
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "json"))
        .collect()
}

fn walk(p: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let q = e.path();
            if q.is_dir() {
                out.extend(walk(&q));
            } else {
                out.push(q);
            }
        }
    }
    out
}

#[test]
fn same_seed_gives_identical_artifacts_and_accuracy() {
    let tmp = tempfile::tempdir().unwrap();
    let body = r#"
models = ["resnet8"]
datasets = ["cifar10-exact932"]
seeds = [7]
[timing]
min_time_s = 0.05
min_samples = 5
throughput_batch = 8
[[methods]]
id = "int8-affine"
[[methods]]
id = "kmeans-uniform"
params = { k = 16 }
"#;
    let path = write_exp(tmp.path(), "det", body);
    let exp = load(&path);
    let mut frames = Vec::new();
    for sub in ["a", "b"] {
        let results = tmp.path().join(sub);
        wb_runner::run(&exp, &registry::methods(), &opts(&results, false)).unwrap();
        frames.push(read_all(&ResultsDir::new(&results, "det")).unwrap());
    }
    for c in ["cell_id", "artifact_sha256", "status"] {
        assert_eq!(col_str(&frames[0], c), col_str(&frames[1], c), "column {c}");
    }
    assert!(col_str(&frames[0], "status").iter().all(|s| s == "ok"));
    let t = |df: &DataFrame| {
        df.column("top1_correct")
            .unwrap()
            .u64()
            .unwrap()
            .iter()
            .collect::<Vec<_>>()
    };
    assert_eq!(t(&frames[0]), t(&frames[1]));
    // The timed pass ran once for the one path both rows run on (int8-affine and
    // k-means decode to the same f32 graph), kept its raw samples, and both rows show it.
    let lat = frames[0]
        .column("latency_ms_b1_median")
        .unwrap()
        .f64()
        .unwrap();
    assert!(lat.iter().all(|v| v.is_some_and(|x| x > 0.0)));
    assert!(
        lat.iter().all(|v| v == lat.get(0)),
        "one path, one timing: {lat:?}"
    );
    let refs = col_str(&frames[0], "timing_ref");
    assert!(
        refs.iter()
            .all(|r| r == &refs[0] && r.contains("f32-dense")),
        "{refs:?}"
    );
    // One f32-dense measurement for both rows; the int8 artifact also has its own
    // int8-native one.
    let mut paths = json_files(&tmp.path().join("a/det/paths"));
    paths.sort();
    assert_eq!(paths.len(), 2, "{paths:?}");
    let dense: Vec<_> = paths
        .iter()
        .filter(|p| p.to_string_lossy().contains("f32-dense"))
        .collect();
    assert_eq!(dense.len(), 1, "{paths:?}");
    let t: wb_report::paths::PathTiming =
        serde_json::from_str(&std::fs::read_to_string(dense[0]).unwrap()).unwrap();
    assert!(t.b1.candidate_calls_ms.len() >= 5 && t.bn.reference_calls_ms.len() >= 5);
    // The FP32 reference was logged at the group's start and in the measurement.
    let log =
        std::fs::read_to_string(tmp.path().join("a/det/paths/reference-checks.jsonl")).unwrap();
    assert!(log.lines().count() >= 3, "{log}");
    let src = col_str(&frames[0], "energy_source");
    assert!(
        src.iter()
            .all(|s| s == "rapl" || s.starts_with("unavailable:")),
        "{src:?}"
    );
}

#[test]
fn native_and_int8_paths_are_timed_once_each_and_method_filter_selects_cells() {
    let tmp = tempfile::tempdir().unwrap();
    let body = r#"
models = ["resnet8"]
datasets = ["cifar10-exact932"]
[timing]
min_time_s = 0.05
min_samples = 5
throughput_batch = 8
[[methods]]
id = "fp32"
[[methods]]
id = "bf16-cast"
[[methods]]
id = "fp16-cast"
[[methods]]
id = "int8-affine"
"#;
    let path = write_exp(tmp.path(), "bf", body);
    let exp = load(&path);
    let results = tmp.path().join("results");
    let mut o = opts(&results, false);

    // An unknown method id is refused before anything runs, naming the ones there are.
    o.only_methods = vec!["bf16".into()];
    let e = wb_runner::run(&exp, &registry::methods(), &o).unwrap_err();
    assert!(format!("{e:#}").contains("bf16-cast"), "{e:#}");
    assert!(!results.join("bf").join("cells").exists());

    o.only_methods = vec!["bf16-cast".into()];
    let s = wb_runner::run(&exp, &registry::methods(), &o).unwrap();
    assert_eq!((s.rows_written, s.cells_not_selected), (1, 3));
    o.only_methods.clear();
    let s = wb_runner::run(&exp, &registry::methods(), &o).unwrap();
    assert_eq!((s.rows_written, s.cells_skipped), (3, 1));

    let df = read_all(&ResultsDir::new(&results, "bf")).unwrap();
    let bf = row_of(&df, "bf16-cast", "");
    let fp = row_of(&df, "fp32", "");
    let hf = row_of(&df, "fp16-cast", "");
    let path = col_str(&df, "timed_path");
    assert_eq!(path[bf], "f32-dense+bf16-native");
    assert_eq!(path[fp], "f32-dense");
    // FP16 values are not all BF16 values: the fp16 artifact gets the FP16 path.
    assert_eq!(path[hf], "f32-dense+fp16-native");
    let thr16 = df.column("throughput_img_s_f16").unwrap().f64().unwrap();
    assert!(thr16.get(hf).is_some_and(|x| x > 0.0) && thr16.get(bf).is_none());
    let thr = df.column("throughput_img_s_bf16").unwrap().f64().unwrap();
    assert!(thr.get(bf).is_some_and(|x| x > 0.0));
    assert!(thr.get(fp).is_none());
    // Each path was timed once, against FP32, and both rows show the same f32-dense
    // numbers.
    let files = json_files(&results.join("bf").join("paths"));
    let mut paths: Vec<String> = files
        .iter()
        .map(|p| {
            let t: wb_report::paths::PathTiming =
                serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
            t.path
        })
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        ["bf16-native", "f32-dense", "fp16-native", "int8-native"]
    );
    let refs = col_str(&df, "timing_ref");
    assert_eq!(refs[bf], refs[fp]);
    assert_eq!(refs[hf], refs[fp]);
    // The int8 artifact also ran on the quantized kernels, with its own accuracy,
    // calibrated on training images.
    let i8 = row_of(&df, "int8-affine", "");
    assert_eq!(path[i8], "f32-dense+int8-native");
    let top1 = df.column("top1").unwrap().f64().unwrap();
    let top1_int8 = df.column("top1_int8").unwrap().f64().unwrap();
    let (q, f) = (top1_int8.get(i8).unwrap(), top1.get(fp).unwrap());
    assert!((q - f).abs() < 3.0, "int8 path {q} vs FP32 {f}");
    assert!(top1_int8.get(fp).is_none() && top1_int8.get(bf).is_none());
    assert!(col_str(&df, "int8_calibration")[i8].contains("cifar10-train-jpeg75"));
    let r8 = df.column("latency_ratio_bn_int8").unwrap().f64().unwrap();
    assert!(r8.get(i8).is_some_and(|x| x > 0.0));
    assert_eq!(refs[i8], refs[fp]);
    let ratio = df.column("latency_ratio_bn_bf16").unwrap().f64().unwrap();
    assert!(ratio.get(bf).is_some_and(|x| x > 0.0) && ratio.get(fp).is_none());
}

/// `weightbench run --quiet --no-report --results-dir RESULTS EXPERIMENT`; more flags
/// may follow.
fn quiet_run(
    results: impl AsRef<std::ffi::OsStr>,
    experiment: impl AsRef<std::ffi::OsStr>,
) -> Command {
    let mut c = bin();
    c.args(["run", "--quiet", "--no-report", "--results-dir"])
        .arg(results)
        .arg(experiment);
    c
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_weightbench"));
    c.current_dir(repo_root())
        .env("WEIGHTBENCH_DATA", data_dir());
    c
}

#[test]
fn malformed_experiment_names_file_line_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = write_exp(
        tmp.path(),
        "bad",
        "models = [\"resnet20\"]\ndatasets = [\"cifar10-exact932\"]\n[[methods]]\nid = \"kmeans-uniform\"\nparams = { k = 1 }\n",
    );
    // A user error is its message, without a Rust backtrace even when asked for one.
    let out = bin()
        .env("RUST_BACKTRACE", "1")
        .arg("check")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.to_lowercase().contains("backtrace"), "{err}");
    assert!(
        err.contains("bad.toml:5") && err.contains("params.k") && err.contains("2..=65536"),
        "{err}"
    );

    let typo = write_exp(tmp.path(), "typo", "modles = [\"resnet20\"]\n");
    let out = bin().arg("check").arg(&typo).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("typo.toml:1") && err.contains("modles"),
        "{err}"
    );

    // Six different slips of shape at once: each with its line, table and what is allowed.
    let many = write_exp(
        tmp.path(),
        "many",
        "models = [\"resnet20\", 8]\ndatasets = [\"cifar10-exact932\"]\ncolour = \"blue\"\n\
         [timing]\nspeed = 3\n[evaluation]\nbatch_size = \"big\"\n[search]\nimages = 1.5\n\
         [[methods]]\nparams = { k = 4 }\n",
    );
    let out = bin().arg("check").arg(&many).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("has 6 problems"),
        "{err}"
    );
    for needle in [
        "many.toml:1: models[1]: expected a string, found an integer",
        "many.toml:3: colour: unknown field; allowed: name, description",
        "many.toml:5: [timing] speed: unknown field; allowed: enabled",
        "many.toml:7: [evaluation] batch_size: expected an integer, found the string \"big\"",
        "many.toml:9: [search] images: expected an integer, found a float",
        "methods[0].id: missing: methods[0] needs `id`",
    ] {
        assert!(err.contains(needle), "missing `{needle}` in\n{err}");
    }

    let missing = write_exp(
        tmp.path(),
        "missing",
        "models = [\"resnet21\"]\ndatasets = [\"cifar10-exact932\"]\n[[methods]]\nid = \"fp32\"\n",
    );
    let out = bin().arg("check").arg(&missing).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("missing.toml:1") && err.contains("resnet21.toml"),
        "{err}"
    );

    // A dataset directory that does not exist: the error says where it looked.
    let ok = write_exp(
        tmp.path(),
        "ok",
        "models = [\"resnet20\"]\ndatasets = [\"cifar10-exact932\"]\n[[methods]]\nid = \"fp32\"\n",
    );
    let out = bin()
        .arg("check")
        .arg(&ok)
        .arg("--data-dir")
        .arg("/nonexistent-data")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("/nonexistent-data/cifar10_test"),
        "{err}"
    );
}

#[test]
fn sigkill_mid_run_resumes_without_loss_or_duplicates() {
    let tmp = tempfile::tempdir().unwrap();
    let body = r#"
models = ["resnet8", "resnet20"]
datasets = ["cifar10-exact932"]
[timing]
enabled = false
[[methods]]
id = "fp32"
[[methods]]
id = "bf16-cast"
[[methods]]
id = "fp16-cast"
[[methods]]
id = "kmeans-uniform"
params = { k = [2, 4, 8] }
"#;
    let path = write_exp(tmp.path(), "kill", body);
    let results = tmp.path().join("results");
    let cells_dir = results.join("kill/cells");
    let mut child = quiet_run(&results, &path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let done = |d: &Path| {
        std::fs::read_dir(d)
            .map(|r| {
                r.flatten()
                    .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                    .count()
            })
            .unwrap_or(0)
    };
    while done(&cells_dir) < 2 && t0.elapsed() < Duration::from_secs(300) {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = done(&cells_dir);
    assert!((2..12).contains(&before), "killed after {before} cells");

    let out = quiet_run(&results, &path).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let df = read_all(&ResultsDir::new(&results, "kill")).unwrap();
    assert_eq!(df.height(), 12);
    let mut ids = col_str(&df, "cell_id");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 12, "duplicate rows after resume");
    assert!(col_str(&df, "status").iter().all(|s| s == "ok"));
    // No temporary files survive.
    assert!(walk(&results)
        .iter()
        .all(|p| !p.to_string_lossy().ends_with(".tmp")));
}

/// A broken TorchScript file and a damaged dataset are found before any cell runs: one
/// error lists both, the exit is non-zero, and no result is written — so that once the
/// inputs are fixed a plain re-run computes the cells (none is stored as `failed`).
#[test]
fn broken_inputs_are_refused_before_any_cell_with_every_problem_listed() {
    let tmp = tempfile::tempdir().unwrap();
    // A models folder whose ResNet20 file is text, and a data folder whose exact932 file
    // lost its last byte.
    let models = tmp.path().join("models");
    std::fs::create_dir_all(models.join("export")).unwrap();
    let card = std::fs::read_to_string(repo_root().join("models/resnet20.toml")).unwrap();
    std::fs::write(models.join("resnet20.toml"), card).unwrap();
    std::fs::write(models.join("export/resnet20.pt"), "not TorchScript").unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(data.join("cifar10_test")).unwrap();
    let src = data_dir().join("cifar10_test/test_batch_first932_lossless.bin");
    let mut bytes = std::fs::read(&src).unwrap();
    bytes.pop();
    std::fs::write(
        data.join("cifar10_test/test_batch_first932_lossless.bin"),
        bytes,
    )
    .unwrap();

    let body = "models = [\"resnet20\"]\ndatasets = [\"cifar10-exact932\"]\n[timing]\nenabled = false\n[[methods]]\nid = \"fp32\"\n";
    let path = write_exp(tmp.path(), "inputs", body);
    let results = tmp.path().join("results");
    let out = quiet_run(&results, &path)
        .arg("--models-dir")
        .arg(&models)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2 input problem(s)"), "{err}");
    assert!(
        err.contains("model `resnet20`") && err.contains("cannot load TorchScript"),
        "{err}"
    );
    assert!(err.contains("dataset `cifar10-exact932`"), "{err}");
    // No libtorch stack trace in what the user reads.
    assert!(!err.contains("frame #"), "{err}");
    let cells = results.join("inputs/cells");
    assert_eq!(std::fs::read_dir(&cells).map(|d| d.count()).unwrap_or(0), 0);
}

/// Run from a directory outside the checkout, the binary still finds the project's
/// model zoo; `--models-dir` adds a folder of one's own cards in front of it.
#[test]
fn runs_from_another_directory_and_models_dir_adds_cards() {
    let tmp = tempfile::tempdir().unwrap();
    let mine = tmp.path().join("my-models");
    std::fs::create_dir_all(&mine).unwrap();
    let card = std::fs::read_to_string(repo_root().join("models/resnet8.toml"))
        .unwrap()
        .replace("name = \"resnet8\"", "name = \"my-resnet8\"")
        .replace(
            "file = \"export/resnet8.pt\"",
            &format!("file = {:?}", repo_root().join("models/export/resnet8.pt")),
        );
    std::fs::write(mine.join("my-resnet8.toml"), card).unwrap();
    let body = "models = [\"my-resnet8\", \"resnet20\"]\ndatasets = [\"cifar10-exact932\"]\n[timing]\nenabled = false\n[[methods]]\nid = \"fp32\"\n";
    let path = write_exp(tmp.path(), "elsewhere", body);
    let out = quiet_run(tmp.path().join("results"), &path)
        .current_dir(tmp.path())
        .arg("--models-dir")
        .arg(&mine)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let df = read_all(&ResultsDir::new(&tmp.path().join("results"), "elsewhere")).unwrap();
    let mut models = col_str(&df, "model");
    models.sort();
    assert_eq!(models, ["my-resnet8", "resnet20"]);
}

/// `weightbench inspect` on a real container: the JSON components add up to the file,
/// and a damaged file is an error naming it, not a crash.
#[test]
fn inspect_describes_a_real_container_and_refuses_a_damaged_one() {
    let file = repo_root().join("harness/wb-core/tests/corpus/resnet8-kmeans-huffman-tensor.wbc");
    let size = std::fs::metadata(&file).unwrap().len();
    let out = bin()
        .arg("inspect")
        .arg(&file)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["total_bytes"].as_u64(), Some(size));
    let tensors = v["tensors"].as_array().unwrap();
    let sum: u64 = tensors
        .iter()
        .map(|t| t["bytes"]["total"].as_u64().unwrap())
        .sum::<u64>()
        + [
            "container_overhead",
            "shared_codebooks",
            "shared_exp_tables",
            "shared_code_tables",
        ]
        .iter()
        .map(|k| v[k].as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(sum, size);
    assert!(tensors.iter().any(|t| t["coding"] == "huffman (local)"));
    let text = bin().arg("inspect").arg(&file).output().unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains(&format!("= {size} B")));

    let tmp = tempfile::tempdir().unwrap();
    let damaged = tmp.path().join("damaged.wbc");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[100] ^= 0xFF;
    std::fs::write(&damaged, bytes).unwrap();
    let out = bin().arg("inspect").arg(&damaged).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("damaged.wbc") && err.contains("checksum"),
        "{err}"
    );
}

/// `weightbench export` of a kmeans-uniform cell: TorchScript, safetensors and the
/// container, the reloaded TorchScript giving the row's top-1 exactly (checked by the
/// command), and the saved file loading as a model of its own.
#[test]
fn export_writes_models_that_reproduce_their_row() {
    let tmp = tempfile::tempdir().unwrap();
    let body = "models = [\"resnet20\"]\ndatasets = [\"cifar10-exact932\"]\n[timing]\nenabled = false\n[[methods]]\nid = \"kmeans-uniform\"\nparams = { k = 16 }\nindex_codings = [\"huffman-tensor\"]\n";
    let path = write_exp(tmp.path(), "exp", body);
    let results = tmp.path().join("results");
    let out = quiet_run(&results, &path).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let df = read_all(&ResultsDir::new(&results, "exp")).unwrap();
    let cell = col_str(&df, "cell_id")[0].clone();
    let export = |extra: &[&str]| {
        bin()
            .args(["export", "--results-dir"])
            .arg(&results)
            .arg(&path)
            .args(["--cell", &cell])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = export(&[]);
    let msg = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        msg.contains("exported candidate `default`") && msg.contains("identical to its row"),
        "{msg}"
    );
    let dir = results.join("exp/exports").join(&cell).join("default");
    for f in ["model.pt", "weights.safetensors", "default.wbc"] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    // The exported TorchScript is a model of its own: its weights are the artifact's.
    let mut card = wb_torch::find_card(&repo_root().join("models"), "resnet20").unwrap();
    card.file = dir.join("model.pt");
    let exported = wb_torch::TorchModel::load(&card, wb_torch::Device::Cpu).unwrap();
    let decoded = wb_core::container::read_file(&dir.join("default.wbc"))
        .unwrap()
        .decode()
        .unwrap();
    assert!(exported.weights().bit_identical(&decoded));
    // The Huffman-coded copy is a candidate too; a wrong name lists them.
    assert!(export(&["--candidate", "default.huffman-tensor"])
        .status
        .success());
    let out = export(&["--candidate", "nope"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("default, default.huffman-tensor"),
        "{err}"
    );
}

/// The first Chromium-family browser on the PATH.
fn browser() -> Option<String> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(str::to_string)
}

/// The HTML report of a real run, opened in headless Chromium: tables (made sortable by
/// its script, so the script ran), the figures as SVG, a screenshot, and no console
/// message. CI installs Chromium and sets `WEIGHTBENCH_REQUIRE_BROWSER=1`; elsewhere
/// the test says it was skipped when no browser is installed.
#[test]
fn html_report_opens_in_a_real_browser() {
    let Some(chromium) = browser() else {
        assert!(
            std::env::var_os("WEIGHTBENCH_REQUIRE_BROWSER").is_none(),
            "WEIGHTBENCH_REQUIRE_BROWSER is set but no chromium is installed"
        );
        eprintln!("skipped: no chromium on the PATH");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let body = "models = [\"resnet20\"]\ndatasets = [\"cifar10-exact932\"]\n[timing]\nenabled = false\n[[methods]]\nid = \"fp32\"\n[[methods]]\nid = \"kmeans-uniform\"\nparams = { k = [8, 16] }\n";
    let path = write_exp(tmp.path(), "web", body);
    let (results, reports) = (tmp.path().join("results"), tmp.path().join("reports"));
    let out = bin()
        .args(["run", "--quiet", "--results-dir"])
        .arg(&results)
        .arg("--reports-dir")
        .arg(&reports)
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = reports.join("web/index.html");
    assert!(reports.join("index.html").is_file());
    let url = format!("file://{}", page.display());
    let headless = |extra: &[&str]| {
        Command::new(&chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--enable-logging=stderr",
                "--v=0",
            ])
            .args(extra)
            .arg(&url)
            .output()
            .unwrap()
    };
    let dom = headless(&["--dump-dom"]);
    let html = String::from_utf8_lossy(&dom.stdout);
    assert!(
        html.contains("<table") && html.contains("class=\"sortable\""),
        "tables, sorted by the script"
    );
    assert!(
        html.contains("<img src=\"fig_resnet20_cifar10-exact932.svg\""),
        "the figure"
    );
    assert!(html.contains("kmeans-uniform"));
    let log = String::from_utf8_lossy(&dom.stderr);
    assert!(!log.contains(":CONSOLE"), "console messages:\n{log}");
    let shot = tmp.path().join("web.png");
    let s = headless(&[
        &format!("--screenshot={}", shot.display()),
        "--window-size=1300,1800",
    ]);
    assert!(s.status.success(), "{}", String::from_utf8_lossy(&s.stderr));
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 20_000,
        "a blank screenshot"
    );
}

/// The README's synopsis names every flag of every command.
#[test]
fn readme_synopsis_lists_every_flag() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let start = readme
        .find("## The `weightbench` binary")
        .expect("synopsis section");
    let synopsis = &readme[start..start + readme[start..].find("\n```\n").unwrap()];
    for cmd in [
        "run",
        "check",
        "report",
        "check-golden",
        "methods",
        "models",
        "datasets",
    ] {
        let out = bin().args([cmd, "--help"]).output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        for word in help.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
            let flag = word.trim_end_matches('-');
            if flag.starts_with("--") && flag.len() > 2 && flag != "--help" {
                assert!(
                    synopsis.contains(flag),
                    "`weightbench {cmd} {flag}` is not in the README synopsis"
                );
            }
        }
    }
}

/// `cell artifact top-1` of every row of experiment `name` under `root`, sorted; every
/// row must be `ok`.
fn row_keys(root: &Path, name: &str) -> Vec<String> {
    let df = read_all(&ResultsDir::new(root, name)).unwrap();
    assert!(col_str(&df, "status").iter().all(|s| s == "ok"));
    let mut k: Vec<String> = col_str(&df, "cell_id")
        .into_iter()
        .zip(col_str(&df, "artifact_sha256"))
        .zip(df.column("top1").unwrap().f64().unwrap().iter())
        .map(|((c, a), t)| format!("{c} {a} {t:?}"))
        .collect();
    k.sort();
    k
}

/// Two shards of one grid run at the same time on one results folder: each computes
/// its own cells, together every cell once, with the same artifacts and top-1 as one
/// process computing them all.
#[test]
fn concurrent_shards_compute_every_cell_once_like_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let body = "models = [\"resnet20\"]\ndatasets = [\"cifar10-exact932\"]\n[timing]\nenabled = false\n[[methods]]\nid = \"fp32\"\n[[methods]]\nid = \"kmeans-uniform\"\nparams = { k = [4, 8, 16, 32] }\n";
    let path = write_exp(tmp.path(), "sharded", body);
    let (sharded, whole) = (tmp.path().join("sharded"), tmp.path().join("whole"));
    let shards: Vec<_> = ["0/2", "1/2"]
        .iter()
        .map(|s| {
            quiet_run(&sharded, &path)
                .args(["--shard", s])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in shards {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = quiet_run(&whole, &path).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (a, b) = (row_keys(&sharded, "sharded"), row_keys(&whole, "sharded"));
    assert_eq!(a.len(), 5);
    assert_eq!(a, b);
    // No lock is left behind by either shard.
    let locks = std::fs::read_dir(sharded.join("sharded"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".lock"))
        .count();
    assert_eq!(locks, 0);
}

/// Three `--claim` workers on one results folder, one SIGKILLed while it holds a cell:
/// the others take its cell over (its dead claim is kept as a record), every cell ends
/// exactly once, no temporary file survives, and the rows equal those of `--jobs 2`
/// (two claim workers started by one command) on a fresh folder.
#[test]
fn claim_workers_share_a_grid_and_take_over_a_killed_workers_cell() {
    let tmp = tempfile::tempdir().unwrap();
    let body = "models = [\"resnet20\"]\ndatasets = [\"cifar10-exact932\"]\n[timing]\nenabled = false\n[[methods]]\nid = \"fp32\"\n[[methods]]\nid = \"bf16-cast\"\n[[methods]]\nid = \"kmeans-uniform\"\nparams = { k = [2, 4, 8, 16, 32, 64] }\n";
    let path = write_exp(tmp.path(), "claimed", body);
    let (claimed, jobs) = (tmp.path().join("claimed"), tmp.path().join("jobs"));
    let mut workers: Vec<_> = (0..3)
        .map(|_| {
            quiet_run(&claimed, &path)
                .args(["--claim", "--claim-timeout", "5", "--threads", "1"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // The first worker seen holding a (fully written) claim is killed.
    let claims = claimed.join("claimed").join(wb_runner::claim::CLAIMS_DIR);
    let holder = |pid: u32| {
        walk(&claims).into_iter().find(|p| {
            std::fs::read_to_string(p).is_ok_and(|t| t.contains(&format!("pid = {pid}\n")))
        })
    };
    let t0 = Instant::now();
    let (victim, dead_claim) = loop {
        let found = workers
            .iter()
            .enumerate()
            .find_map(|(i, w)| holder(w.id()).map(|p| (i, p)));
        if let Some(f) = found {
            break f;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "no worker claimed a cell"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut killed = workers.remove(victim);
    let killed_pid = killed.id();
    killed.kill().unwrap(); // SIGKILL
    killed.wait().unwrap();
    let mut said = String::new();
    for w in workers {
        let out = w.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{err}");
        said.push_str(&err);
    }
    assert!(
        said.contains(&format!("taken over from pid {killed_pid} ")),
        "no worker took the killed worker's cell over:\n{said}"
    );
    // The dead claim is kept; its cell has its result.
    assert!(dead_claim.is_file());
    let cell = dead_claim.parent().unwrap().file_name().unwrap();
    let dir = ResultsDir::new(&claimed, "claimed");
    assert!(dir.is_done(&cell.to_string_lossy()));
    assert!(walk(&claimed)
        .iter()
        .all(|p| !wb_core::io::is_temporary(&p.file_name().unwrap().to_string_lossy())));

    let out = quiet_run(&jobs, &path)
        .args(["--jobs", "2", "--threads", "2"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (a, b) = (row_keys(&claimed, "claimed"), row_keys(&jobs, "claimed"));
    assert_eq!(a.len(), 8, "{a:#?}");
    let mut ids: Vec<&str> = a.iter().map(|k| k.split(' ').next().unwrap()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 8, "a cell was published twice");
    assert_eq!(a, b);
}

/// A real search (ws-dse on ResNet20) with evaluations resumed from cached stage
/// activations and with the cache off: the same rows, bit for bit (artifacts, top-1).
#[test]
fn the_stage_cache_changes_no_result() {
    let tmp = tempfile::tempdir().unwrap();
    let body = "models = [\"resnet20\"]\ndatasets = [\"cifar10-exact932\"]\n[evaluation]\nsplit = \"heldout\"\n[search]\nimages = 300\n[timing]\nenabled = false\n[[methods]]\nid = \"ws-dse\"\nparams = { k_points = 3, pop_size = 6, generations = 2 }\n";
    let path = write_exp(tmp.path(), "staged", body);
    let (on, off) = (tmp.path().join("on"), tmp.path().join("off"));
    for (dir, mb) in [(&on, "1024"), (&off, "0")] {
        let out = quiet_run(dir, &path)
            .args(["--stage-cache-mb", mb])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        // Only the run with a budget says it resumes from cached activations.
        assert_eq!(err.contains("evaluations resume from"), mb != "0", "{err}");
    }
    let (a, b) = (row_keys(&on, "staged"), row_keys(&off, "staged"));
    assert!(a.len() > 1, "{a:?}");
    assert_eq!(a, b);
}

/// The scripts of `weightbench slurm`, run as Slurm would run them: two array tasks at
/// once (the shard from SLURM_ARRAY_TASK_ID/_COUNT), then the report script. Every cell
/// is computed once and the report is written. (A real slurmctld/slurmd pair is the
/// scale-out issue's `just test-slurm`.)
#[test]
fn slurm_scripts_run_as_an_array_and_report() {
    let tmp = tempfile::tempdir().unwrap();
    let body = "models = [\"resnet20\"]\ndatasets = [\"cifar10-exact932\"]\n[timing]\nenabled = false\n[[methods]]\nid = \"fp32\"\n[[methods]]\nid = \"kmeans-uniform\"\nparams = { k = [8, 16, 32] }\n";
    let path = write_exp(tmp.path(), "arr", body);
    let (results, reports) = (tmp.path().join("results"), tmp.path().join("reports"));
    let out = bin()
        .args(["slurm", "--tasks", "2", "--threads", "1", "--results-dir"])
        .arg(&results)
        .arg("--reports-dir")
        .arg(&reports)
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = results.join("arr/slurm");
    let array = std::fs::read_to_string(dir.join("array.sbatch")).unwrap();
    assert!(
        array.contains("#SBATCH --array=0-1") && array.contains("--threads 1"),
        "{array}"
    );
    let tasks: Vec<_> = (0..2)
        .map(|i| {
            Command::new("bash")
                .arg(dir.join("array.sbatch"))
                .env("SLURM_ARRAY_TASK_ID", i.to_string())
                .env("SLURM_ARRAY_TASK_COUNT", "2")
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for t in tasks {
        let o = t.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let df = read_all(&ResultsDir::new(&results, "arr")).unwrap();
    let mut ids = col_str(&df, "cell_id");
    ids.sort();
    ids.dedup();
    assert_eq!((df.height(), ids.len()), (4, 4));
    let o = Command::new("bash")
        .arg(dir.join("report.sbatch"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(reports.join("arr/index.html").is_file());
}

/// Two runs on one experiment: the second is refused while the first holds the lock
/// (naming it), the first finishes every cell once, and the lock goes with it.
#[test]
fn a_second_concurrent_run_is_refused_and_no_cell_is_computed_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let body = "models = [\"resnet20\"]\ndatasets = [\"cifar10-exact932\"]\n[timing]\nenabled = false\n[[methods]]\nid = \"kmeans-uniform\"\nparams = { k = [2, 4, 8, 16] }\n";
    let path = write_exp(tmp.path(), "twice", body);
    let results = tmp.path().join("results");
    let lock = results.join("twice").join(wb_runner::lock::LOCK_FILE);
    let run = || quiet_run(&results, &path);
    let first = run()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !lock.exists() && t0.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(lock.exists(), "the first run never took the lock");
    let second = run().output().unwrap();
    let first = first.wait_with_output().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("another run holds") && err.contains("pid"),
        "{err}"
    );
    assert!(!lock.exists(), "the lock outlived its run");
    let df = read_all(&ResultsDir::new(&results, "twice")).unwrap();
    let mut ids = col_str(&df, "cell_id");
    assert_eq!(ids.len(), 4);
    ids.dedup();
    assert_eq!(ids.len(), 4);
}

#[test]
fn a_run_with_a_failed_cell_exits_non_zero_and_says_how_to_retry() {
    let tmp = tempfile::tempdir().unwrap();
    // k = 65536 exceeds every layer of ResNet20: the cell fails, fast.
    let body = "models = [\"resnet20\"]\ndatasets = [\"cifar10-exact932\"]\n[timing]\nenabled = false\n[[methods]]\nid = \"kmeans-uniform\"\nparams = { k = 65536 }\n";
    let path = write_exp(tmp.path(), "fails", body);
    let out = quiet_run(tmp.path().join("results"), &path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("1 cell(s) of this run failed") && err.contains("--retry-failed"),
        "{err}"
    );
    // The failed row is stored all the same.
    let df = read_all(&ResultsDir::new(&tmp.path().join("results"), "fails")).unwrap();
    assert_eq!(col_str(&df, "status"), vec!["failed".to_string()]);
}

/// Every shipped experiment file parses and names registered methods with valid
/// parameters, real model cards and known datasets, so that `just run-experiment <name>`
/// does not fail on a typo after hours of other cells.
#[test]
fn shipped_experiment_files_are_valid() {
    let methods = registry::methods();
    let models_dir = repo_root().join("models");
    let model = |name: &str| {
        wb_torch::find_card(&models_dir, name)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let dataset = |id: &str| wb_torch::dataset(id).map(|_| ()).map_err(|e| e.to_string());
    let cat = Catalog {
        methods: &methods,
        model: &model,
        dataset: &dataset,
        search_dataset: &dataset,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_root().join("experiments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "experiment files: {files:?}");
    for f in &files {
        let exp = experiment::load(f, &cat).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            exp.name,
            f.file_stem().unwrap().to_str().unwrap(),
            "{}: the experiment's name should be its file stem",
            f.display()
        );
    }
}

#[test]
fn model_and_param_filters_select_cells_and_refuse_what_matches_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let body = r#"
models = ["resnet8", "resnet20"]
datasets = ["cifar10-exact932"]
[timing]
enabled = false
[[methods]]
id = "fp32"
[[methods]]
id = "kmeans-uniform"
params = { k = [4, 16] }
"#;
    let path = write_exp(tmp.path(), "sel", body);
    let exp = load(&path);
    let results = tmp.path().join("results");
    let mut o = opts(&results, false);
    let refused = |o: &RunOptions, needle: &str| {
        let e = wb_runner::run(&exp, &registry::methods(), o).unwrap_err();
        assert!(format!("{e:#}").contains(needle), "{e:#}");
    };

    o.only_models = vec!["resnet9".into()];
    refused(&o, "it has: resnet20, resnet8");
    o.only_models = vec!["resnet8".into()];
    o.only_params = vec![("q".into(), "4".into())];
    refused(&o, "no cell of the experiment has a parameter `q`");
    o.only_params = vec![("k".into(), "5".into())];
    refused(&o, "it has: 16, 4");
    o.only_params.clear();
    o.only_seeds = vec![7];
    refused(&o, "--seed 7: the experiment has no cell of it (it has: 0)");
    o.only_seeds = vec![0];
    assert!(!results.join("sel").join("cells").exists());

    // resnet8 only, and of kmeans-uniform only k = 4; fp32 has no `k` and stays in.
    o.only_params = vec![("k".into(), "4".into())];
    let s = wb_runner::run(&exp, &registry::methods(), &o).unwrap();
    assert_eq!((s.rows_written, s.cells_not_selected), (2, 4));
    let df = read_all(&ResultsDir::new(&results, "sel")).unwrap();
    let mut got: Vec<String> = col_str(&df, "model")
        .into_iter()
        .zip(col_str(&df, "params_json"))
        .map(|(m, p)| format!("{m} {p}"))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            "resnet8 {\"k\":4,\"max_iter\":100,\"tol\":0.0001}",
            "resnet8 {}"
        ]
    );
}

/// `index_codings` adds one row per post-stage for a codebook method, with real files
/// of the recoded artifact and the method row's accuracy; a method without indices
/// (int8) gets no extra row.
#[test]
fn index_coding_post_stages_add_real_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let body = r#"
models = ["resnet8"]
datasets = ["cifar10-exact932"]
[timing]
enabled = false
[[methods]]
id = "int8-affine"
index_codings = ["huffman-tensor"]
[[methods]]
id = "kmeans-uniform"
params = { k = 16 }
index_codings = ["huffman-tensor", "huffman-model"]
"#;
    let path = write_exp(tmp.path(), "post", body);
    let exp = load(&path);
    let results = tmp.path().join("r");
    wb_runner::run(&exp, &registry::methods(), &opts(&results, false)).unwrap();
    let df = read_all(&ResultsDir::new(&results, "post")).unwrap();
    let method = col_str(&df, "method");
    let coding = col_str(&df, "index_coding");
    let status = col_str(&df, "status");
    assert!(status.iter().all(|s| s == "ok"), "{status:?}");
    let u = |c: &str| -> Vec<Option<u64>> { df.column(c).unwrap().u64().unwrap().iter().collect() };
    let (correct, bytes, idx) = (
        u("top1_correct"),
        u("artifact_bytes"),
        u("artifact_bytes_indices"),
    );
    let at = |m: &str, c: &str| {
        (0..df.height())
            .find(|&i| method[i] == m && coding[i] == c)
            .unwrap_or_else(|| panic!("no row {m} {c}: {method:?} {coding:?}"))
    };
    assert_eq!(method.iter().filter(|m| *m == "int8-affine").count(), 1);
    let (fixed, tensor, model) = (
        at("kmeans-uniform", "method"),
        at("kmeans-uniform", "huffman-tensor"),
        at("kmeans-uniform", "huffman-model"),
    );
    for r in [tensor, model] {
        assert_eq!(
            correct[r], correct[fixed],
            "same decoded weights, same accuracy"
        );
        assert!(idx[r] < idx[fixed], "Huffman indices are smaller");
        assert!(bytes[r] < bytes[fixed]);
    }
    // Every row's artifact is a real file of its claimed size.
    let files = walk(&results.join("post/artifacts"));
    assert_eq!(files.len(), 4, "{files:?}");
    let mut sizes: Vec<u64> = files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .collect();
    let mut claimed: Vec<u64> = bytes.iter().map(|b| b.unwrap()).collect();
    sizes.sort();
    claimed.sort();
    assert_eq!(sizes, claimed);
}
