//! Which namespaces a container gets and how: created by clone3, unshared by the
//! child, or joined by path with setns, in an order the kernel accepts.
//!
//! The plan is computed in the runtime process (paths opened there, so a bad path
//! fails before anything starts); the child only executes it.

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

pub fn flag(t: LinuxNamespaceType) -> i32 {
    match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => libc::CLONE_NEWTIME,
    }
}

pub fn name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Time => "time",
    }
}

/// A namespace to join, opened by the runtime before the fork.
pub struct Join {
    pub flag: i32,
    pub fd: OwnedFd,
}

/// What the child does, step by step, to end up in the container's namespaces.
#[derive(Default)]
pub struct Plan {
    /// New namespaces created by clone3 itself.
    pub clone_flags: u64,
    /// A user namespace joined by path; must come before everything else.
    pub join_user: Option<Join>,
    /// New namespaces the child unshares after joining `join_user` (they must be
    /// owned by that user namespace, so clone3 cannot create them).
    pub unshare_after_user: i32,
    /// Other namespaces joined by path.
    pub join: Vec<Join>,
    /// New cgroup namespace: unshared after the runtime placed the child in its cgroup,
    /// so the namespace's root is the container's cgroup.
    pub new_cgroupns: bool,
    /// New time namespace: unshared by the child, offsets written, entered at exec.
    pub new_timens: bool,
    pub time_offsets: String,
    /// The namespaces only apply to children (pid joined, or pid new after a joined
    /// user namespace): the child forks once more and the grandchild is the init.
    pub extra_fork: bool,
    pub new_userns: bool,
    pub new_pidns: bool,
    pub new_netns: bool,
    pub new_mntns: bool,
    pub new_utsns: bool,
    pub new_ipcns: bool,
}

impl Plan {
    pub fn from_spec(spec: &Spec) -> Result<Plan> {
        let mut p = Plan::default();
        let nss = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default();
        let user_joined = nss.iter().any(|n| {
            n.typ() == LinuxNamespaceType::User
                && n.path().as_ref().is_some_and(|p| !p.as_os_str().is_empty())
        });
        for (i, ns) in nss.iter().enumerate() {
            let t = ns.typ();
            let f = flag(t);
            // An empty path means "create", as runc reads it.
            if let Some(path) = ns.path().as_ref().filter(|p| !p.as_os_str().is_empty()) {
                let file = std::fs::File::open(path).with_context(|| {
                    format!(
                        "linux.namespaces[{i}] ({}): open {}",
                        name(t),
                        path.display()
                    )
                })?;
                let j = Join {
                    flag: f,
                    fd: OwnedFd::from(file),
                };
                match t {
                    LinuxNamespaceType::User => p.join_user = Some(j),
                    LinuxNamespaceType::Pid => {
                        p.extra_fork = true;
                        p.join.push(j)
                    }
                    _ => p.join.push(j),
                }
                continue;
            }
            match t {
                LinuxNamespaceType::Cgroup => p.new_cgroupns = true,
                LinuxNamespaceType::Time => p.new_timens = true,
                _ if user_joined => {
                    p.unshare_after_user |= f;
                    if t == LinuxNamespaceType::Pid {
                        p.extra_fork = true;
                    }
                }
                _ => p.clone_flags |= f as u64,
            }
            match t {
                LinuxNamespaceType::User => p.new_userns = true,
                LinuxNamespaceType::Pid => p.new_pidns = true,
                LinuxNamespaceType::Network => p.new_netns = true,
                LinuxNamespaceType::Mount => p.new_mntns = true,
                LinuxNamespaceType::Uts => p.new_utsns = true,
                LinuxNamespaceType::Ipc => p.new_ipcns = true,
                _ => {}
            }
        }
        if let Some(offsets) = spec.linux().as_ref().and_then(|l| l.time_offsets().clone()) {
            if !p.new_timens {
                bail!("linux.timeOffsets: requires a new time namespace");
            }
            let mut keys: Vec<_> = offsets.keys().collect();
            keys.sort();
            for k in keys {
                let o = &offsets[k];
                let clock = match k.as_str() {
                    "monotonic" | "boottime" => k.as_str(),
                    other => {
                        bail!("linux.timeOffsets: unknown clock {other:?} (monotonic or boottime)")
                    }
                };
                p.time_offsets.push_str(&format!(
                    "{clock} {} {}\n",
                    o.secs().unwrap_or(0),
                    o.nanosecs().unwrap_or(0)
                ));
            }
        }
        Ok(p)
    }

    /// True when the container shares the runtime's mount namespace: then kraal must
    /// not touch mounts at all (runc refuses rootfs setup without a mount namespace).
    pub fn has_mntns(&self) -> bool {
        self.new_mntns || self.join.iter().any(|j| j.flag == libc::CLONE_NEWNS)
    }
}

