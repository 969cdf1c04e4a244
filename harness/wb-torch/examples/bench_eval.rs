//! Side-by-side evaluation throughput: weightbench's libtorch evaluator against PyTorch's
//! own (Python, same TorchScript file, same threads, same batch, same images), in one run.
//!
//! The two are **interleaved**: a PyTorch process is started once and kept waiting; each
//! round runs one weightbench pass and then one PyTorch pass (the order alternates between
//! rounds), and the ratio of the two is taken per round. The reported ratio is the median
//! of the per-round ratios, with its range: on a virtual machine whose speed drifts by
//! tens of percent within minutes, best-of-N of two separate runs would compare the
//! machine's moods, not the two implementations.
//!
//! weightbench's side runs with its allocator settings (`wb_torch::alloc`: freed
//! activations stay in the heap instead of being returned to the kernel and zeroed again
//! on the next pass); PyTorch's side runs as a user would start it, with glibc's
//! defaults. `--pytorch-malloc tuned` gives the PyTorch process the same settings
//! through glibc's `MALLOC_*_` environment variables, to show what is left once both
//! sides allocate alike.
//!
//! `just bench-eval` runs it; by hand:
//! `cargo run --release -p wb-torch --example bench_eval -- --python .venv/bin/python
//! [--rounds 9] [--batch 500] [--threads N] [--models resnet20,resnet56]
//! [--pytorch-malloc default|tuned]`.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;
use wb_core::Evaluator;
use wb_torch::{dataset, find_card, Batches, TorchEvaluator, TorchModel};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let data = std::env::var_os("WEIGHTBENCH_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/data"));
    let python = arg("--python").unwrap_or_else(|| "python3".into());
    let threads: usize = arg("--threads")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
    let batch: usize = arg("--batch")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(500);
    let rounds: usize = arg("--rounds")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(9)
        .max(1);
    let py_malloc = arg("--pytorch-malloc").unwrap_or_else(|| "default".into());
    // The environment equivalents of `wb_torch::alloc`'s mallopt calls.
    let py_env: &[(&str, &str)] = match py_malloc.as_str() {
        "default" => &[],
        "tuned" => &[
            ("MALLOC_MMAP_THRESHOLD_", "33554432"),
            ("MALLOC_TRIM_THRESHOLD_", "1073741824"),
            ("MALLOC_TOP_PAD_", "67108864"),
        ],
        other => {
            return Err(
                format!("--pytorch-malloc: `{other}` is neither `default` nor `tuned`").into(),
            )
        }
    };
    let models = arg("--models").unwrap_or_else(|| "resnet20,resnet56".into());
    let ds = "cifar10-jpeg75";
    tch::set_num_interop_threads(1);
    tch::set_num_threads(threads as i32);
    let spec = dataset(ds)?;
    let images = spec.load(&data)?;
    println!(
        "evaluation throughput on {ds} ({} images), batch {batch}, {threads} intra-op thread(s), 1 inter-op; {rounds} interleaved rounds after one warm-up pass each",
        images.len()
    );
    println!(
        "allocator: weightbench {}; pytorch glibc {py_malloc}",
        wb_torch::tune_allocator()
    );
    println!(
        "{:<10} {:>14} {:>14} {:>8} {:>17} {:>9}",
        "model", "weightbench", "pytorch", "ratio", "ratio range", "top-1"
    );
    for name in models.split(',') {
        let card = find_card(&root.join("models"), name)?;
        let mut model = TorchModel::load(&card, tch::Device::Cpu)?;
        let weights = model.weights().clone();
        let batches = Batches::new(&model, &images, batch)?;
        let mut ev = TorchEvaluator::new(&mut model, &batches);
        let mut child = Command::new(&python)
            .arg(root.join("harness/wb-torch/bench/eval_pytorch.py"))
            .arg("--model")
            .arg(card.model_path())
            .arg("--card")
            .arg(&card.card_path)
            .arg("--data")
            .arg(spec.path(&data))
            .args([
                "--threads",
                &threads.to_string(),
                "--batch",
                &batch.to_string(),
            ])
            .envs(py_env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {python}: {e}"))?;
        let mut to_py = child.stdin.take().ok_or("no stdin")?;
        let mut from_py = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
        let mut next_line = || -> Result<String, Box<dyn std::error::Error>> {
            Ok(from_py
                .next()
                .ok_or("the python benchmark exited early (see its error above)")??)
        };
        // Warm-up of both sides.
        let correct = ev.evaluate(&weights)?.top1_correct;
        let ready = next_line()?;
        if ready.trim() != "ready" {
            return Err(format!("python benchmark: unexpected `{ready}`").into());
        }
        let mut ours = Vec::with_capacity(rounds);
        let mut theirs = Vec::with_capacity(rounds);
        let mut ratios = Vec::with_capacity(rounds);
        for round in 0..rounds {
            let mut py = || -> Result<f64, Box<dyn std::error::Error>> {
                writeln!(to_py, "go")?;
                to_py.flush()?;
                let line = next_line()?;
                let mut secs = f64::NAN;
                let mut their_correct = usize::MAX;
                for kv in line.split_whitespace() {
                    if let Some(v) = kv.strip_prefix("seconds=") {
                        secs = v.parse()?;
                    }
                    if let Some(v) = kv.strip_prefix("top1_correct=") {
                        their_correct = v.parse()?;
                    }
                }
                if their_correct != correct {
                    return Err(format!(
                        "{name}: top-1 differs (weightbench {correct}, pytorch {their_correct})"
                    )
                    .into());
                }
                Ok(images.len() as f64 / secs)
            };
            let mut mine = || -> Result<f64, Box<dyn std::error::Error>> {
                let t = Instant::now();
                let acc = ev.evaluate(&weights)?;
                let dt = t.elapsed().as_secs_f64();
                assert_eq!(acc.top1_correct, correct, "non-deterministic evaluation");
                Ok(images.len() as f64 / dt)
            };
            // Alternate who goes first so that neither always runs on a warmer cache.
            let (a, b) = if round % 2 == 0 {
                let a = mine()?;
                (a, py()?)
            } else {
                let b = py()?;
                (mine()?, b)
            };
            ours.push(a);
            theirs.push(b);
            ratios.push(a / b);
        }
        drop(to_py);
        let _ = child.wait();
        let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        println!(
            "{:<10} {:>9.0} im/s {:>9.0} im/s {:>7.3}× {:>7.3}–{:<7.3}× {:>8.2}%",
            name,
            median(&mut ours),
            median(&mut theirs),
            median(&mut ratios),
            lo,
            hi,
            100.0 * correct as f64 / images.len() as f64
        );
    }
    println!("(throughputs: medians over the rounds; ratio: median of the per-round ratios, and their range)");
    Ok(())
}
