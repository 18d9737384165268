//! CVE-2019-5736: the kraal binary must never be writable from a container.
//!
//! Every process kraal forks into a container (the init, an exec'd process, a hook
//! runner) runs kraal's image until its execve. If that execve runs a program whose
//! interpreter is `/proc/self/exe` (a `#!/proc/self/exe` script, or `/proc/self/exe`
//! itself), the kernel starts the *runtime's* executable inside the container as an
//! ordinary, dumpable process; another container process can then open
//! `/proc/<pid>/exe` and, once the binary is no longer running, write to it.
//!
//! So the commands that enter a container (create, run, exec) first re-execute
//! kraal from an image nothing can write to. After that, `/proc/self/exe` of this
//! process and of every fork of it is that image, whichever execve a fork makes. Two
//! forms, the first that works:
//! 1. the binary opened through a private, detached, read-only overlayfs of its own
//!    directory (no upper layer, so the superblock itself is read-only and nothing
//!    can make it writable). No copy: the page cache stays shared, and it costs one
//!    mount (about 0.5 ms). Needs CAP_SYS_ADMIN (not for rootless kraal).
//! 2. a sealed memfd copy (F_SEAL_WRITE|SHRINK|GROW|SEAL): a binary's worth of
//!    unshared memory per live command, and the copy (about 2.7 ms for 4.4 MB).
//!
//! Neither is done on the commands that stay on the host (state, kill, delete, list,
//! ...). Whether the image is protected is read from the kernel (the exe's seals, or
//! its file system, mount flags and mount), never trusted from the environment; the
//! environment marker only stops a re-execution loop, and can only make kraal fail,
//! not skip the protection.

use anyhow::{bail, Context, Result};
use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

/// The seals that make the copy immutable: no write (write(2), shared writable mmap,
/// hole punching), no size change, and no removal of these seals.
const REQUIRED_SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// memfd_create flag (Linux 6.3+): executable memfd, asked for explicitly so a
/// `vm.memfd_noexec=1` default does not make the copy non-executable. Not in libc yet.
const MFD_EXEC: libc::c_uint = 0x0010;

/// Set in the re-executed process's environment; removed again at once. If it is
/// present and the exe is still not sealed, re-executing again would loop.
const REEXEC_MARK: &str = "_KRAAL_EXESEAL_REEXEC";

/// The memfd's name: `/proc/<pid>/exe` of kraal's processes reads `/memfd:kraal (deleted)`.
const MEMFD_NAME: &std::ffi::CStr = c"kraal";

/// Makes sure this process runs from an image of the kraal binary that nothing can
/// write to: returns Ok when it already does, otherwise re-executes itself (same argv
/// and environment) from a read-only overlay view or a sealed copy, and never returns
/// on success. `scratch` is an existing directory not inside the binary's directory
/// (the state root): the overlay's required second layer, never written.
///
/// Must be called before kraal starts threads or opens anything a container could
/// inherit: the re-execution replaces the process.
pub fn ensure_sealed(scratch: &Path) -> Result<()> {
    const OP: &str = "protect the kraal binary (CVE-2019-5736)";
    let reexecuted = std::env::var_os(REEXEC_MARK).is_some();
    if reexecuted {
        // Hooks inherit kraal's environment: the marker must not reach them.
        std::env::remove_var(REEXEC_MARK);
    }
    let exe = open_self_exe()?;
    let how = protection(&exe).with_context(|| format!("{OP}: inspect /proc/self/exe"))?;
    if let Ok(how) = how {
        if reexecuted {
            restore_comm();
        }
        crate::logging::debug(&format!("running from {how}"));
        return Ok(());
    }
    if reexecuted {
        bail!(
            "{OP}: re-executed from a protected image, but /proc/self/exe is not \
             one ({}); refusing to run unprotected",
            how.err().unwrap_or_default()
        );
    }
    let image = match overlay_view(scratch) {
        Ok(f) => f,
        Err(e) => {
            crate::logging::debug(&format!(
                "{OP}: no read-only overlay view ({e:#}); using a sealed memfd copy"
            ));
            sealed_copy(&exe).map_err(|m| {
                anyhow::anyhow!("{m:#}; a read-only overlay view was not possible either: {e:#}")
            })?
        }
    };
    drop(exe);
    reexec(&image)
}

