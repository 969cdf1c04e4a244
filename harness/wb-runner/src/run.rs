//! Running an experiment: cells in order, results written after every cell, finished
//! cells skipped, failures recorded as rows, `--force` superseding (never deleting).

use crate::experiment::{Cell, EvalSplit, Experiment};
use crate::progress::{Bars, StepProgress};
use crate::results::{self, ResultsDir, Row, Status};
use anyhow::{anyhow, bail, Context as _, Result};
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Instant;
use wb_core::{container, Artifact, Cached, Context, Evaluator, MethodInfo, WeightSet};
use wb_torch::Device;
use wb_torch::{Batches, Images, Split, TorchEvaluator, TorchModel};

/// Where things are and how to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Folders of model cards, searched in order (`--models-dir` folders, then the
    /// repository's `models/`).
    pub models_dirs: Vec<PathBuf>,
    /// Data directory (holds `cifar10_test/` …).
    pub data_dir: PathBuf,
    /// `results/` (the experiment's folder is created below it).
    pub results_root: PathBuf,
    /// Repository root (git SHA, Cargo.lock hash for the manifest).
    pub repo_root: PathBuf,
    /// Device for evaluation and timing.
    pub device: Device,
    /// Intra-op threads (recorded in every row).
    pub threads: usize,
    /// Inter-op threads.
    pub interop_threads: usize,
    /// Re-run finished cells, moving their old results to `superseded/`.
    pub force: bool,
    /// Re-run cells whose result has a `failed` row (old result moved to `superseded/`).
    pub retry_failed: bool,
    /// Draw progress bars.
    pub progress: bool,
    /// Run only the cells of these method ids (empty: all). Other cells are left as
    /// they are, finished or not.
    pub only_methods: Vec<String>,
    /// Run only the cells of these models (empty: all); combines with `only_methods`.
    pub only_models: Vec<String>,
    /// `(parameter, value)` pairs: a cell whose parameters hold one of these keys with
    /// another value is left out (cells of methods without the key stay in), so
    /// `init=uniform` selects one variant and keeps the baselines it is compared with.
    pub only_params: Vec<(String, String)>,
    /// Run only the cells of these seeds (empty: all); combines with the others, so
    /// the first seed of every expensive method can finish before the next.
    pub only_seeds: Vec<u64>,
    /// Run only shard `(index, count)` of the grid: the cells whose position in the
    /// grid is `index` modulo `count` (round robin, so expensive neighbours spread).
    pub shard: Option<(usize, usize)>,
    /// Claim mode (`--claim`): take cells one at a time through claim files, beside
    /// any number of other workers on the same results folder.
    pub claim: Option<crate::claim::ClaimPolicy>,
    /// Memory for the FP32 activations searches resume from (MiB; 0 turns the stage
    /// cache off). Results are bit-identical either way; only the time changes.
    pub stage_cache_mb: u64,
    /// Which code reads the RAPL counters (`--energy-backend`).
    pub energy_backend: wb_measure::EnergyBackend,
}

