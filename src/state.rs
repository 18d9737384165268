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
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
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

/// The state root when `--root` is not given: /run/kraal for root; for anyone else
/// $XDG_RUNTIME_DIR/kraal, or /run/user/<uid>/kraal when that runtime directory is
/// the user's own. Never a shared directory such as /tmp, where another user could
/// make the root first and fill it with forged state (and hooks) that `delete` runs.
pub fn default_root() -> Result<PathBuf> {
    let euid = nix::unistd::geteuid();
    if euid.is_root() {
        return Ok(PathBuf::from("/run/kraal"));
    }
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("kraal"));
    }
    let run = PathBuf::from(format!("/run/user/{euid}"));
    match fs::symlink_metadata(&run) {
        Ok(md)
            if md.file_type().is_dir() && md.uid() == euid.as_raw() && md.mode() & 0o022 == 0 =>
        {
            Ok(run.join("kraal"))
        }
        _ => bail!(
            "no state root: $XDG_RUNTIME_DIR is not set and {} is not a directory owned by \
             uid {euid} that only it can write; set XDG_RUNTIME_DIR or pass --root",
            run.display()
        ),
    }
}

/// The state root to use (`--root`, else [`default_root`]), checked before anything
/// in it is read or written: it must belong to the caller and be writable by nobody
/// else, or its contents (state.json with hooks, the container directories) could
/// have been planted by another user. `create` (the commands that make containers)
/// makes a missing root 0700, as runc does; for the others a missing root holds no
/// containers and is returned as it is, so that looking one up fails as before.
pub fn prepare_root(explicit: Option<&Path>, create: bool) -> Result<PathBuf> {
    let root = match explicit {
        Some(r) => r.to_path_buf(),
        None => default_root()?,
    };
    if create {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&root)
            .with_context(|| format!("create state root {}", root.display()))?;
    }
    let f = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(&root)
    {
        Ok(f) => f,
        Err(e) if !create && e.kind() == std::io::ErrorKind::NotFound => return Ok(root),
        Err(e) => return Err(e).with_context(|| format!("open state root {}", root.display())),
    };
    let md = f
        .metadata()
        .with_context(|| format!("stat state root {}", root.display()))?;
    let euid = nix::unistd::geteuid().as_raw();
    if md.uid() != euid {
        bail!(
            "state root {} is owned by uid {}, not by uid {euid} running kraal: refusing to use it",
            root.display(),
            md.uid()
        );
    }
    if md.mode() & 0o022 != 0 {
        bail!(
            "state root {} has mode {:o}: group or others may write it, refusing to use it",
            root.display(),
            md.mode() & 0o7777
        );
    }
    check_ancestors(&root)?;
    Ok(root)
}

/// Every directory above the state root (symlinks resolved) must be safe from other
/// users too: one who could write a parent could rename the checked root away and put
/// a forged one in its place. Owned by root or the caller, and writable by others
/// only when sticky (then nobody renames entries they do not own).
fn check_ancestors(root: &Path) -> Result<()> {
    let real =
        fs::canonicalize(root).with_context(|| format!("resolve state root {}", root.display()))?;
    let euid = nix::unistd::geteuid().as_raw();
    for dir in real.ancestors().skip(1) {
        let md = fs::metadata(dir)
            .with_context(|| format!("stat {} above state root", dir.display()))?;
        let owner_ok = md.uid() == 0 || md.uid() == euid;
        let writable = md.mode() & 0o022 != 0 && md.mode() & libc::S_ISVTX == 0;
        if !owner_ok || writable {
            bail!(
                "state root {}: {} above it is owned by uid {} with mode {:o}; another user \
                 could replace the root, refusing to use it",
                root.display(),
                dir.display(),
                md.uid(),
                md.mode() & 0o7777
            );
        }
    }
    Ok(())
}

