//! `kraal exec`: a new process in a running container. It joins every namespace of
//! the container's init (user first) and its cgroups, then becomes the configured
//! process exactly as the init does (process::finish), and kraal waits for it.

use crate::process::finish::{self, Process};
use crate::process::sync::{Channel, Msg};
use crate::state::{self, Dir, Status};
use crate::sys;
use crate::tty;
use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::{Capability, LinuxNamespaceType, Spec};
use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Default)]
pub struct ExecOpts {
    pub id: String,
    pub process_file: Option<PathBuf>,
    pub args: Vec<String>,
    pub tty: bool,
    pub cwd: Option<PathBuf>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub caps: Vec<String>,
    /// `--no-new-privs[=BOOL]`: None keeps the container's setting.
    pub no_new_privs: Option<bool>,
    pub apparmor: Option<String>,
    pub process_label: Option<String>,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: u32,
    pub ignore_paused: bool,
    pub cgroup: Vec<String>,
}

/// The process to run: process.json as given, or the container's process with
/// the command-line overrides, as runc builds it.
pub fn build_process(
    base: Option<&oci_spec::runtime::Process>,
    o: &ExecOpts,
) -> Result<oci_spec::runtime::Process> {
    if let Some(f) = &o.process_file {
        let data = std::fs::read(f).with_context(|| format!("--process {}", f.display()))?;
        let de = &mut serde_json::Deserializer::from_slice(&data);
        let p: oci_spec::runtime::Process = serde_path_to_error::deserialize(de)
            .map_err(|e| anyhow!("--process {}: {}: {}", f.display(), e.path(), e.inner()))?;
        return Ok(p);
    }
    if o.args.is_empty() {
        bail!("exec: a command is required (or --process FILE)");
    }
    let mut p = base.cloned().unwrap_or_default();
    p.set_args(Some(o.args.clone()));
    p.set_terminal(Some(o.tty));
    if let Some(c) = &o.cwd {
        p.set_cwd(c.clone());
    }
    if !o.env.is_empty() {
        let mut env = p.env().clone().unwrap_or_default();
        for e in &o.env {
            let key = e.split_once('=').map(|(k, _)| k).unwrap_or(e);
            env.retain(|x| x.split_once('=').map(|(k, _)| k).unwrap_or(x) != key);
            env.push(e.clone());
        }
        p.set_env(Some(env));
    }
    if let Some(u) = &o.user {
        let (uid, gid) = match u.split_once(':') {
            Some((a, b)) => (a, Some(b)),
            None => (u.as_str(), None),
        };
        let uid: u32 = uid
            .parse()
            .map_err(|_| anyhow!("--user {u:?}: uid must be numeric (uid[:gid])"))?;
        let mut user = p.user().clone();
        user.set_uid(uid);
        if let Some(g) = gid {
            user.set_gid(
                g.parse()
                    .map_err(|_| anyhow!("--user {u:?}: gid must be numeric"))?,
            );
        }
        p.set_user(user);
    }
    // As runc: -g adds to the container's additional gids.
    if !o.additional_gids.is_empty() {
        let mut user = p.user().clone();
        let mut gids = user.additional_gids().clone().unwrap_or_default();
        gids.extend(&o.additional_gids);
        user.set_additional_gids(Some(gids));
        p.set_user(user);
    }
    if let Some(a) = o.apparmor.as_ref().filter(|a| !a.is_empty()) {
        p.set_apparmor_profile(Some(a.clone()));
    }
    if let Some(l) = o.process_label.as_ref().filter(|l| !l.is_empty()) {
        p.set_selinux_label(Some(l.clone()));
    }
    if !o.caps.is_empty() {
        let mut c = p.capabilities().clone().unwrap_or_default();
        for name in &o.caps {
            let full = if name.to_ascii_uppercase().starts_with("CAP_") {
                name.to_ascii_uppercase()
            } else {
                format!("CAP_{}", name.to_ascii_uppercase())
            };
            let cap: Capability = serde_json::from_value(serde_json::Value::String(full))
                .map_err(|_| anyhow!("--cap {name:?}: unknown capability"))?;
            // runc also adds it to the ambient set when the process has an
            // inheritable set; the kernel raises an ambient capability only when it
            // is inheritable too (runc warns and goes on otherwise), so it is added
            // exactly then: the process ends up with the capabilities runc gives it.
            if c.inheritable().as_ref().is_some_and(|i| i.contains(&cap)) {
                let mut a = c.ambient().clone().unwrap_or_default();
                a.insert(cap);
                c.set_ambient(Some(a));
            }
            for set in [
                c.bounding().clone(),
                c.effective().clone(),
                c.permitted().clone(),
            ]
            .iter()
            .enumerate()
            {
                let mut s = set.1.clone().unwrap_or_default();
                s.insert(cap);
                match set.0 {
                    0 => c.set_bounding(Some(s)),
                    1 => c.set_effective(Some(s)),
                    _ => c.set_permitted(Some(s)),
                };
            }
        }
        p.set_capabilities(Some(c));
    }
    if let Some(nnp) = o.no_new_privs {
        p.set_no_new_privileges(Some(nnp));
    }
    Ok(p)
}

