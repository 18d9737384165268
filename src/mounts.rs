//! The `mounts` entries of config.json: parsing options into mount(2) flags,
//! propagation changes, recursive attributes (mount_setattr) and filesystem data,
//! and performing one mount onto an fd resolved inside the rootfs.

use crate::fs::safe_path;
use crate::sys;
use anyhow::{bail, Context, Result};
use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR__ATIME: u64 = 0x70;
pub const MOUNT_ATTR_RELATIME: u64 = 0x0;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;
const MS_NOSYMFOLLOW: libc::c_ulong = 256;

/// Options split by what acts on them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub flags: libc::c_ulong,
    /// Flags the options explicitly turned off (so locked flags are not re-added).
    pub cleared: libc::c_ulong,
    pub propagation: Vec<libc::c_ulong>,
    pub attr_set: u64,
    pub attr_clr: u64,
    pub data: Vec<String>,
    /// runc's `tmpcopyup`: a tmpfs that starts with the directory's contents.
    pub tmpcopyup: bool,
}

impl Options {
    pub fn is_bind(&self) -> bool {
        self.flags & libc::MS_BIND != 0
    }
}

/// Parses mount options; anything not a flag is filesystem data.
pub fn parse_options(opts: &[String]) -> Options {
    let mut o = Options::default();
    for opt in opts {
        let (set, clr): (libc::c_ulong, libc::c_ulong) = match opt.as_str() {
            // Handled by the id-mapping code, never filesystem data.
            "defaults" | "idmap" | "ridmap" => (0, 0),
            "tmpcopyup" => {
                o.tmpcopyup = true;
                continue;
            }
            "ro" => (libc::MS_RDONLY, 0),
            "rw" => (0, libc::MS_RDONLY),
            "nosuid" => (libc::MS_NOSUID, 0),
            "suid" => (0, libc::MS_NOSUID),
            "nodev" => (libc::MS_NODEV, 0),
            "dev" => (0, libc::MS_NODEV),
            "noexec" => (libc::MS_NOEXEC, 0),
            "exec" => (0, libc::MS_NOEXEC),
            "sync" => (libc::MS_SYNCHRONOUS, 0),
            "async" => (0, libc::MS_SYNCHRONOUS),
            "dirsync" => (libc::MS_DIRSYNC, 0),
            "remount" => (libc::MS_REMOUNT, 0),
            "mand" => (libc::MS_MANDLOCK, 0),
            "nomand" => (0, libc::MS_MANDLOCK),
            "atime" => (0, libc::MS_NOATIME),
            "noatime" => (libc::MS_NOATIME, 0),
            "diratime" => (0, libc::MS_NODIRATIME),
            "nodiratime" => (libc::MS_NODIRATIME, 0),
            "bind" => (libc::MS_BIND, 0),
            "rbind" => (libc::MS_BIND | libc::MS_REC, 0),
            "relatime" => (libc::MS_RELATIME, 0),
            "norelatime" => (0, libc::MS_RELATIME),
            "strictatime" => (libc::MS_STRICTATIME, 0),
            "nostrictatime" => (0, libc::MS_STRICTATIME),
            "lazytime" => (libc::MS_LAZYTIME, 0),
            "nolazytime" => (0, libc::MS_LAZYTIME),
            "silent" => (libc::MS_SILENT, 0),
            "loud" => (0, libc::MS_SILENT),
            "iversion" => (libc::MS_I_VERSION, 0),
            "noiversion" => (0, libc::MS_I_VERSION),
            "nosymfollow" => (MS_NOSYMFOLLOW, 0),
            "symfollow" => (0, MS_NOSYMFOLLOW),
            other => {
                if let Some(p) = propagation(other) {
                    o.propagation.push(p);
                } else if let Some((set, clr)) = recursive_attr(other) {
                    o.attr_set = (o.attr_set & !clr) | set;
                    o.attr_clr |= clr;
                    o.attr_clr &= !set | clr;
                } else {
                    o.data.push(other.to_string());
                }
                continue;
            }
        };
        o.flags = (o.flags & !clr) | set;
        o.cleared = (o.cleared & !set) | clr;
    }
    o
}

pub fn propagation(s: &str) -> Option<libc::c_ulong> {
    Some(match s {
        "private" => libc::MS_PRIVATE,
        "rprivate" => libc::MS_PRIVATE | libc::MS_REC,
        "shared" => libc::MS_SHARED,
        "rshared" => libc::MS_SHARED | libc::MS_REC,
        "slave" => libc::MS_SLAVE,
        "rslave" => libc::MS_SLAVE | libc::MS_REC,
        "unbindable" => libc::MS_UNBINDABLE,
        "runbindable" => libc::MS_UNBINDABLE | libc::MS_REC,
        _ => return None,
    })
}

