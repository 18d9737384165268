//! exec, terminals (console socket and foreground proxy) and lifecycle hooks, as
//! container managers drive them.

mod common;

use common::*;
use serde_json::json;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

fn running(t: &TestEnv, args: &[&str], edit: impl FnOnce(&mut serde_json::Value)) -> Bundle {
    let mut b = t.bundle(args);
    b.edit(edit);
    t.create_start(&b);
    b
}

#[test]
fn exec_exit_code_pid_namespace_and_hostname() {
    let t = TestEnv::new();
    let b = running(&t, &["sleep", "300"], |c| {
        c["hostname"] = json!("exec-host")
    });
    let o = t.k().run(&[
        "exec",
        &b.id,
        "sh",
        "-c",
        "hostname; ps -o pid,args; exit 3",
    ]);
    assert_eq!(o.code(), Some(3), "{o:?}");
    let out = o.stdout_now();
    assert!(out.starts_with("exec-host\n"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("1 ") && l.contains("sleep 300")),
        "{out}"
    );
    t.k().run(&["delete", "--force", &b.id]).ok();
    t.assert_clean();
}

/// -u/-g/-e/--cwd; -g adds to the container's additional gids, as runc.
#[test]
fn exec_user_groups_env_and_cwd() {
    let t = TestEnv::new();
    let b = running(&t, &["sleep", "300"], |c| {
        c["process"]["user"]["additionalGids"] = json!([3000])
    });
    let o = t.k().run(&[
        "exec",
        "-u",
        "1000:1000",
        "-g",
        "2000",
        "-e",
        "FOO=bar",
        "--cwd",
        "/tmp",
        &b.id,
        "sh",
        "-c",
        "id -u; id -g; grep ^Groups: /proc/self/status; echo $FOO; pwd",
    ]);
    o.ok();
    let l = o.stdout_lines();
    assert_eq!(l[0], "1000");
    assert_eq!(l[1], "1000");
    assert_eq!(
        l[2].split_whitespace().collect::<Vec<_>>(),
        ["Groups:", "2000", "3000"]
    );
    assert_eq!(l[3], "bar");
    assert_eq!(l[4], "/tmp");
    t.k().run(&["delete", "--force", &b.id]).ok();
    t.assert_clean();
}