/// Parses `I/N` (shard I of N, `0 ≤ I < N`).
///
/// # Errors
/// The reason, for anything else.
pub fn parse_shard(s: &str) -> std::result::Result<(usize, usize), String> {
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}`: expected I/N, e.g. 0/4"))?;
    let (i, n): (usize, usize) = (
        i.trim()
            .parse()
            .map_err(|_| format!("`{s}`: `{i}` is not a shard index"))?,
        n.trim()
            .parse()
            .map_err(|_| format!("`{s}`: `{n}` is not a shard count"))?,
    );
    if n == 0 || i >= n {
        return Err(format!(
            "`{s}`: the index must be below the count (0/{n} … {}/{n})",
            n.max(1) - 1
        ));
    }
    Ok((i, n))
}

/// The shard of this process inside a Slurm job array (`SLURM_ARRAY_TASK_ID` minus
/// `SLURM_ARRAY_TASK_MIN`, of `SLURM_ARRAY_TASK_COUNT`), when it runs in one.
///
/// # Errors
/// When the variables are there but inconsistent.
pub fn slurm_shard(
    var: impl Fn(&str) -> Option<String>,
) -> std::result::Result<Option<(usize, usize)>, String> {
    let (Some(id), Some(count)) = (var("SLURM_ARRAY_TASK_ID"), var("SLURM_ARRAY_TASK_COUNT"))
    else {
        return Ok(None);
    };
    let min = var("SLURM_ARRAY_TASK_MIN").unwrap_or_else(|| "0".into());
    let num = |k: &str, v: &str| {
        v.trim()
            .parse::<usize>()
            .map_err(|_| format!("{k}=`{v}` is not a number"))
    };
    let (id, count, min) = (
        num("SLURM_ARRAY_TASK_ID", &id)?,
        num("SLURM_ARRAY_TASK_COUNT", &count)?,
        num("SLURM_ARRAY_TASK_MIN", &min)?,
    );
    let index = id
        .checked_sub(min)
        .filter(|i| *i < count)
        .ok_or_else(|| format!("array task {id} is outside {min}..{min}+{count}"))?;
    Ok(Some((index, count)))
}

impl RunOptions {
    /// Whether `--method` / `--model` / `--param` / `--seed` select `cell`.
    pub(crate) fn selects(&self, cell: &Cell) -> bool {
        let pick = |wanted: &[String], have: &String| wanted.is_empty() || wanted.contains(have);
        let params = cell.params.as_map();
        let agrees = self
            .only_params
            .iter()
            .all(|(k, want)| params.get(k).is_none_or(|v| param_matches(v, want)));
        let seed = self.only_seeds.is_empty() || self.only_seeds.contains(&cell.seed);
        pick(&self.only_methods, &cell.method)
            && pick(&self.only_models, &cell.model)
            && agrees
            && seed
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Cells in the grid.
    pub cells_total: usize,
    /// Cells skipped because their result already existed.
    pub cells_skipped: usize,
    /// Cells left out by `--method` / `--model`.
    pub cells_not_selected: usize,
    /// Cells run whose rows are all `ok`.
    pub cells_ok: usize,
    /// Cells run with at least one `failed` row.
    pub cells_failed: usize,
    /// Rows written by this run.
    pub rows_written: usize,
    /// Claim mode: cells of this run's plan that other workers finished.
    pub cells_by_others: usize,
}

/// Whether a parameter value equals `want` as written on the command line (a string
/// without its quotes, anything else as JSON: `4`, `0.5`, `true`).
fn param_matches(v: &serde_json::Value, want: &str) -> bool {
    match v {
        serde_json::Value::String(s) => s == want,
        // Numbers and booleans compare by their JSON text (`4`, `0.5`, `true`).
        other => {
            let text = other.to_string();
            text == want
        }
    }
}

/// Fails when a `--param` key is a parameter of no cell, or no cell has that value.
fn check_param_selection(wanted: &[(String, String)], exp: &Experiment) -> Result<()> {
    for (k, want) in wanted {
        let values: Vec<String> = exp
            .cells
            .iter()
            .filter_map(|c| c.params.as_map().get(k))
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .collect();
        if values.is_empty() {
            bail!("--param {k}={want}: no cell of the experiment has a parameter `{k}`");
        }
        if !values.iter().any(|v| v == want) {
            let mut have = values;
            have.sort_unstable();
            have.dedup();
            bail!(
                "--param {k}={want}: no cell has that value (it has: {})",
                have.join(", ")
            );
        }
    }
    Ok(())
}

/// Fails when a `--method` / `--model` value names nothing in the experiment, listing
/// what it has.
fn check_selection(
    flag: &str,
    wanted: &[String],
    exp: &Experiment,
    key: impl Fn(&Cell) -> &String,
) -> Result<()> {
    for w in wanted {
        if !exp.cells.iter().any(|c| key(c) == w) {
            let mut have: Vec<&str> = exp.cells.iter().map(|c| key(c).as_str()).collect();
            have.sort_unstable();
            have.dedup();
            bail!(
                "{flag} `{w}`: the experiment has no cell of it (it has: {})",
                have.join(", ")
            );
        }
    }
    Ok(())
}

/// What a selected cell needs in this run.
enum Action {
    /// No result yet.
    Compute,
    /// A result that `--force` or `--retry-failed` replaces (moved to `superseded/`).
    Supersede,
    /// A result file that cannot be read back (moved to `corrupt/`), and why.
    Corrupt(String),
}

/// Checks every input the cells will read — model cards, TorchScript files (they load,
/// and every parameter and buffer is finite), datasets (size and checksum) — before any
/// cell runs, so that a broken input is one error listing every problem and a non-zero
/// exit, not a `failed` row per cell that a later run would skip as done. The datasets
/// read stay in `datasets` for the run.
fn preflight<'a>(
    exp: &Experiment,
    opts: &RunOptions,
    cells: impl Iterator<Item = &'a Cell>,
    datasets: &mut HashMap<String, Images>,
) -> Result<()> {
    let mut models: Vec<&str> = Vec::new();
    let mut ids: Vec<&str> = exp.search_dataset.iter().map(String::as_str).collect();
    for c in cells {
        if !models.contains(&c.model.as_str()) {
            models.push(&c.model);
        }
        if !ids.contains(&c.dataset.as_str()) {
            ids.push(&c.dataset);
        }
    }
    let mut problems: Vec<String> = Vec::new();
    for m in models {
        let loaded = wb_torch::find_card_in(&opts.models_dirs, m)
            .and_then(|card| TorchModel::load(&card, opts.device).map(drop));
        if let Err(e) = loaded {
            let msg = e.to_string();
            let named = format!("model `{m}`");
            problems.push(if msg.starts_with(&named) {
                msg
            } else {
                format!("{named}: {msg}")
            });
        }
    }
    for id in ids {
        if datasets.contains_key(id) {
            continue;
        }
        match wb_torch::dataset(id).and_then(|spec| spec.load(&opts.data_dir)) {
            Ok(images) => {
                datasets.insert(id.to_string(), images);
            }
            Err(e) => problems.push(format!("dataset `{id}`: {e}")),
        }
    }
    if !problems.is_empty() {
        bail!(
            "{} input problem(s); no cell was run and no result was touched:\n  - {}",
            problems.len(),
            problems.join("\n  - ")
        );
    }
    Ok(())
}

/// Facts recorded in every row of one run.
#[derive(Debug, Clone)]
pub(crate) struct RunInfo {
    pub device: String,
    pub git_sha: String,
    pub manifest_id: String,
    pub host: String,
    pub threads: usize,
    pub energy_source: String,
}

fn now_stamp() -> String {
    wb_measure::env::rfc3339_utc(std::time::SystemTime::now())
}

/// Refuses `--method`, `--model`, `--param` or `--seed` values that select nothing.
fn check_selections(exp: &Experiment, opts: &RunOptions) -> Result<()> {
    check_selection("--method", &opts.only_methods, exp, |c| &c.method)?;
    check_selection("--model", &opts.only_models, exp, |c| &c.model)?;
    check_param_selection(&opts.only_params, exp)?;
    for s in &opts.only_seeds {
        if !exp.cells.iter().any(|c| c.seed == *s) {
            let mut have: Vec<u64> = exp.cells.iter().map(|c| c.seed).collect();
            have.sort_unstable();
            have.dedup();
            let have: Vec<String> = have.iter().map(u64::to_string).collect();
            bail!(
                "--seed {s}: the experiment has no cell of it (it has: {})",
                have.join(", ")
            );
        }
    }
    Ok(())
}

/// What each selected cell of this run (and shard) needs, decided without touching a
/// file; skipped and unselected cells are counted in `summary`.
fn plan_cells<'a>(
    exp: &'a Experiment,
    opts: &RunOptions,
    dir: &ResultsDir,
    summary: &mut RunSummary,
) -> Vec<(&'a Cell, Action)> {
    let mut plan: Vec<(&Cell, Action)> = Vec::new();
    for (position, cell) in exp.cells.iter().enumerate() {
        let in_shard = opts.shard.is_none_or(|(i, n)| position % n == i);
        if !in_shard || !opts.selects(cell) {
            summary.cells_not_selected += 1;
            continue;
        }
        let action = if !dir.is_done(&cell.id) {
            Action::Compute
        } else {
            // Reading the file back is also the check that it is a finished cell.
            match dir.has_failed_rows(&cell.id) {
                Err(why) => Action::Corrupt(format!("{why:#}")),
                Ok(failed) if opts.force || (opts.retry_failed && failed) => Action::Supersede,
                Ok(_) => {
                    summary.cells_skipped += 1;
                    continue;
                }
            }
        };
        plan.push((cell, action));
    }
    plan
}

/// Runs every cell of `exp` that has no result yet (all of them with `force`); in
/// claim mode, the cells this worker manages to claim.
pub fn run(exp: &Experiment, methods: &[MethodInfo], opts: &RunOptions) -> Result<RunSummary> {
    // A bad selection is refused before anything is created.
    check_selections(exp, opts)?;
    if opts.claim.is_some() && (opts.shard.is_some() || opts.force) {
        bail!(
            "--claim takes cells one at a time from any worker: it cannot be combined with \
             --shard (a fixed division) or --force (every worker would redo every cell)"
        );
    }
    let dir = ResultsDir::new(&opts.results_root, &exp.name);
    std::fs::create_dir_all(dir.cells())
        .with_context(|| format!("creating {}", dir.cells().display()))?;
    // Before anything in the directory is touched: the clean-up below would delete the
    // temporary files of a run still writing there.
    let kind = match (opts.shard, opts.claim) {
        (Some((i, n)), _) => crate::lock::LockKind::Shard(i, n),
        (None, Some(_)) => crate::lock::LockKind::Claim,
        (None, None) => crate::lock::LockKind::Whole,
    };
    let _lock = crate::lock::RunLock::acquire_for(&dir.root, kind)?;
    // A claim worker cleans up after a cell when it claims it; a shard after its own
    // cells only: other workers may be writing theirs.
    if opts.claim.is_none() {
        let mine: Vec<&str> = exp
            .cells
            .iter()
            .enumerate()
            .filter(|(p, _)| opts.shard.is_none_or(|(i, n)| p % n == i))
            .map(|(_, c)| c.id.as_str())
            .collect();
        let stale = dir.clean_partial(&|name: &str| {
            opts.shard.is_none() || mine.iter().any(|id| owns_file(id, name))
        })?;
        if stale > 0 {
            eprintln!("removed {stale} temporary file(s) left by an interrupted run");
        }
    }
    // The report shows the cells of the experiment as it stands; cells of an earlier
    // version (another parameter set, or a method that has since gained a parameter)
    // stay on disk but are listed as stale.
    let current: String = exp.cells.iter().map(|c| format!("{}\n", c.id)).collect();
    let current_path = dir.root.join(wb_report::CURRENT_CELLS);
    wb_core::io::atomic_write(&current_path, current.as_bytes())
        .with_context(|| format!("writing {}", current_path.display()))?;
    let mut summary = RunSummary {
        cells_total: exp.cells.len(),
        ..Default::default()
    };
    let started = std::time::SystemTime::now();
    let stamp = now_stamp().replace(':', "-");
    // First decide, without touching a file, what each selected cell needs; the inputs
    // are checked before any result moves aside.
    let plan = plan_cells(exp, opts, &dir, &mut summary);
    if plan.is_empty() {
        return Ok(summary);
    }
    let mut datasets: HashMap<String, Images> = HashMap::new();
    preflight(exp, opts, plan.iter().map(|(c, _)| *c), &mut datasets)?;
    let manifest = crate::manifest::write_manifest(&dir, opts)?;
    let info = RunInfo {
        device: wb_torch::device_name(opts.device),
        git_sha: manifest.git_sha.clone().unwrap_or_else(|| "unknown".into()),
        manifest_id: manifest.id(),
        host: manifest.hostname.clone(),
        threads: opts.threads,
        energy_source: manifest.energy_source.clone(),
    };
    crate::manifest::copy_experiment(&dir, &exp.path)?;
    let bars = Bars::new(plan.len() as u64, opts.progress);
    let sweep = Sweep {
        exp,
        opts,
        methods,
        dir: &dir,
        info: &info,
        bars: &bars,
        stamp: &stamp,
    };
    // Group by (model, dataset) so each model and dataset is loaded once (per worker).
    let mut plan = plan;
    plan.sort_by_key(|(c, _)| {
        let first = exp
            .cells
            .iter()
            .position(|o| o.model == c.model && o.dataset == c.dataset);
        first.unwrap_or(0)
    });
    match opts.claim {
        None => sweep.run_planned(plan, &mut datasets, &mut summary)?,
        Some(policy) => sweep.run_claiming(plan, &policy, started, &mut datasets, &mut summary)?,
    }
    bars.finish();
    Ok(summary)
}

/// Whether the temporary file `name` belongs to cell `id` (cell files `<id>.…`, side
/// tables `<id>__<candidate>…`, hidden temporaries `.<id>…`), and not to a cell whose id
/// merely starts with `id` (seed `s1` against `s10`).
fn owns_file(id: &str, name: &str) -> bool {
    name.trim_start_matches('.')
        .strip_prefix(id)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '_']))
}

/// What one worker needs to compute and record cells.
struct Sweep<'a> {
    exp: &'a Experiment,
    opts: &'a RunOptions,
    methods: &'a [MethodInfo],
    dir: &'a ResultsDir,
    info: &'a RunInfo,
    bars: &'a Bars,
    stamp: &'a str,
}

/// What a claim worker found for a cell.
enum Claimed {
    /// Finished (by another worker, or before this run): nothing to do.
    Done,
    /// A live worker holds it.
    Held,
    /// This worker holds it and computes it.
    Mine(crate::claim::Claim),
}

/// The model and dataset a worker has loaded, with the group it belongs to.
type Loaded = ((String, String), std::result::Result<GroupContext, String>);

impl Sweep<'_> {
    /// Moves aside what a cell's `action` replaces, keeping it.
    fn prepare(&self, cell: &Cell, action: &Action) -> Result<()> {
        match action {
            Action::Compute => {}
            Action::Supersede => self.dir.supersede(&cell.id, self.stamp)?,
            Action::Corrupt(why) => {
                // A damaged result file is not a finished cell: keep it aside, recompute.
                self.dir.move_aside(&cell.id, "corrupt", self.stamp)?;
                self.bars.println(&format!(
                    "cell {}: its result file is unreadable ({why}); moved to {} and the \
                     cell is computed again",
                    cell.id,
                    self.dir.root.join("corrupt").join(self.stamp).display()
                ));
            }
        }
        Ok(())
    }

    /// The group of `cell`, loading it (and dropping the previous one first) when it
    /// is not the one in `loaded`.
    fn group<'l>(
        &self,
        loaded: &'l mut Option<Loaded>,
        cell: &Cell,
        datasets: &mut HashMap<String, Images>,
    ) -> &'l mut std::result::Result<GroupContext, String> {
        let key = (cell.model.clone(), cell.dataset.clone());
        if loaded.as_ref().is_none_or(|(k, _)| *k != key) {
            *loaded = None;
            self.bars
                .step
                .set_message(format!("loading {} and {}", key.0, key.1));
            let ctx = GroupContext::new(self.exp, self.opts, &key.0, &key.1, datasets)
                .map_err(|e| format!("{e:#}"));
            *loaded = Some((key, ctx));
        }
        &mut loaded.as_mut().expect("just loaded").1
    }

    /// The rows of one cell: the method's, or one `failed` row (errors and panics).
    fn compute(
        &self,
        ctx: &mut std::result::Result<GroupContext, String>,
        cell: &Cell,
    ) -> Vec<Row> {
        let (exp, info) = (self.exp, self.info);
        let g = match ctx {
            Ok(g) => g,
            Err(e) => return vec![failed_row(exp, cell, info, None, e)],
        };
        let r = catch_unwind(AssertUnwindSafe(|| {
            g.run_cell(exp, cell, self.methods, info, self.dir, self.bars)
        }));
        let why = match r {
            Ok(Ok(rows)) => return rows,
            Ok(Err(e)) => format!("{e:#}"),
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown panic".into());
                format!("panic: {msg}")
            }
        };
        vec![failed_row(exp, cell, info, Some(g), &why)]
    }

    /// Writes a cell's rows and counts them. With `exclusive` the file is published
    /// only if no other worker has published it meanwhile (`false` then).
    fn record(
        &self,
        cell: &Cell,
        rows: &[Row],
        t0: Instant,
        exclusive: bool,
        summary: &mut RunSummary,
    ) -> Result<bool> {
        let mut df = results::to_frame(rows)?;
        let path = self.dir.cell_file(&cell.id);
        if exclusive {
            if !results::write_parquet_new(&mut df, &path)? {
                self.bars.println(&format!(
                    "cell {}: another worker published it meanwhile; this worker's rows \
                     are dropped",
                    cell.id
                ));
                return Ok(false);
            }
        } else {
            results::write_parquet_atomic(&mut df, &path)?;
        }
        summary.rows_written += rows.len();
        if rows.iter().any(|r| r.status != Status::Ok) {
            summary.cells_failed += 1;
        } else {
            summary.cells_ok += 1;
        }
        for r in rows {
            self.bars.println(&describe(r, t0.elapsed().as_secs_f64()));
        }
        self.bars.cells.inc(1);
        Ok(true)
    }

    /// Every planned cell, in group order.
    fn run_planned(
        &self,
        plan: Vec<(&Cell, Action)>,
        datasets: &mut HashMap<String, Images>,
        summary: &mut RunSummary,
    ) -> Result<()> {
        for (cell, action) in &plan {
            self.prepare(cell, action)?;
        }
        let mut loaded = None;
        for (cell, _) in plan {
            let t0 = Instant::now();
            let rows = self.compute(self.group(&mut loaded, cell, datasets), cell);
            self.record(cell, &rows, t0, false, summary)?;
        }
        Ok(())
    }

    /// Claim mode: each planned cell this worker can claim, then, while other live
    /// workers hold cells, waiting for them to finish or die (a dead worker's cell is
    /// reclaimed), so that the grid is complete once any worker ends normally.
    fn run_claiming(
        &self,
        plan: Vec<(&Cell, Action)>,
        policy: &crate::claim::ClaimPolicy,
        started: std::time::SystemTime,
        datasets: &mut HashMap<String, Images>,
        summary: &mut RunSummary,
    ) -> Result<()> {
        let mut todo: Vec<&Cell> = plan.into_iter().map(|(c, _)| c).collect();
        let mut loaded = None;
        let mut said_waiting = false;
        loop {
            let mut waiting = Vec::new();
            for cell in todo {
                let claim = match self.claim(cell, policy, started)? {
                    Claimed::Done => {
                        summary.cells_by_others += 1;
                        self.bars.cells.inc(1);
                        continue;
                    }
                    Claimed::Held => {
                        waiting.push(cell);
                        continue;
                    }
                    Claimed::Mine(c) => c,
                };
                let t0 = Instant::now();
                let rows = self.compute(self.group(&mut loaded, cell, datasets), cell);
                if !claim.is_current() {
                    self.bars.println(&format!(
                        "cell {}: this worker's claim was taken over while it ran (a pause \
                         longer than the claim timeout?)",
                        cell.id
                    ));
                }
                if !self.record(cell, &rows, t0, true, summary)? {
                    summary.cells_by_others += 1;
                }
                drop(claim);
            }
            if waiting.is_empty() {
                return Ok(());
            }
            if !said_waiting {
                self.bars.println(&format!(
                    "waiting for {} cell(s) held by other workers (a dead worker's cell is \
                     taken over)",
                    waiting.len()
                ));
                said_waiting = true;
            }
            std::thread::sleep(policy.heartbeat.min(std::time::Duration::from_secs(2)));
            todo = waiting;
        }
    }

    /// Tries to claim `cell`; under the claim, decides again what the cell needs, since
    /// another worker may have finished it since the plan was made. A failed result is
    /// redone (with `--retry-failed`) only when it is older than this run, so workers
    /// do not redo each other's failures.
    fn claim(
        &self,
        cell: &Cell,
        policy: &crate::claim::ClaimPolicy,
        started: std::time::SystemTime,
    ) -> Result<Claimed> {
        let action = |dir: &ResultsDir| -> Option<Action> {
            if !dir.is_done(&cell.id) {
                return Some(Action::Compute);
            }
            match dir.has_failed_rows(&cell.id) {
                Err(why) => Some(Action::Corrupt(format!("{why:#}"))),
                Ok(true) if self.opts.retry_failed && dir.finished_before(&cell.id, started) => {
                    Some(Action::Supersede)
                }
                Ok(_) => None,
            }
        };
        if action(self.dir).is_none() {
            return Ok(Claimed::Done);
        }
        let claim = match crate::claim::try_claim(&self.dir.root, &cell.id, policy)? {
            crate::claim::Attempt::Held(_) => return Ok(Claimed::Held),
            crate::claim::Attempt::Taken(c) => c,
        };
        let Some(action) = action(self.dir) else {
            return Ok(Claimed::Done);
        };
        if let Some(who) = &claim.reclaimed {
            self.bars
                .println(&format!("cell {}: taken over from {who}", cell.id));
        }
        self.dir
            .clean_partial(&|name: &str| owns_file(&cell.id, name))?;
        self.prepare(cell, &action)?;
        Ok(Claimed::Mine(claim))
    }
}

fn describe(r: &Row, secs: f64) -> String {
    let params = if r.params_json == "{}" {
        String::new()
    } else {
        format!(" {}", r.params_json)
    };
    if r.status == Status::Ok {
        format!(
            "  ok     {} {} {}{}{}: top-1 {:.2} % ({:+.2} pp), CR {:.2}×, {} B  [{:.1} s]",
            r.model,
            r.dataset,
            r.method,
            params,
            match r.index_coding.as_deref() {
                Some(c) if c != "method" => format!(" [{} {c}]", r.candidate),
                _ if r.candidate == "default" => String::new(),
                _ => format!(" [{}]", r.candidate),
            },
            r.top1.unwrap_or(f64::NAN),
            r.top1_delta_pp.unwrap_or(f64::NAN),
            r.compression_ratio.unwrap_or(f64::NAN),
            r.artifact_bytes.unwrap_or(0),
            secs
        )
    } else {
        format!(
            "  FAILED {} {} {}{}: {}",
            r.model,
            r.dataset,
            r.method,
            params,
            r.error.as_deref().unwrap_or("?")
        )
    }
}

fn base_row(exp: &Experiment, cell: &Cell, info: &RunInfo) -> Row {
    Row {
        experiment: exp.name.clone(),
        cell_id: cell.id.clone(),
        model: cell.model.clone(),
        dataset: cell.dataset.clone(),
        eval_split: exp.eval_split.name().into(),
        method: cell.method.clone(),
        params_json: cell.params.to_json(),
        params_label: cell.params_given.clone(),
        seed: cell.seed,
        candidate: "default".into(),
        control_cell_id: cell.control_cell.clone(),
        status: Status::Ok,
        energy_source: info.energy_source.clone(),
        device: info.device.clone(),
        harness_version: env!("CARGO_PKG_VERSION").into(),
        git_sha: info.git_sha.clone(),
        manifest_id: info.manifest_id.clone(),
        host: info.host.clone(),
        threads: info.threads as u64,
        timestamp: now_stamp(),
        extra_json: "null".into(),
        ..Default::default()
    }
}

fn failed_row(
    exp: &Experiment,
    cell: &Cell,
    info: &RunInfo,
    g: Option<&mut GroupContext>,
    error: &str,
) -> Row {
    let mut r = base_row(exp, cell, info);
    r.status = Status::Failed;
    r.candidate = "-".into();
    r.error = Some(error.to_string());
    r.peak_rss_bytes = wb_measure::memory::peak_rss_bytes();
    if let Some(s) = g.and_then(|g| g.splits.get(&cell.split_seed(exp))) {
        r.eval_images = s.eval.images() as u64;
        r.top1_baseline = Some(s.baseline.top1_pct());
    }
    r
}

/// The images of one split seed and what is measured on them once: the reported
/// images with FP32's accuracy and predictions, the search subset with FP32's accuracy,
/// and the gradients on it.
struct SplitData {
    /// Dataset indices of the reported images, in evaluation order.
    eval_indices: Vec<usize>,
    /// Their labels.
    eval_labels: Vec<u8>,
    eval: Batches,
    /// The search subset, or why there is none (too few images).
    search: std::result::Result<Batches, String>,
    search_images: usize,
    baseline: wb_core::Accuracy,
    /// FP32's top-1 class per reported image.
    baseline_classes: Vec<u16>,
    /// FP32's accuracy on the search subset.
    baseline_search: Option<wb_core::Accuracy>,
    /// Gradient statistics on the search subset (when there is one): its own copy of
    /// the model, loaded on first use.
    gradients: Option<wb_torch::TorchGradients>,
    /// FP32 activations of the search subset at stage boundaries, built for the first
    /// cell whose method evaluates candidates (`None` inside: no stages, or no room).
    stage_cache: Option<Option<wb_torch::stages::StageCache>>,
    /// Accuracies on the search subset known from earlier cells (any method, this
    /// split): a configuration is never evaluated twice on the same images in a run.
    memo: wb_core::Memo,
}

/// Everything shared by the cells of one (model, dataset) pair.
struct GroupContext {
    model: TorchModel,
    /// The cell's dataset, and the one the search subset comes from when another.
    images: Images,
    search_source: Option<Images>,
    /// One entry per split seed met so far.
    splits: HashMap<u64, SplitData>,
    fp32_container_bytes: u64,
    /// Memory budget of a split's stage cache (0: off).
    stage_cache_bytes: u64,
    timing_inputs: wb_torch::TimingInputs,
    /// The path timings of this group (each path timed once against FP32).
    paths: crate::timed::PathCache,
    /// The model's FP32 weights as a dense container file, loaded beside every
    /// artifact for its load cost; written at the first artifact.
    fp32_file: Option<crate::load_cost::Fp32File>,
    energy_backend: wb_measure::EnergyBackend,
    /// The BF16 copy of the model, loaded at the first BF16-exact artifact.
    native: HashMap<wb_torch::NativePrecision, std::result::Result<wb_torch::NativeModel, String>>,
    /// The int8 program, loaded at the first int8 artifact (or why it cannot run).
    int8: Option<std::result::Result<wb_torch::Int8Model, String>>,
    /// Calibration images of the int8 path per split seed: training images, never
    /// reported ones.
    int8_calibration: HashMap<u64, wb_torch::Batches>,
    data_dir: std::path::PathBuf,
    /// Fine-tuning for methods that retrain: its own copy of the model and the training
    /// images, loaded on first use so that methods that do not retrain pay nothing.
    trainer: wb_torch::TorchFineTuner,
    card: wb_torch::ModelCard,
    device: Device,
    dataset_id: String,
}

impl GroupContext {
    fn new(
        exp: &Experiment,
        opts: &RunOptions,
        model_name: &str,
        dataset_id: &str,
        datasets: &mut HashMap<String, Images>,
    ) -> Result<Self> {
        let card = wb_torch::find_card_in(&opts.models_dirs, model_name)?;
        let model = TorchModel::load(&card, opts.device)?;
        for id in std::iter::once(dataset_id).chain(exp.search_dataset.as_deref()) {
            if !datasets.contains_key(id) {
                let spec = wb_torch::dataset(id)?;
                datasets.insert(id.to_string(), spec.load(&opts.data_dir)?);
            }
        }
        let images = datasets[dataset_id].clone();
        let search_source = exp.search_dataset.as_ref().map(|d| datasets[d].clone());
        let original = model.weights().clone();
        let fp32_container_bytes = container::write(&Artifact::dense(&original))?.len() as u64;
        let timing_inputs =
            wb_torch::TimingInputs::new(&model, &images, exp.timing.throughput_batch)?;
        Ok(Self {
            model,
            images,
            search_source,
            splits: HashMap::new(),
            fp32_container_bytes,
            stage_cache_bytes: opts.stage_cache_mb << 20,
            timing_inputs,
            paths: crate::timed::PathCache::default(),
            fp32_file: None,
            energy_backend: opts.energy_backend,
            native: HashMap::new(),
            int8: None,
            int8_calibration: HashMap::new(),
            data_dir: opts.data_dir.clone(),
            trainer: wb_torch::TorchFineTuner::lazy(
                card.clone(),
                opts.device,
                opts.data_dir.clone(),
            ),
            card,
            device: opts.device,
            dataset_id: dataset_id.to_string(),
        })
    }

    /// The splits of `seed`, drawn and measured with FP32 on first use.
    fn ensure_split(&mut self, exp: &Experiment, seed: u64, bars: &Bars) -> Result<()> {
        if self.splits.contains_key(&seed) {
            return Ok(());
        }
        let search_split = Split::Search {
            images: exp.search_images,
            seed,
        };
        let eval_split = match exp.eval_split {
            EvalSplit::Full => Split::Full,
            EvalSplit::Heldout => Split::Heldout {
                images: exp.search_images,
                seed,
            },
        };
        let id = &self.dataset_id;
        let eval_indices = eval_split
            .indices(&self.images.labels)
            .map_err(|e| anyhow!("{} split of {id}: {e}", eval_split.name()))?;
        let eval_images = self.images.subset(&eval_indices);
        let eval = Batches::new(&self.model, &eval_images, exp.batch_size)?;
        // A dataset too small for the search subset only matters to methods that search:
        // they get no evaluator and fail with this reason; the others run normally.
        let (src, src_name) = match (&self.search_source, &exp.search_dataset) {
            (Some(s), Some(n)) => (s, n.as_str()),
            _ => (&self.images, id.as_str()),
        };
        let search_images = search_split
            .indices(&src.labels)
            .map(|idx| src.subset(&idx))
            .map_err(|e| format!("search split of {src_name}: {e}"));
        let search = search_images
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|imgs| {
                Batches::new(&self.model, imgs, exp.batch_size).map_err(|e| format!("{e:#}"))
            });
        let gradients = search_images
            .ok()
            .map(|imgs| wb_torch::TorchGradients::lazy(self.card.clone(), self.device, imgs));
        bars.step.set_message(format!(
            "{} {id}: FP32 baseline accuracy (split seed {seed})",
            self.card.name
        ));
        let original = self.model.weights().clone();
        let (baseline, baseline_classes) =
            TorchEvaluator::new(&mut self.model, &eval).predict(&original)?;
        // Searches see the images FP32 finds hard first: exact threshold answers come
        // sooner, and nothing else changes (see `Batches::hard_first`).
        let search = match search {
            Ok(s) => Ok(s.hard_first(&mut self.model, &original)?),
            Err(e) => Err(e),
        };
        let baseline_search = match &search {
            Ok(s) => Some(TorchEvaluator::new(&mut self.model, s).evaluate(&original)?),
            Err(_) => None,
        };
        self.splits.insert(
            seed,
            SplitData {
                eval_labels: eval_images.labels.clone(),
                eval_indices,
                eval,
                search_images: exp.search_images,
                search,
                baseline,
                baseline_classes,
                baseline_search,
                gradients,
                stage_cache: None,
                memo: wb_core::Memo::default(),
            },
        );
        Ok(())
    }

    /// Builds the stage cache of split `seed` if it has none yet, dropping those of
    /// other splits first (one cache per model and dataset at a time bounds memory).
    fn ensure_stage_cache(&mut self, seed: u64, bars: &Bars) -> Result<()> {
        if self.splits[&seed].stage_cache.is_some() {
            return Ok(());
        }
        for (s, split) in self.splits.iter_mut() {
            if *s != seed {
                split.stage_cache = None;
            }
        }
        let split = self.splits.get_mut(&seed).expect("split drawn before");
        let cache = match &split.search {
            Ok(search) if self.stage_cache_bytes > 0 => {
                bars.step.set_message(format!(
                    "{}: caching FP32 activations of the search images",
                    self.card.name
                ));
                wb_torch::stages::StageCache::build(
                    &mut self.model,
                    search,
                    self.stage_cache_bytes,
                )?
            }
            _ => None,
        };
        if let Some(c) = &cache {
            bars.println(&format!(
                "  {} (split seed {seed}): evaluations resume from {} of {} stage boundaries \
                 ({:.0} MB of FP32 activations)",
                self.card.name,
                c.boundaries().len(),
                c.stage_count() - 1,
                c.bytes() as f64 / 1e6
            ));
        }
        split.stage_cache = Some(cache);
        Ok(())
    }

    fn run_cell(
        &mut self,
        exp: &Experiment,
        cell: &Cell,
        methods: &[MethodInfo],
        info: &RunInfo,
        dir: &ResultsDir,
        bars: &Bars,
    ) -> Result<Vec<Row>> {
        let meth = methods
            .iter()
            .find(|m| m.id == cell.method)
            .ok_or_else(|| anyhow!("method `{}` is not registered", cell.method))?;
        let method = (meth.build)(&cell.params)?;
        let split_seed = cell.split_seed(exp);
        self.ensure_split(exp, split_seed, bars)?;
        // Heap memory the tuned allocator kept from earlier cells goes back to the kernel
        // first, so that the cell's peak RSS starts from live memory only.
        wb_torch::release_free_memory();
        let _ = wb_measure::memory::reset_peak();
        bars.step.set_message(format!(
            "{} {} {}: compressing",
            cell.model, cell.dataset, cell.method
        ));
        if method.needs().evaluator {
            self.ensure_stage_cache(split_seed, bars)?;
        }
        let original = self.model.weights().clone();
        let t0 = Instant::now();
        let (candidates, search_stats) = {
            let split = self.splits.get_mut(&split_seed).expect("split drawn above");
            let step = StepProgress(&bars.step);
            let mut ctx = Context {
                seed: cell.seed,
                evaluator: None,
                trainer: Some(&mut self.trainer),
                gradients: split.gradients.as_mut().map(|g| g as _),
                progress: &step,
                accel: exp.accel,
            };
            match &split.search {
                Ok(search) => {
                    let cache = split.stage_cache.as_ref().and_then(Option::as_ref);
                    let mut ev = Cached::with_memo(
                        TorchEvaluator::new(&mut self.model, search).with_stage_cache(cache),
                        std::mem::take(&mut split.memo),
                    );
                    ctx.evaluator = Some(&mut ev);
                    let c =
                        wb_core::compress_checked(meth.id, method.as_ref(), &original, &mut ctx);
                    let stats = ev.stats();
                    split.memo = ev.into_memo();
                    (c?, stats)
                }
                // Only a method that needs search images learns why there are none.
                Err(why) if method.needs().sees_search_images() => {
                    bail!(
                        "method `{}` needs search images (evaluator or gradients), and this \
                         dataset has none: {why}",
                        meth.id
                    )
                }
                Err(_) => {
                    let c =
                        wb_core::compress_checked(meth.id, method.as_ref(), &original, &mut ctx)?;
                    (c, wb_core::EvalStats::default())
                }
            }
        };
        let compress_s = t0.elapsed().as_secs_f64();
        let extras: Vec<&serde_json::Value> = candidates.iter().map(|c| &c.extra).collect();
        crate::search_log::write_search_logs(dir, &cell.id, &extras)
            .context("writing the search log")?;
        let mut rows = Vec::new();
        let mut preds = vec![results::Predictions {
            candidate: results::FP32_REFERENCE.into(),
            classes: self.splits[&split_seed].baseline_classes.clone(),
        }];
        for cand in candidates {
            bars.step.set_message(format!(
                "{} {} {} [{}]: evaluating",
                cell.model, cell.dataset, cell.method, cand.label
            ));
            let mut r = base_row(exp, cell, info);
            r.candidate = cand.label.clone();
            r.chosen = Some(cand.chosen);
            r.compress_s = Some(compress_s);
            r.search_evaluations = Some(search_stats.evaluations);
            r.extra_json = cand.extra.to_string();
            r.index_coding = Some("method".into());
            self.describe_split(exp, split_seed, &mut r);
            let decoded = match self.evaluate_candidate(
                cell,
                split_seed,
                &cand.artifact,
                &original,
                dir,
                &mut r,
                exp,
                bars,
            ) {
                Ok((d, classes)) => {
                    preds.push(results::Predictions {
                        candidate: cand.label.clone(),
                        classes,
                    });
                    Some(d)
                }
                Err(e) => {
                    r.status = Status::Failed;
                    r.error = Some(format!("{e:#}"));
                    None
                }
            };
            r.peak_rss_bytes = wb_measure::memory::peak_rss_bytes();
            let post = match &decoded {
                Some(d) => {
                    let fp32 = self.fp32_file.as_ref().expect("written by the candidate");
                    post_stage_rows(cell, &cand.artifact, d, &r, dir, (&mut self.model, fp32))
                }
                None => Vec::new(),
            };
            rows.push(r);
            rows.extend(post);
        }
        let split = &self.splits[&split_seed];
        results::write_predictions(
            &dir.predictions(&cell.id),
            &split.eval_indices,
            &split.eval_labels,
            &preds,
        )
        .context("writing the predictions")?;
        Ok(rows)
    }

    /// The identity of the cell's search subset and its link to a control, in the row.
    fn describe_split(&self, exp: &Experiment, split_seed: u64, r: &mut Row) {
        let split = &self.splits[&split_seed];
        if split.search.is_ok() {
            r.search_dataset = Some(
                exp.search_dataset
                    .clone()
                    .unwrap_or_else(|| self.dataset_id.clone()),
            );
            r.search_images = Some(split.search_images as u64);
            r.search_seed = Some(split_seed);
        }
    }

    /// Stores the candidate, evaluates the decoded weights on the reported split (with
    /// every image's class, and paired against FP32) and on the search subset, and
    /// times them; returns the decoded weights and the classes.
    #[allow(clippy::too_many_arguments)]
    fn evaluate_candidate(
        &mut self,
        cell: &Cell,
        split_seed: u64,
        artifact: &Artifact,
        original: &WeightSet,
        dir: &ResultsDir,
        r: &mut Row,
        exp: &Experiment,
        bars: &Bars,
    ) -> Result<(WeightSet, Vec<u16>)> {
        let stem = r.candidate.clone();
        if self.fp32_file.is_none() {
            self.fp32_file = Some(crate::load_cost::Fp32File::write(&self.model)?);
        }
        let fp32 = self.fp32_file.as_ref().expect("written above");
        let decoded = store_artifact(cell, artifact, &stem, dir, r, (&mut self.model, fp32))?;
        check_same_layout(original, &decoded)?;
        decoded.check_finite()?;
        let split = &self.splits[&split_seed];
        let (acc, classes) = TorchEvaluator::new(&mut self.model, &split.eval).predict(&decoded)?;
        // The evaluated weights are exactly the decoded file's.
        r.weights_in_memory_bytes = Some(decoded.total_params() * 4);
        r.eval_images = acc.total as u64;
        r.top1 = Some(acc.top1_pct());
        r.top5 = Some(acc.top5_pct());
        r.top1_correct = Some(acc.top1_correct as u64);
        r.top1_baseline = Some(split.baseline.top1_pct());
        r.top1_delta_pp = Some(acc.top1_pct() - split.baseline.top1_pct());
        let correct = |c: &[u16]| -> Vec<bool> {
            c.iter()
                .zip(&split.eval_labels)
                .map(|(&p, &l)| p == u16::from(l))
                .collect()
        };
        let paired = wb_measure::Paired::from_correct(
            &correct(&split.baseline_classes),
            &correct(&classes),
            cell.seed,
        );
        r.paired_gain = Some(paired.gain);
        r.paired_loss = Some(paired.loss);
        r.mcnemar_p = Some(paired.mcnemar_p);
        r.top1_delta_ci_low_pp = Some(paired.ci_low_pp);
        r.top1_delta_ci_high_pp = Some(paired.ci_high_pp);
        if let (Ok(search), Some(base)) = (&split.search, split.baseline_search) {
            let a = TorchEvaluator::new(&mut self.model, search).evaluate(&decoded)?;
            r.top1_search = Some(a.top1_pct());
            r.top1_search_baseline = Some(base.top1_pct());
        }
        r.model_bytes_fp32 = Some(self.fp32_container_bytes);
        let int8 = wb_torch::int8_scales(artifact).map(|scales| {
            bars.step.set_message(format!(
                "{} {} {} [{}]: int8 path",
                cell.model, cell.dataset, cell.method, r.candidate
            ));
            self.int8_accuracy(split_seed, &decoded, &scales, exp.batch_size, r)
                .map_err(|e| format!("{e:#}"))
        });
        if exp.timing.enabled {
            bars.step.set_message(format!(
                "{} {} {} [{}]: timing",
                cell.model, cell.dataset, cell.method, r.candidate
            ));
            // An artifact whose weights are all BF16 (else all FP16) values also runs on
            // libtorch's native kernels of that precision: a second path.
            let precision = [
                wb_torch::NativePrecision::Bf16,
                wb_torch::NativePrecision::Fp16,
            ]
            .into_iter()
            .find(|p| p.is_exact(&decoded));
            let second = match (precision, int8) {
                (_, Some(Ok(()))) => self
                    .int8
                    .as_ref()
                    .and_then(|m| m.as_ref().ok())
                    .map(crate::timed::SecondPath::Int8),
                (_, Some(Err(why))) => Some(crate::timed::SecondPath::Unavailable {
                    path: wb_torch::INT8_NATIVE,
                    why,
                }),
                (Some(p), None) => {
                    let (card, dev) = (self.model.card(), self.model.device());
                    let m = self.native.entry(p).or_insert_with(|| {
                        wb_torch::NativeModel::load_as(card, dev, p).map_err(|e| e.to_string())
                    });
                    Some(match m {
                        Ok(m) => crate::timed::SecondPath::Native(m),
                        Err(e) => crate::timed::SecondPath::Unavailable {
                            path: p.path(),
                            why: e.clone(),
                        },
                    })
                }
                (None, None) => None,
            };
            let host = r.host.clone();
            let run = crate::timed::TimingRun {
                settings: &exp.timing,
                dir,
                model: &cell.model,
                dataset: &cell.dataset,
                threads: r.threads,
                host: &host,
                energy: self.energy_backend,
            };
            crate::timed::timed_pass(
                &run,
                &mut self.paths,
                &self.model,
                second,
                &decoded,
                &self.timing_inputs,
                r,
            )?;
        } else {
            r.timing_invalid_reasons = Some("timing disabled in the experiment".into());
            if let Some(Err(why)) = int8 {
                r.timed_path = Some(format!("int8-native unavailable: {why}"));
            }
        }
        Ok((decoded, classes))
    }

    /// Runs an int8 artifact on the int8 program: installs it with its scales,
    /// calibrates the activations on training images of split `seed` (never reported
    /// ones) and fills the `top1_int8` columns from the reported images.
    fn int8_accuracy(
        &mut self,
        seed: u64,
        decoded: &WeightSet,
        scales: &[(String, Vec<f32>)],
        batch: usize,
        r: &mut Row,
    ) -> Result<()> {
        if !self.int8_calibration.contains_key(&seed) {
            let train = wb_torch::dataset(wb_torch::TRAIN_DATASET)?.load(&self.data_dir)?;
            let idx = wb_torch::Split::Search {
                images: INT8_CALIBRATION_IMAGES,
                seed,
            }
            .indices(&train.labels)
            .map_err(|e| anyhow!("int8 calibration images: {e}"))?;
            let b = wb_torch::Batches::new(&self.model, &train.subset(&idx), batch)?;
            self.int8_calibration.insert(seed, b);
        }
        let model = &self.model;
        let m = self
            .int8
            .get_or_insert_with(|| wb_torch::Int8Model::for_model(model).map_err(|e| e.to_string()))
            .as_mut()
            .map_err(|e| anyhow!("{e}"))?;
        m.install(decoded, scales)?;
        m.calibrate(&self.int8_calibration[&seed])?;
        let split = &self.splits[&seed];
        let (acc, _) = m.predict(&split.eval)?;
        r.top1_int8 = Some(acc.top1_pct());
        r.top1_int8_delta_pp = Some(acc.top1_pct() - split.baseline.top1_pct());
        r.int8_calibration = Some(format!(
            "{INT8_CALIBRATION_IMAGES} class-balanced images of {} (seed {seed}), \
             per-tensor min/max",
            wb_torch::TRAIN_DATASET
        ));
        Ok(())
    }
}

/// Training images that calibrate the int8 path's activation ranges (PyTorch's
/// post-training quantization recipes use a few hundred).
pub const INT8_CALIBRATION_IMAGES: usize = 512;

/// Writes `artifact` as `<stem>.wbc` in the cell's artifact folder with its per-layer
/// breakdown, reads it back and decodes it, and fills the row's size columns and
/// digest; the claimed size must be the file's, and the file must decode to the
/// artifact's weights. Returns the decoded weights.
fn store_artifact(
    cell: &Cell,
    artifact: &Artifact,
    stem: &str,
    dir: &ResultsDir,
    r: &mut Row,
    load: (&mut TorchModel, &crate::load_cost::Fp32File),
) -> Result<WeightSet> {
    artifact.validate()?;
    let size = artifact.size();
    // The real artifact: written, read back, decoded. Its byte count is the file's.
    let adir = dir.artifacts(&cell.id);
    std::fs::create_dir_all(&adir).with_context(|| format!("creating {}", adir.display()))?;
    let path = adir.join(format!("{}.wbc", wb_core::io::sanitize_name(stem)));
    let (written, spans) = container::write_with_spans(artifact)?;
    wb_core::io::atomic_write(&path, &written)?;
    crate::layers::write_layers(dir, &cell.id, stem, artifact, &size, &spans)?;
    let file_bytes = std::fs::metadata(&path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    anyhow::ensure!(
        file_bytes == size.total_bytes,
        "claimed size {} B differs from the written container {} B ({})",
        size.total_bytes,
        file_bytes,
        path.display()
    );
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    r.artifact_sha256 = Some(wb_core::weights::hex(
        &<sha2::Sha256 as sha2::Digest>::digest(&bytes),
    ));
    let t = Instant::now();
    let decoded = container::read(&bytes)?.decode()?;
    r.decode_ms = Some(t.elapsed().as_secs_f64() * 1e3);
    let (cost, fp32_cost) = crate::load_cost::measure_pair(&path, load.1, load.0)?;
    r.load_ms = Some(cost.ms);
    r.load_peak_rss_bytes = cost.peak_rss_bytes;
    r.load_ms_fp32 = Some(fp32_cost.ms);
    r.load_peak_rss_bytes_fp32 = fp32_cost.peak_rss_bytes;
    let expected = artifact.decode()?;
    anyhow::ensure!(
        decoded.bit_identical(&expected),
        "decoding the written container does not reproduce the artifact's weights"
    );
    r.counted_params = Some(size.counted_params);
    r.bits_baseline = Some(size.bits_baseline);
    r.bits_compressed = Some(size.bits_compressed);
    r.compression_ratio = Some(size.compression_ratio());
    r.memory_saving_pct =
        Some(100.0 * (1.0 - size.bits_compressed as f64 / size.bits_baseline as f64));
    r.artifact_bytes = Some(file_bytes);
    r.artifact_bytes_header = Some(size.container_overhead + size.component(|t| t.header));
    // Every table: codebooks, exponent tables and Huffman code tables, shared or not,
    // so that the components add up to the file.
    r.artifact_bytes_codebooks = Some(
        size.shared_codebooks
            + size.shared_exp_tables
            + size.shared_code_tables
            + size.component(|t| t.codebook),
    );
    r.artifact_bytes_indices = Some(size.component(|t| t.indices));
    r.artifact_bytes_values = Some(size.component(|t| t.values));
    r.artifact_bytes_scales = Some(size.component(|t| t.scales));
    let parts = [
        r.artifact_bytes_header,
        r.artifact_bytes_codebooks,
        r.artifact_bytes_indices,
        r.artifact_bytes_values,
        r.artifact_bytes_scales,
    ];
    let sum: u64 = parts.iter().flatten().sum();
    anyhow::ensure!(
        sum == file_bytes,
        "the artifact's components add up to {sum} B, the file holds {file_bytes} B"
    );
    Ok(decoded)
}

/// One row per index-coding post-stage of the cell: the candidate's artifact with its
/// indices recoded by the harness, stored and sized like any artifact. Accuracy and
/// inference timing are the method row's: the decoded weights are bit-identical
/// (checked here) and inference runs on decoded weights. A post-stage that leaves the
/// artifact unchanged (no indices, or already coded that way) gives no row.
fn post_stage_rows(
    cell: &Cell,
    artifact: &Artifact,
    decoded: &WeightSet,
    method_row: &Row,
    dir: &ResultsDir,
    load: (&mut TorchModel, &crate::load_cost::Fp32File),
) -> Vec<Row> {
    let (model, fp32) = load;
    let mut rows = Vec::new();
    for &coding in &cell.index_codings {
        let mut r = method_row.clone();
        r.index_coding = Some(coding.name().into());
        let stored = artifact
            .recoded(coding)
            .map_err(anyhow::Error::from)
            .and_then(|a| {
                if a == *artifact {
                    return Ok(false);
                }
                let stem = format!("{}.{}", method_row.candidate, coding.name());
                let d = store_artifact(cell, &a, &stem, dir, &mut r, (&mut *model, fp32))?;
                anyhow::ensure!(
                    d.bit_identical(decoded),
                    "post-stage `{}` changed the decoded weights",
                    coding.name()
                );
                Ok(true)
            });
        match stored {
            Ok(false) => continue,
            Ok(true) => {}
            Err(e) => {
                r.status = Status::Failed;
                r.error = Some(format!("post-stage `{}`: {e:#}", coding.name()));
            }
        }
        rows.push(r);
    }
    rows
}

fn check_same_layout(a: &WeightSet, b: &WeightSet) -> Result<()> {
    anyhow::ensure!(
        a.tensors.len() == b.tensors.len(),
        "artifact has {} tensors, the model {}",
        b.tensors.len(),
        a.tensors.len()
    );
    for (x, y) in a.tensors.iter().zip(&b.tensors) {
        anyhow::ensure!(
            x.name == y.name && x.shape == y.shape,
            "artifact tensor `{}` {:?} does not match the model's `{}` {:?}",
            y.name,
            y.shape,
            x.name,
            x.shape
        );
    }
    Ok(())
}

/// The project root, found without depending on the working directory alone: the
/// nearest ancestor of the current directory that is a weightbench checkout, else of
/// the binary's own location, else the checkout the binary was built from (if it is
/// still there), else the current directory.
pub fn find_repo_root() -> PathBuf {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let exe = std::env::current_exe().ok();
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let is_root = |p: &Path| {
        p.join("models").is_dir()
            && p.join("Cargo.toml").is_file()
            && p.join("experiments").is_dir()
    };
    let nearest = |start: &Path| {
        start
            .ancestors()
            .find(|p| is_root(p))
            .map(Path::to_path_buf)
    };
    nearest(&cwd)
        .or_else(|| exe.as_deref().and_then(nearest))
        .or_else(|| is_root(&built_from).then(|| built_from.canonicalize().unwrap_or(built_from)))
        .unwrap_or(cwd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_come_from_a_slurm_array() {
        assert_eq!(parse_shard("0/4"), Ok((0, 4)));
        assert_eq!(parse_shard(" 3 / 4 "), Ok((3, 4)));
        for bad in ["4/4", "1/0", "x/2", "2", "-1/3"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
        fn env<'a>(
            pairs: &'a [(&'static str, &'static str)],
        ) -> impl Fn(&str) -> Option<String> + 'a {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        }
        assert_eq!(slurm_shard(env(&[])), Ok(None));
        // `--array=1-4`: tasks 1..=4 are shards 0..=3 of 4.
        let task = [
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ];
        assert_eq!(slurm_shard(env(&task)), Ok(Some((2, 4))));
        let zero = [
            ("SLURM_ARRAY_TASK_ID", "0"),
            ("SLURM_ARRAY_TASK_COUNT", "2"),
        ];
        assert_eq!(slurm_shard(env(&zero)), Ok(Some((0, 2))));
        let outside = [
            ("SLURM_ARRAY_TASK_ID", "9"),
            ("SLURM_ARRAY_TASK_COUNT", "2"),
        ];
        assert!(slurm_shard(env(&outside)).is_err());
    }
}
