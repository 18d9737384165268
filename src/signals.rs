//! Signals: parsing names and numbers as `kill` accepts them, and the set a
//! foreground `run` blocks and forwards to the container's init.

use anyhow::{bail, Result};

const NAMES: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGIOT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("POLL", libc::SIGPOLL),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// Parses `9`, `KILL`, `SIGKILL`, `sigkill`, `RTMIN+3`, `SIGRTMAX-1`; `0` checks
/// that the process exists, as kill(2) does.
pub fn parse(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (0..=libc::SIGRTMAX()).contains(&n) {
            return Ok(n);
        }
        bail!("invalid signal number {n}");
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    if let Some((_, n)) = NAMES.iter().find(|(k, _)| *k == name) {
        return Ok(*n);
    }
    let rt = |base: i32, rest: &str, sign: i32| -> Option<i32> {
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.parse().ok()?
        };
        let n = base + sign * off;
        (libc::SIGRTMIN()..=libc::SIGRTMAX())
            .contains(&n)
            .then_some(n)
    };
    let parsed = if let Some(r) = name.strip_prefix("RTMIN") {
        match r.strip_prefix('+') {
            Some(x) => rt(libc::SIGRTMIN(), x, 1),
            None if r.is_empty() => rt(libc::SIGRTMIN(), "", 1),
            None => None,
        }
    } else if let Some(r) = name.strip_prefix("RTMAX") {
        match r.strip_prefix('-') {
            Some(x) => rt(libc::SIGRTMAX(), x, -1),
            None if r.is_empty() => rt(libc::SIGRTMAX(), "", 1),
            None => None,
        }
    } else {
        None
    };
    match parsed {
        Some(n) => Ok(n),
        None => bail!("unknown signal {s:?}"),
    }
}

/// Signals a foreground `run` receives for the container: everything a user or a
/// supervisor may send, except those that stop or fault kraal itself.
pub fn forwarded() -> libc::sigset_t {
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in 1..=libc::SIGRTMAX() {
            let skip = matches!(
                s,
                libc::SIGKILL
                    | libc::SIGSTOP
                    | libc::SIGSEGV
                    | libc::SIGBUS
                    | libc::SIGILL
                    | libc::SIGFPE
                    | libc::SIGTRAP
                    | libc::SIGSYS
                    | libc::SIGTTIN
                    | libc::SIGTTOU
                    | 32
                    | 33
            );
            if !skip {
                libc::sigaddset(&mut set, s);
            }
        }
        set
    }
}

/// Whether the kernel would discard `sig` sent to the process whose
/// `/proc/<pid>/status` is `status`: the init of a PID namespace other than the
/// sender's only receives the signals it has a handler for (pid_namespaces(7)),
/// except SIGKILL and SIGSTOP. A shell started as a container's init installs its
/// `trap` a few milliseconds after execve; a signal sent in between is lost.
pub fn dropped_by_ns_init(status: &str, sig: i32) -> bool {
    if sig <= 0 || sig == libc::SIGKILL || sig == libc::SIGSTOP {
        return false;
    }
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
    };
    let ns_init = field("NSpid:").is_some_and(|v| {
        let ids: Vec<&str> = v.split_whitespace().collect();
        ids.len() > 1 && ids.last() == Some(&"1")
    });
    if !ns_init {
        return false;
    }
    let caught = field("SigCgt:")
        .and_then(|v| u64::from_str_radix(v, 16).ok())
        .is_some_and(|mask| mask & (1u64 << (sig - 1)) != 0);
    !caught
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str =
        "Name:\tsh\nNSpid:\t4242\t1\nSigIgn:\t0000000000000004\nSigCgt:\t0000000000004002\n";

    #[test]
    fn ns_init_drops_uncaught_signals() {
        // SigCgt 0x4002: SIGINT (bit 1) and SIGTERM (bit 14) are caught.
        assert!(!dropped_by_ns_init(STATUS, libc::SIGTERM));
        assert!(!dropped_by_ns_init(STATUS, libc::SIGINT));
        assert!(dropped_by_ns_init(STATUS, libc::SIGUSR1));
        assert!(
            dropped_by_ns_init(STATUS, libc::SIGQUIT),
            "ignored is dropped too"
        );
        for always in [0, libc::SIGKILL, libc::SIGSTOP] {
            assert!(!dropped_by_ns_init(STATUS, always));
        }
        // Not a namespace's init (no own PID namespace, or not PID 1 in it).
        let host = STATUS.replace("NSpid:\t4242\t1", "NSpid:\t4242");
        assert!(!dropped_by_ns_init(&host, libc::SIGUSR1));
        let child = STATUS.replace("NSpid:\t4242\t1", "NSpid:\t4242\t7");
        assert!(!dropped_by_ns_init(&child, libc::SIGUSR1));
    }

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse("9").unwrap(), libc::SIGKILL);
        assert_eq!(parse("KILL").unwrap(), libc::SIGKILL);
        assert_eq!(parse("SIGTERM").unwrap(), libc::SIGTERM);
        assert_eq!(parse("sigusr1").unwrap(), libc::SIGUSR1);
        assert_eq!(parse("SIGRTMIN+3").unwrap(), libc::SIGRTMIN() + 3);
        assert_eq!(parse("RTMAX-1").unwrap(), libc::SIGRTMAX() - 1);
        assert_eq!(parse("0").unwrap(), 0);
        for bad in ["-1", "99", "FOO", "SIGRTMIN+99", "RTMINX", ""] {
            assert!(parse(bad).is_err(), "{bad} accepted");
        }
    }
}
