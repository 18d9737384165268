//! The container's root filesystem, in the child's own mount namespace: propagation,
//! the rootfs bind, every `mounts` entry in order, /dev, pivot_root (or MS_MOVE and
//! chroot with --no-pivot), then sysctls, readonly and masked paths, readonly root.

use crate::cgroups::Hierarchy;
use crate::fs::safe_path;
use crate::mounts::{self, Prepared};
use crate::sys::{self, cstr};
use anyhow::{bail, Context, Result};
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// A device node to create in the container's /dev.
#[derive(Clone, Debug)]
pub struct Device {
    pub path: PathBuf,
    /// S_IFCHR, S_IFBLK or S_IFIFO.
    pub kind: u32,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The devices every container gets when kraal sets up /dev.
pub fn default_devices() -> Vec<Device> {
    [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ]
    .into_iter()
    .map(|(n, ma, mi)| Device {
        path: PathBuf::from(format!("dev/{n}")),
        kind: libc::S_IFCHR,
        major: ma,
        minor: mi,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect()
}

/// Where the container's cgroups are, for `cgroup` mounts.
#[derive(Clone, Debug, Default)]
pub struct CgroupView {
    pub hierarchies: Vec<(Hierarchy, PathBuf)>,
    pub new_ns: bool,
}

#[derive(Debug, Default)]
pub struct Plan {
    pub rootfs: PathBuf,
    pub readonly: bool,
    pub propagation: Option<libc::c_ulong>,
    pub mounts: Vec<Prepared>,
    pub setup_dev: bool,
    pub devices: Vec<Device>,
    pub masked: Vec<PathBuf>,
    pub readonly_paths: Vec<PathBuf>,
    pub sysctl: Vec<(String, String)>,
    pub no_pivot: bool,
    /// No mount namespace of its own: the mounts are made in the runtime's mount
    /// namespace, all below one bind of the rootfs (detached on delete), and the
    /// container is entered with chroot (runtime-spec: an absent namespace is inherited).
    pub host_ns: bool,
    /// process.cwd, created (as runc does) when the image lacks it.
    pub cwd: PathBuf,
    pub cgroups: CgroupView,
}

/// Everything up to the createRuntime/createContainer hooks point.
pub fn prepare(p: &Plan) -> Result<OwnedFd> {
    // The container's mount namespace starts as a copy of the host's. As runc does,
    // make every mount in it a slave (or what rootfsPropagation asks for), so nothing
    // mounted here propagates back to the host while a config mount that asks for
    // rslave or rshared still has a host master to follow. A slave still *receives*
    // the host's mounts: unless rootfsPropagation says otherwise, the root itself is
    // made private below.
    // An unbindable / could not be bound onto itself: that one is applied after pivot.
    let prop = match p.propagation {
        Some(f) if f & libc::MS_UNBINDABLE == 0 => f,
        _ => libc::MS_SLAVE | libc::MS_REC,
    };
    if !p.host_ns {
        sys::mount(None, c"/", None, prop, None)
            .context("set propagation of / in the container's mount namespace")?;
        unshare_parent(&p.rootfs, p.propagation)?;
    }
    let r = cstr(&p.rootfs)?;
    sys::mount(Some(&r), &r, None, libc::MS_BIND | libc::MS_REC, None)
        .with_context(|| format!("bind rootfs {} onto itself", p.rootfs.display()))?;
    if p.propagation.is_none() {
        // runtime-spec default (rootfsPropagation unset): host mounts made later
        // under the rootfs do not propagate in, and nothing mounted in the container
        // propagates out. The bind is a copy of a slave (or, without a mount
        // namespace, of a possibly shared) mount: cut it and every submount loose
        // before the config mounts are made on it.
        sys::mount(None, &r, None, libc::MS_PRIVATE | libc::MS_REC, None)
            .with_context(|| format!("make rootfs {} private", p.rootfs.display()))?;
    }
    let root = sys::openat(None, &r, libc::O_PATH | libc::O_DIRECTORY, 0)
        .with_context(|| format!("open rootfs {}", p.rootfs.display()))?;
    // Where each mount really lands is read through a procfs of kraal's own, which
    // no mount made below can cover.
    let proc = mounts::own_procfs().context("mounts")?;
    for m in &p.mounts {
        match m.fstype.as_deref() {
            Some("cgroup") | Some("cgroup2") if !m.opts.is_bind() => {
                mount_cgroup(proc.as_fd(), root.as_fd(), m, &p.cgroups)?
            }
            _ => mounts::mount_one(proc.as_fd(), root.as_fd(), m)?,
        }
    }
    drop(proc);
    if !p.cwd.as_os_str().is_empty() {
        safe_path::mkdir_all(root.as_fd(), &p.cwd, 0o755)
            .with_context(|| format!("process.cwd: create {}", p.cwd.display()))?;
    }
    if p.setup_dev {
        setup_dev(root.as_fd(), &p.devices)?;
    } else {
        for d in &p.devices {
            make_device(root.as_fd(), d)?;
        }
    }
    Ok(root)
}

/// pivot_root needs the rootfs' parent mount not to be shared, and a bind under a
/// shared parent would propagate to the host's peers. In our own mount namespace we
/// may change it without affecting the host: private, or a slave when the configured
/// propagation is one (as runc's rootfsParentMountPropagation), so that a "slave"
/// root still receives the host's mounts.
fn unshare_parent(rootfs: &Path, propagation: Option<libc::c_ulong>) -> Result<()> {
    let mi =
        std::fs::read_to_string("/proc/self/mountinfo").context("read /proc/self/mountinfo")?;
    let mut best: Option<(&str, bool)> = None;
    for line in mi.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() < 7 {
            continue;
        }
        let mp = f[4];
        if rootfs.starts_with(mp) && best.is_none_or(|(b, _)| mp.len() >= b.len()) {
            let shared = f[6..]
                .iter()
                .take_while(|x| **x != "-")
                .any(|x| x.starts_with("shared:"));
            best = Some((mp, shared));
        }
    }
    if let Some((mp, true)) = best {
        let (flag, what) = match propagation {
            Some(f) if f & libc::MS_SLAVE != 0 => (libc::MS_SLAVE, "a slave"),
            _ => (libc::MS_PRIVATE, "private"),
        };
        let c = CString::new(mp).context("mount point with NUL")?;
        sys::mount(None, &c, None, flag, None).with_context(|| format!("make {mp} {what}"))?;
    }
    Ok(())
}

fn mount_cgroup(proc: BorrowedFd, root: BorrowedFd, m: &Prepared, cg: &CgroupView) -> Result<()> {
    let label = format!("mounts[{}] (/{})", m.index, m.dest.display());
    let flags = m.opts.flags & !libc::MS_RDONLY;
    let ro = m.opts.flags & libc::MS_RDONLY;
    let unified = cg.hierarchies.len() == 1 && cg.hierarchies[0].0.v2;
    let dest = mounts::mount_point(proc, root, m)?;
    if cg.hierarchies.is_empty() {
        // No cgroup of its own (rootless, not delegated): show the host's, read-only
        // all the way down. A read-only top over writable v1 hierarchies would let
        // the container change the user's host cgroups (CVE-2023-25809).
        let tree = mounts::clone_tree(None, c"/sys/fs/cgroup", true)
            .with_context(|| format!("{label}: bind the host's /sys/fs/cgroup"))?;
        mounts::set_attr(tree.as_fd(), mounts::LOCKED_DOWN, 0, true)
            .with_context(|| format!("{label}: make the host's cgroups read-only"))?;
        mounts::attach(tree.as_fd(), dest.as_fd())
            .with_context(|| format!("{label}: attach the host's /sys/fs/cgroup"))?;
        return Ok(());
    }
    if unified {
        let (_, dir) = &cg.hierarchies[0];
        return mount_hierarchy(dest.as_fd(), None, dir, cg.new_ns, flags | ro)
            .with_context(|| format!("{label}: mount cgroup2"));
    }
    // v1 or hybrid: a tmpfs with one mount per hierarchy, as on the host.
    let top = mounts::new_fs("tmpfs", Some("tmpfs"), &["mode=755".to_string()], flags)
        .with_context(|| format!("{label}: mount tmpfs"))?;
    mounts::attach(top.as_fd(), dest.as_fd())
        .with_context(|| format!("{label}: attach the tmpfs"))?;
    // Hybrid: the cgroup2 hierarchy is left out, as runc does. systemd in the
    // container decides its mode from what it finds: with cgroup2 at
    // /sys/fs/cgroup/unified it would track its units there (read-only for Podman's
    // v1 systemd mode, which makes only name=systemd writable) instead of on the
    // name=systemd hierarchy.
    for (h, dir) in cg.hierarchies.iter().filter(|(h, _)| !h.v2) {
        let name = h
            .mountpoint
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("unified"));
        // The tmpfs is new and ours: nothing in it can be a symlink yet.
        let cname = cstr(&name)?;
        // SAFETY: mkdirat on a NUL-terminated name in a directory fd we own.
        if unsafe { libc::mkdirat(top.as_raw_fd(), cname.as_ptr(), 0o755) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(e).with_context(|| format!("{label}: mkdir {}", name.display()));
            }
        }
        let sub = sys::openat2(
            top.as_fd(),
            &cname,
            libc::O_PATH | libc::O_DIRECTORY,
            0,
            sys::RESOLVE_BENEATH | sys::RESOLVE_NO_SYMLINKS | sys::RESOLVE_NO_XDEV,
        )
        .with_context(|| format!("{label}: open {}", name.display()))?;
        let v1 = h.controllers.join(",");
        mount_hierarchy(sub.as_fd(), Some(&v1), dir, cg.new_ns, flags | ro)
            .with_context(|| format!("{label}: mount {}", name.display()))?;
        // Co-mounted controllers (cpu,cpuacct) are also reachable by each name.
        if h.controllers.len() > 1 {
            for c in &h.controllers {
                if Path::new(c) != name {
                    let target =
                        CString::new(name.as_os_str().as_encoded_bytes()).context("name")?;
                    let lname = CString::new(c.as_str()).context("name")?;
                    // SAFETY: symlinkat with two NUL-terminated strings in our tmpfs.
                    unsafe { libc::symlinkat(target.as_ptr(), top.as_raw_fd(), lname.as_ptr()) };
                }
            }
        }
    }
    if ro != 0 {
        // Read-only all the way down: no hierarchy below stays writable.
        let (set, clr) = mounts::attrs_of(libc::MS_RDONLY | flags);
        mounts::set_attr(top.as_fd(), set, clr, true)
            .with_context(|| format!("{label}: make the cgroup mounts read-only"))?;
    }
    Ok(())
}

