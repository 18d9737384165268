//! `linux.seccomp` in real containers, through the kraal command line: a denied syscall
//! fails with exactly the chosen errno, a KILL rule kills, a NOTIFY rule reaches an agent
//! written here that answers it, the Docker/Podman default profile runs a busybox
//! workload, and bad profiles fail `create` naming the field and leaving nothing behind.
//!
//! Each test has its own `--root`, container id and cgroup parent, and a guard that
//! deletes the container and removes its cgroups and files, on failure too.

use serde_json::{json, Value};
use std::io::{IoSliceMut, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const KRAAL: &str = env!("CARGO_BIN_EXE_kraal");
const TIMEOUT: Duration = Duration::from_secs(60);

/// Where Debian's containers-common (golang-github-containers-common) puts the
/// Docker/Podman default profile; the environment variable points elsewhere.
const DEFAULT_PROFILE: &str = "/usr/share/containers/seccomp.json";
const DEFAULT_PROFILE_ENV: &str = "KRAAL_TEST_SECCOMP_PROFILE";

/// One container's bundle, state root and cgroup parent; all removed on drop.
struct Ctr {
    id: String,
    dir: PathBuf,
    root: PathBuf,
    bundle: PathBuf,
    cgroup_parent: String,
}

impl Ctr {
    /// A busybox bundle running `args`, with the cgroup parent set.
    fn new(tag: &str, args: &[&str]) -> Ctr {
        static N: AtomicUsize = AtomicUsize::new(0);
        let unique = format!(
            "{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(format!("kraal-seccomp-it-{tag}-{unique}"));
        let id = format!("sc-{tag}-{unique}");
        let ctr = Ctr {
            root: dir.join("root"),
            bundle: dir.join("bundle"),
            cgroup_parent: format!("kraal-test-seccomp-{unique}"),
            dir,
            id,
        };
        std::fs::create_dir_all(&ctr.dir).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/mkbundle.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg(&ctr.bundle)
            .arg("--")
            .args(args)
            .env("KRAAL", KRAAL)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mkbundle.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cgroups_path = format!("{}/{}", ctr.cgroup_parent, ctr.id);
        ctr.edit(|c| c["linux"]["cgroupsPath"] = cgroups_path.into());
        ctr
    }

    fn edit(&self, f: impl FnOnce(&mut Value)) {
        let path = self.bundle.join("config.json");
        let mut c: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        f(&mut c);
        std::fs::write(&path, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
    }

    fn seccomp(&self, profile: Value, no_new_privileges: bool) {
        self.edit(|c| {
            c["linux"]["seccomp"] = profile;
            c["process"]["noNewPrivileges"] = no_new_privileges.into();
        });
    }

    fn kraal(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(KRAAL);
        cmd.arg("--root").arg(&self.root).args(args);
        run_with_timeout(cmd)
    }

    fn run(&self) -> Output {
        let b = self.bundle.to_string_lossy().into_owned();
        self.kraal(&["run", "-b", &b, &self.id])
    }
}

impl Drop for Ctr {
    fn drop(&mut self) {
        let _ = self.kraal(&["delete", "--force", &self.id]);
        if let Ok(hier) = kraal::cgroups::hierarchies() {
            for h in &hier {
                let inner = PathBuf::from(&self.cgroup_parent).join(&self.id);
                if let Ok(d) = kraal::cgroups::container_dir(h, Some(&inner), &self.id) {
                    let _ = std::fs::remove_dir(&d);
                    if let Some(parent) = d.parent() {
                        let _ = std::fs::remove_dir(parent);
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs a kraal command; kills it (by its own pid) if it outlives TIMEOUT.
fn run_with_timeout(mut cmd: Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} still running after {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    }
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn errno_profile(errno: u32) -> Value {
    json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno}]})
}

/// mkdir on the read-only rootfs fails with EROFS unless the filter answers first.
const MKDIR_SCRIPT: &str = "mkdir /tmp/x; echo mkdir-status=$?; grep '^Seccomp:' /proc/self/status";

#[test]
fn errno_rule_makes_mkdir_fail_with_the_chosen_errno() {
    let c = Ctr::new("errno", &["sh", "-c", MKDIR_SCRIPT]);
    c.seccomp(errno_profile(13), true);
    let o = c.run();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    // EACCES (13), not the default EPERM and not the EROFS of the read-only rootfs.
    assert!(
        t.contains("mkdir: can't create directory '/tmp/x': Permission denied"),
        "{t}"
    );
    assert!(t.contains("mkdir-status=1"), "{t}");
    assert!(t.contains("Seccomp:\t2"), "{t}");
}

#[test]
fn errno_rule_applies_without_no_new_privileges() {
    // The filter is then loaded while the init still holds CAP_SYS_ADMIN.
    let c = Ctr::new("errno-nonnp", &["sh", "-c", MKDIR_SCRIPT]);
    c.seccomp(errno_profile(18), false);
    let o = c.run();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    // EXDEV (18): a value no real mkdir here would return.
    assert!(t.contains("'/tmp/x': Invalid cross-device link"), "{t}");
    assert!(t.contains("Seccomp:\t2"), "{t}");
}

#[test]
fn kill_rule_kills_the_container_process() {
    // mkdir is the container's init itself, so its death is the container's exit.
    let c = Ctr::new("kill", &["mkdir", "/tmp/x"]);
    c.seccomp(
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL"}]}),
        true,
    );
    c.edit(|cfg| {
        cfg["process"]["rlimits"] = json!([
            {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024},
            {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}
        ])
    });
    let o = c.run();
    let t = text(&o);
    // Killed by SIGSYS (31): `run` exits with 128 + the signal, as runc does.
    assert_eq!(o.status.code(), Some(128 + libc::SIGSYS), "{t}");
    assert!(
        !t.contains("can't create directory"),
        "mkdir ran to its error: {t}"
    );
}

/// Receives one message and the fd sent with it.
fn recv_with_fd(sock: RawFd) -> (Vec<u8>, OwnedFd) {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut buf = vec![0u8; 64 * 1024];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
        .expect("recvmsg from kraal");
    let mut fd = None;
    for c in msg.cmsgs().expect("control messages") {
        if let ControlMessageOwned::ScmRights(fds) = c {
            fd = fds.first().map(|&f| unsafe { OwnedFd::from_raw_fd(f) });
        }
    }
    let n = msg.bytes;
    buf.truncate(n);
    (buf, fd.expect("kraal sent no fd"))
}

/// The seccomp agent: takes the container process state and the listener from kraal,
/// then answers every notification with "success" (without doing anything) until the
/// container closes the listener. Returns the state and the syscall numbers it saw.
fn agent(sock: UnixListener) -> (Value, Vec<i32>) {
    let (conn, _) = sock.accept().expect("accept kraal's connection");
    let (payload, listener) = recv_with_fd(conn.as_raw_fd());
    let mut rest = Vec::new();
    // kraal closes the connection after one state.
    (&conn).read_to_end(&mut rest).unwrap();
    let state: Value = serde_json::from_slice(&[payload, rest].concat()).unwrap();
    let mut seen = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        let mut pfd = libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        if unsafe { libc::poll(&mut pfd, 1, 1000) } <= 0 {
            continue;
        }
        if pfd.revents & libc::POLLIN == 0 {
            break; // POLLHUP: the container's processes are gone.
        }
        let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        if unsafe {
            libc::ioctl(
                listener.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_RECV,
                &mut req,
            )
        } != 0
        {
            continue; // The task died before we read it.
        }
        seen.push(req.data.nr);
        let resp = libc::seccomp_notif_resp {
            id: req.id,
            val: 0,
            error: 0,
            flags: 0,
        };
        unsafe { libc::ioctl(listener.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &resp) };
    }
    (state, seen)
}

#[test]
fn notify_rule_reaches_the_agent_which_answers() {
    let c = Ctr::new(
        "notify",
        &[
            "sh",
            "-c",
            "mkdir /tmp/agent-made && echo mkdir-ok; ls -d /tmp/agent-made || echo dir-absent",
        ],
    );
    let sock_path = c.dir.join("agent.sock");
    let sock = UnixListener::bind(&sock_path).unwrap();
    c.seccomp(
        json!({"defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock_path, "listenerMetadata": "kraal-test-agent",
            "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}),
        true,
    );
    let agent = std::thread::spawn(move || agent(sock));
    let o = c.run();
    let t = text(&o);
    if !o.status.success() {
        // Unblock the agent's accept() so the thread can end.
        let _ = std::os::unix::net::UnixStream::connect(&sock_path);
        panic!("{t}");
    }
    let (state, seen) = agent.join().unwrap();
    // The agent said "success" without creating anything.
    assert!(t.contains("mkdir-ok"), "{t}");
    assert!(t.contains("dir-absent"), "{t}");
    assert!(
        seen.iter()
            .any(|&nr| i64::from(nr) == libc::SYS_mkdir || i64::from(nr) == libc::SYS_mkdirat),
        "agent saw {seen:?}"
    );
    assert_eq!(state["ociVersion"], json!(kraal::OCI_VERSION), "{state}");
    assert_eq!(state["fds"], json!(["seccompFd"]), "{state}");
    assert_eq!(state["metadata"], json!("kraal-test-agent"), "{state}");
    assert!(state["pid"].as_i64().is_some_and(|p| p > 0), "{state}");
    assert_eq!(state["state"]["id"], json!(c.id), "{state}");
    assert_eq!(state["state"]["status"], json!("creating"), "{state}");
    assert_eq!(state["state"]["pid"], state["pid"], "{state}");
}

#[test]
fn bad_profiles_fail_create_naming_the_field_and_leave_nothing() {
    for (tag, profile, field) in [
        (
            "action",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["mkdir"], "action": "SCMP_ACT_FOO"}]}),
            "linux.seccomp.syscalls[3].action",
        ),
        (
            "arch",
            json!({"defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_VAX"]}),
            "linux.seccomp.architectures[1]",
        ),
        (
            "errno",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["getpid"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}]}),
            "linux.seccomp.syscalls[0].errnoRet",
        ),
    ] {
        let c = Ctr::new(&format!("bad-{tag}"), &["true"]);
        c.seccomp(profile, true);
        let b = c.bundle.to_string_lossy().into_owned();
        let o = c.kraal(&["create", "-b", &b, &c.id]);
        let t = text(&o);
        assert!(!o.status.success(), "{tag}: {t}");
        assert!(t.contains(field), "{tag}: want {field} in {t}");
        let state = c.kraal(&["state", &c.id]);
        assert!(
            !state.status.success(),
            "{tag}: container left behind: {}",
            text(&state)
        );
        let leftovers: Vec<_> = std::fs::read_dir(&c.root)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(leftovers.is_empty(), "{tag}: left in --root: {leftovers:?}");
        for h in kraal::cgroups::hierarchies().unwrap() {
            let inner = PathBuf::from(&c.cgroup_parent).join(&c.id);
            let d = kraal::cgroups::container_dir(&h, Some(&inner), &c.id).unwrap();
            assert!(!d.exists(), "{tag}: cgroup {} left behind", d.display());
        }
    }
}