fn ns_file(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

struct Plan {
    user_ns: Option<OwnedFd>,
    /// The init's root directory (/proc/<init>/root, opened from the host's procfs):
    /// the exec process ends up there whatever namespaces the container has.
    root: OwnedFd,
    others: Vec<(i32, OwnedFd)>,
    process: Process,
    console_socket: Option<RawFd>,
}

/// Runs the process; returns its exit code (0 with --detach).
pub fn exec(root: &Path, o: &ExecOpts) -> Result<i32> {
    // First, as runc does, before kraal opens anything more.
    check_preserved_fds(o.preserve_fds)?;
    let dir = Dir::open(root, &o.id)?;
    let saved = dir
        .load()?
        .ok_or_else(|| anyhow!("container {:?} is still being created", o.id))?;
    match dir.status(Some(&saved)) {
        Status::Running | Status::Created => {}
        Status::Paused if o.ignore_paused => {}
        Status::Paused => {
            bail!("cannot exec in a paused container (use --ignore-paused to override)")
        }
        Status::Stopped => bail!("cannot exec in a stopped container"),
        Status::Creating => bail!("cannot exec in a container that is still being created"),
    }
    let spec: Spec = saved.config.clone().unwrap_or_default();
    let proc_spec = build_process(spec.process().as_ref(), o)?;
    crate::validate::check_process(&proc_spec).context("exec process")?;
    let mut process = Process::from_spec(&proc_spec, 3 + o.preserve_fds, &[])?;
    if let Some(s) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        process.seccomp = Some(crate::seccomp::compile(s)?);
    }
    tty::check_flags(process.terminal, o.detach, o.console_socket.is_some())?;

    // The init's namespaces, opened now and pinned by fd; then make sure the pid
    // still names the init (not a reused pid).
    // Without a mount namespace (or with --no-pivot) the init is only chrooted into
    // the rootfs: joining its namespaces alone would leave the exec process in the
    // host's root. Its root directory is pinned here, before the pid is checked.
    let root_path = format!("/proc/{}/root", saved.pid);
    let root_c = std::ffi::CString::new(root_path.clone()).context("init root path")?;
    let init_root = sys::openat(None, &root_c, libc::O_PATH | libc::O_DIRECTORY, 0)
        .with_context(|| format!("open the init's root {root_path}"))?;
    let mut plan = Plan {
        root: init_root,
        user_ns: None,
        others: Vec::new(),
        process,
        console_socket: None,
    };
    let nss = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    for ns in &nss {
        let t = ns.typ();
        let path = format!("/proc/{}/ns/{}", saved.pid, ns_file(t));
        let fd = OwnedFd::from(std::fs::File::open(&path).with_context(|| format!("open {path}"))?);
        if t == LinuxNamespaceType::User {
            plan.user_ns = Some(fd);
        } else {
            plan.others.push((crate::namespaces::flag(t), fd));
        }
    }
    // Join the mount namespace last: setns into it changes root and cwd.
    plan.others.sort_by_key(|(f, _)| *f == libc::CLONE_NEWNS);
    if !state::process_alive(saved.pid, saved.init_start) {
        bail!("container {:?} is not running", o.id);
    }
    let subs = sub_cgroup_paths(&o.cgroup)?;
    let hier = if subs.is_empty() {
        Vec::new()
    } else {
        crate::cgroups::hierarchies()?
    };
    let cgroup_dirs = exec_cgroups(&saved.cgroup_dirs, &hier, &subs)?;
    let console = match &o.console_socket {
        Some(p) if plan.process.terminal => Some(tty::connect_console_socket(p)?),
        _ => None,
    };
    plan.console_socket = console.as_ref().map(|c| c.as_raw_fd());
    drop(dir);

    let mut old_mask: libc::sigset_t = unsafe { std::mem::zeroed() };
    if !o.detach {
        let set = crate::signals::forwarded();
        unsafe {
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
            libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old_mask);
        }
    }
    let (parent, child) = Channel::pair().context("create sync socketpair")?;
    let mut pid = sys::clone3(0, None).context("fork the exec process")?;
    if pid == 0 {
        drop(parent);
        run_child(&plan, &child);
    }
    drop(child);
    drop(console);
    let r = (|| -> Result<Option<OwnedFd>> {
        for (d, explicit) in &cgroup_dirs {
            join_cgroup(d, pid, saved.pid, *explicit)?;
        }
        parent.send(&Msg::Go).context("sync: send Go")?;
        let mut pty = None;
        loop {
            match parent.recv().context("sync: wait for the exec process")? {
                Some(Msg::Pid(p)) => {
                    let mut st = 0;
                    unsafe { libc::waitpid(pid, &mut st, 0) };
                    pid = p;
                    parent.send(&Msg::Go).context("sync: send Go")?;
                }
                Some(Msg::Pty) => pty = parent.take_fd(),
                Some(Msg::Seccomp) => {
                    let st = crate::hooks::state_json(
                        &saved.oci_version,
                        &o.id,
                        "running",
                        saved.pid,
                        &saved.bundle,
                        &saved.annotations,
                    );
                    hand_over_listener(plan.process.seccomp.as_ref(), parent.take_fd(), pid, &st)?;
                }
                Some(Msg::Ready) => return Ok(pty),
                Some(Msg::Error(e)) => bail!(e),
                Some(m) => bail!("sync: unexpected message {m:?}"),
                None => bail!("the exec process exited during setup"),
            }
        }
    })();
    let pty = match r {
        Ok(p) => p,
        Err(e) => {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let mut st = 0;
            unsafe { libc::waitpid(pid, &mut st, 0) };
            return Err(e);
        }
    };
    if let Some(pf) = &o.pid_file {
        state::write_atomic(pf, pid.to_string().as_bytes(), 0o644)
            .with_context(|| format!("--pid-file {}", pf.display()))?;
    }
    if o.detach {
        return Ok(0);
    }
    let code = crate::container::wait_forwarding(pid, pty.map(tty::Proxy::new));
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, &old_mask, std::ptr::null_mut()) };
    Ok(code)
}

