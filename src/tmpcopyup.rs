//! The `tmpcopyup` mount option (runc's): a tmpfs mounted over a directory of the
//! image starts with a copy of what the directory held. The tmpfs is made detached
//! (fsopen/fsmount), filled through fds, then moved onto the directory.

use crate::{mounts, sys};
use anyhow::{Context, Result};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// Mounts a tmpfs with `data` options over the directory `target`, holding a copy of
/// its contents; returns the attached mount. `target` was resolved and checked by the
/// caller (`mounts::mount_point`): it is never a directory of the kernel's (/proc), so
/// the copy cannot carry the runtime's fd table or other process state inside.
pub fn mount(target: BorrowedFd, flags: libc::c_ulong, data: &[String]) -> Result<OwnedFd> {
    // Read-only is applied after the copy.
    let mnt = mounts::new_fs("tmpfs", Some("tmpfs"), data, flags & !libc::MS_RDONLY)?;
    let src = sys::openat(Some(target), c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)
        .context("open the directory to copy")?;
    let dst = sys::openat(
        Some(mnt.as_fd()),
        c".",
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
    )
    .context("open the new tmpfs")?;
    copy_dir(src.as_raw_fd(), dst.as_raw_fd()).context("copy the directory into the tmpfs")?;
    // The tmpfs root takes the directory's mode and owner.
    // SAFETY: a plain C struct, for which all-zero bytes are a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes into our stat; fchmod/fchown act on fds we own.
    if unsafe { libc::fstat(src.as_raw_fd(), &mut st) } == 0 {
        unsafe {
            libc::fchmod(dst.as_raw_fd(), st.st_mode & 0o7777);
            libc::fchown(dst.as_raw_fd(), st.st_uid, st.st_gid);
        }
    }
    mounts::attach(mnt.as_fd(), target).context("move the tmpfs into place")?;
    if flags & libc::MS_RDONLY != 0 {
        mounts::set_attr(mnt.as_fd(), mounts::MOUNT_ATTR_RDONLY, 0, false)
            .context("make the tmpfs read-only")?;
    }
    Ok(mnt)
}

/// Copies a file's data: copy_file_range, or read/write where the kernel refuses it
/// across filesystems.
fn copy_data(s: i32, d: i32) -> std::io::Result<()> {
    loop {
        let n = unsafe {
            libc::copy_file_range(s, std::ptr::null_mut(), d, std::ptr::null_mut(), 1 << 20, 0)
        };
        if n == 0 {
            return Ok(());
        }
        if n > 0 {
            continue;
        }
        let e = std::io::Error::last_os_error();
        if !matches!(
            e.raw_os_error(),
            Some(libc::EXDEV) | Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP)
        ) {
            return Err(e);
        }
        break;
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = unsafe { libc::read(s, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if n == 0 {
            return Ok(());
        }
        let mut off = 0;
        while off < n as usize {
            let w = unsafe { libc::write(d, buf[off..].as_ptr().cast(), n as usize - off) };
            if w <= 0 {
                return Err(std::io::Error::last_os_error());
            }
            off += w as usize;
        }
    }
}

/// Copies the entries of directory `src` into directory `dst` (both fds), keeping
/// modes, owners and symlinks; never follows a symlink.
fn copy_dir(src: i32, dst: i32) -> std::io::Result<()> {
    let dup = unsafe { libc::dup(src) };
    if dup < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let dir = unsafe { libc::fdopendir(dup) };
    if dir.is_null() {
        unsafe { libc::close(dup) };
        return Err(std::io::Error::last_os_error());
    }
    let result = (|| loop {
        let ent = unsafe { libc::readdir(dir) };
        if ent.is_null() {
            return Ok(());
        }
        let name = unsafe { std::ffi::CStr::from_ptr((*ent).d_name.as_ptr()) };
        if name.to_bytes() == b"." || name.to_bytes() == b".." {
            continue;
        }
        // SAFETY: a plain C struct, for which all-zero bytes are a valid value.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstatat(src, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mode = st.st_mode & 0o7777;
        match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => {
                if unsafe { libc::mkdirat(dst, name.as_ptr(), mode) } != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let s = unsafe {
                    libc::openat(
                        src,
                        name.as_ptr(),
                        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                    )
                };
                let d = unsafe {
                    libc::openat(
                        dst,
                        name.as_ptr(),
                        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                    )
                };
                if s < 0 || d < 0 {
                    let e = std::io::Error::last_os_error();
                    unsafe {
                        libc::close(s);
                        libc::close(d);
                    }
                    return Err(e);
                }
                let r = copy_dir(s, d);
                unsafe {
                    libc::fchmod(d, mode);
                    libc::close(s);
                    libc::close(d);
                }
                r?;
            }
            libc::S_IFREG => {
                let s = unsafe {
                    libc::openat(
                        src,
                        name.as_ptr(),
                        // Non-blocking: a FIFO swapped in since the fstatat (a shared
                        // volume) must not hang create; it is refused just below.
                        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK,
                    )
                };
                if s < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // SAFETY: a plain C struct, for which all-zero bytes are a valid value.
                let mut sst: libc::stat = unsafe { std::mem::zeroed() };
                // SAFETY: fstat writes into the stat we own, for an fd we just opened.
                if unsafe { libc::fstat(s, &mut sst) } != 0
                    || sst.st_mode & libc::S_IFMT != libc::S_IFREG
                {
                    // SAFETY: closes the fd opened above, used nowhere else.
                    unsafe { libc::close(s) };
                    return Err(std::io::Error::other(
                        "a regular file changed type while it was being copied",
                    ));
                }
                let d = unsafe {
                    libc::openat(
                        dst,
                        name.as_ptr(),
                        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
                        mode as libc::c_uint,
                    )
                };
                if d < 0 {
                    let e = std::io::Error::last_os_error();
                    unsafe { libc::close(s) };
                    return Err(e);
                }
                let r = copy_data(s, d);
                unsafe {
                    libc::fchmod(d, mode);
                    libc::close(s);
                    libc::close(d);
                }
                r?;
            }
            libc::S_IFLNK => {
                let mut buf = [0u8; 4096];
                let n = unsafe {
                    libc::readlinkat(src, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len() - 1)
                };
                if n < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                buf[n as usize] = 0;
                if unsafe { libc::symlinkat(buf.as_ptr().cast(), dst, name.as_ptr()) } != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            _ => {
                if unsafe { libc::mknodat(dst, name.as_ptr(), st.st_mode, st.st_rdev) } != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
        }
        unsafe {
            libc::fchownat(
                dst,
                name.as_ptr(),
                st.st_uid,
                st.st_gid,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
    })();
    unsafe { libc::closedir(dir) };
    result
}