/// The container's capabilities as `kraal spec` sets them (bounding set).
fn caps_of(ctr: &Ctr) -> Vec<String> {
    let c: Value =
        serde_json::from_slice(&std::fs::read(ctr.bundle.join("config.json")).unwrap()).unwrap();
    c["process"]["capabilities"]["bounding"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Turns a Docker-format profile (archMap, includes/excludes) into `linux.seccomp` for
/// an x86_64 container with `caps`, as Podman and Docker do before calling the runtime.
fn oci_profile(docker: &Value, caps: &[String]) -> Value {
    const NATIVE: &str = "amd64";
    let mut archs = Vec::new();
    for m in docker["archMap"].as_array().into_iter().flatten() {
        if m["architecture"] == "SCMP_ARCH_X86_64" {
            archs.push(m["architecture"].clone());
            archs.extend(
                m["subArchitectures"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
            );
        }
    }
    let has = |list: &Value, want: &str| {
        list.as_array()
            .is_some_and(|a| a.iter().any(|v| v.as_str() == Some(want)))
    };
    let kernel = kernel_version();
    let mut rules = Vec::new();
    for r in docker["syscalls"].as_array().into_iter().flatten() {
        let inc = &r["includes"];
        let exc = &r["excludes"];
        if has(&exc["arches"], NATIVE)
            || caps.iter().any(|c| has(&exc["caps"], c))
            || inc["arches"].as_array().is_some_and(|a| !a.is_empty())
                && !has(&inc["arches"], NATIVE)
            || inc["caps"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|c| !caps.iter().any(|have| Some(have.as_str()) == c.as_str()))
            })
            || inc["minKernel"]
                .as_str()
                .is_some_and(|v| parse_version(v) > kernel)
        {
            continue;
        }
        let mut rule = json!({"names": r["names"], "action": r["action"]});
        for k in ["errnoRet", "args"] {
            if !r[k].is_null() {
                rule[k] = r[k].clone();
            }
        }
        rules.push(rule);
    }
    let mut p = json!({"defaultAction": docker["defaultAction"], "syscalls": rules});
    if !docker["defaultErrnoRet"].is_null() {
        p["defaultErrnoRet"] = docker["defaultErrnoRet"].clone();
    }
    if !archs.is_empty() {
        p["architectures"] = archs.into();
    }
    p
}

fn parse_version(v: &str) -> (u32, u32) {
    let mut it = v
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok());
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

fn kernel_version() -> (u32, u32) {
    parse_version(&std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap())
}

/// The Docker/Podman default profile from containers-common (or the file named by
/// KRAAL_TEST_SECCOMP_PROFILE). Its absence fails the test: a stand-in would not show
/// that the real profile loads.
fn default_profile() -> (String, Value) {
    let path = std::env::var_os(DEFAULT_PROFILE_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PROFILE));
    match std::fs::read(&path) {
        Ok(b) => (
            path.display().to_string(),
            serde_json::from_slice(&b)
                .unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display())),
        ),
        Err(e) => panic!(
            "{}: {e}: install golang-github-containers-common (contrib/deps.sh) or point \
             {DEFAULT_PROFILE_ENV} at a Docker-format profile",
            path.display()
        ),
    }
}