#[test]
fn exec_process_json_and_bad_inputs() {
    let t = TestEnv::new();
    let b = running(&t, &["sleep", "300"], |_| {});
    let pj = t.dir("pj").join("process.json");
    std::fs::write(&pj, r#"{"user":{"uid":0,"gid":0},"args":["sh","-c","echo from-json; exit 4"],"cwd":"/","env":["PATH=/bin"]}"#).unwrap();
    let o = t
        .k()
        .run(&["exec", "--process", pj.to_str().unwrap(), &b.id]);
    assert_eq!(o.code(), Some(4), "{o:?}");
    assert_eq!(o.stdout_lines(), ["from-json"]);
    std::fs::write(&pj, r#"{"args":"not-a-list"}"#).unwrap();
    t.k()
        .run(&["exec", "--process", pj.to_str().unwrap(), &b.id])
        .fails()
        .stderr_has("args");
    t.k()
        .run(&["exec", "no-such-container", "true"])
        .fails()
        .stderr_has("does not exist");
    t.k()
        .run(&[
            "exec",
            "-t",
            "--console-socket",
            "/nonexistent/sock",
            &b.id,
            "true",
        ])
        .fails()
        .stderr_has("/nonexistent/sock");
    t.k()
        .run(&["exec", &b.id, "no-such-binary"])
        .fails()
        .stderr_has("no-such-binary");
    t.k().run(&["delete", "--force", &b.id]).ok();
    t.k().run(&["exec", &b.id, "true"]).fails();
    t.assert_clean();
}

/// Reads from `fd` until `needle` shows up (or the deadline passes).
fn read_until(f: &mut std::fs::File, needle: &str, t: Duration) -> String {
    let deadline = Instant::now() + t;
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline && !got.contains(needle) {
        let mut p = libc::pollfd {
            fd: f.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        if unsafe { libc::poll(&mut p, 1, 100) } > 0 {
            match f.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
    }
    got
}

/// A terminal container hands its pty master over --console-socket; the test types
/// a command into it and reads the answer: /dev/console is that pty and consoleSize
/// is applied. Then exec -t does the same with a shell of its own.
#[test]
fn console_socket_receives_the_pty_master() {
    let t = TestEnv::new();
    let mut b = t.bundle(&["sh"]);
    b.edit(|c| {
        c["process"]["terminal"] = json!(true);
        c["process"]["consoleSize"] = json!({"height": 30, "width": 100});
    });
    let sock = t.dir("sock").join("console.sock");
    let l = UnixListener::bind(&sock).unwrap();
    let o = t.k().run(&[
        "create",
        "--console-socket",
        sock.to_str().unwrap(),
        "--bundle",
        b.dir.to_str().unwrap(),
        &b.id,
    ]);
    o.ok();
    let (conn, _) = l.accept().unwrap();
    let (master, _) = kraal::tty::recv_fd(conn.as_fd()).unwrap();
    let mut m = std::fs::File::from(master);
    t.k().run(&["start", &b.id]).ok();
    // The same device and inode: /dev/console is the pty bound over it.
    m.write_all(
        b"tty; echo size=$(stty size); stat -c 'dev=%d:%i:%t:%T' /dev/console $(tty); echo marker-$((6*7))\n",
    )
    .unwrap();
    let got = read_until(&mut m, "marker-42", Duration::from_secs(10));
    assert!(
        got.contains("/dev/pts/0") && got.contains("marker-42"),
        "{got:?}"
    );
    assert!(got.contains("size=30 100"), "consoleSize: {got:?}");
    let devs: Vec<&str> = got
        .split(|c: char| c.is_whitespace())
        .filter(|w| w.starts_with("dev="))
        .collect();
    assert_eq!(devs.len(), 2, "{got:?}");
    assert_eq!(devs[0], devs[1], "/dev/console is not the pty: {got:?}");

    let (conn_tx, conn_rx) = std::sync::mpsc::channel();
    let l2 = l.try_clone().unwrap();
    std::thread::spawn(move || {
        let (c, _) = l2.accept().unwrap();
        let _ = conn_tx.send(kraal::tty::recv_fd(c.as_fd()).unwrap().0);
    });
    let pid_file = t.dir("sock").join("exec.pid");
    let o = t.k().run(&[
        "exec",
        "-t",
        "-d",
        "--pid-file",
        pid_file.to_str().unwrap(),
        "--console-socket",
        sock.to_str().unwrap(),
        &b.id,
        "sh",
    ]);
    o.ok();
    let mut m2 = std::fs::File::from(conn_rx.recv_timeout(Duration::from_secs(10)).unwrap());
    // A command typed into the exec'd shell, its answer read back.
    m2.write_all(b"tty; echo exec-tty-$((2+3))\n").unwrap();
    let got = read_until(&mut m2, "exec-tty-5", Duration::from_secs(10));
    assert!(got.contains("exec-tty-5"), "{got:?}");
    assert!(got.contains("/dev/pts/1"), "a pty of its own: {got:?}");
    let pid: i64 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    m2.write_all(b"exit 3\n").unwrap();
    assert!(
        wait_for(WAIT_TIMEOUT, || (!pid_alive(pid)).then_some(())).is_some(),
        "the exec'd shell did not exit"
    );
    t.k().run(&["delete", "--force", &b.id]).ok();
    t.assert_clean();
}

/// `run` with terminal:true in the foreground proxies the pty to kraal's own
/// terminal: the test gives kraal a pty and talks through it.
#[test]
fn foreground_run_proxies_the_terminal() {
    let t = TestEnv::new();
    let mut b = t.bundle(&["sh", "-c", "read line; echo got-$line; tty; exit 6"]);
    b.edit(|c| c["process"]["terminal"] = json!(true));
    let (master, slave) = kraal::tty::open_pty(c"/dev/ptmx").unwrap();
    let mut cmd = t
        .k()
        .command(&["run", "--bundle", b.dir.to_str().unwrap(), &b.id]);
    let s = std::fs::File::from(slave);
    cmd.stdin(s.try_clone().unwrap())
        .stdout(s.try_clone().unwrap())
        .stderr(s);
    let mut child = cmd.spawn().unwrap();
    let mut m = std::fs::File::from(master);
    m.write_all(b"hello\n").unwrap();
    let got = read_until(&mut m, "/dev/pts/", Duration::from_secs(15));
    let st = wait_timeout(&mut child, Duration::from_secs(20)).unwrap();
    if st.is_none() {
        let _ = child.kill();
    }
    assert!(got.contains("got-hello"), "{got:?}");
    assert_eq!(st.and_then(|s| s.code()), Some(6), "{got:?}");
    t.assert_clean();
}

fn hook(log: &std::path::Path, name: &str) -> serde_json::Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", format!("echo {name} $(cat) >> {}", log.display())]})
}

/// Every hook kind runs once, in lifecycle order, with the state of that moment.
#[test]
fn hooks_run_in_order_with_state() {
    let t = TestEnv::new();
    let log = t.dir("hooks").join("log");
    let mut b = t.bundle(&["true"]);
    let inside = json!({"path": "/bin/sh", "args": ["sh", "-c", "echo startContainer $(cat) >> /tmp/start-hook-log"]});
    let hooks = json!({
        "prestart": [hook(&log, "prestart")],
        "createRuntime": [hook(&log, "createRuntime")],
        "createContainer": [hook(&log, "createContainer")],
        "startContainer": [inside],
        "poststart": [hook(&log, "poststart")],
        "poststop": [hook(&log, "poststop")],
    });
    b.edit(|c| c["hooks"] = hooks);
    t.create(&b);
    let after_create = std::fs::read_to_string(&log).unwrap();
    let kinds: Vec<&str> = after_create
        .lines()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["prestart", "createRuntime", "createContainer"],
        "poststart must not run at create"
    );
    t.k().run(&["start", &b.id]).ok();
    t.k().wait_status(&b.id, "stopped");
    t.k().run(&["delete", &b.id]).ok();
    let all = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = all.lines().collect();
    let kinds: Vec<&str> = lines.iter().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "poststart",
            "poststop"
        ]
    );
    let state = |i: usize| -> serde_json::Value {
        serde_json::from_str(lines[i].split_once(' ').unwrap().1).unwrap()
    };
    assert_eq!(state(0)["status"], "created");
    assert_eq!(state(1)["status"], "created");
    assert_eq!(state(1)["id"], b.id.as_str());
    let pid = state(1)["pid"].as_i64().unwrap();
    assert!(pid > 0);
    assert_eq!(state(2)["status"], "created");
    assert_eq!(state(2)["pid"], pid);
    assert_eq!(state(3)["status"], "running");
    assert_eq!(state(3)["pid"], pid);
    assert_eq!(state(4)["status"], "stopped");
    assert!(state(4).get("pid").is_none(), "{}", lines[4]);
    // startContainer ran once, inside the container (its /tmp is the rootfs's).
    let inside = std::fs::read_to_string(b.rootfs.join("tmp/start-hook-log")).unwrap();
    let inside: Vec<&str> = inside.lines().collect();
    assert_eq!(inside.len(), 1, "{inside:?}");
    let st: serde_json::Value = serde_json::from_str(inside[0].split_once(' ').unwrap().1).unwrap();
    assert_eq!(st["status"], "created");
    assert_eq!(st["pid"], pid);
    assert_eq!(st["id"], b.id.as_str());
    t.assert_clean();
}

/// A failing createRuntime hook fails create, names the hook, and leaves nothing;
/// the container is torn down and then the poststop hooks run (runtime.md steps 4,
/// 12, 13), with status `stopped`.
#[test]
fn failing_create_runtime_hook_fails_create() {
    let t = TestEnv::new();
    let log = t.dir("hooks").join("log");
    let mut b = t.bundle(&["true"]);
    let hooks = json!({
        "createRuntime": [hook(&log, "createRuntime"), {"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 9"]}],
        "poststop": [hook(&log, "poststop")],
    });
    b.edit(|c| c["hooks"] = hooks);
    let o = t
        .k()
        .run(&["create", "--bundle", b.dir.to_str().unwrap(), &b.id]);
    o.fails()
        .stderr_has("createRuntime[1]")
        .stderr_has("exit status 9")
        .stderr_has("nope");
    let (kinds, states) = hook_log(&log);
    assert_eq!(kinds, ["createRuntime", "poststop"]);
    assert_eq!(states[1]["status"], "stopped");
    assert_eq!(states[1]["id"], b.id.as_str());
    // The init the createRuntime hook saw is gone.
    let pid = states[0]["pid"].as_i64().unwrap();
    assert!(!pid_alive(pid), "init {pid} still runs");
    t.assert_clean();
}

