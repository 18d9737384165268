//! Seccomp filters from `linux.seccomp`.
//!
//! The work is split around the fork so that the container's init does no libseccomp
//! work and almost no syscalls once the filter is in place:
//!
//! 1. [`compile`] (runtime process, before the fork) checks the profile, builds the
//!    filter with libseccomp and exports it as a classic BPF program plus the flags for
//!    seccomp(2).
//! 2. [`Filter::load`] (container init, just before exec) installs the program with the
//!    raw seccomp(2) syscall and, for `SCMP_ACT_NOTIFY`, returns the listener fd.
//! 3. [`process_state`] and [`send_listener`] (runtime process) hand the listener fd and
//!    the container process state to the seccomp agent at `listenerPath`, as the
//!    runtime-spec's "Container Process State" section describes.
//!
//! # Where the caller must call [`Filter::load`]
//!
//! The kernel only accepts a filter from a task that has `no_new_privs` set or holds
//! `CAP_SYS_ADMIN` in its user namespace. Like runc:
//!
//! * `process.noNewPrivileges: true`: set `PR_SET_NO_NEW_PRIVS` first (any time before
//!   the load), then load as the very last step before execve, after the uid/gid switch
//!   and after capabilities are dropped. Only the syscalls between the load and execve
//!   (and execve itself) must be allowed by the profile.
//! * `process.noNewPrivileges: false`: load while `CAP_SYS_ADMIN` is still effective,
//!   i.e. before the uid switch and before the capability sets are applied. The uid
//!   switch (setresuid, setgroups, capset, prctl, ...) then runs under the filter.
//!   Loading later fails with an error that says so.
//!
//! With a listener ([`Filter::listener`]), the init must pass the fd to the runtime
//! before any notified syscall can happen and while the runtime still waits for it
//! (before `Ready`: after `create` returns nobody could forward it). The handoff itself
//! must not be notified, hence [`NOTIFY_FORBIDDEN`].
//!
//! Unlike runc, no -ENOSYS stub is prepended for syscalls newer than the profile: they
//! get the default action (the Docker/Podman profiles default to ENOSYS already).

use anyhow::{anyhow, bail, Context, Result};
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
    ScmpVersion,
};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator,
};
use serde_json::{json, Value};
use std::fs::File;
use std::io::{IoSlice, Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// A syscall has at most six arguments.
const MAX_ARGS: usize = 6;

/// errno values the kernel passes through; SECCOMP_RET_ERRNO clamps larger data to this.
const MAX_ERRNO: u32 = 4095;

/// Name of the listener fd in the container process state's `fds` array.
pub const SECCOMP_FD_NAME: &str = "seccompFd";

/// Syscalls that `SCMP_ACT_NOTIFY` may not name: the init hands the listener fd to the
/// runtime with one of them, and a notified handoff would wait forever for an agent
/// that has not got the fd yet. runc refuses `write` for the same reason.
pub const NOTIFY_FORBIDDEN: &[&str] = &["write", "sendto", "sendmsg"];

/// A compiled filter, ready to be installed by the container's init.
pub struct Filter {
    program: Vec<libc::sock_filter>,
    flags: u32,
    listener: Option<Listener>,
}

/// Where the `SCMP_ACT_NOTIFY` listener fd goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    /// `linux.seccomp.listenerPath`: the seccomp agent's unix socket.
    pub path: PathBuf,
    /// `linux.seccomp.listenerMetadata`, sent as `metadata`.
    pub metadata: Option<String>,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter")
            .field("instructions", &self.program.len())
            .field("flags", &format_args!("{:#x}", self.flags))
            .field("listener", &self.listener)
            .finish()
    }
}

/// The libseccomp version kraal runs with, e.g. `2.5.4`.
pub fn version() -> String {
    match ScmpVersion::current() {
        Ok(v) => v.to_string(),
        Err(_) => "unknown".to_string(),
    }
}

/// Checks `linux.seccomp` and compiles it to a BPF program. Runs in the runtime
/// process; errors name the field at fault.
pub fn compile(s: &LinuxSeccomp) -> Result<Filter> {
    let default = action(
        s.default_action(),
        s.default_errno_ret(),
        "linux.seccomp.defaultAction",
        "linux.seccomp.defaultErrnoRet",
    )?;
    if default == ScmpAction::Notify {
        bail!(
            "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action \
             (the container's init could not hand the listener fd to the runtime)"
        );
    }
    if s.listener_metadata().is_some() && s.listener_path().is_none() {
        bail!("linux.seccomp.listenerMetadata: set without linux.seccomp.listenerPath");
    }

    let mut ctx = ScmpFilterContext::new(default)
        .map_err(|e| anyhow!("linux.seccomp: create a libseccomp filter: {e}"))?;
    for (i, arch) in s.architectures().iter().flatten().enumerate() {
        ctx.add_arch(scmp_arch(*arch)).map_err(|e| {
            anyhow!(
                "linux.seccomp.architectures[{i}]: {arch} is not supported by libseccomp {}: {e}",
                version()
            )
        })?;
    }

    let mut flags = filter_flags(s.flags().as_deref())?;

    let syscalls = s.syscalls().as_deref().unwrap_or_default();
    // libseccomp <= 2.5.4 misbehaves with the binary tree and no rules; runc uses the
    // same threshold.
    if syscalls.len() > 32 {
        if let Err(e) = ctx.set_ctl_optimize(2) {
            crate::logging::debug(&format!(
                "seccomp: binary tree optimization unavailable: {e}"
            ));
        }
    }

    let mut notify = false;
    for (i, rule) in syscalls.iter().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        let act = action(
            rule.action(),
            rule.errno_ret(),
            &format!("{field}.action"),
            &format!("{field}.errnoRet"),
        )?;
        if rule.names().is_empty() {
            bail!("{field}.names: must name at least one syscall");
        }
        if act == ScmpAction::Notify {
            notify = true;
            if let Some(name) = rule
                .names()
                .iter()
                .find(|n| NOTIFY_FORBIDDEN.contains(&n.as_str()))
            {
                bail!(
                    "{field}: SCMP_ACT_NOTIFY cannot be used for {name:?}: the container's \
                     init needs it to hand the listener fd to the runtime"
                );
            }
        }
        let groups = conditions(rule.args().as_deref().unwrap_or_default(), &field)?;
        for (j, name) in rule.names().iter().enumerate() {
            if name.is_empty() {
                bail!("{field}.names[{j}]: empty syscall name");
            }
            // libseccomp refuses a rule whose action is the default one; it would
            // change nothing anyway.
            if act == default {
                continue;
            }
            let Ok(nr) = ScmpSyscall::from_name(name) else {
                // runc does the same: profiles list syscalls newer than libseccomp.
                crate::logging::debug(&format!(
                    "seccomp: unknown syscall {name:?} ignored ({field}.names[{j}])"
                ));
                continue;
            };
            for conds in &groups {
                ctx.add_rule_conditional(act, nr, conds).map_err(|e| {
                    anyhow!(
                        "{field}: add the {} rule for syscall {name:?}: {e}",
                        rule.action()
                    )
                })?;
            }
        }
    }

    let listener = if notify {
        let Some(path) = s.listener_path() else {
            bail!("linux.seccomp.listenerPath: required when SCMP_ACT_NOTIFY is used");
        };
        if path.as_os_str().is_empty() {
            bail!("linux.seccomp.listenerPath: empty path");
        }
        flags |= libc::SECCOMP_FILTER_FLAG_NEW_LISTENER as u32;
        Some(Listener {
            path: path.clone(),
            metadata: s.listener_metadata().clone(),
        })
    } else {
        // The kernel refuses WAIT_KILLABLE_RECV without a listener, where it means nothing.
        if flags & libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV as u32 != 0 {
            crate::logging::debug(
                "seccomp: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV ignored: no SCMP_ACT_NOTIFY rule",
            );
            flags &= !(libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV as u32);
        }
        None
    };

    let program = export(&ctx)?;
    if program.is_empty() || program.len() > libc::BPF_MAXINSNS as usize {
        bail!(
            "linux.seccomp: the filter compiles to {} BPF instructions; the kernel accepts 1 to {}",
            program.len(),
            libc::BPF_MAXINSNS
        );
    }
    crate::logging::debug(&format!(
        "seccomp: {} BPF instructions, filter flags {flags}",
        program.len()
    ));
    Ok(Filter {
        program,
        flags,
        listener,
    })
}

