//! `just bench-search`: a fixed search budget — ws-dse's layer sweep, pruning and a few
//! NSGA-II generations, as `compare-all` configures it (`k_points = 10`) — with each
//! acceleration off and on, side by side in one run, on the same model, images,
//! threads and seed. Prints evaluations, forward work, wall time (whole search and
//! layer sweep), the speed-up against the plain search, and whether the search made the
//! same decisions (identical candidates, bit for bit).
//!
//! The runs alternate (plain, accelerated, plain, accelerated …) for `--rounds` rounds,
//! and the ratio is the median of the per-round ratios, so that a machine whose speed
//! drifts compares like with like.
//!
//! Accelerations: `stages` — the evaluator resumes from the FP32 activations of the
//! search images cached at stage boundaries (`--stage-cache-mb`, the run's default);
//! its building time is counted in the accelerated run. `stages+hard-first` adds the
//! runner's order of the search images (those FP32 finds hard first,
//! `Batches::hard_first`), so exact threshold answers stop sooner; both must decide
//! exactly as the plain run (the bench fails otherwise). With `--race CONFIDENCE`
//! and/or `--surrogate`, a fourth run adds racing and the surrogate screen on top of
//! both (`[search] race`, `[search] surrogate`); it may decide differently, so its
//! chosen point (search count and CR) is printed beside the plain one's. (Across cells
//! the runner also reuses every accuracy already known for the same weights and
//! images; a single search gains nothing from that, so it is not measured here.)
//!
//! By hand: `cargo run --release -p wb-runner --example bench_search -- [--models
//! resnet20,resnet56] [--images 2000] [--generations 3] [--rounds 1] [--threads N]
//! [--stage-cache-mb 1024] [--race 0.999] [--surrogate] [--batch 500]`.

