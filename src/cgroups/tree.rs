//! Walking a container's cgroup tree by directory fds.
//!
//! Below its own cgroup directory, the tree belongs to the container whenever its
//! cgroup is writable to it (a cgroup namespace with a read-write cgroup mount, or a
//! delegated cgroup): it picks the names, the depth and the breadth. Walking that by
//! path strings fails once a path passes PATH_MAX (ENAMETOOLONG), and recursion
//! grows the stack with the depth. So each level is opened with openat(2) relative
//! to its parent's fd, control files are opened relative to the directory's fd, and
//! directories are removed with unlinkat(2) on their parent's fd, iteratively.
//!
//! At most [`MAX_OPEN`] directory fds stay open. Deeper than that, the fds of the
//! far ancestors are closed and reopened through `..` on the way back up. That is
//! sound on cgroupfs: a cgroup cannot be moved to another parent (v1 allows a rename
//! only within its parent, v2 none), the walk never climbs above the fd it started
//! from, and each reopened parent is checked against the device and inode it had.
//!
//! Paths appear only in error messages; no operation resolves them.

use anyhow::{bail, Context, Result};
use std::ffi::{CStr, CString};
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Directory fds a walk keeps open at once.
const MAX_OPEN: usize = 64;

/// The largest control file read: cgroup.procs lists at most pid_max (2^22) pids
/// of at most 7 digits and a newline each.
pub const MAX_READ: u64 = 64 << 20;

const DIR_FLAGS: i32 = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;

/// True for errors saying the cgroup went away meanwhile (removed while we walked:
/// ENOENT on lookup, ENODEV on a file of a removed kernfs node).
pub fn is_gone(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENODEV))
}

fn name_of(name: &CStr) -> &Path {
    use std::os::unix::ffi::OsStrExt;
    Path::new(std::ffi::OsStr::from_bytes(name.to_bytes()))
}

fn dev_ino(fd: BorrowedFd) -> std::io::Result<(u64, u64)> {
    // SAFETY: a plain C struct, for which all-zero bytes are a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat on an fd we hold, writing into a stat we own.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((st.st_dev, st.st_ino))
}

/// Opens the directory `name` of `dir` without following a symlink.
pub fn open_dir_at(dir: BorrowedFd, name: &CStr) -> std::io::Result<OwnedFd> {
    crate::sys::openat(Some(dir), name, DIR_FLAGS, 0)
}

/// Opens a directory by path: the top of a walk, a path kraal chose itself.
pub fn open_dir(path: &Path) -> std::io::Result<OwnedFd> {
    let c = crate::sys::cstr(path)?;
    crate::sys::openat(None, &c, DIR_FLAGS, 0)
}

/// The names of the sub-directories of `dir` (cgroups below it).
pub fn subdirs(dir: BorrowedFd) -> std::io::Result<Vec<CString>> {
    // A fresh open file description: a dup would share (and move) `dir`'s offset.
    let fd = crate::sys::openat(Some(dir), c".", DIR_FLAGS, 0)?;
    let mut d = nix::dir::Dir::from(fd).map_err(std::io::Error::from)?;
    let mut out = Vec::new();
    for e in d.iter() {
        let e = e.map_err(std::io::Error::from)?;
        let name = e.file_name();
        if name.to_bytes() == b"." || name.to_bytes() == b".." {
            continue;
        }
        let is_dir = match e.file_type() {
            Some(t) => t == nix::dir::Type::Directory,
            // No d_type from this filesystem: ask without following a symlink.
            None => {
                // SAFETY: a plain C struct, for which all-zero bytes are a valid value.
                let mut st: libc::stat = unsafe { std::mem::zeroed() };
                // SAFETY: fstatat on an fd we hold and a NUL-terminated name.
                let r = unsafe {
                    libc::fstatat(
                        dir.as_raw_fd(),
                        name.as_ptr(),
                        &mut st,
                        libc::AT_SYMLINK_NOFOLLOW,
                    )
                };
                r == 0 && st.st_mode & libc::S_IFMT == libc::S_IFDIR
            }
        };
        if is_dir {
            out.push(name.to_owned());
        }
    }
    Ok(out)
}