/// The `r*` options: (attributes to set, attributes to clear) for mount_setattr.
fn recursive_attr(s: &str) -> Option<(u64, u64)> {
    Some(match s {
        "rro" => (MOUNT_ATTR_RDONLY, 0),
        "rrw" => (0, MOUNT_ATTR_RDONLY),
        "rnosuid" => (MOUNT_ATTR_NOSUID, 0),
        "rsuid" => (0, MOUNT_ATTR_NOSUID),
        "rnodev" => (MOUNT_ATTR_NODEV, 0),
        "rdev" => (0, MOUNT_ATTR_NODEV),
        "rnoexec" => (MOUNT_ATTR_NOEXEC, 0),
        "rexec" => (0, MOUNT_ATTR_NOEXEC),
        "rnodiratime" => (MOUNT_ATTR_NODIRATIME, 0),
        "rdiratime" => (0, MOUNT_ATTR_NODIRATIME),
        "rrelatime" => (MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME),
        "rnorelatime" => (0, MOUNT_ATTR__ATIME),
        "rnoatime" => (MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME),
        "ratime" => (0, MOUNT_ATTR__ATIME),
        "rstrictatime" => (MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME),
        "rnostrictatime" => (0, MOUNT_ATTR__ATIME),
        "rnosymfollow" => (MOUNT_ATTR_NOSYMFOLLOW, 0),
        "rsymfollow" => (0, MOUNT_ATTR_NOSYMFOLLOW),
        _ => return None,
    })
}

/// One config.json mount, resolved in the runtime before the fork.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// Index in config.json `mounts`, for error messages.
    pub index: usize,
    /// Destination inside the container, relative to its root.
    pub dest: PathBuf,
    /// Source as given (bind sources made absolute against the bundle).
    pub source: Option<PathBuf>,
    pub fstype: Option<String>,
    pub opts: Options,
    /// For bind mounts: whether the source is a directory (else a file is made).
    pub source_is_dir: bool,
    /// id mappings for an id-mapped bind mount: (uid lines, gid lines, recursive).
    pub idmap: Option<(String, String, bool)>,
    /// The id-mapped tree, made by the runtime before the fork (open_tree +
    /// mount_setattr), attached by the init with move_mount.
    pub detached: Option<std::os::fd::RawFd>,
}

impl Prepared {
    pub fn from_spec(
        index: usize,
        m: &oci_spec::runtime::Mount,
        bundle: &Path,
        container_maps: Option<(&[LinuxIdMapping], &[LinuxIdMapping])>,
    ) -> Result<Prepared> {
        let opts = parse_options(m.options().as_deref().unwrap_or(&[]));
        let fstype = m.typ().clone().filter(|t| !t.is_empty());
        let is_bind = opts.is_bind() || fstype.as_deref() == Some("bind");
        let mut opts = opts;
        if is_bind {
            opts.flags |= libc::MS_BIND;
        }
        let source = m.source().as_ref().map(|s| {
            if is_bind && s.is_relative() {
                bundle.join(s)
            } else {
                s.clone()
            }
        });
        let mut source_is_dir = true;
        if is_bind {
            let Some(src) = &source else {
                bail!(
                    "mounts[{index}]: bind mount of {} has no source",
                    m.destination().display()
                );
            };
            let md = std::fs::metadata(src)
                .with_context(|| format!("mounts[{index}]: source {}", src.display()))?;
            source_is_dir = md.is_dir();
        }
        let idmap = idmap_of(m, container_maps);
        Ok(Prepared {
            index,
            dest: safe_path::relative(m.destination()),
            source,
            fstype,
            opts,
            source_is_dir,
            idmap,
            detached: None,
        })
    }

    fn label(&self) -> String {
        format!("mounts[{}] (/{})", self.index, self.dest.display())
    }
}

use oci_spec::runtime::LinuxIdMapping;

