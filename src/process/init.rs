//! The container's init, between fork and exec: the whole setup sequence as one list
//! of steps, in the order the runtime spec and the kernel require.
//!
//! Everything it needs was prepared by the runtime before the fork (paths opened,
//! strings converted), so this code does syscalls, not parsing.

use crate::fs::safe_path;
use crate::namespaces;
use crate::process::finish::{self, become_process, Process};
use crate::process::sync::{Channel, Msg};
use crate::rootfs;
use crate::sys;
use crate::tty;
use anyhow::{bail, Context, Result};
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

/// Everything the init needs, computed by the runtime before the fork.
#[derive(Default)]
pub struct Plan {
    pub ns: namespaces::Plan,
    pub rootfs: rootfs::Plan,
    pub hostname: Option<CString>,
    pub domainname: Option<CString>,
    pub oom_score_adj: Option<i32>,
    /// False when config.json has no `process`: set up, then wait to be deleted.
    pub has_process: bool,
    /// v1 `tasks` files the init writes "0" into to join its cgroups itself: moving
    /// a single thread avoids the RCU grace period a migration by pid waits for.
    pub join_tasks: Vec<CString>,
    pub process: Process,
    /// A connected `--console-socket` to send the pty master to.
    pub console_socket: Option<RawFd>,
    pub no_new_keyring: bool,
    /// Ask the runtime to run prestart/createRuntime hooks before pivot_root.
    pub create_hooks: bool,
    /// Run in the container's namespaces: before pivot_root, and after `start`.
    pub create_container_hooks: Vec<oci_spec::runtime::Hook>,
    pub start_container_hooks: Vec<oci_spec::runtime::Hook>,
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
    // Past `start`, `kraal start` reads exec.fifo until the init execs: tell it there.
    let after_start = AFTER_START.load(std::sync::atomic::Ordering::Relaxed);
    if after_start >= 0 {
        unsafe { libc::write(after_start, msg.as_ptr().cast(), msg.len()) };
    } else if chan.send(&Msg::Error(msg.clone())).is_err() {
        eprintln!("kraal: {msg}");
    }
    unsafe { libc::_exit(1) }
}

/// The write end of exec.fifo once `start` opened it (close-on-exec: `start` sees
/// EOF exactly when execve succeeds, or the error text if something failed first).
static AFTER_START: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

fn init(p: &Plan, chan: &Channel) -> Result<std::convert::Infallible> {
    chan.expect(&Msg::Go).context("wait for the runtime")?;
    for t in &p.join_tasks {
        let f = sys::openat(None, t, libc::O_WRONLY, 0)
            .with_context(|| format!("join cgroup: open {}", t.to_string_lossy()))?;
        if unsafe { libc::write(f.as_raw_fd(), b"0".as_ptr().cast(), 1) } != 1 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("join cgroup: write {}", t.to_string_lossy()));
        }
    }
    let mut k = namespaces::Kernel::new(&p.ns)?;
    // Until execve replaces it, this process is kraal's image inside the container:
    // keep its /proc entries (exe, fds, memory) out of the container's reach
    // (CVE-2019-5736 class). execve makes the user process dumpable again.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };

    namespaces::enter_user(&p.ns, &mut k)?;
    if p.ns.new_userns || p.ns.join_user.is_some() {
        become_root_in_userns()?;
    }
    namespaces::enter_rest(&p.ns, &mut k)?;
    drop(k);
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
    {
        let root = rootfs::prepare(&p.rootfs)?;
        if p.create_hooks {
            chan.send(&Msg::CreateHooks)
                .context("sync: request createRuntime hooks")?;
            match chan.recv().context("sync: wait for createRuntime hooks")? {
                Some(Msg::HooksDone(s)) => state = s,
                _ => bail!("createRuntime hooks failed"),
            }
            crate::hooks::run_all("createContainer", &p.create_container_hooks, &state)?;
        }
        rootfs::pivot(&p.rootfs, &root)?;
        drop(root);
        if p.process.terminal {
            setup_terminal(p, chan)?;
        }
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

    if !p.has_process {
        chan.send(&Msg::Ready).context("sync: send Ready")?;
        loop {
            unsafe { libc::pause() };
        }
    }
    let mut resolved = become_process(&p.process)?;
    if let Some(l) = &resolved.listener {
        chan.send_seccomp(l.as_fd())
            .context("sync: send the seccomp listener")?;
    }

    chan.send(&Msg::Ready).context("sync: send Ready")?;
    wait_for_start(host_proc, p.fifo)?;
    if !p.start_container_hooks.is_empty() {
        // The hooks' paths resolve in the container: the image chooses what runs,
        // so it runs as confined as the process will be.
        finish::confine(&p.process, &mut resolved)?;
        let state = start_state(&state);
        crate::hooks::run_all("startContainer", &p.start_container_hooks, &state)?;
    }

    finish::exec(&p.process, &mut resolved)
}

/// A pty from the container's own devpts becomes the init's controlling terminal
/// and /dev/console; its master goes to the console socket, or to the runtime.
fn setup_terminal(p: &Plan, chan: &Channel) -> Result<()> {
    let (master, slave) =
        tty::open_pty(c"/dev/ptmx").context("process.terminal: allocate a pty")?;
    if let Some((rows, cols)) = p.process.console_size {
        tty::set_size(master.as_fd(), rows, cols)?;
    }
    let root = sys::openat(None, c"/", libc::O_PATH | libc::O_DIRECTORY, 0).context("open /")?;
    // CVE-2025-52565: bind the pty through fds, never through a path the image
    // controls, and never onto whatever a symlink at /dev/console points to.
    let console_path = std::path::Path::new("dev/console");
    if let Ok(fd) = safe_path::open_nofollow(root.as_fd(), console_path) {
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } == 0
            && st.st_mode & libc::S_IFMT == libc::S_IFLNK
        {
            bail!("process.terminal: /dev/console in the container is a symlink; refusing to mount the console on it");
        }
    }
    let console =
        safe_path::create_file(root.as_fd(), console_path, 0o600).context("create /dev/console")?;
    // After pivot_root a path like /proc/self/fd/N would be resolved through the
    // container's /proc: clone the slave's mount by its fd and attach it by fd.
    let tree = crate::mounts::clone_tree(Some(slave.as_fd()), c"", false)
        .context("clone the pty for /dev/console")?;
    crate::mounts::attach(tree.as_fd(), console.as_fd())
        .context("bind the pty onto /dev/console")?;
    tty::become_session_leader(slave.as_fd())?;
    match p.console_socket {
        Some(fd) => {
            let sock = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            tty::send_fd(sock, master.as_fd(), b"/dev/ptmx")
                .context("--console-socket: send the pty master")?;
            unsafe { libc::close(fd) };
        }
        None => chan
            .send_pty(master.as_fd())
            .context("sync: send the pty master")?,
    }
    Ok(())
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
    unsafe { libc::close(fifo) };
    // Kept open until execve closes it.
    AFTER_START.store(
        std::os::fd::IntoRawFd::into_raw_fd(w),
        std::sync::atomic::Ordering::Relaxed,
    );
    Ok(())
}