#[test]
fn default_profile_compiles_to_a_loadable_program() {
    let (name, docker) = default_profile();
    let caps = vec![
        "CAP_AUDIT_WRITE".to_string(),
        "CAP_KILL".into(),
        "CAP_NET_BIND_SERVICE".into(),
    ];
    let oci = oci_profile(&docker, &caps);
    let s: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(oci).unwrap();
    let f = kraal::seccomp::compile(&s).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    assert!(f.listener().is_none(), "{name}");
    assert!(!f.instructions().is_empty(), "{name}");
    assert_eq!(
        f.flags(),
        libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW as u32,
        "{name}: absent flags default to SPEC_ALLOW"
    );
}

/// Builds a static helper that makes syscall `argv[1]` with zero arguments and prints
/// `errno=N` (or `ret=N`): for syscalls no busybox applet makes.
fn build_syscall_probe(c: &Ctr) -> PathBuf {
    let src = c.dir.join("probe.c");
    std::fs::write(
        &src,
        r#"#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc != 2) return 2;
    long r = syscall(atol(argv[1]), 0, 0, 0, 0, 0, 0);
    if (r < 0) printf("errno=%d\n", errno); else printf("ret=%ld\n", r);
    return 0;
}
"#,
    )
    .unwrap();
    let exe = c.bundle.join("rootfs/probe");
    let o = Command::new("gcc")
        .args(["-static", "-O1", "-o"])
        .arg(&exe)
        .arg(&src)
        .output()
        .expect("run gcc (contrib/deps.sh installs it)");
    assert!(o.status.success(), "gcc -static: {}", text(&o));
    exe
}

