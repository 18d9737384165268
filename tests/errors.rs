//! Bad input: every case fails with a non-zero exit, an error naming the field or path
//! at fault, and leaves nothing behind (state, mounts, cgroups).

mod common;

use common::*;
use serde_json::{json, Value};
use std::fs;

/// `create` of the bundle; asserts failure with `needle` in stderr, then cleanliness.
#[track_caller]
fn create_fails(t: &TestEnv, b: &Bundle, needle: &str) -> Out {
    let o = t
        .kraal
        .run(&["create", "--bundle", b.dir.to_str().unwrap(), &b.id]);
    o.fails().stderr_has(needle);
    t.kraal.run(&["state", &b.id]).fails();
    t.assert_clean();
    o
}

#[test]
fn invalid_container_ids_are_refused() {
    let t = TestEnv::new();
    let b = t.bundle(&["true"]);
    let long = "x".repeat(300);
    for id in ["", "a/b", "..", "../escape", long.as_str()] {
        for cmd in ["create", "run"] {
            let o = t.kraal.run(&[cmd, "--bundle", b.dir.to_str().unwrap(), id]);
            o.fails().stderr_has("container id");
        }
        t.kraal
            .run(&["state", id])
            .fails()
            .stderr_has("container id");
        t.kraal
            .run(&["start", id])
            .fails()
            .stderr_has("container id");
        t.kraal
            .run(&["kill", id, "KILL"])
            .fails()
            .stderr_has("container id");
        t.kraal
            .run(&["delete", id])
            .fails()
            .stderr_has("container id");
    }
    assert!(!t.tmp.join("escape").exists());
    assert!(!t.kraal.root.join("a").exists());
    t.assert_clean();
}

/// runc validates the id before looking anything up, --force or not: `delete --force`
/// succeeds quietly only for a valid id that does not exist.
#[test]
fn delete_force_refuses_invalid_ids() {
    let t = TestEnv::new();
    let long = "x".repeat(300);
    for id in ["", "a/b", "..", "../escape", long.as_str()] {
        t.kraal
            .run(&["delete", "--force", id])
            .fails()
            .stderr_has("container id");
    }
    t.kraal.run(&["delete", "--force", &t.new_id()]).ok();
    t.assert_clean();
}

#[test]
fn broken_json_names_config_json() {
    let t = TestEnv::new();
    let b = t.bundle(&["true"]);
    fs::write(
        b.config_path(),
        b"{\"ociVersion\": \"1.3.0\", \"process\": {",
    )
    .unwrap();
    create_fails(&t, &b, "config.json");
}

#[test]
fn wrong_type_names_the_field() {
    let t = TestEnv::new();
    let mut b = t.bundle(&["true"]);
    b.edit(|c| c["hostname"] = json!(5));
    create_fails(&t, &b, "hostname");
}

#[test]
fn missing_config_json_is_named() {
    let t = TestEnv::new();
    let b = t.bundle(&["true"]);
    fs::remove_file(b.config_path()).unwrap();
    create_fails(&t, &b, "config.json");
}

#[test]
fn missing_rootfs_is_named() {
    let t = TestEnv::new();
    let b = t.bundle(&["true"]);
    fs::remove_dir_all(&b.rootfs).unwrap();
    create_fails(&t, &b, &b.rootfs.to_string_lossy());
}

#[test]
fn unknown_namespace_type_is_named() {
    let t = TestEnv::new();
    let mut b = t.bundle(&["true"]);
    b.push("/linux/namespaces", json!({"type": "bogusns"}));
    let o = create_fails(&t, &b, "namespaces");
    o.stderr_has("bogusns");
}

#[test]
fn namespace_path_that_does_not_exist_is_named() {
    let t = TestEnv::new();
    let mut b = t.bundle(&["true"]);
    let missing = t.tmp.join("no-such-netns");
    b.edit(|c| {
        for n in c["linux"]["namespaces"].as_array_mut().unwrap() {
            if n["type"] == "network" {
                n["path"] = json!(missing);
            }
        }
    });
    create_fails(&t, &b, &missing.to_string_lossy());
}

/// process.terminal without --console-socket: `create` detaches, so there is nobody to
/// hand the pty to (runc refuses it too); nothing may be left behind.
#[test]
fn terminal_without_console_socket_is_refused() {
    let t = TestEnv::new();
    let mut b = t.bundle(&["true"]);
    b.edit(|c| c["process"]["terminal"] = json!(true));
    let o = t
        .kraal
        .run(&["create", "--bundle", b.dir.to_str().unwrap(), &b.id]);
    o.fails();
    let e = o.stderr.to_lowercase();
    assert!(
        e.contains("terminal") || e.contains("tty") || e.contains("console"),
        "error should name the terminal: {o:?}"
    );
    t.kraal.run(&["state", &b.id]).fails();
    t.assert_clean();
}