use sha2::{Digest, Sha256};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;
use wb_core::{container, Cached, Context, Evaluator, Progress};
use wb_torch::stages::StageCache;
use wb_torch::{dataset, find_card, Batches, TorchEvaluator, TorchModel};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn num<T: std::str::FromStr>(name: &str, default: T) -> T {
    arg(name).and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Notes when the layer sweep ends: ws-dse announces `1 + sweep + pop × generations`
/// steps and advances one per evaluation of the sweep.
struct SweepClock {
    start: Instant,
    search_steps: u64,
    sweep_steps: Cell<u64>,
    done: Cell<u64>,
    sweep_s: Cell<Option<f64>>,
}

impl Progress for SweepClock {
    fn set_length(&self, len: u64) {
        self.sweep_steps.set(len.saturating_sub(self.search_steps));
    }
    fn inc(&self, n: u64) {
        self.done.set(self.done.get() + n);
        if self.sweep_s.get().is_none() && self.done.get() >= self.sweep_steps.get() {
            self.sweep_s.set(Some(self.start.elapsed().as_secs_f64()));
        }
    }
}

/// One search: wall time, sweep time, evaluations, stage work, candidates' digest,
/// the chosen point (search top-1 count, CR_global).
struct Outcome {
    wall_s: f64,
    sweep_s: f64,
    evaluations: u64,
    work: Option<(u64, u64)>,
    digest: String,
    chosen: Option<(u64, f64)>,
}

fn search(
    model: &mut TorchModel,
    batches: &Batches,
    params: &wb_core::Params,
    stage_cache_bytes: Option<u64>,
    accel: wb_core::Accel,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    let info = wb_runner::registry::methods()
        .into_iter()
        .find(|m| m.id == "ws-dse")
        .expect("ws-dse is registered");
    let method = (info.build)(params)?;
    let original = model.weights().clone();
    let (pop, generations) = (params.int("pop_size")?, params.int("generations")?);
    let clock = SweepClock {
        start: Instant::now(),
        search_steps: (pop * generations) as u64,
        sweep_steps: Cell::new(u64::MAX),
        done: Cell::new(0),
        sweep_s: Cell::new(None),
    };
    let cache = match stage_cache_bytes {
        Some(bytes) => StageCache::build(model, batches, bytes)?,
        None => None,
    };
    let mut ev = Cached::new(TorchEvaluator::new(model, batches).with_stage_cache(cache.as_ref()));
    let mut ctx = Context {
        seed: 0,
        evaluator: Some(&mut ev),
        trainer: None,
        gradients: None,
        progress: &clock,
        accel,
    };
    let candidates = wb_core::compress_checked(info.id, method.as_ref(), &original, &mut ctx)?;
    let wall_s = clock.start.elapsed().as_secs_f64();
    let mut h = Sha256::new();
    for c in &candidates {
        h.update(c.label.as_bytes());
        h.update([u8::from(c.chosen)]);
        h.update(container::write(&c.artifact)?);
    }
    let chosen = candidates.iter().find(|c| c.chosen).map(|c| {
        (
            c.extra["search_top1_correct"].as_u64().unwrap_or(0),
            c.extra["cr_global"].as_f64().unwrap_or(f64::NAN),
        )
    });
    Ok(Outcome {
        chosen,
        wall_s,
        sweep_s: clock.sweep_s.get().unwrap_or(wall_s),
        evaluations: ev.stats().evaluations,
        work: ev.inner().stage_work(),
        digest: wb_core::weights::hex(&h.finalize())[..16].to_string(),
    })
}

/// One run compared: its name, the stage cache's budget (none: whole forward passes),
/// whether the search images come hard-first, and the search accelerations.
struct Variant {
    name: &'static str,
    cache_bytes: Option<u64>,
    hard_first: bool,
    accel: wb_core::Accel,
}

/// The runs compared: plain, the stage cache, the stage cache with the hard images
/// first (both exact), and (when asked for) racing and the surrogate on top of them.
fn variants(cache_bytes: u64, accel: wb_core::Accel) -> Vec<Variant> {
    let off = wb_core::Accel::default();
    let v = |name, cache: Option<u64>, hard_first, accel| Variant {
        name,
        cache_bytes: cache,
        hard_first,
        accel,
    };
    let mut out = vec![
        v("plain", None, false, off),
        v("stages", Some(cache_bytes), false, off),
        v("stages+hard-first", Some(cache_bytes), true, off),
    ];
    if accel != off {
        out.push(v(
            "stages+hard-first+race+surrogate",
            Some(cache_bytes),
            true,
            accel,
        ));
    }
    out
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let data = std::env::var_os("WEIGHTBENCH_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/data"));
    let threads: usize = num(
        "--threads",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    let images: usize = num("--images", 2000);
    // Racing looks after every batch: smaller batches give it more looks.
    let batch: usize = num("--batch", 500usize).max(1);
    let generations: i64 = num("--generations", 3);
    let rounds: usize = num("--rounds", 1usize).max(1);
    let cache_mb: u64 = num("--stage-cache-mb", 1024);
    let models = arg("--models").unwrap_or_else(|| "resnet20,resnet56".into());
    let accel = wb_core::Accel {
        race: arg("--race").and_then(|s| s.parse().ok()),
        surrogate: std::env::args().any(|a| a == "--surrogate"),
    };
    wb_torch::set_threads(threads, 1);
    let mut given = BTreeMap::new();
    given.insert("k_points".to_string(), serde_json::json!(10));
    given.insert("generations".to_string(), serde_json::json!(generations));
    let info = wb_runner::registry::methods()
        .into_iter()
        .find(|m| m.id == "ws-dse")
        .expect("ws-dse is registered");
    let params = wb_core::check_params(info.params, &given)?;
    let pool = dataset("cifar10-jpeg75")?.load(&data)?;
    // Evenly spaced images of the test set: a fixed subset of the requested size.
    let pick: Vec<usize> = (0..images).map(|i| i * pool.len() / images).collect();
    let subset = pool.subset(&pick);
    println!(
        "bench-search: ws-dse {{k_points = 10, generations = {generations}}}, {images} images \
         of cifar10-jpeg75, batch {batch}, {threads} thread(s), {rounds} round(s), stage cache \
         {cache_mb} MiB; {}",
        wb_measure::env::Manifest::collect(&root).cpu_model
    );
    println!(
        "| model | run | evaluations | forward work | wall s | sweep s | speed-up (whole) | speed-up (sweep) | same decisions | chosen (search count, CR) |"
    );
    println!("|---|---|--:|--:|--:|--:|--:|--:|---|---|");
    for name in models.split(',') {
        let card = find_card(&root.join("models"), name)?;
        let mut model = TorchModel::load(&card, wb_torch::Device::Cpu)?;
        let batches = Batches::new(&model, &subset, batch)?;
        let fp32 = model.weights().clone();
        let hard = Batches::new(&model, &subset, batch)?.hard_first(&mut model, &fp32)?;
        let variants = variants(cache_mb << 20, accel);
        let mut ratios = vec![(Vec::new(), Vec::new()); variants.len()];
        let mut last = Vec::new();
        for round in 0..rounds {
            // Alternate the order, so no variant always meets a warmer machine.
            let mut order: Vec<usize> = (0..variants.len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            let mut runs: Vec<Option<Outcome>> = (0..variants.len()).map(|_| None).collect();
            for i in order {
                let v = &variants[i];
                let b = if v.hard_first { &hard } else { &batches };
                runs[i] = Some(search(&mut model, b, &params, v.cache_bytes, v.accel)?);
            }
            let runs: Vec<Outcome> = runs.into_iter().map(|o| o.expect("run")).collect();
            for (i, o) in runs.iter().enumerate() {
                ratios[i].0.push(runs[0].wall_s / o.wall_s);
                ratios[i].1.push(runs[0].sweep_s / o.sweep_s);
            }
            last = runs;
        }
        let plain_digest = last[0].digest.clone();
        for (i, o) in last.iter().enumerate() {
            let work = match o.work {
                Some((run, full)) => format!("{:.2}", run as f64 / full as f64),
                None => "1.00".into(),
            };
            let (w, sw) = (median(&mut ratios[i].0), median(&mut ratios[i].1));
            let same = if i == 0 {
                format!("digest {}", o.digest)
            } else if o.digest == plain_digest {
                "yes".into()
            } else {
                format!("no (digest {})", o.digest)
            };
            let chosen = o
                .chosen
                .map_or("none".into(), |(c, cr)| format!("{c}/{images} at {cr:.2}×"));
            println!(
                "| {name} | {} | {} | {work} | {:.1} | {:.1} | {w:.2}× | {sw:.2}× | {same} | {chosen} |",
                variants[i].name, o.evaluations, o.wall_s, o.sweep_s,
            );
        }
        for (v, o) in variants.iter().zip(&last).take(3) {
            if o.digest != plain_digest {
                return Err(format!("{name}: `{}` changed the search's decisions", v.name).into());
            }
        }
    }
    Ok(())
}
