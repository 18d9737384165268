//! Starting the init: one clone3 that creates the new namespaces, then the child
//! runs `init::run` and never returns here.

use super::init::{self, Plan};
use super::sync::Channel;
use crate::sys;
use anyhow::{Context, Result};
use std::os::fd::RawFd;

/// Forks the init. `close_in_child` are runtime fds the init must not hold (the
/// state directory lock: a flock lives as long as any copy of its fd).
///
/// `cgroup_v2`: the container's cgroup2 directory, entered by the clone itself
/// (CLONE_INTO_CGROUP): no migration afterwards. Returns whether that worked, so the
/// caller can place the child itself on kernels that refuse it.
pub fn spawn(
    plan: &Plan,
    close_in_child: &[RawFd],
    cgroup_v2: Option<std::os::fd::BorrowedFd>,
) -> Result<(libc::pid_t, Channel, bool)> {
    let (parent, child) = Channel::pair().context("create sync socketpair")?;
    let (pid, placed) = match sys::clone3(plan.ns.clone_flags, cgroup_v2) {
        Ok(pid) => (pid, cgroup_v2.is_some()),
        Err(_) if cgroup_v2.is_some() => (
            sys::clone3(plan.ns.clone_flags, None).context("clone3 the container init")?,
            false,
        ),
        Err(e) => return Err(e).context("clone3 the container init"),
    };
    if pid == 0 {
        drop(parent);
        for fd in close_in_child {
            unsafe { libc::close(*fd) };
        }
        init::run(plan, &child);
    }
    drop(child);
    Ok((pid, parent, placed))
}
