//! Lifecycle hooks (runtime-spec config.md "POSIX-platform Hooks"): running one hook
//! with the container state on stdin, its args and env, and its timeout enforced.
//!
//! Where and when each kind runs is decided by the lifecycle code; this module only
//! runs a list and reports the first failure with the hook's own output.

use anyhow::{bail, Context, Result};
use oci_spec::runtime::Hook;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The runtime-spec state document handed to hooks on stdin.
pub fn state_json(
    oci_version: &str,
    id: &str,
    status: &str,
    pid: i32,
    bundle: &std::path::Path,
    annotations: &std::collections::BTreeMap<String, String>,
) -> Vec<u8> {
    let mut v = serde_json::json!({
        "ociVersion": oci_version,
        "id": id,
        "status": status,
        "bundle": bundle.to_string_lossy(),
    });
    if status != "stopped" {
        v["pid"] = pid.into();
    }
    if !annotations.is_empty() {
        v["annotations"] = serde_json::to_value(annotations).unwrap_or_default();
    }
    serde_json::to_vec(&v).unwrap_or_default()
}

/// Runs `hooks` in order; the first failure is returned, naming `kind[i]` and path.
pub fn run_all(kind: &str, hooks: &[Hook], state: &[u8]) -> Result<()> {
    for (i, h) in hooks.iter().enumerate() {
        run_one(h, state).with_context(|| format!("{kind}[{i}] hook {}", h.path().display()))?;
    }
    Ok(())
}

/// Runs every hook even when some fail (poststop: runtime.md step 13 only warns);
/// returns one warning per failure.
pub fn run_all_warn(kind: &str, hooks: &[Hook], state: &[u8]) -> Vec<String> {
    hooks
        .iter()
        .enumerate()
        .filter_map(|(i, h)| {
            run_one(h, state)
                .err()
                .map(|e| format!("{kind}[{i}] hook {}: {e:#}", h.path().display()))
        })
        .collect()
}