/// Mounts one hierarchy on `target`: a fresh cgroupfs when the container has its own
/// cgroup namespace (its root is then the container's cgroup), else a bind of its
/// directory. `flags` apply to every mount of it.
fn mount_hierarchy(
    target: BorrowedFd,
    v1_controllers: Option<&str>,
    dir: &Path,
    new_ns: bool,
    flags: libc::c_ulong,
) -> Result<()> {
    if new_ns {
        let (ty, data): (&str, Vec<String>) = match v1_controllers {
            None => ("cgroup2", Vec::new()),
            Some(c) => ("cgroup", c.split(',').map(str::to_string).collect()),
        };
        if let Ok(fs) = mounts::new_fs(ty, Some(ty), &data, flags) {
            mounts::attach(fs.as_fd(), target).with_context(|| format!("attach {ty}"))?;
            return Ok(());
        }
    }
    let d = cstr(dir)?;
    let tree =
        mounts::clone_tree(None, &d, true).with_context(|| format!("bind {}", dir.display()))?;
    let (set, clr) = mounts::attrs_of(flags);
    if set != 0 || clr != 0 {
        mounts::set_attr(tree.as_fd(), set, clr, true)
            .with_context(|| format!("set the flags of {}", dir.display()))?;
    }
    mounts::attach(tree.as_fd(), target).with_context(|| format!("bind {}", dir.display()))?;
    Ok(())
}