/// Gives a seccomp notify listener to the agent at `listenerPath`, with the
/// container-process state the runtime spec describes.
pub fn hand_over_listener(
    filter: Option<&crate::seccomp::Filter>,
    fd: Option<OwnedFd>,
    pid: i32,
    state: &[u8],
) -> Result<()> {
    let (Some(f), Some(fd)) = (filter, fd) else {
        bail!("sync: seccomp listener expected but missing")
    };
    let Some(l) = f.listener() else {
        bail!("linux.seccomp: a listener fd arrived without listenerPath")
    };
    let ps = crate::seccomp::process_state(pid, l.metadata.as_deref(), state)?;
    crate::seccomp::send_listener(&l.path, fd.as_fd(), &ps)
        .with_context(|| format!("linux.seccomp.listenerPath {}", l.path.display()))
}

/// Puts the exec process in `dir` (one of the container's cgroup dirs).
///
/// On cgroup v2 a container may manage its own subtree: systemd as its init moves
/// itself to `init.scope` and then enables controllers in the container's cgroup,
/// which from then on takes no processes (EBUSY). An exec process joins the init's
/// cgroup when the init has moved below the container's: joining the container's
/// cgroup in the window before systemd enables its controllers would make that fail,
/// silently leaving the container's units without memory or pids control. runc tries
/// the container's cgroup first and falls back on EBUSY; kraal does the same when
/// `--cgroup` names a sub-cgroup explicitly.
fn join_cgroup(dir: &Path, pid: i32, init_pid: i32, explicit: bool) -> Result<()> {
    let pid_text = pid.to_string();
    if !explicit {
        if let Some(alt) = init_v2_cgroup(dir, init_pid)? {
            return crate::sys::write_file(&alt.join("cgroup.procs"), pid_text.as_bytes())
                .with_context(|| format!("join the init's cgroup {}", alt.display()));
        }
    }
    match crate::sys::write_file(&dir.join("cgroup.procs"), pid_text.as_bytes()) {
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
            let alt = init_v2_cgroup(dir, init_pid)?
                .ok_or_else(|| anyhow::anyhow!("join cgroup {}: {e}", dir.display()))?;
            crate::sys::write_file(&alt.join("cgroup.procs"), pid_text.as_bytes())
                .with_context(|| format!("join the init's cgroup {}", alt.display()))
        }
        r => r.with_context(|| format!("join cgroup {}", dir.display())),
    }
}

