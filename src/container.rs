//! Container lifecycle: create, start, run, kill, delete, state and list.
//!
//! `create` is THE create path: it reads top to bottom as the list of steps that
//! take a bundle to an init blocked before exec, and undoes them all on failure.

use crate::cgroups::{self, systemd::SystemdCgroup, Cgroup};
use crate::hooks;
use crate::mounts;
use crate::namespaces;
use crate::netdev;
use crate::process::finish::Process;
use crate::process::init;
use crate::process::spawn;
use crate::process::sync::Msg;
use crate::rootfs;
use crate::state::{self, Dir, Saved, Status};
use crate::sys;
use crate::tty;
use crate::validate;
use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::{LinuxDeviceType, Spec};
use serde::Serialize;
use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

#[derive(Clone, Debug, Default)]
pub struct CreateOpts {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: u32,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    /// `run` without --detach: kraal stays and can proxy a terminal itself.
    pub foreground: bool,
    /// Running without privileges (cgroups may be missing, id maps via helpers).
    pub rootless: bool,
    /// `--systemd-cgroup`: the container's cgroup is a transient systemd scope.
    pub systemd_cgroup: bool,
}

/// Undoes a half-made container; disarmed once `create` succeeds.
struct Undo {
    dir: Option<Dir>,
    cgroup: Option<Cgroup>,
    /// The systemd scope, once systemd has made it.
    systemd_unit: Option<String>,
    /// A rootfs bound in the host's mount namespace (no mount namespace).
    host_rootfs: Option<PathBuf>,
    /// linux.netDevices moved into the container's network namespace (pinned by
    /// the fd): moved back to the host before the init dies, so a failed create
    /// does not take the host's interfaces (or a veth pair) with it.
    net_devices: Option<(std::fs::File, Vec<netdev::MovedDevice>)>,
    child: Option<libc::pid_t>,
}

impl Drop for Undo {
    fn drop(&mut self) {
        if let Some((ns, moved)) = self.net_devices.take() {
            for m in moved.iter().rev() {
                if let Err(e) = netdev::move_back(ns.as_fd(), m) {
                    crate::logging::warn(&format!("undo a failed create: {e:#}"));
                }
            }
        }
        if let Some(pid) = self.child.take() {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            wait_exit(pid);
        }
        if let Some(cg) = self.cgroup.take() {
            let _ = cgroups::kill_all(&cg.dirs);
            if let Some(unit) = self.systemd_unit.take() {
                let _ = SystemdCgroup::stop(&unit);
            }
            let _ = cg.destroy();
        }
        if let Some(r) = self.host_rootfs.take() {
            detach_host_rootfs(&r);
        }
        if let Some(d) = self.dir.take() {
            let _ = d.remove();
        }
    }
}

/// Waits for a process to be gone: reaps it if it is our child, else polls its pidfd.
fn wait_exit(pid: libc::pid_t) -> Option<i32> {
    let mut status = 0;
    loop {
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return Some(status);
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        break;
    }
    if let Ok(fd) = sys::pidfd_open(pid) {
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        unsafe { libc::poll(&mut pfd, 1, 10_000) };
    }
    None
}

/// What a successful `create` leaves: the init's pid, blocked on exec.fifo.
pub struct Created {
    pub pid: libc::pid_t,
    /// The pty master when kraal itself must proxy the terminal.
    pub pty: Option<OwnedFd>,
}

/// The poststop hooks a failed create still owes (runtime.md lifecycle: a failing
/// prestart, createRuntime or createContainer hook stops the container and the
/// lifecycle continues at step 12, destroy, then 13, poststop).
struct OwedPoststop {
    hooks: Vec<oci_spec::runtime::Hook>,
    state: Vec<u8>,
}

/// Creates the container (see `create_steps`). When it fails once the create-time
/// hooks have begun, the half-made container is torn down first and the poststop
/// hooks run after, as at `delete` (their failures are warnings), as runc's
/// destroy does.
pub fn create(root: &Path, o: &CreateOpts) -> Result<Created> {
    let mut owed = None;
    let r = create_steps(root, o, &mut owed);
    if r.is_err() {
        if let Some(p) = owed {
            for w in hooks::run_all_warn("poststop", &p.hooks, &p.state) {
                crate::logging::warn(&w);
            }
        }
    }
    r
}