fn run_one(h: &Hook, state: &[u8]) -> Result<()> {
    let mut cmd = Command::new(h.path());
    let args = h.args().clone().unwrap_or_default();
    if let Some(a0) = args.first() {
        cmd.arg0(a0);
    }
    cmd.args(args.iter().skip(1));
    // As runc: a hook without `env` inherits the runtime's environment (Go's
    // exec.Cmd with a nil Env); `"env": []` gives it an empty one. The lifecycle
    // code fills in the in-container kinds' defaults (see container::build_plan).
    if let Some(env) = h.env() {
        cmd.env_clear();
        for e in env {
            if let Some((k, v)) = e.split_once('=') {
                cmd.env(k, v);
            }
        }
    }
    // Output goes to an anonymous file: a pipe could fill up and block the hook.
    let out = memfd("kraal-hook")?;
    cmd.stdin(Stdio::piped())
        .stdout(out.try_clone().context("dup hook output")?)
        .stderr(out.try_clone().context("dup hook output")?);
    let mut child = cmd.spawn().context("start")?;
    let deadline = h
        .timeout()
        .map(|t| Instant::now() + Duration::from_secs(t.max(1) as u64));
    // The state is written without blocking, inside the timeout: a hook that never
    // reads its stdin must not hold kraal past its timeout when the state is larger
    // than the pipe buffer (big annotations).
    let mut stdin = child.stdin.take();
    if let Some(s) = &stdin {
        set_nonblocking(s.as_raw_fd()).context("hook stdin")?;
    }
    let mut pending = state;
    let status = loop {
        if let Some(s) = stdin.as_mut() {
            match s.write(pending) {
                Ok(n) => pending = &pending[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // A hook that ignores its stdin closes the pipe early: not an error.
                Err(_) => pending = &[],
            }
            if pending.is_empty() {
                stdin = None;
            }
        }
        if let Some(s) = child.try_wait().context("wait")? {
            break s;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "timed out after {}s and was killed",
                h.timeout().unwrap_or(0)
            );
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    if !status.success() {
        let mut text = String::new();
        let mut f = out;
        let _ = f.rewind();
        let _ = f.take(4096).read_to_string(&mut text);
        let how = match (status.code(), status.signal()) {
            (Some(c), _) => format!("exit status {c}"),
            (_, Some(s)) => format!("killed by signal {s}"),
            _ => "failed".to_string(),
        };
        let text = text.trim();
        if text.is_empty() {
            bail!("{how}");
        }
        bail!("{how}: {text}");
    }
    Ok(())
}

fn set_nonblocking(fd: std::os::fd::RawFd) -> std::io::Result<()> {
    // SAFETY: fcntl(2) on an fd this function's caller owns.
    let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if fl < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn memfd(name: &str) -> Result<std::fs::File> {
    let c = std::ffi::CString::new(name).context("memfd name")?;
    let fd = unsafe { libc::memfd_create(c.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("memfd_create");
    }
    Ok(unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(json: &str) -> Hook {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn state_on_stdin_args_and_env() {
        let dir = std::env::temp_dir().join(format!("kraal-hooks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("out");
        let h = hook(&format!(
            r#"{{"path":"/bin/sh","args":["sh","-c","cat > {0}; echo \" $0 $1 $FOO\" >> {0}","x","y"],"env":["FOO=bar"]}}"#,
            out.display()
        ));
        let st = state_json(
            "1.3.0",
            "c1",
            "creating",
            42,
            std::path::Path::new("/b"),
            &Default::default(),
        );
        run_all("createRuntime", &[h], &st).unwrap();
        let got = std::fs::read_to_string(&out).unwrap();
        assert!(
            got.starts_with(
                r#"{"bundle":"/b","id":"c1","ociVersion":"1.3.0","pid":42,"status":"creating"}"#
            ),
            "{got}"
        );
        assert!(got.ends_with(" x y bar\n"), "{got}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn failure_names_the_hook_and_carries_its_output() {
        let h = hook(r#"{"path":"/bin/sh","args":["sh","-c","echo boom >&2; exit 7"]}"#);
        let e = run_all("prestart", &[h], b"{}").unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.contains("prestart[0] hook /bin/sh: exit status 7: boom"),
            "{msg}"
        );
    }

    #[test]
    fn warn_variant_runs_every_hook() {
        let dir = std::env::temp_dir().join(format!("kraal-hooks-warn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("ran");
        let bad = hook(r#"{"path":"/bin/false"}"#);
        let good = hook(&format!(
            r#"{{"path":"/bin/touch","args":["touch","{}"]}}"#,
            out.display()
        ));
        let w = run_all_warn("poststop", &[bad, good], b"{}");
        assert_eq!(w.len(), 1);
        assert!(
            w[0].starts_with("poststop[0] hook /bin/false: exit status 1"),
            "{w:?}"
        );
        assert!(out.exists(), "the hook after the failing one still ran");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn env_is_inherited_without_env_and_empty_with_an_empty_list() {
        // Every test runs with PATH set: a hook without `env` sees it (as runc's
        // hooks see runc's environment); `"env": []` gives an empty environment.
        let dir = std::env::temp_dir().join(format!("kraal-hooks-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("out");
        let script = format!("echo \"[$PATH]\" >> {}", out.display());
        let inherit =
            hook(&serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", script]}).to_string());
        let empty = hook(
            &serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", script], "env": []})
                .to_string(),
        );
        run_all("createRuntime", &[inherit, empty], b"{}").unwrap();
        let got = std::fs::read_to_string(&out).unwrap();
        let lines: Vec<&str> = got.lines().collect();
        assert_eq!(lines.len(), 2, "{got}");
        assert_eq!(lines[0], format!("[{}]", std::env::var("PATH").unwrap()));
        // sh sets a default PATH of its own when the environment has none.
        assert_ne!(lines[1], lines[0], "{got}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_hook_that_never_reads_a_big_state_still_times_out() {
        // Larger than a pipe buffer (64 KiB): a blocking write would never return.
        let state = vec![b' '; 1 << 20];
        let h = hook(r#"{"path":"/bin/sleep","args":["sleep","30"],"timeout":1}"#);
        let e = run_all("prestart", &[h], &state).unwrap_err();
        assert!(format!("{e:#}").contains("timed out after 1s"), "{e:#}");
    }

    #[test]
    fn a_big_state_reaches_a_hook_that_reads_it() {
        let dir = std::env::temp_dir().join(format!("kraal-hooks-big-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("out");
        let state = vec![b'x'; 1 << 20];
        let h = hook(&format!(
            r#"{{"path":"/bin/sh","args":["sh","-c","cat > {}"],"timeout":20}}"#,
            out.display()
        ));
        run_all("createRuntime", &[h], &state).unwrap();
        assert_eq!(std::fs::read(&out).unwrap().len(), state.len());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn timeout_kills_the_hook() {
        let h = hook(r#"{"path":"/bin/sleep","args":["sleep","30"],"timeout":1}"#);
        let t = Instant::now();
        let e = run_all("poststart", &[h], b"{}").unwrap_err();
        assert!(format!("{e:#}").contains("timed out after 1s"));
        assert!(t.elapsed() < Duration::from_secs(10));
    }
}