fn setup_dev(root: BorrowedFd, extra: &[Device]) -> Result<()> {
    // A config entry for a default device's path replaces the default (as runc):
    // making both would bind-mount twice in a user namespace, where the second
    // mknod then finds the first one's mount point.
    let defaults = default_devices();
    let defaults = defaults.iter().filter(|d| {
        !extra
            .iter()
            .any(|e| safe_path::relative(&e.path) == safe_path::relative(&d.path))
    });
    for d in defaults.chain(extra) {
        make_device(root, d)?;
    }
    let dev = safe_path::mkdir_all(root, Path::new("dev"), 0o755).context("mkdir /dev")?;
    for (target, name) in [
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ] {
        symlink_at(dev.as_fd(), target, name)?;
    }
    if Path::new("/proc/kcore").exists() {
        symlink_at(dev.as_fd(), "/proc/kcore", "core")?;
    }
    // /dev/ptmx must be the container's own devpts instance.
    let n = c"ptmx";
    unsafe { libc::unlinkat(dev.as_raw_fd(), n.as_ptr(), 0) };
    symlink_at(dev.as_fd(), "pts/ptmx", "ptmx")?;
    Ok(())
}

fn symlink_at(dir: BorrowedFd, target: &str, name: &str) -> Result<()> {
    let t = CString::new(target).context("symlink target")?;
    let n = CString::new(name).context("symlink name")?;
    if unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), n.as_ptr()) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EEXIST) {
            return Err(e).with_context(|| format!("symlink /dev/{name} -> {target}"));
        }
    }
    Ok(())
}