fn create_steps(root: &Path, o: &CreateOpts, owed: &mut Option<OwedPoststop>) -> Result<Created> {
    state::validate_id(&o.id)?;
    let bundle = std::fs::canonicalize(&o.bundle)
        .with_context(|| format!("bundle {}", o.bundle.display()))?;
    let mut spec = validate::load(&bundle)?;
    validate::validate(&spec, &bundle)?;
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    tty::check_flags(terminal, !o.foreground, o.console_socket.is_some())?;
    let console = match &o.console_socket {
        Some(p) if terminal => Some(tty::connect_console_socket(p)?),
        _ => None,
    };

    let userns = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| {
            ns.iter()
                .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::User)
        });
    let dir = Dir::create(root, &o.id, userns)?;
    crate::failpoint::hit("after-state-dir");
    let mut undo = Undo {
        dir: None,
        cgroup: None,
        systemd_unit: None,
        host_rootfs: None,
        net_devices: None,
        child: None,
    };
    let lock_fd = dir.lock_fd();
    let dir_path = dir.path.clone();
    undo.dir = Some(dir);

    let hier = cgroups::hierarchies()?;
    let cgroups_path = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone());
    // --systemd-cgroup: systemd makes the scope once the init exists (after the
    // clone); its directories are known now.
    let systemd = if o.systemd_cgroup {
        let p = cgroups_path.as_deref().map(|p| p.to_string_lossy());
        Some(SystemdCgroup::resolve(
            &hier,
            p.as_deref(),
            &o.id,
            o.rootless,
        )?)
    } else {
        None
    };
    let cg = match &systemd {
        Some(sd) => Cgroup {
            dirs: sd.dirs.clone(),
            parents: Vec::new(),
        },
        None => match Cgroup::create(&hier, cgroups_path.as_deref(), &o.id) {
            // Rootless without a delegated cgroup: run without one, as runc does.
            Err(e) if o.rootless && is_permission_error(&e) => {
                crate::logging::warn(&format!(
                    "rootless: cgroups are not delegated to this user, running without them ({e:#})"
                ));
                Cgroup {
                    dirs: Vec::new(),
                    parents: Vec::new(),
                }
            }
            r => r?,
        },
    };
    let resources = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().clone())
        .unwrap_or_default();
    let cg_view: Vec<_> = if cg.dirs.is_empty() {
        Vec::new()
    } else {
        hier.iter().cloned().zip(cg.dirs.iter().cloned()).collect()
    };
    let cg_dirs = cg.dirs.clone();
    let cg_parents = cg.parents.clone();
    undo.cgroup = Some(cg);
    // From here on a killed create leaves things only state.json would name: record
    // them as they are made, so `delete` can undo them.
    let mut record = state::Creating {
        cgroup_dirs: cg_dirs.clone(),
        cgroup_parents: cg_parents.clone(),
        systemd_unit: systemd.as_ref().map(|sd| sd.unit.clone()),
        ..Default::default()
    };
    let save_record = |undo: &Undo, r: &state::Creating| match &undo.dir {
        Some(d) => d.save_creating(r),
        None => Ok(()),
    };
    save_record(&undo, &record)?;
    // Always applied: with no resources the container still gets runc's device list.
    // (The systemd driver applies them once systemd has made the scope.)
    if let (Some(cg), None) = (&undo.cgroup, &systemd) {
        cg.apply(&hier, &resources)?;
    }
    crate::failpoint::hit("after-cgroups");

    // The host ids the init runs as when it opens exec.fifo (and the container's
    // processes send to the notify socket): the only ones, beside kraal, let in.
    let init_ids = process_host_ids(&spec)?;
    let notify_socket = crate::notify::host_socket();
    if notify_socket.is_some() {
        let m = crate::notify::container_mount(&dir_path, init_ids)?;
        spec.mounts_mut().get_or_insert_with(Vec::new).push(m);
        if let Some(p) = spec.process_mut() {
            p.env_mut()
                .get_or_insert_with(Vec::new)
                .push(crate::notify::container_env());
        }
    }
    let fifo = make_fifo(&dir_path.join(state::FIFO), init_ids)?;
    let mut plan = build_plan(&spec, &bundle, o, cg_view)?;
    // Id-mapped trees are made here, once, and attached by the init (move_mount).
    let mut trees = Vec::new();
    for m in plan.rootfs.mounts.iter_mut() {
        if let Some(t) = mounts::make_idmapped_tree(m)? {
            m.detached = Some(t.as_raw_fd());
            trees.push(t);
        }
    }
    plan.fifo = fifo.as_raw_fd();
    if plan.rootfs.host_ns {
        undo.host_rootfs = Some(plan.rootfs.rootfs.clone());
    }
    plan.console_socket = console.as_ref().map(|c| c.as_raw_fd());

    let annotations: BTreeMap<String, String> = spec
        .annotations()
        .clone()
        .map(|a| a.into_iter().collect())
        .unwrap_or_default();
    // The init joins its cgroups itself: cgroup2 through the clone, v1 hierarchies by
    // writing its own `tasks` (far cheaper than a migration by pid on this kernel).
    let mut v2_dir = None;
    if systemd.is_none() {
        for (h, d) in hier.iter().zip(&cg_dirs) {
            if h.v2 {
                v2_dir = Some(
                    sys::openat(None, &sys::cstr(d)?, libc::O_RDONLY | libc::O_DIRECTORY, 0)
                        .with_context(|| format!("open cgroup {}", d.display()))?,
                );
            } else {
                plan.join_tasks.push(sys::cstr(&d.join("tasks"))?);
            }
        }
    }
    let (mut pid, chan, placed_v2) =
        spawn::spawn(&plan, &[lock_fd], v2_dir.as_ref().map(|f| f.as_fd()))?;
    drop(v2_dir);
    undo.child = Some(pid);
    record.pid = pid;
    record.init_start = state::proc_start_time(pid).map_or(0, |(st, _)| st);
    if plan.rootfs.host_ns {
        record.host_rootfs = Some(plan.rootfs.rootfs.clone());
    }
    save_record(&undo, &record)?;
    crate::failpoint::hit("after-clone");
    if plan.ns.new_userns {
        write_id_maps(pid, &spec)?;
    }
    if let Some(sd) = &systemd {
        sd.start(&hier, pid, &resources)?;
        undo.systemd_unit = Some(sd.unit.clone());
    } else if let Some(cg) = &undo.cgroup {
        if !placed_v2 {
            // The kernel refused CLONE_INTO_CGROUP: place the init in cgroup2 by pid.
            for (h, d) in hier.iter().zip(&cg.dirs) {
                if h.v2 {
                    sys::write_file(&d.join("cgroup.procs"), pid.to_string().as_bytes())
                        .with_context(|| format!("add pid {pid} to {}", d.display()))?;
                }
            }
        }
    }
    drop(console);
    drop(trees);
    let mut pty = None;
    if let Some(moved) = move_net_devices(pid, &spec)? {
        undo.net_devices = Some(moved);
    }
    chan.send(&Msg::Go).context("sync: send Go to the init")?;
    crate::failpoint::hit("after-go");
    loop {
        match chan.recv().context("sync: wait for the init")? {
            Some(Msg::Pid(p)) => {
                // The intermediate child exits once it has forked the real init.
                wait_exit(pid);
                pid = p;
                undo.child = Some(pid);
                record.pid = pid;
                record.init_start = state::proc_start_time(pid).map_or(0, |(st, _)| st);
                save_record(&undo, &record)?;
                chan.send(&Msg::Go).context("sync: send Go to the init")?;
            }
            Some(Msg::CreateHooks) => {
                // From here a failure owes the poststop hooks (runtime.md steps 3-5).
                let poststop = hook_list(&spec, |h| h.poststop());
                if !poststop.is_empty() {
                    *owed = Some(OwedPoststop {
                        hooks: poststop,
                        state: hooks::state_json(
                            spec.version(),
                            &o.id,
                            "stopped",
                            0,
                            &bundle,
                            &annotations,
                        ),
                    });
                }
                // runtime.md: the container is `created` once its environment exists
                // (step 2); prestart/createRuntime/createContainer are steps 3-5.
                let st =
                    hooks::state_json(spec.version(), &o.id, "created", pid, &bundle, &annotations);
                if let Some(h) = spec.hooks() {
                    // Deprecated, but still run, right before createRuntime as runc does.
                    #[allow(deprecated)]
                    hooks::run_all("prestart", h.prestart().as_deref().unwrap_or(&[]), &st)?;
                    hooks::run_all(
                        "createRuntime",
                        h.create_runtime().as_deref().unwrap_or(&[]),
                        &st,
                    )?;
                }
                chan.send(&Msg::HooksDone(st))
                    .context("sync: send HooksDone")?;
            }
            Some(Msg::Pty) => pty = chan.take_fd(),
            Some(Msg::Seccomp) => {
                let st = hooks::state_json(
                    spec.version(),
                    &o.id,
                    "creating",
                    pid,
                    &bundle,
                    &annotations,
                );
                crate::exec::hand_over_listener(
                    plan.process.seccomp.as_ref(),
                    chan.take_fd(),
                    pid,
                    &st,
                )?;
            }
            Some(Msg::Ready) => break,
            Some(Msg::Error(e)) => return Err(anyhow!(e)),
            Some(m) => bail!("sync: unexpected message {m:?} from the init"),
            None => {
                let st = wait_exit(pid);
                undo.child = None;
                bail!("container init exited during setup ({})", describe_wait(st));
            }
        }
    }
    crate::failpoint::hit("after-ready");
    drop(fifo);

    let (init_start, _) = state::proc_start_time(pid)
        .ok_or_else(|| anyhow!("container init {pid} vanished after setup"))?;
    let saved = Saved {
        oci_version: spec.version().clone(),
        id: o.id.clone(),
        pid,
        init_start,
        bundle: bundle.clone(),
        rootfs: plan.rootfs.rootfs.clone(),
        created: crate::timefmt::rfc3339_nano(SystemTime::now()),
        annotations,
        cgroup_dirs: cg_dirs,
        cgroup_parents: cg_parents,
        systemd_unit: systemd.as_ref().map(|sd| sd.unit.clone()),
        own_pidns: plan.ns.new_pidns,
        host_mounts: plan.rootfs.host_ns,
        net_devices: undo
            .net_devices
            .as_ref()
            .map(|(_, m)| m.clone())
            .unwrap_or_default(),
        config: Some(spec.clone()),
        notify_socket,
    };
    if let Some(d) = &undo.dir {
        d.save(&saved)?;
    }
    crate::failpoint::hit("after-state-json");
    if let Some(pf) = &o.pid_file {
        let pf = absolute(pf)?;
        state::write_atomic(&pf, pid.to_string().as_bytes(), 0o644)
            .with_context(|| format!("--pid-file {}", pf.display()))?;
    }
    undo.child = None;
    undo.cgroup = None;
    undo.systemd_unit = None;
    undo.host_rootfs = None;
    undo.net_devices = None;
    undo.dir = None;
    Ok(Created { pid, pty })
}