impl Filter {
    /// Installs the filter on the calling thread with seccomp(2). Runs in the
    /// container's init right before exec; see the module docs for the order relative
    /// to no_new_privs, the uid switch and capabilities. Returns the notify listener
    /// (close-on-exec) when the profile uses `SCMP_ACT_NOTIFY`.
    ///
    /// The success path makes exactly one syscall and allocates nothing.
    pub fn load(&self) -> Result<Option<OwnedFd>> {
        let prog = libc::sock_fprog {
            // compile() keeps the length within BPF_MAXINSNS.
            len: self.program.len() as libc::c_ushort,
            filter: self.program.as_ptr().cast_mut(),
        };
        // SAFETY: prog points at self.program, which outlives the call; the kernel
        // copies the program and does not keep the pointer.
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER as libc::c_ulong,
                self.flags as libc::c_ulong,
                &prog as *const libc::sock_fprog,
            )
        };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EACCES) {
                bail!(
                    "seccomp: load the filter: {e}: without process.noNewPrivileges the \
                     filter must be loaded while CAP_SYS_ADMIN is held"
                );
            }
            bail!("seccomp: load the filter (flags {:#x}): {e}", self.flags);
        }
        if self.listener.is_some() {
            // SAFETY: with NEW_LISTENER the kernel returns a new fd that we now own.
            Ok(Some(unsafe { OwnedFd::from_raw_fd(r as libc::c_int) }))
        } else {
            Ok(None)
        }
    }

    /// The seccomp agent to send the listener fd to, when the profile uses
    /// `SCMP_ACT_NOTIFY`.
    pub fn listener(&self) -> Option<&Listener> {
        self.listener.as_ref()
    }

    /// The flags passed to seccomp(2) (`SECCOMP_FILTER_FLAG_*`).
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// The BPF program.
    pub fn instructions(&self) -> &[libc::sock_filter] {
        &self.program
    }
}

/// The runtime-spec "container process state" sent to the seccomp agent: `pid` is the
/// container process as the runtime sees it, `container_state` the container's state
/// JSON (as `kraal state` prints it; `status` is `creating` during `create`).
pub fn process_state(pid: i32, metadata: Option<&str>, container_state: &[u8]) -> Result<Vec<u8>> {
    let state: Value = serde_json::from_slice(container_state)
        .context("seccomp agent: the container state is not valid JSON")?;
    if !state.is_object() {
        bail!("seccomp agent: the container state is not a JSON object");
    }
    let mut doc = json!({
        "ociVersion": crate::OCI_VERSION,
        "fds": [SECCOMP_FD_NAME],
        "pid": pid,
        "state": state,
    });
    if let Some(m) = metadata {
        doc["metadata"] = m.into();
    }
    serde_json::to_vec(&doc).context("seccomp agent: encode the container process state")
}

/// Connects to the seccomp agent at `listener_path` (`linux.seccomp.listenerPath`) and
/// sends `state_json` (see [`process_state`]) with `fd` as SCM_RIGHTS, then closes the
/// connection: one state per connection, as the runtime-spec requires.
pub fn send_listener(listener_path: &Path, fd: BorrowedFd, state_json: &[u8]) -> Result<()> {
    use nix::sys::socket::{
        connect, sendmsg, socket, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType,
        UnixAddr,
    };
    let at = || format!("linux.seccomp.listenerPath: {}", listener_path.display());
    let addr =
        UnixAddr::new(listener_path).with_context(|| format!("{}: bad socket path", at()))?;
    let sock = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .with_context(|| format!("{}: create a unix socket", at()))?;
    loop {
        match connect(sock.as_raw_fd(), &addr) {
            Ok(()) => break,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("{}: connect to the seccomp agent", at()))
            }
        }
    }
    if state_json.is_empty() {
        bail!("{}: empty container process state", at());
    }
    // The fd goes with the first sendmsg only; the rest of a short write follows bare.
    let fds = [fd.as_raw_fd()];
    let rights = [ControlMessage::ScmRights(&fds)];
    let mut sent = 0;
    while sent < state_json.len() {
        let iov = [IoSlice::new(&state_json[sent..])];
        let cmsgs: &[ControlMessage] = if sent == 0 { &rights } else { &[] };
        match sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(0) => bail!("{}: the seccomp agent closed the connection", at()),
            Ok(n) => sent += n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).with_context(|| format!("{}: send the seccomp fd", at())),
        }
    }
    Ok(())
}

/// The `linux.seccomp` object of `kraal features` (runtime-spec features.md): what
/// [`compile`] accepts on this machine.
pub fn features() -> Value {
    let actions = [
        "SCMP_ACT_ALLOW",
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_LOG",
        "SCMP_ACT_NOTIFY",
        "SCMP_ACT_TRACE",
        "SCMP_ACT_TRAP",
    ];
    let operators = [
        "SCMP_CMP_EQ",
        "SCMP_CMP_GE",
        "SCMP_CMP_GT",
        "SCMP_CMP_LE",
        "SCMP_CMP_LT",
        "SCMP_CMP_MASKED_EQ",
        "SCMP_CMP_NE",
    ];
    let mut archs: Vec<String> = ALL_ARCHS
        .iter()
        .filter(|a| {
            ScmpFilterContext::new(ScmpAction::Allow)
                .map(|mut c| c.add_arch(scmp_arch(**a)).is_ok())
                .unwrap_or(false)
        })
        .map(|a| a.to_string())
        .collect();
    archs.sort();
    let known = [
        LinuxSeccompFilterFlag::SeccompFilterFlagTsync,
        LinuxSeccompFilterFlag::SeccompFilterFlagLog,
        LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow,
        LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv,
    ];
    let supported: Vec<String> = known
        .iter()
        .filter(|f| flag_supported(**f))
        .map(|f| f.to_string())
        .collect();
    json!({
        "enabled": true,
        "actions": actions,
        "operators": operators,
        "archs": archs,
        "knownFlags": known.iter().map(|f| f.to_string()).collect::<Vec<_>>(),
        "supportedFlags": supported,
    })
}

