//! Placing a container in its cgroups: finding the hierarchies (v1, v2 or hybrid),
//! resolving `linux.cgroupsPath` as runc does, creating and joining the directories,
//! listing and killing their processes, and removing them on delete.
//!
//! Resource limits are applied by the controller modules on top of these directories:
//! `resources` picks, per `linux.resources` section, the v1 hierarchy or the v2 cgroup
//! that enforces it, and `v1`/`v2` write the files. On hybrid hosts a controller
//! mounted as v1 is used there, and the cgroup2 tree serves the ones only it has.

pub mod convert;
pub mod devices;
pub mod devices_bpf;
#[cfg(test)]
mod fake;
pub mod file;
pub mod freezer;
pub mod oom;
pub mod resources;
pub mod stats;
pub mod systemd;
pub mod tree;
pub mod v1;
pub mod v2;

pub use resources::Placement;

use anyhow::{bail, Context, Result};
use std::ffi::CStr;
use std::fs;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One mounted cgroup hierarchy as this process sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hierarchy {
    pub mountpoint: PathBuf,
    /// v1 controllers (`cpu`, `name=systemd`, ...); empty for cgroup2.
    pub controllers: Vec<String>,
    pub v2: bool,
    /// This process's own cgroup in that hierarchy, relative to the mount's root.
    pub own: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    Unified,
    Hybrid,
    Legacy,
}

/// Parses /proc/self/mountinfo and /proc/self/cgroup (passed in, for tests).
pub fn parse_hierarchies(mountinfo: &str, self_cgroup: &str) -> Vec<Hierarchy> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 {
            continue;
        }
        let (root, mnt, fstype, opts) = (pre[3], unescape(pre[4]), post[0], post[2]);
        let v2 = match fstype {
            "cgroup2" => true,
            "cgroup" => false,
            _ => continue,
        };
        let controllers: Vec<String> = if v2 {
            Vec::new()
        } else {
            opts.split(',')
                .filter(|o| {
                    !matches!(*o, "rw" | "ro") && (!o.contains('=') || o.starts_with("name="))
                })
                .filter(|o| {
                    !matches!(
                        *o,
                        "noprefix" | "clone_children" | "xattr" | "cpuset_v2_mode"
                    )
                })
                .map(String::from)
                .collect()
        };
        // A hierarchy mounted twice (bind mounts) is used once.
        if out
            .iter()
            .any(|h: &Hierarchy| h.v2 == v2 && h.controllers == controllers)
        {
            continue;
        }
        let Some(own_abs) = self_cgroup.lines().find_map(|l| {
            let mut it = l.splitn(3, ':');
            let (id, ctrls, path) = (it.next()?, it.next()?, it.next()?);
            let matches = if v2 {
                id == "0" && ctrls.is_empty()
            } else {
                let mut a: Vec<&str> = ctrls.split(',').collect();
                let mut b: Vec<&str> = controllers.iter().map(|s| s.as_str()).collect();
                a.sort();
                b.sort();
                !ctrls.is_empty() && a == b
            };
            matches.then(|| path.to_string())
        }) else {
            continue;
        };
        let own = Path::new(&own_abs)
            .strip_prefix(root)
            .map(|p| PathBuf::from("/").join(p))
            .unwrap_or_else(|_| PathBuf::from("/"));
        out.push(Hierarchy {
            mountpoint: PathBuf::from(mnt),
            controllers,
            v2,
            own,
        });
    }
    out
}