fn absolute(p: &Path) -> Result<PathBuf> {
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    Ok(std::env::current_dir().context("getcwd")?.join(p))
}

fn describe_wait(st: Option<i32>) -> String {
    match st {
        Some(s) if libc::WIFEXITED(s) => format!("exit status {}", libc::WEXITSTATUS(s)),
        Some(s) if libc::WIFSIGNALED(s) => format!("killed by signal {}", libc::WTERMSIG(s)),
        _ => "status unknown".to_string(),
    }
}

/// Makes exec.fifo, which only kraal and the container's init may open: a fifo
/// anyone could open lets any local user hold `start` up (a writer kept open) or
/// make it report a fake error (text written), and a reader could release the init.
/// Made 0600 for kraal, then given to `owner` (the host ids the init has when it
/// opens it for writing, after its switch to `process.user`), since the init may no
/// longer be privileged over a file it does not own.
fn make_fifo(path: &Path, owner: Option<(u32, u32)>) -> Result<OwnedFd> {
    let c = sys::cstr(path)?;
    let old = unsafe { libc::umask(0o077) };
    let r = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    unsafe { libc::umask(old) };
    if r != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("mkfifo {}", path.display()));
    }
    let fd = sys::openat(None, &c, libc::O_PATH | libc::O_NOFOLLOW, 0)
        .with_context(|| format!("open {}", path.display()))?;
    if let Some((uid, gid)) = owner {
        give_to(fd.as_fd(), path, uid, gid)?;
    }
    Ok(fd)
}

/// Gives a file kraal just made in its own state directory to the container's
/// (host) ids. A rootless kraal cannot give files to ids other than its own: there
/// the container directory's group and others may keep access (a rootless state
/// root is private to its user, so no other user reaches it).
pub(crate) fn give_to(fd: std::os::fd::BorrowedFd, path: &Path, uid: u32, gid: u32) -> Result<()> {
    // SAFETY: fd is a valid descriptor for the call's duration; the empty path is a
    // NUL-terminated literal and AT_EMPTY_PATH makes the call act on fd itself.
    let r = unsafe { libc::fchownat(fd.as_raw_fd(), c"".as_ptr(), uid, gid, libc::AT_EMPTY_PATH) };
    if r == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EPERM) && !nix::unistd::geteuid().is_root() {
        crate::logging::debug(&format!(
            "rootless: cannot give {} to uid {uid}, opening it to the container's ids by mode",
            path.display()
        ));
        let md =
            std::fs::symlink_metadata(path).with_context(|| format!("stat {}", path.display()))?;
        let mode = if md.is_dir() { 0o755 } else { 0o622 };
        use std::os::unix::fs::PermissionsExt;
        return std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("chmod {}", path.display()));
    }
    Err(e).with_context(|| format!("chown {} to {uid}:{gid}", path.display()))
}

/// The host uid and gid of `process.user` (what the init runs as once it has
/// switched to it): the ids themselves without a user namespace, mapped through
/// `linux.uidMappings`/`gidMappings` for a new one, and through the joined
/// namespace's own maps for a joined one. None without a `process`.
fn process_host_ids(spec: &Spec) -> Result<Option<(u32, u32)>> {
    let Some(p) = spec.process() else {
        return Ok(None);
    };
    let (uid, gid) = (p.user().uid(), p.user().gid());
    let linux = spec.linux().clone().unwrap_or_default();
    let userns = linux
        .namespaces()
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .find(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::User)
        .cloned();
    let Some(ns) = userns else {
        return Ok(Some((uid, gid)));
    };
    let (umap, gmap) = match ns.path().as_ref().filter(|p| !p.as_os_str().is_empty()) {
        None => {
            let fmt = |m: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
                crate::mounts::map_lines(m.as_deref().unwrap_or(&[]))
            };
            (fmt(linux.uid_mappings()), fmt(linux.gid_mappings()))
        }
        Some(path) => joined_userns_maps(path)?,
    };
    let host_uid = map_id(&umap, uid).ok_or_else(|| {
        anyhow!("process.user.uid {uid}: not mapped in the container's user namespace")
    })?;
    let host_gid = map_id(&gmap, gid).ok_or_else(|| {
        anyhow!("process.user.gid {gid}: not mapped in the container's user namespace")
    })?;
    Ok(Some((host_uid, host_gid)))
}

/// The host id of `id` under an id map in /proc/PID/uid_map form
/// ("inside outside count" lines).
fn map_id(map: &str, id: u32) -> Option<u32> {
    map.lines().find_map(|l| {
        let mut f = l.split_whitespace().map(|x| x.parse::<u64>().ok());
        let (inside, outside, count) = (f.next()??, f.next()??, f.next()??);
        let id = u64::from(id);
        (id >= inside && id - inside < count)
            .then(|| u32::try_from(outside + (id - inside)).ok())
            .flatten()
    })
}

