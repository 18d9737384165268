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

    let mut flags = flags(s.flags().as_deref())?;

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
                    anyhow!("{field}: add the rule for syscall {name:?} ({act:?}): {e}")
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
fn flags(list: Option<&[LinuxSeccompFilterFlag]>) -> Result<u32> {
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
