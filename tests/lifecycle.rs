//! Container lifecycle through the CLI: create/start/state/kill/delete/list/run, with
//! real containers, checked against what runc does.

mod common;

use common::*;
use serde_json::{json, Value};
use std::fs;
use std::time::Duration;

/// create -> created (user process not run) -> start -> running -> exit -> stopped
/// (pid 0) -> delete -> gone.
#[test]
fn state_transitions_through_the_whole_lifecycle() {
    let t = TestEnv::new();
    let shared = t.dir("shared");
    let mut b = t.bundle(&[
        "sh",
        "-c",
        "touch /shared/started; while [ ! -e /shared/stop ]; do sleep 0.05; done; echo bye > /shared/finished",
    ]);
    b.bind(&shared, "/shared");
    b.edit(|c| c["annotations"] = json!({"org.kraal.test": "lifecycle"}));
    let id = b.id.clone();
    let k = t.k();

    t.create(&b);
    let s = k.state(&id).expect("state after create");
    assert_eq!(s["status"], "created", "{s}");
    assert_eq!(s["id"], json!(id));
    let pid = s["pid"].as_i64().expect("pid is a number");
    assert!(pid > 0, "created container has pid {pid}");
    assert!(
        pid_alive(pid),
        "init {pid} of a created container is not alive"
    );
    assert_eq!(s["bundle"], json!(b.canonical_dir()));
    assert_eq!(
        s["rootfs"],
        json!(fs::canonicalize(&b.rootfs).expect("canonical rootfs"))
    );
    assert!(
        s["ociVersion"].as_str().is_some_and(|v| !v.is_empty()),
        "{s}"
    );
    let created = s["created"].as_str().expect("created is a string");
    assert!(
        created.len() >= 20 && created.as_bytes()[10] == b'T',
        "created is not RFC 3339: {created}"
    );
    assert_eq!(
        s["annotations"],
        json!({"org.kraal.test": "lifecycle"}),
        "{s}"
    );
    assert!(s.get("owner").is_some(), "state has no owner field: {s}");
    // The user process must not run before `start`.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !shared.join("started").exists(),
        "the user process ran before start"
    );
    assert_eq!(k.status(&id), "created");

    k.run(&["start", &id]).ok();
    wait_file(&shared.join("started"));
    let s = k.state(&id).expect("state after start");
    assert_eq!(s["status"], "running", "{s}");
    assert_eq!(s["pid"].as_i64(), Some(pid), "pid changed on start");
    // A second start of a running container fails.
    k.run(&["start", &id]).fails();

    fs::write(shared.join("stop"), b"").expect("write stop");
    let s = k.wait_status(&id, "stopped");
    assert_eq!(s["pid"], json!(0), "runc reports pid 0 once stopped: {s}");
    assert!(shared.join("finished").exists());
    k.run(&["start", &id]).fails().stderr_has("stopped");

    k.run(&["delete", &id]).ok();
    k.run(&["state", &id]).fails().stderr_has(&id);
    t.assert_clean_strict();
}

/// --pid-file gets the init's host pid, which is pid 1 in the container's own pid
/// namespace; a relative path is taken from kraal's working directory.
#[test]
fn pid_file_holds_the_init_host_pid() {
    let t = TestEnv::new();
    let b = t.bundle(&["sleep", "1000"]);
    let k = t.k();
    let pf = t.tmp.join("init.pid");
    k.run(&[
        "create",
        "--pid-file",
        pf.to_str().unwrap(),
        "--bundle",
        b.dir.to_str().unwrap(),
        &b.id,
    ])
    .ok();
    let text = fs::read_to_string(&pf).expect("pid file written");
    let pid: i64 = text.trim().parse().expect("pid file holds a number");
    let s = k.state(&b.id).expect("state");
    assert_eq!(s["pid"].as_i64(), Some(pid), "pid file vs state: {s}");
    assert!(
        s.get("annotations").is_none(),
        "annotations must be omitted when empty: {s}"
    );
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("init status");
    let nspid = status
        .lines()
        .find(|l| l.starts_with("NSpid:"))
        .expect("NSpid line");
    let ids: Vec<&str> = nspid.split_whitespace().skip(1).collect();
    assert_eq!(
        ids,
        [pid.to_string().as_str(), "1"],
        "init should be host pid {pid} and pid 1 inside: {nspid}"
    );

    // Relative --pid-file: resolved against kraal's working directory.
    let b2 = t.bundle(&["sleep", "1000"]);
    let mut c = k.command(&["create", "--pid-file", "rel.pid", &b2.id]);
    c.current_dir(&b2.dir);
    k.exec(c).ok();
    let rel: i64 = fs::read_to_string(b2.dir.join("rel.pid"))
        .expect("relative pid file written in the cwd")
        .trim()
        .parse()
        .expect("number");
    assert_eq!(rel, k.pid(&b2.id));

    k.run(&["delete", &b.id]).ok();
    k.run(&["delete", &b2.id]).ok();
    assert!(
        wait_for(WAIT_TIMEOUT, || (!pid_alive(pid)).then_some(())).is_some(),
        "init {pid} survived delete"
    );
    t.assert_clean();
}

