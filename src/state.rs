//! The state root: one directory per container holding `state.json` (written
//! atomically), the `exec.fifo` that holds a created init before `start`, and a lock.
//!
//! Status is derived, never stored: the init pid plus its start time (so a reused pid
//! is never mistaken for the container), the fifo (created vs running), the freezer.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub const STATE_FILE: &str = "state.json";
pub const FIFO: &str = "exec.fifo";
/// What a `create` in progress has made, until state.json replaces it.
pub const CREATING_FILE: &str = "creating.json";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kraal keeps about a container between commands.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Saved {
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    /// Field 22 of /proc/<pid>/stat when the init was created.
    pub init_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Absolute cgroup directories the container was placed in, one per hierarchy.
    #[serde(default)]
    pub cgroup_dirs: Vec<PathBuf>,
    /// Parents of those directories that create made (removed on delete if empty).
    #[serde(default)]
    pub cgroup_parents: Vec<PathBuf>,
    /// The transient systemd scope holding the container (`--systemd-cgroup`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd_unit: Option<String>,
    /// True when the container has its own pid namespace (killing init kills all).
    #[serde(default)]
    pub own_pidns: bool,
    /// No mount namespace: the rootfs bind (and everything on it) lives in the host's
    /// mount namespace and is detached on delete.
    #[serde(default)]
    pub host_mounts: bool,
    #[serde(default)]
    pub net_devices: Vec<crate::netdev::MovedDevice>,
    /// The config the container was created from (hooks, process for exec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<oci_spec::runtime::Spec>,
    /// The caller's NOTIFY_SOCKET at create: `start` reports readiness there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_socket: Option<PathBuf>,
}

/// What a `create` has made so far, rewritten as it makes more. A create killed before
/// it writes state.json leaves this behind, and `delete` undoes exactly what it lists.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Creating {
    #[serde(default)]
    pub cgroup_dirs: Vec<PathBuf>,
    #[serde(default)]
    pub cgroup_parents: Vec<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd_unit: Option<String>,
    /// The cloned init (or the child that forks it) and its start time; 0 before.
    #[serde(default)]
    pub pid: i32,
    #[serde(default)]
    pub init_start: u64,
    /// The rootfs bind in the host's mount namespace (no mount namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_rootfs: Option<PathBuf>,
}

/// Validates a container id as runc does; it becomes a directory name.
pub fn validate_id(id: &str) -> Result<()> {
    if id.is_empty() {
        bail!("invalid container id: the id is empty");
    }
    if id == "." || id == ".." {
        bail!("invalid container id {id:?}: . and .. are not allowed");
    }
    if id.len() > 255 {
        bail!(
            "invalid container id: {} bytes long, at most 255 allowed",
            id.len()
        );
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.')))
    {
        bail!("invalid container id {id:?}: character {c:?} is not allowed (letters, digits, _ + - . only)");
    }
    Ok(())
}

pub fn default_root() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/run/kraal");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("kraal"),
        _ => PathBuf::from(format!("/tmp/kraal-{}", nix::unistd::geteuid())),
    }
}

/// A container's directory under the state root, with its lock held (except for
/// read-only views: state.json is replaced atomically, so readers need no lock).
pub struct Dir {
    pub path: PathBuf,
    lock: Option<OwnedFd>,
}

fn lock_dir(path: &Path) -> Result<OwnedFd> {
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(path)
        .with_context(|| format!("open state directory {}", path.display()))?;
    let fd = OwnedFd::from(f);
    if unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("lock state directory {}", path.display()));
    }
    Ok(fd)
}