/// Makes one device node (or FIFO) inside the rootfs.
///
/// The parent directory may be shared with a process that races us (a volume at
/// /dev, or at a linux.devices path's directory): after mknodat the name is never
/// used again. The node is born with its final mode (umask cleared around mknodat;
/// this child is single-threaded), then opened O_PATH|O_NOFOLLOW and checked to be
/// the node just made, and chown (and a chmod, only when chown cleared set-id bits)
/// go through that fd. A symlink swapped in cannot redirect either to a host file.
fn make_device(root: BorrowedFd, d: &Device) -> Result<()> {
    /// chmod through the fd: fchmodat on /proc/thread-self/fd/N of a procfs checked
    /// to be one (this runs before pivot_root, so it is the host's /proc), resolved
    /// without crossing a mount. Works on kernels without fchmodat2 (6.1).
    fn chmod_fd(fd: BorrowedFd, mode: u32) -> std::io::Result<()> {
        let proc = sys::openat(None, c"/proc", libc::O_PATH | libc::O_DIRECTORY, 0)?;
        let mut sfs: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: fstatfs(2) fills the struct it is given, for an fd we own.
        if unsafe { libc::fstatfs(proc.as_raw_fd(), &mut sfs) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if sfs.f_type != libc::PROC_SUPER_MAGIC {
            return Err(std::io::Error::other("/proc is not a procfs"));
        }
        let fds = sys::openat2(
            proc.as_fd(),
            c"thread-self/fd",
            libc::O_PATH | libc::O_DIRECTORY,
            0,
            sys::RESOLVE_NO_XDEV | sys::RESOLVE_BENEATH,
        )?;
        let n = CString::new(fd.as_raw_fd().to_string()).map_err(std::io::Error::other)?;
        // SAFETY: fchmodat(2) with a NUL-terminated name; the magic link names `fd`.
        if unsafe { libc::fchmodat(fds.as_raw_fd(), n.as_ptr(), mode, 0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
    fn fstat(fd: BorrowedFd) -> std::io::Result<libc::stat> {
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fstat(2) fills the struct it is given, for an fd we hold.
        if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(st)
    }

    let rel = safe_path::relative(&d.path);
    let label = format!("device /{}", rel.display());
    let parent = rel.parent().unwrap_or(Path::new(""));
    let name = rel.file_name().context("device path has no name")?;
    let dir =
        safe_path::mkdir_all(root, parent, 0o755).with_context(|| format!("{label}: mkdir"))?;
    let cname = CString::new(name.as_encoded_bytes()).context("device name")?;
    // Replace whatever the image put there (a symlink must not redirect the node).
    // SAFETY: unlinkat(2) of a NUL-terminated name in a directory fd we hold.
    unsafe { libc::unlinkat(dir.as_raw_fd(), cname.as_ptr(), 0) };
    let dev = libc::makedev(d.major as u32, d.minor as u32);
    let perm = d.mode & 0o7777;
    // SAFETY: umask(2) and mknodat(2) take plain values and a NUL-terminated name;
    // the umask is restored at once (nothing else runs in this process meanwhile).
    let r = unsafe {
        let old = libc::umask(0);
        let r = libc::mknodat(dir.as_raw_fd(), cname.as_ptr(), d.kind | perm, dev);
        let e = std::io::Error::last_os_error();
        libc::umask(old);
        if r != 0 {
            Err(e)
        } else {
            Ok(())
        }
    };
    if let Err(e) = r {
        if e.raw_os_error() != Some(libc::EPERM) || d.kind == libc::S_IFIFO {
            return Err(e).with_context(|| format!("{label}: mknod"));
        }
        // In a user namespace mknod is refused: bind the host's node instead, onto
        // the file created here (O_EXCL|O_NOFOLLOW), by its fd: the name is not
        // looked up again, so a racing symlink cannot move the mount elsewhere.
        let host = PathBuf::from("/").join(&rel);
        let t = sys::openat(
            Some(dir.as_fd()),
            &cname,
            libc::O_RDONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_NOCTTY,
            0o644,
        )
        .with_context(|| format!("{label}: create bind target"))?;
        let h = cstr(&host)?;
        let tree = mounts::clone_tree(None, &h, false)
            .with_context(|| format!("{label}: clone host node {}", host.display()))?;
        mounts::attach(tree.as_fd(), t.as_fd())
            .with_context(|| format!("{label}: bind from host {}", host.display()))?;
        return Ok(());
    }
    // From here on the node is used by fd only. It must be what mknodat made: the
    // same type and device number, and no other name (a hard link to some other
    // node would have more than one).
    let fd = sys::openat(
        Some(dir.as_fd()),
        &cname,
        libc::O_PATH | libc::O_NOFOLLOW,
        0,
    )
    .with_context(|| format!("{label}: open the new node"))?;
    let st = fstat(fd.as_fd()).with_context(|| format!("{label}: stat the new node"))?;
    if st.st_mode & libc::S_IFMT != d.kind
        || (d.kind != libc::S_IFIFO && st.st_rdev != dev)
        || st.st_nlink != 1
    {
        bail!("{label}: the new node was replaced while it was being made (a racing process in a shared directory?)");
    }
    // SAFETY: fchownat(2) with AT_EMPTY_PATH acts on the fd itself.
    if unsafe {
        libc::fchownat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            d.uid,
            d.gid,
            libc::AT_EMPTY_PATH,
        )
    } != 0
    {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("{label}: chown"));
    }
    // chown clears set-id bits: put back the config's mode, through the fd.
    let st = fstat(fd.as_fd()).with_context(|| format!("{label}: stat the new node"))?;
    if st.st_mode & 0o7777 != perm {
        chmod_fd(fd.as_fd(), perm).with_context(|| format!("{label}: chmod"))?;
    }
    Ok(())
}

/// Opens the container's /dev/null and checks it really is the null device, for
/// masking (CVE-2025-31133: a /dev/null swapped for a symlink or another file would
/// bind something else over the masked path).
fn open_dev_null(root: BorrowedFd) -> Result<OwnedFd> {
    let fd = safe_path::open_nofollow(root, Path::new("dev/null")).context("open /dev/null")?;
    // SAFETY: a plain C struct, for which all-zero bytes are a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error()).context("stat /dev/null");
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || st.st_rdev != libc::makedev(1, 3) {
        bail!("/dev/null is not the null character device (1:3)");
    }
    Ok(fd)
}

/// Switches the process root to the rootfs and detaches the old root.
pub fn pivot(p: &Plan, root: &OwnedFd) -> Result<()> {
    let rootfs = p.rootfs.display();
    if p.host_ns {
        // Only chroot: moving or pivoting would rearrange the host's own mounts.
        if unsafe { libc::fchdir(root.as_raw_fd()) } != 0 {
            return Err(std::io::Error::last_os_error()).with_context(|| format!("chdir {rootfs}"));
        }
        if unsafe { libc::chroot(c".".as_ptr()) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("chroot {rootfs}"));
        }
    } else if p.no_pivot {
        if unsafe { libc::fchdir(root.as_raw_fd()) } != 0 {
            return Err(std::io::Error::last_os_error()).with_context(|| format!("chdir {rootfs}"));
        }
        hide_host_kernel_fs(&p.rootfs)?;
        let r = cstr(&p.rootfs)?;
        sys::mount(Some(&r), c"/", None, libc::MS_MOVE, None)
            .with_context(|| format!("move {rootfs} to /"))?;
        if unsafe { libc::chroot(c".".as_ptr()) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("chroot {rootfs}"));
        }
    } else {
        let old =
            sys::openat(None, c"/", libc::O_DIRECTORY | libc::O_RDONLY, 0).context("open /")?;
        if unsafe { libc::fchdir(root.as_raw_fd()) } != 0 {
            return Err(std::io::Error::last_os_error()).with_context(|| format!("chdir {rootfs}"));
        }
        // Stacking the old root on top of the new one avoids needing a put_old dir.
        sys::pivot_root(c".", c".").with_context(|| format!("pivot_root {rootfs}"))?;
        if unsafe { libc::fchdir(old.as_raw_fd()) } != 0 {
            return Err(std::io::Error::last_os_error()).context("chdir old root");
        }
        sys::mount(None, c".", None, libc::MS_SLAVE | libc::MS_REC, None)
            .context("make old root rslave")?;
        sys::umount2(c".", libc::MNT_DETACH).context("detach old root")?;
    }
    if unsafe { libc::chdir(c"/".as_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error()).context("chdir /");
    }
    Ok(())
}