/// How `exe` is protected (Ok), or why it is not (Err, for the error message).
fn protection(exe: &OwnedFd) -> std::io::Result<Result<&'static str, String>> {
    let seals = seals_of(exe)?;
    if seals.is_some_and(|s| s & REQUIRED_SEALS == REQUIRED_SEALS) {
        return Ok(Ok("a sealed memfd copy"));
    }
    let st = nix::sys::statfs::fstatfs(exe).map_err(std::io::Error::from)?;
    let overlay = st.filesystem_type() == nix::sys::statfs::OVERLAYFS_SUPER_MAGIC;
    let rdonly = st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY);
    if overlay && rdonly {
        // Read-only, and in no mount table of ours: nobody can remount it writable
        // (a mount kraal made detached; not the host's own overlay root).
        // Without a mount id (before Linux 5.8) this cannot be told: not protected,
        // so the first process re-executes (from the memfd: the overlay candidate
        // fails the same test).
        let id = match mount_id(exe) {
            Ok(id) => id,
            Err(e) => return Ok(Err(format!("read-only overlayfs, mount id unknown: {e}"))),
        };
        if !mounted_here(id)? {
            return Ok(Ok("a read-only detached overlayfs"));
        }
        return Ok(Err(format!("read-only overlayfs mount {id} is attached")));
    }
    Ok(Err(format!(
        "seals {}, {}, {}",
        seals.map_or("none".to_string(), |s| format!("{s:#x}")),
        if overlay {
            "overlayfs"
        } else {
            "not overlayfs"
        },
        if rdonly {
            "read-only"
        } else {
            "writable mount"
        },
    )))
}

/// The mount id of the file (statx STATX_MNT_ID, Linux 5.8+).
fn mount_id(f: &OwnedFd) -> std::io::Result<u64> {
    const STATX_MNT_ID: u32 = 0x1000;
    // SAFETY: statx fills the zeroed struct we pass; the path is an empty C string
    // with AT_EMPTY_PATH, so the fd itself is inspected.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    let r = unsafe {
        libc::statx(
            f.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            STATX_MNT_ID,
            &mut stx,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if stx.stx_mask & STATX_MNT_ID == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "statx gives no mount id",
        ));
    }
    Ok(stx.stx_mnt_id)
}

/// Whether mount `id` is in this process's mount namespace.
fn mounted_here(id: u64) -> std::io::Result<bool> {
    let mi = std::fs::read_to_string("/proc/self/mountinfo")?;
    let id = id.to_string();
    Ok(mi.lines().any(|l| l.split(' ').next() == Some(id.as_str())))
}

/// The running binary opened through a new detached overlayfs whose layers are the
/// binary's directory (on top) and `scratch`, mounted read-only, nodev, nosuid. It is
/// checked with the same test the re-executed process applies.
fn overlay_view(scratch: &Path) -> Result<OwnedFd> {
    let path = std::fs::read_link("/proc/self/exe").context("readlink /proc/self/exe")?;
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        bail!(
            "/proc/self/exe is {}: no directory and name",
            path.display()
        );
    };
    // overlayfs splits lowerdir at ':' and unescapes '\\'.
    let esc = |p: &Path| -> Result<String> {
        let s = p
            .to_str()
            .with_context(|| format!("{} is not UTF-8", p.display()))?;
        Ok(s.replace('\\', "\\\\").replace(':', "\\:"))
    };
    let lower = format!("lowerdir={}:{}", esc(dir)?, esc(scratch)?);
    let name = CString::new(name.as_bytes()).context("binary name holds a NUL byte")?;
    // No upper layer, read-only: nothing written through it can reach the binary.
    // xino=off: inode-number mapping is irrelevant here, and off avoids its warnings
    // in the kernel log on every command.
    let mnt = crate::mounts::new_fs(
        "overlay",
        None,
        &[lower, "xino=off".to_string()],
        libc::MS_RDONLY | libc::MS_NODEV | libc::MS_NOSUID,
    )
    .context("mount a read-only overlay of the binary's directory")?;
    let f = {
        use std::os::fd::AsFd;
        crate::sys::openat(
            Some(mnt.as_fd()),
            &name,
            libc::O_RDONLY | libc::O_NOFOLLOW,
            0,
        )
    }
    .with_context(|| format!("open {} in the overlay", name.to_string_lossy()))?;
    match protection(&f).context("inspect the overlay view")? {
        Ok(_) => Ok(f),
        Err(why) => bail!("the overlay view is not protected: {why}"),
    }
}

