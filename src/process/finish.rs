//! The container process itself (`process` in config.json, or an exec's
//! process.json): converted once in the runtime, then applied as the last steps
//! before exec, identically for the init and for `exec`.

use crate::capabilities;
use crate::sys;
use anyhow::{anyhow, bail, Context, Result};
use std::ffi::{CStr, CString};
use std::path::PathBuf;

#[derive(Debug, Default, Clone)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub umask: Option<u32>,
}

/// What the process becomes, ready for syscalls.
#[derive(Default)]
pub struct Process {
    pub user: User,
    pub caps: capabilities::Sets,
    pub last_cap: u32,
    /// (resource, soft, hard) for setrlimit.
    pub rlimits: Vec<(u32, u64, u64)>,
    pub no_new_privs: bool,
    pub cwd: PathBuf,
    pub args: Vec<CString>,
    pub env: Vec<CString>,
    /// PATH from the process env, to find args[0] inside the container.
    pub path_env: String,
    /// fds below this number reach the process (stdio, LISTEN_FDS, --preserve-fds).
    pub keep_fds: u32,
    pub terminal: bool,
    pub console_size: Option<(u16, u16)>,
    pub seccomp: Option<crate::seccomp::Filter>,
    pub attrs: crate::process::attrs::Attrs,
}

/// What `become_process` found inside the container, for `exec`.
pub struct Resolved {
    pub exe: CString,
    /// HOME from the container's /etc/passwd when the config sets none (as runc).
    pub home: Option<CString>,
    /// The seccomp notify listener, when the filter has one (loaded before `Ready`).
    pub listener: Option<std::os::fd::OwnedFd>,
    /// The filter is already loaded (it had to be, while still privileged).
    pub seccomp_loaded: bool,
    /// `confine` ran: no_new_privs, the LSM exec labels and the filter are in place.
    pub confined: bool,
}

fn cstring(field: &str, s: &[u8]) -> Result<CString> {
    CString::new(s).map_err(|_| anyhow!("{field}: contains a NUL byte"))
}