/// --no-pivot: chroot leaves the rest of the mount namespace in place, and with it a
/// fully visible procfs and sysfs of the host. The kernel lets a user namespace
/// mount a new procfs (or sysfs) only when one is already fully visible in its mount
/// namespace (mount_too_revealing), so a nested user namespace in the container
/// could mount an unmasked /proc. As runc does, every full procfs and sysfs mount
/// outside the rootfs is detached from this (the container's own) mount namespace,
/// or covered with a tmpfs where the kernel refuses to detach it.
fn hide_host_kernel_fs(rootfs: &Path) -> Result<()> {
    let mi =
        std::fs::read_to_string("/proc/self/mountinfo").context("read /proc/self/mountinfo")?;
    let mut hide = Vec::new();
    for line in mi.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let Some(dash) = f.iter().position(|x| *x == "-") else {
            continue;
        };
        if f.len() < 7 || dash + 1 >= f.len() {
            continue;
        }
        let mp = PathBuf::from(unescape_mountinfo(f[4]));
        if f[3] == "/" && matches!(f[dash + 1], "proc" | "sysfs") && !mp.starts_with(rootfs) {
            hide.push(mp);
        }
    }
    for mp in hide {
        let c = cstr(&mp)?;
        // Keep the detach from reaching the host's mount namespace.
        match sys::mount(None, &c, None, libc::MS_SLAVE | libc::MS_REC, None) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            r => r.with_context(|| format!("--no-pivot: make {} a slave", mp.display()))?,
        }
        match sys::umount2(&c, libc::MNT_DETACH) {
            Ok(()) => {}
            // Under an already detached mount: gone with it.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::EPERM)) => {
                sys::mount(Some(c"tmpfs"), &c, Some(c"tmpfs"), libc::MS_RDONLY, None)
                    .with_context(|| {
                        format!("--no-pivot: cover the host's {} with a tmpfs", mp.display())
                    })?;
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("--no-pivot: detach the host's {}", mp.display()))
            }
        }
    }
    Ok(())
}