/// execveat(fd, "") names the process after the fd or the memfd, not after the
/// program: give it the name a plain execve of argv[0] would have (`ps`, `pgrep`,
/// monitoring). Best effort: a wrong name is cosmetic, so a failure is ignored.
fn restore_comm() {
    let Some(a0) = std::env::args_os().next() else {
        return;
    };
    let a0 = a0.into_vec();
    let base = a0.rsplit(|&c| c == b'/').next().unwrap_or(&a0);
    // The kernel keeps 15 bytes (TASK_COMM_LEN - 1).
    let base: Vec<u8> = base.iter().copied().take(15).collect();
    if let Ok(name) = CString::new(base) {
        // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
        unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr(), 0, 0, 0) };
    }
}

/// /proc/self/exe, opened (the kernel's link to this process's image, not a path
/// looked up again).
fn open_self_exe() -> Result<OwnedFd> {
    crate::sys::openat(None, c"/proc/self/exe", libc::O_RDONLY | libc::O_CLOEXEC, 0)
        .context("protect the kraal binary (CVE-2019-5736): open /proc/self/exe")
}

/// The file's seals; None for a file that cannot carry seals (a regular file on
/// ext4, xfs, ...). A shmem file (tmpfs, memfd) always reports at least F_SEAL_SEAL.
fn seals_of(fd: &OwnedFd) -> std::io::Result<Option<libc::c_int>> {
    // SAFETY: fcntl(F_GET_SEALS) on an fd we own; no memory is passed.
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
    if r >= 0 {
        return Ok(Some(r));
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EINVAL) {
        return Ok(None);
    }
    Err(e)
}

/// A memfd holding a copy of `exe`, sealed against any change.
fn sealed_copy(exe: &OwnedFd) -> Result<OwnedFd> {
    const OP: &str = "protect the kraal binary (CVE-2019-5736)";
    let mfd = memfd_exec().with_context(|| format!("{OP}: memfd_create"))?;
    let size =
        copy_all(exe, &mfd).with_context(|| format!("{OP}: copy /proc/self/exe into a memfd"))?;
    let st = nix::sys::stat::fstat(exe.as_raw_fd())
        .with_context(|| format!("{OP}: fstat /proc/self/exe"))?;
    if size != st.st_size as u64 {
        bail!(
            "{OP}: copied {size} bytes of /proc/self/exe, but it holds {}",
            st.st_size
        );
    }
    // F_SEAL_EXEC (Linux 6.3+) also freezes the mode bits; older kernels reject it.
    // SAFETY: fcntl(F_ADD_SEALS) on the memfd we own; no memory is passed.
    let mut r = unsafe {
        libc::fcntl(
            mfd.as_raw_fd(),
            libc::F_ADD_SEALS,
            REQUIRED_SEALS | libc::F_SEAL_EXEC,
        )
    };
    if r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        // SAFETY: as above.
        r = unsafe { libc::fcntl(mfd.as_raw_fd(), libc::F_ADD_SEALS, REQUIRED_SEALS) };
    }
    if r < 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("{OP}: seal the memfd copy"));
    }
    match seals_of(&mfd).with_context(|| format!("{OP}: read the memfd's seals"))? {
        Some(s) if s & REQUIRED_SEALS == REQUIRED_SEALS => Ok(mfd),
        s => bail!("{OP}: the memfd copy is not sealed after F_ADD_SEALS (seals {s:?})"),
    }
}

/// An executable, sealable, close-on-exec memfd. `vm.memfd_noexec=2` forbids
/// executable memfds: that is reported by name, kraal never runs unprotected.
fn memfd_exec() -> Result<OwnedFd> {
    let base = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // SAFETY: memfd_create with a valid C string; returns a new fd or -1.
    let mut fd = unsafe { libc::memfd_create(MEMFD_NAME.as_ptr(), base | MFD_EXEC) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            // A kernel before 6.3 does not know MFD_EXEC (nor vm.memfd_noexec): its
            // memfds are executable anyway.
            Some(libc::EINVAL) => {
                // SAFETY: as above.
                fd = unsafe { libc::memfd_create(MEMFD_NAME.as_ptr(), base) };
            }
            Some(libc::EACCES) => bail!(
                "executable memfds are forbidden by the sysctl vm.memfd_noexec=2 (in \
                 kraal's pid namespace); kraal needs one to keep its binary out of the \
                 container's reach: set vm.memfd_noexec to 0 or 1: {e}"
            ),
            _ => return Err(e.into()),
        }
    }
    if fd < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: memfd_create returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Copies `src` from offset 0 to its end into `dst`; returns the bytes copied.