const ALL_ARCHS: &[Arch] = &[
    Arch::ScmpArchX86,
    Arch::ScmpArchX86_64,
    Arch::ScmpArchX32,
    Arch::ScmpArchArm,
    Arch::ScmpArchAarch64,
    Arch::ScmpArchMips,
    Arch::ScmpArchMips64,
    Arch::ScmpArchMips64n32,
    Arch::ScmpArchMipsel,
    Arch::ScmpArchMipsel64,
    Arch::ScmpArchMipsel64n32,
    Arch::ScmpArchPpc,
    Arch::ScmpArchPpc64,
    Arch::ScmpArchPpc64le,
    Arch::ScmpArchS390,
    Arch::ScmpArchS390x,
    Arch::ScmpArchParisc,
    Arch::ScmpArchParisc64,
    Arch::ScmpArchRiscv64,
    Arch::ScmpArchLoongarch64,
    Arch::ScmpArchM68k,
    Arch::ScmpArchSh,
    Arch::ScmpArchSheb,
];

/// Maps an action; `errnoRet` is only meaningful for ERRNO and TRACE (the runtime-spec
/// requires an error otherwise) and defaults to EPERM as in runc.
fn action(
    a: LinuxSeccompAction,
    errno_ret: Option<u32>,
    action_field: &str,
    errno_field: &str,
) -> Result<ScmpAction> {
    use LinuxSeccompAction as A;
    let errno = match (a, errno_ret) {
        (A::ScmpActErrno | A::ScmpActTrace, Some(e)) if e > MAX_ERRNO => {
            bail!("{errno_field}: {e} is not an errno value (0 to {MAX_ERRNO})")
        }
        (A::ScmpActErrno | A::ScmpActTrace, e) => e.unwrap_or(libc::EPERM as u32),
        (_, Some(e)) => {
            bail!("{errno_field}: errno {e} given, but {action_field} {a} returns no errno")
        }
        (_, None) => 0,
    };
    Ok(match a {
        // The kernel's SECCOMP_RET_KILL is KILL_THREAD; runc and crun map it the same way.
        A::ScmpActKill | A::ScmpActKillThread => ScmpAction::KillThread,
        A::ScmpActKillProcess => ScmpAction::KillProcess,
        A::ScmpActTrap => ScmpAction::Trap,
        A::ScmpActErrno => ScmpAction::Errno(errno as i32),
        A::ScmpActTrace => ScmpAction::Trace(errno as u16),
        A::ScmpActAllow => ScmpAction::Allow,
        A::ScmpActLog => ScmpAction::Log,
        A::ScmpActNotify => ScmpAction::Notify,
    })
}

/// The rules' comparisons, grouped into the rules to add. libseccomp cannot compare
/// one argument twice in a rule, so, as runc and crun do, when an index repeats every
/// comparison becomes a rule of its own (the comparisons then match as OR, not AND).
fn conditions(args: &[LinuxSeccompArg], field: &str) -> Result<Vec<Vec<ScmpArgCompare>>> {
    let mut seen = [0usize; MAX_ARGS];
    let mut conds = Vec::with_capacity(args.len());
    for (k, arg) in args.iter().enumerate() {
        let index = arg.index();
        if index >= MAX_ARGS {
            bail!(
                "{field}.args[{k}].index: {index} is out of range (syscall arguments are 0 to {})",
                MAX_ARGS - 1
            );
        }
        seen[index] += 1;
        let op = match arg.op() {
            LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
            LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
            LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
            LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
            LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
            LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
            // (arg & value) == valueTwo, as libseccomp's datum_a/datum_b.
            LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(arg.value()),
        };
        let datum = match arg.op() {
            LinuxSeccompOperator::ScmpCmpMaskedEq => arg.value_two().unwrap_or(0),
            _ => arg.value(),
        };
        conds.push(ScmpArgCompare::new(index as u32, op, datum));
    }
    if seen.iter().any(|&n| n > 1) {
        Ok(conds.into_iter().map(|c| vec![c]).collect())
    } else {
        Ok(vec![conds])
    }
}

/// seccomp(2) flags from `linux.seccomp.flags`. Absent flags mean SPEC_ALLOW where the
/// kernel has it (runc and crun default); `[]` means none.
fn filter_flags(list: Option<&[LinuxSeccompFilterFlag]>) -> Result<u32> {
    let Some(list) = list else {
        let spec_allow = LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow;
        return Ok(if flag_supported(spec_allow) {
            flag_bit(spec_allow)
        } else {
            0
        });
    };
    let mut bits = 0;
    for (i, f) in list.iter().enumerate() {
        if *f == LinuxSeccompFilterFlag::SeccompFilterFlagTsync {
            // The init is single-threaded when it loads the filter: TSYNC has nothing
            // to synchronise, and the kernel refuses it together with NEW_LISTENER.
            continue;
        }
        if !flag_supported(*f) {
            bail!("linux.seccomp.flags[{i}]: {f} is not supported by this kernel");
        }
        bits |= flag_bit(*f);
    }
    Ok(bits)
}

fn flag_bit(f: LinuxSeccompFilterFlag) -> u32 {
    (match f {
        LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
        LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
        LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
        LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
            libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
        }
    }) as u32
}

/// Asks the kernel whether it knows a filter flag: with a NULL program, a known flag
/// set fails with EFAULT (reading the program), an unknown one with EINVAL.
fn flag_supported(f: LinuxSeccompFilterFlag) -> bool {
    let mut bits = flag_bit(f) as libc::c_ulong;
    if f == LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv {
        // Only valid together with NEW_LISTENER.
        bits |= libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
    }
    // SAFETY: a NULL program makes the kernel fail before it installs anything.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER as libc::c_ulong,
            bits,
            std::ptr::null::<libc::sock_fprog>(),
        )
    };
    r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EFAULT)
}

fn scmp_arch(a: Arch) -> ScmpArch {
    match a {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    }
}

/// libseccomp 2.5 exports only to an fd: write into a memfd (a pipe could fill up
/// with a large profile) and read the instructions back.
fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>> {
    // SAFETY: plain syscall with a static NUL-terminated name.
    let raw = unsafe { libc::memfd_create(c"kraal-seccomp-bpf".as_ptr(), libc::MFD_CLOEXEC) };
    if raw < 0 {
        return Err(std::io::Error::last_os_error())
            .context("seccomp: memfd_create for the BPF export");
    }
    // SAFETY: memfd_create returned a new fd that nothing else owns.
    let mut file = File::from(unsafe { OwnedFd::from_raw_fd(raw) });
    ctx.export_bpf(&file)
        .map_err(|e| anyhow!("seccomp: export the BPF program: {e}"))?;
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes))
        .context("seccomp: read back the BPF program")?;
    parse_bpf(&bytes)
}