fn unescape(s: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo.
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn hierarchies() -> Result<Vec<Hierarchy>> {
    let mi = fs::read_to_string("/proc/self/mountinfo").context("read /proc/self/mountinfo")?;
    let cg = fs::read_to_string("/proc/self/cgroup").context("read /proc/self/cgroup")?;
    Ok(parse_hierarchies(&mi, &cg))
}

pub fn layout(h: &[Hierarchy]) -> Layout {
    match (h.iter().any(|h| h.v2), h.iter().any(|h| !h.v2)) {
        (true, false) => Layout::Unified,
        (true, true) => Layout::Hybrid,
        _ => Layout::Legacy,
    }
}

/// Where the container's cgroup lives inside one hierarchy.
pub fn container_dir(h: &Hierarchy, cgroups_path: Option<&Path>, id: &str) -> Result<PathBuf> {
    let inner = match cgroups_path {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from(id),
    };
    for c in inner.components() {
        if matches!(c, std::path::Component::ParentDir) {
            bail!("linux.cgroupsPath: {} must not contain ..", inner.display());
        }
    }
    let rel = if inner.is_absolute() {
        inner
    } else if h.v2 {
        // As runc's v2 driver: from the parent of kraal's own cgroup, because a
        // cgroup holding processes (kraal's, e.g. a service or session scope) can
        // never pass controllers down to a child (no internal processes on v2).
        h.own.parent().unwrap_or(&h.own).join(inner)
    } else {
        h.own.join(inner)
    };
    let rel = rel.strip_prefix("/").unwrap_or(&rel).to_path_buf();
    if rel.as_os_str().is_empty() {
        bail!(
            "linux.cgroupsPath: resolves to the root of {}",
            h.mountpoint.display()
        );
    }
    Ok(h.mountpoint.join(rel))
}

/// The container's cgroup directories, one per hierarchy, created on `create`.
pub struct Cgroup {
    pub dirs: Vec<PathBuf>,
    /// Parent directories this container's create made (removed again on delete
    /// when empty; runtime.md: delete removes what create made).
    pub parents: Vec<PathBuf>,
}

impl Cgroup {
    /// Creates the directories (and missing parents), and on cgroup v2 enables the
    /// controllers on the way down. On error, removes what it made.
    pub fn create(hier: &[Hierarchy], cgroups_path: Option<&Path>, id: &str) -> Result<Cgroup> {
        let dirs = hier
            .iter()
            .map(|h| container_dir(h, cgroups_path, id))
            .collect::<Result<Vec<_>>>()?;
        ensure_empty(&dirs)?;
        Cgroup::make(hier, cgroups_path, id)
    }

    /// [`Cgroup::create`] without the emptiness check: for a cgroup the caller has
    /// just had filled (the systemd driver's scope already holds the init).
    pub fn make(hier: &[Hierarchy], cgroups_path: Option<&Path>, id: &str) -> Result<Cgroup> {
        let mut cg = Cgroup {
            dirs: Vec::new(),
            parents: Vec::new(),
        };
        for h in hier {
            let dir = container_dir(h, cgroups_path, id)?;
            // A concurrent delete may remove an empty parent under our feet: retry.
            let mut made = make_dir(h, &dir);
            for _ in 0..3 {
                match &made {
                    Err(e)
                        if e.chain().any(|c| {
                            c.downcast_ref::<std::io::Error>()
                                .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)
                        }) =>
                    {
                        made = make_dir(h, &dir)
                    }
                    _ => break,
                }
            }
            match made {
                Ok(made) => {
                    cg.parents
                        .extend(made.iter().filter(|d| **d != dir).cloned());
                    if h.v2 {
                        v2::enable_controllers(&h.mountpoint, &own_dir(h), &dir, &made);
                    }
                }
                Err(e) => {
                    let _ = cg.destroy();
                    return Err(e);
                }
            }
            cg.dirs.push(dir);
        }
        Ok(cg)
    }

    /// Applies `linux.resources` on create, before the init runs: every set field,
    /// plus the device list (the spec's rules, then the devices every container gets).
    /// Nothing is written when any field cannot be applied.
    /// A container without cgroups (rootless, not delegated) accepts no limits.
    pub fn apply(&self, hier: &[Hierarchy], res: &oci_spec::runtime::LinuxResources) -> Result<()> {
        if self.dirs.is_empty() {
            if let Some(f) = resources::first_limit(res) {
                bail!("linux.resources.{f}: the container has no cgroup to enforce it (rootless without delegated cgroups)");
            }
            return Ok(());
        }
        resources::apply(&Placement::new(hier, &self.dirs), res, true)
    }

    /// Moves `pid` into every directory.
    pub fn add(&self, pid: i32) -> Result<()> {
        for d in &self.dirs {
            let p = d.join("cgroup.procs");
            crate::sys::write_file(&p, pid.to_string().as_bytes())
                .with_context(|| format!("add pid {pid} to {}", p.display()))?;
        }
        Ok(())
    }

    pub fn destroy(&self) -> Result<()> {
        destroy(&self.dirs)?;
        remove_parents(&self.parents);
        Ok(())
    }
}

/// Removes parent directories a create made, deepest first, when they are empty;
/// one still used by another container stays.
/// As runc: a cgroup that already holds processes is another container's (or one
/// whose state was lost); sharing it would mix limits and kills.
pub fn ensure_empty(dirs: &[PathBuf]) -> Result<()> {
    for dir in dirs {
        let busy = pids(std::slice::from_ref(dir)).map_or(0, |p| p.len());
        if busy > 0 {
            bail!(
                "linux.cgroupsPath: container's cgroup {} is not empty: {busy} process(es) found",
                dir.display()
            );
        }
    }
    Ok(())
}