fn copy_all(src: &OwnedFd, dst: &OwnedFd) -> std::io::Result<u64> {
    let mut off: libc::off_t = 0;
    loop {
        // SAFETY: sendfile between two fds we own, with a valid offset pointer; the
        // kernel copies without touching our memory.
        let n = unsafe { libc::sendfile(dst.as_raw_fd(), src.as_raw_fd(), &mut off, 1 << 30) };
        match n {
            0 => return Ok(off as u64),
            n if n > 0 => {}
            _ => {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}

/// execveat(memfd, "", argv, envp, AT_EMPTY_PATH) with this process's own argv and
/// environment plus the loop marker. Returns only on failure.
fn reexec(copy: &OwnedFd) -> Result<()> {
    const OP: &str = "protect the kraal binary (CVE-2019-5736): re-execute from the sealed copy";
    let argv: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.into_vec()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("{OP}: an argument holds a NUL byte"))?;
    let mut envp: Vec<CString> = Vec::new();
    for (k, v) in std::env::vars_os() {
        let mut kv: OsString = k;
        kv.push("=");
        kv.push(v);
        envp.push(
            CString::new(kv.into_vec())
                .with_context(|| format!("{OP}: an environment entry holds a NUL byte"))?,
        );
    }
    envp.push(CString::new(format!("{REEXEC_MARK}=1")).context(OP)?);
    let argv_p: Vec<*mut libc::c_char> = argv
        .iter()
        .map(|a| a.as_ptr().cast_mut())
        .chain(std::iter::once(std::ptr::null_mut()))
        .collect();
    let envp_p: Vec<*mut libc::c_char> = envp
        .iter()
        .map(|e| e.as_ptr().cast_mut())
        .chain(std::iter::once(std::ptr::null_mut()))
        .collect();
    // SAFETY: argv_p and envp_p are NULL-terminated arrays of pointers into CStrings
    // that outlive the call (execveat never writes through them: the `*mut` is only
    // libc's signature); the path is an empty C string with AT_EMPTY_PATH. The
    // memfd is close-on-exec, which execveat allows for an ELF image.
    unsafe {
        libc::execveat(
            copy.as_raw_fd(),
            c"".as_ptr(),
            argv_p.as_ptr(),
            envp_p.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    Err(std::io::Error::last_os_error()).context(OP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_copy_is_immutable() {
        let exe = open_self_exe().unwrap();
        let copy = sealed_copy(&exe).unwrap();
        let s = seals_of(&copy).unwrap().unwrap();
        assert_eq!(s & REQUIRED_SEALS, REQUIRED_SEALS);
        // Writing through a reopened path (what the attack does) is refused.
        let p = format!("/proc/self/fd/{}", copy.as_raw_fd());
        let w = std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .and_then(|mut f| std::io::Write::write(&mut f, b"x"));
        assert!(w.is_err(), "write to the sealed copy succeeded");
        // Same content as the image.
        assert_eq!(
            std::fs::read(&p).unwrap(),
            std::fs::read("/proc/self/exe").unwrap()
        );
    }

    #[test]
    fn overlay_view_is_read_only_and_detached() {
        let scratch = std::env::temp_dir().join(format!("kraal-exeseal-{}", std::process::id()));
        std::fs::create_dir_all(&scratch).unwrap();
        let r = overlay_view(&scratch);
        let _ = std::fs::remove_dir(&scratch);
        let f = r.unwrap();
        assert!(protection(&f).unwrap().is_ok());
        let p = format!("/proc/self/fd/{}", f.as_raw_fd());
        let e = std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
        assert_eq!(
            std::fs::read(&p).unwrap(),
            std::fs::read("/proc/self/exe").unwrap()
        );
        // The running binary itself is neither sealed nor on such a mount.
        assert!(protection(&open_self_exe().unwrap()).unwrap().is_err());
    }

    #[test]
    fn regular_file_has_no_seals() {
        let f = crate::sys::openat(None, c"/proc/self/exe", libc::O_RDONLY, 0).unwrap();
        // The test binary lives under target/ on a disk file system here; a tmpfs
        // would report F_SEAL_SEAL, which is still not the required set.
        let s = seals_of(&f).unwrap();
        assert!(s.is_none_or(|s| s & REQUIRED_SEALS != REQUIRED_SEALS));
    }
}