/// seccomp_export_bpf writes `struct sock_filter`s in host byte order.
fn parse_bpf(bytes: &[u8]) -> Result<Vec<libc::sock_filter>> {
    const SIZE: usize = std::mem::size_of::<libc::sock_filter>();
    if bytes.len() % SIZE != 0 {
        bail!(
            "seccomp: the exported BPF program is {} bytes, not a whole number of {SIZE}-byte instructions",
            bytes.len()
        );
    }
    Ok(bytes
        .chunks_exact(SIZE)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsFd, RawFd};
    use std::os::unix::net::UnixListener;

    fn profile(v: Value) -> LinuxSeccomp {
        serde_json::from_value(v).expect("test profile must parse")
    }

    fn compile_err(v: Value) -> String {
        match compile(&profile(v)) {
            Ok(f) => panic!("expected an error, compiled {f:?}"),
            Err(e) => format!("{e:#}"),
        }
    }

    fn insns(f: &Filter) -> Vec<(u16, u8, u8, u32)> {
        f.instructions()
            .iter()
            .map(|i| (i.code, i.jt, i.jf, i.k))
            .collect()
    }

    const SPEC_ALLOW: u32 = libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW as u32;
    const LOG: u32 = libc::SECCOMP_FILTER_FLAG_LOG as u32;
    const NEW_LISTENER: u32 = libc::SECCOMP_FILTER_FLAG_NEW_LISTENER as u32;
    const WAIT_KILLABLE: u32 = libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV as u32;

    /// A forked child, killed and reaped on drop if the test did not reap it.
    struct Child {
        pid: libc::pid_t,
        reaped: bool,
    }

    impl Child {
        fn wait(&mut self) -> libc::c_int {
            let mut status = 0;
            loop {
                let r = unsafe { libc::waitpid(self.pid, &mut status, 0) };
                if r == self.pid {
                    self.reaped = true;
                    return status;
                }
                let e = std::io::Error::last_os_error();
                assert_eq!(e.kind(), std::io::ErrorKind::Interrupted, "waitpid: {e}");
            }
        }

        fn exit_code(&mut self) -> i32 {
            let s = self.wait();
            assert!(
                libc::WIFEXITED(s),
                "child did not exit normally: status {s:#x}"
            );
            libc::WEXITSTATUS(s)
        }
    }

    impl Drop for Child {
        fn drop(&mut self) {
            if !self.reaped {
                unsafe {
                    libc::kill(self.pid, libc::SIGKILL);
                    libc::waitpid(self.pid, std::ptr::null_mut(), 0);
                }
            }
        }
    }

    /// Forks a child that loads `filter` and exits with `body`'s value (99: load failed,
    /// 98: body panicked). The test process is multi-threaded, so the child sticks to
    /// raw syscalls and `_exit`. With `nnp`, the child sets no_new_privs first.
    fn spawn(filter: &Filter, nnp: bool, body: impl FnOnce(Option<OwnedFd>) -> i32) -> Child {
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let no_core = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) };
                if nnp && unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
                    return 97;
                }
                match filter.load() {
                    Ok(fd) => body(fd),
                    Err(_) => 99,
                }
            }))
            .unwrap_or(98);
            unsafe { libc::_exit(code) }
        }
        Child { pid, reaped: false }
    }

    fn errno() -> i32 {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
    }

    /// -errno of a failed raw syscall, else its result.
    fn sys_result(r: libc::c_long) -> i64 {
        if r < 0 {
            -i64::from(errno())
        } else {
            r
        }
    }

    #[test]
    fn version_is_libseccomp_2() {
        assert!(version().starts_with("2."), "{}", version());
    }

    #[test]
    fn flags_default_to_spec_allow_and_empty_means_none() {
        let base = json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]});
        // Kernel 4.17+ has SPEC_ALLOW; runc and crun set it when flags are absent.
        let f = compile(&profile(base.clone())).unwrap();
        assert_eq!(f.flags(), SPEC_ALLOW);
        assert!(f.listener().is_none());

        let mut v = base.clone();
        v["flags"] = json!([]);
        assert_eq!(compile(&profile(v)).unwrap().flags(), 0);

        let mut v = base.clone();
        v["flags"] = json!([
            "SECCOMP_FILTER_FLAG_LOG",
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
            "SECCOMP_FILTER_FLAG_TSYNC"
        ]);
        assert_eq!(compile(&profile(v)).unwrap().flags(), LOG | SPEC_ALLOW);

        // WAIT_KILLABLE_RECV only means something (and is only accepted) with a listener.
        let mut v = base.clone();
        v["flags"] = json!(["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]);
        assert_eq!(compile(&profile(v)).unwrap().flags(), 0);
        let v = json!({"defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", "SECCOMP_FILTER_FLAG_LOG"],
            "listenerPath": "/run/agent.sock",
            "listenerMetadata": "opaque",
            "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_NOTIFY"}]});
        let f = compile(&profile(v)).unwrap();
        assert_eq!(f.flags(), WAIT_KILLABLE | LOG | NEW_LISTENER);
        assert_eq!(
            f.listener(),
            Some(&Listener {
                path: PathBuf::from("/run/agent.sock"),
                metadata: Some("opaque".into()),
            })
        );
    }

    #[test]
    fn features_lists_what_compile_accepts() {
        let f = features();
        assert_eq!(f["enabled"], true);
        assert_eq!(f["actions"].as_array().unwrap().len(), 9);
        assert_eq!(f["operators"].as_array().unwrap().len(), 7);
        let archs: Vec<&str> = f["archs"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for a in [
            "SCMP_ARCH_X86",
            "SCMP_ARCH_X86_64",
            "SCMP_ARCH_X32",
            "SCMP_ARCH_AARCH64",
        ] {
            assert!(archs.contains(&a), "{a} missing from {archs:?}");
        }
        // Every listed arch compiles.
        let v = json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": archs});
        compile(&profile(v)).unwrap();
        let supported = f["supportedFlags"].as_array().unwrap();
        for flag in [
            "SECCOMP_FILTER_FLAG_LOG",
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
        ] {
            assert!(
                supported.contains(&json!(flag)),
                "{flag} not supported on this kernel?"
            );
        }
    }

    #[test]
    fn unknown_syscalls_are_skipped() {
        let with = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["no_such_syscall_kraal", "getcwd", "futuresys_2099"], "action": "SCMP_ACT_ERRNO"}]});
        let without = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]});
        let a = compile(&profile(with)).unwrap();
        let b = compile(&profile(without)).unwrap();
        assert_eq!(insns(&a), insns(&b));
        let none = json!({"defaultAction": "SCMP_ACT_ALLOW"});
        assert_ne!(insns(&a), insns(&compile(&profile(none)).unwrap()));
    }

    #[test]
    fn rules_with_the_default_action_are_skipped() {
        // ERRNO without errnoRet is ERRNO(EPERM) on both sides: libseccomp would refuse it.
        let v = json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]});
        let a = compile(&profile(v)).unwrap();
        let b = compile(&profile(json!({"defaultAction": "SCMP_ACT_ERRNO"}))).unwrap();
        assert_eq!(insns(&a), insns(&b));
        // A different errno is a different action.
        let v = json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]});
        assert_ne!(insns(&compile(&profile(v)).unwrap()), insns(&b));
    }

    #[test]
    fn every_action_compiles() {
        for (a, errno) in [
            ("SCMP_ACT_KILL", None),
            ("SCMP_ACT_KILL_PROCESS", None),
            ("SCMP_ACT_KILL_THREAD", None),
            ("SCMP_ACT_TRAP", None),
            ("SCMP_ACT_ERRNO", Some(13)),
            ("SCMP_ACT_TRACE", Some(7)),
            ("SCMP_ACT_LOG", None),
            ("SCMP_ACT_NOTIFY", None),
        ] {
            let mut rule = json!({"names": ["getcwd"], "action": a});
            if let Some(e) = errno {
                rule["errnoRet"] = e.into();
            }
            let v = json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/a.sock",
                "syscalls": [rule]});
            let f = compile(&profile(v)).unwrap_or_else(|e| panic!("{a}: {e:#}"));
            // The action's return value appears in the program.
            let ret = match a {
                "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => 0,
                "SCMP_ACT_KILL_PROCESS" => 0x8000_0000,
                "SCMP_ACT_TRAP" => 0x0003_0000,
                "SCMP_ACT_ERRNO" => 0x0005_0000 | 13,
                "SCMP_ACT_TRACE" => 0x7ff0_0000 | 7,
                "SCMP_ACT_LOG" => 0x7ffc_0000,
                _ => 0x7fc0_0000,
            };
            let bpf_ret_k = (libc::BPF_RET | libc::BPF_K) as u16;
            assert!(
                f.instructions()
                    .iter()
                    .any(|i| i.code == bpf_ret_k && i.k == ret),
                "{a}: no `ret {ret:#x}` in the program"
            );
            assert_eq!(f.listener().is_some(), a == "SCMP_ACT_NOTIFY", "{a}");
        }
    }

    #[test]
    fn bad_profiles_name_the_field() {
        let cases = [
            (
                json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                    {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"},
                    {"names": ["getpid"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}]}),
                "linux.seccomp.syscalls[1].errnoRet: errno 1 given, but linux.seccomp.syscalls[1].action SCMP_ACT_ALLOW returns no errno",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_KILL_PROCESS", "defaultErrnoRet": 38}),
                "linux.seccomp.defaultErrnoRet: errno 38 given, but linux.seccomp.defaultAction SCMP_ACT_KILL_PROCESS returns no errno",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                    {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000}]}),
                "linux.seccomp.syscalls[0].errnoRet: 70000 is not an errno value (0 to 4095)",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                    {"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [
                        {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                        {"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}),
                "linux.seccomp.syscalls[0].args[1].index: 6 is out of range (syscall arguments are 0 to 5)",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/run/a.sock"}),
                "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                    {"names": ["mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}),
                "linux.seccomp.listenerPath: required when SCMP_ACT_NOTIFY is used",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/a.sock", "syscalls": [
                    {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"},
                    {"names": ["mkdirat", "write"], "action": "SCMP_ACT_NOTIFY"}]}),
                "linux.seccomp.syscalls[1]: SCMP_ACT_NOTIFY cannot be used for \"write\"",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "x"}),
                "linux.seccomp.listenerMetadata: set without linux.seccomp.listenerPath",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                    {"names": [], "action": "SCMP_ACT_ERRNO"}]}),
                "linux.seccomp.syscalls[0].names: must name at least one syscall",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                    {"names": ["getcwd", ""], "action": "SCMP_ACT_ERRNO"}]}),
                "linux.seccomp.syscalls[0].names[1]: empty syscall name",
            ),
        ];
        for (v, want) in cases {
            let got = compile_err(v);
            assert!(got.starts_with(want), "got {got:?}\nwant {want:?}");
        }
    }

    #[test]
    fn arches_libseccomp_lacks_are_errors() {
        let v = json!({"defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_LOONGARCH64"]});
        let ver = ScmpVersion::current().unwrap();
        if (ver.major, ver.minor) < (2, 6) {
            let e = compile_err(v);
            assert!(
                e.starts_with(
                    "linux.seccomp.architectures[1]: SCMP_ARCH_LOONGARCH64 is not supported by libseccomp 2."
                ),
                "{e}"
            );
        } else {
            compile(&profile(v)).unwrap();
        }
    }

    /// Unknown names never reach compile(): config.json parsing rejects them, naming
    /// the JSON path and the value.
    #[test]
    fn unknown_names_fail_config_parsing_with_the_field() {
        let doc = |seccomp: Value| {
            serde_json::to_vec(&json!({"ociVersion": "1.3.0", "root": {"path": "rootfs"},
                "linux": {"seccomp": seccomp}}))
            .unwrap()
        };
        let rules = |action: &str, op: &str| {
            json!([
                {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["read"], "action": "SCMP_ACT_ALLOW",
                    "args": [{"index": 0, "value": 0, "op": op}]},
                {"names": ["mkdir"], "action": action}
            ])
        };
        let cases = [
            (
                json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules("SCMP_ACT_FOO", "SCMP_CMP_EQ")}),
                "linux.seccomp.syscalls[3].action",
                "SCMP_ACT_FOO",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules("SCMP_ACT_ERRNO", "SCMP_CMP_FOO")}),
                "linux.seccomp.syscalls[2].args[0].op",
                "SCMP_CMP_FOO",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_BAR"}),
                "linux.seccomp.defaultAction",
                "SCMP_ACT_BAR",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ALLOW",
                    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_VAX"]}),
                "linux.seccomp.architectures[1]",
                "SCMP_ARCH_VAX",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_FOO"]}),
                "linux.seccomp.flags[0]",
                "SECCOMP_FILTER_FLAG_FOO",
            ),
        ];
        for (seccomp, path, name) in cases {
            let e = crate::validate::parse(&doc(seccomp))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(&format!("{path}: ")), "{e}");
            assert!(e.contains(name), "{e}");
        }
        // The same profile with known names parses and compiles.
        let ok = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules("SCMP_ACT_ERRNO", "SCMP_CMP_EQ")});
        let spec = crate::validate::parse(&doc(ok)).unwrap();
        let s = spec.linux().as_ref().unwrap().seccomp().as_ref().unwrap();
        compile(s).unwrap();
    }

    #[test]
    fn errno_rule_returns_exactly_the_chosen_errno() {
        let v = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["getcwd", "mkdirat", "mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["getpriority"], "action": "SCMP_ACT_ERRNO"}]});
        let f = compile(&profile(v)).unwrap();
        for nnp in [true, false] {
            let mut child = spawn(&f, nnp, |_| {
                let mut buf = [0u8; 256];
                let r = unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) };
                if sys_result(r) != -(libc::EACCES as i64) {
                    return 1;
                }
                // Without the filter this is ENOENT.
                let r = unsafe {
                    libc::syscall(
                        libc::SYS_mkdirat,
                        libc::AT_FDCWD,
                        c"/nonexistent-kraal-dir/x".as_ptr(),
                        0o755,
                    )
                };
                if sys_result(r) != -(libc::EACCES as i64) {
                    return 2;
                }
                // No errnoRet: EPERM, as runc.
                let r = unsafe { libc::syscall(libc::SYS_getpriority, libc::PRIO_PROCESS, 0) };
                if sys_result(r) != -(libc::EPERM as i64) {
                    return 3;
                }
                // Other syscalls are untouched.
                if unsafe { libc::syscall(libc::SYS_getpid) } <= 0 {
                    return 4;
                }
                0
            });
            assert_eq!(child.exit_code(), 0, "nnp={nnp}");
        }
    }

    #[test]
    fn kill_rules_kill_with_sigsys() {
        for action in [
            "SCMP_ACT_KILL",
            "SCMP_ACT_KILL_THREAD",
            "SCMP_ACT_KILL_PROCESS",
            "SCMP_ACT_TRAP",
        ] {
            let v = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["getcwd"], "action": action}]});
            let f = compile(&profile(v)).unwrap();
            let mut child = spawn(&f, true, |_| {
                let mut buf = [0u8; 64];
                unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) };
                0
            });
            let s = child.wait();
            assert!(
                libc::WIFSIGNALED(s) && libc::WTERMSIG(s) == libc::SIGSYS,
                "{action}: status {s:#x}"
            );
        }
    }

    #[test]
    fn log_flag_loads_and_the_filter_applies() {
        let v = json!({"defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_LOG"],
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 33}]});
        let f = compile(&profile(v)).unwrap();
        assert_eq!(f.flags(), LOG);
        // 99 would mean seccomp(2) refused the flag.
        let mut child = spawn(&f, true, |_| {
            let r = unsafe { libc::syscall(libc::SYS_getppid) };
            if sys_result(r) != -(libc::EDOM as i64) {
                return 1;
            }
            0
        });
        assert_eq!(child.exit_code(), 0);
    }

    #[test]
    fn trace_rule_without_a_tracer_fails_with_enosys() {
        // seccomp(2): with no tracer attached, SECCOMP_RET_TRACE skips the syscall and
        // returns -ENOSYS, whatever errnoRet (the tracer's message) says.
        for rule in [
            json!({"names": ["getppid"], "action": "SCMP_ACT_TRACE"}),
            json!({"names": ["getppid"], "action": "SCMP_ACT_TRACE", "errnoRet": 7}),
        ] {
            let v = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]});
            let f = compile(&profile(v)).unwrap();
            let mut child = spawn(&f, true, |_| {
                let r = unsafe { libc::syscall(libc::SYS_getppid) };
                if sys_result(r) != -(libc::ENOSYS as i64) {
                    return 1;
                }
                // Syscalls without the rule are untouched.
                if unsafe { libc::syscall(libc::SYS_getpid) } <= 0 {
                    return 2;
                }
                0
            });
            assert_eq!(child.exit_code(), 0, "{rule}");
        }
    }

    #[test]
    fn log_action_lets_the_syscall_run() {
        let parent = i64::from(std::process::id());
        // As a rule, and as the default action (with a denying rule to show the
        // filter is in place).
        for v in [
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["getppid"], "action": "SCMP_ACT_LOG"},
                {"names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": 33}]}),
            json!({"defaultAction": "SCMP_ACT_LOG", "syscalls": [
                {"names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": 33}]}),
        ] {
            let f = compile(&profile(v.clone())).unwrap();
            let mut child = spawn(&f, true, |_| {
                // The real result: the test process's pid.
                if unsafe { libc::syscall(libc::SYS_getppid) } != parent {
                    return 1;
                }
                let r = unsafe { libc::syscall(libc::SYS_getpriority, libc::PRIO_PROCESS, 0) };
                if sys_result(r) != -(libc::EDOM as i64) {
                    return 2;
                }
                0
            });
            assert_eq!(child.exit_code(), 0, "{v}");
        }
    }

    #[test]
    fn default_action_applies_to_unlisted_syscalls() {
        let v = json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38, "syscalls": [
            {"names": ["exit_group", "exit", "getpid", "rt_sigreturn"], "action": "SCMP_ACT_ALLOW"}]});
        let f = compile(&profile(v)).unwrap();
        let mut child = spawn(&f, true, |_| {
            if unsafe { libc::syscall(libc::SYS_getpid) } <= 0 {
                return 1;
            }
            let r = unsafe { libc::syscall(libc::SYS_getppid) };
            if sys_result(r) != -(libc::ENOSYS as i64) {
                return 2;
            }
            0
        });
        assert_eq!(child.exit_code(), 0);
    }

    /// Denies umask(2) for the values that match `args`; the child reports which of
    /// umask(0o21), umask(0o22), umask(0o23) were denied as bits 0, 1, 2.
    fn umask_denials(args: Value) -> i32 {
        let v = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["umask"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13, "args": args}]});
        let f = compile(&profile(v)).unwrap();
        let mut child = spawn(&f, true, |_| {
            let mut bits = 0;
            for (bit, mask) in [0o21, 0o22, 0o23].into_iter().enumerate() {
                let r = unsafe { libc::syscall(libc::SYS_umask, mask) };
                match sys_result(r) {
                    r if r == -(libc::EACCES as i64) => bits |= 1 << bit,
                    r if r >= 0 => {}
                    _ => return 64,
                }
            }
            bits
        });
        child.exit_code()
    }

    #[test]
    fn every_comparison_operator() {
        for (op, want) in [
            ("SCMP_CMP_NE", 0b101),
            ("SCMP_CMP_LT", 0b001),
            ("SCMP_CMP_LE", 0b011),
            ("SCMP_CMP_EQ", 0b010),
            ("SCMP_CMP_GE", 0b110),
            ("SCMP_CMP_GT", 0b100),
        ] {
            let got = umask_denials(json!([{"index": 0, "value": 0o22, "op": op}]));
            assert_eq!(got, want, "{op}: denied {got:#b}");
        }
        // (arg & value) == valueTwo
        let got = umask_denials(json!([
            {"index": 0, "value": 0o2, "valueTwo": 0o2, "op": "SCMP_CMP_MASKED_EQ"}]));
        assert_eq!(got, 0b110, "SCMP_CMP_MASKED_EQ: denied {got:#b}");
        let got = umask_denials(json!([
            {"index": 0, "value": 0o3, "valueTwo": 0o1, "op": "SCMP_CMP_MASKED_EQ"}]));
        assert_eq!(got, 0b001, "SCMP_CMP_MASKED_EQ: denied {got:#b}");
    }

    #[test]
    fn conditions_on_one_argument_are_split_into_separate_rules() {
        // As runc: each comparison becomes its own rule, so they match as OR.
        let got = umask_denials(json!([
            {"index": 0, "value": 0o21, "op": "SCMP_CMP_EQ"},
            {"index": 0, "value": 0o23, "op": "SCMP_CMP_EQ"}]));
        assert_eq!(got, 0b101, "denied {got:#b}");
    }

    #[test]
    fn conditions_on_different_arguments_must_all_match() {
        let v = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13, "args": [
                {"index": 0, "value": libc::PRIO_PROCESS, "op": "SCMP_CMP_EQ"},
                {"index": 1, "value": 999_999_999u64, "op": "SCMP_CMP_EQ"}]}]});
        let f = compile(&profile(v)).unwrap();
        let mut child = spawn(&f, true, |_| {
            let get = |which: libc::__priority_which_t, who: libc::c_long| {
                sys_result(unsafe { libc::syscall(libc::SYS_getpriority, which, who) })
            };
            if get(libc::PRIO_PROCESS, 999_999_999) != -(libc::EACCES as i64) {
                return 1;
            }
            if get(libc::PRIO_PROCESS, 0) < 0 {
                return 2;
            }
            // Only one condition matches: the kernel answers (no such group).
            if get(libc::PRIO_PGRP, 999_999_999) != -(libc::ESRCH as i64) {
                return 3;
            }
            0
        });
        assert_eq!(child.exit_code(), 0);
    }

    #[test]
    fn load_without_nnp_or_cap_sys_admin_says_why() {
        let v = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]});
        let f = compile(&profile(v)).unwrap();
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // Dropping to a non-root uid clears every capability.
            let code = if unsafe { libc::setresuid(65534, 65534, 65534) } != 0 {
                97
            } else {
                match f.load() {
                    Ok(_) => 1,
                    Err(e) if e.to_string().contains("CAP_SYS_ADMIN") => 0,
                    Err(_) => 2,
                }
            };
            unsafe { libc::_exit(code) }
        }
        let mut child = Child { pid, reaped: false };
        assert_eq!(child.exit_code(), 0);
    }

    /// Sends `fd` over a unix socket without allocating (the child side).
    fn send_fd(sock: RawFd, fd: RawFd) -> bool {
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let mut cbuf = [0u64; 8];
        unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = cbuf.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE(4) as usize;
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(4) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>(), fd);
            libc::sendmsg(sock, &msg, 0) == 1
        }
    }

    /// Receives one message and the fd that came with it (the parent side).
    fn recv_with_fd(sock: RawFd) -> (Vec<u8>, OwnedFd) {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
        let mut buf = vec![0u8; 64 * 1024];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let msg = recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
            .expect("recvmsg");
        let mut fd = None;
        for c in msg.cmsgs().expect("cmsgs") {
            if let ControlMessageOwned::ScmRights(fds) = c {
                fd = fds.first().map(|&f| unsafe { OwnedFd::from_raw_fd(f) });
            }
        }
        let n = msg.bytes;
        buf.truncate(n);
        (buf, fd.expect("no fd received"))
    }

    /// Waits (at most 20 s) for one notification and answers it; returns its syscall nr
    /// and pid.
    fn answer(listener: BorrowedFd, val: i64, error: i32) -> (i32, u32) {
        let mut pfd = libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let r = unsafe { libc::poll(&mut pfd, 1, 20_000) };
        assert_eq!(r, 1, "no seccomp notification within 20 s");
        let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        let r = unsafe {
            libc::ioctl(
                listener.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_RECV,
                &mut req,
            )
        };
        assert_eq!(
            r,
            0,
            "SECCOMP_IOCTL_NOTIF_RECV: {}",
            std::io::Error::last_os_error()
        );
        let resp = libc::seccomp_notif_resp {
            id: req.id,
            val,
            error,
            flags: 0,
        };
        let r = unsafe { libc::ioctl(listener.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &resp) };
        assert_eq!(
            r,
            0,
            "SECCOMP_IOCTL_NOTIF_SEND: {}",
            std::io::Error::last_os_error()
        );
        (req.data.nr, req.pid)
    }

    fn socketpair() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        let r = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        assert_eq!(r, 0);
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    #[test]
    fn notify_rule_is_answered_through_the_listener() {
        let v = json!({"defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
            "listenerPath": "/run/unused.sock",
            "syscalls": [{"names": ["getppid", "getpriority"], "action": "SCMP_ACT_NOTIFY"}]});
        let f = compile(&profile(v)).unwrap();
        let (ours, theirs) = socketpair();
        let mut child = spawn(&f, true, |listener| {
            let Some(l) = listener else { return 1 };
            if !send_fd(theirs.as_raw_fd(), l.as_raw_fd()) {
                return 2;
            }
            drop(l);
            if unsafe { libc::syscall(libc::SYS_getppid) } != 4242 {
                return 3;
            }
            let r = unsafe { libc::syscall(libc::SYS_getpriority, libc::PRIO_PROCESS, 0) };
            if sys_result(r) != -(libc::EXDEV as i64) {
                return 4;
            }
            0
        });
        drop(theirs);
        let (_, listener) = recv_with_fd(ours.as_raw_fd());
        let (nr, pid) = answer(listener.as_fd(), 4242, 0);
        assert_eq!(i64::from(nr), libc::SYS_getppid);
        assert_eq!(pid as i32, child.pid);
        let (nr, _) = answer(listener.as_fd(), 0, -libc::EXDEV);
        assert_eq!(i64::from(nr), libc::SYS_getpriority);
        assert_eq!(child.exit_code(), 0);
    }

    #[test]
    fn process_state_follows_the_runtime_spec() {
        let state =
            br#"{"ociVersion":"1.3.0","id":"c1","status":"creating","pid":77,"bundle":"/b"}"#;
        let doc: Value =
            serde_json::from_slice(&process_state(77, Some("MKNOD=/dev/null"), state).unwrap())
                .unwrap();
        assert_eq!(
            doc,
            json!({"ociVersion": crate::OCI_VERSION, "fds": ["seccompFd"], "pid": 77,
                "metadata": "MKNOD=/dev/null",
                "state": {"ociVersion":"1.3.0","id":"c1","status":"creating","pid":77,"bundle":"/b"}})
        );
        let doc: Value = serde_json::from_slice(&process_state(77, None, state).unwrap()).unwrap();
        assert!(doc.get("metadata").is_none());
        assert!(process_state(1, None, b"[1]").is_err());
        assert!(process_state(1, None, b"{").is_err());
    }

    fn temp_dir(tag: &str) -> PathBuf {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let d = std::env::temp_dir().join(format!(
            "kraal-seccomp-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    struct RemoveDir(PathBuf);
    impl Drop for RemoveDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// The whole notify path: the init loads the filter and hands the listener to the
    /// runtime, the runtime sends it with the container process state to the agent at
    /// listenerPath, and the agent answers the container's syscall.
    #[test]
    fn agent_at_listener_path_gets_state_and_fd_and_answers() {
        let dir = RemoveDir(temp_dir("agent"));
        let sock_path = dir.0.join("agent.sock");
        let agent_sock = UnixListener::bind(&sock_path).unwrap();
        let v = json!({"defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock_path, "listenerMetadata": "answer=4242",
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]});
        let f = compile(&profile(v)).unwrap();

        let agent = std::thread::spawn(move || {
            let (conn, _) = agent_sock.accept().unwrap();
            let (payload, listener) = recv_with_fd(conn.as_raw_fd());
            // One state per connection, then the runtime closes it.
            let mut rest = Vec::new();
            (&conn).read_to_end(&mut rest).unwrap();
            let doc: Value = serde_json::from_slice(&[payload, rest].concat()).unwrap();
            let answer_val = doc["metadata"]
                .as_str()
                .and_then(|m| m.strip_prefix("answer="))
                .and_then(|v| v.parse().ok())
                .unwrap_or(-1);
            let (nr, pid) = answer(listener.as_fd(), answer_val, 0);
            (doc, nr, pid)
        });

        let (ours, theirs) = socketpair();
        let mut child = spawn(&f, true, |listener| {
            let Some(l) = listener else { return 1 };
            if !send_fd(theirs.as_raw_fd(), l.as_raw_fd()) {
                return 2;
            }
            drop(l);
            if unsafe { libc::syscall(libc::SYS_getppid) } != 4242 {
                return 3;
            }
            0
        });
        drop(theirs);
        let (_, listener) = recv_with_fd(ours.as_raw_fd());
        let l = f.listener().unwrap();
        let container_state = serde_json::to_vec(&json!({"ociVersion": "1.3.0", "id": "ctr",
            "status": "creating", "pid": child.pid, "bundle": "/bundle"}))
        .unwrap();
        let msg = process_state(child.pid, l.metadata.as_deref(), &container_state).unwrap();
        send_listener(&l.path, listener.as_fd(), &msg).unwrap();
        drop(listener);

        let (doc, nr, pid) = agent.join().unwrap();
        assert_eq!(child.exit_code(), 0);
        assert_eq!(i64::from(nr), libc::SYS_getppid);
        assert_eq!(pid as i32, child.pid);
        assert_eq!(doc["fds"], json!(["seccompFd"]));
        assert_eq!(doc["pid"], json!(child.pid));
        assert_eq!(doc["metadata"], json!("answer=4242"));
        assert_eq!(doc["state"]["id"], json!("ctr"));
        assert_eq!(doc["state"]["status"], json!("creating"));
    }

    #[test]
    fn send_listener_errors_name_the_path() {
        let dir = RemoveDir(temp_dir("nolistener"));
        let p = dir.0.join("missing.sock");
        let devnull = File::open("/dev/null").unwrap();
        let e = format!(
            "{:#}",
            send_listener(&p, devnull.as_fd(), b"{}").unwrap_err()
        );
        assert!(
            e.starts_with(&format!(
                "linux.seccomp.listenerPath: {}: connect",
                p.display()
            )),
            "{e}"
        );
    }

    /// A profile in the style of the Docker/Podman default: ERRNO(ENOSYS) by default,
    /// three x86 ABIs, a long allow list, conditional rules, names libseccomp does not
    /// know, and clone3 refused with ENOSYS so that libc falls back to clone.
    fn container_default_profile() -> Value {
        let mut allow: Vec<&str> = "\
            accept accept4 access alarm bind brk capget capset chdir chmod chown clock_getres
            clock_gettime clock_nanosleep close close_range connect copy_file_range creat dup
            dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_pwait epoll_wait eventfd
            eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64 fallocate
            fchdir fchmod fchmodat fchown fchownat fcntl fdatasync flock fork fstat fstatfs
            fsync ftruncate futex getcwd getdents getdents64 getegid geteuid getgid getgroups
            getitimer getpeername getpgid getpgrp getpid getppid getpriority getrandom
            getresgid getresuid getrlimit getrusage getsid getsockname getsockopt gettid
            gettimeofday getuid getxattr inotify_add_watch inotify_init1 ioctl kill lchown link
            linkat listen lseek lstat madvise mkdir mkdirat mknod mknodat mmap mprotect mremap
            munmap nanosleep newfstatat open openat openat2 pause pipe pipe2 poll ppoll prctl
            pread64 preadv prlimit64 pselect6 pwrite64 pwritev read readlink readlinkat readv
            recvfrom recvmmsg recvmsg rename renameat renameat2 restart_syscall rmdir rseq
            rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn
            rt_sigsuspend rt_sigtimedwait sched_getaffinity sched_yield select sendfile
            sendmmsg sendmsg sendto set_robust_list set_tid_address setgid setgroups setitimer
            setpgid setpriority setresgid setresuid setsid setsockopt setuid shutdown
            sigaltstack socketpair splice stat statfs statx symlink symlinkat sync sysinfo tee
            tgkill time timer_create timer_delete timer_settime times tkill truncate umask
            uname unlink unlinkat utimensat utimes vfork wait4 waitid write writev"
            .split_whitespace()
            .collect();
        // Names libseccomp 2.5.4 does not know: skipped, as runc does.
        allow.extend(["kraal_future_syscall", "lsm_get_self_attr", "mseal"]);
        json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 38,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                {"names": allow, "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                    "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                    "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                    "args": [{"index": 0, "value": 4294967295u64, "op": "SCMP_CMP_EQ"}]},
                {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
                    "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                    "args": [{"index": 0, "value": 2114060288u64, "valueTwo": 0,
                        "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                {"names": ["reboot", "kexec_load", "init_module"], "action": "SCMP_ACT_ERRNO",
                    "errnoRet": 1},
                {"names": ["ptrace"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                    "args": [{"index": 0, "value": 16, "op": "SCMP_CMP_GE"},
                             {"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]}
            ]
        })
    }

    #[test]
    fn container_default_style_profile_compiles_loads_and_filters() {
        let f = compile(&profile(container_default_profile())).unwrap();
        assert_eq!(f.flags(), SPEC_ALLOW);
        assert!(f.listener().is_none());
        let mut child = spawn(&f, false, |_| {
            if unsafe { libc::syscall(libc::SYS_getpid) } <= 0 {
                return 1;
            }
            // Not listed: the default ENOSYS.
            let r = unsafe { libc::syscall(libc::SYS_acct, 0) };
            if sys_result(r) != -(libc::ENOSYS as i64) {
                return 2;
            }
            let r = unsafe { libc::syscall(libc::SYS_clone3, 0, 0) };
            if sys_result(r) != -(libc::ENOSYS as i64) {
                return 3;
            }
            // personality(0xffffffff) only queries: allowed.
            if unsafe { libc::syscall(libc::SYS_personality, 0xffff_ffffu64) } < 0 {
                return 4;
            }
            // personality(READ_IMPLIES_EXEC) is not in the list.
            let r = unsafe { libc::syscall(libc::SYS_personality, 0x0400000) };
            if sys_result(r) != -(libc::ENOSYS as i64) {
                return 5;
            }
            // socket(AF_VSOCK) is refused by the NE rule, AF_UNIX allowed.
            let r = unsafe { libc::syscall(libc::SYS_socket, 40, libc::SOCK_STREAM, 0) };
            if sys_result(r) != -(libc::ENOSYS as i64) {
                return 6;
            }
            let r = unsafe { libc::syscall(libc::SYS_socket, libc::AF_UNIX, libc::SOCK_STREAM, 0) };
            if r < 0 {
                return 7;
            }
            let r = unsafe { libc::syscall(libc::SYS_reboot, 0, 0, 0, 0) };
            if sys_result(r) != -(libc::EPERM as i64) {
                return 8;
            }
            // ptrace's two comparisons on arg 0 are split: 0 and >= 16 are refused.
            let r = unsafe { libc::syscall(libc::SYS_ptrace, 16, 0, 0, 0) };
            if sys_result(r) != -(libc::EPERM as i64) {
                return 9;
            }
            0
        });
        assert_eq!(child.exit_code(), 0);
    }

    #[test]
    fn exported_program_round_trips() {
        let bytes: Vec<u8> = [(0x20u16, 0u8, 0u8, 4u32), (0x15, 1, 2, 0xc000_003e)]
            .iter()
            .flat_map(|(c, t, f, k)| {
                let mut v = c.to_ne_bytes().to_vec();
                v.extend([*t, *f]);
                v.extend(k.to_ne_bytes());
                v
            })
            .collect();
        let p = parse_bpf(&bytes).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[1].code, p[1].jt, p[1].jf, p[1].k),
            (0x15, 1, 2, 0xc000_003e)
        );
        let e = parse_bpf(&bytes[..11]).unwrap_err().to_string();
        assert!(e.contains("11 bytes"), "{e}");
    }
}