/// Reads the control file `name` of the directory `dir`, at most [`MAX_READ`] bytes.
pub fn read_at(dir: BorrowedFd, name: &CStr) -> std::io::Result<String> {
    let fd = crate::sys::openat(
        Some(dir),
        name,
        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        0,
    )?;
    let mut s = String::new();
    std::fs::File::from(fd)
        .take(MAX_READ + 1)
        .read_to_string(&mut s)?;
    if s.len() as u64 > MAX_READ {
        return Err(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!("longer than {MAX_READ} bytes"),
        ));
    }
    Ok(s)
}

/// Writes `value` in one write(2) to the control file `name` of the directory `dir`.
pub fn write_at(dir: BorrowedFd, name: &CStr, value: &str) -> std::io::Result<()> {
    use std::io::Write;
    let fd = crate::sys::openat(
        Some(dir),
        name,
        libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        0,
    )?;
    std::fs::File::from(fd).write_all(value.as_bytes())
}

/// One directory on the walk's stack.
struct Frame {
    /// None while closed to keep within MAX_OPEN; the top frame always has one.
    fd: Option<OwnedFd>,
    dev_ino: (u64, u64),
    /// Its name in its parent (empty for the top of the walk).
    name: CString,
    /// For messages only.
    path: PathBuf,
    /// Sub-directories not visited yet.
    todo: Vec<CString>,
}

/// What a walk does at each directory.
pub trait Visit {
    /// Called on each directory before its sub-directories, with its fd; the top
    /// one included. Err stops the walk.
    fn pre(&mut self, dir: BorrowedFd, path: &Path) -> Result<()>;
    /// Called on each directory below the top after its sub-directories, with its
    /// parent's fd and its name there.
    fn post(&mut self, _parent: BorrowedFd, _name: &CStr, _path: &Path) -> Result<()> {
        Ok(())
    }
}

/// Walks the tree at `top` depth-first; a missing `top` is an empty walk, and a
/// directory removed meanwhile is skipped with what is below it.
pub fn walk(top: &Path, v: &mut dyn Visit) -> Result<()> {
    let fd = match open_dir(top) {
        Ok(fd) => fd,
        Err(e) if is_gone(&e) => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("open cgroup {}", top.display())),
    };
    walk_fd(fd, top, v)
}

/// [`walk`] from an open directory; `path` is its name for messages.
fn walk_fd(fd: OwnedFd, path: &Path, v: &mut dyn Visit) -> Result<()> {
    let Some(first) = enter(fd, CString::default(), path.to_path_buf(), v)? else {
        return Ok(());
    };
    let mut stack = vec![first];
    loop {
        let Some(top) = stack.last_mut() else {
            return Ok(());
        };
        let Some(fd) = top.fd.as_ref() else {
            bail!("cgroup walk: {} has no open fd", top.path.display());
        };
        if let Some(name) = top.todo.pop() {
            let path = top.path.join(name_of(&name));
            let child = match open_dir_at(fd.as_fd(), &name) {
                Ok(c) => c,
                Err(e) if is_gone(&e) => continue,
                Err(e) => return Err(e).with_context(|| format!("open cgroup {}", path.display())),
            };
            if let Some(f) = enter(child, name, path, v)? {
                stack.push(f);
                if stack.len() > MAX_OPEN {
                    let far = stack.len() - 1 - MAX_OPEN;
                    stack[far].fd = None;
                }
            }
            continue;
        }
        let Some(done) = stack.pop() else {
            return Ok(());
        };
        let Some(parent) = stack.last_mut() else {
            return Ok(());
        };
        if parent.fd.is_none() {
            parent.fd = Some(reopen_parent(&done, parent)?);
        }
        let Some(pfd) = parent.fd.as_ref() else {
            bail!("cgroup walk: {} has no open fd", parent.path.display());
        };
        v.post(pfd.as_fd(), &done.name, &done.path)?;
    }
}