/// Deleting a `created` container needs no --force (containerd relies on it) and
/// kills its waiting init.
#[test]
fn delete_created_container_succeeds_without_force() {
    let t = TestEnv::new();
    let b = t.bundle(&["sleep", "1000"]);
    let k = t.k();
    t.create(&b);
    let pid = k.pid(&b.id);
    assert!(pid_alive(pid));
    k.run(&["delete", &b.id]).ok();
    k.run(&["state", &b.id]).fails();
    assert!(
        wait_for(WAIT_TIMEOUT, || (!pid_alive(pid)).then_some(())).is_some(),
        "init {pid} of the deleted created container is still alive"
    );
    t.assert_clean_strict();
}

/// A running container survives `delete` without --force; --force kills and removes it.
#[test]
fn delete_running_needs_force() {
    let t = TestEnv::new();
    let b = t.bundle(&["sleep", "1000"]);
    let k = t.k();
    // run -d: returns at once, container left running.
    k.run(&["run", "-d", "--bundle", b.dir.to_str().unwrap(), &b.id])
        .ok();
    k.wait_status(&b.id, "running");
    let pid = k.pid(&b.id);

    k.run(&["delete", &b.id]).fails().stderr_has("running");
    assert_eq!(
        k.status(&b.id),
        "running",
        "failed delete changed the container"
    );
    assert!(pid_alive(pid));

    k.run(&["delete", "--force", &b.id]).ok();
    k.run(&["state", &b.id]).fails();
    assert!(
        wait_for(WAIT_TIMEOUT, || (!pid_alive(pid)).then_some(())).is_some(),
        "init {pid} survived delete --force"
    );
    // Deleting a container that does not exist: an error without --force, none with it
    // (runc's behaviour, which containerd relies on for idempotent cleanup).
    k.run(&["delete", &b.id]).fails().stderr_has(&b.id);
    k.run(&["delete", "--force", &b.id]).ok();
    t.assert_clean_strict();
}

/// SIGKILL, KILL and 9 all name the same signal; a bad signal is refused; a stopped
/// container cannot be signalled.
#[test]
fn kill_accepts_sigkill_kill_and_9() {
    let t = TestEnv::new();
    let k = t.k();
    let mut bundles = Vec::new();
    for _ in 0..3 {
        let b = t.bundle(&["sleep", "1000"]);
        t.create_start(&b);
        bundles.push(b);
    }
    for b in &bundles {
        k.wait_status(&b.id, "running");
    }
    // Unknown signals: refused, container untouched.
    k.run(&["kill", &bundles[0].id, "SIGNOPE"])
        .fails()
        .stderr_has("SIGNOPE");
    assert_eq!(k.status(&bundles[0].id), "running");

    for (b, sig) in bundles.iter().zip(["SIGKILL", "KILL", "9"]) {
        let pid = k.pid(&b.id);
        k.run(&["kill", &b.id, sig]).ok();
        let s = k.wait_status(&b.id, "stopped");
        assert_eq!(s["pid"], json!(0));
        assert!(!pid_alive(pid), "kill {sig}: init {pid} still alive");
        // runc: a stopped container cannot be signalled.
        k.run(&["kill", &b.id, "KILL"]).fails();
        k.run(&["delete", &b.id]).ok();
    }
    t.assert_clean();
}