/// Opens `dir`, a directory kraal is about to create a file in at a caller-chosen
/// place (`--pid-file`, `--log`), and checks that no other user can shape its
/// entries: it belongs to root or to the caller, and group or others may write it
/// only when it is sticky (then they cannot replace entries they do not own).
pub fn open_trusted_dir(dir: &Path, what: &str) -> Result<OwnedFd> {
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
        .with_context(|| format!("{what}: open directory {}", dir.display()))?;
    let md = f
        .metadata()
        .with_context(|| format!("{what}: stat directory {}", dir.display()))?;
    let euid = nix::unistd::geteuid().as_raw();
    if md.uid() != 0 && md.uid() != euid {
        bail!(
            "{what}: directory {} is owned by uid {} (neither root nor uid {euid}): refusing to write there",
            dir.display(),
            md.uid()
        );
    }
    if md.mode() & 0o022 != 0 && md.mode() & libc::S_ISVTX == 0 {
        bail!(
            "{what}: directory {} has mode {:o}: group or others may write it and it is not sticky, refusing to write there",
            dir.display(),
            md.mode() & 0o7777
        );
    }
    Ok(OwnedFd::from(f))
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
    /// Makes the directory for a new container; fails if the id is taken. `shared`
    /// (a container with a user namespace, whose init must reach the notify directory
    /// by path) makes it searchable by others (0711); otherwise only kraal may enter
    /// it (0700), so no other host user, whatever its uid, reaches exec.fifo or the
    /// notify socket even in a root others may search.
    pub fn create(root: &Path, id: &str, shared: bool) -> Result<Dir> {
        validate_id(id)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(root)
            .with_context(|| format!("create state root {}", root.display()))?;
        let path = root.join(id);
        let mode = if shared { 0o711 } else { 0o700 };
        match fs::DirBuilder::new().mode(mode).create(&path) {
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

/// A name no other user can guess ahead of time, for a temporary file.
fn random_suffix() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: getrandom(2) writes at most b.len() bytes into the buffer it is given.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != b.len() as isize {
        // Still unique enough with O_EXCL retries: the name is only a hint, and
        // O_EXCL|O_NOFOLLOW is what keeps a planted file or symlink from being used.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        return t ^ u64::from(std::process::id()).rotate_left(32);
    }
    u64::from_ne_bytes(b)
}

/// Replaces `path` with `data`: a reader sees the old or the new file, never half.
///
/// The file is written as root in a place the caller chose (`--pid-file`) or in the
/// state root, so nothing there is trusted: the directory is checked
/// ([`open_trusted_dir`]), the temporary file gets an unguessable name and is created
/// O_EXCL|O_NOFOLLOW (a planted file or symlink makes it pick another name, never
/// write through it), and renameat(2) relative to the checked directory puts it in
/// place (replacing a symlink at `path` itself, not what it points to).
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let Some(name) = path.file_name() else {
        bail!("write {}: the path has no file name", path.display());
    };
    let what = format!("write {}", path.display());
    let dir = open_trusted_dir(parent, &what)?;
    let cname = crate::sys::cstr(Path::new(name)).with_context(|| what.clone())?;
    let mut tries = 0;
    let (tmp, f) = loop {
        let tmp = format!(".{}.{:016x}.tmp", name.to_string_lossy(), random_suffix());
        let ctmp = std::ffi::CString::new(tmp.clone()).with_context(|| what.clone())?;
        match crate::sys::openat(
            Some(dir.as_fd()),
            &ctmp,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
            mode,
        ) {
            Ok(f) => break (ctmp, fs::File::from(f)),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) && tries < 16 => tries += 1,
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("{what}: create temporary file {}/{tmp}", parent.display())
                })
            }
        }
    };
    let r = (|| -> std::io::Result<()> {
        let mut f = f;
        f.write_all(data)?;
        // No fsync: the state root is a tmpfs (/run) in normal use, and rename alone
        // already gives readers the old or the new file, never half of one.
        // SAFETY: both names are NUL-terminated and both fds are the open directory.
        let r = unsafe {
            libc::renameat(
                dir.as_raw_fd(),
                tmp.as_ptr(),
                dir.as_raw_fd(),
                cname.as_ptr(),
            )
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    })();
    if r.is_err() {
        // SAFETY: unlinkat(2) of the temporary name this call created, in `dir`.
        unsafe { libc::unlinkat(dir.as_raw_fd(), tmp.as_ptr(), 0) };
    }
    r.with_context(|| what.clone())
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
        let d = Dir::create(&root, "c1", false).unwrap();
        let err = Dir::create(&root, "c1", false).err().unwrap();
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
