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

#[test]
fn exec_user_groups_env_and_cwd() {
    let t = TestEnv::new();
    let b = running(&t, &["sleep", "300"], |_| {});
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
        ["Groups:", "2000"]
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
/// a command into it and reads the answer, then exec -t does the same.
#[test]
fn console_socket_receives_the_pty_master() {
    let t = TestEnv::new();
    let mut b = t.bundle(&["sh"]);
    b.edit(|c| c["process"]["terminal"] = json!(true));
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
    m.write_all(b"tty; echo marker-$((6*7))\n").unwrap();
    let got = read_until(&mut m, "marker-42", Duration::from_secs(10));
    assert!(
        got.contains("/dev/pts/0") && got.contains("marker-42"),
        "{got:?}"
    );

    let (conn_tx, conn_rx) = std::sync::mpsc::channel();
    let l2 = l.try_clone().unwrap();
    std::thread::spawn(move || {
        let (c, _) = l2.accept().unwrap();
        let _ = conn_tx.send(kraal::tty::recv_fd(c.as_fd()).unwrap().0);
    });
    let o = t.k().run(&[
        "exec",
        "-t",
        "-d",
        "--console-socket",
        sock.to_str().unwrap(),
        &b.id,
        "sh",
        "-c",
        "echo exec-tty-$((2+3)); sleep 2",
    ]);
    o.ok();
    let mut m2 = std::fs::File::from(conn_rx.recv_timeout(Duration::from_secs(10)).unwrap());
    let got = read_until(&mut m2, "exec-tty-5", Duration::from_secs(10));
    assert!(got.contains("exec-tty-5"), "{got:?}");
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
    let inside = json!({"path": "/bin/sh", "args": ["sh", "-c", "cat > /dev/null; echo in > /tmp/start-hook-ran"]});
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
    assert!(state(1)["pid"].as_i64().unwrap() > 0);
    assert_eq!(state(3)["status"], "running");
    assert_eq!(state(4)["status"], "stopped");
    assert!(
        b.rootfs.join("tmp/start-hook-ran").exists(),
        "startContainer ran inside the container"
    );
    t.assert_clean();
}

/// A failing createRuntime hook fails create, names the hook, and leaves nothing.
#[test]
fn failing_create_runtime_hook_fails_create() {
    let t = TestEnv::new();
    let mut b = t.bundle(&["true"]);
    b.edit(|c| c["hooks"] = json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 9"]}]}));
    let o = t
        .k()
        .run(&["create", "--bundle", b.dir.to_str().unwrap(), &b.id]);
    o.fails()
        .stderr_has("createRuntime[0]")
        .stderr_has("exit status 9")
        .stderr_has("nope");
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

/// NOTIFY_SOCKET: `start` waits for the container's READY=1 and passes readiness
/// on to the caller's socket with MAINPID set to the container's init.
#[test]
fn notify_socket_readiness_is_forwarded() {
    let t = TestEnv::new();
    let b = t.bundle(&["/notify-ready"]);
    // busybox has no sd_notify client: a tiny static one, built here.
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
    let st = std::process::Command::new("gcc")
        .args(["-static", "-O1", "-o"])
        .arg(b.rootfs.join("notify-ready"))
        .arg(&src)
        .status()
        .expect("run gcc");
    assert!(st.success(), "gcc -static");
    b.save();
    let host = t.dir("notify").join("host.sock");
    let listener = std::os::unix::net::UnixDatagram::bind(&host).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut create = t
        .k()
        .command(&["create", "--bundle", b.dir.to_str().unwrap(), &b.id]);
    create.env("NOTIFY_SOCKET", &host);
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