/// `kill ID` without a signal sends SIGTERM; `run` reports the status the init
/// exits with from its TERM handler.
#[test]
fn kill_default_signal_is_sigterm() {
    let t = TestEnv::new();
    let shared = t.dir("shared");
    let mut b = t.bundle(&[
        "sh",
        "-c",
        "trap 'exit 42' TERM; touch /shared/ready; while true; do sleep 0.05; done",
    ]);
    b.bind(&shared, "/shared");
    let dir = b.dir.to_str().unwrap().to_string();
    let id = b.id.clone();
    let k = t.k();
    std::thread::scope(|s| {
        let runner = s.spawn(|| k.run(&["run", "--bundle", &dir, &id]));
        wait_file(&shared.join("ready"));
        k.run(&["kill", &id]).ok();
        let out = runner.join().expect("run thread");
        assert_eq!(out.code(), Some(42), "{out:?}");
    });
    k.run(&["state", &id]).fails();
    t.assert_clean_strict();
}

/// A signal sent right after `start` reaches a shell init whose `trap` is not set up
/// yet: the kernel drops unhandled signals to a PID namespace's init, so `kill`
/// waits for the handler (runtime-tools `killsig` does exactly this).
#[test]
fn kill_right_after_start_reaches_the_trap() {
    let t = TestEnv::new();
    for round in 0..5 {
        let b = t.bundle(&[
            "sh",
            "-c",
            "trap 'touch /got-usr1; exit 0' USR1; sleep 10 & wait $!",
        ]);
        t.create(&b).ok();
        let k = t.k();
        k.run(&["start", &b.id]).ok();
        k.run(&["kill", &b.id, "USR1"]).ok();
        k.wait_status(&b.id, "stopped");
        assert!(
            b.rootfs.join("got-usr1").exists(),
            "round {round}: USR1 sent right after start was lost"
        );
        k.run(&["delete", &b.id]).ok();
    }
    t.assert_clean();
}

/// `kill --all` signals every process of the container, `kill` only the init. The init
/// is pid 1 of its namespace and has no TERM handler, so it ignores TERM; its two
/// children do not.
#[test]
fn kill_all_signals_every_process() {
    let t = TestEnv::new();
    let shared = t.dir("shared");
    let mut b = t.bundle(&[
        "sh",
        "-c",
        "sleep 1000 & sleep 1000 & touch /shared/ready; wait; touch /shared/children-gone; while true; do sleep 1; done",
    ]);
    b.bind(&shared, "/shared");
    let k = t.k();
    t.create_start(&b);
    wait_file(&shared.join("ready"));
    let pid = k.pid(&b.id);

    k.run(&["kill", &b.id, "TERM"]).ok();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !shared.join("children-gone").exists(),
        "kill without --all reached the init's children"
    );
    assert_eq!(k.status(&b.id), "running");

    k.run(&["kill", "--all", &b.id, "TERM"]).ok();
    wait_file(&shared.join("children-gone"));
    assert_eq!(k.status(&b.id), "running", "the init should ignore TERM");
    assert!(pid_alive(pid));

    k.run(&["kill", "--all", &b.id, "KILL"]).ok();
    k.wait_status(&b.id, "stopped");
    k.run(&["delete", &b.id]).ok();
    t.assert_clean_strict();
}

/// `list` as a table, as JSON and as bare ids.
#[test]
fn list_table_json_and_quiet() {
    let t = TestEnv::new();
    let k = t.k();
    // An empty root: runc prints the header only, JSON null, and nothing with -q.
    let o = k.run(&["list"]);
    o.ok();
    let header: Vec<&str> = o.stdout.split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    );
    assert_eq!(
        k.run(&["list", "--format", "json"]).ok().stdout.trim(),
        "null"
    );
    assert_eq!(k.run(&["list", "-q"]).ok().stdout, "");

    let a = t.bundle(&["sleep", "1000"]);
    let b = t.bundle(&["sleep", "1000"]);
    t.create(&a);
    t.create_start(&b);
    k.wait_status(&b.id, "running");
    let (pa, pb) = (k.pid(&a.id), k.pid(&b.id));

    let table = k.run(&["list"]).ok().stdout.clone();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("ID "), "{table}");
    for (bd, pid, status) in [(&a, pa, "created"), (&b, pb, "running")] {
        let row = lines
            .iter()
            .find(|l| l.split_whitespace().next() == Some(bd.id.as_str()))
            .unwrap_or_else(|| panic!("no row for {}: {table}", bd.id));
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols.len(), 6, "{row}");
        assert_eq!(cols[1], pid.to_string(), "{row}");
        assert_eq!(cols[2], status, "{row}");
        assert_eq!(cols[3], bd.canonical_dir().to_str().unwrap(), "{row}");
        assert_eq!(cols[5], "root", "{row}");
    }

    let js: Value =
        serde_json::from_str(&k.run(&["list", "--format", "json"]).ok().stdout).expect("json");
    let arr = js.as_array().expect("list --format json is an array");
    assert_eq!(arr.len(), 2, "{js}");
    for (bd, pid, status) in [(&a, pa, "created"), (&b, pb, "running")] {
        let e = arr
            .iter()
            .find(|e| e["id"] == json!(bd.id))
            .unwrap_or_else(|| panic!("{} missing from {js}", bd.id));
        assert_eq!(e["status"], status, "{e}");
        assert_eq!(e["pid"].as_i64(), Some(pid), "{e}");
        assert_eq!(e["bundle"], json!(bd.canonical_dir()), "{e}");
        assert_eq!(e["owner"], "root", "{e}");
    }

    let mut want = vec![a.id.clone(), b.id.clone()];
    want.sort();
    assert_eq!(k.run(&["list", "-q"]).ok().stdout_lines(), want);

    k.run(&["delete", &a.id]).ok();
    k.run(&["delete", "--force", &b.id]).ok();
    assert_eq!(k.run(&["list", "-q"]).ok().stdout, "");
    t.assert_clean();
}