/// id mappings as /proc/<pid>/uid_map lines ("inside outside count").
pub fn map_lines(m: &[LinuxIdMapping]) -> String {
    m.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// The mappings of an id-mapped mount: its own, or (runtime-spec 1.2, `idmap` with no
/// mappings) the container's user namespace mappings.
fn idmap_of(
    m: &oci_spec::runtime::Mount,
    container: Option<(&[LinuxIdMapping], &[LinuxIdMapping])>,
) -> Option<(String, String, bool)> {
    let opts = m.options().as_deref().unwrap_or(&[]);
    let recursive = opts.iter().any(|o| o == "ridmap");
    let wants = recursive || opts.iter().any(|o| o == "idmap");
    let own = (
        m.uid_mappings().as_deref().filter(|v| !v.is_empty()),
        m.gid_mappings().as_deref().filter(|v| !v.is_empty()),
    );
    match own {
        (Some(u), Some(g)) => Some((map_lines(u), map_lines(g), recursive)),
        _ if wants => container.map(|(u, g)| (map_lines(u), map_lines(g), recursive)),
        _ => None,
    }
}

/// A user namespace holding `uid`/`gid` maps, as an fd for MOUNT_ATTR_IDMAP: a
/// short-lived child unshares it, we write its maps and keep the namespace.
pub fn make_userns(uid: &str, gid: &str) -> Result<std::os::fd::OwnedFd> {
    let mut p = [0; 2];
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("pipe");
    }
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error())
            .context("fork for an id-mapping user namespace");
    }
    if pid == 0 {
        unsafe {
            libc::close(p[0]);
            let ok: u8 = if libc::unshare(libc::CLONE_NEWUSER) == 0 {
                1
            } else {
                0
            };
            libc::write(p[1], (&ok as *const u8).cast(), 1);
            libc::close(p[1]);
            // Stay until the runtime has what it needs; it kills us.
            loop {
                libc::pause();
            }
        }
    }
    unsafe { libc::close(p[1]) };
    let mut ok = 0u8;
    let n = unsafe { libc::read(p[0], (&mut ok as *mut u8).cast(), 1) };
    unsafe { libc::close(p[0]) };
    let r = (|| -> Result<std::os::fd::OwnedFd> {
        if n != 1 || ok != 1 {
            bail!("unshare a user namespace for an id-mapped mount");
        }
        let base = std::path::PathBuf::from(format!("/proc/{pid}"));
        sys::write_file(&base.join("uid_map"), uid.as_bytes()).context("write uid_map")?;
        sys::write_file(&base.join("gid_map"), gid.as_bytes()).context("write gid_map")?;
        let f = std::fs::File::open(base.join("ns/user")).context("open the user namespace")?;
        Ok(f.into())
    })();
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
    r
}

/// Clones the bind source as a detached tree and id-maps it (runtime side).
pub fn make_idmapped_tree(m: &Prepared) -> Result<Option<std::os::fd::OwnedFd>> {
    let Some((uid, gid, recursive)) = &m.idmap else {
        return Ok(None);
    };
    let label = m.label();
    let src = m
        .source
        .as_ref()
        .with_context(|| format!("{label}: id-mapped mount without a source"))?;
    let userns = make_userns(uid, gid).with_context(|| format!("{label}: id mappings"))?;
    const OPEN_TREE_CLONE: u32 = 1;
    let c = sys::cstr(src)?;
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as u32;
    if m.opts.flags & libc::MS_REC != 0 {
        flags |= libc::AT_RECURSIVE as u32;
    }
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c.as_ptr(), flags) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("{label}: open_tree {}", src.display()));
    }
    let tree = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
    const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
    let attr = sys::MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: std::os::fd::AsRawFd::as_raw_fd(&userns) as u64,
    };
    let rec = if *recursive {
        libc::AT_RECURSIVE as u32
    } else {
        0
    };
    sys::mount_setattr(tree.as_fd(), rec, &attr)
        .with_context(|| format!("{label}: id-map {}", src.display()))?;
    Ok(Some(tree))
}

/// Files below /proc a bind mount may cover (lxcfs-style virtualised views), as runc.
pub const PROC_BIND_ALLOWED: &[&str] = &[
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
];

const OPEN_TREE_CLONE: u32 = 1;
const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;
const FSOPEN_CLOEXEC: u32 = 1;
const FSCONFIG_SET_FLAG: u32 = 0;
const FSCONFIG_SET_STRING: u32 = 1;
const FSCONFIG_CMD_CREATE: u32 = 6;
const FSMOUNT_CLOEXEC: u32 = 1;
const SYSFS_MAGIC: libc::c_long = 0x6265_6572;

