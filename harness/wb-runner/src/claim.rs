//! Claim mode: any number of workers share one results directory and take cells one
//! at a time.
//!
//! A worker claims a cell by creating `claims/<cell>/<n>.claim` exclusively
//! (`O_EXCL`, atomic on local filesystems and NFS): `n` is one above the highest claim
//! already there, so of two workers that find the same dead claim only one takes the
//! next number. A claim holds its owner (pid, host, start, command) and is kept alive
//! by a heartbeat thread that refreshes its modification time. A claim is *dead* when
//! its owner ran on this host and its pid is gone (a SIGKILLed worker: at once), or
//! when its heartbeat has been silent for longer than the timeout (another host, a
//! lost node). Dead claims stay on disk as a record of what was reclaimed; a finished
//! cell removes its own claim. A cell that has a result file is never claimed.

use crate::lock::Owner;
use anyhow::{Context as _, Result};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The folder of claims inside `results/<exp>/`.
pub const CLAIMS_DIR: &str = "claims";

/// How claims are kept alive and judged dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimPolicy {
    /// A claim whose heartbeat is older than this is dead.
    pub timeout: Duration,
    /// How often the holder refreshes its claim.
    pub heartbeat: Duration,
}

impl ClaimPolicy {
    /// A policy with `timeout`, beating four times per timeout (so one late beat on a
    /// busy shared filesystem never makes a live claim look dead).
    pub fn with_timeout(timeout: Duration) -> ClaimPolicy {
        ClaimPolicy {
            timeout,
            heartbeat: (timeout / 4).max(Duration::from_millis(100)),
        }
    }
}

impl Default for ClaimPolicy {
    /// Ten minutes: longer than any pause of a healthy node, short enough that a lost
    /// node's cell is redone within the hour.
    fn default() -> Self {
        ClaimPolicy::with_timeout(Duration::from_secs(600))
    }
}

/// A claim this worker holds; dropping it stops the heartbeat and removes the file.
#[derive(Debug)]
pub struct Claim {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    beat: Option<std::thread::JoinHandle<()>>,
    /// The dead claim this one replaced, for the log.
    pub reclaimed: Option<String>,
}

/// The outcome of [`try_claim`].
#[derive(Debug)]
pub enum Attempt {
    /// This worker now holds the cell.
    Taken(Claim),
    /// A live worker holds it (its owner line, when readable).
    Held(String),
}

/// What is in a claim file, judged by `policy`.
enum State {
    Live(String),
    Dead(String),
    Gone,
}

fn claim_number(name: &str) -> Option<u64> {
    name.strip_suffix(".claim")?.parse().ok()
}

fn describe(o: &Option<Owner>) -> String {
    match o {
        Some(o) => format!("pid {} on {} since {}", o.pid, o.host, o.started),
        None => "an unreadable claim".to_string(),
    }
}

fn state(path: &Path, policy: &ClaimPolicy) -> State {
    let Ok(meta) = std::fs::metadata(path) else {
        return State::Gone;
    };
    let owner = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| Owner::parse(&t));
    let silent = meta
        .modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .unwrap_or_default();
    // A half-written claim (its creator killed between create and write) reads as no
    // owner and is judged by its age alone.
    let pid_gone = owner.as_ref().is_some_and(Owner::is_stale);
    if pid_gone || silent > policy.timeout {
        State::Dead(describe(&owner))
    } else {
        State::Live(describe(&owner))
    }
}

/// The highest-numbered claim of a cell, if any.
fn newest(cell_dir: &Path) -> Option<u64> {
    std::fs::read_dir(cell_dir)
        .ok()?
        .flatten()
        .filter_map(|e| claim_number(&e.file_name().to_string_lossy()))
        .max()
}

/// Tries to claim `cell_id` under `results_dir` (`results/<exp>/`).
///
/// # Errors
/// When the claims folder or file cannot be created or written.
pub fn try_claim(results_dir: &Path, cell_id: &str, policy: &ClaimPolicy) -> Result<Attempt> {
    let cell_dir = results_dir.join(CLAIMS_DIR).join(cell_id);
    let mut reclaimed = None;
    // Each pass either takes the next number or learns that someone else did; a few
    // passes settle any race between workers that looked at the same moment.
    for _ in 0..8 {
        std::fs::create_dir_all(&cell_dir)
            .with_context(|| format!("creating {}", cell_dir.display()))?;
        let next = match newest(&cell_dir) {
            None => 0,
            Some(n) => match state(&cell_dir.join(format!("{n}.claim")), policy) {
                State::Live(who) => return Ok(Attempt::Held(who)),
                State::Dead(who) => {
                    reclaimed = Some(who);
                    n + 1
                }
                // Released between the listing and the read: look again.
                State::Gone => continue,
            },
        };
        let path = cell_dir.join(format!("{next}.claim"));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                f.write_all(Owner::this_process().to_text().as_bytes())
                    .and_then(|()| f.sync_all())
                    .with_context(|| format!("writing {}", path.display()))?;
                return Ok(Attempt::Taken(Claim::hold(path, policy, reclaimed)));
            }
            // Another worker took this number, or the folder was removed by a worker
            // that released the cell's last claim: look again.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::AlreadyExists | std::io::ErrorKind::NotFound
                ) => {}
            Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
        }
    }
    Ok(Attempt::Held(
        "another worker (claims changed under us)".into(),
    ))
}