/// `run` exits with the container's status: 0, 3, and 128+9 when killed.
#[test]
fn run_exit_codes_0_3_and_137() {
    let t = TestEnv::new();
    let k = t.k();

    let b = t.bundle(&["true"]);
    assert_eq!(t.run(&b).code(), Some(0));
    let b = t.bundle(&["sh", "-c", "echo out; echo err >&2; exit 3"]);
    let o = t.run(&b);
    assert_eq!(o.code(), Some(3), "{o:?}");
    assert_eq!(o.stdout, "out\n", "container stdout reaches run's stdout");
    assert_eq!(o.stderr, "err\n", "container stderr reaches run's stderr");
    // run without --keep removes the container.
    k.run(&["state", &b.id]).fails();

    // pid 1 ignores signals it has no handler for, but SIGKILL from outside kills it.
    let b = t.bundle(&["sh", "-c", "sleep 100 & wait"]);
    let dir = b.dir.to_str().unwrap().to_string();
    let id = b.id.clone();
    std::thread::scope(|s| {
        let runner = s.spawn(|| k.run(&["run", "--bundle", &dir, &id]));
        wait_for(WAIT_TIMEOUT, || {
            k.state(&id).filter(|s| s["status"] == "running")
        })
        .expect("container never ran");
        k.run(&["kill", &id, "KILL"]).ok();
        let out = runner.join().expect("run thread");
        assert_eq!(out.code(), Some(137), "{out:?}");
    });
    k.run(&["state", &id]).fails();
    t.assert_clean_strict();
}

/// `run --keep` leaves the stopped container for `state` and `delete`.
#[test]
fn run_keep_leaves_stopped_container() {
    let t = TestEnv::new();
    let k = t.k();
    let b = t.bundle(&["sh", "-c", "exit 5"]);
    let o = k.run(&["run", "--keep", "--bundle", b.dir.to_str().unwrap(), &b.id]);
    assert_eq!(o.code(), Some(5), "{o:?}");
    let s = k.state(&b.id).expect("kept container has state");
    assert_eq!(s["status"], "stopped", "{s}");
    assert_eq!(s["pid"], json!(0));
    k.run(&["delete", &b.id]).ok();
    t.assert_clean_strict();
}

/// `run /bin/true` many times in a row never hangs (an init exiting at once must not
/// be missed) and always reports 0.
#[test]
fn run_true_thirty_times_never_hangs() {
    let t = TestEnv::new();
    let k = t.k();
    let b = t.bundle(&["/bin/true"]);
    let dir = b.dir.to_str().unwrap().to_string();
    for i in 0..30 {
        let id = t.new_id();
        let o = k.run_timeout(&["run", "--bundle", &dir, &id], Duration::from_secs(20));
        assert_eq!(o.code(), Some(0), "iteration {i}: {o:?}");
        k.run(&["state", &id]).fails();
    }
    t.assert_clean_strict();
}

