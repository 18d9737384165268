//! The `mounts` entries of config.json: parsing options into mount(2) flags,
//! propagation changes, recursive attributes (mount_setattr) and filesystem data,
//! and performing one mount onto an fd resolved inside the rootfs.

use crate::fs::safe_path;
use crate::sys;
use anyhow::{bail, Context, Result};
use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd};
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

fn map_lines(m: &[LinuxIdMapping]) -> String {
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

fn opt_c(s: Option<&str>) -> Result<Option<CString>> {
    s.map(|s| CString::new(s).context("NUL byte in mount argument"))
        .transpose()
}

/// Mount flags the kernel would refuse to drop on a remount (locked in a user
/// namespace), taken from the current mount so a bind remount keeps them.
fn locked_flags(fd: BorrowedFd) -> libc::c_ulong {
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatvfs(std::os::fd::AsRawFd::as_raw_fd(&fd), &mut st) } != 0 {
        return 0;
    }
    let mut f = 0;
    for (st_flag, ms) in [
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

/// Remounts a bind mount with `flags`, keeping locked flags not explicitly cleared.
pub fn remount_bind(
    target: BorrowedFd,
    flags: libc::c_ulong,
    cleared: libc::c_ulong,
) -> std::io::Result<()> {
    remount_bind_path(target, &sys::fd_path(target), flags, cleared)
}

/// As `remount_bind`, naming the mount by `path` (for `/`, which needs no /proc).
pub fn remount_bind_path(
    target: BorrowedFd,
    path: &std::ffi::CStr,
    flags: libc::c_ulong,
    cleared: libc::c_ulong,
) -> std::io::Result<()> {
    let keep = locked_flags(target) & !cleared;
    let all = libc::MS_BIND | libc::MS_REMOUNT | (flags & !(libc::MS_BIND | libc::MS_REC)) | keep;
    match sys::mount(None, path, None, all, None) {
        // The kernel refuses to drop a locked flag; retry keeping all current ones.
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            sys::mount(None, path, None, all | locked_flags(target), None)
        }
        r => r,
    }
}

/// Applies propagation and recursive attributes to the mount at `target`.
pub fn apply_after(target: BorrowedFd, o: &Options) -> std::io::Result<()> {
    let path = sys::fd_path(target);
    for p in &o.propagation {
        sys::mount(None, &path, None, *p, None)?;
    }
    if o.attr_set != 0 || o.attr_clr != 0 {
        let attr = sys::MountAttr {
            attr_set: o.attr_set,
            attr_clr: o.attr_clr,
            propagation: 0,
            userns_fd: 0,
        };
        sys::mount_setattr(target, libc::AT_RECURSIVE as u32, &attr)?;
    }
    Ok(())
}

/// Mounts one prepared entry inside the rootfs open at `root`.
pub fn mount_one(root: BorrowedFd, m: &Prepared) -> Result<()> {
    let label = m.label();
    let fstype = m.fstype.as_deref();
    if matches!(fstype, Some("proc") | Some("sysfs")) {
        // CVE-2023-28642: a symlinked /proc would let the image redirect the mount.
        if let Ok(fd) = safe_path::open_nofollow(root, &m.dest) {
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            if unsafe { libc::fstat(std::os::fd::AsRawFd::as_raw_fd(&fd), &mut st) } == 0
                && st.st_mode & libc::S_IFMT != libc::S_IFDIR
            {
                bail!(
                    "{label}: {} mount destination is not a directory",
                    fstype.unwrap_or("")
                );
            }
        }
    }
    let target = if m.opts.is_bind() && !m.source_is_dir {
        safe_path::create_file(root, &m.dest, 0o644)
    } else {
        safe_path::mkdir_all(root, &m.dest, 0o755)
    }
    .with_context(|| format!("{label}: create mount point"))?;
    let tpath = sys::fd_path(target.as_fd());
    let data = if m.opts.data.is_empty() {
        None
    } else {
        Some(m.opts.data.join(","))
    };
    let src = opt_c(m.source.as_ref().and_then(|s| s.to_str()).or(fstype))?;
    if let Some(tree) = m.detached {
        const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x4;
        const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;
        let r = unsafe {
            libc::syscall(
                libc::SYS_move_mount,
                tree,
                c"".as_ptr(),
                std::os::fd::AsRawFd::as_raw_fd(&target),
                c"".as_ptr(),
                MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
            )
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("{label}: attach the id-mapped mount"));
        }
        unsafe { libc::close(tree) };
    } else if m.opts.is_bind() {
        let bind = libc::MS_BIND | (m.opts.flags & libc::MS_REC);
        sys::mount(src.as_deref(), &tpath, None, bind, None).with_context(|| {
            format!(
                "{label}: bind {}",
                m.source.as_deref().unwrap_or(Path::new("")).display()
            )
        })?;
    }
    if m.opts.is_bind() {
        // The new mount hides what `target` pointed at: resolve it again.
        let mounted = safe_path::open(root, &m.dest, libc::O_PATH)
            .with_context(|| format!("{label}: reopen after mount"))?;
        let extra = m.opts.flags & !(libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT);
        if extra != 0 {
            remount_bind(mounted.as_fd(), extra, m.opts.cleared)
                .with_context(|| format!("{label}: remount with options"))?;
        }
        apply_after(mounted.as_fd(), &m.opts)
            .with_context(|| format!("{label}: set propagation/attributes"))?;
        return Ok(());
    }
    if m.opts.tmpcopyup && fstype == Some("tmpfs") {
        crate::tmpcopyup::mount(target.as_fd(), m.opts.flags, &m.opts.data)
            .with_context(|| format!("{label}: tmpfs with tmpcopyup"))?;
        let mounted = safe_path::open(root, &m.dest, libc::O_PATH)
            .with_context(|| format!("{label}: reopen after mount"))?;
        apply_after(mounted.as_fd(), &m.opts)
            .with_context(|| format!("{label}: set propagation/attributes"))?;
        return Ok(());
    }
    let ty = opt_c(fstype)?;
    let data_c = opt_c(data.as_deref())?;
    sys::mount(
        src.as_deref(),
        &tpath,
        ty.as_deref(),
        m.opts.flags,
        data_c.as_deref(),
    )
    .with_context(|| {
        format!(
            "{label}: mount {} type {}",
            src.as_deref()
                .map(|s| s.to_string_lossy())
                .unwrap_or_default(),
            fstype.unwrap_or("")
        )
    })?;
    if !m.opts.propagation.is_empty() || m.opts.attr_set != 0 || m.opts.attr_clr != 0 {
        let mounted = safe_path::open(root, &m.dest, libc::O_PATH)
            .with_context(|| format!("{label}: reopen after mount"))?;
        apply_after(mounted.as_fd(), &m.opts)
            .with_context(|| format!("{label}: set propagation/attributes"))?;
    }
    Ok(())
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