#[test]
fn default_profile_runs_a_busybox_workload() {
    let c = Ctr::new("default", &["true"]);
    let (name, docker) = default_profile();
    let oci = oci_profile(&docker, &caps_of(&c));
    assert_eq!(oci["defaultAction"], json!("SCMP_ACT_ERRNO"), "{name}");
    let want_errno = oci["defaultErrnoRet"]
        .as_i64()
        .unwrap_or(libc::EPERM.into());
    // A syscall the profile does not list gets the default action.
    let listed = |n: &str| {
        oci["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["names"].as_array().unwrap().iter().any(|v| v == n))
    };
    let (unlisted, nr) = [
        ("add_key", libc::SYS_add_key),
        ("request_key", libc::SYS_request_key),
        ("io_uring_setup", libc::SYS_io_uring_setup),
    ]
    .into_iter()
    .find(|(n, _)| !listed(n))
    .unwrap_or_else(|| panic!("{name}: lists every candidate syscall"));
    let probe = build_syscall_probe(&c);
    // Unfiltered, the kernel gives another error (EFAULT for add_key(NULL, ...)).
    let host = Command::new(&probe).arg(nr.to_string()).output().unwrap();
    let host = String::from_utf8_lossy(&host.stdout).trim().to_string();
    assert_ne!(
        host,
        format!("errno={want_errno}"),
        "{unlisted} fails the same way without a filter"
    );
    let script = format!(
        "echo hello | tr a-z A-Z; ls /bin | grep -c . >/dev/null && echo ls-ok; \
         sh -c 'exit 3'; echo child-status=$?; grep '^Seccomp:' /proc/self/status; \
         echo {unlisted}-$(/probe {nr})"
    );
    c.edit(|cfg| cfg["process"]["args"] = json!(["sh", "-c", script]));
    c.seccomp(oci, true);
    let o = c.run();
    let t = text(&o);
    assert!(o.status.success(), "{name}: {t}");
    let unlisted_result = format!("{unlisted}-errno={want_errno}");
    for want in [
        "HELLO",
        "ls-ok",
        "child-status=3",
        "Seccomp:\t2",
        &unlisted_result,
    ] {
        assert!(t.contains(want), "{name}: want {want:?} in {t}");
    }
}

/// Every syscall kraal itself makes to become the container process (rlimits,
/// scheduler, I/O priority, chdir, setgroups, setresgid/uid, capset, umask, closing
/// fds) is denied by the profile, yet the container runs: with no_new_privs the filter
/// is loaded after all of them, with and without a notify listener.
#[test]
fn runtime_syscalls_are_not_filtered() {
    const DENIED: &[&str] = &[
        "capset",
        "capget",
        "setresuid",
        "setresgid",
        "setuid",
        "setgid",
        "setgroups",
        "chdir",
        "fchdir",
        "getcwd",
        "umask",
        "close_range",
        "setrlimit",
        "prlimit64",
        "sched_setattr",
        "ioprio_set",
        "prctl",
    ];
    for with_listener in [false, true] {
        let tag = if with_listener { "rt-notify" } else { "rt" };
        let c = Ctr::new(
            tag,
            &[
                "sh",
                "-c",
                "mkdir /tmp/n && echo mkdir-ok; grep -E '^(Uid|Gid|Groups|CapEff|NoNewPrivs|Seccomp):' /proc/self/status",
            ],
        );
        let mut rules = vec![json!({"names": DENIED, "action": "SCMP_ACT_ERRNO", "errnoRet": 1})];
        let sock_path = c.dir.join("agent.sock");
        let mut profile = json!({"defaultAction": "SCMP_ACT_ALLOW"});
        let agent = if with_listener {
            rules.push(json!({"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}));
            profile["listenerPath"] = json!(sock_path);
            let sock = UnixListener::bind(&sock_path).unwrap();
            Some(std::thread::spawn(move || agent(sock)))
        } else {
            None
        };
        profile["syscalls"] = json!(rules);
        c.seccomp(profile, true);
        c.edit(|cfg| {
            let p = &mut cfg["process"];
            p["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [2000], "umask": 23});
            p["cwd"] = json!("/tmp");
            p["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 500, "hard": 600}]);
            p["scheduler"] = json!({"policy": "SCHED_OTHER", "nice": 2});
            p["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 6});
            p["capabilities"]["bounding"] = json!(["CAP_KILL", "CAP_NET_BIND_SERVICE"]);
            p["capabilities"]["effective"] = json!(["CAP_KILL"]);
            p["capabilities"]["permitted"] = json!(["CAP_KILL"]);
            p["capabilities"]["ambient"] = json!(["CAP_KILL"]);
            p["capabilities"]["inheritable"] = json!(["CAP_KILL"]);
        });
        let o = c.run();
        let t = text(&o);
        if !o.status.success() {
            // Unblock the agent's accept() so the thread can end.
            let _ = std::os::unix::net::UnixStream::connect(&sock_path);
            panic!("{tag}: {t}");
        }
        for want in [
            "Uid:\t1000\t1000\t1000\t1000",
            "Gid:\t1000\t1000\t1000\t1000",
            "Groups:\t2000",
            "CapEff:\t0000000000000020",
            "NoNewPrivs:\t1",
            "Seccomp:\t2",
        ] {
            assert!(t.contains(want), "{tag}: want {want:?} in {t}");
        }
        if let Some(agent) = agent {
            let (_, seen) = agent.join().unwrap();
            assert!(t.contains("mkdir-ok"), "{tag}: {t}");
            assert!(
                seen.iter()
                    .any(|&nr| i64::from(nr) == libc::SYS_mkdir
                        || i64::from(nr) == libc::SYS_mkdirat),
                "{tag}: agent saw {seen:?}"
            );
        }
    }
}

/// A startContainer hook's path resolves inside the container, so the image chooses
/// what it runs: it runs as confined as the container's process (runc does the
/// same), with no_new_privs and the seccomp filter in force. The hook shows its
/// state and fails on purpose, so its output comes back in kraal's error.
#[test]
fn start_container_hooks_run_confined() {
    for nnp in [true, false] {
        let c = Ctr::new("hookconf", &["true"]);
        c.seccomp(errno_profile(18), nnp);
        c.edit(|v| {
            v["hooks"] = json!({"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c",
                "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; mkdir /tmp/hk; exit 3"]}]});
        });
        let o = c.run();
        let t = text(&o);
        assert!(!o.status.success(), "nnp={nnp}: {t}");
        // The error is one logfmt line: the hook's tabs and newlines come escaped.
        let nnp_line = format!("NoNewPrivs:\\t{}", u8::from(nnp));
        for want in [
            "startContainer[0]",
            nnp_line.as_str(),
            "Seccomp:\\t2",
            "Invalid cross-device link",
        ] {
            assert!(t.contains(want), "nnp={nnp}: want {want:?} in {t}");
        }
    }
}