/// A second create with the same id fails and leaves the first container working.
#[test]
fn duplicate_id_fails_and_keeps_the_first() {
    let t = TestEnv::new();
    let shared = t.dir("shared");
    let mut b = t.bundle(&["sh", "-c", "echo first > /shared/ran"]);
    b.bind(&shared, "/shared");
    let k = t.k();
    t.create(&b);
    let s1 = k.state(&b.id).expect("state");
    let pid = s1["pid"].as_i64().unwrap();

    // Same id, another bundle.
    let other = t.bundle(&["true"]);
    k.run(&["create", "--bundle", other.dir.to_str().unwrap(), &b.id])
        .fails()
        .stderr_has("already exists");
    k.run(&["run", "--bundle", other.dir.to_str().unwrap(), &b.id])
        .fails()
        .stderr_has("already exists");

    let s2 = k.state(&b.id).expect("state after the failed create");
    assert_eq!(s1, s2, "the failed create changed the first container");
    assert!(pid_alive(pid));
    let cg_dirs = cgroup_parent_dirs(&t.cgroup_parent);
    for d in &cg_dirs {
        assert!(
            d.join(&b.id).is_dir(),
            "the first container's cgroup {} was removed",
            d.join(&b.id).display()
        );
    }
    k.run(&["start", &b.id]).ok();
    wait_file(&shared.join("ran"));
    k.wait_status(&b.id, "stopped");
    k.run(&["delete", &b.id]).ok();
    t.assert_clean();
}

#[test]
fn args0_not_found_fails_create() {
    let t = TestEnv::new();
    let b = t.bundle(&["/no/such/binary", "x"]);
    create_fails(&t, &b, "/no/such/binary");
    let b = t.bundle(&["kraal-no-such-command"]);
    create_fails(&t, &b, "kraal-no-such-command");
    // `run` reports it too, with a non-zero exit and nothing left.
    let b = t.bundle(&["kraal-no-such-command"]);
    t.run(&b).fails().stderr_has("kraal-no-such-command");
    t.assert_clean();
}

#[test]
fn commands_on_unknown_container_fail() {
    let t = TestEnv::new();
    let id = t.new_id();
    for args in [
        vec!["state", id.as_str()],
        vec!["start", id.as_str()],
        vec!["kill", id.as_str(), "KILL"],
        vec!["delete", id.as_str()],
    ] {
        t.kraal.run(&args).fails().stderr_has(&id);
    }
    t.assert_clean();
}

/// With --log F --log-format json, the error is a JSON line {level: error, msg, time}
/// in F naming the field at fault.
#[test]
fn json_log_gets_the_error_line() {
    let t = TestEnv::new();
    let mut b = t.bundle(&["true"]);
    b.edit(|c| c["hostname"] = json!(5));
    let log = t.tmp.join("kraal.log");
    let o = t.kraal.run(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "create",
        "--bundle",
        b.dir.to_str().unwrap(),
        &b.id,
    ]);
    o.fails();
    let text = fs::read_to_string(&log).expect("log file written");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let err = lines
        .iter()
        .find(|v| v["level"] == "error")
        .unwrap_or_else(|| panic!("no error line in {text}"));
    let msg = err["msg"].as_str().expect("msg is a string");
    assert!(
        msg.contains("hostname"),
        "msg does not name the field: {msg}"
    );
    let time = err["time"].as_str().expect("time is a string");
    assert!(
        time.len() >= 20 && time.as_bytes()[10] == b'T',
        "time: {time}"
    );
    t.kraal.run(&["state", &b.id]).fails();
    t.assert_clean();
}

#[test]
fn bind_mount_missing_source_is_named() {
    let t = TestEnv::new();
    let mut b = t.bundle(&["true"]);
    let missing = t.tmp.join("no-such-source");
    b.bind(&missing, "/mnt");
    create_fails(&t, &b, &missing.to_string_lossy());
}

/// Two `create`s of one id racing: exactly one container results, the loser fails
/// with "already exists", and the winner is intact.
#[test]
fn concurrent_creates_of_one_id_make_one_container() {
    let t = TestEnv::new();
    let b = t.bundle(&["sleep", "100"]);
    let dir = b.dir.to_str().unwrap().to_string();
    // stderr to files: the winner's init inherits it and keeps it open.
    let io = t.dir("race");
    let spawn = |n: &str| {
        let mut c = t.k().command(&["create", "--bundle", &dir, &b.id]);
        let f = std::fs::File::create(io.join(n)).unwrap();
        c.stdout(std::process::Stdio::null()).stderr(f);
        c.spawn().unwrap()
    };
    let (mut a, mut z) = (spawn("a"), spawn("z"));
    let sa = wait_timeout(&mut a, std::time::Duration::from_secs(30))
        .unwrap()
        .expect("create a finished");
    let sz = wait_timeout(&mut z, std::time::Duration::from_secs(30))
        .unwrap()
        .expect("create z finished");
    let wins = [sa.success(), sz.success()];
    assert_eq!(wins.iter().filter(|w| **w).count(), 1, "{sa:?} {sz:?}");
    let loser = std::fs::read_to_string(io.join(if wins[0] { "z" } else { "a" })).unwrap();
    assert!(loser.contains("already exists"), "{loser}");
    assert_eq!(t.k().status(&b.id), "created");
    t.k().run(&["delete", &b.id]).ok();
    t.assert_clean();
}

/// `process` is optional at create (runtime.md: required when start is called):
/// create succeeds, start refuses naming `process`, delete cleans up.
#[test]
fn create_without_process_then_start_refuses() {
    let t = TestEnv::new();
    let mut b = t.bundle(&["true"]);
    b.edit(|c| {
        c.as_object_mut().unwrap().remove("process");
    });
    t.create(&b);
    assert_eq!(t.k().status(&b.id), "created");
    t.k()
        .run(&["start", &b.id])
        .fails()
        .stderr_has("process is required");
    t.k().run(&["delete", &b.id]).ok();
    t.assert_clean();
}