fn cvt(r: libc::c_long) -> std::io::Result<libc::c_long> {
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A detached copy (open_tree OPEN_TREE_CLONE) of the mount at `path`, relative to
/// `dir` (an empty path names `dir` itself), with its submounts when `recursive`.
pub fn clone_tree(
    dir: Option<BorrowedFd>,
    path: &CStr,
    recursive: bool,
) -> std::io::Result<OwnedFd> {
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as u32;
    if recursive {
        flags |= libc::AT_RECURSIVE as u32;
    }
    if path.is_empty() {
        flags |= libc::AT_EMPTY_PATH as u32;
    }
    let d = dir.map(|d| d.as_raw_fd()).unwrap_or(libc::AT_FDCWD);
    // SAFETY: open_tree reads the NUL-terminated path; the returned fd is new and ours.
    let fd = cvt(unsafe { libc::syscall(libc::SYS_open_tree, d, path.as_ptr(), flags) })?;
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Attaches the detached mount `tree` on top of whatever `target` (an O_PATH fd
/// resolved inside the rootfs) is: the target is never named by a path again, so
/// nothing the container made (a symlink, a mount over its /proc) can redirect it.
pub fn attach(tree: BorrowedFd, target: BorrowedFd) -> std::io::Result<()> {
    // SAFETY: move_mount reads two empty NUL-terminated strings and uses two open fds.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    })?;
    Ok(())
}

/// mount_setattr on the mount `fd` is the root of (its whole tree when `recursive`).
pub fn set_attr(fd: BorrowedFd, set: u64, clr: u64, recursive: bool) -> std::io::Result<()> {
    let attr = sys::MountAttr {
        attr_set: set,
        attr_clr: clr,
        propagation: 0,
        userns_fd: 0,
    };
    let rec = if recursive {
        libc::AT_RECURSIVE as u32
    } else {
        0
    };
    sys::mount_setattr(fd, rec, &attr)
}

/// Read-only, nosuid, nodev and noexec on every mount of the tree at `fd`: what
/// "read-only" means for masking, readonlyPaths and the host's cgroups, where a
/// writable submount would undo it (CVE-2023-25809).
pub const LOCKED_DOWN: u64 =
    MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;

/// The per-mount attributes (mount_setattr) that MS_* flags ask for, as (set, clear).
pub fn attrs_of(flags: libc::c_ulong) -> (u64, u64) {
    let mut set = 0;
    let mut clr = 0;
    for (ms, at) in [
        (libc::MS_RDONLY, MOUNT_ATTR_RDONLY),
        (libc::MS_NOSUID, MOUNT_ATTR_NOSUID),
        (libc::MS_NODEV, MOUNT_ATTR_NODEV),
        (libc::MS_NOEXEC, MOUNT_ATTR_NOEXEC),
        (libc::MS_NODIRATIME, MOUNT_ATTR_NODIRATIME),
        (MS_NOSYMFOLLOW, MOUNT_ATTR_NOSYMFOLLOW),
    ] {
        if flags & ms != 0 {
            set |= at;
        }
    }
    // The access-time mode is one value: setting it replaces the current one.
    for (ms, at) in [
        (libc::MS_NOATIME, MOUNT_ATTR_NOATIME),
        (libc::MS_STRICTATIME, MOUNT_ATTR_STRICTATIME),
        (libc::MS_RELATIME, MOUNT_ATTR_RELATIME),
    ] {
        if flags & ms != 0 {
            set = (set & !MOUNT_ATTR__ATIME) | at;
            clr |= MOUNT_ATTR__ATIME;
            break;
        }
    }
    (set, clr)
}

/// Applies a bind mount's flags to its top mount only (runc's MS_REMOUNT|MS_BIND: "ro"
/// is not recursive, "rro" is): what the options set is added, what they explicitly
/// turn off ("rw", "suid", ...) is cleared unless the kernel has locked it (a mount
/// inherited from a more privileged mount namespace), where it is kept.
pub fn set_bind_flags(
    mnt: BorrowedFd,
    flags: libc::c_ulong,
    cleared: libc::c_ulong,
) -> std::io::Result<()> {
    let (set, mut clr) = attrs_of(flags);
    let (off, _) = attrs_of(cleared & !(libc::MS_NOATIME | libc::MS_STRICTATIME));
    clr |= off & !set;
    if cleared & (libc::MS_NOATIME | libc::MS_STRICTATIME) != 0 && set & MOUNT_ATTR__ATIME == 0 {
        clr |= MOUNT_ATTR__ATIME;
    }
    if set == 0 && clr == 0 {
        return Ok(());
    }
    match set_attr(mnt, set, clr, false) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            // A locked flag cannot be dropped: keep what the mount has now.
            let (now, _) = attrs_of(locked_flags(mnt));
            let clr = clr & !now & !MOUNT_ATTR__ATIME;
            set_attr(mnt, set, clr, false)
        }
        r => r,
    }
}

/// A new, detached filesystem (fsopen, fsconfig, fsmount): `data` holds the
/// filesystem's own options, superblock flags (sync, dirsync, ...) come from `flags`
/// and the per-mount ones (ro, nosuid, ...) become mount attributes.
pub fn new_fs(
    fstype: &str,
    source: Option<&str>,
    data: &[String],
    flags: libc::c_ulong,
) -> Result<OwnedFd> {
    let ty = CString::new(fstype).context("filesystem type with a NUL byte")?;
    // SAFETY: fsopen reads the NUL-terminated type name; the fd it returns is ours.
    let fs = cvt(unsafe { libc::syscall(libc::SYS_fsopen, ty.as_ptr(), FSOPEN_CLOEXEC) })
        .with_context(|| format!("fsopen {fstype}"))?;
    // SAFETY: a new fd from the kernel, owned by nobody else.
    let fs = unsafe { OwnedFd::from_raw_fd(fs as RawFd) };
    let mut params: Vec<String> = Vec::new();
    if let Some(s) = source {
        params.push(format!("source={s}"));
    }
    for (ms, name) in [
        (libc::MS_SYNCHRONOUS, "sync"),
        (libc::MS_DIRSYNC, "dirsync"),
        (libc::MS_LAZYTIME, "lazytime"),
        (libc::MS_MANDLOCK, "mand"),
    ] {
        if flags & ms != 0 {
            params.push(name.to_string());
        }
    }
    params.extend(data.iter().cloned());
    for p in &params {
        let (k, v) = match p.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (p.as_str(), None),
        };
        let kc = CString::new(k).context("mount option with a NUL byte")?;
        let r = match v {
            Some(v) => {
                // mount(2) strips the quotes of a quoted LSM option (context="..."), fsconfig does not.
                let v = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v);
                let vc = CString::new(v).context("mount option with a NUL byte")?;
                // SAFETY: fsconfig reads two NUL-terminated strings on an fd we own.
                unsafe {
                    libc::syscall(
                        libc::SYS_fsconfig,
                        fs.as_raw_fd(),
                        FSCONFIG_SET_STRING,
                        kc.as_ptr(),
                        vc.as_ptr(),
                        0,
                    )
                }
            }
            // SAFETY: as above, with no value.
            None => unsafe {
                libc::syscall(
                    libc::SYS_fsconfig,
                    fs.as_raw_fd(),
                    FSCONFIG_SET_FLAG,
                    kc.as_ptr(),
                    std::ptr::null::<libc::c_char>(),
                    0,
                )
            },
        };
        cvt(r).with_context(|| format!("{fstype}: option {p}"))?;
    }
    // SAFETY: fsconfig with a command takes no strings.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_char>(),
            0,
        )
    })
    .with_context(|| format!("create a {fstype} filesystem"))?;
    let (attrs, _) = attrs_of(flags);
    // SAFETY: fsmount on the configured context fd we own; returns a new fd.
    let m =
        cvt(unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, attrs) })
            .with_context(|| format!("fsmount {fstype}"))?;
    // SAFETY: a new fd from the kernel, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(m as RawFd) })
}