/// A hook past its timeout is killed and the lifecycle step fails.
#[test]
fn hook_timeout_kills_the_hook() {
    let t = TestEnv::new();
    let mut b = t.bundle(&["true"]);
    b.edit(|c| {
        c["hooks"] =
            json!({"prestart": [{"path": "/bin/sleep", "args": ["sleep", "60"], "timeout": 1}]})
    });
    let start = Instant::now();
    let o = t
        .k()
        .run(&["create", "--bundle", b.dir.to_str().unwrap(), &b.id]);
    o.fails().stderr_has("timed out");
    assert!(start.elapsed() < Duration::from_secs(30));
    t.assert_clean();
}

/// busybox has no sd_notify client: a tiny static one, built into the rootfs as
/// /notify-ready (sleeps a second, sends STATUS= and READY=1, then pauses).
fn build_notify_client(t: &TestEnv, b: &Bundle) {
    let src = t.dir("notify").join("n.c");
    std::fs::write(
        &src,
        r#"#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
int main(void) {
    const char *p = getenv("NOTIFY_SOCKET");
    if (!p) return 2;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strncpy(a.sun_path, p, sizeof a.sun_path - 1);
    int s = socket(AF_UNIX, SOCK_DGRAM, 0);
    sleep(1);
    const char *m = "STATUS=starting\n";
    sendto(s, m, strlen(m), 0, (struct sockaddr *)&a, sizeof a);
    m = "READY=1\n";
    if (sendto(s, m, strlen(m), 0, (struct sockaddr *)&a, sizeof a) < 0) return 3;
    pause();
    return 0;
}
"#,
    )
    .unwrap();
    compile_static(&src, &b.rootfs.join("notify-ready"));
}

/// NOTIFY_SOCKET: `start` waits for the container's READY=1 and passes readiness
/// on to the caller's socket with MAINPID set to the container's init. As with
/// runc, that is the NOTIFY_SOCKET of `start`'s environment, not create's.
#[test]
fn notify_socket_readiness_is_forwarded() {
    let t = TestEnv::new();
    let b = t.bundle(&["/notify-ready"]);
    build_notify_client(&t, &b);
    let host = t.dir("notify").join("host.sock");
    let listener = std::os::unix::net::UnixDatagram::bind(&host).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let at_create = t.dir("notify").join("create.sock");
    let create_listener = std::os::unix::net::UnixDatagram::bind(&at_create).unwrap();
    create_listener.set_nonblocking(true).unwrap();
    let mut create = t
        .k()
        .command(&["create", "--bundle", b.dir.to_str().unwrap(), &b.id]);
    create.env("NOTIFY_SOCKET", &at_create);
    t.k().exec(create).ok();
    let mut start = t.k().command(&["start", &b.id]);
    start.env("NOTIFY_SOCKET", &host);
    let began = Instant::now();
    t.k().exec(start).ok();
    assert!(
        began.elapsed() >= Duration::from_millis(900),
        "start returned before READY=1"
    );
    let mut buf = [0u8; 512];
    let n = listener.recv(&mut buf).unwrap();
    let msg = String::from_utf8_lossy(&buf[..n]).to_string();
    let pid = t.k().pid(&b.id);
    assert!(
        msg.contains("READY=1") && msg.contains(&format!("MAINPID={pid}")),
        "{msg}"
    );
    assert!(
        create_listener.recv(&mut buf).is_err(),
        "readiness went to create's NOTIFY_SOCKET"
    );
    t.k().run(&["delete", "--force", &b.id]).ok();
    t.assert_clean();
}

/// An error between `start` and execve (here: a seccomp rule denying execve) makes
/// `start` fail with the init's own error text, instead of reporting success.
#[test]
fn failure_after_start_is_reported_by_start() {
    let t = TestEnv::new();
    let mut b = t.bundle(&["true"]);
    b.edit(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["execve", "execveat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}],
        })
    });
    t.create(&b);
    let o = t.k().run(&["start", &b.id]);
    o.fails()
        .stderr_has("failed to start")
        .stderr_has("Permission denied");
    t.k().wait_status(&b.id, "stopped");
    t.k().run(&["delete", &b.id]).ok();
    t.assert_clean();
}

// ---------------------------------------------------------------------------
// Helpers for the tests below
// ---------------------------------------------------------------------------

/// The kinds and states a log written by `hook` holds, in order.
fn hook_log(log: &std::path::Path) -> (Vec<String>, Vec<serde_json::Value>) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut kinds = Vec::new();
    let mut states = Vec::new();
    for l in text.lines() {
        let (k, st) = l.split_once(' ').unwrap_or((l, "null"));
        kinds.push(k.to_string());
        states.push(serde_json::from_str(st).unwrap_or(serde_json::Value::Null));
    }
    (kinds, states)
}

fn failing(name: &str) -> serde_json::Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat > /dev/null; echo {name}-failed >&2; exit 1")]})
}

/// The container's cgroup directories on the host (one per hierarchy).
fn container_cgroups(t: &TestEnv, id: &str) -> Vec<std::path::PathBuf> {
    cgroup_parent_dirs(&t.cgroup_parent)
        .into_iter()
        .map(|d| d.join(id))
        .filter(|d| d.is_dir())
        .collect()
}

/// The line of /proc/self/cgroup output for `controller` (a v1 hierarchy), or the
/// cgroup2 line when no v1 hierarchy has it.
fn cgroup_line<'a>(out: &'a str, controller: &str) -> &'a str {
    let v1 = out.lines().find(|l| {
        l.split(':')
            .nth(1)
            .is_some_and(|c| c.split(',').any(|c| c == controller))
    });
    v1.or_else(|| out.lines().find(|l| l.starts_with("0::")))
        .unwrap_or_else(|| panic!("no cgroup line for {controller}: {out}"))
}

fn status_field(out: &str, field: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {out}"))
        .trim()
        .to_string()
}

fn cap_mask(out: &str, field: &str) -> u64 {
    u64::from_str_radix(&status_field(out, field), 16).unwrap()
}

const CAP_NET_RAW: u32 = 13;
const CAP_SYS_ADMIN: u32 = 21;

// ---------------------------------------------------------------------------
// exec flags
// ---------------------------------------------------------------------------

