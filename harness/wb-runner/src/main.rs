//! `weightbench`: run compression experiments and report on them.

use anyhow::{bail, Context as _, Result};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::time::Duration;
use wb_runner::experiment::{self, Catalog};
use wb_runner::{registry, run, RunOptions};

#[derive(Parser)]
#[command(
    name = "weightbench",
    version,
    about = "Neural-network weight compression: accuracy, memory, time and energy on real models"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
struct Paths {
    /// Data directory (holds cifar10_test/ …). Default: $WEIGHTBENCH_DATA, else ../shared/data
    /// next to the repository.
    #[arg(long, env = "WEIGHTBENCH_DATA")]
    data_dir: Option<PathBuf>,
    /// A folder of model cards searched before the repository's models/ (repeatable).
    #[arg(long = "models-dir", value_name = "DIR")]
    models_dirs: Vec<PathBuf>,
    /// Results folder. Default: results/ in the repository.
    #[arg(long)]
    results_dir: Option<PathBuf>,
    /// Reports folder. Default: reports/ in the repository.
    #[arg(long)]
    reports_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run an experiment (skips finished cells) and write its report.
    Run {
        /// The experiment file, e.g. experiments/quick.toml.
        experiment: PathBuf,
        /// Re-run finished cells; their old results move to results/<name>/superseded/.
        #[arg(long)]
        force: bool,
        /// Re-run only the cells that failed (their old rows move to superseded/).
        #[arg(long)]
        retry_failed: bool,
        /// Device: cpu, cuda or cuda:N.
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Intra-op threads (default: all available cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Inter-op threads.
        #[arg(long, default_value_t = 1)]
        interop_threads: usize,
        /// Only run (or, with --force, re-run) the cells of this method; repeatable.
        #[arg(long = "method", value_name = "ID")]
        only_methods: Vec<String>,
        /// Only run (or, with --force, re-run) the cells of this model; repeatable, and
        /// combines with --method. The report still covers every finished cell.
        #[arg(long = "model", value_name = "NAME")]
        only_models: Vec<String>,
        /// Leave out the cells whose parameter KEY has another value (cells without
        /// KEY stay in); repeatable. E.g. `--param init=uniform` runs one ws-dse variant
        /// with the baselines it is compared with.
        #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        only_params: Vec<(String, String)>,
        /// Only run (or, with --force, re-run) the cells of this seed; repeatable, and
        /// combines with the other selections.
        #[arg(long = "seed", value_name = "N")]
        only_seeds: Vec<u64>,
        /// Run shard I of N of the grid (cells whose position is I modulo N), beside the
        /// other shards on the same results folder. Inside a Slurm job array the shard
        /// comes from SLURM_ARRAY_TASK_ID/_MIN/_COUNT when this is not given.
        #[arg(long, value_name = "I/N", value_parser = wb_runner::run::parse_shard)]
        shard: Option<(usize, usize)>,
        /// Take cells one at a time through claim files, beside any number of other
        /// `--claim` workers on the same results folder (several machines on shared
        /// storage, preemptible jobs). A dead worker's cell is taken over.
        #[arg(long, conflicts_with_all = ["shard", "force"])]
        claim: bool,
        /// Claim mode: a claim whose heartbeat has been silent this long is taken over
        /// (a worker on this host that died is taken over at once).
        #[arg(
            long,
            value_name = "SECONDS",
            default_value_t = 600,
            requires = "claim"
        )]
        claim_timeout: u64,
        /// Run N claim workers on this machine, the threads split between them; the
        /// report is written once they have all finished.
        #[arg(long, value_name = "N", conflicts_with_all = ["shard", "claim", "force"])]
        jobs: Option<usize>,
        /// Memory (MiB) for the FP32 activations of the search images at stage
        /// boundaries, from which searches resume (models whose card declares stages);
        /// 0 turns it off. Results are bit-identical either way.
        #[arg(long, value_name = "MIB", default_value_t = 1024)]
        stage_cache_mb: u64,
        /// Energy backend: sysfs (the default, weightbench's own powercap reader) or
        /// rapl-energy (the GPL-3.0 crate; needs a build with the rapl-energy cargo feature).
        #[arg(long, value_name = "NAME", default_value = "sysfs", value_parser = parse_energy_backend)]
        energy_backend: wb_measure::EnergyBackend,
        /// Do not write the report at the end.
        #[arg(long)]
        no_report: bool,
        /// No progress bars.
        #[arg(long)]
        quiet: bool,
        #[command(flatten)]
        paths: Paths,
    },
    /// Parse and check an experiment without running it; print its cells.
    Check {
        /// The experiment file.
        experiment: PathBuf,
        #[command(flatten)]
        paths: Paths,
    },
    /// Write tables and figures for results/<name>/ into reports/<name>/.
    Report {
        /// Experiment name.
        name: String,
        #[command(flatten)]
        paths: Paths,
    },
    /// Compare the results of an experiment with its golden table,
    /// experiments/golden/<name>.toml; exits non-zero naming every result that moved.
    /// Reads results/<name>/cells/, or the committed reports/<name>/<name>.csv without it.
    CheckGolden {
        /// Experiment name.
        name: String,
        /// Write the golden table from the current results instead (every method's own
        /// choice; review it before committing). Refuses to replace an existing file.
        #[arg(long)]
        write: bool,
        #[command(flatten)]
        paths: Paths,
    },
    /// List the registered methods and their parameters.
    Methods {
        /// Print only this method's parameter table, in Markdown (its README's table).
        #[arg(long, value_name = "ID")]
        markdown: Option<String>,
    },
    /// Export one candidate of a finished cell: TorchScript with the decoded weights,
    /// a safetensors file of them and the container, checked against the cell's row
    /// (same parameters, same logits, same top-1 on the reported images).
    Export {
        /// The experiment file the cell belongs to.
        experiment: PathBuf,
        /// The cell id (`weightbench check` lists them; also the `cell_id` column).
        #[arg(long)]
        cell: String,
        /// The candidate's artifact stem (`default`, `default.huffman-tensor` …).
        /// Default: the method's own choice, else the cell's only candidate.
        #[arg(long)]
        candidate: Option<String>,
        /// Output folder. Default: results/<name>/exports/<cell>/<candidate>/.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Device of the check: cpu, cuda or cuda:N.
        #[arg(long, default_value = "cpu")]
        device: String,
        #[command(flatten)]
        paths: Paths,
    },
    /// Write sbatch scripts that run an experiment as a Slurm job array (one shard of
    /// the grid per task) and write its report when the array ends; --submit queues them.
    Slurm {
        /// The experiment file.
        experiment: PathBuf,
        /// Array tasks (shards of the grid). Default: one per 8 cells, at most 32.
        #[arg(long)]
        tasks: Option<usize>,
        /// CPUs per task, also each task's intra-op threads.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Memory per task (Slurm syntax).
        #[arg(long, default_value = "8G")]
        mem: String,
        /// Time limit per task (Slurm syntax).
        #[arg(long, default_value = "12:00:00")]
        time: String,
        /// Partition.
        #[arg(long)]
        partition: Option<String>,
        /// GPUs per task; the runs then use --device cuda.
        #[arg(long)]
        gpus_per_task: Option<usize>,
        /// Array tasks take cells by claim (`run --claim`) instead of fixed shards: a
        /// preempted or failed task's cell is taken over by the others, and a later
        /// resubmission only computes what is left.
        #[arg(long)]
        claim: bool,
        /// Submit with sbatch (the array, then the report after it).
        #[arg(long)]
        submit: bool,
        #[command(flatten)]
        paths: Paths,
    },
    /// Show what is inside an artifact container: per tensor its encoding, table, index
    /// coding, bits per weight, index entropy and bytes by component (they add up to
    /// the file size).
    Inspect {
        /// The container file, e.g. results/quick/artifacts/<cell>/default.wbc.
        artifact: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List the model cards.
    Models {
        #[command(flatten)]
        paths: Paths,
    },
    /// List the registered datasets.
    Datasets,
}