/// A procfs of kraal's own, for reading where fds really point: a fresh instance
/// (or a private copy of the runtime's /proc), detached, so nothing the container
/// mounts can cover any part of it, and checked to be a procfs root.
pub fn own_procfs() -> Result<OwnedFd> {
    let fd = new_fs("proc", Some("proc"), &[], libc::MS_NOSUID | libc::MS_NODEV)
        .or_else(|_| clone_tree(None, c"/proc", true).context("clone /proc"))
        .context("a private procfs")?;
    if safe_path::fs_type(fd.as_fd()).context("statfs the private procfs")?
        != libc::PROC_SUPER_MAGIC
    {
        bail!("the private procfs is not a procfs");
    }
    Ok(fd)
}

/// Where `fd` is, as a path inside the rootfs `root` (absolute, from the container's
/// point of view), read through kraal's own procfs: the fd's real place after every
/// symlink and race, not the string the config asked for.
pub fn path_in_root(proc: BorrowedFd, root: BorrowedFd, fd: BorrowedFd) -> Result<PathBuf> {
    let read = |f: BorrowedFd| -> Result<PathBuf> {
        let link =
            CString::new(format!("thread-self/fd/{}", f.as_raw_fd())).context("fd link name")?;
        let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
        // SAFETY: readlinkat writes at most buf.len() bytes into our buffer.
        let n = unsafe {
            libc::readlinkat(
                proc.as_raw_fd(),
                link.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error()).context("readlink through procfs");
        }
        buf.truncate(n as usize);
        Ok(PathBuf::from(std::ffi::OsString::from_vec(buf)))
    };
    let r = read(root)?;
    let p = read(fd)?;
    match p.strip_prefix(&r) {
        Ok(rel) => Ok(Path::new("/").join(rel)),
        Err(_) => bail!("{} is outside the rootfs {}", p.display(), r.display()),
    }
}