/// The cgroup2 directory the init is in now when that is strictly below `dir` (the
/// container's cgroup); None when `dir` is a v1 directory or the init is in `dir`.
fn init_v2_cgroup(dir: &Path, init_pid: i32) -> Result<Option<PathBuf>> {
    let c = crate::sys::cstr(dir)?;
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: statfs(2) fills the struct it is given.
    if unsafe { libc::statfs(c.as_ptr(), &mut fs) } != 0 || fs.f_type != libc::CGROUP2_SUPER_MAGIC {
        return Ok(None);
    }
    let text = std::fs::read_to_string(format!("/proc/{init_pid}/cgroup"))
        .with_context(|| format!("read /proc/{init_pid}/cgroup"))?;
    let Some(rel) = text.lines().find_map(|l| l.strip_prefix("0::")) else {
        return Ok(None);
    };
    // The init's path is relative to the hierarchy's root, which is one of `dir`'s
    // ancestors (the mount point); it names a cgroup below `dir` only through it.
    // Shallowest first: the mount point comes before any deeper look-alike.
    let rel = Path::new(rel.trim_start_matches('/'));
    let ancestors: Vec<&Path> = dir.ancestors().collect();
    Ok(ancestors
        .into_iter()
        .rev()
        .map(|m| m.join(rel))
        .find(|cand| cand != dir && cand.starts_with(dir) && cand.is_dir()))
}

/// `--preserve-fds N`: fds 3 to 3+N-1 must be open (runc: "unable to stat
/// preserved-fd").
fn check_preserved_fds(n: u32) -> Result<()> {
    for i in 0..n {
        let fd = 3 + i as RawFd;
        // SAFETY: F_GETFD only asks whether the descriptor exists.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            let e = std::io::Error::last_os_error();
            bail!("--preserve-fds {n}: preserved fd {fd} ({i} of {n}) is not open: {e}");
        }
    }
    Ok(())
}