impl Claim {
    fn hold(path: PathBuf, policy: &ClaimPolicy, reclaimed: Option<String>) -> Claim {
        let stop = Arc::new(AtomicBool::new(false));
        let beat = {
            let (path, stop, every) = (path.clone(), stop.clone(), policy.heartbeat);
            std::thread::spawn(move || heartbeat(&path, &stop, every))
        };
        Claim {
            path,
            stop,
            beat: Some(beat),
            reclaimed,
        }
    }

    /// Whether this claim is still the cell's newest: false when another worker judged
    /// this one dead (a pause longer than the timeout) and took the cell over.
    pub fn is_current(&self) -> bool {
        let number = self
            .path
            .file_name()
            .and_then(|n| claim_number(&n.to_string_lossy()));
        self.path
            .parent()
            .and_then(newest)
            .is_some_and(|n| Some(n) == number)
    }
}

/// Refreshes the claim's modification time every `every` until `stop`.
fn heartbeat(path: &Path, stop: &AtomicBool, every: Duration) {
    let tick = Duration::from_millis(50).min(every);
    let mut since = Duration::ZERO;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(tick);
        since += tick;
        if since >= every {
            since = Duration::ZERO;
            if let Ok(f) = std::fs::OpenOptions::new().write(true).open(path) {
                let _ = f.set_modified(SystemTime::now());
            }
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(b) = self.beat.take() {
            let _ = b.join();
        }
        let _ = std::fs::remove_file(&self.path);
        // The cell's folder goes when this was its last claim (dead claims keep it).
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick() -> ClaimPolicy {
        ClaimPolicy::with_timeout(Duration::from_secs(2))
    }

    #[test]
    fn a_live_claim_is_held_and_released_on_drop() {
        let tmp = tempfile::tempdir().unwrap();
        let Attempt::Taken(c) = try_claim(tmp.path(), "cell", &quick()).unwrap() else {
            panic!("first claim refused");
        };
        assert!(c.is_current() && c.reclaimed.is_none());
        match try_claim(tmp.path(), "cell", &quick()).unwrap() {
            Attempt::Held(who) => assert!(who.contains(&format!("pid {}", std::process::id()))),
            Attempt::Taken(_) => panic!("claimed twice"),
        }
        drop(c);
        assert!(!tmp.path().join(CLAIMS_DIR).join("cell").exists());
        assert!(matches!(
            try_claim(tmp.path(), "cell", &quick()).unwrap(),
            Attempt::Taken(_)
        ));
    }

    #[test]
    fn a_dead_pid_is_reclaimed_at_once_and_its_claim_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(CLAIMS_DIR).join("cell");
        std::fs::create_dir_all(&dir).unwrap();
        let dead = Owner {
            pid: 4_999_999,
            ..Owner::this_process()
        };
        std::fs::write(dir.join("0.claim"), dead.to_text()).unwrap();
        let Attempt::Taken(c) = try_claim(tmp.path(), "cell", &quick()).unwrap() else {
            panic!("a dead worker's claim was not reclaimed");
        };
        assert!(c.reclaimed.as_deref().unwrap().contains("pid 4999999"));
        assert!(dir.join("1.claim").is_file() && c.is_current());
        drop(c);
        assert!(dir.join("0.claim").is_file() && !dir.join("1.claim").exists());
    }

    #[test]
    fn another_hosts_claim_dies_with_its_heartbeat() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(CLAIMS_DIR).join("cell");
        std::fs::create_dir_all(&dir).unwrap();
        let far = Owner {
            host: "some-other-host".into(),
            ..Owner::this_process()
        };
        let path = dir.join("3.claim");
        std::fs::write(&path, far.to_text()).unwrap();
        assert!(matches!(
            try_claim(tmp.path(), "cell", &quick()).unwrap(),
            Attempt::Held(_)
        ));
        // Silent for longer than the timeout.
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(60))
            .unwrap();
        let Attempt::Taken(c) = try_claim(tmp.path(), "cell", &quick()).unwrap() else {
            panic!("a silent claim was not reclaimed");
        };
        assert!(dir.join("4.claim").is_file());
        // The replaced worker, were it alive after all, can tell.
        assert!(c.is_current());
    }

    #[test]
    fn the_heartbeat_keeps_a_long_claim_alive() {
        let tmp = tempfile::tempdir().unwrap();
        let policy = ClaimPolicy::with_timeout(Duration::from_millis(400));
        let Attempt::Taken(c) = try_claim(tmp.path(), "cell", &policy).unwrap() else {
            panic!();
        };
        // Pretend this worker runs on another host so only the heartbeat keeps it.
        std::fs::write(
            &c.path,
            Owner {
                host: "elsewhere".into(),
                ..Owner::this_process()
            }
            .to_text(),
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(1200));
        assert!(matches!(
            try_claim(tmp.path(), "cell", &policy).unwrap(),
            Attempt::Held(_)
        ));
        drop(c);
    }

    #[test]
    fn racing_workers_take_each_cell_once() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let won: Vec<usize> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    let root = root.clone();
                    s.spawn(move || {
                        let mut held = Vec::new();
                        for cell in 0..20 {
                            if let Attempt::Taken(c) =
                                try_claim(&root, &format!("c{cell}"), &quick()).unwrap()
                            {
                                held.push(c);
                            }
                        }
                        // Hold them until every thread has tried.
                        std::thread::sleep(Duration::from_millis(300));
                        held.len()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(won.iter().sum::<usize>(), 20, "{won:?}");
    }
}