/// Lexically resolves `.` and `..` (clamped at /), without touching the filesystem.
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

fn source_is_procfs(m: &Prepared) -> bool {
    let Some(src) = m.source.as_deref() else {
        return false;
    };
    let Ok(f) = std::fs::File::open(src) else {
        return false;
    };
    safe_path::on_procfs(f.as_fd()).unwrap_or(false)
}

/// Refuses a mount whose target, once resolved, is somewhere the config did not
/// clearly ask for and the kernel owns (runc: "cannot be mounted because it is inside
/// /proc"): anything inside /proc except a procfs on /proc itself and binds onto the
/// lxcfs files, and anything in /sys reached through a symlink from a destination
/// outside /sys. `resolved` is where `target` really is; the filesystem under the
/// target is checked too, so a procfs or sysfs shown elsewhere counts the same.
pub fn check_target(m: &Prepared, resolved: &Path, target: BorrowedFd) -> Result<()> {
    let label = m.label();
    let fs = safe_path::fs_type(target).with_context(|| format!("{label}: statfs the target"))?;
    let bind = m.opts.is_bind();
    if resolved.starts_with("/proc") || fs == libc::PROC_SUPER_MAGIC {
        let procfs =
            (!bind && m.fstype.as_deref() == Some("proc")) || (bind && source_is_procfs(m));
        if resolved == Path::new("/proc") && procfs {
            return Ok(());
        }
        if bind && PROC_BIND_ALLOWED.iter().any(|p| resolved == Path::new(p)) {
            return Ok(());
        }
        let why = if resolved == Path::new("/proc") {
            "only a procfs may be mounted on /proc".to_string()
        } else {
            format!(
                "below /proc only binds onto {} are allowed",
                PROC_BIND_ALLOWED.join(", ")
            )
        };
        let place = if resolved.starts_with("/proc") {
            "inside /proc"
        } else {
            "on a procfs, as good as inside /proc"
        };
        bail!(
            "{label}: the destination resolves to {}, {place}: {why}",
            resolved.display()
        );
    }
    let asked_sys = normalize(&Path::new("/").join(&m.dest)).starts_with("/sys");
    if (resolved.starts_with("/sys") || fs == SYSFS_MAGIC) && !asked_sys {
        let place = if resolved.starts_with("/sys") {
            "inside /sys, through a symlink"
        } else {
            "on a sysfs, as good as inside /sys"
        };
        bail!(
            "{label}: the destination resolves to {}, {place}; \
             only a destination under /sys may be mounted there",
            resolved.display()
        );
    }
    Ok(())
}

/// Creates (or finds) the mount point of `m` inside the rootfs and checks where it
/// really is. Returns its O_PATH fd.
pub fn mount_point(proc: BorrowedFd, root: BorrowedFd, m: &Prepared) -> Result<OwnedFd> {
    let label = m.label();
    let target = if m.opts.is_bind() && !m.source_is_dir {
        safe_path::create_file(root, &m.dest, 0o644)
    } else {
        safe_path::mkdir_all(root, &m.dest, 0o755)
    }
    .with_context(|| format!("{label}: create mount point"))?;
    let resolved = path_in_root(proc, root, target.as_fd())
        .with_context(|| format!("{label}: where the destination resolves"))?;
    check_target(m, &resolved, target.as_fd())?;
    Ok(target)
}

/// Flags the kernel would refuse to drop on a bind mount (locked in a user
/// namespace), taken from the current mount.
fn locked_flags(fd: BorrowedFd) -> libc::c_ulong {
    // SAFETY: a plain C struct, for which all-zero bytes are a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: fstatvfs writes into the statvfs we own.
    if unsafe { libc::fstatvfs(fd.as_raw_fd(), &mut st) } != 0 {
        return 0;
    }
    let mut f = 0;
    for (st_flag, ms) in [
        (libc::ST_RDONLY, libc::MS_RDONLY),
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ] {
        if st.f_flag & st_flag != 0 {
            f |= ms;
        }
    }
    f
}

/// Remounts `/` (the root, named by a path that needs no /proc) with `flags`,
/// keeping flags the kernel has locked.
pub fn remount_bind_path(
    target: BorrowedFd,
    path: &std::ffi::CStr,
    flags: libc::c_ulong,
    cleared: libc::c_ulong,
) -> std::io::Result<()> {
    let keep = locked_flags(target) & !cleared & !libc::MS_RDONLY;
    let all = libc::MS_BIND | libc::MS_REMOUNT | (flags & !(libc::MS_BIND | libc::MS_REC)) | keep;
    match sys::mount(None, path, None, all, None) {
        // The kernel refuses to drop a locked flag; retry keeping all current ones.
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            sys::mount(None, path, None, all | locked_flags(target), None)
        }
        r => r,
    }
}

