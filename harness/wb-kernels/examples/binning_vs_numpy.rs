//! Side-by-side benchmark: `wb_kernels::uniform_bins` against NumPy (`np.digitize` +
//! `np.bincount`, the reference method's way) on the same data, checking that both
//! produce the same bins, counts and shared values.
//!
//! ```text
//! cargo run --release -p wb-kernels --example binning_vs_numpy -- \
//!     --python .venv/bin/python [--weights model.safetensors] [--k 16,256,1024] \
//!     [--repeat 5] [--synthetic 270000]
//! ```
//!
//! Data: with `--weights`, every conv/linear weight tensor of a safetensors file (the
//! float32 tensors of rank 2 or more whose name ends in `weight`) concatenated into one
//! vector (the method's model-wide codebook); otherwise seeded N(0, 0.05²) values. NumPy
//! runs in `benches/binning_numpy.py`. Times are the median of `--repeat` runs; the
//! table prints both, the speed ratio and whether the results agree.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use wb_kernels::uniform_bins;

struct Args {
    python: String,
    weights: Option<PathBuf>,
    ks: Vec<usize>,
    repeat: usize,
    synthetic: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        python: std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()),
        weights: None,
        ks: vec![16, 256, 1024],
        repeat: 5,
        synthetic: 270_000,
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
            "-h" | "--help" => {
                println!(
                    "binning_vs_numpy [--python P] [--weights F.safetensors] [--k 16,256,1024] \
                     [--repeat 5] [--synthetic N]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}` (try --help)")),
        }
    }
    Ok(a)
}

/// Conv/linear weights of a safetensors file, concatenated in name order.
fn load_weights(path: &Path) -> Result<Vec<f32>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut layers: Vec<(String, Vec<f32>)> = st
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
    layers.sort_by(|a, b| a.0.cmp(&b.0));
    if layers.is_empty() {
        return Err(format!("{}: no conv/linear weight tensor", path.display()));
    }
    Ok(layers.into_iter().flat_map(|(_, v)| v).collect())
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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn run_numpy(args: &Args, data: &[f32]) -> Result<Value, String> {
    let path = std::env::temp_dir().join(format!("wb-binning-bench-{}.f32", std::process::id()));
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/binning_numpy.py");
    let ks: Vec<String> = args.ks.iter().map(usize::to_string).collect();
    let out = Command::new(&args.python)
        .arg(&script)
        .arg("--data")
        .arg(&path)
        .arg("--k")
        .args(&ks)
        .args(["--repeat", &args.repeat.to_string()])
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
    serde_json::from_slice(&out.stdout).map_err(|e| format!("numpy output: {e}"))
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<(), String> {
    let args = parse_args()?;
    let (label, data) = match &args.weights {
        Some(p) => (
            format!("{}: conv/linear weights", p.display()),
            load_weights(p)?,
        ),
        None => (
            "synthetic N(0, 0.05^2), seed 20".to_string(),
            synthetic(args.synthetic, 20),
        ),
    };
    let np = run_numpy(&args, &data)?;
    println!(
        "uniform binning: wb_kernels::uniform_bins vs NumPy digitize + bincount (numpy {}); \
         {label}, n = {}, median of {} runs each",
        np["numpy"].as_str().unwrap_or("?"),
        data.len(),
        args.repeat
    );
    println!(
        "{:>6} {:>6} {:>10} {:>10} {:>9} {:>14}  agreement",
        "k", "B", "rust ms", "numpy ms", "speedup", "max |dv|"
    );
    let runs = np["runs"].as_array().ok_or("numpy output has no runs")?;
    let mut ratios = Vec::new();
    for (run, &k) in runs.iter().zip(&args.ks) {
        let mut times = Vec::new();
        let mut res = None;
        for _ in 0..args.repeat.max(1) {
            let t0 = Instant::now();
            let r = uniform_bins(&data, k).map_err(|e| e.to_string())?;
            times.push(t0.elapsed().as_secs_f64());
            res = Some(r);
        }
        let r = res.expect("at least one run");
        let t_rust = median(times);
        let t_np = median(
            run["times_s"]
                .as_array()
                .ok_or("times_s")?
                .iter()
                .filter_map(Value::as_f64)
                .collect(),
        );
        let ints = |key: &str| -> Vec<u64> {
            run[key]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default()
        };
        let np_values: Vec<f64> = run["values"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default();
        let same_bins = ints("bins") == r.bins.iter().map(|&b| u64::from(b)).collect::<Vec<_>>();
        let same_counts = ints("counts") == r.counts;
        let checksum: u64 = r
            .labels
            .iter()
            .enumerate()
            .map(|(i, &l)| u64::from(l) * (i as u64 % 1009 + 1))
            .sum();
        let same_labels = run["labels_checksum"].as_u64() == Some(checksum);
        let diff = r
            .values
            .iter()
            .zip(&np_values)
            .map(|(a, b)| (f64::from(*a) - b).abs())
            .fold(0.0, f64::max);
        let ratio = t_np / t_rust;
        ratios.push(ratio);
        println!(
            "{k:>6} {:>6} {:>10.3} {:>10.3} {:>8.1}x {:>14.3e}  bins {} counts {} labels {}",
            r.len(),
            t_rust * 1e3,
            t_np * 1e3,
            ratio,
            diff,
            if same_bins { "=" } else { "DIFFER" },
            if same_counts { "=" } else { "DIFFER" },
            if same_labels { "=" } else { "DIFFER" },
        );
    }
    if !ratios.is_empty() {
        let geo = (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len() as f64).exp();
        println!("\nspeed ratio NumPy / Rust: geometric mean {geo:.1}x");
    }
    Ok(())
}