/// A relative cgroupsPath is resolved from kraal's own cgroup in every hierarchy
/// (runc's rule): the init sits in `<own cgroup>/<parent>/<id>` everywhere, and with a
/// cgroup namespace it sees itself at the root.
#[test]
fn cgroups_follow_the_relative_cgroups_path_in_every_hierarchy() {
    let t = TestEnv::new();
    let k = t.k();
    let b = t.bundle(&["sh", "-c", "cat /proc/self/cgroup; sleep 1000"]);
    let o = t.create_start(&b);
    k.wait_status(&b.id, "running");
    let pid = k.pid(&b.id);
    let dirs = cgroup_parent_dirs(&t.cgroup_parent);
    assert!(!dirs.is_empty(), "no cgroup hierarchy found");
    for d in &dirs {
        let procs = std::fs::read_to_string(d.join(&b.id).join("cgroup.procs"))
            .unwrap_or_else(|e| panic!("{}: {e}", d.join(&b.id).display()));
        assert!(
            procs.lines().any(|l| l.trim() == pid.to_string()),
            "init {pid} not in {}: {procs:?}",
            d.display()
        );
    }
    let inside = wait_for(WAIT_TIMEOUT, || {
        let s = o.stdout_now();
        (s.lines().count() >= dirs.len()).then_some(s)
    })
    .expect("container printed its cgroups");
    for l in inside.lines() {
        assert!(l.ends_with(":/"), "cgroup namespace root expected: {l}");
    }
    k.run(&["delete", "--force", &b.id]).ok();
    for d in &dirs {
        assert!(!d.join(&b.id).exists(), "{} left", d.join(&b.id).display());
    }
    t.assert_clean_strict();
}

/// A created container can be killed (containerd kills tasks that never started);
/// it is then stopped and cannot be started.
#[test]
fn kill_created_container() {
    let t = TestEnv::new();
    let k = t.k();
    let shared = t.dir("shared");
    let mut b = t.bundle(&["touch", "/shared/ran"]);
    b.bind(&shared, "/shared");
    t.create(&b);
    let pid = k.pid(&b.id);
    k.run(&["kill", &b.id, "KILL"]).ok();
    let s = k.wait_status(&b.id, "stopped");
    assert_eq!(s["pid"], json!(0));
    assert!(!pid_alive(pid));
    k.run(&["start", &b.id]).fails();
    assert!(!shared.join("ran").exists(), "the killed container ran");
    k.run(&["delete", &b.id]).ok();
    t.assert_clean_strict();
}

/// `spec` writes a parseable default config and refuses to overwrite one; `features`
/// is JSON naming the spec versions; `--version` names kraal and the spec.
#[test]
fn spec_features_and_version() {
    let t = TestEnv::new();
    let k = t.k();
    let d = t.dir("spec");
    k.run(&["spec", "-b", d.to_str().unwrap()]).ok();
    let cfg: Value =
        serde_json::from_slice(&fs::read(d.join("config.json")).unwrap()).expect("json");
    assert_eq!(cfg["root"]["path"], "rootfs");
    assert_eq!(cfg["process"]["args"], json!(["sh"]));
    let before = fs::read(d.join("config.json")).unwrap();
    k.run(&["spec", "-b", d.to_str().unwrap()])
        .fails()
        .stderr_has("exists");
    assert_eq!(fs::read(d.join("config.json")).unwrap(), before);

    let f: Value = serde_json::from_str(&k.run(&["features"]).ok().stdout).expect("json");
    assert!(f["ociVersionMin"].is_string(), "{f}");
    assert!(f["ociVersionMax"].is_string(), "{f}");
    let v = k.run(&["--version"]).ok().stdout.clone();
    assert!(v.starts_with("kraal version "), "{v}");
    assert!(v.contains("spec: "), "{v}");
    let line = |key: &str| {
        v.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key:?} line: {v}"))
            .to_string()
    };
    let commit = line("commit: ");
    assert!(
        commit == "unknown"
            || (commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "commit is 40 hex digits or unknown: {v}"
    );
    assert_eq!(line("spec: "), f["ociVersionMax"].as_str().unwrap(), "{v}");
    let seccomp = line("libseccomp: ");
    let parts: Vec<&str> = seccomp.split('.').collect();
    assert!(
        parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit())),
        "libseccomp is major.minor.micro: {v}"
    );
    t.assert_clean_strict();
}