impl Process {
    /// Converts a config `process`. `extra_env` is appended (LISTEN_FDS for the init).
    pub fn from_spec(
        p: &oci_spec::runtime::Process,
        keep_fds: u32,
        extra_env: &[String],
    ) -> Result<Process> {
        let mut env = Vec::new();
        let mut path_env =
            String::from("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        for (i, e) in p
            .env()
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .chain(extra_env)
            .enumerate()
        {
            if let Some(v) = e.strip_prefix("PATH=") {
                path_env = v.to_string();
            }
            env.push(cstring(&format!("process.env[{i}]"), e.as_bytes())?);
        }
        let mut args = Vec::new();
        for (i, a) in p.args().as_deref().unwrap_or(&[]).iter().enumerate() {
            args.push(cstring(&format!("process.args[{i}]"), a.as_bytes())?);
        }
        if args.is_empty() {
            bail!("process.args: must not be empty");
        }
        let u = p.user();
        let last_cap = capabilities::last_cap();
        Ok(Process {
            user: User {
                uid: u.uid(),
                gid: u.gid(),
                additional_gids: u.additional_gids().clone().unwrap_or_default(),
                umask: u.umask(),
            },
            caps: capabilities::from_spec(p.capabilities().as_ref(), last_cap)?,
            last_cap,
            rlimits: rlimits(p)?,
            no_new_privs: p.no_new_privileges().unwrap_or(false),
            cwd: p.cwd().clone(),
            args,
            env,
            path_env,
            keep_fds,
            terminal: p.terminal().unwrap_or(false),
            console_size: p
                .console_size()
                .map(|b| (b.height() as u16, b.width() as u16)),
            seccomp: None,
            attrs: crate::process::attrs::Attrs::from_process(p)?,
        })
    }
}

fn rlimits(process: &oci_spec::runtime::Process) -> Result<Vec<(u32, u64, u64)>> {
    let mut out = Vec::new();
    for (i, r) in process
        .rlimits()
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .enumerate()
    {
        let name = serde_json::to_value(r.typ()).context("encode rlimit type")?;
        let name = name.as_str().unwrap_or_default();
        let res = match name {
            "RLIMIT_AS" => libc::RLIMIT_AS,
            "RLIMIT_CORE" => libc::RLIMIT_CORE,
            "RLIMIT_CPU" => libc::RLIMIT_CPU,
            "RLIMIT_DATA" => libc::RLIMIT_DATA,
            "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
            "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
            "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
            "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
            "RLIMIT_NICE" => libc::RLIMIT_NICE,
            "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
            "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
            "RLIMIT_RSS" => libc::RLIMIT_RSS,
            "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
            "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
            "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
            "RLIMIT_STACK" => libc::RLIMIT_STACK,
            other => bail!("process.rlimits[{i}].type: unknown rlimit {other:?}"),
        };
        out.push((res, r.soft(), r.hard()));
    }
    Ok(out)
}

/// rlimits, cwd, args[0] and HOME resolved, seccomp (when it must load while
/// privileged), capabilities around the uid switch, umask, then seccomp with a notify
/// listener under no_new_privs. Runs inside the container's namespaces and root.
pub fn become_process(p: &Process) -> Result<Resolved> {
    for &(res, soft, hard) in &p.rlimits {
        let l = libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        if unsafe { libc::setrlimit(res as _, &l) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("process.rlimits: setrlimit({res}, {soft}, {hard})"));
        }
    }
    p.attrs.apply_early()?;
    // chdir as root first (runc does), and again as the user if root could not.
    let chdir_first = chdir(&p.cwd);
    if chdir_first.is_ok() {
        check_cwd()?;
    }
    // Everything that reads the filesystem happens before an early seccomp filter
    // can deny it (a profile may deny getcwd, stat, close_range...).
    let exe = find_executable(p)?;
    let home = if p.env.iter().any(|e| e.to_bytes().starts_with(b"HOME=")) {
        None
    } else {
        Some(cstring(
            "HOME",
            format!("HOME={}", home_of(p.user.uid)).as_bytes(),
        )?)
    };
    sys::cloexec_from(p.keep_fds).context("mark fds close-on-exec")?;
    // Without no_new_privs the kernel wants CAP_SYS_ADMIN to load a filter: load it
    // now, while still privileged, as runc does. The uid switch then runs under it.
    let mut listener = None;
    let mut seccomp_loaded = false;
    if let Some(f) = p.seccomp.as_ref().filter(|_| !p.no_new_privs) {
        listener = f.load().context("linux.seccomp: load the filter")?;
        seccomp_loaded = true;
    }
    capabilities::before_setuid(&p.caps, p.last_cap)?;
    set_user(&p.user)?;
    capabilities::after_setuid(&p.caps)?;
    if let Err(e) = chdir_first {
        if !matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM)) {
            return Err(e).with_context(|| format!("process.cwd: chdir {}", p.cwd.display()));
        }
        chdir(&p.cwd).with_context(|| format!("process.cwd: chdir {}", p.cwd.display()))?;
        check_cwd()?;
    }
    if let Some(m) = p.user.umask {
        unsafe { libc::umask(m as libc::mode_t) };
    }
    // With no_new_privs, a notify listener must still reach the runtime before
    // `Ready`, so its filter cannot wait for `exec`: load it here, after the uid
    // switch, capabilities, chdir and umask, so none of those is filtered.
    if let Some(f) = p
        .seccomp
        .as_ref()
        .filter(|f| p.no_new_privs && f.listener().is_some())
    {
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(std::io::Error::last_os_error()).context("process.noNewPrivileges: prctl");
        }
        listener = f.load().context("linux.seccomp: load the filter")?;
        seccomp_loaded = true;
    }
    Ok(Resolved {
        exe,
        home,
        listener,
        seccomp_loaded,
        confined: false,
    })
}

/// At most this much of the container's /etc/passwd is read: the file is the
/// container's, and a huge one must not make kraal's memory or time grow with it.
const PASSWD_LIMIT: u64 = 4 << 20;

/// Opens a file of the container for reading, refusing what could hang or flood the
/// reader: resolved inside the current root (RESOLVE_IN_ROOT, no magic links, so a
/// symlink cannot lead out of it), opened O_NONBLOCK (a FIFO's open does not wait
/// for a writer), and accepted only when it is a regular file (not a FIFO, a device
/// such as /dev/zero, a socket or a directory).
fn open_container_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::fd::AsFd;
    let root = sys::openat(None, c"/", libc::O_PATH | libc::O_DIRECTORY, 0)?;
    let rel = crate::fs::safe_path::relative(path);
    let fd = sys::openat2(
        root.as_fd(),
        &sys::cstr(&rel)?,
        libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY,
        0,
        sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS,
    )?;
    let f = std::fs::File::from(fd);
    if !f.metadata()?.file_type().is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(f)
}

