//! The container's init, between fork and exec: the whole setup sequence as one list
//! of steps, in the order the runtime spec and the kernel require.
//!
//! Everything it needs was prepared by the runtime before the fork (paths opened,
//! strings converted), so this code does syscalls, not parsing.

use crate::namespaces;
use crate::process::sync::{Channel, Msg};
use crate::rootfs;
use crate::sys;
use anyhow::{bail, Context, Result};
use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

#[derive(Debug, Default, Clone)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub umask: Option<u32>,
}

/// Everything the init needs, computed by the runtime before the fork.
#[derive(Default)]
pub struct Plan {
    pub ns: namespaces::Plan,
    pub rootfs: rootfs::Plan,
    pub hostname: Option<CString>,
    pub domainname: Option<CString>,
    pub oom_score_adj: Option<i32>,
    pub user: User,
    pub caps: crate::capabilities::Sets,
    pub last_cap: u32,
    /// (resource, soft, hard) for setrlimit.
    pub rlimits: Vec<(u32, u64, u64)>,
    pub no_new_privs: bool,
    pub cwd: PathBuf,
    pub args: Vec<CString>,
    pub env: Vec<CString>,
    /// PATH from the process env, to find args[0] inside the container.
    pub path_env: String,
    pub no_new_keyring: bool,
    /// Ask the runtime to run prestart/createRuntime hooks before pivot_root.
    pub create_hooks: bool,
    /// Run in the container's namespaces: before pivot_root, and after `start`.
    pub create_container_hooks: Vec<oci_spec::runtime::Hook>,
    pub start_container_hooks: Vec<oci_spec::runtime::Hook>,
    /// fds below this number reach the container (stdio, LISTEN_FDS, --preserve-fds).
    pub keep_fds: u32,
    /// The O_PATH fd of exec.fifo.
    pub fifo: RawFd,
}

/// Runs the init; never returns. Errors go to the runtime over `chan`.
pub fn run(plan: &Plan, chan: &Channel) -> ! {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| init(plan, chan)));
    let msg = match r {
        Ok(Ok(never)) => match never {},
        Ok(Err(e)) => format!("{e:#}"),
        Err(_) => "container init panicked".to_string(),
    };
    // Past `Ready` nobody reads the channel: then the container's stderr is the place.
    if chan.send(&Msg::Error(msg.clone())).is_err() {
        eprintln!("kraal: {msg}");
    }
    unsafe { libc::_exit(1) }
}

fn init(p: &Plan, chan: &Channel) -> Result<std::convert::Infallible> {
    chan.expect(&Msg::Go).context("wait for the runtime")?;

    let mut k = namespaces::Kernel;
    namespaces::enter_user(&p.ns, &mut k)?;
    if p.ns.new_userns || p.ns.join_user.is_some() {
        become_root_in_userns()?;
    }
    namespaces::enter_rest(&p.ns, &mut k)?;
    if p.ns.extra_fork {
        fork_again(chan)?;
    }

    if let Some(adj) = p.oom_score_adj {
        sys::write_file(
            std::path::Path::new("/proc/self/oom_score_adj"),
            adj.to_string().as_bytes(),
        )
        .with_context(|| format!("process.oomScoreAdj: write {adj}"))?;
    }

    // Held from before pivot_root to reopen exec.fifo; closed before exec.
    let host_proc =
        sys::openat(None, c"/proc", libc::O_PATH | libc::O_DIRECTORY, 0).context("open /proc")?;

    // The runtime-spec state for hooks run from here, sent by the runtime.
    let mut state: Vec<u8> = Vec::new();
    if p.ns.has_mntns() {
        let root = rootfs::prepare(&p.rootfs)?;
        if p.create_hooks {
            chan.send(&Msg::CreateHooks).context("sync: request createRuntime hooks")?;
            match chan.recv().context("sync: wait for createRuntime hooks")? {
                Some(Msg::HooksDone(s)) => state = s,
                _ => bail!("createRuntime hooks failed"),
            }
            crate::hooks::run_all("createContainer", &p.create_container_hooks, &state)?;
        }
        rootfs::pivot(&p.rootfs, &root)?;
        drop(root);
        rootfs::finish(&p.rootfs)?;
    }

    if let Some(h) = &p.hostname {
        if unsafe { libc::sethostname(h.as_ptr(), h.as_bytes().len()) } != 0 {
            return Err(std::io::Error::last_os_error()).context("hostname: sethostname");
        }
    }
    if let Some(d) = &p.domainname {
        if unsafe { libc::setdomainname(d.as_ptr(), d.as_bytes().len()) } != 0 {
            return Err(std::io::Error::last_os_error()).context("domainname: setdomainname");
        }
    }
    if !p.no_new_keyring {
        join_session_keyring()?;
    }

    for &(res, soft, hard) in &p.rlimits {
        let l = libc::rlimit { rlim_cur: soft, rlim_max: hard };
        if unsafe { libc::setrlimit(res as _, &l) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("process.rlimits: setrlimit({res}, {soft}, {hard})"));
        }
    }

    let chdir_first = chdir(&p.cwd);
    crate::capabilities::before_setuid(&p.caps, p.last_cap)?;
    set_user(&p.user)?;
    crate::capabilities::after_setuid(&p.caps)?;
    if let Err(e) = chdir_first {
        if !matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM)) {
            return Err(e).with_context(|| format!("process.cwd: chdir {}", p.cwd.display()));
        }
        chdir(&p.cwd).with_context(|| format!("process.cwd: chdir {}", p.cwd.display()))?;
    }
    check_cwd()?;
    if let Some(m) = p.user.umask {
        unsafe { libc::umask(m as libc::mode_t) };
    }
    let exe = find_executable(p)?;

    chan.send(&Msg::Ready).context("sync: send Ready")?;
    wait_for_start(host_proc, p.fifo)?;
    if !p.start_container_hooks.is_empty() {
        let state = start_state(&state);
        crate::hooks::run_all("startContainer", &p.start_container_hooks, &state)?;
    }

    unsafe {
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        // The Rust runtime ignores SIGPIPE; an ignored signal would survive exec.
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    sys::cloexec_from(p.keep_fds).context("mark fds close-on-exec")?;
    if p.no_new_privs && unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error()).context("process.noNewPrivileges: prctl");
    }
    exec(&exe, &p.args, &p.env)
}