/// --apparmor and --process-label set the process's fields, which are then applied
/// or ignored exactly as the same fields of a process.json (AppArmor: applied or an
/// error where it is off; SELinux: ignored where it is off, as runc).
#[test]
fn exec_apparmor_and_process_label_as_in_process_json() {
    let t = TestEnv::new();
    let b = running(&t, &["sleep", "300"], |_| {});
    let pj = t.dir("pj").join("process.json");
    let write_pj = |extra: serde_json::Value| {
        let mut p = json!({"user": {"uid": 0, "gid": 0}, "args": ["true"], "cwd": "/", "env": ["PATH=/bin"]});
        for (k, v) in extra.as_object().unwrap() {
            p[k] = v.clone();
        }
        std::fs::write(&pj, p.to_string()).unwrap();
    };
    let apparmor_on = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y");
    let selinux_on = std::path::Path::new("/sys/fs/selinux/enforce").exists();

    let flag = t
        .k()
        .run(&["exec", "--apparmor", "unconfined", &b.id, "true"]);
    write_pj(json!({"apparmorProfile": "unconfined"}));
    let file = t
        .k()
        .run(&["exec", "--process", pj.to_str().unwrap(), &b.id]);
    assert_eq!(flag.success(), file.success(), "{flag:?}\n{file:?}");
    if apparmor_on {
        flag.ok();
    } else {
        flag.fails()
            .stderr_has("process.apparmorProfile")
            .stderr_has("AppArmor is not enabled");
        file.fails().stderr_has("AppArmor is not enabled");
    }

    let label = "system_u:system_r:container_t:s0";
    let flag = t
        .k()
        .run(&["exec", "--process-label", label, &b.id, "true"]);
    write_pj(json!({"selinuxLabel": label}));
    let file = t
        .k()
        .run(&["exec", "--process", pj.to_str().unwrap(), &b.id]);
    assert_eq!(flag.success(), file.success(), "{flag:?}\n{file:?}");
    if !selinux_on {
        // As runc: a label this host cannot apply is refused.
        flag.fails()
            .stderr_has("process.selinuxLabel")
            .stderr_has("SELinux is not enabled");
        file.fails().stderr_has("SELinux is not enabled");
    }
    t.k().run(&["delete", "--force", &b.id]).ok();
    t.assert_clean();
}

/// The namespace links of `pid` (as the host sees them) and of an exec'd process
/// (as it sees its own) must be equal for every kind, and differ from the test's.
fn assert_same_namespaces(init: i64, exec_out: &[String], kinds: &[&str]) {
    for (i, k) in kinds.iter().enumerate() {
        let host = std::fs::read_link(format!("/proc/{init}/ns/{k}")).unwrap();
        assert_eq!(exec_out[i], host.to_string_lossy(), "{k}: {exec_out:?}");
        let own = std::fs::read_link(format!("/proc/self/ns/{k}")).unwrap();
        assert_ne!(exec_out[i], own.to_string_lossy(), "{k}: still the host's");
    }
}

const NS_KINDS: [&str; 6] = ["mnt", "pid", "net", "ipc", "uts", "cgroup"];

/// The exec'd process joins every namespace of the init, the user and time
/// namespaces included: the same /proc/self/ns links, id maps and clock offsets.
/// (A container with both is `security::user_and_time_namespaces_together`.)
#[test]
fn exec_joins_user_and_time_namespaces() {
    let t = TestEnv::new();
    let words = |l: &str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    let links = |kinds: &[&str]| -> String {
        let k = kinds.join(" ");
        format!("for n in {k}; do readlink /proc/self/ns/$n; done")
    };

    let base = 300_000 + (t.n as u32 % 100) * 65_536;
    let mut b = t.bundle(&["sleep", "300"]);
    b.user_namespace(base);
    t.create_start(&b);
    let init = t.k().pid(&b.id);
    let mut kinds = vec!["user"];
    kinds.extend(NS_KINDS);
    let script = format!(
        "{}; cat /proc/self/uid_map /proc/self/gid_map; id -u",
        links(&kinds)
    );
    let o = t.k().run(&["exec", &b.id, "sh", "-c", &script]);
    o.ok();
    let lines = o.stdout_lines();
    assert_same_namespaces(init, &lines, &kinds);
    let map = ["0".to_string(), base.to_string(), "65536".to_string()];
    let n = kinds.len();
    assert_eq!(words(&lines[n]), map, "uid_map: {lines:?}");
    assert_eq!(words(&lines[n + 1]), map, "gid_map: {lines:?}");
    assert_eq!(lines[n + 2], "0");
    t.k().run(&["delete", "--force", &b.id]).ok();

    let mut b = t.bundle(&["sleep", "300"]);
    b.edit(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.push(json!({"type": "time"}));
        c["linux"]["timeOffsets"] = json!({"boottime": {"secs": 86400}, "monotonic": {"secs": 11}});
    });
    t.create_start(&b);
    let init = t.k().pid(&b.id);
    let mut kinds = vec!["time"];
    kinds.extend(NS_KINDS);
    let script = format!("{}; cat /proc/self/timens_offsets", links(&kinds));
    let o = t.k().run(&["exec", &b.id, "sh", "-c", &script]);
    o.ok();
    let lines = o.stdout_lines();
    assert_same_namespaces(init, &lines, &kinds);
    let offsets: Vec<Vec<String>> = lines[kinds.len()..].iter().map(|l| words(l)).collect();
    assert!(
        offsets.contains(&words("monotonic 11 0")) && offsets.contains(&words("boottime 86400 0")),
        "{lines:?}"
    );
    t.k().run(&["delete", "--force", &b.id]).ok();
    t.assert_clean();
}