/// Signal 0 (as runc parses numbers) checks that the init is alive without touching
/// it: success while created or running, failure once stopped.
#[test]
fn kill_signal_0_checks_liveness() {
    let t = TestEnv::new();
    let k = t.k();
    let b = t.bundle(&["sleep", "1000"]);
    t.create(&b);
    k.run(&["kill", &b.id, "0"]).ok();
    assert_eq!(k.status(&b.id), "created");
    k.run(&["start", &b.id]).ok();
    k.wait_status(&b.id, "running");
    k.run(&["kill", &b.id, "0"]).ok();
    assert_eq!(k.status(&b.id), "running");
    k.run(&["kill", &b.id, "KILL"]).ok();
    k.wait_status(&b.id, "stopped");
    k.run(&["kill", &b.id, "0"]).fails();
    k.run(&["delete", &b.id]).ok();
    t.assert_clean_strict();
}

/// runc ignores "container not running" when --all is given (containerd sends
/// `kill --all` to tasks that may have exited); without --all it is an error.
#[test]
fn kill_all_on_stopped_container_succeeds() {
    let t = TestEnv::new();
    let k = t.k();
    let b = t.bundle(&["true"]);
    t.create_start(&b);
    k.wait_status(&b.id, "stopped");
    k.run(&["kill", &b.id, "KILL"]).fails();
    k.run(&["kill", "--all", &b.id, "KILL"]).ok();
    assert_eq!(k.status(&b.id), "stopped");
    k.run(&["delete", &b.id]).ok();
    t.assert_clean_strict();
}

/// Kills the process it holds when dropped (the test's own `sleep`, on panic too).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A saved init pid that now names another process (same pid, other start time) is
/// not the container: `state` says stopped with pid 0, `kill` fails, `delete` succeeds
/// without --force, and the other process is untouched.
#[test]
fn reused_pid_is_not_the_container() {
    let t = TestEnv::new();
    let k = t.k();
    let b = t.bundle(&["true"]);
    t.create_start(&b);
    k.wait_status(&b.id, "stopped");
    let mut other = KillOnDrop(
        std::process::Command::new("sleep")
            .arg("100")
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("spawn sleep"),
    );
    let other_pid = other.0.id() as i64;
    let state_json = k.root.join(&b.id).join("state.json");
    let mut saved: Value = serde_json::from_slice(&fs::read(&state_json).unwrap()).unwrap();
    assert!(
        saved["init_start"].as_u64().is_some_and(|s| s > 0),
        "{saved}"
    );
    saved["pid"] = json!(other_pid);
    fs::write(&state_json, serde_json::to_vec(&saved).unwrap()).unwrap();

    let s = k.state(&b.id).expect("state");
    assert_eq!(s["status"], "stopped", "{s}");
    assert_eq!(s["pid"], json!(0), "{s}");
    k.run(&["kill", &b.id, "KILL"]).fails();
    assert_eq!(k.run(&["list", "-q"]).ok().stdout.trim(), b.id);
    k.run(&["delete", &b.id]).ok();
    assert!(
        other.0.try_wait().unwrap().is_none() && pid_alive(other_pid),
        "the process that reused the pid was signalled"
    );
    other.0.kill().unwrap();
    other.0.wait().unwrap();
    t.assert_clean_strict();
}