pub fn remove_parents(parents: &[PathBuf]) {
    let mut p: Vec<&PathBuf> = parents.iter().collect();
    p.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for d in p {
        let _ = fs::remove_dir(d);
    }
}

/// This process's own cgroup directory in a hierarchy.
fn own_dir(h: &Hierarchy) -> PathBuf {
    h.mountpoint.join(h.own.strip_prefix("/").unwrap_or(&h.own))
}

/// Makes `dir` and its missing parents; returns the directories it created.
fn make_dir(h: &Hierarchy, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut p = dir.to_path_buf();
    while !p.exists() {
        missing.push(p.clone());
        if !p.pop() || p == h.mountpoint {
            break;
        }
    }
    let mut made = Vec::new();
    for d in missing.iter().rev() {
        match fs::create_dir(d) {
            Ok(()) => made.push(d.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("create cgroup {}", d.display())),
        }
    }
    if h.controllers.iter().any(|c| c == "cpuset") {
        fill_cpuset(h, dir)?;
    }
    Ok(made)
}

/// A new v1 cpuset starts with no cpus or mems, and then refuses every task
/// (ENOSPC). Fills `dir` and every empty cpuset above it from its parent, top down:
/// a parent that a parallel create has just made may still be empty when this one
/// reaches it. Cgroups that already have cpus and mems are never written.
fn fill_cpuset(h: &Hierarchy, dir: &Path) -> Result<()> {
    for f in ["cpuset.cpus", "cpuset.mems"] {
        let empty = |d: &Path| {
            fs::read_to_string(d.join(f))
                .map(|v| v.trim().is_empty())
                .unwrap_or(false)
        };
        let mut chain = Vec::new();
        let mut d = dir;
        while d != h.mountpoint && empty(d) {
            chain.push(d);
            match d.parent() {
                Some(p) => d = p,
                None => break,
            }
        }
        for d in chain.into_iter().rev() {
            let Some(parent) = d.parent() else { continue };
            let v = fs::read_to_string(parent.join(f))
                .with_context(|| format!("read {}", parent.join(f).display()))?;
            crate::sys::write_file(&d.join(f), v.trim().as_bytes())
                .with_context(|| format!("write {}", d.join(f).display()))?;
        }
    }
    Ok(())
}

/// Applies `res` to a running container's cgroups (`update`): only the fields set,
/// the device list only when `res` has one.
pub fn update(dirs: &[PathBuf], res: &oci_spec::runtime::LinuxResources) -> Result<()> {
    resources::apply(&Placement::new(&hierarchies()?, dirs), res, false)
}

/// Freezes every process of the container and waits until the kernel says so.
pub fn freeze(dirs: &[PathBuf]) -> Result<()> {
    freezer::freeze(dirs)
}

pub fn thaw(dirs: &[PathBuf]) -> Result<()> {
    freezer::thaw(dirs)
}

/// Pids in the container's cgroup and the cgroups below it (the container may make
/// its own), from the first hierarchy that lists them, sorted.
pub fn pids(dirs: &[PathBuf]) -> Result<Vec<i32>> {
    for d in dirs {
        if d.join("cgroup.procs").exists() {
            let mut c = CollectPids(Vec::new());
            tree::walk(d, &mut c)?;
            let mut out = c.0;
            out.sort_unstable();
            out.dedup();
            return Ok(out);
        }
    }
    Ok(Vec::new())
}

/// Reads cgroup.procs of each cgroup of a tree, by the directory's fd: the tree
/// below the container's cgroup is the container's, paths there may pass PATH_MAX.
struct CollectPids(Vec<i32>);

impl tree::Visit for CollectPids {
    fn pre(&mut self, dir: BorrowedFd, path: &Path) -> Result<()> {
        match tree::read_at(dir, c"cgroup.procs") {
            Ok(s) => self
                .0
                .extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok())),
            // Removed while we walked: its processes are gone or moved.
            Err(e) if tree::is_gone(&e) => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("read {}", path.join("cgroup.procs").display()))
            }
        }
        Ok(())
    }
}

