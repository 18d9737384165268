//! Freezing and thawing a container (`pause`/`resume`): the v1 `freezer` controller
//! when mounted (hybrid hosts too), else v2's `cgroup.freeze`. Both wait until the
//! kernel reports every task frozen, so `state` says `paused` only when it is true.

use super::file;
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freezer<'a> {
    V1(&'a Path),
    V2(&'a Path),
}

/// The freezer of a container: v1's directory (it has `freezer.state`) before v2's.
pub fn find(dirs: &[PathBuf]) -> Option<Freezer<'_>> {
    dirs.iter()
        .find(|d| file::exists(d, "freezer.state"))
        .map(|d| Freezer::V1(d))
        .or_else(|| {
            dirs.iter()
                .find(|d| file::exists(d, "cgroup.freeze"))
                .map(|d| Freezer::V2(d))
        })
}

pub fn is_frozen(dirs: &[PathBuf]) -> bool {
    match find(dirs) {
        Some(Freezer::V1(d)) => file::read(d, "freezer.state")
            .map(|s| s.trim() == "FROZEN")
            .unwrap_or(false),
        Some(Freezer::V2(d)) => file::read(d, "cgroup.freeze")
            .map(|s| s.trim() == "1")
            .unwrap_or(false),
        None => false,
    }
}

pub fn freeze(dirs: &[PathBuf]) -> Result<()> {
    match find(dirs) {
        Some(Freezer::V1(d)) => freeze_v1(d),
        Some(Freezer::V2(d)) => {
            let r = freeze_v2(d);
            if r.is_err() {
                let _ = file::write(d, "cgroup.freeze", "0");
            }
            r
        }
        None => bail!("no freezer: neither the v1 freezer controller nor cgroup.freeze is available for this container"),
    }
}

pub fn thaw(dirs: &[PathBuf]) -> Result<()> {
    match find(dirs) {
        Some(Freezer::V1(d)) => file::write(d, "freezer.state", "THAWED"),
        Some(Freezer::V2(d)) => {
            file::write(d, "cgroup.freeze", "0")?;
            wait_events(d, "frozen", "0")
        }
        None => bail!("no freezer: neither the v1 freezer controller nor cgroup.freeze is available for this container"),
    }
}

/// v1 can stay in FREEZING forever when a task sits in an uninterruptible sleep the
/// freezer cannot catch; thawing briefly and trying again gets past it (runc's way).
fn freeze_v1(dir: &Path) -> Result<()> {
    let deadline = Instant::now() + TIMEOUT;
    let mut tries = 0u32;
    let r = loop {
        tries += 1;
        if tries % 50 == 0 {
            file::write(dir, "freezer.state", "THAWED")?;
            std::thread::sleep(Duration::from_millis(10));
        }
        file::write(dir, "freezer.state", "FROZEN")?;
        let state = file::read(dir, "freezer.state")?;
        match state.trim() {
            "FROZEN" => break Ok(()),
            "FREEZING" => {}
            other => {
                break Err(anyhow::anyhow!(
                    "unexpected freezer state {other:?} while freezing"
                ))
            }
        }
        if Instant::now() > deadline {
            break Err(anyhow::anyhow!(
                "{} still FREEZING after {TIMEOUT:?}",
                dir.join("freezer.state").display()
            ));
        }
        std::thread::sleep(Duration::from_millis(if tries < 25 { 0 } else { 1 }));
    };
    if r.is_err() {
        let _ = file::write(dir, "freezer.state", "THAWED");
    }
    r
}

fn freeze_v2(dir: &Path) -> Result<()> {
    file::write(dir, "cgroup.freeze", "1")?;
    wait_events(dir, "frozen", "1")
}

/// Polls `cgroup.events` until `key` has `value`.
fn wait_events(dir: &Path, key: &str, value: &str) -> Result<()> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let ev = file::read(dir, "cgroup.events")?;
        let cur = ev
            .lines()
            .find_map(|l| l.strip_prefix(key).map(str::trim).map(String::from));
        match cur {
            Some(v) if v == value => return Ok(()),
            // Kernels before 5.2 have no frozen key: the write itself is all there is.
            None => return Ok(()),
            Some(_) => {}
        }
        if Instant::now() > deadline {
            bail!(
                "{} did not report {key} {value} within {TIMEOUT:?}",
                dir.join("cgroup.events").display()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::FakeDir;
    use super::*;

    #[test]
    fn v1_before_v2_and_state() {
        let v1 = FakeDir::new(&[("freezer.state", "THAWED")]);
        let v2 = FakeDir::new(&[
            ("cgroup.freeze", "0"),
            ("cgroup.events", "populated 1\nfrozen 0\n"),
        ]);
        let dirs = vec![v2.0.clone(), v1.0.clone()];
        assert_eq!(find(&dirs), Some(Freezer::V1(&v1.0)));
        // A fake file reads back what was written: FROZEN at once.
        freeze(&dirs).unwrap();
        assert!(is_frozen(&dirs));
        thaw(&dirs).unwrap();
        assert!(!is_frozen(&dirs));
        assert_eq!(v1.get("freezer.state"), "THAWED");
    }

    #[test]
    fn v2_writes_cgroup_freeze_and_reads_events() {
        let v2 = FakeDir::new(&[
            ("cgroup.freeze", "0"),
            ("cgroup.events", "populated 1\nfrozen 1\n"),
        ]);
        let dirs = vec![v2.0.clone()];
        freeze(&dirs).unwrap();
        assert_eq!(v2.get("cgroup.freeze"), "1");
        assert!(is_frozen(&dirs));
        // thaw waits for "frozen 0": make the fake say so.
        v2.set("cgroup.events", "populated 1\nfrozen 0\n");
        thaw(&dirs).unwrap();
        assert_eq!(v2.get("cgroup.freeze"), "0");
    }
}
