//! Waiting for OOM kills in a container, for `events`: v1's memory controller
//! signals an eventfd registered through `cgroup.event_control` on
//! `memory.oom_control`; v2 bumps `oom_kill` in `memory.events`, which inotify
//! reports as a modification.

use super::file;
use super::resources::Placement;
use anyhow::{Context, Result};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

enum Kind {
    /// The eventfd, and `memory.oom_control` kept open while it is registered.
    V1 { efd: OwnedFd, _ctl: File },
    /// The inotify fd and the last `oom_kill` count seen.
    V2 { ino: OwnedFd, last: u64 },
}

pub struct OomWatch {
    kind: Kind,
    dir: PathBuf,
}

/// What one wake-up of the watch found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// OOM notifications since the last wake-up (one event each, as runc prints them).
    pub ooms: u32,
    /// The cgroup was removed: no more events will come.
    pub gone: bool,
}

impl OomWatch {
    /// Watches the container's memory cgroup; None without a memory controller.
    pub fn new(p: &Placement) -> Result<Option<OomWatch>> {
        if let Some(d) = p.v1("memory") {
            return Self::v1(d).map(Some);
        }
        match p.v2_dir() {
            Some(d) if file::exists(d, "memory.events") => Self::v2(d).map(Some),
            _ => Ok(None),
        }
    }

    fn v1(dir: &Path) -> Result<OomWatch> {
        let ctl_path = dir.join("memory.oom_control");
        let ctl = File::open(&ctl_path).with_context(|| format!("open {}", ctl_path.display()))?;
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context("eventfd");
        }
        let efd = unsafe { OwnedFd::from_raw_fd(fd) };
        file::write(
            dir,
            "cgroup.event_control",
            &format!("{} {}", efd.as_raw_fd(), ctl.as_raw_fd()),
        )
        .context("register for OOM notifications")?;
        Ok(OomWatch {
            kind: Kind::V1 { efd, _ctl: ctl },
            dir: dir.to_path_buf(),
        })
    }

    fn v2(dir: &Path) -> Result<OomWatch> {
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context("inotify_init1");
        }
        let ino = unsafe { OwnedFd::from_raw_fd(fd) };
        let path = dir.join("memory.events");
        let c = crate::sys::cstr(&path)?;
        let wd = unsafe { libc::inotify_add_watch(fd, c.as_ptr(), libc::IN_MODIFY) };
        if wd < 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("inotify_add_watch {}", path.display()));
        }
        let last = oom_kills(dir).unwrap_or(0);
        Ok(OomWatch {
            kind: Kind::V2 { ino, last },
            dir: dir.to_path_buf(),
        })
    }

    /// The fd to poll for readability.
    pub fn fd(&self) -> BorrowedFd<'_> {
        match &self.kind {
            Kind::V1 { efd, .. } => efd.as_fd(),
            Kind::V2 { ino, .. } => ino.as_fd(),
        }
    }

    /// Reads what woke the poll up.
    pub fn read(&mut self) -> Result<Seen> {
        match &mut self.kind {
            Kind::V1 { efd, .. } => {
                let mut buf = [0u8; 8];
                let n = unsafe { libc::read(efd.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
                if n != 8 {
                    return Err(std::io::Error::last_os_error()).context("read OOM eventfd");
                }
                // The memory controller also signals the eventfd when the cgroup goes away.
                if !self.dir.join("cgroup.event_control").exists() {
                    return Ok(Seen {
                        ooms: 0,
                        gone: true,
                    });
                }
                Ok(Seen {
                    ooms: 1,
                    gone: false,
                })
            }
            Kind::V2 { ino, last } => {
                let mut buf = [0u8; 4096];
                loop {
                    let n =
                        unsafe { libc::read(ino.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                    if n <= 0 {
                        break;
                    }
                }
                let Ok(now) = oom_kills(&self.dir) else {
                    return Ok(Seen {
                        ooms: 0,
                        gone: true,
                    });
                };
                let ooms = u32::from(now > *last);
                *last = now;
                Ok(Seen { ooms, gone: false })
            }
        }
    }
}

fn oom_kills(dir: &Path) -> Result<u64> {
    let t = file::read(dir, "memory.events")?;
    Ok(file::keyed(&t, "oom_kill").unwrap_or(0))
}