/// The hook state after `start`: the user process is about to be exec'd, so the
/// container is still `created`.
fn start_state(create_state: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<serde_json::Value>(create_state) {
        Ok(mut v) => {
            v["status"] = "created".into();
            serde_json::to_vec(&v).unwrap_or_default()
        }
        Err(_) => create_state.to_vec(),
    }
}

fn become_root_in_userns() -> Result<()> {
    if unsafe { libc::setresgid(0, 0, 0) } != 0 || unsafe { libc::setresuid(0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error())
            .context("become root in the user namespace (are uid/gid 0 mapped?)");
    }
    Ok(())
}

/// A joined pid namespace applies to children only: the grandchild becomes the init.
fn fork_again(chan: &Channel) -> Result<()> {
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error())
            .context("fork the init into the pid namespace");
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
        .context("wait for the runtime after the second fork")
}

fn join_session_keyring() -> Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    let r = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
        )
    };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        // Kernels without keyrings, or a seccomp'd runtime environment, refuse it.
        if !matches!(
            e.raw_os_error(),
            Some(libc::ENOSYS) | Some(libc::EACCES) | Some(libc::EPERM)
        ) {
            return Err(e).context("join a new session keyring");
        }
    }
    Ok(())
}

fn chdir(p: &std::path::Path) -> std::io::Result<()> {
    let c = sys::cstr(p)?;
    if unsafe { libc::chdir(c.as_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// CVE-2024-21626: a cwd outside the container's root shows as "(unreachable)".
fn check_cwd() -> Result<()> {
    let cwd = std::env::current_dir().context("getcwd")?;
    if !cwd.is_absolute() || cwd.to_string_lossy().starts_with("(unreachable)") {
        bail!(
            "process.cwd: the working directory {} is outside the container",
            cwd.display()
        );
    }
    Ok(())
}

fn set_user(u: &User) -> Result<()> {
    let setgroups_allowed = std::fs::read_to_string("/proc/self/setgroups")
        .map(|s| s.trim() != "deny")
        .unwrap_or(true);
    if setgroups_allowed {
        let gids: Vec<libc::gid_t> = u.additional_gids.clone();
        if unsafe { libc::setgroups(gids.len(), gids.as_ptr()) } != 0 {
            return Err(std::io::Error::last_os_error())
                .context("process.user.additionalGids: setgroups");
        }
    } else if !u.additional_gids.is_empty() {
        bail!("process.user.additionalGids: setgroups is denied in this user namespace");
    }
    if unsafe { libc::setresgid(u.gid, u.gid, u.gid) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("process.user.gid: setresgid {}", u.gid));
    }
    if unsafe { libc::setresuid(u.uid, u.uid, u.uid) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("process.user.uid: setresuid {}", u.uid));
    }
    Ok(())
}

fn executable(path: &CStr) -> bool {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let found = unsafe { libc::stat(path.as_ptr(), &mut st) } == 0;
    found
        && (st.st_mode & libc::S_IFMT) == libc::S_IFREG
        && unsafe { libc::access(path.as_ptr(), libc::X_OK) } == 0
}

/// Resolves args[0] as execvp would, with the container's PATH, before `Ready`, so a
/// missing binary fails `create` rather than leaving a container that cannot start.
fn find_executable(p: &Plan) -> Result<CString> {
    let Some(arg0) = p.args.first() else {
        bail!("process.args: must not be empty")
    };
    let a = arg0.to_bytes();
    if a.contains(&b'/') {
        if executable(arg0) {
            return Ok(arg0.clone());
        }
        bail!("process.args[0]: exec: {:?}: no such executable file", arg0);
    }
    for dir in p.path_env.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let mut cand = dir.as_bytes().to_vec();
        cand.push(b'/');
        cand.extend_from_slice(a);
        if let Ok(c) = CString::new(cand) {
            if executable(&c) {
                return Ok(c);
            }
        }
    }
    bail!(
        "process.args[0]: exec: {:?}: executable file not found in $PATH",
        arg0
    )
}

/// Blocks until `kraal start` opens exec.fifo for reading.
fn wait_for_start(host_proc: OwnedFd, fifo: RawFd) -> Result<()> {
    let rel = CString::new(format!("self/fd/{fifo}")).context("fifo path")?;
    let w =
        sys::openat(Some(host_proc.as_fd()), &rel, libc::O_WRONLY, 0).context("open exec.fifo")?;
    drop(host_proc);
    let r = unsafe { libc::write(w.as_raw_fd(), b"0".as_ptr().cast(), 1) };
    if r != 1 {
        return Err(std::io::Error::last_os_error()).context("write exec.fifo");
    }
    drop(w);
    unsafe { libc::close(fifo) };
    Ok(())
}

fn exec(exe: &CStr, args: &[CString], env: &[CString]) -> Result<std::convert::Infallible> {
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    unsafe { libc::execve(exe.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    let e = std::io::Error::last_os_error();
    // Past `Ready` nobody reads the sync socket: say it where the container's stderr goes.
    eprintln!("kraal: exec {exe:?}: {e}");
    unsafe { libc::_exit(127) }
}