/// The seam between namespace ordering and the kernel, so ordering is testable.
pub trait NsOps {
    fn setns(&mut self, fd: std::os::fd::BorrowedFd, flag: i32) -> std::io::Result<()>;
    fn unshare(&mut self, flags: i32) -> std::io::Result<()>;
    /// Drops the supplementary groups (setgroups with an empty list).
    fn drop_groups(&mut self) -> std::io::Result<()>;
    fn write_time_offsets(&mut self, offsets: &str) -> std::io::Result<()>;
    /// Moves the caller into the time namespace its children would get.
    fn enter_time_for_children(&mut self) -> std::io::Result<()>;
}

/// The real kernel. `offsets` is /proc/self/timens_offsets opened while the child
/// is still dumpable and in the runtime's user namespace: the kernel checks
/// CAP_SYS_TIME against the opener's credentials, and a non-dumpable process in a
/// new user namespace may not open its own /proc files at all.
pub struct Kernel {
    offsets: Option<OwnedFd>,
}

impl Kernel {
    pub fn new(plan: &Plan) -> Result<Kernel> {
        let offsets = if plan.new_timens && !plan.time_offsets.is_empty() {
            Some(
                crate::sys::openat(None, c"/proc/self/timens_offsets", libc::O_WRONLY, 0)
                    .context("open /proc/self/timens_offsets")?,
            )
        } else {
            None
        };
        Ok(Kernel { offsets })
    }
}

