//! Thin, checked wrappers over the raw syscalls kraal needs that libc/nix lack or
//! wrap awkwardly (openat2, clone3, close_range, mount_setattr, pivot_root, ...).
//!
//! Every wrapper returns `std::io::Result` so callers attach the operation and path.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

fn cvt(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn cvt_i(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

pub fn cstr(p: &Path) -> io::Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

pub const RESOLVE_NO_XDEV: u64 = 0x01;
pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
pub const RESOLVE_BENEATH: u64 = 0x08;
pub const RESOLVE_IN_ROOT: u64 = 0x10;

/// openat2(2): `resolve` holds RESOLVE_* flags.
pub fn openat2(
    dir: BorrowedFd,
    path: &CStr,
    flags: i32,
    mode: u32,
    resolve: u64,
) -> io::Result<OwnedFd> {
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: u64::from(mode),
        resolve,
    };
    loop {
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        match cvt(r) {
            Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }),
            // EAGAIN: a concurrent rename raced the lookup; the kernel asks us to retry.
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => continue,
            Err(e) => return Err(e),
        }
    }
}

pub fn openat(dir: Option<BorrowedFd>, path: &CStr, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let d = dir.map(|d| d.as_raw_fd()).unwrap_or(libc::AT_FDCWD);
    let fd = cvt_i(unsafe { libc::openat(d, path.as_ptr(), flags | libc::O_CLOEXEC, mode) })?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn mount(
    src: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> io::Result<()> {
    let p = |c: Option<&CStr>| c.map(|c| c.as_ptr()).unwrap_or(std::ptr::null());
    cvt_i(unsafe {
        libc::mount(
            p(src),
            target.as_ptr(),
            p(fstype),
            flags,
            p(data) as *const libc::c_void,
        )
    })?;
    Ok(())
}

pub fn umount2(target: &CStr, flags: i32) -> io::Result<()> {
    cvt_i(unsafe { libc::umount2(target.as_ptr(), flags) })?;
    Ok(())
}

#[repr(C)]
pub struct MountAttr {
    pub attr_set: u64,
    pub attr_clr: u64,
    pub propagation: u64,
    pub userns_fd: u64,
}

pub fn mount_setattr(fd: BorrowedFd, flags: u32, attr: &MountAttr) -> io::Result<()> {
    let empty = c"";
    cvt(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            empty.as_ptr(),
            flags | libc::AT_EMPTY_PATH as u32,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })?;
    Ok(())
}

pub fn pivot_root(new_root: &CStr, put_old: &CStr) -> io::Result<()> {
    cvt(unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) })?;
    Ok(())
}

pub fn setns(fd: BorrowedFd, nstype: i32) -> io::Result<()> {
    cvt_i(unsafe { libc::setns(fd.as_raw_fd(), nstype) })?;
    Ok(())
}

pub fn unshare(flags: i32) -> io::Result<()> {
    cvt_i(unsafe { libc::unshare(flags) })?;
    Ok(())
}

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Forks like fork(2) but creates the namespaces in `flags` for the child, and places
/// it straight into the cgroup v2 directory `cgroup` when given. Returns 0 in the child.
///
/// Only safe because kraal is single-threaded: the child continues on a copy of this
/// thread's stack with no other thread's locks to worry about.
pub fn clone3(flags: u64, cgroup: Option<BorrowedFd>) -> io::Result<libc::pid_t> {
    let mut args = CloneArgs {
        flags,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    if let Some(cg) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = cg.as_raw_fd() as u64;
    }
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match cvt(r) {
        Ok(pid) => Ok(pid as libc::pid_t),
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) && cgroup.is_none() => {
            let r = unsafe {
                libc::syscall(
                    libc::SYS_clone,
                    flags as libc::c_ulong | libc::SIGCHLD as libc::c_ulong,
                    0usize,
                    0usize,
                    0usize,
                    0usize,
                )
            };
            Ok(cvt(r)? as libc::pid_t)
        }
        Err(e) => Err(e),
    }
}

/// Marks every fd from `first` up close-on-exec, so only stdio and the fds below it
/// survive into the container (CVE-2024-21626 class).
pub fn cloexec_from(first: u32) -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;
    cvt(unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) })?;
    Ok(())
}

pub fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    let fd = cvt(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

pub fn pidfd_send_signal(pidfd: BorrowedFd, sig: i32) -> io::Result<()> {
    cvt(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    })?;
    Ok(())
}

/// Writes all of `data` to the file at `path` (no create, no truncate).
pub fn write_file(path: &Path, data: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(data)
}
