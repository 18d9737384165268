//! Resolving and creating paths inside a container's root filesystem without ever
//! following a symlink out of it: every lookup is openat2(RESOLVE_IN_ROOT) from an fd
//! of the root, and mounts target the resulting O_PATH fd, never a path string that
//! could be swapped after it was checked (CVE-2019-19921, CVE-2021-30465).

use crate::sys;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Makes `path` relative, dropping a leading `/` and `.` parts; `..` stays and is
/// clamped at the root by RESOLVE_IN_ROOT.
pub fn relative(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| {
            !matches!(
                c,
                Component::RootDir | Component::CurDir | Component::Prefix(_)
            )
        })
        .collect()
}

fn c(p: &Path) -> io::Result<CString> {
    let p = if p.as_os_str().is_empty() {
        Path::new(".")
    } else {
        p
    };
    sys::cstr(p)
}

/// Opens `path` inside `root` (O_PATH unless flags say otherwise).
pub fn open(root: BorrowedFd, path: &Path, flags: i32) -> io::Result<OwnedFd> {
    let rel = relative(path);
    sys::openat2(
        root,
        &c(&rel)?,
        flags,
        0,
        sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS,
    )
}

/// Opens `path` inside `root` without following a symlink in its last component.
pub fn open_nofollow(root: BorrowedFd, path: &Path) -> io::Result<OwnedFd> {
    open(root, path, libc::O_PATH | libc::O_NOFOLLOW)
}

