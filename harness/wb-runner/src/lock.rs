//! One run at a time per results directory.
//!
//! Two `weightbench run` processes on the same experiment would compute the same cells
//! twice, and the second's start-up clean-up would delete the first's temporary files.
//! [`RunLock::acquire`] creates `results/<exp>/run.lock` exclusively (owner pid, host,
//! start time, command line); a second run is refused with the owner named. The lock is
//! removed when the guard drops, also on errors; a lock left by a killed run is stale
//! when its host is this host and its pid is no longer alive, and is then replaced with
//! a note. A lock from another host cannot be checked from here: the message says which
//! file to delete once that run is known to be gone.

use anyhow::{Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The lock file's name inside `results/<exp>/`.
pub const LOCK_FILE: &str = "run.lock";

/// Who holds a lock, as written in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Process id.
    pub pid: u32,
    /// Host name.
    pub host: String,
    /// When the run started (RFC 3339, UTC).
    pub started: String,
    /// The command line.
    pub command: String,
}

impl Owner {
    pub(crate) fn this_process() -> Owner {
        Owner {
            pid: std::process::id(),
            host: wb_measure::env::hostname(),
            started: wb_measure::env::rfc3339_utc(std::time::SystemTime::now()),
            command: std::env::args().collect::<Vec<_>>().join(" "),
        }
    }

    pub(crate) fn to_text(&self) -> String {
        format!(
            "pid = {}\nhost = {}\nstarted = {}\ncommand = {}\n",
            self.pid, self.host, self.started, self.command
        )
    }

    /// Parses the file's text; `None` when it is not a lock this module wrote (a
    /// half-written file of a run killed while taking it reads as `None` too).
    pub(crate) fn parse(text: &str) -> Option<Owner> {
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix(" = "))
                .map(str::to_string)
        };
        Some(Owner {
            pid: field("pid")?.parse().ok()?,
            host: field("host")?,
            started: field("started")?,
            command: field("command").unwrap_or_default(),
        })
    }

    /// Whether the owner is certainly gone: same host, and no process with its pid.
    pub(crate) fn is_stale(&self) -> bool {
        self.host == wb_measure::env::hostname() && !pid_alive(self.pid)
    }
}

/// Whether a process with `pid` exists on this machine.
fn pid_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        // No cheap portable check: assume alive, so the lock is never stolen wrongly.
        true
    }
}

/// The held lock; dropping it removes the file.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
}

/// Why `path` cannot be taken: a live owner's description, or `None` when the file is
/// absent or stale (then removed, with a note).
fn live_owner(path: &Path) -> Result<Option<Owner>> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(None);
    };
    match Owner::parse(&text) {
        Some(o) if !o.is_stale() => Ok(Some(o)),
        owner => {
            let who = owner.map_or_else(
                || "an unreadable lock".to_string(),
                |o| format!("pid {} (started {}), no longer running", o.pid, o.started),
            );
            eprintln!("{}: replacing a stale lock of {who}", path.display());
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(e).with_context(|| format!("removing {}", path.display()))
                }
                _ => Ok(None),
            }
        }
    }
}

fn refusal(path: &Path, o: &Owner) -> anyhow::Error {
    anyhow::anyhow!(
        "another run holds {}: pid {} on {} since {} (`{}`). Wait for it to finish; if \
         that run is gone (another host, or a reused pid), delete the file and start again",
        path.display(),
        o.pid,
        o.host,
        o.started,
        o.command
    )
}

/// What a run takes: the whole grid, one shard of it, or cells one at a time by claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    /// A plain run over the whole grid.
    Whole,
    /// Shard `index` of `count`.
    Shard(usize, usize),
    /// A `--claim` worker.
    Claim,
}

impl LockKind {
    /// The lock file's name: `run.lock`, `run.shard-I-of-N.lock`, or
    /// `run.claim-HOST-PID.lock` (claim workers never exclude each other).
    pub fn file_name(self) -> String {
        match self {
            LockKind::Whole => LOCK_FILE.to_string(),
            LockKind::Shard(i, n) => format!("run.shard-{i}-of-{n}.lock"),
            LockKind::Claim => format!(
                "run.claim-{}-{}.lock",
                wb_measure::env::hostname(),
                std::process::id()
            ),
        }
    }

    /// Whether a run of this kind may not run beside the lock file `other`: a whole
    /// run excludes everything; shards and claim workers exclude each other, since
    /// shards do not look at claims.
    fn conflicts_with(self, other: &str) -> bool {
        let kind_of = |n: &str| {
            if n == LOCK_FILE {
                0
            } else if n.starts_with("run.shard-") {
                1
            } else {
                2
            }
        };
        match self {
            LockKind::Whole => true,
            LockKind::Shard(..) => kind_of(other) != 1,
            LockKind::Claim => kind_of(other) != 2,
        }
    }
}

impl RunLock {
    /// Takes the lock of a whole run in the results directory `dir` (which must exist).
    ///
    /// # Errors
    /// When another live run holds it (the message names pid, host, start and command),
    /// or the file cannot be created.
    pub fn acquire(dir: &Path) -> Result<RunLock> {
        Self::acquire_for(dir, LockKind::Whole)
    }