impl NsOps for Kernel {
    fn setns(&mut self, fd: std::os::fd::BorrowedFd, flag: i32) -> std::io::Result<()> {
        crate::sys::setns(fd, flag)
    }
    fn unshare(&mut self, flags: i32) -> std::io::Result<()> {
        crate::sys::unshare(flags)
    }
    fn drop_groups(&mut self) -> std::io::Result<()> {
        // SAFETY: setgroups(2) with a zero-length list reads no memory.
        if unsafe { libc::setgroups(0, std::ptr::null()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
    fn write_time_offsets(&mut self, offsets: &str) -> std::io::Result<()> {
        let Some(fd) = &self.offsets else {
            return Err(std::io::Error::from_raw_os_error(libc::EBADF));
        };
        // All offsets in one write: the kernel accepts them only before the first
        // process enters the namespace, and only as a whole.
        let n = unsafe { libc::write(fd.as_raw_fd(), offsets.as_ptr().cast(), offsets.len()) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
    fn enter_time_for_children(&mut self) -> std::io::Result<()> {
        let fd = crate::sys::openat(None, c"/proc/self/ns/time_for_children", libc::O_RDONLY, 0)?;
        crate::sys::setns(fd.as_fd(), libc::CLONE_NEWTIME)
    }
}

fn ns_label(flag: i32) -> &'static str {
    match flag {
        libc::CLONE_NEWNS => "mount",
        libc::CLONE_NEWCGROUP => "cgroup",
        libc::CLONE_NEWUTS => "uts",
        libc::CLONE_NEWIPC => "ipc",
        libc::CLONE_NEWUSER => "user",
        libc::CLONE_NEWPID => "pid",
        libc::CLONE_NEWNET => "network",
        libc::CLONE_NEWTIME => "time",
        _ => "namespaces",
    }
}

/// Child side, before the runtime has placed it in its cgroup: user namespace first
/// (joining others needs privileges there), then the namespaces it owns.
pub fn enter_user(plan: &Plan, ops: &mut dyn NsOps) -> Result<()> {
    if let Some(u) = &plan.join_user {
        // The runtime's supplementary groups go while the host user namespace still
        // lets us: in a joined namespace whose setgroups is "deny" they could not be
        // dropped any more. A rootless runtime cannot drop its own; they stay.
        let _ = ops.drop_groups();
        ops.setns(u.fd.as_fd(), libc::CLONE_NEWUSER)
            .context("setns user namespace")?;
        if plan.unshare_after_user != 0 {
            ops.unshare(plan.unshare_after_user)
                .context("unshare namespaces inside the joined user namespace")?;
        }
    }
    Ok(())
}

/// Child side, after the runtime placed it in its cgroup: join the remaining
/// namespaces, then create the cgroup and time namespaces.
pub fn enter_rest(plan: &Plan, ops: &mut dyn NsOps) -> Result<()> {
    for j in &plan.join {
        ops.setns(j.fd.as_fd(), j.flag)
            .with_context(|| format!("setns {} namespace", ns_label(j.flag)))?;
    }
    if plan.new_cgroupns {
        ops.unshare(libc::CLONE_NEWCGROUP)
            .context("unshare cgroup namespace")?;
    }
    if plan.new_timens {
        ops.unshare(libc::CLONE_NEWTIME)
            .context("unshare time namespace")?;
        if !plan.time_offsets.is_empty() {
            ops.write_time_offsets(&plan.time_offsets)
                .context("write /proc/self/timens_offsets")?;
        }
        // unshare(CLONE_NEWTIME) only prepares the namespace for children; execve
        // enters it on newer kernels but not on 6.1, so the init joins it itself
        // (setns switches a single-threaded caller at once).
        ops.enter_time_for_children()
            .context("enter the new time namespace")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Fake {
        calls: Vec<String>,
    }
    impl NsOps for Fake {
        fn setns(&mut self, _fd: std::os::fd::BorrowedFd, flag: i32) -> std::io::Result<()> {
            self.calls.push(format!("setns {}", ns_label(flag)));
            Ok(())
        }
        fn unshare(&mut self, flags: i32) -> std::io::Result<()> {
            self.calls.push(format!("unshare {flags:#x}"));
            Ok(())
        }
        fn drop_groups(&mut self) -> std::io::Result<()> {
            self.calls.push("setgroups []".to_string());
            Ok(())
        }
        fn write_time_offsets(&mut self, o: &str) -> std::io::Result<()> {
            self.calls.push(format!("offsets {o:?}"));
            Ok(())
        }
        fn enter_time_for_children(&mut self) -> std::io::Result<()> {
            self.calls.push("enter time_for_children".to_string());
            Ok(())
        }
    }

    fn spec(nss: &str, extra: &str) -> Spec {
        let j = format!(r#"{{"ociVersion":"1.3.0","linux":{{"namespaces":{nss}{extra}}}}}"#);
        serde_json::from_str(&j).unwrap()
    }

    #[test]
    fn all_new_go_into_clone_except_cgroup_and_time() {
        let s = spec(
            r#"[{"type":"pid"},{"type":"network"},{"type":"mount"},{"type":"cgroup"},{"type":"time"},{"type":"uts"},{"type":"ipc"}]"#,
            r#","timeOffsets":{"monotonic":{"secs":10,"nanosecs":5},"boottime":{"secs":-3}}"#,
        );
        let p = Plan::from_spec(&s).unwrap();
        let want = (libc::CLONE_NEWPID
            | libc::CLONE_NEWNET
            | libc::CLONE_NEWNS
            | libc::CLONE_NEWUTS
            | libc::CLONE_NEWIPC) as u64;
        assert_eq!(p.clone_flags, want);
        assert!(!p.extra_fork);
        let mut f = Fake::default();
        enter_user(&p, &mut f).unwrap();
        enter_rest(&p, &mut f).unwrap();
        assert_eq!(
            f.calls,
            vec![
                format!("unshare {:#x}", libc::CLONE_NEWCGROUP),
                format!("unshare {:#x}", libc::CLONE_NEWTIME),
                "offsets \"boottime -3 0\\nmonotonic 10 5\\n\"".to_string(),
                "enter time_for_children".to_string(),
            ]
        );
    }

    #[test]
    fn joined_user_namespace_comes_first_and_owns_the_new_ones() {
        let s = spec(
            r#"[{"type":"pid"},{"type":"user","path":"/proc/self/ns/user"},{"type":"network","path":"/proc/self/ns/net"},{"type":"mount"}]"#,
            "",
        );
        let p = Plan::from_spec(&s).unwrap();
        assert_eq!(p.clone_flags, 0);
        assert!(
            p.extra_fork,
            "a new pid namespace after setns(user) needs a fork"
        );
        let mut f = Fake::default();
        enter_user(&p, &mut f).unwrap();
        enter_rest(&p, &mut f).unwrap();
        // The runtime's groups are dropped before the joined user namespace could
        // keep them (setgroups "deny" there).
        assert_eq!(
            f.calls,
            vec![
                "setgroups []".to_string(),
                "setns user".to_string(),
                format!("unshare {:#x}", libc::CLONE_NEWPID | libc::CLONE_NEWNS),
                "setns network".to_string(),
            ]
        );
    }

    #[test]
    fn bad_path_and_offsets_without_timens_fail_naming_the_field() {
        let s = spec(r#"[{"type":"network","path":"/nonexistent/ns"}]"#, "");
        let e = Plan::from_spec(&s).err().unwrap();
        assert!(format!("{e:#}").contains("linux.namespaces[0] (network): open /nonexistent/ns"));
        let s = spec(
            r#"[{"type":"pid"}]"#,
            r#","timeOffsets":{"monotonic":{"secs":1}}"#,
        );
        let e = Plan::from_spec(&s).err().unwrap();
        assert!(e.to_string().contains("linux.timeOffsets"));
    }
}