/// mkdir -p inside `root`; returns an O_PATH fd of the final directory.
///
/// A symlink on the way (dangling ones included) is followed as if `root` were `/`,
/// and the directories it points to are created inside the root, never outside.
pub fn mkdir_all(root: BorrowedFd, path: &Path, mode: u32) -> io::Result<OwnedFd> {
    use std::collections::VecDeque;
    use std::ffi::OsString;
    let mut todo: VecDeque<OsString> = relative(path).iter().map(|c| c.to_os_string()).collect();
    let mut cur = PathBuf::new();
    let mut links = 0;
    let mut retries = 0;
    while let Some(comp) = todo.pop_front() {
        if comp == ".." {
            cur.pop();
            continue;
        }
        let cand = cur.join(&comp);
        match open(root, &cand, libc::O_PATH | libc::O_NOFOLLOW) {
            Ok(fd) => {
                // SAFETY: a plain C struct, for which all-zero bytes are a valid value.
                let mut st: libc::stat = unsafe { std::mem::zeroed() };
                if unsafe { libc::fstat(std::os::fd::AsRawFd::as_raw_fd(&fd), &mut st) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                match st.st_mode & libc::S_IFMT {
                    libc::S_IFDIR if !todo.is_empty() && on_procfs(fd.as_fd())? => {
                        // Below /proc every directory belongs to the kernel (a
                        // process's fd table, its attributes, sysctls): a mount or
                        // a directory there is never the image's to ask for, and a
                        // symlink in the image must not lead a mount into it.
                        let whole: PathBuf = cand
                            .iter()
                            .chain(todo.iter().map(|c| c.as_os_str()))
                            .collect();
                        return Err(io::Error::other(format!(
                            "the path resolves to /{}, inside /proc (/{} is a procfs directory)",
                            whole.display(),
                            cand.display()
                        )));
                    }
                    libc::S_IFDIR => cur = cand,
                    libc::S_IFLNK => {
                        if on_procfs(fd.as_fd())? {
                            // procfs links are magic (fds, other processes' roots): never walk them.
                            return Err(io::Error::other(format!(
                                "/{} is a procfs symlink: refusing to follow it inside /proc",
                                cand.display()
                            )));
                        }
                        links += 1;
                        if links > 40 {
                            return Err(io::Error::from_raw_os_error(libc::ELOOP));
                        }
                        let target = readlink_fd(fd.as_fd())?;
                        if target.is_absolute() {
                            cur = PathBuf::new();
                        }
                        for c in relative(&target).iter().rev() {
                            todo.push_front(c.to_os_string());
                        }
                    }
                    _ => return Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                let dir = open(root, &cur, libc::O_PATH | libc::O_DIRECTORY)?;
                let name = CString::new(comp.as_bytes())
                    .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
                let r = unsafe {
                    libc::mkdirat(std::os::fd::AsRawFd::as_raw_fd(&dir), name.as_ptr(), mode)
                };
                if r < 0 {
                    let e = io::Error::last_os_error();
                    if e.raw_os_error() != Some(libc::EEXIST) {
                        return Err(e);
                    }
                }
                // Look at it again: whatever is there now (even a racing symlink) is
                // resolved inside the root on the next round. Bounded, so a path the
                // kernel will never let us create (procfs magic links) cannot spin.
                retries += 1;
                if retries > 64 {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                todo.push_front(comp);
            }
            Err(e) => return Err(e),
        }
    }
    open(root, &cur, libc::O_PATH | libc::O_DIRECTORY)
}

/// Whether `fd` lies on a procfs.
pub fn on_procfs(fd: BorrowedFd) -> io::Result<bool> {
    Ok(fs_type(fd)? == libc::PROC_SUPER_MAGIC)
}

/// The filesystem magic of what `fd` refers to (fstatfs).
pub fn fs_type(fd: BorrowedFd) -> io::Result<libc::c_long> {
    // SAFETY: a plain C struct, for which all-zero bytes are a valid value.
    let mut sfs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: fstatfs writes into the statfs we own; the fd is borrowed and open.
    if unsafe { libc::fstatfs(std::os::fd::AsRawFd::as_raw_fd(&fd), &mut sfs) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sfs.f_type)
}

fn readlink_fd(fd: BorrowedFd) -> io::Result<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    let n = unsafe {
        libc::readlinkat(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            c"".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(PathBuf::from(std::ffi::OsString::from_vec(buf)))
}

/// Creates an empty regular file (and its parents) inside `root` if nothing is
/// there yet; returns an O_PATH fd of whatever the path now names.
pub fn create_file(root: BorrowedFd, path: &Path, mode: u32) -> io::Result<OwnedFd> {
    let rel = relative(path);
    if let Ok(fd) = open(root, &rel, libc::O_PATH) {
        return Ok(fd);
    }
    let parent = rel.parent().unwrap_or(Path::new(""));
    let name = rel
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let dir = mkdir_all(root, parent, 0o755)?;
    let dir = sys::openat(
        Some(dir.as_fd()),
        c".",
        libc::O_DIRECTORY | libc::O_RDONLY,
        0,
    )
    .or_else(|_| open(root, parent, libc::O_DIRECTORY | libc::O_RDONLY))?;
    let cname =
        CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    match sys::openat(
        Some(dir.as_fd()),
        &cname,
        libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW,
        mode,
    ) {
        Ok(_) => {}
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
        Err(e) => return Err(e),
    }
    open(root, &rel, libc::O_PATH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn relative_strips_root() {
        assert_eq!(relative(Path::new("/a/./b")), PathBuf::from("a/b"));
        assert_eq!(relative(Path::new("/")), PathBuf::new());
    }

    #[test]
    fn symlinks_stay_inside_root() {
        let base = std::env::temp_dir().join(format!("kraal-safe-{}", std::process::id()));
        let root = base.join("root");
        let outside = base.join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        // An absolute symlink and a ../ escape, both pointing at the host dir.
        symlink(&outside, root.join("abs")).unwrap();
        symlink("../../../../outside", root.join("rel")).unwrap();
        let rfd = OwnedFd::from(std::fs::File::open(&root).unwrap());
        mkdir_all(rfd.as_fd(), Path::new("/abs/x"), 0o755).unwrap();
        mkdir_all(rfd.as_fd(), Path::new("rel/y"), 0o755).unwrap();
        create_file(rfd.as_fd(), Path::new("/abs/f"), 0o644).unwrap();
        assert!(
            !outside.join("x").exists()
                && !outside.join("y").exists()
                && !outside.join("f").exists()
        );
        // The escapes landed inside the root instead.
        assert!(root
            .join(outside.strip_prefix("/").unwrap())
            .join("x")
            .is_dir());
        assert!(root.join("outside/y").is_dir());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