/// The uid and gid maps of a user namespace given by path, as kraal's own
/// namespace sees them: a forked child joins it and kraal reads the child's maps.
fn joined_userns_maps(path: &Path) -> Result<(String, String)> {
    let what = || format!("linux.namespaces (user): {}", path.display());
    let ns = std::fs::File::open(path).with_context(|| format!("{}: open", what()))?;
    let mut ready = [0 as libc::c_int; 2];
    let mut done = [0 as libc::c_int; 2];
    // SAFETY: each array has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(ready.as_mut_ptr(), libc::O_CLOEXEC) } != 0
        || unsafe { libc::pipe2(done.as_mut_ptr(), libc::O_CLOEXEC) } != 0
    {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("{}: pipe", what()));
    }
    // SAFETY: the four descriptors were just returned by pipe2 and are owned here.
    let (ready_r, ready_w, done_r, done_w) = unsafe {
        use std::os::fd::FromRawFd;
        (
            OwnedFd::from_raw_fd(ready[0]),
            OwnedFd::from_raw_fd(ready[1]),
            OwnedFd::from_raw_fd(done[0]),
            OwnedFd::from_raw_fd(done[1]),
        )
    };
    // SAFETY: the child only makes async-signal-safe system calls (setns, write,
    // read, _exit) on descriptors opened before the fork, and never returns.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("{}: fork", what()));
    }
    if pid == 0 {
        unsafe {
            // Only the parent may hold `done` open, or the read below never ends.
            libc::close(done_w.as_raw_fd());
            libc::close(ready_r.as_raw_fd());
            // In the joined namespace this is a uid-0 fork of kraal holding kraal's
            // fds: not dumpable, so no process there can ptrace it or open its
            // /proc/<pid>/{root,fd} (CVE-2019-5736 class).
            libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
            let ok: u8 = if libc::setns(ns.as_raw_fd(), libc::CLONE_NEWUSER) == 0 {
                1
            } else {
                0
            };
            libc::write(ready_w.as_raw_fd(), (&ok as *const u8).cast(), 1);
            let mut b = 0u8;
            libc::read(done_r.as_raw_fd(), (&mut b as *mut u8).cast(), 1);
            libc::_exit(0);
        }
    }
    drop(ready_w);
    drop(done_r);
    let mut ok = 0u8;
    // SAFETY: reads one byte into a live local.
    let n = unsafe { libc::read(ready_r.as_raw_fd(), (&mut ok as *mut u8).cast(), 1) };
    let maps = if n == 1 && ok == 1 {
        let read = |f: &str| {
            std::fs::read_to_string(format!("/proc/{pid}/{f}"))
                .with_context(|| format!("{}: read {f}", what()))
        };
        read("uid_map").and_then(|u| Ok((u, read("gid_map")?)))
    } else {
        Err(anyhow!("{}: cannot join it to read its id maps", what()))
    };
    drop(done_w);
    let mut st = 0;
    // SAFETY: waits for the child forked above, which exits once `done` closes.
    unsafe { libc::waitpid(pid, &mut st, 0) };
    maps
}

fn cstring(field: &str, s: &[u8]) -> Result<CString> {
    CString::new(s).map_err(|_| anyhow!("{field}: contains a NUL byte"))
}

/// Converts the spec into what the init executes, resolving paths on the host.
fn build_plan(
    spec: &Spec,
    bundle: &Path,
    o: &CreateOpts,
    cgroups: Vec<(cgroups::Hierarchy, PathBuf)>,
) -> Result<init::Plan> {
    let ns = namespaces::Plan::from_spec(spec)?;
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| anyhow!("root: is required"))?;
    let rootfs = if root.path().is_absolute() {
        root.path().clone()
    } else {
        bundle.join(root.path())
    };
    let rootfs = std::fs::canonicalize(&rootfs)
        .with_context(|| format!("root.path {}", rootfs.display()))?;
    let linux = spec.linux().clone().unwrap_or_default();
    // `process` is only required by `start` (runtime.md): without one the init sets
    // everything up and waits; `start` then refuses.
    let no_process = oci_spec::runtime::Process::default();
    let has_process = spec.process().is_some();
    let process = spec.process().as_ref().unwrap_or(&no_process);

    let container_maps = match (linux.uid_mappings(), linux.gid_mappings()) {
        (Some(u), Some(g)) => Some((u.as_slice(), g.as_slice())),
        _ => None,
    };
    let mut mounts_p = Vec::new();
    for (i, m) in spec.mounts().as_deref().unwrap_or(&[]).iter().enumerate() {
        mounts_p.push(mounts::Prepared::from_spec(i, m, bundle, container_maps)?);
    }
    // linux.mountLabel: the SELinux context of the container's own filesystems (as
    // runc, ignored on hosts without SELinux).
    if let Some(label) = linux.mount_label().as_deref().filter(|l| !l.is_empty()) {
        if crate::process::attrs::selinux_enabled() {
            for m in mounts_p.iter_mut() {
                let skip = matches!(
                    m.fstype.as_deref(),
                    Some("proc" | "sysfs" | "cgroup" | "cgroup2" | "bind")
                );
                if !m.opts.is_bind() && !skip {
                    m.opts.data.push(format!("context=\"{label}\""));
                }
            }
        }
    }
    let setup_dev = !mounts_p
        .iter()
        .any(|m| m.dest == Path::new("dev") && m.opts.is_bind());
    let mut devices = Vec::new();
    for (i, d) in linux.devices().as_deref().unwrap_or(&[]).iter().enumerate() {
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
            LinuxDeviceType::B => libc::S_IFBLK,
            LinuxDeviceType::P => libc::S_IFIFO,
            other => bail!("linux.devices[{i}]: unsupported type {other:?}"),
        };
        devices.push(rootfs::Device {
            path: d.path().clone(),
            kind,
            major: d.major() as u64,
            minor: d.minor() as u64,
            mode: d.file_mode().unwrap_or(0o666),
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        });
    }
    let propagation = match linux.rootfs_propagation() {
        Some(p) if !p.is_empty() => Some(
            mounts::propagation(p)
                .ok_or_else(|| anyhow!("linux.rootfsPropagation: unknown value {p:?}"))?,
        ),
        _ => None,
    };
    let mut sysctl: Vec<(String, String)> = linux
        .sysctl()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    sysctl.sort();
    let new_cgroupns = ns.new_cgroupns;

    let listen = listen_fds();
    let listen_env = if listen > 0 {
        vec![format!("LISTEN_FDS={listen}"), "LISTEN_PID=1".to_string()]
    } else {
        Vec::new()
    };
    let mut process = if has_process {
        Process::from_spec(process, 3 + listen + o.preserve_fds, &listen_env)?
    } else {
        Process::default()
    };
    if let Some(s) = linux.seccomp() {
        process.seccomp = Some(crate::seccomp::compile(s)?);
    }
    if let Some(p) = linux.personality() {
        process.attrs.personality = Some(crate::process::attrs::personality(p)?);
    }
    if let Some(m) = linux.memory_policy() {
        process.attrs.mempolicy = Some(crate::process::attrs::mempolicy(m)?);
    }
    let hostname = spec
        .hostname()
        .as_ref()
        .map(|h| cstring("hostname", h.as_bytes()))
        .transpose()?;
    let domainname = spec
        .domainname()
        .as_ref()
        .map(|h| cstring("domainname", h.as_bytes()))
        .transpose()?;

    Ok(init::Plan {
        rootfs: rootfs::Plan {
            rootfs,
            readonly: root.readonly().unwrap_or(false),
            propagation,
            mounts: mounts_p,
            setup_dev,
            devices,
            masked: linux
                .masked_paths()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(PathBuf::from)
                .collect(),
            readonly_paths: linux
                .readonly_paths()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(PathBuf::from)
                .collect(),
            sysctl,
            no_pivot: o.no_pivot,
            host_ns: !ns.has_mntns(),
            cwd: spec
                .process()
                .as_ref()
                .map(|p| p.cwd().clone())
                .unwrap_or_default(),
            cgroups: rootfs::CgroupView {
                hierarchies: cgroups,
                new_ns: new_cgroupns,
            },
        },
        ns,
        hostname,
        domainname,
        oom_score_adj: spec.process().as_ref().and_then(|p| p.oom_score_adj()),
        has_process,
        join_tasks: Vec::new(),
        process,
        console_socket: None,
        no_new_keyring: o.no_new_keyring,
        create_hooks: hook_list(spec, |h| h.create_runtime()).len()
            + hook_list(spec, |h| h.create_container()).len()
            + hook_list(spec, |h| h.start_container()).len()
            + prestart_hooks(spec).len()
            > 0,
        // The in-container hooks' environment when they set none, as runc's: the
        // init has cleared its own before createContainer, and startContainer hooks
        // get the container process's environment.
        create_container_hooks: with_default_env(
            hook_list(spec, |h| h.create_container()),
            &[],
            false,
        ),
        start_container_hooks: with_default_env(
            hook_list(spec, |h| h.start_container()),
            spec.process()
                .as_ref()
                .and_then(|p| p.env().as_deref())
                .unwrap_or(&[]),
            true,
        ),
        fifo: -1,
    })
}

