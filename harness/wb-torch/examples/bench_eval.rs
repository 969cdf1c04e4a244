//! Side-by-side evaluation throughput: weightbench's libtorch evaluator against PyTorch's
//! own (Python, same TorchScript file, same threads, same batch, same images), in one run.
//!
//! `just bench-eval` runs it; by hand:
//! `cargo run --release -p wb-torch --example bench_eval -- --python .venv/bin/python`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;
use wb_core::Evaluator;
use wb_torch::{dataset, find_card, Batches, TorchEvaluator, TorchModel};

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
    let reps: usize = arg("--reps").map(|s| s.parse()).transpose()?.unwrap_or(3);
    let models = arg("--models").unwrap_or_else(|| "resnet20,resnet56".into());
    let ds = "cifar10-jpeg75";
    tch::set_num_interop_threads(1);
    tch::set_num_threads(threads as i32);
    let spec = dataset(ds)?;
    let images = spec.load(&data)?;
    println!(
        "evaluation throughput on {ds} ({} images), batch {batch}, {threads} intra-op thread(s), 1 inter-op, best of {reps} after one warm-up pass",
        images.len()
    );
    println!(
        "{:<10} {:>14} {:>14} {:>8} {:>10}",
        "model", "weightbench", "pytorch", "ratio", "top-1"
    );
    for name in models.split(',') {
        let card = find_card(&root.join("models"), name)?;
        let mut model = TorchModel::load(&card, tch::Device::Cpu)?;
        let weights = model.weights().clone();
        let batches = Batches::new(&model, &images, batch)?;
        let mut ev = TorchEvaluator::new(&mut model, &batches);
        let mut best = f64::INFINITY;
        let mut correct = 0;
        for i in 0..=reps {
            let t = Instant::now();
            let acc = ev.evaluate(&weights)?;
            let dt = t.elapsed().as_secs_f64();
            correct = acc.top1_correct;
            if i > 0 {
                best = best.min(dt);
            }
        }
        let ours = images.len() as f64 / best;
        let out = Command::new(&python)
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
                "--reps",
                &reps.to_string(),
            ])
            .output()?;
        if !out.status.success() {
            return Err(format!(
                "python benchmark failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        let text = String::from_utf8(out.stdout)?;
        let mut theirs = f64::NAN;
        let mut their_correct = 0usize;
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("images_per_s=") {
                theirs = v.trim().parse()?;
            }
            if let Some(v) = line.strip_prefix("top1_correct=") {
                their_correct = v.trim().parse()?;
            }
        }
        if their_correct != correct {
            return Err(format!(
                "{name}: top-1 differs (weightbench {correct}, pytorch {their_correct})"
            )
            .into());
        }
        println!(
            "{:<10} {:>10.0} im/s {:>10.0} im/s {:>7.3}× {:>9.2}%",
            name,
            ours,
            theirs,
            ours / theirs,
            100.0 * correct as f64 / images.len() as f64
        );
    }
    Ok(())
}
