//! Side-by-side benchmark: `wb_kernels::kmeans_1d` against scikit-learn's `KMeans`
//! on the same 1-D data, with the same initialisation (`linspace(min, max, k)`, one
//! init), the same iteration limit and the same (absolute) tolerance.
//!
//! ```text
//! cargo run --release -p wb-kernels --example kmeans_vs_sklearn -- \
//!     --python .venv/bin/python [--weights model.safetensors] [--k 4,16,64,256] \
//!     [--repeat 5] [--synthetic 270000] [--dtype float32|float64]
//! ```
//!
//! Data: with `--weights`, every conv/linear weight tensor of a safetensors file (the
//! float32 tensors of rank 2 or more whose name ends in `weight`), both concatenated and
//! the largest single layer; otherwise seeded N(0, 0.05²) values (`--synthetic n`).
//! scikit-learn runs in `benches/kmeans_sklearn.py` (`just bench-kmeans` installs it into
//! the project venv). Times are the median of `--repeat` runs of each; the table prints
//! both, the ratio, the iterations and the largest centroid difference. scikit-learn
//! relocates empty clusters where the kernel sets them to 0.0 (the reference's rule), so
//! rows where the kernel had an empty cluster are marked and their centroids not
//! comparable.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use wb_kernels::{kmeans_1d, KMeans1dParams};

struct Args {
    python: String,
    weights: Option<PathBuf>,
    ks: Vec<usize>,
    repeat: usize,
    synthetic: usize,
    dtype: String,
    max_iter: usize,
    tol: f64,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        python: std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()),
        weights: None,
        ks: vec![4, 16, 64, 256],
        repeat: 5,
        synthetic: 270_000,
        dtype: "float32".into(),
        max_iter: 100,
        tol: 1e-4,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--python" => a.python = val()?,
            "--weights" => a.weights = Some(PathBuf::from(val()?)),
            "--k" => {
                a.ks = val()?
                    .split(',')
                    .map(|s| s.trim().parse().map_err(|e| format!("--k {s}: {e}")))
                    .collect::<Result<_, _>>()?
            }
            "--repeat" => a.repeat = val()?.parse().map_err(|e| format!("--repeat: {e}"))?,
            "--synthetic" => {
                a.synthetic = val()?.parse().map_err(|e| format!("--synthetic: {e}"))?
            }
            "--dtype" => a.dtype = val()?,
            "--max-iter" => a.max_iter = val()?.parse().map_err(|e| format!("--max-iter: {e}"))?,
            "--tol" => a.tol = val()?.parse().map_err(|e| format!("--tol: {e}"))?,
            "-h" | "--help" => {
                println!(
                    "kmeans_vs_sklearn [--python P] [--weights F.safetensors] [--k 4,16,64,256] \
                     [--repeat 5] [--synthetic N] [--dtype float32|float64] [--max-iter 100] \
                     [--tol 1e-4]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}` (try --help)")),
        }
    }
    Ok(a)
}