/// `KEY=VALUE` of `--param`.
fn parse_key_value(s: &str) -> std::result::Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("`{s}`: expected KEY=VALUE, e.g. init=uniform")),
    }
}

/// `--energy-backend`: a backend this binary was built with.
fn parse_energy_backend(s: &str) -> std::result::Result<wb_measure::EnergyBackend, String> {
    s.parse()
        .map_err(|e: wb_measure::EnergyError| e.to_string())
}

struct Resolved {
    root: PathBuf,
    data: PathBuf,
    /// Card folders in search order.
    models: Vec<PathBuf>,
    results: PathBuf,
    reports: PathBuf,
}

/// `weightbench inspect`: reads the container (every check of the reader applies) and
/// prints its description; the components must add up to the file.
fn inspect(path: &Path, json: bool) -> Result<()> {
    let artifact = wb_core::container::read_file(path)?;
    let report = wb_core::inspect::inspect(&artifact);
    let file_bytes = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    if report.component_sum() != file_bytes {
        bail!(
            "{}: the components add up to {} bytes but the file has {file_bytes}",
            path.display(),
            report.component_sum()
        );
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}

/// `weightbench slurm`: writes the two scripts, prints them, and submits them when asked.
fn slurm(spec: &wb_runner::slurm::SlurmSpec, cells: usize, submit: bool) -> Result<()> {
    let dir = spec.dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let array = dir.join("array.sbatch");
    let report = dir.join("report.sbatch");
    wb_core::io::atomic_write(&array, spec.array_script().as_bytes())?;
    wb_core::io::atomic_write(&report, spec.report_script().as_bytes())?;
    println!("{}", spec.array_script());
    println!(
        "# {cells} cells in {} array tasks; scripts written to {}",
        spec.tasks,
        dir.display()
    );
    if !submit {
        println!(
            "# submit with:\n#   id=$(sbatch --parsable {})\n#   sbatch --dependency=afterany:$id {}",
            array.display(),
            report.display()
        );
        return Ok(());
    }
    let sbatch = |args: &[&str]| -> Result<String> {
        let out = std::process::Command::new("sbatch")
            .args(args)
            .output()
            .context("running sbatch (is Slurm's client on PATH?)")?;
        if !out.status.success() {
            bail!(
                "sbatch {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        // `--parsable` prints `jobid[;cluster]`.
        let id = String::from_utf8_lossy(&out.stdout);
        Ok(id.trim().split(';').next().unwrap_or_default().to_string())
    };
    let array_id = sbatch(&["--parsable", &array.to_string_lossy()])?;
    let dep = format!("--dependency=afterany:{array_id}");
    let report_id = sbatch(&["--parsable", &dep, &report.to_string_lossy()])?;
    println!("submitted: array job {array_id}, report job {report_id} (after the array)");
    Ok(())
}

/// `weightbench slurm`: the experiment's Slurm scripts (see [`slurm`]).
/// The arguments of this `run` for one of `--jobs` claim workers: the same command
/// without `--jobs`, `--threads`, `--quiet` and `--no-report`, then `--claim --quiet
/// --no-report --threads T`.
fn worker_args(args: &[std::ffi::OsString], threads: usize) -> Vec<std::ffi::OsString> {
    let mut out = Vec::new();
    let mut skip_value = false;
    for a in args {
        if std::mem::take(&mut skip_value) {
            continue;
        }
        let text = a.to_string_lossy();
        match text.as_ref() {
            "--jobs" | "--threads" => skip_value = true,
            "--quiet" | "--no-report" => {}
            t if t.starts_with("--jobs=") || t.starts_with("--threads=") => {}
            _ => out.push(a.clone()),
        }
    }
    for a in ["--claim", "--quiet", "--no-report", "--threads"] {
        out.push(a.into());
    }
    out.push(threads.to_string().into());
    out
}

/// `run --jobs N`: N claim workers on this machine, then the report once.
fn local_jobs(
    n: usize,
    threads: Option<usize>,
    no_report: bool,
    paths: &Paths,
    experiment: &Path,
) -> Result<()> {
    if n == 0 {
        bail!("--jobs must be ≥ 1");
    }
    let r = resolve(paths);
    // A broken experiment is one error here, not one per worker.
    let exp = load_experiment(experiment, &r)?;
    let total = threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let per = (total / n).max(1);
    let exe = std::env::current_exe().context("locating this binary")?;
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let args = worker_args(&args, per);
    eprintln!(
        "experiment `{}`: {n} claim workers with {per} thread(s) each",
        exp.name
    );
    let children: Vec<std::process::Child> = (0..n)
        .map(|i| {
            std::process::Command::new(&exe)
                .args(&args)
                .spawn()
                .with_context(|| format!("starting worker {i} ({})", exe.display()))
        })
        .collect::<Result<_>>()?;
    let mut failed = 0;
    for (i, mut c) in children.into_iter().enumerate() {
        let status = c
            .wait()
            .with_context(|| format!("waiting for worker {i}"))?;
        if !status.success() {
            eprintln!("worker {i} ended with {status}");
            failed += 1;
        }
    }
    if !no_report {
        report(&exp.name, &r)?;
    }
    if failed > 0 {
        bail!(
            "{failed} of {n} workers ended with an error (above); finished cells are kept, \
             and running the same command again takes up what is left"
        );
    }
    Ok(())
}

fn slurm_command(cmd: Cmd) -> Result<()> {
    let Cmd::Slurm {
        experiment,
        tasks,
        threads,
        mem,
        time,
        partition,
        gpus_per_task,
        claim,
        submit,
        paths,
    } = cmd
    else {
        unreachable!("called with Cmd::Slurm only")
    };
    let r = resolve(&paths);
    let exp = load_experiment(&experiment, &r)?;
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let spec = wb_runner::slurm::SlurmSpec {
        name: exp.name.clone(),
        experiment: abs(&experiment),
        binary: std::env::current_exe().context("locating the weightbench binary")?,
        tasks: tasks.unwrap_or(exp.cells.len().div_ceil(8).clamp(1, 32)),
        threads,
        mem,
        time,
        partition,
        gpus_per_task,
        claim,
        data_dir: abs(&r.data),
        models_dirs: r.models.iter().map(|d| abs(d)).collect(),
        results_dir: abs(&r.results),
        reports_dir: abs(&r.reports),
    };
    slurm(&spec, exp.cells.len(), submit)?;
    Ok(())
}

/// `weightbench export`: one candidate out, checked against its row.
fn export_command(cmd: Cmd) -> Result<()> {
    let Cmd::Export {
        experiment,
        cell,
        candidate,
        out,
        device,
        paths,
    } = cmd
    else {
        unreachable!("called with Cmd::Export only")
    };
    let r = resolve(&paths);
    let exp = load_experiment(&experiment, &r)?;
    let device = wb_torch::parse_device(&device)?;
    let req = wb_runner::export::ExportRequest {
        results_root: r.results.clone(),
        cell_id: cell,
        candidate,
        out_dir: out,
        models_dirs: r.models.clone(),
        data_dir: r.data.clone(),
        device,
    };
    let rep = wb_runner::export::export(&exp, &req)?;
    println!(
        "exported candidate `{}`: top-1 {} of {} reported images, identical to its row",
        rep.candidate, rep.top1_correct, rep.images
    );
    for f in &rep.files {
        println!("  {}", f.display());
    }
    Ok(())
}

fn resolve(p: &Paths) -> Resolved {
    let root = run::find_repo_root();
    Resolved {
        data: p
            .data_dir
            .clone()
            .unwrap_or_else(|| root.join("../shared/data")),
        models: p
            .models_dirs
            .iter()
            .cloned()
            .chain(std::iter::once(root.join("models")))
            .collect(),
        results: p
            .results_dir
            .clone()
            .unwrap_or_else(|| root.join("results")),
        reports: p
            .reports_dir
            .clone()
            .unwrap_or_else(|| root.join("reports")),
        root,
    }
}

fn load_experiment(path: &Path, r: &Resolved) -> Result<experiment::Experiment> {
    let methods = registry::methods();
    let models_dirs = r.models.clone();
    let model = move |name: &str| -> Result<(), String> {
        let card = wb_torch::find_card_in(&models_dirs, name).map_err(|e| e.to_string())?;
        let file = card.model_path();
        if !file.exists() {
            return Err(format!(
                "TorchScript file `{}` (named by `{}`) does not exist; run `just export-models`",
                file.display(),
                card.card_path.display()
            ));
        }
        Ok(())
    };
    let data_dir = r.data.clone();
    let dataset = move |id: &str| -> Result<(), String> {
        let spec = wb_torch::dataset(id).map_err(|e| e.to_string())?;
        if spec.role != wb_torch::Role::Eval {
            return Err(format!(
                "`{id}` is for calibration/retraining only and cannot be an evaluation dataset"
            ));
        }
        let p = spec.path(&data_dir);
        if !p.is_file() {
            return Err(format!(
                "dataset file not found: looked at `{}` (set --data-dir or WEIGHTBENCH_DATA)",
                p.display()
            ));
        }
        Ok(())
    };
    let data_dir = r.data.clone();
    let search_dataset = move |id: &str| -> Result<(), String> {
        let p = wb_torch::dataset(id)
            .map_err(|e| e.to_string())?
            .path(&data_dir);
        if !p.is_file() {
            return Err(format!(
                "dataset file not found: looked at `{}` (set --data-dir or WEIGHTBENCH_DATA)",
                p.display()
            ));
        }
        Ok(())
    };
    let catalog = Catalog {
        methods: &methods,
        model: &model,
        dataset: &dataset,
        search_dataset: &search_dataset,
    };
    Ok(experiment::load(path, &catalog)?)
}

fn report(name: &str, r: &Resolved) -> Result<()> {
    let opts = wb_report::ReportOptions {
        name: name.to_string(),
        results_dir: r.results.join(name),
        out_dir: r.reports.join(name),
        reference: Some(registry::REFERENCE.to_string()),
        views: registry::views(),
    };
    let s = wb_report::generate(&opts).with_context(|| format!("report for `{name}`"))?;
    println!(
        "report for `{name}`: {} ok rows, {} failed rows",
        s.rows_ok, s.rows_failed
    );
    for f in &s.files {
        println!("  {}", f.display());
    }
    Ok(())
}

/// `check-golden`: the current results of `name` against its golden table.
fn check_golden(name: &str, write: bool, r: &Resolved) -> Result<()> {
    use wb_report::golden;
    let path = r
        .root
        .join("experiments")
        .join("golden")
        .join(format!("{name}.toml"));
    let csv = r.reports.join(name).join(format!("{name}.csv"));
    let (current, source) = golden::current_results(&r.results.join(name), &csv)
        .with_context(|| format!("results of `{name}`"))?;
    if write {
        if path.exists() {
            bail!(
                "{} exists; golden values are never overwritten by the tool (edit or \
                 remove it by hand)",
                path.display()
            );
        }
        let g = golden::from_current(&current, &source)?;
        // Name the source relative to the repository, never as this machine's path.
        let from = source
            .strip_prefix(&r.root)
            .unwrap_or(&source)
            .display()
            .to_string();
        let text = format!(
            "# Golden results of experiments/{name}.toml, written from {from} by \
             `weightbench check-golden {name} --write`.\n{}",
            toml::to_string(&g).context("serializing the golden table")?
        );
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        wb_core::io::atomic_write(&path, text.as_bytes())?;
        println!("wrote {} ({} results)", path.display(), g.results.len());
        return Ok(());
    }
    let g = golden::read_golden(&path)?;
    let out = golden::check(&g, &current, &source)?;
    if !out.passed() {
        bail!(
            "{} of {} golden results of `{name}` moved (current values from {}):\n  {}",
            out.problems.len(),
            out.checked,
            out.source.display(),
            out.problems.join("\n  ")
        );
    }
    println!(
        "golden check of `{name}`: all {} results match (current values from {})",
        out.checked,
        out.source.display()
    );
    Ok(())
}

/// Prints a failure as its chain of causes only: a user error (a typo in an experiment
/// file, a missing model) gets no Rust backtrace even where `RUST_BACKTRACE` is set;
/// real panics keep theirs.
fn main() -> std::process::ExitCode {
    match run_cli() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `weightbench run`: one process (or `--jobs` workers) over the grid, then the report.
fn run_command(cmd: Cmd) -> Result<()> {
    let Cmd::Run {
        experiment,
        force,
        retry_failed,
        device,
        threads,
        interop_threads,
        no_report,
        quiet,
        only_methods,
        only_models,
        only_params,
        only_seeds,
        shard,
        claim,
        claim_timeout,
        jobs,
        stage_cache_mb,
        energy_backend,
        paths,
    } = cmd
    else {
        unreachable!("called with Cmd::Run only")
    };
    if let Some(n) = jobs {
        return local_jobs(n, threads, no_report, &paths, &experiment);
    }
    let r = resolve(&paths);
    let exp = load_experiment(&experiment, &r)?;
    let device = wb_torch::parse_device(&device)?;
    let threads = threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    if threads == 0 || interop_threads == 0 {
        bail!("--threads and --interop-threads must be ≥ 1");
    }
    wb_torch::set_threads(threads, interop_threads);
    let opts = RunOptions {
        models_dirs: r.models.clone(),
        data_dir: r.data.clone(),
        results_root: r.results.clone(),
        repo_root: r.root.clone(),
        device,
        threads,
        interop_threads,
        force,
        retry_failed,
        progress: !quiet,
        only_methods,
        only_models,
        only_params,
        only_seeds,
        shard: match shard {
            Some(s) => Some(s),
            // Claim workers of an array share the grid by claims, not shards.
            None if claim => None,
            None => wb_runner::run::slurm_shard(|k| std::env::var(k).ok())
                .map_err(|e| anyhow::anyhow!("Slurm array: {e}"))?,
        },
        stage_cache_mb,
        energy_backend,
        claim: claim.then(|| {
            wb_runner::claim::ClaimPolicy::with_timeout(Duration::from_secs(claim_timeout.max(1)))
        }),
    };
    eprintln!(
        "experiment `{}`: {} cells ({} models × {} datasets), device {}, {} threads",
        exp.name,
        exp.cells.len(),
        exp.models.len(),
        exp.datasets.len(),
        wb_torch::device_name(device),
        threads
    );
    let s = run(&exp, &registry::methods(), &opts)?;
    let others = if claim {
        format!(", {} done by other workers", s.cells_by_others)
    } else {
        String::new()
    };
    println!(
            "experiment `{}`: {} cells, {} already done{others}, {} not selected, {} ok, {} failed; {} rows written to {}",
            exp.name,
            s.cells_total,
            s.cells_skipped,
            s.cells_not_selected,
            s.cells_ok,
            s.cells_failed,
            s.rows_written,
            r.results.join(&exp.name).display()
        );
    if !no_report {
        report(&exp.name, &r)?;
    }
    if s.cells_failed > 0 {
        // Failed rows are stored (the sweep went on), but the run did not do
        // all it was asked: say so in the exit status, and how to redo them.
        bail!(
            "{} cell(s) of this run failed; the reasons are in their rows' `error` \
                 column and in the report. After fixing the cause, run again with \
                 --retry-failed to recompute only those cells",
            s.cells_failed
        );
    }
    Ok(())
}

fn run_cli() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        cmd @ Cmd::Run { .. } => run_command(cmd)?,
        Cmd::Check { experiment, paths } => {
            let r = resolve(&paths);
            let exp = load_experiment(&experiment, &r)?;
            println!(
                "experiment `{}` is valid: {} cells",
                exp.name,
                exp.cells.len()
            );
            for c in &exp.cells {
                println!("  {}  {}", c.id, c.params.to_json());
            }
        }
        Cmd::Report { name, paths } => report(&name, &resolve(&paths))?,
        Cmd::CheckGolden { name, write, paths } => check_golden(&name, write, &resolve(&paths))?,
        Cmd::Methods { markdown } => {
            let all = registry::methods();
            if let Some(id) = markdown {
                let m = all.iter().find(|m| m.id == id).with_context(|| {
                    let ids: Vec<&str> = all.iter().map(|m| m.id).collect();
                    format!("no method `{id}`; registered: {}", ids.join(", "))
                })?;
                print!("{}", wb_core::markdown_table(m.params));
                return Ok(());
            }
            for m in all {
                println!("{:<16} {}", m.id, m.summary);
                for p in m.params {
                    let d = match p.default {
                        Some(d) => format!(" (default {})", d.to_value()),
                        None => " (required)".into(),
                    };
                    println!("    {:<14} {}{d}: {}", p.name, p.kind, p.doc.trim());
                }
            }
        }
        Cmd::Models { paths } => {
            let r = resolve(&paths);
            let mut names: Vec<String> = Vec::new();
            for d in &r.models {
                for n in wb_torch::list_cards(d)? {
                    if !names.contains(&n) {
                        names.push(n);
                    }
                }
            }
            names.sort();
            for name in names {
                match wb_torch::find_card_in(&r.models, &name) {
                    Ok(c) => println!(
                        "{:<14} {}{}",
                        c.name,
                        c.description,
                        if c.model_path().exists() {
                            ""
                        } else {
                            "  [not exported]"
                        }
                    ),
                    Err(e) => println!("{name:<14} ERROR {e}"),
                }
            }
        }
        Cmd::Inspect { artifact, json } => inspect(&artifact, json)?,
        cmd @ Cmd::Slurm { .. } => slurm_command(cmd)?,
        cmd @ Cmd::Export { .. } => export_command(cmd)?,
        Cmd::Datasets => {
            for d in wb_torch::DATASETS {
                println!(
                    "{:<22} {:>6} images  {:?}  {}",
                    d.id, d.records, d.role, d.description
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_workers_get_claim_mode_and_their_share_of_threads() {
        let args: Vec<std::ffi::OsString> = [
            "run",
            "e.toml",
            "--jobs",
            "3",
            "--threads=6",
            "--quiet",
            "--method",
            "fp32",
        ]
        .iter()
        .map(Into::into)
        .collect();
        let got: Vec<String> = worker_args(&args, 2)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let want = [
            "run",
            "e.toml",
            "--method",
            "fp32",
            "--claim",
            "--quiet",
            "--no-report",
            "--threads",
            "2",
        ];
        assert_eq!(got, want);
    }
}