    /// Takes the lock of a run of `kind`. Shards of one grid run side by side (their
    /// cells are disjoint), and so do claim workers; every other pairing is refused.
    ///
    /// # Errors
    /// As [`Self::acquire`], naming the run that holds a conflicting lock.
    pub fn acquire_for(dir: &Path, kind: LockKind) -> Result<RunLock> {
        let path = dir.join(kind.file_name());
        let me = Owner::this_process();
        // Two attempts: the second after removing a stale lock.
        let mut taken = None;
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    f.write_all(me.to_text().as_bytes())
                        .and_then(|()| f.sync_all())
                        .with_context(|| format!("writing {}", path.display()))?;
                    taken = Some(RunLock { path: path.clone() });
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if let Some(o) = live_owner(&path)? {
                        return Err(refusal(&path, &o));
                    }
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("creating {}", path.display()));
                }
            }
        }
        let lock = taken.ok_or_else(|| {
            anyhow::anyhow!(
                "{}: another run took the lock while a stale one was replaced",
                path.display()
            )
        })?;
        // The other kinds of lock. (Two runs that start at the same instant may both
        // refuse; neither ever runs beside the other.)
        let mine = kind.file_name();
        let others: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        let n = p.file_name().map(|n| n.to_string_lossy().into_owned());
                        let n = n.unwrap_or_default();
                        let is_lock = n.starts_with("run.") && n.ends_with(".lock");
                        is_lock && n != mine && kind.conflicts_with(&n)
                    })
                    .collect()
            })
            .unwrap_or_default();
        for other in others {
            if let Some(o) = live_owner(&other)? {
                return Err(refusal(&other, &o));
            }
        }
        Ok(lock)
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_run_is_refused_and_the_lock_goes_with_the_guard() {
        let tmp = tempfile::tempdir().unwrap();
        let held = RunLock::acquire(tmp.path()).unwrap();
        let e = RunLock::acquire(tmp.path()).unwrap_err().to_string();
        assert!(
            e.contains("another run holds") && e.contains(&format!("pid {}", std::process::id())),
            "{e}"
        );
        drop(held);
        assert!(!tmp.path().join(LOCK_FILE).exists());
        RunLock::acquire(tmp.path()).unwrap();
    }

    #[test]
    fn stale_and_unreadable_locks_are_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(LOCK_FILE);
        // A pid above the kernel's maximum (2^22) is never alive.
        let dead = Owner {
            pid: 4_999_999,
            ..Owner::this_process()
        };
        std::fs::write(&path, dead.to_text()).unwrap();
        let lock = RunLock::acquire(tmp.path()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(Owner::parse(&text).unwrap().pid, std::process::id());
        drop(lock);
        std::fs::write(&path, "pid = ").unwrap();
        RunLock::acquire(tmp.path()).unwrap();
    }

    #[test]
    fn shards_run_side_by_side_but_not_beside_a_whole_run() {
        let tmp = tempfile::tempdir().unwrap();
        let a = RunLock::acquire_for(tmp.path(), LockKind::Shard(0, 2)).unwrap();
        let b = RunLock::acquire_for(tmp.path(), LockKind::Shard(1, 2)).unwrap();
        let e = RunLock::acquire_for(tmp.path(), LockKind::Shard(1, 2))
            .unwrap_err()
            .to_string();
        assert!(e.contains("run.shard-1-of-2.lock"), "{e}");
        let e = RunLock::acquire(tmp.path()).unwrap_err().to_string();
        assert!(
            e.contains("another run holds") && e.contains("shard"),
            "{e}"
        );
        // The refused whole run left no lock of its own behind.
        assert!(!tmp.path().join(LOCK_FILE).exists());
        drop((a, b));
        let whole = RunLock::acquire(tmp.path()).unwrap();
        let e = RunLock::acquire_for(tmp.path(), LockKind::Shard(0, 2))
            .unwrap_err()
            .to_string();
        assert!(e.contains("run.lock"), "{e}");
        drop(whole);
    }

    #[test]
    fn claim_workers_run_side_by_side_but_beside_no_shard_or_whole_run() {
        let tmp = tempfile::tempdir().unwrap();
        // Another live claim worker (this process stands in for it).
        let other = tmp.path().join("run.claim-elsewhere-7.lock");
        std::fs::write(&other, Owner::this_process().to_text()).unwrap();
        let mine = RunLock::acquire_for(tmp.path(), LockKind::Claim).unwrap();
        for kind in [LockKind::Whole, LockKind::Shard(0, 2)] {
            let e = RunLock::acquire_for(tmp.path(), kind)
                .unwrap_err()
                .to_string();
            assert!(e.contains("run.claim-"), "{e}");
        }
        drop(mine);
        std::fs::remove_file(other).unwrap();
        let shard = RunLock::acquire_for(tmp.path(), LockKind::Shard(0, 2)).unwrap();
        let e = RunLock::acquire_for(tmp.path(), LockKind::Claim)
            .unwrap_err()
            .to_string();
        assert!(e.contains("run.shard-0-of-2.lock"), "{e}");
        drop(shard);
    }

    #[test]
    fn a_lock_from_another_host_is_not_stolen() {
        let tmp = tempfile::tempdir().unwrap();
        let other = Owner {
            pid: 4_999_999,
            host: "some-other-host".into(),
            ..Owner::this_process()
        };
        std::fs::write(tmp.path().join(LOCK_FILE), other.to_text()).unwrap();
        let e = RunLock::acquire(tmp.path()).unwrap_err().to_string();
        assert!(
            e.contains("on some-other-host") && e.contains("delete the file"),
            "{e}"
        );
    }
}