/// The home directory of `uid` in the container's /etc/passwd, "/" when unknown
/// (also when the file is missing, not a regular file, or has no such entry in its
/// first [`PASSWD_LIMIT`] bytes).
fn home_of(uid: u32) -> String {
    use std::io::{BufRead, Read};
    let Ok(f) = open_container_file(std::path::Path::new("/etc/passwd")) else {
        return "/".into();
    };
    let mut lines = std::io::BufReader::new(f.take(PASSWD_LIMIT));
    let mut line = Vec::new();
    loop {
        line.clear();
        // Bytes, not a String: one bad byte elsewhere must not hide the entry.
        match lines.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return "/".into(),
            Ok(_) => {}
        }
        let l = String::from_utf8_lossy(&line);
        let f: Vec<&str> = l.trim_end_matches('\n').split(':').collect();
        if f.len() >= 6 && f[2].parse() == Ok(uid) {
            return if f[5].is_empty() {
                "/".into()
            } else {
                f[5].to_string()
            };
        }
    }
}

/// What confines the process from its execve on: no_new_privs, the LSM exec labels
/// and the seccomp filter (each unless already in place). `exec` calls it last, so
/// none of kraal's own syscalls are filtered; the init calls it earlier when
/// startContainer hooks run, because those run programs of the image and must be
/// confined as the process will be (as runc does).
pub fn confine(p: &Process, r: &mut Resolved) -> Result<()> {
    if r.confined {
        return Ok(());
    }
    // Already set when a listener's filter was loaded early: the filter may deny prctl.
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS) takes no pointers.
    if p.no_new_privs
        && !r.seccomp_loaded
        && unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0
    {
        return Err(std::io::Error::last_os_error()).context("process.noNewPrivileges: prctl");
    }
    p.attrs.apply_late()?;
    if let (Some(f), false) = (&p.seccomp, r.seccomp_loaded) {
        f.load().context("linux.seccomp: load the filter")?;
        r.seccomp_loaded = true;
    }
    r.confined = true;
    Ok(())
}

/// The very last steps: clean signal state, only the kept fds, `confine`, execve.
/// Returns only on error.
pub fn exec(p: &Process, r: &mut Resolved) -> Result<std::convert::Infallible> {
    unsafe {
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        // The Rust runtime ignores SIGPIPE; an ignored signal would survive exec.
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    confine(p, r)?;
    let exe = &r.exe;
    let mut argv: Vec<*const libc::c_char> = p.args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> =
        p.env.iter().chain(&r.home).map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    unsafe { libc::execve(exe.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    Err(std::io::Error::last_os_error()).with_context(|| format!("exec {exe:?}"))
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
    // Whether setgroups is allowed here is the kernel's answer, not what a file in
    // the container's /proc says (an `exec` joins a running container, which may
    // have shaped its /proc). EPERM with no groups asked for is a user namespace whose
    // setgroups is "deny": the caller's groups were dropped before joining it
    // (exec), or are a rootless caller's own, which no runtime can drop.
    let gids: &[libc::gid_t] = &u.additional_gids;
    // SAFETY: setgroups(2) reads gids.len() gids from a live slice.
    if unsafe { libc::setgroups(gids.len(), gids.as_ptr()) } != 0 {
        let e = std::io::Error::last_os_error();
        match (e.raw_os_error(), gids.is_empty()) {
            (Some(libc::EPERM), true) => {}
            (Some(libc::EPERM), false) => {
                bail!("process.user.additionalGids: setgroups is denied in this user namespace")
            }
            _ => return Err(e).context("process.user.additionalGids: setgroups"),
        }
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

/// An errno's text as Go prints it ("no such file or directory"), without Rust's
/// capital letter and "(os error N)".
fn errno_text(e: &std::io::Error) -> String {
    let Some(n) = e.raw_os_error() else {
        return e.to_string();
    };
    // SAFETY: strerror returns a static, NUL-terminated string.
    let s = unsafe { CStr::from_ptr(libc::strerror(n)) }.to_string_lossy();
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => s.into_owned(),
    }
}

/// Resolves args[0] as execvp would, with the container's PATH, before the process
/// is reported ready, so a missing binary fails `create`/`exec` with a clear error.
fn find_executable(p: &Process) -> Result<CString> {
    let Some(arg0) = p.args.first() else {
        bail!("process.args: must not be empty")
    };
    let a = arg0.to_bytes();
    if a.contains(&b'/') {
        if executable(arg0) {
            return Ok(arg0.clone());
        }
        // Go's exec.LookPath wording, which runc reports: Podman and Docker map
        // "no such file or directory" to exit 127 and "permission denied" to 126.
        // A directory is "permission denied" too, as runc 1.1 says (Podman 4.3
        // knows no "is a directory" and would report a bare runtime error).
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        let why = if unsafe { libc::stat(arg0.as_ptr(), &mut st) } != 0 {
            let e = std::io::Error::last_os_error();
            format!("stat {}: {}", arg0.to_string_lossy(), errno_text(&e))
        } else {
            "permission denied".to_string()
        };
        bail!("process.args[0]: exec: {:?}: {why}", arg0);
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