/// Conv/linear weights of a safetensors file, in file order.
fn load_weights(path: &Path) -> Result<Vec<(String, Vec<f32>)>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out: Vec<(String, Vec<f32>)> = st
        .tensors()
        .into_iter()
        .filter(|(name, t)| {
            name.ends_with("weight") && t.shape().len() >= 2 && t.dtype() == safetensors::Dtype::F32
        })
        .map(|(name, t)| {
            let v = t
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (name, v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    if out.is_empty() {
        return Err(format!("{}: no conv/linear weight tensor", path.display()));
    }
    Ok(out)
}

fn synthetic(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let u1: f64 = 1.0 - rng.random::<f64>();
            let u2: f64 = rng.random::<f64>();
            (0.05 * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
        })
        .collect()
}

/// Number of assignment steps of the kernel's run in which some cluster got no value
/// (the kernel sets such a centroid to 0.0, scikit-learn relocates it, so the runs part).
/// Step 1 assigns to the linspace initialisation; step `t + 1` to the centroids of a run
/// truncated at `t` iterations, whose labels are exactly that assignment.
fn empty_steps(data: &[f32], params: &KMeans1dParams, iterations: usize) -> Result<usize, String> {
    let k = params.k;
    let (lo, hi) = data
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    let mut steps = 0;
    if k > 1 && hi > lo {
        let step = (f64::from(hi) - f64::from(lo)) / (k - 1) as f64;
        let mut seen = vec![false; k];
        for &x in data {
            let j = ((f64::from(x) - f64::from(lo)) / step).round() as usize;
            seen[j.min(k - 1)] = true;
        }
        steps += usize::from(seen.iter().any(|s| !s));
    }
    for t in 1..iterations {
        let r = kmeans_1d(
            data,
            &KMeans1dParams {
                max_iter: t,
                ..*params
            },
        )
        .map_err(|e| e.to_string())?;
        let mut seen = vec![false; k];
        for &l in &r.labels {
            seen[l as usize] = true;
        }
        steps += usize::from(seen.iter().any(|s| !s));
    }
    Ok(steps)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn run_sklearn(args: &Args, data: &[f32]) -> Result<Value, String> {
    let path = std::env::temp_dir().join(format!("wb-kmeans-bench-{}.f32", std::process::id()));
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/kmeans_sklearn.py");
    let ks: Vec<String> = args.ks.iter().map(usize::to_string).collect();
    let out = Command::new(&args.python)
        .arg(&script)
        .arg("--data")
        .arg(&path)
        .arg("--k")
        .args(&ks)
        .args(["--max-iter", &args.max_iter.to_string()])
        .args(["--tol", &args.tol.to_string()])
        .args(["--repeat", &args.repeat.to_string()])
        .args(["--dtype", &args.dtype])
        .output()
        .map_err(|e| format!("running {}: {e}", args.python))?;
    let _ = std::fs::remove_file(&path);
    if !out.status.success() {
        return Err(format!(
            "{} {} failed ({}):\n{}",
            args.python,
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("sklearn output: {e}"))
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<(), String> {
    let args = parse_args()?;
    let mut sets: Vec<(String, Vec<f32>)> = Vec::new();
    match &args.weights {
        Some(p) => {
            let layers = load_weights(p)?;
            let all: Vec<f32> = layers.iter().flat_map(|(_, v)| v.iter().copied()).collect();
            let (name, largest) = layers
                .iter()
                .max_by_key(|(_, v)| v.len())
                .cloned()
                .expect("non-empty");
            let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
            sets.push((
                format!("{stem}: all {} conv/linear weights", layers.len()),
                all,
            ));
            sets.push((format!("{stem}: {name}"), largest));
        }
        None => sets.push((
            "synthetic N(0, 0.05^2), seed 20".to_string(),
            synthetic(args.synthetic, 20),
        )),
    }
    println!(
        "1-D k-means: wb_kernels::kmeans_1d vs scikit-learn KMeans(init=linspace, n_init=1, \
         algorithm=lloyd, max_iter={}, absolute tol={}); median of {} runs each, sklearn dtype {}",
        args.max_iter, args.tol, args.repeat, args.dtype
    );
    let mut ratios = Vec::new();
    let mut worst_diff = 0.0f64;
    for (label, data) in &sets {
        let sk = run_sklearn(&args, data)?;
        println!(
            "\n{label}: n = {} (scikit-learn {}, numpy {})",
            data.len(),
            sk["sklearn"].as_str().unwrap_or("?"),
            sk["numpy"].as_str().unwrap_or("?")
        );
        println!(
            "{:>6} {:>12} {:>12} {:>9} {:>11} {:>14}  note",
            "k", "rust ms", "sklearn ms", "speedup", "iter r/s", "max |dc|"
        );
        let runs = sk["runs"].as_array().ok_or("sklearn output has no runs")?;
        for (run, &k) in runs.iter().zip(&args.ks) {
            let params = KMeans1dParams {
                k,
                max_iter: args.max_iter,
                tol: args.tol,
            };
            let mut times = Vec::new();
            let mut res = None;
            for _ in 0..args.repeat.max(1) {
                let t0 = Instant::now();
                let r = kmeans_1d(data, &params).map_err(|e| e.to_string())?;
                times.push(t0.elapsed().as_secs_f64());
                res = Some(r);
            }
            let r = res.expect("at least one run");
            let t_rust = median(times);
            let t_sk = median(
                run["times_s"]
                    .as_array()
                    .ok_or("times_s")?
                    .iter()
                    .filter_map(Value::as_f64)
                    .collect(),
            );
            let c_sk: Vec<f64> = run["centroids"]
                .as_array()
                .ok_or("centroids")?
                .iter()
                .filter_map(Value::as_f64)
                .collect();
            let empty = empty_steps(data, &params, r.iterations)?;
            let diff = r
                .centroids
                .iter()
                .zip(&c_sk)
                .map(|(a, b)| (f64::from(*a) - b).abs())
                .fold(0.0, f64::max);
            let ratio = t_sk / t_rust;
            let note = if empty > 0 {
                format!("a cluster was empty in {empty} step(s) (kernel: 0.0, sklearn: relocation)")
            } else {
                worst_diff = worst_diff.max(diff);
                ratios.push(ratio);
                String::new()
            };
            println!(
                "{k:>6} {:>12.3} {:>12.3} {:>8.1}x {:>5}/{:<5} {:>14.3e}  {note}",
                t_rust * 1e3,
                t_sk * 1e3,
                ratio,
                r.iterations,
                run["n_iter"].as_u64().unwrap_or(0),
                diff,
            );
        }
    }
    if !ratios.is_empty() {
        let geo = (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len() as f64).exp();
        let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        println!(
            "\nspeed-up over scikit-learn (rows without empty clusters): geometric mean {geo:.1}x, \
             minimum {min:.1}x; largest centroid difference {worst_diff:.3e}"
        );
    }
    Ok(())
}