fn hook_list(
    spec: &Spec,
    f: impl Fn(&oci_spec::runtime::Hooks) -> &Option<Vec<oci_spec::runtime::Hook>>,
) -> Vec<oci_spec::runtime::Hook> {
    spec.hooks()
        .as_ref()
        .and_then(|h| f(h).clone())
        .unwrap_or_default()
}

/// Gives hooks without `env` (and, with `empty_too`, an empty one) `env`.
fn with_default_env(
    mut hooks: Vec<oci_spec::runtime::Hook>,
    env: &[String],
    empty_too: bool,
) -> Vec<oci_spec::runtime::Hook> {
    for h in hooks.iter_mut() {
        let unset = match h.env() {
            None => true,
            Some(e) => empty_too && e.is_empty(),
        };
        if unset {
            h.set_env(Some(env.to_vec()));
        }
    }
    hooks
}

#[allow(deprecated)]
fn prestart_hooks(spec: &Spec) -> Vec<oci_spec::runtime::Hook> {
    hook_list(spec, |h| h.prestart())
}

/// Socket-activation fds handed to kraal (LISTEN_FDS for our pid) pass through.
fn listen_fds() -> u32 {
    let pid_ok = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    if !pid_ok {
        return 0;
    }
    std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn is_permission_error(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(
                io.raw_os_error(),
                Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS)
            )
        })
    })
}

/// Writes the new user namespace's id maps. Root writes them directly; an
/// unprivileged caller may map only its own ids itself (setgroups denied first),
/// and needs the setuid newuidmap/newgidmap helpers for anything more.
fn write_id_maps(pid: libc::pid_t, spec: &Spec) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        return write_id_maps_unprivileged(pid, spec);
    }
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| anyhow!("linux: missing"))?;
    let fmt = |m: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
        crate::mounts::map_lines(m.as_deref().unwrap_or(&[]))
    };
    let uid = fmt(linux.uid_mappings());
    let gid = fmt(linux.gid_mappings());
    let base = PathBuf::from(format!("/proc/{pid}"));
    sys::write_file(&base.join("uid_map"), uid.as_bytes())
        .context("linux.uidMappings: write uid_map")?;
    sys::write_file(&base.join("gid_map"), gid.as_bytes())
        .context("linux.gidMappings: write gid_map")?;
    Ok(())
}

fn write_id_maps_unprivileged(pid: libc::pid_t, spec: &Spec) -> Result<()> {
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| anyhow!("linux: missing"))?;
    let (euid, egid) = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    let own_only = |m: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>, id: u32| matches!(m.as_deref(), Some([one]) if one.host_id() == id && one.size() == 1);
    let base = PathBuf::from(format!("/proc/{pid}"));
    for (field, file, helper, maps, own) in [
        (
            "linux.uidMappings",
            "uid_map",
            "newuidmap",
            linux.uid_mappings(),
            euid,
        ),
        (
            "linux.gidMappings",
            "gid_map",
            "newgidmap",
            linux.gid_mappings(),
            egid,
        ),
    ] {
        let list = maps.as_deref().unwrap_or(&[]);
        if own_only(maps, own) {
            if file == "gid_map" {
                sys::write_file(&base.join("setgroups"), b"deny")
                    .context("deny setgroups for the user namespace")?;
            }
            let line = format!("{} {} 1\n", list[0].container_id(), own);
            sys::write_file(&base.join(file), line.as_bytes())
                .with_context(|| format!("{field}: write {file}"))?;
            continue;
        }
        let mut cmd = std::process::Command::new(helper);
        cmd.arg(pid.to_string());
        for m in list {
            cmd.args([
                m.container_id().to_string(),
                m.host_id().to_string(),
                m.size().to_string(),
            ]);
        }
        let out = cmd
            .output()
            .with_context(|| format!("{field}: run {helper} (install the uidmap package)"))?;
        if !out.status.success() {
            bail!(
                "{field}: {helper} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    Ok(())
}

/// Moves linux.netDevices into the init's network namespace; returns that
/// namespace (pinned) and what moved, or None when the config names no devices.
/// On an error the devices already moved are moved back.
fn move_net_devices(
    pid: libc::pid_t,
    spec: &Spec,
) -> Result<Option<(std::fs::File, Vec<netdev::MovedDevice>)>> {
    let Some(devs) = spec.linux().as_ref().and_then(|l| l.net_devices().clone()) else {
        return Ok(None);
    };
    if devs.is_empty() {
        return Ok(None);
    }
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))
        .context("open the container's network namespace")?;
    let mut names: Vec<_> = devs.keys().cloned().collect();
    names.sort();
    let mut moved = Vec::new();
    for name in names {
        match netdev::move_into(ns.as_fd(), &name, &devs[&name]) {
            Ok(m) => moved.push(m),
            Err(e) => {
                for m in moved.iter().rev() {
                    let _ = netdev::move_back(ns.as_fd(), m);
                }
                return Err(e);
            }
        }
    }
    Ok(Some((ns, moved)))
}

