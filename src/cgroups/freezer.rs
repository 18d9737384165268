//! Freezing and thawing a container (`pause`/`resume`): the v1 `freezer` controller
//! when mounted (hybrid hosts too), else v2's `cgroup.freeze`. Both wait until the
//! kernel reports every task frozen, so `state` says `paused` only when it is true.

use super::{file, tree};
use anyhow::{bail, Result};
use std::ffi::CString;
use std::os::fd::BorrowedFd;
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

/// Undoes every freeze a container set on the cgroups it made below its own, in
/// each of its hierarchies that has a freezer: v1 `freezer.state` THAWED, v2
/// `cgroup.freeze` 0. The container's own cgroup is left as it is (paused or not).
///
/// A v1 task frozen by a sub-cgroup's own state stays frozen when its ancestors
/// thaw, and a frozen v1 task only dies of SIGKILL once thawed: without this a
/// container could keep processes alive through every kill. (A v2 frozen task dies
/// of SIGKILL, and v2 freezing is hierarchical; its self-set freezes are undone
/// too, so that nothing the container froze outlives a kill.) While the
/// container's own cgroup is frozen, thawed sub-cgroups stay frozen under it, in
/// v1 and v2 alike. The walk goes by directory fds (see `tree`).
pub fn thaw_below(dirs: &[PathBuf]) -> Result<()> {
    let mut first_err = None;
    for d in dirs {
        for (file, value) in [("freezer.state", "THAWED"), ("cgroup.freeze", "0")] {
            if !file::exists(d, file) {
                continue;
            }
            let mut t = ThawBelow {
                file: CString::new(file)?,
                value,
                top: true,
                err: None,
            };
            let r = tree::walk(d, &mut t);
            if let Some(e) = t.err.or(r.err()) {
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Writes `value` to `file` of every cgroup below the top of a walk; keeps going
/// past a failure (every other one still thaws) and remembers the first.
struct ThawBelow {
    file: CString,
    value: &'static str,
    top: bool,
    err: Option<anyhow::Error>,
}

impl tree::Visit for ThawBelow {
    fn pre(&mut self, dir: BorrowedFd, path: &Path) -> Result<()> {
        if std::mem::take(&mut self.top) {
            return Ok(());
        }
        match tree::write_at(dir, &self.file, self.value) {
            Ok(()) => {}
            Err(e) if tree::is_gone(&e) => {}
            Err(e) => {
                let e = anyhow::Error::new(e).context(format!(
                    "write {:?} to {}",
                    self.value,
                    path.join(self.file.to_string_lossy().as_ref()).display()
                ));
                self.err.get_or_insert(e);
            }
        }
        Ok(())
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

    /// The container's own freezes below its cgroup are undone at every depth, in
    /// v1 and v2; the container's cgroup itself keeps its state.
    #[test]
    fn thaw_below_undoes_the_containers_own_freezes() {
        let v1 = FakeDir::new(&[("freezer.state", "FROZEN")]);
        let v2 = FakeDir::new(&[("cgroup.freeze", "1")]);
        for (d, file, value) in [
            (&v1, "freezer.state", "FROZEN"),
            (&v2, "cgroup.freeze", "1"),
        ] {
            let deep = d.0.join("a/b/c");
            std::fs::create_dir_all(&deep).unwrap();
            for sub in [d.0.join("a"), deep.clone()] {
                std::fs::write(sub.join(file), value).unwrap();
            }
        }
        thaw_below(&[v1.0.clone(), v2.0.clone()]).unwrap();
        assert_eq!(v1.get("freezer.state"), "FROZEN");
        assert_eq!(v1.get("a/freezer.state"), "THAWED");
        assert_eq!(v1.get("a/b/c/freezer.state"), "THAWED");
        assert_eq!(v2.get("cgroup.freeze"), "1");
        assert_eq!(v2.get("a/cgroup.freeze"), "0");
        assert_eq!(v2.get("a/b/c/cgroup.freeze"), "0");
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