/// Decodes mountinfo's octal escapes (\040 for a space, ...).
fn unescape_mountinfo(s: &str) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStringExt;
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Some(v) = std::str::from_utf8(&b[i + 1..i + 4])
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    std::ffi::OsString::from_vec(out)
}

/// After pivot: sysctls, readonly and masked paths, then the readonly root.
pub fn finish(p: &Plan) -> Result<()> {
    let root = sys::openat(None, c"/", libc::O_PATH | libc::O_DIRECTORY, 0).context("open /")?;
    if !p.sysctl.is_empty() {
        let proc_fd = open_procfs(root.as_fd())?;
        for (k, v) in &p.sysctl {
            let rel = format!("sys/{}", k.replace('.', "/"));
            let c = CString::new(rel).context("sysctl key")?;
            let f = sys::openat2(
                proc_fd.as_fd(),
                &c,
                libc::O_WRONLY | libc::O_TRUNC,
                0,
                sys::RESOLVE_BENEATH | sys::RESOLVE_NO_SYMLINKS | sys::RESOLVE_NO_XDEV,
            )
            .with_context(|| format!("linux.sysctl[{k:?}]: open /proc/sys"))?;
            let r = unsafe { libc::write(f.as_raw_fd(), v.as_ptr().cast(), v.len()) };
            if r < 0 {
                return Err(std::io::Error::last_os_error())
                    .with_context(|| format!("linux.sysctl[{k:?}]: write {v:?}"));
            }
        }
    }
    // Readonly and masked paths are mounted through fds only: after pivot_root any
    // path through /proc would be resolved by the container's procfs.
    for path in &p.readonly_paths {
        let fd = match safe_path::open(root.as_fd(), path, libc::O_PATH | libc::O_NOFOLLOW) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("linux.readonlyPaths: open {}", path.display()))
            }
        };
        // A read-only copy of the whole tree: no submount below stays writable.
        let tree = mounts::clone_tree(Some(fd.as_fd()), c"", true)
            .with_context(|| format!("linux.readonlyPaths: bind {}", path.display()))?;
        mounts::set_attr(tree.as_fd(), mounts::LOCKED_DOWN, 0, true)
            .with_context(|| format!("linux.readonlyPaths: make {} read-only", path.display()))?;
        mounts::attach(tree.as_fd(), fd.as_fd())
            .with_context(|| format!("linux.readonlyPaths: mount {}", path.display()))?;
    }
    let dev_null = if p.masked.is_empty() {
        None
    } else {
        Some(open_dev_null(root.as_fd()).context("linux.maskedPaths")?)
    };
    for path in &p.masked {
        let fd = match safe_path::open(root.as_fd(), path, libc::O_PATH | libc::O_NOFOLLOW) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("linux.maskedPaths: open {}", path.display()))
            }
        };
        // SAFETY: a plain C struct, for which all-zero bytes are a valid value.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fstat writes into the stat we own.
        if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("linux.maskedPaths: stat {}", path.display()));
        }
        let cover = if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            // An empty read-only tmpfs hides the directory and whatever is mounted in it.
            mounts::new_fs(
                "tmpfs",
                Some("tmpfs"),
                &[],
                libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            )
        } else {
            match &dev_null {
                Some(n) => {
                    mounts::clone_tree(Some(n.as_fd()), c"", false).context("bind /dev/null")
                }
                None => continue,
            }
        }
        .with_context(|| format!("linux.maskedPaths: mask {}", path.display()))?;
        mounts::attach(cover.as_fd(), fd.as_fd())
            .with_context(|| format!("linux.maskedPaths: mask {}", path.display()))?;
    }
    if let Some(prop) = p.propagation.filter(|_| !p.host_ns) {
        sys::mount(None, c"/", None, prop, None).context("linux.rootfsPropagation: apply to /")?;
    }
    if p.readonly {
        mounts::remount_bind_path(root.as_fd(), c"/", libc::MS_RDONLY, 0)
            .context("root.readonly: remount / read-only")?;
    }
    Ok(())
}