/// Releases a created container's init so it execs the user process.
pub fn start(root: &Path, id: &str) -> Result<()> {
    let dir = Dir::open(root, id)?;
    let saved = dir
        .load()?
        .ok_or_else(|| anyhow!("container {id:?} is still being created"))?;
    if saved.config.as_ref().is_some_and(|c| c.process().is_none()) {
        bail!("cannot start container {id:?}: process is required when start is called (config.json has none)");
    }
    match dir.status(Some(&saved)) {
        Status::Created => {}
        Status::Stopped => bail!("cannot start a container that has stopped"),
        Status::Running | Status::Paused => bail!("cannot start an already running container"),
        Status::Creating => bail!("cannot start a container that is still being created"),
    }
    // As runc's `start`: readiness goes to the NOTIFY_SOCKET of start's own
    // environment (none there: no wait). The container can only reach kraal's
    // socket when `create` mounted it (create's NOTIFY_SOCKET).
    let notify = match (crate::notify::host_socket(), &saved.notify_socket) {
        (Some(host), Some(_)) => Some((crate::notify::listen(&dir.path)?, host)),
        (Some(_), None) => {
            crate::logging::debug(
                "NOTIFY_SOCKET: create had none, so the container has no socket to notify",
            );
            None
        }
        (None, _) => None,
    };
    let fifo = dir.fifo();
    wait_init_exec(id, &saved, &fifo)?;
    if let Some((sock, host)) = &notify {
        crate::notify::wait_ready(sock, host, saved.pid, || {
            state::process_alive(saved.pid, saved.init_start)
        })?;
    }
    if let Some(spec) = &saved.config {
        let post = hook_list(spec, |h| h.poststart());
        if !post.is_empty() {
            // The exec.fifo closes inside execve: let the process run its first
            // steps (up to its first block, or exit) before the hooks "after the
            // user-specified process is executed" start racing it.
            state::wait_settled(saved.pid, Duration::from_millis(100));
            let st = hooks::state_json(
                &saved.oci_version,
                id,
                "running",
                saved.pid,
                &saved.bundle,
                &saved.annotations,
            );
            // runtime-spec 1.3: a failing poststart hook stops the container (as
            // runc: killed and gone when `start` returns; `delete`, which `run`
            // calls itself, destroys it and runs the poststop hooks).
            if let Err(e) = hooks::run_all("poststart", &post, &st) {
                stop_after_failed_start(&saved);
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Releases the init blocked on exec.fifo and waits until it has exec'd the user
/// process (or failed), bounded by the init's life: the wait is a poll on the fifo
/// and on the init's pidfd, and the init's own exec is read from the kernel
/// (PF_FORKNOEXEC, cleared by execve), never guessed from what the fifo carries.
///
/// The init writes "0" once `start` opened the fifo, then keeps the write end
/// (close-on-exec) until execve; if it fails first it writes its error and exits.
/// So: data before "0" is not the init's (refused, not shown as its error); once the
/// init has exec'd, the container runs and anything else read is only logged; text
/// is the init's error only when the init did not exec. An init that has already
/// exec'd (a `start` killed before removing the fifo) is refused at once instead of
/// waiting for a writer that never comes.
/// At most this much of an init's error text is kept from exec.fifo.
const FIFO_TEXT_LIMIT: usize = 64 << 10;

fn keep_text(text: &mut Vec<u8>, data: &[u8]) {
    let room = FIFO_TEXT_LIMIT.saturating_sub(text.len());
    text.extend_from_slice(&data[..data.len().min(room)]);
}

fn wait_init_exec(id: &str, saved: &Saved, fifo: &Path) -> Result<()> {
    let gone = || anyhow!("cannot start container {id:?}: its init process is gone");
    // The pidfd pins the process; checked once after opening, it is the init.
    let pidfd = sys::pidfd_open(saved.pid).map_err(|_| gone())?;
    if !state::process_alive(saved.pid, saved.init_start) {
        return Err(gone());
    }
    if init_execd(saved.pid, saved.init_start) == Some(true) {
        // Its status said `created` only because the fifo was left behind.
        let _ = std::fs::remove_file(fifo);
        bail!(
            "cannot start an already running container (its init has exec'd; removed the stale {})",
            fifo.display()
        );
    }
    let c = sys::cstr(fifo)?;
    let f = sys::openat(None, &c, libc::O_RDONLY | libc::O_NONBLOCK, 0)
        .with_context(|| format!("open {}", fifo.display()))?;
    let mut got_start = false;
    let mut text = Vec::new();
    let mut init_exited = false;
    loop {
        let mut pfds = [
            libc::pollfd {
                fd: f.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: pidfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // The timeout only re-checks whether the init has exec'd, for a write end
        // that stays open elsewhere after the init's is closed.
        // SAFETY: pfds is a live array of two pollfd structs.
        let r = unsafe { libc::poll(pfds.as_mut_ptr(), 2, 100) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e).with_context(|| format!("poll {}", fifo.display()));
        }
        let mut eof = false;
        if pfds[0].revents != 0 {
            let mut b = [0u8; 4096];
            // SAFETY: reads into a live local buffer of b.len() bytes.
            let n = unsafe { libc::read(f.as_raw_fd(), b.as_mut_ptr().cast(), b.len()) };
            if n > 0 {
                let data = &b[..n as usize];
                if !got_start {
                    if data[0] != b'0' {
                        bail!("cannot start container {id:?}: {} carried data that is not from its init ({} bytes before the init's start mark)", fifo.display(), data.len());
                    }
                    got_start = true;
                    keep_text(&mut text, &data[1..]);
                } else {
                    keep_text(&mut text, data);
                }
                // No `continue`: a writer that never stops must not keep the init's
                // exit or exec from being noticed below.
            }
            eof = n == 0;
        }
        if pfds[1].revents != 0 {
            init_exited = true;
        }
        if eof || init_exited {
            break;
        }
        if init_execd(saved.pid, saved.init_start) == Some(true) {
            break;
        }
    }
    // Whatever the init wrote just before it exited or exec'd: at most what the pipe
    // holds, so another writer cannot keep this loop going.
    let mut b = [0u8; 4096];
    for _ in 0..(FIFO_TEXT_LIMIT / b.len()) {
        // SAFETY: reads into a live local buffer; the fd is non-blocking.
        let n = unsafe { libc::read(f.as_raw_fd(), b.as_mut_ptr().cast(), b.len()) };
        if n <= 0 {
            break;
        }
        keep_text(&mut text, &b[..n as usize]);
    }
    std::fs::remove_file(fifo).with_context(|| format!("remove {}", fifo.display()))?;
    let text = String::from_utf8_lossy(&text).trim().to_string();
    match init_execd(saved.pid, saved.init_start) {
        Some(true) => {
            if !text.is_empty() {
                crate::logging::warn(&format!(
                    "container {id:?}: ignored {} bytes on {} that its init did not write (it has exec'd)",
                    text.len(),
                    fifo.display()
                ));
            }
            Ok(())
        }
        Some(false) => {
            // Not exec'd and its write end closed: it is exiting; wait for it.
            if !init_exited {
                let mut p = libc::pollfd {
                    fd: pidfd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: p is a live pollfd; the init exits once its fifo end closed.
                while unsafe { libc::poll(&mut p, 1, -1) } < 0
                    && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
                {
                }
            }
            if !got_start {
                bail!("cannot start container {id:?}: its init exited before start");
            }
            if text.is_empty() {
                bail!("container {id:?} failed to start: its init exited before exec");
            }
            bail!("container {id:?} failed to start: {text}")
        }
        // Reaped already: only the init can open the fifo, so text is its error.
        None if !got_start => bail!("cannot start container {id:?}: its init exited before start"),
        None if !text.is_empty() => bail!("container {id:?} failed to start: {text}"),
        None => Ok(()),
    }
}

/// Whether the process `pid` (started at `start`) has exec'd: PF_FORKNOEXEC, set by
/// fork/clone and cleared by execve, in /proc/PID/stat's flags (field 9). The init
/// is cloned from kraal and never execs before the user process. None when the
/// process is gone (or the pid now names another one).
fn init_execd(pid: libc::pid_t, start: u64) -> Option<bool> {
    const PF_FORKNOEXEC: u64 = 0x40;
    let data = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields start after the command name's last ')': state is field 3.
    let f: Vec<&str> = data[data.rfind(')')? + 1..].split_whitespace().collect();
    let flags: u64 = f.get(6)?.parse().ok()?;
    let st: u64 = f.get(19)?.parse().ok()?;
    (st == start).then_some(flags & PF_FORKNOEXEC == 0)
}

/// Kills a just-started container (its init; every process when it shares the
/// host's pid namespace) and waits until the init is gone.
fn stop_after_failed_start(saved: &Saved) {
    kill_init_and_wait(saved.pid, saved.init_start);
    if !saved.own_pidns {
        let _ = cgroups::signal_all(&saved.cgroup_dirs, libc::SIGKILL);
    }
}

/// `run`: create, start, and (unless detached) wait, forwarding signals, then delete.
pub fn run(root: &Path, o: &CreateOpts, detach: bool, keep: bool) -> Result<i32> {
    let mut old_mask: libc::sigset_t = unsafe { std::mem::zeroed() };
    if !detach {
        // Before the fork: an init that exits at once must still be seen (SIGCHLD pending).
        let set = crate::signals::forwarded();
        unsafe {
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
            libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old_mask);
        }
    }
    let o = &CreateOpts {
        foreground: !detach,
        ..o.clone()
    };
    let created = create(root, o)?;
    if let Err(e) = start(root, &o.id) {
        let _ = delete(root, &o.id, true);
        return Err(e);
    }
    if detach {
        return Ok(0);
    }
    let status = wait_forwarding(created.pid, created.pty.map(tty::Proxy::new));
    if !keep {
        delete(root, &o.id, true)?;
    }
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, &old_mask, std::ptr::null_mut()) };
    Ok(status)
}

/// Waits for the process, forwarding every blocked signal to it and proxying its
/// terminal if kraal holds one; returns its exit code (128+signal when killed), as a
/// shell would report it.
pub fn wait_forwarding(pid: libc::pid_t, proxy: Option<tty::Proxy>) -> i32 {
    let set = crate::signals::forwarded();
    let mut stdin_open = true;
    let mut pty_open = proxy.is_some();
    let handle = |sig: i32| match sig {
        libc::SIGCHLD => {}
        libc::SIGWINCH if proxy.is_some() => {
            if let Some(p) = &proxy {
                p.resize()
            }
        }
        s => unsafe {
            libc::kill(pid, s);
        },
    };
    loop {
        let mut status = 0;
        loop {
            let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if r == pid && (libc::WIFEXITED(status) || libc::WIFSIGNALED(status)) {
                if let Some(p) = &proxy {
                    p.drain();
                }
                if libc::WIFEXITED(status) {
                    return libc::WEXITSTATUS(status);
                }
                return 128 + libc::WTERMSIG(status);
            }
            if r <= 0 {
                break;
            }
        }
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        match &proxy {
            Some(p) if pty_open => {
                pty_open = p.pump(&mut stdin_open);
                let now = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                loop {
                    let sig = unsafe { libc::sigtimedwait(&set, &mut info, &now) };
                    if sig <= 0 {
                        break;
                    }
                    handle(sig);
                }
            }
            _ => {
                let sig = unsafe { libc::sigwaitinfo(&set, &mut info) };
                if sig > 0 {
                    handle(sig);
                }
            }
        }
    }
}

/// Sends a signal to the init, or with `all` to every process of the container.
pub fn kill(root: &Path, id: &str, sig: i32, all: bool) -> Result<()> {
    let dir = Dir::open(root, id)?;
    let saved = dir
        .load()?
        .ok_or_else(|| anyhow!("container {id:?} is still being created"))?;
    let status = dir.status(Some(&saved));
    if status == Status::Stopped {
        // containerd sends `kill --all` to tasks that may have exited: not an error.
        if all {
            return Ok(());
        }
        bail!("container {id:?} is not running");
    }
    if all {
        return cgroups::signal_all(&saved.cgroup_dirs, sig);
    }
    // A pidfd pins the process: checked once, it cannot be a reused pid any more.
    let pfd = sys::pidfd_open(saved.pid)
        .with_context(|| format!("container {id:?}: open init pid {}", saved.pid))?;
    if !state::process_alive(saved.pid, saved.init_start) {
        bail!("container {id:?} is not running");
    }
    if status == Status::Running {
        wait_for_handler(saved.pid, sig);
    }
    sys::pidfd_send_signal(pfd.as_fd(), sig)
        .with_context(|| format!("container {id:?}: send signal {sig}"))?;
    // SIGKILL to a paused container takes effect once it is thawed (as runc does).
    if sig == libc::SIGKILL && cgroups::is_frozen(&saved.cgroup_dirs) {
        cgroups::thaw(&saved.cgroup_dirs)?;
    }
    Ok(())
}

/// Gives a just-started init a moment to install its handler for `sig` when the
/// kernel would otherwise discard the signal (see `signals::dropped_by_ns_init`):
/// `kill` right after `start` must not depend on how fast the caller is. An init
/// that never handles `sig` costs this wait once; the signal is then sent anyway.
fn wait_for_handler(pid: i32, sig: i32) {
    const GRACE: Duration = Duration::from_millis(200);
    let path = format!("/proc/{pid}/status");
    let deadline = Instant::now() + GRACE;
    while let Ok(status) = std::fs::read_to_string(&path) {
        if !crate::signals::dropped_by_ns_init(&status, sig) {
            return;
        }
        if Instant::now() >= deadline {
            crate::logging::debug(&format!(
                "signal {sig}: pid {pid} is a PID namespace init without a handler for it; the kernel discards it"
            ));
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Removes a container. A created one is killed first (containerd deletes created
/// tasks without --force); a running or paused one needs `force`.
pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    state::validate_id(id)?;
    let dir = match Dir::open(root, id) {
        Ok(d) => d,
        Err(e) if force && !root.join(id).exists() => {
            let _ = e;
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let Some(saved) = dir.load()? else {
        // A create that died before writing state.json: undo what its record lists.
        if let Some(c) = dir.load_creating()? {
            undo_creating(&c)?;
        }
        return dir.remove();
    };
    match dir.status(Some(&saved)) {
        Status::Stopped | Status::Created => {}
        s if force => {
            let _ = s;
        }
        s => bail!("cannot delete container {id:?} that is not stopped: {s}"),
    }
    destroy(dir, &saved)
}

/// SIGKILLs the init named by `pid` and its start time (never a reused pid: checked
/// again once the pidfd pins it) and waits, bounded, until it is gone.
fn kill_init_and_wait(pid: libc::pid_t, start: u64) {
    let Ok(pfd) = sys::pidfd_open(pid) else {
        return;
    };
    if state::process_alive(pid, start) {
        let _ = sys::pidfd_send_signal(pfd.as_fd(), libc::SIGKILL);
        let mut p = libc::pollfd {
            fd: pfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        unsafe { libc::poll(&mut p, 1, 10_000) };
    }
}

/// Undoes what a killed create had made: its init, its cgroups, its host rootfs bind.
fn undo_creating(c: &state::Creating) -> Result<()> {
    kill_init_and_wait(c.pid, c.init_start);
    cgroups::kill_all(&c.cgroup_dirs)?;
    if let Some(unit) = &c.systemd_unit {
        SystemdCgroup::stop(unit)?;
    }
    cgroups::destroy(&c.cgroup_dirs)?;
    cgroups::remove_parents(&c.cgroup_parents);
    if let Some(r) = &c.host_rootfs {
        detach_host_rootfs(r);
    }
    Ok(())
}

/// Detaches the rootfs bind a container without a mount namespace left in the
/// host's mount namespace, with everything mounted on it.
fn detach_host_rootfs(rootfs: &Path) {
    if let Ok(c) = sys::cstr(rootfs) {
        // Only if it is still a mount point: its parent's device/mount differ.
        let is_mount = std::fs::read_to_string("/proc/self/mountinfo")
            .map(|mi| {
                mi.lines()
                    .any(|l| l.split(' ').nth(4) == Some(&*rootfs.to_string_lossy()))
            })
            .unwrap_or(false);
        if is_mount {
            let _ = sys::umount2(&c, libc::MNT_DETACH);
        }
    }
}

fn destroy(dir: Dir, s: &Saved) -> Result<()> {
    // Moved net devices are not moved back: runtime-spec 1.3 forbids it; the kernel
    // returns physical devices to the host when the namespace dies.
    let alive = state::process_alive(s.pid, s.init_start);
    if alive {
        if let Ok(pfd) = sys::pidfd_open(s.pid) {
            if state::process_alive(s.pid, s.init_start) {
                let _ = sys::pidfd_send_signal(pfd.as_fd(), libc::SIGKILL);
                // A frozen process only dies once thawed (also in a sub-cgroup the
                // container froze itself).
                cgroups::thaw_to_kill(&s.cgroup_dirs);
                let mut p = libc::pollfd {
                    fd: pfd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                unsafe { libc::poll(&mut p, 1, 10_000) };
            }
        }
    }
    // Without a pid namespace, the init's death leaves its children running.
    cgroups::kill_all(&s.cgroup_dirs)?;
    // systemd removes the scope's cgroups; destroy() then removes the ones it does
    // not manage (v1 hierarchies kraal joined itself).
    if let Some(unit) = &s.systemd_unit {
        SystemdCgroup::stop(unit)?;
    }
    cgroups::destroy(&s.cgroup_dirs)?;
    cgroups::remove_parents(&s.cgroup_parents);
    if s.host_mounts {
        detach_host_rootfs(&s.rootfs);
    }
    // Reap the init if it was our own child (`run`), so it does not linger as a zombie.
    let deadline = Instant::now() + Duration::from_millis(100);
    while Instant::now() < deadline {
        let mut st = 0;
        if unsafe { libc::waitpid(s.pid, &mut st, libc::WNOHANG) } != 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    if let Some(spec) = &s.config {
        let post = hook_list(spec, |h| h.poststop());
        if !post.is_empty() {
            let st = hooks::state_json(
                &s.oci_version,
                &s.id,
                "stopped",
                0,
                &s.bundle,
                &s.annotations,
            );
            // A failing poststop hook is only a warning, and the others still run.
            for w in hooks::run_all_warn("poststop", &post, &st) {
                crate::logging::warn(&w);
            }
        }
    }
    dir.remove()
}

/// The state as runc prints it for `state` and `list --format json`.
#[derive(Serialize)]
pub struct Report {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: String,
    pub bundle: String,
    pub rootfs: String,
    pub created: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    pub owner: String,
}

fn report(dir: &Dir, s: Option<&Saved>, id: &str, owner: String) -> Report {
    let status = dir.status(s);
    let d = Saved::default();
    let s = s.unwrap_or(&d);
    Report {
        oci_version: s.oci_version.clone(),
        id: id.to_string(),
        // runc reports pid 0 once the container has stopped.
        pid: if status == Status::Stopped { 0 } else { s.pid },
        status: status.to_string(),
        bundle: s.bundle.to_string_lossy().into_owned(),
        rootfs: s.rootfs.to_string_lossy().into_owned(),
        created: s.created.clone(),
        annotations: s.annotations.clone(),
        owner,
    }
}

pub fn state(root: &Path, id: &str) -> Result<Report> {
    let dir = Dir::open_read(root, id)?;
    let s = dir.load()?;
    Ok(report(&dir, s.as_ref(), id, String::new()))
}

fn owner_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| format!("#{uid}"))
}

pub fn list(root: &Path) -> Result<Vec<Report>> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    for id in state::list_ids(root)? {
        let Ok(dir) = Dir::open_read(root, &id) else {
            continue;
        };
        let owner = std::fs::metadata(&dir.path)
            .map(|m| owner_name(m.uid()))
            .unwrap_or_default();
        let s = dir.load().ok().flatten();
        out.push(report(&dir, s.as_ref(), &id, owner));
    }
    Ok(out)
}

/// `list` in runc's table layout (Go tabwriter: min width 12, padding 3).
pub fn format_table(rows: &[Report]) -> String {
    let mut cells: Vec<[String; 6]> = vec![[
        "ID".into(),
        "PID".into(),
        "STATUS".into(),
        "BUNDLE".into(),
        "CREATED".into(),
        "OWNER".into(),
    ]];
    for r in rows {
        cells.push([
            r.id.clone(),
            r.pid.to_string(),
            r.status.clone(),
            r.bundle.clone(),
            r.created.clone(),
            r.owner.clone(),
        ]);
    }
    let mut width = [0usize; 5];
    for row in &cells {
        for (i, w) in width.iter_mut().enumerate() {
            *w = (*w).max((row[i].chars().count() + 3).max(12));
        }
    }
    let mut s = String::new();
    for row in &cells {
        for (i, w) in width.iter().enumerate() {
            s.push_str(&format!("{:<w$}", row[i], w = *w));
        }
        s.push_str(&row[5]);
        s.push('\n');
    }
    s
}

/// Writes `config.json` for `kraal spec`.
pub fn write_spec(bundle: &Path, rootless: bool) -> Result<()> {
    let p = bundle.join("config.json");
    if p.exists() {
        bail!("File {} exists. Remove it first", p.display());
    }
    let v = crate::defaults::default_spec(rootless);
    let mut data = serde_json::to_vec_pretty(&v).context("encode config")?;
    data.push(b'\n');
    std::fs::write(&p, data).with_context(|| format!("write {}", p.display()))
}