/// Sends `sig` to every process in the cgroup. SIGKILL goes through cgroup.kill
/// where the kernel has it, else through `kill_all`'s freeze-kill-thaw; both also
/// reach the processes of a paused container.
pub fn signal_all(dirs: &[PathBuf], sig: i32) -> Result<()> {
    if sig == libc::SIGKILL {
        if write_cgroup_kill(dirs) {
            // cgroup.kill reaches a v2-frozen task; one the container froze in a v1
            // sub-cgroup of its own only dies once thawed.
            let _ = freezer::thaw_below(dirs);
        } else {
            kill_frozen(dirs, true);
        }
        return Ok(());
    }
    for pid in pids(dirs)? {
        unsafe { libc::kill(pid, sig) };
    }
    Ok(())
}

/// SIGKILLs every process, with the cgroup frozen when `freeze` so none can fork
/// meanwhile, then thaws it: a frozen task only dies once thawed (as runc does).
fn kill_frozen(dirs: &[PathBuf], freeze: bool) {
    let froze = freeze && freezer::find(dirs).is_some() && freezer::freeze(dirs).is_ok();
    // Sub-cgroups the container froze itself: thawed here, they stay frozen under
    // the container's own cgroup while it is frozen, and die when it thaws.
    let _ = freezer::thaw_below(dirs);
    if let Ok(p) = pids(dirs) {
        for pid in p {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    if froze || is_frozen(dirs) {
        let _ = freezer::thaw(dirs);
    }
}

/// cgroup.kill (v2, 5.14+) kills the whole subtree atomically, including processes
/// forking meanwhile. False where there is none (v1, older kernels).
fn write_cgroup_kill(dirs: &[PathBuf]) -> bool {
    dirs.iter().any(|d| {
        let k = d.join("cgroup.kill");
        k.exists() && crate::sys::write_file(&k, b"1").is_ok()
    })
}

/// Kills every process in the cgroup and waits (bounded) until it is empty.
pub fn kill_all(dirs: &[PathBuf]) -> Result<()> {
    write_cgroup_kill(dirs);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut first = true;
    loop {
        let p = pids(dirs)?;
        if p.is_empty() {
            return Ok(());
        }
        kill_frozen(dirs, first);
        first = false;
        if Instant::now() > deadline {
            bail!(
                "processes remain in cgroup {} after SIGKILL",
                dirs[0].display()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Removes the directories (and any cgroups the container made below them, deepest
/// first), waiting (bounded) for exiting processes to leave them.
pub fn destroy(dirs: &[PathBuf]) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    for d in dirs {
        remove_tree(d, deadline)?;
    }
    Ok(())
}

/// Removes the cgroups below `d` by their parents' fds, deepest first, then `d`.
fn remove_tree(d: &Path, deadline: Instant) -> Result<()> {
    tree::walk(d, &mut RemoveBelow { deadline })?;
    loop {
        match fs::remove_dir(d) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(e).with_context(|| format!("remove cgroup {}", d.display())),
        }
    }
}

/// Removes each cgroup below the top of a walk once what is below it is gone.
struct RemoveBelow {
    deadline: Instant,
}

impl tree::Visit for RemoveBelow {
    fn pre(&mut self, _dir: BorrowedFd, _path: &Path) -> Result<()> {
        Ok(())
    }

    fn post(&mut self, parent: BorrowedFd, name: &CStr, path: &Path) -> Result<()> {
        loop {
            // SAFETY: unlinkat on a directory fd we hold and a NUL-terminated name.
            let r =
                unsafe { libc::unlinkat(parent.as_raw_fd(), name.as_ptr(), libc::AT_REMOVEDIR) };
            if r == 0 {
                return Ok(());
            }
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::ENOENT) => return Ok(()),
                // Exiting processes still in it: they leave shortly.
                Some(libc::EBUSY) if Instant::now() < self.deadline => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                _ => return Err(e).with_context(|| format!("remove cgroup {}", path.display())),
            }
        }
    }
}

/// Thaws the container's cgroup and every sub-cgroup it froze itself, so that the
/// processes a SIGKILL was sent to can die (a v1-frozen task only dies once thawed).
pub fn thaw_to_kill(dirs: &[PathBuf]) {
    let _ = freezer::thaw_below(dirs);
    if is_frozen(dirs) {
        let _ = freezer::thaw(dirs);
    }
}

/// True when the container's freezer says it is frozen.
pub fn is_frozen(dirs: &[PathBuf]) -> bool {
    freezer::is_frozen(dirs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A v1 cpuset whose parent a parallel create has made but not filled yet: the
    /// empty parent is filled first, then the new cgroup; a cgroup that already has
    /// cpus and mems (and everything above it) is left alone.
    #[test]
    fn cpuset_fills_empty_parents_top_down() {
        let top = fake::FakeDir::new(&[("cpuset.cpus", "0-1\n"), ("cpuset.mems", "0\n")]);
        let parent = top.0.join("p");
        let child = parent.join("c");
        fs::create_dir_all(&child).unwrap();
        for d in [&parent, &child] {
            fs::write(d.join("cpuset.cpus"), "\n").unwrap();
            fs::write(d.join("cpuset.mems"), "\n").unwrap();
        }
        let h = Hierarchy {
            mountpoint: top.0.parent().unwrap().to_path_buf(),
            controllers: vec!["cpuset".into()],
            v2: false,
            own: PathBuf::from("/"),
        };
        fill_cpuset(&h, &child).unwrap();
        for d in [&parent, &child] {
            assert_eq!(fs::read_to_string(d.join("cpuset.cpus")).unwrap(), "0-1");
            assert_eq!(fs::read_to_string(d.join("cpuset.mems")).unwrap(), "0");
        }
        // Non-empty: untouched (no trailing newline is written back to it).
        assert_eq!(top.get("cpuset.cpus"), "0-1\n");
    }

    /// `kill --all` with SIGKILL uses cgroup.kill where the cgroup has it (v2), and
    /// the freezer path where it has not (v1: an empty cgroup.procs, nothing to kill).
    #[test]
    fn sigkill_to_all_uses_cgroup_kill() {
        let v2 = fake::FakeDir::new(&[("cgroup.kill", ""), ("cgroup.procs", "")]);
        signal_all(std::slice::from_ref(&v2.0), libc::SIGKILL).unwrap();
        assert_eq!(v2.get("cgroup.kill"), "1");
        let v1 = fake::FakeDir::new(&[("cgroup.procs", "")]);
        signal_all(std::slice::from_ref(&v1.0), libc::SIGKILL).unwrap();
        assert!(!v1.0.join("cgroup.kill").exists());
        // Other signals go to each process, never through cgroup.kill.
        let v2 = fake::FakeDir::new(&[("cgroup.kill", ""), ("cgroup.procs", "")]);
        signal_all(std::slice::from_ref(&v2.0), libc::SIGTERM).unwrap();
        assert_eq!(v2.get("cgroup.kill"), "");
    }

    const MI: &str = "\
30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
32 30 0:28 / /sys/fs/cgroup/systemd rw shared:11 - cgroup cgroup rw,xattr,name=systemd
33 30 0:29 / /sys/fs/cgroup/memory rw shared:12 - cgroup cgroup rw,memory
34 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw shared:13 - cgroup cgroup rw,cpu,cpuacct
";
    const CG: &str = "\
4:memory:/process_api/abc
3:cpu,cpuacct:/
1:name=systemd:/
0::/
";

    #[test]
    fn hybrid_parse_and_paths() {
        let h = parse_hierarchies(MI, CG);
        assert_eq!(h.len(), 4);
        assert_eq!(layout(&h), Layout::Hybrid);
        let mem = h.iter().find(|h| h.controllers == ["memory"]).unwrap();
        assert_eq!(mem.own, PathBuf::from("/process_api/abc"));
        let cpu = h
            .iter()
            .find(|h| h.controllers == ["cpu", "cpuacct"])
            .unwrap();
        assert_eq!(
            container_dir(mem, Some(Path::new("kraal-test/c1")), "c1").unwrap(),
            PathBuf::from("/sys/fs/cgroup/memory/process_api/abc/kraal-test/c1")
        );
        assert_eq!(
            container_dir(cpu, Some(Path::new("/abs/c1")), "c1").unwrap(),
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/abs/c1")
        );
        assert_eq!(
            container_dir(cpu, None, "c9").unwrap(),
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/c9")
        );
        assert!(container_dir(cpu, Some(Path::new("../x")), "c").is_err());
        assert!(container_dir(cpu, Some(Path::new("/")), "c").is_err());
    }

    #[test]
    fn unified_only() {
        let mi = "31 23 0:27 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let h = parse_hierarchies(mi, "0::/user.slice/x.scope\n");
        assert_eq!(layout(&h), Layout::Unified);
        assert_eq!(h[0].own, PathBuf::from("/user.slice/x.scope"));
    }

    #[test]
    fn mount_root_is_stripped_inside_a_cgroup_namespace_view() {
        let mi = "31 23 0:27 /kubepods /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let h = parse_hierarchies(mi, "0::/kubepods/pod1\n");
        assert_eq!(h[0].own, PathBuf::from("/pod1"));
    }
}