/// Writes `data` to /proc/`rel` of the container through a verified procfs fd, with
/// no symlink and no mount crossing on the way.
pub fn proc_write(rel: &str, data: &[u8]) -> Result<()> {
    let root = sys::openat(None, c"/", libc::O_PATH | libc::O_DIRECTORY, 0).context("open /")?;
    let proc_fd = open_procfs(root.as_fd())?;
    let c = CString::new(rel).context("proc path")?;
    let f = sys::openat2(
        proc_fd.as_fd(),
        &c,
        libc::O_WRONLY,
        0,
        sys::RESOLVE_BENEATH | sys::RESOLVE_NO_SYMLINKS | sys::RESOLVE_NO_XDEV,
    )
    .with_context(|| format!("open /proc/{rel}"))?;
    let n = unsafe { libc::write(f.as_raw_fd(), data.as_ptr().cast(), data.len()) };
    if n < 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("write /proc/{rel}"));
    }
    Ok(())
}

/// The container's /proc, checked to be a real procfs (CVE-2025-52881: writes to
/// /proc must not be redirected by an over-mount).
pub fn open_procfs(root: BorrowedFd) -> Result<OwnedFd> {
    let fd = sys::openat2(
        root,
        c"proc",
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        sys::RESOLVE_NO_SYMLINKS | sys::RESOLVE_BENEATH,
    )
    .context("open /proc")?;
    // SAFETY: a plain C struct, for which all-zero bytes are a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error()).context("statfs /proc");
    }
    if st.f_type != libc::PROC_SUPER_MAGIC {
        bail!("/proc is not a procfs mount");
    }
    Ok(fd)
}