/// exec into a paused container fails unless --ignore-paused (then the process runs
/// once the container is resumed, as with runc); into a stopped one it fails.
#[test]
fn exec_into_paused_and_stopped_containers() {
    let t = TestEnv::new();
    let b = running(&t, &["sleep", "300"], |_| {});
    t.k().run(&["pause", &b.id]).ok();
    t.k().wait_status(&b.id, "paused");
    t.k()
        .run(&["exec", &b.id, "echo", "no"])
        .fails()
        .stderr_has("paused")
        .stderr_has("--ignore-paused");
    let cg = container_cgroups(&t, &b.id);
    let procs = |d: &std::path::PathBuf| {
        std::fs::read_to_string(d.join("cgroup.procs"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    let before: Vec<usize> = cg.iter().map(procs).collect();
    let o = std::thread::scope(|s| {
        let h = s.spawn(|| t.k().run(&["exec", "--ignore-paused", &b.id, "echo", "ok"]));
        // Resume once the exec process sits in the frozen cgroup (or after a while
        // if that cannot be seen here: the exec must succeed either way).
        let _ = wait_for(Duration::from_secs(5), || {
            cg.iter()
                .zip(&before)
                .any(|(d, n)| procs(d) > *n)
                .then_some(())
        });
        t.k().run(&["resume", &b.id]).ok();
        h.join().unwrap()
    });
    o.ok();
    assert_eq!(o.stdout_lines(), ["ok"]);
    t.k().run(&["delete", "--force", &b.id]).ok();

    let b = running(&t, &["true"], |_| {});
    t.k().wait_status(&b.id, "stopped");
    t.k()
        .run(&["exec", &b.id, "echo", "no"])
        .fails()
        .stderr_has("stopped");
    t.k().run(&["delete", &b.id]).ok();
    t.assert_clean();
}

/// --cgroup puts the process in a sub-cgroup of the container's: a plain path in
/// every hierarchy, `controller:path` in that controller's v1 hierarchy only (the
/// other hierarchies keep the container's cgroup), as runc.
#[test]
fn exec_cgroup_sub_cgroups() {
    let t = TestEnv::new();
    let b = running(&t, &["sleep", "300"], |_| {});
    let dirs = container_cgroups(&t, &b.id);
    assert!(!dirs.is_empty());
    for d in &dirs {
        let sub = d.join("sub");
        std::fs::create_dir(&sub).unwrap();
        // A new v1 cpuset takes no task until it has cpus and mems (on v2 the
        // files exist only where the controller is enabled, and empty inherits).
        for f in ["cpuset.cpus", "cpuset.mems"] {
            match std::fs::read_to_string(d.join(f)) {
                Ok(v) if !v.trim().is_empty() && sub.join(f).exists() => {
                    std::fs::write(sub.join(f), v.trim()).unwrap()
                }
                _ => {}
            }
        }
    }
    let o = t
        .k()
        .run(&["exec", "--cgroup", "sub", &b.id, "cat", "/proc/self/cgroup"]);
    o.ok();
    for c in ["memory", "pids"] {
        let l = cgroup_line(&o.stdout, c);
        assert!(l.ends_with(":/sub"), "{c}: {}", o.stdout);
    }
    let o = t.k().run(&["exec", &b.id, "cat", "/proc/self/cgroup"]);
    o.ok();
    assert!(
        cgroup_line(&o.stdout, "memory").ends_with(":/"),
        "{}",
        o.stdout
    );

    let hier = kraal::cgroups::hierarchies().unwrap();
    let mem = hier
        .iter()
        .find(|h| !h.v2 && h.controllers.iter().any(|c| c == "memory"));
    if let Some(mem) = mem {
        let d = dirs
            .iter()
            .find(|d| d.starts_with(&mem.mountpoint))
            .expect("the container has a memory cgroup");
        std::fs::create_dir(d.join("subm")).unwrap();
        let o = t.k().run(&[
            "exec",
            "--cgroup",
            "memory:subm",
            &b.id,
            "cat",
            "/proc/self/cgroup",
        ]);
        o.ok();
        assert!(
            cgroup_line(&o.stdout, "memory").ends_with(":/subm"),
            "{}",
            o.stdout
        );
        assert!(
            cgroup_line(&o.stdout, "pids").ends_with(":/"),
            "{}",
            o.stdout
        );
        // Repeated --cgroup: one sub-cgroup per controller (runc's syntax).
        let pids = hier
            .iter()
            .find(|h| !h.v2 && h.controllers.iter().any(|c| c == "pids"));
        if let Some(pids) = pids {
            let d = dirs
                .iter()
                .find(|d| d.starts_with(&pids.mountpoint))
                .expect("the container has a pids cgroup");
            std::fs::create_dir(d.join("subp")).unwrap();
            let o = t.k().run(&[
                "exec",
                "--cgroup",
                "memory:subm",
                "--cgroup",
                "pids:subp",
                &b.id,
                "cat",
                "/proc/self/cgroup",
            ]);
            o.ok();
            assert!(
                cgroup_line(&o.stdout, "memory").ends_with(":/subm"),
                "{}",
                o.stdout
            );
            assert!(
                cgroup_line(&o.stdout, "pids").ends_with(":/subp"),
                "{}",
                o.stdout
            );
        }
        t.k()
            .run(&["exec", "--cgroup", "nosuchctl:/", &b.id, "true"])
            .fails()
            .stderr_has("unknown controller nosuchctl");
    } else {
        // cgroup v2: a controller: prefix is not used there (runc ignores it too).
        let o = t.k().run(&[
            "exec",
            "--cgroup",
            "memory:sub",
            &b.id,
            "cat",
            "/proc/self/cgroup",
        ]);
        o.ok();
        assert!(
            cgroup_line(&o.stdout, "memory").ends_with(":/"),
            "{}",
            o.stdout
        );
    }
    t.k()
        .run(&["exec", "--cgroup", "nosuch", &b.id, "true"])
        .fails()
        .stderr_has("does not exist");
    t.k()
        .run(&["exec", "--cgroup", "../x", &b.id, "true"])
        .fails()
        .stderr_has("..");
    t.k().run(&["delete", "--force", &b.id]).ok();
    t.assert_clean();
}

/// --preserve-fds passes fds 3.. to the process (and fails when they are not
/// open); --pid-file names the process, which is in the container's pid namespace.
#[test]
fn exec_preserve_fds_and_pid_file() {
    let t = TestEnv::new();
    let b = running(&t, &["sleep", "300"], |_| {});
    let data = t.dir("fds").join("data");
    std::fs::write(&data, "preserved-content\n").unwrap();
    let f = std::fs::File::open(&data).unwrap();
    let mut cmd = t
        .k()
        .command(&["exec", "--preserve-fds", "1", &b.id, "sh", "-c", "cat <&3"]);
    pass_fd(&mut cmd, &f, 3);
    let o = t.k().exec(cmd);
    o.ok();
    assert_eq!(o.stdout_lines(), ["preserved-content"]);
    // Without the flag the fd does not reach the process.
    let mut cmd = t.k().command(&["exec", &b.id, "sh", "-c", "cat <&3"]);
    pass_fd(&mut cmd, &f, 3);
    let o = t.k().exec(cmd);
    o.fails();
    assert!(o.stdout.is_empty(), "{o:?}");
    // Asking for fds that are not open is an error (runc: "unable to stat preserved-fd").
    let mut cmd = t
        .k()
        .command(&["exec", "--preserve-fds", "3", &b.id, "true"]);
    pass_fd(&mut cmd, &f, 3);
    t.k().exec(cmd).fails().stderr_has("preserved fd 4");
    drop(f);

    let pf = t.dir("fds").join("exec.pid");
    t.k()
        .run(&[
            "exec",
            "-d",
            "--pid-file",
            pf.to_str().unwrap(),
            &b.id,
            "sleep",
            "200",
        ])
        .ok();
    let pid: i64 = std::fs::read_to_string(&pf)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(pid_alive(pid));
    let init = t.k().pid(&b.id);
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap(),
        std::fs::read_link(format!("/proc/{init}/ns/pid")).unwrap()
    );
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(cmdline.starts_with(b"sleep\x00200"), "{cmdline:?}");
    t.k().run(&["delete", "--force", &b.id]).ok();
    assert!(!pid_alive(pid), "delete left the exec'd process");
    t.assert_clean();
}

/// -c adds a capability (and to the ambient set when the process has an
/// inheritable set that holds it, as runc), --no-new-privs sets NNP, and a process
/// killed by a signal makes exec exit 128+signal.
#[test]
fn exec_cap_no_new_privs_and_signal_exit() {
    let t = TestEnv::new();
    let b = running(&t, &["sleep", "300"], |c| {
        c["process"]["noNewPrivileges"] = json!(false);
        let caps = &mut c["process"]["capabilities"];
        caps["bounding"]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_SYS_ADMIN"));
        caps["inheritable"] = json!(["CAP_SYS_ADMIN"]);
    });
    let status = |args: &[&str]| {
        let mut a = vec!["exec"];
        a.extend_from_slice(args);
        a.push(&b.id);
        a.extend_from_slice(&["cat", "/proc/self/status"]);
        let o = t.k().run(&a);
        o.ok();
        o.stdout.clone()
    };
    // Root: -c adds to the bounding, effective and permitted sets.
    let plain = status(&[]);
    for set in ["CapEff", "CapPrm", "CapBnd"] {
        assert_eq!(
            cap_mask(&plain, set) & (1 << CAP_NET_RAW),
            0,
            "{set}: {plain}"
        );
    }
    assert_eq!(status_field(&plain, "NoNewPrivs"), "0");
    let added = status(&["--cap", "net_raw"]);
    for set in ["CapEff", "CapPrm", "CapBnd"] {
        let m = cap_mask(&added, set);
        assert_ne!(m & (1 << CAP_NET_RAW), 0, "{set}: {added}");
    }
    assert_eq!(cap_mask(&added, "CapAmb"), 0, "not inheritable: {added}");
    // A non-root user keeps only ambient capabilities across exec: -c gives it one
    // when the process's inheritable set holds it.
    let user = status(&["-u", "1000"]);
    assert_eq!(cap_mask(&user, "CapEff"), 0, "{user}");
    let user = status(&["-u", "1000", "-c", "CAP_SYS_ADMIN", "-c", "CAP_NET_RAW"]);
    assert_eq!(cap_mask(&user, "CapAmb"), 1 << CAP_SYS_ADMIN, "{user}");
    assert_eq!(cap_mask(&user, "CapEff"), 1 << CAP_SYS_ADMIN, "{user}");
    let nnp = status(&["--no-new-privs"]);
    assert_eq!(status_field(&nnp, "NoNewPrivs"), "1");
    let nnp = status(&["--no-new-privs=true"]);
    assert_eq!(status_field(&nnp, "NoNewPrivs"), "1");
    t.k()
        .run(&["exec", "-c", "CAP_NO_SUCH", &b.id, "true"])
        .fails()
        .stderr_has("CAP_NO_SUCH");

    // --no-new-privs=false clears the container's setting for this process (runc).
    let strict = running(&t, &["sleep", "300"], |c| {
        c["process"]["noNewPrivileges"] = json!(true);
    });
    for (flag, want) in [(None, "1"), (Some("--no-new-privs=false"), "0")] {
        let mut a = vec!["exec"];
        a.extend(flag);
        a.extend_from_slice(&[&strict.id, "cat", "/proc/self/status"]);
        let o = t.k().run(&a);
        o.ok();
        assert_eq!(status_field(&o.stdout, "NoNewPrivs"), want, "{flag:?}");
    }
    t.k().run(&["delete", "--force", &strict.id]).ok();

    let o = t.k().run(&["exec", &b.id, "sh", "-c", "kill -KILL $$"]);
    assert_eq!(o.code(), Some(137), "{o:?}");
    let o = t.k().run(&["exec", &b.id, "sh", "-c", "kill -USR1 $$"]);
    assert_eq!(o.code(), Some(138), "{o:?}");
    t.k().run(&["delete", "--force", &b.id]).ok();
    t.assert_clean();
}

/// A missing or unusable executable is reported in runc's words (Go's LookPath),
/// which Podman and Docker map to exit codes 127 and 126.
#[test]
fn missing_executable_errors_match_runc() {
    let t = TestEnv::new();
    let b = running(&t, &["sleep", "300"], |_| {});
    t.k()
        .run(&["exec", &b.id, "/nonexistent"])
        .fails()
        .stderr_has(r#"/nonexistent\": stat /nonexistent: no such file or directory"#);
    t.k()
        .run(&["exec", &b.id, "nosuchcommand"])
        .fails()
        .stderr_has(r#"nosuchcommand\": executable file not found in $PATH"#);
    t.k()
        .run(&["exec", &b.id, "/etc/passwd"])
        .fails()
        .stderr_has(r#"/etc/passwd\": permission denied"#);
    t.k()
        .run(&["exec", &b.id, "/etc"])
        .fails()
        .stderr_has(r#"/etc\": permission denied"#);
    t.k().run(&["delete", "--force", &b.id]).ok();
    let b = t.bundle(&["/nonexistent"]);
    t.k()
        .run(&["create", "--bundle", b.dir.to_str().unwrap(), &b.id])
        .fails()
        .stderr_has("stat /nonexistent: no such file or directory");
    t.assert_clean();
}

// ---------------------------------------------------------------------------
// Terminals
// ---------------------------------------------------------------------------

fn termios(fd: &impl AsRawFd) -> libc::termios {
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::tcgetattr(fd.as_raw_fd(), &mut t) }, 0);
    t
}

/// Foreground `exec -t` proxies the pty to kraal's own terminal (a pty the test
/// drives): raw mode while it runs, kraal's window size copied in and updated on
/// SIGWINCH, the terminal restored and the process's exit code returned.
#[test]
fn foreground_exec_tty_proxies_the_terminal() {
    let t = TestEnv::new();
    let b = running(&t, &["sleep", "300"], |_| {});
    let (master, slave) = kraal::tty::open_pty(c"/dev/ptmx").unwrap();
    kraal::tty::set_size(master.as_fd(), 40, 120).unwrap();
    let s = std::fs::File::from(slave);
    let before = termios(&s);
    assert_ne!(before.c_lflag & libc::ICANON, 0);
    let mut cmd = t.k().command(&[
        "exec",
        "-t",
        &b.id,
        "sh",
        "-c",
        "while read l; do echo got-$l size=$(stty size)=; [ \"$l\" = q ] && exit 5; done",
    ]);
    cmd.stdin(s.try_clone().unwrap())
        .stdout(s.try_clone().unwrap())
        .stderr(s.try_clone().unwrap());
    let mut child = cmd.spawn().unwrap();
    let kraal_pid = child.id() as i32;
    let mut m = std::fs::File::from(master);
    let raw = wait_for(WAIT_TIMEOUT, || {
        (termios(&s).c_lflag & libc::ICANON == 0).then_some(())
    });
    m.write_all(b"a\r").unwrap();
    let got = read_until(&mut m, "size=40 120=", Duration::from_secs(15));
    let mut resized = String::new();
    if got.contains("size=40 120=") {
        // A new window size reaches the container once kraal sees SIGWINCH.
        kraal::tty::set_size(m.as_fd(), 50, 130).unwrap();
        unsafe { libc::kill(kraal_pid, libc::SIGWINCH) };
        let _ = wait_for(WAIT_TIMEOUT, || {
            m.write_all(b"w\r").unwrap();
            resized.push_str(&read_until(&mut m, "size=", Duration::from_millis(500)));
            resized.contains("size=50 130=").then_some(())
        });
    }
    m.write_all(b"q\r").unwrap();
    let tail = read_until(&mut m, "got-q", Duration::from_secs(15));
    let st = wait_timeout(&mut child, Duration::from_secs(20)).unwrap();
    if st.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(raw.is_some(), "kraal did not put its terminal in raw mode");
    assert!(got.contains("got-a size=40 120="), "{got:?}");
    assert!(resized.contains("size=50 130="), "SIGWINCH: {resized:?}");
    assert!(tail.contains("got-q"), "{tail:?}");
    assert_eq!(st.and_then(|s| s.code()), Some(5), "{tail:?}");
    let after = termios(&s);
    assert_eq!(after.c_lflag, before.c_lflag, "terminal not restored");
    assert_eq!(after.c_iflag, before.c_iflag, "terminal not restored");
    t.k().run(&["delete", "--force", &b.id]).ok();
    t.assert_clean();
}

// ---------------------------------------------------------------------------
// Hook failures (runtime-spec v1.3.0 lifecycle)
// ---------------------------------------------------------------------------

/// A failing createContainer hook fails create; the container is torn down, then
/// the poststop hooks run.
#[test]
fn failing_create_container_hook_tears_down_and_runs_poststop() {
    let t = TestEnv::new();
    let log = t.dir("hooks").join("log");
    let mut b = t.bundle(&["true"]);
    let hooks = json!({
        "createContainer": [failing("createContainer")],
        "poststop": [hook(&log, "poststop")],
    });
    b.edit(|c| c["hooks"] = hooks);
    t.k()
        .run(&["create", "--bundle", b.dir.to_str().unwrap(), &b.id])
        .fails()
        .stderr_has("createContainer[0]")
        .stderr_has("createContainer-failed");
    let (kinds, states) = hook_log(&log);
    assert_eq!(kinds, ["poststop"]);
    assert_eq!(states[0]["status"], "stopped");
    t.assert_clean();
}

/// A failing startContainer hook fails `start` and stops the container; `delete`
/// runs the poststop hooks. Through `run`, the same leaves nothing behind.
#[test]
fn failing_start_container_hook_fails_start() {
    let t = TestEnv::new();
    let log = t.dir("hooks").join("log");
    let mut b = t.bundle(&["sleep", "300"]);
    let hooks = json!({
        "startContainer": [failing("startContainer")],
        "poststop": [hook(&log, "poststop")],
    });
    b.edit(|c| c["hooks"] = hooks.clone());
    t.create(&b);
    t.k()
        .run(&["start", &b.id])
        .fails()
        .stderr_has("startContainer[0]")
        .stderr_has("startContainer-failed");
    t.k().wait_status(&b.id, "stopped");
    assert_eq!(
        hook_log(&log).0,
        Vec::<String>::new(),
        "poststop before delete"
    );
    t.k().run(&["delete", &b.id]).ok();
    assert_eq!(hook_log(&log).0, ["poststop"]);

    let mut b2 = t.bundle(&["sleep", "300"]);
    b2.edit(|c| c["hooks"] = hooks);
    t.run(&b2).fails().stderr_has("startContainer[0]");
    assert_eq!(hook_log(&log).0, ["poststop", "poststop"]);
    t.assert_clean();
}

/// runtime-spec 1.3.0: a failing poststart hook is an error; the container is
/// stopped when `start` returns, and `delete` destroys it and runs poststop. `run`
/// does all of that itself.
#[test]
fn failing_poststart_hook_stops_the_container() {
    let t = TestEnv::new();
    let log = t.dir("hooks").join("log");
    let mut b = t.bundle(&["sleep", "300"]);
    let hooks = json!({
        "poststart": [hook(&log, "poststart"), failing("poststart"), hook(&log, "never")],
        "poststop": [hook(&log, "poststop")],
    });
    b.edit(|c| c["hooks"] = hooks.clone());
    t.create(&b);
    let pid = t.k().pid(&b.id);
    t.k()
        .run(&["start", &b.id])
        .fails()
        .stderr_has("poststart[1]")
        .stderr_has("poststart-failed");
    assert_eq!(t.k().status(&b.id), "stopped");
    assert!(!pid_alive(pid));
    t.k().run(&["delete", &b.id]).ok();
    let (kinds, states) = hook_log(&log);
    assert_eq!(kinds, ["poststart", "poststop"]);
    assert_eq!(states[0]["status"], "running");
    assert_eq!(states[1]["status"], "stopped");

    let mut b2 = t.bundle(&["sleep", "300"]);
    b2.edit(|c| c["hooks"] = hooks);
    t.run(&b2).fails().stderr_has("poststart[1]");
    assert_eq!(
        hook_log(&log).0,
        ["poststart", "poststop", "poststart", "poststop"]
    );
    t.assert_clean();
}

/// A failing poststop hook is a warning: the remaining poststop hooks run and
/// `delete` succeeds.
#[test]
fn failing_poststop_hook_is_a_warning() {
    let t = TestEnv::new();
    let log = t.dir("hooks").join("log");
    let mut b = t.bundle(&["true"]);
    let hooks = json!({
        "poststop": [failing("poststop"), hook(&log, "poststop")],
    });
    b.edit(|c| c["hooks"] = hooks);
    t.create_start(&b);
    t.k().wait_status(&b.id, "stopped");
    let o = t.k().run(&["delete", &b.id]);
    o.ok()
        .stderr_has("poststop[0]")
        .stderr_has("poststop-failed");
    assert_eq!(hook_log(&log).0, ["poststop"]);
    t.assert_clean();
}

/// A create that fails after linux.netDevices were moved into the container moves
/// them back to the host: the host end of a veth pair is there again afterwards.
#[test]
fn failed_create_moves_net_devices_back() {
    let t = TestEnv::new();
    let host = format!("kh{}n{}", std::process::id() % 100_000, t.n);
    let peer = format!("{host}p");
    let ip = |args: &[&str]| {
        std::process::Command::new("ip")
            .args(args)
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    assert!(ip(&[
        "link", "add", &host, "type", "veth", "peer", "name", &peer
    ]));
    {
        let (h, p) = (host.clone(), peer.clone());
        t.on_drop(move || {
            let _ = std::process::Command::new("ip")
                .args(["link", "del", &h])
                .status();
            let _ = std::process::Command::new("ip")
                .args(["link", "del", &p])
                .status();
        });
    }
    assert!(ip(&["addr", "add", "10.231.9.1/24", "dev", &host]));
    let log = t.dir("hooks").join("log");
    let mut b = t.bundle(&["true"]);
    // The hook runs in the host's network namespace: the device must be gone there.
    let probe = json!({"path": "/bin/sh", "args": ["sh", "-c", format!(
        "cat > /dev/null; if ip link show dev {host} >/dev/null 2>&1; then echo present; else echo absent; fi >> {}; exit 1",
        log.display()
    )]});
    let h = host.clone();
    b.edit(|c| {
        c["linux"]["netDevices"] = json!({ h: { "name": "ceth0" } });
        c["hooks"] = json!({"createRuntime": [probe]});
    });
    t.k()
        .run(&["create", "--bundle", b.dir.to_str().unwrap(), &b.id])
        .fails()
        .stderr_has("createRuntime[0]");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap().trim(),
        "absent",
        "the device was not moved in"
    );
    assert!(
        ip(&["link", "show", "dev", &host]),
        "the device did not come back"
    );
    let addr = std::process::Command::new("ip")
        .args(["-o", "addr", "show", "dev", &host])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&addr.stdout).contains("10.231.9.1/24"),
        "{addr:?}"
    );
    t.assert_clean();
}

/// Hooks without `env` follow runc: runtime-namespace hooks inherit kraal's
/// environment, createContainer hooks get an empty one, startContainer hooks the
/// container process's; `"env": []` is an empty environment.
#[test]
fn hook_env_defaults_follow_runc() {
    let t = TestEnv::new();
    let log = t.dir("hooks").join("log");
    let mut b = t.bundle(&["true"]);
    let show = |name: &str, path: &str| {
        format!("cat > /dev/null; echo \"{name} [$KRAAL_HOOK_T][$FROM_PROCESS]\" >> {path}")
    };
    let l = log.display().to_string();
    let hooks = json!({
        "createRuntime": [
            {"path": "/bin/sh", "args": ["sh", "-c", show("inherit", &l)]},
            {"path": "/bin/sh", "args": ["sh", "-c", show("empty", &l)], "env": []},
            {"path": "/bin/sh", "args": ["sh", "-c", show("given", &l)], "env": ["KRAAL_HOOK_T=given"]},
        ],
        "createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", show("createContainer", &l)]}],
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", show("startContainer", "/tmp/hooklog")]}],
    });
    b.edit(|c| {
        c["hooks"] = hooks;
        c["process"]["env"]
            .as_array_mut()
            .unwrap()
            .push(json!("FROM_PROCESS=yes"));
    });
    let mut cmd = t
        .k()
        .command(&["create", "--bundle", b.dir.to_str().unwrap(), &b.id]);
    cmd.env("KRAAL_HOOK_T", "kraal-env");
    t.k().exec(cmd).ok();
    t.k().run(&["start", &b.id]).ok();
    t.k().wait_status(&b.id, "stopped");
    t.k().run(&["delete", &b.id]).ok();
    assert_eq!(
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .collect::<Vec<_>>(),
        [
            "inherit [kraal-env][]",
            "empty [][]",
            "given [given][]",
            "createContainer [][]"
        ]
    );
    assert_eq!(
        std::fs::read_to_string(b.rootfs.join("tmp/hooklog")).unwrap(),
        "startContainer [][yes]\n"
    );
    t.assert_clean();
}