/// runc's `--cgroup` arguments: one plain `path` (every hierarchy; the cgroup v2
/// form), or `controller[,controller]:path` entries (cgroup v1, per controller).
/// Returns controller -> path, with "" for the plain form.
fn sub_cgroup_paths(args: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for a in args {
        match a.split_once(':') {
            Some((ctrls, path)) => {
                for c in ctrls.split(',') {
                    if c.is_empty() {
                        bail!("--cgroup {a:?}: empty controller name before ':'");
                    }
                    if out.insert(c.to_string(), path.to_string()).is_some() {
                        bail!("--cgroup: controller {c} given more than once");
                    }
                }
            }
            None => {
                if args.len() != 1 {
                    bail!("--cgroup {a:?}: a controller: prefix is needed when --cgroup is given more than once");
                }
                out.insert(String::new(), a.clone());
            }
        }
    }
    Ok(out)
}

/// The cgroup dirs the exec process joins, each with whether a sub-cgroup was asked
/// for: the container's, or sub-cgroups of it as `subs` (from `sub_cgroup_paths`)
/// says. As runc: the plain form applies to every hierarchy; `controller:path`
/// applies to the v1 hierarchy of that controller (a controller the container has
/// no hierarchy for is an error), and on a cgroup2 hierarchy only the plain form
/// counts. `hier` is needed only when `subs` is not empty.
fn exec_cgroups(
    dirs: &[PathBuf],
    hier: &[crate::cgroups::Hierarchy],
    subs: &BTreeMap<String, String>,
) -> Result<Vec<(PathBuf, bool)>> {
    if subs.is_empty() {
        return Ok(dirs.iter().map(|d| (d.clone(), false)).collect());
    }
    let mut used = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for d in dirs {
        // The hierarchy `d` belongs to: the deepest mount point above it.
        let h = hier
            .iter()
            .filter(|h| d.starts_with(&h.mountpoint))
            .max_by_key(|h| h.mountpoint.components().count());
        let mut sub = subs.get("").map(|s| ("", s.as_str()));
        if let Some(h) = h.filter(|h| !h.v2) {
            for c in &h.controllers {
                if let Some(p) = subs.get(c.as_str()) {
                    used.insert(c.as_str());
                    match sub {
                        Some((prev, q)) if !prev.is_empty() && q != p => bail!(
                            "--cgroup: {prev} and {c} share the hierarchy {} but name different cgroups",
                            h.mountpoint.display()
                        ),
                        _ => sub = Some((c.as_str(), p.as_str())),
                    }
                }
            }
        }
        let Some((_, sub)) = sub else {
            out.push((d.clone(), false));
            continue;
        };
        let rel = crate::fs::safe_path::relative(Path::new(sub));
        if rel
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            bail!("--cgroup {sub:?}: must not contain ..");
        }
        let joined = d.join(&rel);
        if !joined.is_dir() {
            bail!("--cgroup {sub:?}: {} does not exist", joined.display());
        }
        out.push((joined, true));
    }
    let v1 = hier.iter().any(|h| !h.v2);
    if let Some(c) = subs
        .keys()
        .find(|c| !c.is_empty() && !used.contains(c.as_str()))
    {
        if v1 {
            bail!("--cgroup: unknown controller {c} (the container has no cgroup v1 hierarchy for it)");
        }
        // As runc on cgroup v2: controller-prefixed paths are not used there.
        crate::logging::debug(&format!(
            "--cgroup {c}:...: ignored on cgroup v2 (use a plain path)"
        ));
    }
    Ok(out)
}

fn run_child(p: &Plan, chan: &Channel) -> ! {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| child(p, chan)));
    let msg = match r {
        Ok(Ok(never)) => match never {},
        Ok(Err(e)) => format!("{e:#}"),
        Err(_) => "exec process panicked".to_string(),
    };
    if chan.send(&Msg::Error(msg.clone())).is_err() {
        eprintln!("kraal: {msg}");
    }
    unsafe { libc::_exit(1) }
}