/// Applies propagation and the recursive (`r*`) attributes to the mount `mnt`.
pub fn apply_after(mnt: BorrowedFd, o: &Options) -> std::io::Result<()> {
    for p in &o.propagation {
        let attr = sys::MountAttr {
            attr_set: 0,
            attr_clr: 0,
            propagation: *p & !libc::MS_REC,
            userns_fd: 0,
        };
        let rec = if *p & libc::MS_REC != 0 {
            libc::AT_RECURSIVE as u32
        } else {
            0
        };
        sys::mount_setattr(mnt, rec, &attr)?;
    }
    if o.attr_set != 0 || o.attr_clr != 0 {
        set_attr(mnt, o.attr_set, o.attr_clr, true)?;
    }
    Ok(())
}

/// Mounts one prepared entry inside the rootfs open at `root`. Every mount is made
/// detached (open_tree, fsmount) and attached onto the target's fd with move_mount;
/// `proc` is kraal's own procfs (see `own_procfs`).
pub fn mount_one(proc: BorrowedFd, root: BorrowedFd, m: &Prepared) -> Result<()> {
    let label = m.label();
    let fstype = m.fstype.as_deref();
    // An id-mapped tree made by the runtime: ours to close from here on, whatever fails.
    // SAFETY: the runtime passed this fd for this mount alone; nothing else closes it.
    let detached = m.detached.map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
    if matches!(fstype, Some("proc") | Some("sysfs")) {
        // CVE-2023-28642: a symlinked /proc would let the image redirect the mount.
        if let Ok(fd) = safe_path::open_nofollow(root, &m.dest) {
            // SAFETY: a plain C struct, for which all-zero bytes are a valid value.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: fstat writes into the stat we own.
            if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } == 0
                && st.st_mode & libc::S_IFMT != libc::S_IFDIR
            {
                bail!(
                    "{label}: {} mount destination is not a directory",
                    fstype.unwrap_or("")
                );
            }
        }
    }
    let target = mount_point(proc, root, m)?;
    let mut flags_done = false;
    let src_str = m.source.as_ref().and_then(|s| s.to_str()).or(fstype);
    let mnt = if let Some(tree) = detached {
        attach(tree.as_fd(), target.as_fd())
            .with_context(|| format!("{label}: attach the id-mapped mount"))?;
        tree
    } else if m.opts.is_bind() {
        let src = m.source.as_deref().unwrap_or(Path::new(""));
        let c = sys::cstr(src).with_context(|| format!("{label}: source"))?;
        let tree = clone_tree(None, &c, m.opts.flags & libc::MS_REC != 0)
            .with_context(|| format!("{label}: bind {}", src.display()))?;
        // The options are set on the detached tree, so the bind is never visible
        // (nor propagated to a shared root's peers) without them.
        set_bind_flags(tree.as_fd(), bind_extra(m), m.opts.cleared)
            .with_context(|| format!("{label}: remount with options"))?;
        attach(tree.as_fd(), target.as_fd())
            .with_context(|| format!("{label}: bind {}", src.display()))?;
        flags_done = true;
        tree
    } else if m.opts.tmpcopyup && fstype == Some("tmpfs") {
        crate::tmpcopyup::mount(target.as_fd(), m.opts.flags, &m.opts.data)
            .with_context(|| format!("{label}: tmpfs with tmpcopyup"))?
    } else if m.opts.flags & libc::MS_REMOUNT != 0 {
        // A remount of what is already there: only its per-mount flags change.
        set_bind_flags(target.as_fd(), m.opts.flags, m.opts.cleared)
            .with_context(|| format!("{label}: remount"))?;
        target
    } else {
        let ty = fstype.with_context(|| format!("{label}: no filesystem type"))?;
        let fs = new_fs(ty, src_str, &m.opts.data, m.opts.flags)
            .with_context(|| format!("{label}: mount {} type {ty}", src_str.unwrap_or_default()))?;
        attach(fs.as_fd(), target.as_fd())
            .with_context(|| format!("{label}: attach the {ty} mount"))?;
        fs
    };
    if m.opts.is_bind() && !flags_done {
        set_bind_flags(mnt.as_fd(), bind_extra(m), m.opts.cleared)
            .with_context(|| format!("{label}: remount with options"))?;
    }
    apply_after(mnt.as_fd(), &m.opts)
        .with_context(|| format!("{label}: set propagation/attributes"))?;
    Ok(())
}