/// A hook that never reads a state larger than a pipe buffer (big annotations) is
/// still killed at its timeout; kraal does not block writing its stdin.
#[test]
fn hook_ignoring_a_big_state_times_out() {
    let t = TestEnv::new();
    let mut b = t.bundle(&["true"]);
    b.edit(|c| {
        c["annotations"] = json!({"kraal.test/big": "x".repeat(256 * 1024)});
        c["hooks"] =
            json!({"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "60"], "timeout": 1}]});
    });
    t.k()
        .run(&["create", "--bundle", b.dir.to_str().unwrap(), &b.id])
        .fails()
        .stderr_has("createRuntime[0]")
        .stderr_has("timed out");
    t.assert_clean();
}

// ---------------------------------------------------------------------------
// NOTIFY_SOCKET
// ---------------------------------------------------------------------------

/// As runc: a container that exits before READY=1 does not make `start` fail.
#[test]
fn notify_socket_start_succeeds_when_the_container_exits_first() {
    let t = TestEnv::new();
    let b = t.bundle(&["sh", "-c", "exit 4"]);
    let host = t.dir("notify").join("host.sock");
    let _listener = std::os::unix::net::UnixDatagram::bind(&host).unwrap();
    let mut create = t
        .k()
        .command(&["create", "--bundle", b.dir.to_str().unwrap(), &b.id]);
    create.env("NOTIFY_SOCKET", &host);
    t.k().exec(create).ok();
    let mut start = t.k().command(&["start", &b.id]);
    start.env("NOTIFY_SOCKET", &host);
    t.k().exec(start).ok();
    t.k().wait_status(&b.id, "stopped");
    t.k().run(&["delete", &b.id]).ok();
    t.assert_clean();
}