fn child(p: &Plan, chan: &Channel) -> Result<std::convert::Infallible> {
    chan.expect(&Msg::Go).context("wait for the runtime")?;
    // Not dumpable while kraal's image is inside the container (CVE-2019-5736 class).
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if let Some(u) = &p.user_ns {
        // The caller's supplementary groups go first, while the host user namespace
        // still lets us: inside a namespace whose setgroups is "deny" they could not
        // be dropped any more, and unmapped host groups (disk, ...) would still count
        // on host files. A rootless caller cannot drop its own groups; they stay, as
        // with runc.
        // SAFETY: setgroups(2) with a zero-length list reads no memory.
        unsafe { libc::setgroups(0, std::ptr::null()) };
        sys::setns(u.as_fd(), libc::CLONE_NEWUSER).context("setns user namespace")?;
    }
    for (flag, fd) in &p.others {
        sys::setns(fd.as_fd(), *flag).with_context(|| format!("setns namespace {flag:#x}"))?;
    }
    // Into the init's root: after setns(mnt), which resets root and cwd to the mount
    // namespace's root (the host's / for a --no-pivot container, whose init chrooted
    // into the rootfs) and would undo an earlier chroot; and also when there is no
    // mount namespace to join at all.
    // SAFETY: fchdir(2) on an fd this process holds open.
    if unsafe { libc::fchdir(p.root.as_raw_fd()) } != 0 {
        return Err(std::io::Error::last_os_error()).context("fchdir to the container's root");
    }
    // SAFETY: chroot(2) with a NUL-terminated path.
    if unsafe { libc::chroot(c".".as_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error()).context("chroot to the container's root");
    }
    // The pid namespace applies to children: the grandchild is the exec'd process.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error()).context("fork into the pid namespace");
    }
    if pid > 0 {
        let code = if chan.send(&Msg::Pid(pid)).is_ok() {
            0
        } else {
            1
        };
        unsafe { libc::_exit(code) }
    }
    chan.expect(&Msg::Go)
        .context("wait for the runtime after the second fork")?;
    if p.process.terminal {
        let (master, slave) =
            tty::open_pty(c"/dev/ptmx").context("process.terminal: allocate a pty")?;
        if let Some((rows, cols)) = p.process.console_size {
            tty::set_size(master.as_fd(), rows, cols)?;
        }
        tty::become_session_leader(slave.as_fd())?;
        match p.console_socket {
            Some(fd) => {
                let sock = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
                tty::send_fd(sock, master.as_fd(), b"/dev/ptmx")
                    .context("--console-socket: send the pty master")?;
            }
            None => chan
                .send_pty(master.as_fd())
                .context("sync: send the pty master")?,
        }
    }
    let mut resolved = finish::become_process(&p.process)?;
    if let Some(l) = &resolved.listener {
        chan.send_seccomp(l.as_fd())
            .context("sync: send the seccomp listener")?;
    }
    chan.send(&Msg::Ready).context("sync: send Ready")?;
    finish::exec(&p.process, &mut resolved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::Hierarchy;

    fn opts(args: &[&str]) -> ExecOpts {
        ExecOpts {
            args: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn base() -> oci_spec::runtime::Process {
        serde_json::from_value(serde_json::json!({
            "user": {"uid": 0, "gid": 0, "additionalGids": [3000]},
            "args": ["sleep"], "cwd": "/",
            "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"],
                "permitted": ["CAP_KILL"], "inheritable": ["CAP_SYS_ADMIN"]},
            "apparmorProfile": "container-default",
        }))
        .unwrap()
    }

    #[test]
    fn flags_extend_the_container_process_as_runc() {
        let o = ExecOpts {
            additional_gids: vec![2000],
            caps: vec!["sys_admin".into(), "CAP_NET_RAW".into()],
            apparmor: Some("other".into()),
            process_label: Some("system_u:system_r:t:s0".into()),
            ..opts(&["true"])
        };
        let p = build_process(Some(&base()), &o).unwrap();
        assert_eq!(
            p.user().additional_gids().as_deref(),
            Some(&[3000, 2000][..])
        );
        let c = p.capabilities().as_ref().unwrap();
        for set in [c.bounding(), c.effective(), c.permitted()] {
            let set = set.as_ref().unwrap();
            assert!(set.contains(&Capability::SysAdmin) && set.contains(&Capability::NetRaw));
        }
        // Ambient only for the inheritable one.
        let amb = c.ambient().as_ref().unwrap();
        assert!(amb.contains(&Capability::SysAdmin) && !amb.contains(&Capability::NetRaw));
        assert_eq!(p.apparmor_profile().as_deref(), Some("other"));
        assert_eq!(p.selinux_label().as_deref(), Some("system_u:system_r:t:s0"));
        // Without flags the container's values stay.
        let p = build_process(Some(&base()), &opts(&["true"])).unwrap();
        assert_eq!(p.apparmor_profile().as_deref(), Some("container-default"));
        assert!(p.capabilities().as_ref().unwrap().ambient().is_none());
    }

    #[test]
    fn cgroup_arguments_parse_as_runc() {
        let a = |v: &[&str]| sub_cgroup_paths(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(a(&[]).unwrap().is_empty());
        assert_eq!(
            a(&["sub"]).unwrap(),
            BTreeMap::from([(String::new(), "sub".to_string())])
        );
        let m = a(&["memory:m", "cpu,cpuacct:c"]).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m["cpuacct"], "c");
        assert!(a(&["a", "b"]).is_err(), "two plain paths");
        assert!(a(&[":x"]).is_err(), "empty controller");
        assert!(a(&["memory:a", "memory:b"]).is_err(), "controller twice");
    }

    #[test]
    fn cgroup_sub_paths_map_to_hierarchies() {
        let root = std::env::temp_dir().join(format!("kraal-exec-cg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let h = |name: &str, ctrls: &[&str]| Hierarchy {
            mountpoint: root.join(name),
            controllers: ctrls.iter().map(|s| s.to_string()).collect(),
            v2: ctrls.is_empty(),
            own: PathBuf::from("/"),
        };
        let hier = vec![
            h("memory", &["memory"]),
            h("cpu,cpuacct", &["cpu", "cpuacct"]),
            h("unified", &[]),
        ];
        let dirs: Vec<PathBuf> = hier.iter().map(|h| h.mountpoint.join("ctr")).collect();
        for d in &dirs {
            std::fs::create_dir_all(d.join("s")).unwrap();
        }
        let subs = |v: &[&str]| {
            sub_cgroup_paths(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
        };
        // No --cgroup: the container's, not explicit.
        let got = exec_cgroups(&dirs, &hier, &subs(&[])).unwrap();
        assert!(got.iter().all(|(d, e)| dirs.contains(d) && !e));
        // A plain path: everywhere.
        let got = exec_cgroups(&dirs, &hier, &subs(&["s"])).unwrap();
        assert!(got.iter().all(|(d, e)| d.ends_with("ctr/s") && *e));
        // Per controller: only that hierarchy; v2 ignores the prefix.
        let got = exec_cgroups(&dirs, &hier, &subs(&["cpuacct:s"])).unwrap();
        assert_eq!(got[0], (dirs[0].clone(), false));
        assert_eq!(got[1], (dirs[1].join("s"), true));
        assert_eq!(got[2], (dirs[2].clone(), false));
        assert!(exec_cgroups(&dirs, &hier, &subs(&["cpu:s", "cpuacct:other"])).is_err());
        assert!(exec_cgroups(&dirs, &hier, &subs(&["nosuch:s"])).is_err());
        assert!(exec_cgroups(&dirs, &hier, &subs(&["missing"])).is_err());
        assert!(exec_cgroups(&dirs, &hier, &subs(&["../ctr"])).is_err());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