/// Visits a directory just opened and lists what is below it; None when it was
/// removed meanwhile.
fn enter(fd: OwnedFd, name: CString, path: PathBuf, v: &mut dyn Visit) -> Result<Option<Frame>> {
    let dev_ino = dev_ino(fd.as_fd()).with_context(|| format!("stat cgroup {}", path.display()))?;
    v.pre(fd.as_fd(), &path)?;
    let todo = match subdirs(fd.as_fd()) {
        Ok(t) => t,
        Err(e) if is_gone(&e) => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("list cgroup {}", path.display())),
    };
    Ok(Some(Frame {
        fd: Some(fd),
        dev_ino,
        name,
        path,
        todo,
    }))
}

/// Reopens `parent` (closed to stay within MAX_OPEN) as `..` of its child `done`,
/// and checks it is the same directory it was.
fn reopen_parent(done: &Frame, parent: &Frame) -> Result<OwnedFd> {
    let Some(cfd) = done.fd.as_ref() else {
        bail!("cgroup walk: {} has no open fd", done.path.display());
    };
    let p = open_dir_at(cfd.as_fd(), c"..")
        .with_context(|| format!("reopen cgroup {}", parent.path.display()))?;
    let now =
        dev_ino(p.as_fd()).with_context(|| format!("stat cgroup {}", parent.path.display()))?;
    if now != parent.dev_ino {
        bail!(
            "cgroup {} is no longer the parent of {}",
            parent.path.display(),
            done.path.display()
        );
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    struct Record {
        pre: Vec<PathBuf>,
        post: Vec<PathBuf>,
    }

    impl Visit for Record {
        fn pre(&mut self, _dir: BorrowedFd, path: &Path) -> Result<()> {
            self.pre.push(path.to_path_buf());
            Ok(())
        }
        fn post(&mut self, parent: BorrowedFd, name: &CStr, path: &Path) -> Result<()> {
            // SAFETY: unlinkat on an fd we hold and a NUL-terminated name.
            if unsafe { libc::unlinkat(parent.as_raw_fd(), name.as_ptr(), libc::AT_REMOVEDIR) } != 0
            {
                return Err(std::io::Error::last_os_error())
                    .with_context(|| format!("rmdir {}", path.display()));
            }
            self.post.push(path.to_path_buf());
            Ok(())
        }
    }

    /// A chain deeper than MAX_OPEN and longer than PATH_MAX, plus a sibling: every
    /// directory is visited before its children and removed after them, through the
    /// reopened parents.
    #[test]
    fn deep_long_tree_by_fds() {
        let top = std::env::temp_dir().join(format!("kraal-tree-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&top);
        fs::create_dir_all(top.join("side")).unwrap();
        // A file is no cgroup: never visited, and the top is never removed.
        fs::write(top.join("file"), "").unwrap();
        let long = "x".repeat(200);
        let depth = MAX_OPEN * 2 + 3;
        let mut fd = open_dir(&top).unwrap();
        for _ in 0..depth {
            let n = CString::new(long.clone()).unwrap();
            // SAFETY: mkdirat on an fd we hold and a NUL-terminated name.
            assert_eq!(
                unsafe { libc::mkdirat(fd.as_raw_fd(), n.as_ptr(), 0o755) },
                0
            );
            fd = open_dir_at(fd.as_fd(), &n).unwrap();
        }
        let mut r = Record {
            pre: Vec::new(),
            post: Vec::new(),
        };
        walk(&top, &mut r).unwrap();
        assert_eq!(r.pre.len(), depth + 2);
        assert_eq!(r.pre[0], top);
        assert!(r.pre.iter().any(|p| p.as_os_str().len() > 4096));
        // Post-order: the deepest first, each child before its parent.
        assert_eq!(r.post.len(), depth + 1);
        let chain: Vec<&PathBuf> = r.post.iter().filter(|p| !p.ends_with("side")).collect();
        for w in chain.windows(2) {
            assert!(w[0].starts_with(w[1]), "{:?} before {:?}", w[0], w[1]);
        }
        assert_eq!(fs::read_dir(&top).unwrap().count(), 1);
        fs::remove_dir_all(&top).unwrap();
        // A missing top is an empty walk.
        walk(&top, &mut r).unwrap();
    }
}