impl Dir {
    /// Makes the directory for a new container; fails if the id is taken.
    pub fn create(root: &Path, id: &str) -> Result<Dir> {
        validate_id(id)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(root)
            .with_context(|| format!("create state root {}", root.display()))?;
        let path = root.join(id);
        match fs::DirBuilder::new().mode(0o711).create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                bail!("container with id {id:?} already exists")
            }
            Err(e) => {
                return Err(e).with_context(|| format!("create state directory {}", path.display()))
            }
        }
        let lock = Some(lock_dir(&path)?);
        Ok(Dir { path, lock })
    }

    /// Opens and locks an existing container's directory.
    pub fn open(root: &Path, id: &str) -> Result<Dir> {
        validate_id(id)?;
        let path = root.join(id);
        if !path.is_dir() {
            bail!("container {id:?} does not exist");
        }
        let lock = Some(lock_dir(&path).with_context(|| format!("container {id:?}"))?);
        // A concurrent delete may have removed it while we waited for the lock.
        if !path.is_dir() {
            bail!("container {id:?} does not exist");
        }
        Ok(Dir { path, lock })
    }

    /// Opens a container's directory to read it, without waiting for its lock (so
    /// `state` and `list` never block behind a slow `create` or `delete`).
    pub fn open_read(root: &Path, id: &str) -> Result<Dir> {
        validate_id(id)?;
        let path = root.join(id);
        if !path.is_dir() {
            bail!("container {id:?} does not exist");
        }
        Ok(Dir { path, lock: None })
    }

    pub fn lock_fd(&self) -> i32 {
        self.lock.as_ref().map(|l| l.as_raw_fd()).unwrap_or(-1)
    }

    pub fn fifo(&self) -> PathBuf {
        self.path.join(FIFO)
    }

    /// Reads the saved state; `None` while the container is still being created.
    pub fn load(&self) -> Result<Option<Saved>> {
        let p = self.path.join(STATE_FILE);
        let data = match fs::read(&p) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("read {}", p.display())),
        };
        let s = serde_json::from_slice(&data).with_context(|| format!("parse {}", p.display()))?;
        Ok(Some(s))
    }

    /// Writes state.json atomically: a reader sees the old or the new file, never half.
    pub fn save(&self, s: &Saved) -> Result<()> {
        let data = serde_json::to_vec(s).context("encode state")?;
        write_atomic(&self.path.join(STATE_FILE), &data, 0o600)
    }

    /// Records what a create in progress has made (see [`Creating`]).
    pub fn save_creating(&self, c: &Creating) -> Result<()> {
        let data = serde_json::to_vec(c).context("encode the create record")?;
        write_atomic(&self.path.join(CREATING_FILE), &data, 0o600)
    }

    /// The record of a create that never wrote state.json, if it got that far.
    pub fn load_creating(&self) -> Result<Option<Creating>> {
        let p = self.path.join(CREATING_FILE);
        let data = match fs::read(&p) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("read {}", p.display())),
        };
        let c = serde_json::from_slice(&data).with_context(|| format!("parse {}", p.display()))?;
        Ok(Some(c))
    }

    /// Derives the status of a saved container from the live system.
    pub fn status(&self, s: Option<&Saved>) -> Status {
        let Some(s) = s else { return Status::Creating };
        if !process_alive(s.pid, s.init_start) {
            return Status::Stopped;
        }
        if self.fifo().exists() {
            return Status::Created;
        }
        if crate::cgroups::is_frozen(&s.cgroup_dirs) {
            return Status::Paused;
        }
        Status::Running
    }

    /// Removes the directory and everything in it.
    pub fn remove(self) -> Result<()> {
        fs::remove_dir_all(&self.path)
            .with_context(|| format!("remove state directory {}", self.path.display()))
    }
}

pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let r = (|| -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        // No fsync: the state root is a tmpfs (/run) in normal use, and rename alone
        // already gives readers the old or the new file, never half of one.
        fs::rename(&tmp, path)
    })();
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r.with_context(|| format!("write {}", path.display()))
}

/// Waits (bounded by `limit`) until `pid` is no longer runnable: it has run its
/// first steps and blocked, or exited. A process that stays busy ends the wait at
/// `limit`.
pub fn wait_settled(pid: i32, limit: std::time::Duration) {
    let path = format!("/proc/{pid}/stat");
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        let Ok(data) = fs::read_to_string(&path) else {
            return;
        };
        let state = data
            .rfind(')')
            .and_then(|i| data[i + 1..].split_whitespace().next());
        if state != Some("R") {
            return;
        }
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
}

/// Start time of a process (clock ticks since boot), field 22 of /proc/<pid>/stat,
/// and whether it is a zombie.
pub fn proc_start_time(pid: i32) -> Option<(u64, bool)> {
    let data = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &data[data.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    // `state` is field 3; start time is field 22, i.e. 19 further on.
    let start = fields.nth(18)?.parse().ok()?;
    Some((start, state == "Z" || state == "X"))
}

pub fn process_alive(pid: i32, start: u64) -> bool {
    if pid <= 0 {
        return false;
    }
    matches!(proc_start_time(pid), Some((s, false)) if s == start)
}

/// Every container directory name under a root, sorted.
pub fn list_ids(root: &Path) -> Result<Vec<String>> {
    let rd = match fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("read state root {}", root.display())),
    };
    let mut ids: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    ids.sort();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["a", "abc-1.2_x+y", &"x".repeat(255)] {
            validate_id(ok).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "../x", "a b", "é", &"x".repeat(256)] {
            assert!(validate_id(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn own_start_time() {
        let me = std::process::id() as i32;
        let (start, zombie) = proc_start_time(me).unwrap();
        assert!(!zombie);
        assert!(process_alive(me, start));
        assert!(!process_alive(me, start + 1));
    }

    #[test]
    fn create_twice_fails_and_save_roundtrips() {
        let root = std::env::temp_dir().join(format!("kraal-state-test-{}", std::process::id()));
        let d = Dir::create(&root, "c1").unwrap();
        let err = Dir::create(&root, "c1").err().unwrap();
        assert!(err.to_string().contains("already exists"), "{err}");
        assert_eq!(d.status(None), Status::Creating);
        let s = Saved {
            id: "c1".into(),
            pid: 1 << 30,
            ..Default::default()
        };
        d.save(&s).unwrap();
        let back = d.load().unwrap().unwrap();
        assert_eq!(back.id, "c1");
        assert_eq!(d.status(Some(&back)), Status::Stopped);
        d.remove().unwrap();
        fs::remove_dir_all(&root).unwrap();
    }
}