/// The per-mount flags a bind's options ask for, beyond the bind itself.
fn bind_extra(m: &Prepared) -> libc::c_ulong {
    m.opts.flags & !(libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str]) -> Options {
        parse_options(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_data_propagation_and_recursive() {
        let o = p(&[
            "nosuid",
            "strictatime",
            "mode=755",
            "size=65536k",
            "rslave",
            "rro",
        ]);
        assert_eq!(o.flags, libc::MS_NOSUID | libc::MS_STRICTATIME);
        assert_eq!(o.data, vec!["mode=755", "size=65536k"]);
        assert_eq!(o.propagation, vec![libc::MS_SLAVE | libc::MS_REC]);
        assert_eq!(o.attr_set, MOUNT_ATTR_RDONLY);
        assert!(!o.is_bind());
    }

    #[test]
    fn later_options_win() {
        let o = p(&["ro", "rw", "rbind", "noexec", "exec"]);
        assert_eq!(o.flags, libc::MS_BIND | libc::MS_REC);
        assert_eq!(
            o.cleared & (libc::MS_RDONLY | libc::MS_NOEXEC),
            libc::MS_RDONLY | libc::MS_NOEXEC
        );
        let o = p(&["rnoatime", "rrelatime"]);
        assert_eq!(o.attr_set, MOUNT_ATTR_RELATIME);
        assert_eq!(o.attr_clr, MOUNT_ATTR__ATIME);
    }

    fn prepared(dest: &str, fstype: Option<&str>, opts: &[&str]) -> Prepared {
        let mut o = p(opts);
        if fstype == Some("bind") {
            o.flags |= libc::MS_BIND;
        }
        Prepared {
            index: 3,
            dest: PathBuf::from(dest),
            source: Some(PathBuf::from("/nonexistent-source")),
            fstype: fstype.map(str::to_string),
            opts: o,
            source_is_dir: true,
            idmap: None,
            detached: None,
        }
    }

    #[test]
    fn targets_inside_proc_and_sys_are_checked_after_resolution() {
        let tmp = std::fs::File::open(std::env::temp_dir()).unwrap();
        let tmp = tmp.as_fd();
        let procfs = std::fs::File::open("/proc/self").unwrap();
        let bind = |d| prepared(d, Some("bind"), &["rbind"]);
        // What the config asked for, and where the image's symlinks led it.
        let refused = [
            (bind("data"), "/proc/1/fd", tmp),
            (bind("kern"), "/proc/sys/kernel", tmp),
            (
                prepared("cp", Some("tmpfs"), &["tmpcopyup"]),
                "/proc/1/fd",
                tmp,
            ),
            (prepared("proc", Some("tmpfs"), &[]), "/proc", tmp),
            (bind("fw"), "/sys/firmware", tmp),
            // Not under /proc by name, but on a procfs (or named so) all the same.
            (bind("hostproc/x"), "/hostproc/x", procfs.as_fd()),
        ];
        for (m, resolved, fd) in &refused {
            let e = check_target(m, Path::new(resolved), *fd).unwrap_err();
            let e = format!("{e:#}");
            assert!(
                e.contains("mounts[3]") && e.contains(resolved),
                "{resolved}: {e}"
            );
        }
        let allowed = [
            (prepared("proc", Some("proc"), &[]), "/proc", tmp),
            (bind("proc/cpuinfo"), "/proc/cpuinfo", tmp),
            (bind("lxcfs-uptime"), "/proc/uptime", tmp),
            (bind("sys/kernel/mm"), "/sys/kernel/mm", tmp),
            (prepared("sys", Some("sysfs"), &[]), "/sys", tmp),
            (bind("data"), "/data", tmp),
        ];
        for (m, resolved, fd) in &allowed {
            check_target(m, Path::new(resolved), *fd).unwrap();
        }
    }

    #[test]
    fn flags_become_mount_attributes() {
        let (set, clr) = attrs_of(libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NOATIME);
        assert_eq!(
            set,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOATIME
        );
        assert_eq!(clr, MOUNT_ATTR__ATIME);
        assert_eq!(attrs_of(libc::MS_BIND | libc::MS_REC), (0, 0));
    }

    #[test]
    fn every_advertised_option_is_understood() {
        for opt in crate::features::MOUNT_OPTIONS {
            let o = p(&[opt]);
            assert!(
                o.data.is_empty(),
                "{opt} would be passed as filesystem data"
            );
        }
    }
}