/// --no-new-keyring: the container keeps the caller's session keyring; by default it
/// gets a fresh anonymous `_ses` one. The caller here joins a named session keyring,
/// and the container runs as uid 1000, which sees a root-owned keyring in /proc/keys
/// only when it possesses it.
#[test]
fn no_new_keyring_keeps_the_callers_session_keyring() {
    use std::os::unix::process::CommandExt;
    let t = TestEnv::new();
    let name = format!("kraal-kr-{}-{}", std::process::id(), t.n);
    let run = |flag: bool| {
        let mut b = t.bundle(&["cat", "/proc/keys"]);
        b.edit(|c| {
            c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
            c["linux"]["maskedPaths"]
                .as_array_mut()
                .unwrap()
                .retain(|p| p != "/proc/keys");
        });
        let mut args = vec!["run"];
        if flag {
            args.push("--no-new-keyring");
        }
        args.extend(["--bundle", b.dir.to_str().unwrap(), b.id.as_str()]);
        let mut c = t.kraal.command(&args);
        let cname = std::ffi::CString::new(name.clone()).unwrap();
        // SAFETY: one raw system call between fork and exec.
        unsafe {
            c.pre_exec(move || {
                const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
                if libc::syscall(
                    libc::SYS_keyctl,
                    KEYCTL_JOIN_SESSION_KEYRING,
                    cname.as_ptr(),
                ) < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let o = t.kraal.exec(c);
        o.ok();
        o.stdout
    };
    let keys = run(true);
    assert!(
        keys.contains(&format!(" {name}: ")),
        "the caller's session keyring is the container's:\n{keys}"
    );
    let keys = run(false);
    assert!(
        !keys.contains(&name),
        "the container still possesses the caller's keyring:\n{keys}"
    );
    assert!(
        keys.lines()
            .any(|l| l.contains(" keyring ") && l.contains(" _ses: ")),
        "no new session keyring:\n{keys}"
    );
    t.assert_clean_strict();
}

/// --debug adds debug lines to the --log file (text format by default, as runc's
/// logrus text: time="…" level=… msg="…"); without it there are none. The debug
/// message used: the size of the compiled seccomp filter, logged for every filter.
#[test]
fn debug_flag_writes_debug_lines() {
    let t = TestEnv::new();
    let run = |debug: bool| {
        let mut b = t.bundle(&["true"]);
        b.edit(|c| {
            c["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["swapon"], "action": "SCMP_ACT_ERRNO"}],
            })
        });
        let log = t.tmp.join(format!("debug-{debug}.log"));
        let mut args = vec!["--log", log.to_str().unwrap()];
        if debug {
            args.push("--debug");
        }
        args.extend(["run", "--bundle", b.dir.to_str().unwrap(), b.id.as_str()]);
        t.k().run(&args).ok();
        fs::read_to_string(&log).unwrap_or_default()
    };
    let text = run(true);
    let line = text
        .lines()
        .find(|l| l.contains("level=debug") && l.contains("seccomp"))
        .unwrap_or_else(|| panic!("no seccomp debug line with --debug:\n{text}"));
    assert!(
        line.starts_with("time=\"") && line.contains(" level=debug msg=\""),
        "{line}"
    );
    let text = run(false);
    assert!(
        !text.contains("level=debug"),
        "debug line without --debug:\n{text}"
    );
    t.assert_clean_strict();
}

/// --log FILE in the default text format gets the error line of a failed create.
#[test]
fn text_log_gets_the_error_line() {
    let t = TestEnv::new();
    let mut b = t.bundle(&["true"]);
    b.edit(|c| c["hostname"] = json!(5));
    let log = t.tmp.join("kraal.log");
    let o = t.k().run(&[
        "--log",
        log.to_str().unwrap(),
        "create",
        "--bundle",
        b.dir.to_str().unwrap(),
        &b.id,
    ]);
    o.fails();
    let text = fs::read_to_string(&log).expect("log file written");
    let line = text
        .lines()
        .find(|l| l.contains(" level=error "))
        .unwrap_or_else(|| panic!("no error line in {text}"));
    assert!(line.starts_with("time=\""), "{line}");
    let (_, msg) = line
        .split_once(" level=error msg=")
        .expect("msg follows level");
    let msg: String = serde_json::from_str(msg).expect("msg is a quoted string");
    assert!(msg.contains("hostname"), "{msg}");
    t.assert_clean_strict();
}

/// Without --root, root's state lives under /run/kraal (runc: /run/runc).
#[test]
fn default_root_is_run_kraal_for_root() {
    let t = TestEnv::new();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: the default root is under $XDG_RUNTIME_DIR");
        return;
    }
    let b = t.bundle(&["true"]);
    let id = b.id.clone();
    let bin = t.kraal.bin.clone();
    let io = t.tmp.join("io");
    {
        let (id, bin, io) = (id.clone(), bin.clone(), io.clone());
        t.on_drop(move || {
            let mut c = std::process::Command::new(&bin);
            c.args(["delete", "--force", &id]);
            let _ = try_run(&mut c, CMD_TIMEOUT, &io);
        });
    }
    let kraal = |args: &[&str]| {
        let mut c = std::process::Command::new(&bin);
        c.args(args);
        run_timeout(&mut c, CMD_TIMEOUT, &io)
    };
    kraal(&["create", "--bundle", b.dir.to_str().unwrap(), &id]).ok();
    let dir = std::path::Path::new("/run/kraal").join(&id);
    assert!(
        dir.join("state.json").is_file(),
        "{} missing",
        dir.display()
    );
    kraal(&["delete", &id]).ok();
    assert!(!dir.exists(), "{} left", dir.display());
    t.assert_clean_strict();
}
