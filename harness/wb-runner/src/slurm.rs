//! `weightbench slurm`: sbatch scripts that run an experiment as a Slurm job array.
//!
//! Each array task runs `weightbench run --shard` implicitly: inside an array the shard
//! comes from `SLURM_ARRAY_TASK_ID`/`_MIN`/`_COUNT`, so the script is the plain `run`
//! command. Finished cells are skipped as always, so resubmitting after a preemption or
//! a node failure redoes only what is missing. A second script writes the report; with
//! `--submit` it is queued with `--dependency=afterany:<array job>`. With `--claim` the
//! tasks run `weightbench run --claim` instead: they take cells one at a time, so a
//! preempted task's cell is taken over by the tasks still running.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Everything the scripts need.
#[derive(Debug, Clone)]
pub struct SlurmSpec {
    /// Experiment name (job names, log folder).
    pub name: String,
    /// The experiment file, absolute.
    pub experiment: PathBuf,
    /// The `weightbench` binary, absolute.
    pub binary: PathBuf,
    /// Array tasks (shards).
    pub tasks: usize,
    /// CPUs per task, also the intra-op threads of each run.
    pub threads: usize,
    /// Memory per task, in Slurm's syntax (`8G`).
    pub mem: String,
    /// Time limit per task, in Slurm's syntax (`12:00:00`).
    pub time: String,
    /// Partition, if any.
    pub partition: Option<String>,
    /// GPUs per task (then the device is `cuda`).
    pub gpus_per_task: Option<usize>,
    /// Tasks take cells by claim (`run --claim`) rather than by shard.
    pub claim: bool,
    /// Data, model card, results and reports folders, absolute.
    pub data_dir: PathBuf,
    /// Model card folders in search order.
    pub models_dirs: Vec<PathBuf>,
    /// Results folder (`results/`).
    pub results_dir: PathBuf,
    /// Reports folder (`reports/`).
    pub reports_dir: PathBuf,
}

/// Quotes `s` for bash (single quotes, `'` escaped).
fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn qp(p: &Path) -> String {
    q(&p.to_string_lossy())
}

impl SlurmSpec {
    /// The folder of the scripts and the tasks' logs: `results/<name>/slurm/`.
    pub fn dir(&self) -> PathBuf {
        self.results_dir.join(&self.name).join("slurm")
    }

    fn header(&self, out: &mut String, job: &str, log: &str) {
        let _ = writeln!(out, "#!/bin/bash");
        let _ = writeln!(out, "# Written by `weightbench slurm`; submit with sbatch.");
        let _ = writeln!(out, "#SBATCH --job-name={job}");
        let _ = writeln!(out, "#SBATCH --output={}", self.dir().join(log).display());
        if let Some(p) = &self.partition {
            let _ = writeln!(out, "#SBATCH --partition={p}");
        }
    }

    /// The paths flags shared by both scripts.
    fn path_flags(&self) -> String {
        let mut s = format!(
            " --data-dir {} --results-dir {}",
            qp(&self.data_dir),
            qp(&self.results_dir)
        );
        for d in &self.models_dirs {
            let _ = write!(s, " --models-dir {}", qp(d));
        }
        s
    }

    /// The job-array script: one shard of the grid per task.
    pub fn array_script(&self) -> String {
        let mut s = String::new();
        self.header(&mut s, &format!("wb-{}", self.name), "%A_%a.out");
        let _ = writeln!(s, "#SBATCH --array=0-{}", self.tasks.max(1) - 1);
        let _ = writeln!(s, "#SBATCH --cpus-per-task={}", self.threads);
        let _ = writeln!(s, "#SBATCH --mem={}", self.mem);
        let _ = writeln!(s, "#SBATCH --time={}", self.time);
        if let Some(g) = self.gpus_per_task {
            let _ = writeln!(s, "#SBATCH --gpus-per-task={g}");
        }
        let device = if self.gpus_per_task.is_some() {
            "cuda"
        } else {
            "cpu"
        };
        let _ = writeln!(s, "set -euo pipefail");
        let (how, flag) = if self.claim {
            (
                "# Every task takes unclaimed cells until none is left.",
                " --claim",
            )
        } else {
            (
                "# The shard of this task comes from SLURM_ARRAY_TASK_ID/_MIN/_COUNT.",
                "",
            )
        };
        let _ = writeln!(s, "{how}");
        let _ = writeln!(
            s,
            "exec {} run {}{flag} --no-report --quiet --threads {} --device {device}{}",
            qp(&self.binary),
            qp(&self.experiment),
            self.threads,
            self.path_flags()
        );
        s
    }

    /// The report script, to run once the array has finished.
    pub fn report_script(&self) -> String {
        let mut s = String::new();
        self.header(&mut s, &format!("wb-{}-report", self.name), "report_%j.out");
        let _ = writeln!(s, "#SBATCH --cpus-per-task=1");
        let _ = writeln!(s, "#SBATCH --mem=4G");
        let _ = writeln!(s, "#SBATCH --time=00:30:00");
        let _ = writeln!(s, "set -euo pipefail");
        let _ = writeln!(
            s,
            "exec {} report {}{} --reports-dir {}",
            qp(&self.binary),
            q(&self.name),
            self.path_flags(),
            qp(&self.reports_dir)
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SlurmSpec {
        SlurmSpec {
            name: "exp".into(),
            experiment: "/x/experiments/exp.toml".into(),
            binary: "/x/bin/weightbench".into(),
            tasks: 4,
            threads: 2,
            mem: "8G".into(),
            time: "12:00:00".into(),
            partition: Some("short".into()),
            gpus_per_task: None,
            claim: false,
            data_dir: "/data it's".into(),
            models_dirs: vec!["/x/models".into()],
            results_dir: "/x/results".into(),
            reports_dir: "/x/reports".into(),
        }
    }

    #[test]
    fn array_script_has_the_directives_and_the_run_command() {
        let s = spec().array_script();
        for line in [
            "#SBATCH --array=0-3",
            "#SBATCH --cpus-per-task=2",
            "#SBATCH --mem=8G",
            "#SBATCH --partition=short",
            "#SBATCH --output=/x/results/exp/slurm/%A_%a.out",
            "exec '/x/bin/weightbench' run '/x/experiments/exp.toml' --no-report --quiet --threads 2 --device cpu --data-dir '/data it'\\''s'",
        ] {
            assert!(s.contains(line), "missing `{line}` in\n{s}");
        }
        let mut g = spec();
        g.gpus_per_task = Some(1);
        let s = g.array_script();
        assert!(s.contains("#SBATCH --gpus-per-task=1") && s.contains("--device cuda"));
        let c = SlurmSpec {
            claim: true,
            ..spec()
        }
        .array_script();
        assert!(
            c.contains("run '/x/experiments/exp.toml' --claim --no-report")
                && !c.contains("SLURM_ARRAY_TASK_ID"),
            "{c}"
        );
        let r = spec().report_script();
        assert!(
            r.contains("report 'exp'") && r.contains("--reports-dir '/x/reports'"),
            "{r}"
        );
    }
}
