//! cgroups with real containers on this host's controllers: limits land in the cgroup
//! files and are enforced (OOM kill reported by `events`, a fork bomb stopped by
//! pids.max, a device blocked by the device list), `update` changes a running
//! container, `pause`/`resume` freeze and thaw it, `ps` lists it, `delete` removes its
//! cgroups; and the cgroup v2 device program on the cgroup2 mount.
//!
//! Every test has its own state root and cgroup parent `kraal-cgtest-<pid>-<n>`,
//! which TestEnv's Drop removes from every hierarchy, on failure too.

mod common;

use common::*;
use kraal::cgroups::{self, Hierarchy};
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MB: i64 = 1 << 20;

/// A test environment whose containers live under `kraal-cgtest-<pid>-<n>/<id>`.
fn env() -> TestEnv {
    let mut t = TestEnv::new();
    t.cgroup_parent = format!("kraal-cgtest-{}-{}", std::process::id(), t.n);
    t
}

fn hier() -> Vec<Hierarchy> {
    cgroups::hierarchies().expect("read the cgroup hierarchies")
}

/// The container's directory in the v1 hierarchy of `controller`, if mounted.
fn v1_dir(t: &TestEnv, id: &str, controller: &str) -> Option<PathBuf> {
    let path = PathBuf::from(format!("{}/{id}", t.cgroup_parent));
    hier()
        .iter()
        .find(|h| !h.v2 && h.controllers.iter().any(|c| c == controller))
        .map(|h| cgroups::container_dir(h, Some(&path), id).expect("container dir"))
}

/// Like `v1_dir`, for controllers the test needs.
#[track_caller]
fn need_v1(t: &TestEnv, id: &str, controller: &str) -> PathBuf {
    v1_dir(t, id, controller)
        .unwrap_or_else(|| panic!("this host has no v1 {controller} controller"))
}

/// The container's directory for `controller`: its v1 hierarchy's, or on pure
/// cgroup v2 its one directory.
fn own_dir(t: &TestEnv, id: &str, controller: &str, dirs: &[PathBuf]) -> PathBuf {
    match v1_dir(t, id, controller) {
        Some(d) => d,
        None if dirs.len() == 1 => dirs[0].clone(),
        None => panic!("no {controller} directory for {id} in {dirs:?}"),
    }
}

fn read(dir: &Path, file: &str) -> String {
    fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.join(file).display()))
        .trim()
        .to_string()
}

fn keyed(dir: &Path, file: &str, key: &str) -> u64 {
    read(dir, file)
        .lines()
        .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{key} in {}", dir.join(file).display()))
}

fn set_resources(b: &mut Bundle, res: Value) {
    b.edit(|c| c["linux"]["resources"] = res);
}

/// A long-running `kraal` child (events) whose stdout goes to a file; killed by pid
/// (ours) when dropped.
struct Streaming {
    child: Child,
    out: PathBuf,
}

impl Streaming {
    fn start(t: &TestEnv, args: &[&str]) -> Streaming {
        let out = t.tmp.join(format!("stream-{}.out", next_n()));
        let f = fs::File::create(&out).expect("create stream output");
        let child = t
            .k()
            .command(args)
            .stdin(Stdio::null())
            .stdout(f)
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn kraal");
        Streaming { child, out }
    }

    fn lines(&self) -> Vec<Value> {
        fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }

    #[track_caller]
    fn wait_line(&self, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        match wait_for(WAIT_TIMEOUT, || self.lines().into_iter().find(|v| f(v))) {
            Some(v) => v,
            None => panic!(
                "no {what} event within {WAIT_TIMEOUT:?}: {:?}",
                self.lines()
            ),
        }
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first real block device ("MAJ:MIN"), for throttle rules. A host without one
/// fails the test that needs it rather than skipping its checks silently.
#[track_caller]
fn a_block_device() -> String {
    let mut names: Vec<String> = fs::read_dir("/sys/block")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| {
                    !n.starts_with("loop") && !n.starts_with("ram") && !n.starts_with("zram")
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let Some(name) = names.first() else {
        panic!("no block device in /sys/block (besides loop, ram, zram) for the throttle rules");
    };
    let dev = fs::read_to_string(format!("/sys/block/{name}/dev"))
        .unwrap_or_else(|e| panic!("/sys/block/{name}/dev: {e}"));
    dev.trim().to_string()
}

#[test]
fn limits_are_written_to_the_cgroup_files() {
    let t = env();
    let mut b = t.bundle(&["sleep", "1000"]);
    let dev = a_block_device();
    let (ma, mi) = dev.split_once(':').expect("MAJ:MIN");
    let (ma, mi): (i64, i64) = (ma.parse().unwrap(), mi.parse().unwrap());
    let blkio = json!({
        "throttleReadBpsDevice": [{"major": ma, "minor": mi, "rate": 1048576}],
        "throttleWriteIOPSDevice": [{"major": ma, "minor": mi, "rate": 100}],
    });
    set_resources(
        &mut b,
        json!({
            "memory": {"limit": 64 * MB, "reservation": 32 * MB, "swap": 96 * MB, "swappiness": 10,
                       "disableOOMKiller": true, "kernelTCP": 16 * MB},
            "cpu": {"shares": 512, "quota": 20000, "period": 100000, "burst": 1000,
                    "cpus": "0", "mems": "0"},
            "pids": {"limit": 50},
            "blockIO": blkio,
        }),
    );
    let id = b.id.clone();
    t.create_start(&b);

    let mem = need_v1(&t, &id, "memory");
    assert_eq!(read(&mem, "memory.limit_in_bytes"), (64 * MB).to_string());
    assert_eq!(
        read(&mem, "memory.soft_limit_in_bytes"),
        (32 * MB).to_string()
    );
    assert_eq!(
        read(&mem, "memory.memsw.limit_in_bytes"),
        (96 * MB).to_string()
    );
    assert_eq!(read(&mem, "memory.swappiness"), "10");
    assert_eq!(keyed(&mem, "memory.oom_control", "oom_kill_disable"), 1);
    assert_eq!(
        read(&mem, "memory.kmem.tcp.limit_in_bytes"),
        (16 * MB).to_string()
    );
    let cpu = need_v1(&t, &id, "cpu");
    assert_eq!(read(&cpu, "cpu.shares"), "512");
    assert_eq!(read(&cpu, "cpu.cfs_quota_us"), "20000");
    assert_eq!(read(&cpu, "cpu.cfs_period_us"), "100000");
    assert_eq!(read(&cpu, "cpu.cfs_burst_us"), "1000");
    let cpuset = need_v1(&t, &id, "cpuset");
    assert_eq!(read(&cpuset, "cpuset.cpus"), "0");
    assert_eq!(read(&cpuset, "cpuset.mems"), "0");
    assert_eq!(read(&need_v1(&t, &id, "pids"), "pids.max"), "50");
    let blk = need_v1(&t, &id, "blkio");
    assert_eq!(
        read(&blk, "blkio.throttle.read_bps_device"),
        format!("{dev} 1048576")
    );
    assert_eq!(
        read(&blk, "blkio.throttle.write_iops_device"),
        format!("{dev} 100")
    );
    // The init really is in those cgroups.
    let pid = t.k().pid(&id);
    let procs = read(&mem, "cgroup.procs");
    assert!(
        procs.lines().any(|l| l == pid.to_string()),
        "init {pid} not in {}: {procs}",
        mem.display()
    );

    // `events --stats` reports the same limits, in runc's layout.
    let o = t.k().run(&["events", "--stats", &id]);
    o.ok();
    let lines = o.stdout_lines();
    assert_eq!(lines.len(), 1, "one event expected: {lines:?}");
    let ev: Value = serde_json::from_str(&lines[0]).expect("event is JSON");
    assert!(
        lines[0].starts_with(&format!("{{\"type\":\"stats\",\"id\":\"{id}\",\"data\":{{")),
        "{}",
        lines[0]
    );
    let d = &ev["data"];
    assert_eq!(d["memory"]["usage"]["limit"], json!(64 * MB), "{d}");
    assert_eq!(d["pids"]["limit"], json!(50), "{d}");
    assert!(d["pids"]["current"].as_u64().unwrap_or(0) >= 1, "{d}");
    assert!(d["cpu"]["usage"]["total"].as_u64().unwrap_or(0) > 0, "{d}");
    assert_eq!(d["cpuset"]["cpus"], json!([0]), "{d}");
    assert!(d["memory"]["raw"]["rss"].is_u64(), "{d}");
    assert_eq!(d["hugetlb"], json!({}));

    t.k().run(&["delete", "--force", &id]).ok();
    t.assert_clean();
}

#[test]
fn weight_files_of_this_kernel() {
    // blkio weights need CFQ (gone since 5.0) or BFQ files; report and use what exists.
    let t = env();
    let mut b = t.bundle(&["sleep", "1000"]);
    set_resources(&mut b, json!({"blockIO": {"weight": 500}}));
    let id = b.id.clone();
    let probe = t.bundle(&["true"]);
    t.create(&probe);
    let blk = need_v1(&t, &probe.id, "blkio");
    let weight = ["blkio.weight", "blkio.bfq.weight"]
        .into_iter()
        .find(|f| blk.join(f).exists());
    t.k().run(&["delete", "--force", &probe.id]).ok();
    eprintln!("blkio weight file on this kernel: {weight:?}");
    let o = t
        .k()
        .run(&["create", "--bundle", b.dir.to_str().unwrap(), &id]);
    match weight {
        Some(f) => {
            o.ok();
            let v = read(&need_v1(&t, &id, "blkio"), f);
            // bfq prints "default 500".
            assert!(v == "500" || v == "default 500", "{f}: {v}");
        }
        None => {
            o.fails().stderr_has("linux.resources.blockIO.weight");
        }
    }
    t.k().run(&["delete", "--force", &id]);
    t.assert_clean();
}

#[test]
fn memory_limit_oom_kills_and_events_reports_it() {
    let t = env();
    let shared = t.dir("shared");
    let mut b = t.bundle(&[
        "sh",
        "-c",
        "touch /shared/ready; while [ ! -e /shared/go ]; do sleep 0.05; done; \
         tail /dev/zero; echo $? > /shared/hog-status; sleep 1000",
    ]);
    b.bind(&shared, "/shared");
    // Swap equal to the limit: no swap, so the hog cannot escape the limit.
    set_resources(
        &mut b,
        json!({"memory": {"limit": 16 * MB, "swap": 16 * MB}}),
    );
    let id = b.id.clone();
    t.create_start(&b);
    wait_file(&shared.join("ready"));

    let events = Streaming::start(&t, &["events", "--interval", "200ms", &id]);
    // A first stats line proves the OOM watch is registered (it is set up before).
    events.wait_line("stats", |v| v["type"] == "stats");
    fs::write(shared.join("go"), b"").expect("write go");

    let oom = events.wait_line("oom", |v| v["type"] == "oom");
    assert_eq!(oom, json!({"type": "oom", "id": id}));
    wait_file(&shared.join("hog-status"));
    // 137 = killed by SIGKILL: the OOM killer took the hog, the shell lived on.
    assert_eq!(
        fs::read_to_string(shared.join("hog-status"))
            .unwrap()
            .trim(),
        "137"
    );
    let mem = need_v1(&t, &id, "memory");
    assert!(keyed(&mem, "memory.oom_control", "oom_kill") >= 1);
    assert_eq!(t.k().status(&id), "running");
    let o = t.k().run(&["events", "--stats", &id]);
    let ev: Value = serde_json::from_str(o.ok().stdout.trim()).expect("stats JSON");
    // The peak reached the limit.
    assert_eq!(ev["data"]["memory"]["usage"]["max"], json!(16 * MB), "{ev}");

    // The stream ends by itself once the container is gone.
    t.k().run(&["delete", "--force", &id]).ok();
    let mut ev = events;
    let done = wait_timeout(&mut ev.child, WAIT_TIMEOUT).expect("wait for events");
    assert!(
        done.is_some_and(|s| s.success()),
        "events should exit 0 after delete: {done:?}"
    );
    drop(ev);
    t.assert_clean();
}

#[test]
fn pids_limit_stops_a_fork_bomb() {
    let t = env();
    let shared = t.dir("shared");
    let mut b = t.bundle(&[
        "sh",
        "-c",
        "touch /shared/ready; while :; do sleep 1000 & done",
    ]);
    b.bind(&shared, "/shared");
    set_resources(&mut b, json!({"pids": {"limit": 8}}));
    let id = b.id.clone();
    t.create(&b);
    let probe_dir = need_v1(&t, &id, "pids");
    t.k().run(&["start", &id]).ok();
    wait_file(&shared.join("ready"));
    // The kernel counts every fork it refused in pids.events.
    let refused = wait_for(WAIT_TIMEOUT, || {
        let current: u64 = read(&probe_dir, "pids.current").parse().unwrap();
        assert!(current <= 8, "pids.current {current} is above the limit");
        let max = keyed(&probe_dir, "pids.events", "max");
        (max > 0).then_some(max)
    });
    assert!(
        refused.is_some(),
        "no fork was refused within {WAIT_TIMEOUT:?}"
    );
    assert_eq!(read(&probe_dir, "pids.max"), "8");
    let o = t.k().run(&["ps", "--format", "json", &id]);
    let pids: Vec<i64> = serde_json::from_str(o.ok().stdout.trim()).expect("pid array");
    assert!(pids.len() <= 8, "{pids:?}");
    t.k().run(&["delete", "--force", &id]).ok();
    t.assert_clean();
}

/// Shell that opens /dev/$d for reading and for writing (d from the caller) and
/// prints `$d-read-ok`, `$d-read-denied` (EPERM: only the device rules say that), or
/// `$d-read-error(...)` for anything else (ENODEV, ENOENT, ...), and the same for write.
const OPEN_PROBE: &str = "for m in read write; do \
      if [ $m = read ]; then err=$(dd if=/dev/$d of=/dev/null count=0 2>&1 >/dev/null); \
      else err=$(dd if=/dev/zero of=/dev/$d count=0 2>&1 >/dev/null); fi; \
      case \"$? $err\" in \
        0*) echo $d-$m-ok ;; \
        *'not permitted'*) echo $d-$m-denied ;; \
        *) echo \"$d-$m-error($err)\" | tr ' ' _ ;; \
      esac; \
    done";

/// Runs a container that tries to open /dev/loop-control (10:237, a device the config
/// creates and no default rule allows; opening it needs no capability) for reading
/// and for writing, and /dev/null; returns what it printed.
fn device_probe(t: &TestEnv, rules: Value) -> String {
    let script = format!("for d in loop-control null; do {OPEN_PROBE}; done");
    let mut b = t.bundle(&["sh", "-c", &script]);
    b.edit(|c| {
        c["linux"]["devices"] =
            json!([{"path": "/dev/loop-control", "type": "c", "major": 10, "minor": 237, "fileMode": 0o600}]);
        c["linux"]["resources"] = json!({ "devices": rules });
    });
    let o = t.run(&b);
    o.ok();
    o.stdout
}

#[test]
fn device_rules_block_opening_a_device() {
    let t = env();
    // Deny everything: the default devices (/dev/null, ...) come back, loop-control does not.
    let out = device_probe(&t, json!([{"allow": false, "access": "rwm"}]));
    for want in [
        "loop-control-read-denied",
        "loop-control-write-denied",
        "null-read-ok",
        "null-write-ok",
    ] {
        assert!(out.contains(want), "{want} missing from: {out}");
    }
    // Read-only access to it.
    let out = device_probe(
        &t,
        json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 10, "minor": 237, "access": "r"}
        ]),
    );
    for want in [
        "loop-control-read-ok",
        "loop-control-write-denied",
        "null-read-ok",
    ] {
        assert!(out.contains(want), "{want} missing from: {out}");
    }
    // Allow everything but writes to it (a deny list).
    let out = device_probe(
        &t,
        json!([
            {"allow": true, "access": "rwm"},
            {"allow": false, "type": "c", "major": 10, "minor": 237, "access": "w"}
        ]),
    );
    for want in [
        "loop-control-read-ok",
        "loop-control-write-denied",
        "null-write-ok",
    ] {
        assert!(out.contains(want), "{want} missing from: {out}");
    }
    t.assert_clean();
}

#[test]
fn device_list_is_in_the_cgroup() {
    let t = env();
    let mut b = t.bundle(&["sleep", "1000"]);
    set_resources(
        &mut b,
        json!({"devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "b", "major": 7, "access": "r"}
        ]}),
    );
    let id = b.id.clone();
    t.create(&b);
    let list = read(&need_v1(&t, &id, "devices"), "devices.list");
    let lines: Vec<&str> = list.lines().collect();
    for want in ["b 7:* r", "c 1:3 rwm", "c *:* m", "b *:* m", "c 136:* rwm"] {
        assert!(
            lines.contains(&want),
            "{want} missing from devices.list:\n{list}"
        );
    }
    assert!(!lines.contains(&"a *:* rwm"), "{list}");
    // A rule the kernel cannot express is refused before anything runs.
    let mut b2 = t.bundle(&["true"]);
    set_resources(
        &mut b2,
        json!({"devices": [
            {"allow": true, "type": "c", "major": 1, "access": "rw"},
            {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "w"}
        ]}),
    );
    t.k()
        .run(&["create", "--bundle", b2.dir.to_str().unwrap(), &b2.id])
        .fails()
        .stderr_has("linux.resources.devices");
    t.k().run(&["delete", "--force", &id]).ok();
    t.assert_clean();
}

/// Updating a v1 device list (`update -r` with `devices`): a device the create allowed
/// leaves devices.list and an exec'd open of it gets EPERM; a later update grants it
/// again (read only). The v2 counterpart is the VM's update_replaces_the_device_program.
#[test]
fn device_list_update_denies_then_allows_a_device() {
    let t = env();
    let mut b = t.bundle(&["sleep", "1000"]);
    b.edit(|c| {
        c["linux"]["devices"] =
            json!([{"path": "/dev/loop-control", "type": "c", "major": 10, "minor": 237, "fileMode": 0o600}]);
        c["linux"]["resources"] = json!({"devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 10, "minor": 237, "access": "rwm"}
        ]});
    });
    let id = b.id.clone();
    t.create_start(&b);
    let k = t.k();
    let devices = need_v1(&t, &id, "devices");
    let open = |dev: &str| -> String {
        let script = format!("d={dev}; {OPEN_PROBE}");
        let o = k.run(&["exec", &id, "sh", "-c", &script]);
        o.ok();
        o.stdout.split_whitespace().collect::<Vec<_>>().join(" ")
    };
    let has_loop = |list: &str| list.lines().any(|l| l.starts_with("c 10:237 "));
    assert_eq!(
        open("loop-control"),
        "loop-control-read-ok loop-control-write-ok"
    );
    let list = read(&devices, "devices.list");
    assert!(
        has_loop(&list),
        "c 10:237 missing from devices.list:\n{list}"
    );

    let f = t.tmp.join("devices.json");
    fs::write(
        &f,
        json!({"devices": [{"allow": false, "access": "rwm"}]}).to_string(),
    )
    .unwrap();
    k.run(&["update", "-r", f.to_str().unwrap(), &id]).ok();
    let list = read(&devices, "devices.list");
    assert!(!has_loop(&list), "c 10:237 still in devices.list:\n{list}");
    assert_eq!(
        open("loop-control"),
        "loop-control-read-denied loop-control-write-denied"
    );
    // The default devices stay.
    assert_eq!(open("null"), "null-read-ok null-write-ok");

    fs::write(
        &f,
        json!({"devices": [{"allow": true, "type": "c", "major": 10, "minor": 237, "access": "r"}]})
            .to_string(),
    )
    .unwrap();
    k.run(&["update", "-r", f.to_str().unwrap(), &id]).ok();
    assert_eq!(
        open("loop-control"),
        "loop-control-read-ok loop-control-write-denied"
    );
    k.run(&["delete", "--force", &id]).ok();
    t.assert_clean();
}

/// Kills what is left in cgroup dirs a test made outside its TestEnv's parent (only
/// that test's container can be there) and removes them, in the order given (deepest
/// first). Never panics: it runs from TestEnv's Drop, on failure too.
fn remove_cgroup_dirs(dirs: &[PathBuf]) {
    for d in dirs {
        let deadline = Instant::now() + Duration::from_secs(10);
        while d.exists() {
            if let Ok(procs) = fs::read_to_string(d.join("cgroup.procs")) {
                for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    // SAFETY: kill(2) on a pid in the test's own cgroup.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
            if fs::remove_dir(d).is_ok() || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if d.exists() {
            eprintln!("test cleanup: cannot remove {}", d.display());
        }
    }
}

/// Panics unless the init `pid` is in `cgroup.procs` of each of `dirs`.
#[track_caller]
fn assert_init_in(dirs: &[PathBuf], pid: i64) {
    assert!(!dirs.is_empty(), "no cgroup hierarchy found");
    for d in dirs {
        let procs = fs::read_to_string(d.join("cgroup.procs"))
            .unwrap_or_else(|e| panic!("{}: {e}", d.join("cgroup.procs").display()));
        assert!(
            procs.lines().any(|l| l.trim() == pid.to_string()),
            "init {pid} not in {}: {procs:?}",
            d.display()
        );
    }
}

/// An absolute cgroupsPath is taken from the root of every hierarchy, whatever
/// kraal's own cgroup: `/kraal-cgtest-…-abs/<id>` is a new top-level directory in
/// each, which delete removes again (create made it). Never inside or above the
/// test's own cgroup.
#[test]
fn absolute_cgroups_path_is_from_the_hierarchy_root() {
    let t = env();
    let top = format!("kraal-cgtest-{}-{}-abs", std::process::id(), next_n());
    let mut b = t.bundle(&["sleep", "1000"]);
    let id = b.id.clone();
    b.edit(|c| c["linux"]["cgroupsPath"] = json!(format!("/{top}/{id}")));
    set_resources(&mut b, json!({"pids": {"limit": 20}}));
    let tops: Vec<PathBuf> = hier().iter().map(|h| h.mountpoint.join(&top)).collect();
    let dirs: Vec<PathBuf> = tops.iter().map(|d| d.join(&id)).collect();
    for d in &tops {
        assert!(!d.exists(), "{} exists before the test", d.display());
    }
    let mut cleanup = dirs.clone();
    cleanup.extend(tops.iter().cloned());
    t.on_drop(move || remove_cgroup_dirs(&cleanup));

    start_in(&t, &b, &dirs, 20);
    t.k().run(&["delete", "--force", &id]).ok();
    for d in &tops {
        assert!(
            !d.exists(),
            "{} (made by create) left after delete",
            d.display()
        );
    }
    t.assert_clean();
}

/// Starts `b` and checks its init is in `dirs` (one per hierarchy) with the pids
/// limit `limit` it was given.
fn start_in(t: &TestEnv, b: &Bundle, dirs: &[PathBuf], limit: u32) {
    t.create_start(b);
    assert_init_in(dirs, t.k().pid(&b.id));
    let pids_dir = dirs
        .iter()
        .find(|d| d.join("pids.max").exists())
        .expect("a pids.max in one of the container's cgroups");
    assert_eq!(read(pids_dir, "pids.max"), limit.to_string());
}

/// Without cgroupsPath the container's cgroup is named after its id, where a relative
/// path would be: below kraal's own cgroup on v1, below the parent of it on v2 (as
/// runc). The directories are removed on failure too.
#[test]
fn absent_cgroups_path_is_named_after_the_id() {
    let t = env();
    let mut b = t.bundle(&["sleep", "1000"]);
    let id = b.id.clone();
    b.edit(|c| {
        c["linux"].as_object_mut().unwrap().remove("cgroupsPath");
    });
    set_resources(&mut b, json!({"pids": {"limit": 21}}));
    let dirs: Vec<PathBuf> = own_cgroup_dirs().iter().map(|d| d.join(&id)).collect();
    for d in &dirs {
        assert!(!d.exists(), "{} exists before the test", d.display());
    }
    let cleanup = dirs.clone();
    t.on_drop(move || remove_cgroup_dirs(&cleanup));

    start_in(&t, &b, &dirs, 21);
    t.k().run(&["delete", "--force", &id]).ok();
    for d in &dirs {
        assert!(!d.exists(), "{} left after delete", d.display());
    }
    t.assert_clean();
}

#[test]
fn update_changes_a_running_container() {
    let t = env();
    let shared = t.dir("shared");
    let mut b = t.bundle(&["sh", "-c", "touch /shared/ready; sleep 1000"]);
    b.bind(&shared, "/shared");
    set_resources(
        &mut b,
        json!({"memory": {"limit": 64 * MB}, "pids": {"limit": 50}}),
    );
    let id = b.id.clone();
    t.create_start(&b);
    wait_file(&shared.join("ready"));
    let k = t.k();
    let mem = need_v1(&t, &id, "memory");
    let pids = need_v1(&t, &id, "pids");
    let cpu = need_v1(&t, &id, "cpu");

    k.run(&[
        "update",
        "--memory",
        "128m",
        "--memory-swap",
        "256m",
        "--pids-limit",
        "30",
        "--cpu-share",
        "256",
        "--cpu-quota",
        "50000",
        &id,
    ])
    .ok();
    assert_eq!(read(&mem, "memory.limit_in_bytes"), (128 * MB).to_string());
    assert_eq!(
        read(&mem, "memory.memsw.limit_in_bytes"),
        (256 * MB).to_string()
    );
    assert_eq!(read(&pids, "pids.max"), "30");
    assert_eq!(read(&cpu, "cpu.shares"), "256");
    assert_eq!(read(&cpu, "cpu.cfs_quota_us"), "50000");
    // The other flags of runc's update.go.
    k.run(&[
        "update",
        "--cpu-period",
        "50000",
        "--cpu-quota",
        "25000",
        "--cpu-burst",
        "500",
        "--memory-reservation",
        "16m",
        "--cpuset-cpus",
        "0",
        "--cpuset-mems",
        "0",
        &id,
    ])
    .ok();
    assert_eq!(read(&cpu, "cpu.cfs_period_us"), "50000");
    assert_eq!(read(&cpu, "cpu.cfs_quota_us"), "25000");
    assert_eq!(read(&cpu, "cpu.cfs_burst_us"), "500");
    assert_eq!(
        read(&mem, "memory.soft_limit_in_bytes"),
        (16 * MB).to_string()
    );
    let cpuset = need_v1(&t, &id, "cpuset");
    assert_eq!(read(&cpuset, "cpuset.cpus"), "0");
    assert_eq!(read(&cpuset, "cpuset.mems"), "0");
    // SCHED_IDLE gives the group the minimum weight: the kernel then reports shares 3.
    k.run(&["update", "--cpu-idle", "1", &id]).ok();
    assert_eq!(read(&cpu, "cpu.idle"), "1");
    assert_eq!(read(&cpu, "cpu.shares"), "3");
    k.run(&["update", "--cpu-share", "512", &id])
        .fails()
        .stderr_has("SCHED_IDLE");
    k.run(&["update", "--cpu-idle", "0", "--cpu-share", "512", &id])
        .ok();
    assert_eq!(read(&cpu, "cpu.idle"), "0");
    assert_eq!(read(&cpu, "cpu.shares"), "512");

    // Lowering memory below memory+swap, then both: the writes are ordered to fit.
    k.run(&["update", "--memory", "32m", "--memory-swap", "48m", &id])
        .ok();
    assert_eq!(read(&mem, "memory.limit_in_bytes"), (32 * MB).to_string());
    assert_eq!(
        read(&mem, "memory.memsw.limit_in_bytes"),
        (48 * MB).to_string()
    );

    // --resources from a file and from stdin.
    let f = t.tmp.join("res.json");
    fs::write(
        &f,
        json!({"memory": {"limit": 96 * MB, "swap": 96 * MB}, "pids": {"limit": 25}}).to_string(),
    )
    .unwrap();
    k.run(&["update", "--resources", f.to_str().unwrap(), &id])
        .ok();
    assert_eq!(read(&mem, "memory.limit_in_bytes"), (96 * MB).to_string());
    assert_eq!(read(&pids, "pids.max"), "25");
    let mut c = k.command(&["update", "-r", "-", &id]);
    c.stdin(Stdio::piped());
    let mut child = c
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn update");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(br#"{"pids": {"limit": -1}}"#)
            .expect("write stdin");
    }
    let st = wait_timeout(&mut child, CMD_TIMEOUT).expect("wait update");
    if st.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(
        st.is_some_and(|s| s.success()),
        "update -r - failed: {st:?}"
    );
    assert_eq!(read(&pids, "pids.max"), "max");
    // The new limit is enforced: stats see it.
    let o = k.run(&["events", "--stats", &id]);
    let ev: Value = serde_json::from_str(o.ok().stdout.trim()).unwrap();
    assert_eq!(ev["data"]["memory"]["usage"]["limit"], json!(96 * MB));

    // As runc: --kernel-memory is ignored with a warning, and so are flags next to
    // --resources.
    k.run(&["update", "--kernel-memory", "10m", &id])
        .ok()
        .stderr_has("--kernel-memory: ignored");
    fs::write(&f, json!({"pids": {"limit": 24}}).to_string()).unwrap();
    k.run(&[
        "update",
        "-r",
        f.to_str().unwrap(),
        "--pids-limit",
        "7",
        &id,
    ])
    .ok()
    .stderr_has("--pids-limit: ignored");
    assert_eq!(read(&pids, "pids.max"), "24");
    // Refusals change nothing.
    k.run(&["update", "--l3-cache-schema", "L3:0=ff", &id])
        .fails()
        .stderr_has("Intel RDT");
    k.run(&["update", "--memory", "lots", &id])
        .fails()
        .stderr_has("--memory");
    fs::write(&f, r#"{"memory": {"limit": "big"}}"#).unwrap();
    k.run(&["update", "-r", f.to_str().unwrap(), &id])
        .fails()
        .stderr_has("memory.limit");
    // Below what the container uses: v1 refuses, and kraal says why.
    k.run(&["update", "--memory", "4k", "--memory-swap", "96m", &id])
        .fails()
        .stderr_has("usage");
    assert_eq!(read(&mem, "memory.limit_in_bytes"), (96 * MB).to_string());
    k.run(&["update", "--pids-limit", "5", "nonexistent-id"])
        .fails()
        .stderr_has("does not exist");

    k.run(&["delete", "--force", &id]).ok();
    t.assert_clean();
}

#[test]
fn pause_freezes_and_resume_continues() {
    let t = env();
    let shared = t.dir("shared");
    let mut b = t.bundle(&[
        "sh",
        "-c",
        "i=0; while :; do i=$((i+1)); echo $i > /shared/counter.tmp; mv /shared/counter.tmp /shared/counter; sleep 0.02; done",
    ]);
    b.bind(&shared, "/shared");
    let id = b.id.clone();
    t.create_start(&b);
    let k = t.k();
    let counter = || -> u64 {
        fs::read_to_string(shared.join("counter"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    assert!(
        wait_for(WAIT_TIMEOUT, || (counter() > 3).then_some(())).is_some(),
        "the counter never started"
    );

    k.run(&["pause", &id]).ok();
    assert_eq!(k.status(&id), "paused");
    assert_eq!(
        read(&need_v1(&t, &id, "freezer"), "freezer.state"),
        "FROZEN"
    );
    let frozen_at = counter();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(counter(), frozen_at, "the counter advanced while paused");
    k.run(&["pause", &id]).fails().stderr_has("paused");
    let o = k.run(&["list", "--format", "json"]);
    let list: Value = serde_json::from_str(o.ok().stdout.trim()).unwrap();
    assert_eq!(list[0]["status"], "paused", "{list}");

    k.run(&["resume", &id]).ok();
    assert_eq!(k.status(&id), "running");
    assert!(
        wait_for(WAIT_TIMEOUT, || (counter() > frozen_at + 3).then_some(())).is_some(),
        "the counter did not move after resume"
    );
    k.run(&["resume", &id]).fails().stderr_has("not paused");

    // A paused container can be deleted with --force (runc thaws it to kill it).
    k.run(&["pause", &id]).ok();
    k.run(&["delete", "--force", &id]).ok();
    t.assert_clean();
}

#[test]
fn ps_lists_the_container_processes() {
    let t = env();
    let shared = t.dir("shared");
    let mut b = t.bundle(&[
        "sh",
        "-c",
        "sleep 1001 & sleep 1002 & touch /shared/ready; wait",
    ]);
    b.bind(&shared, "/shared");
    let id = b.id.clone();
    t.create_start(&b);
    wait_file(&shared.join("ready"));
    let k = t.k();
    let init = k.pid(&id);

    let o = k.run(&["ps", "--format", "json", &id]);
    let pids: Vec<i64> = serde_json::from_str(o.ok().stdout.trim()).expect("pid array");
    assert_eq!(pids.len(), 3, "{pids:?}");
    assert!(pids.contains(&init), "{pids:?} lacks init {init}");

    let o = k.run(&["ps", &id]);
    let out = o.ok().stdout.clone();
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].split_whitespace().any(|h| h == "PID"), "{out}");
    assert_eq!(lines.len(), 4, "{out}");
    assert!(
        out.contains("sleep 1001") && out.contains("sleep 1002"),
        "{out}"
    );

    let o = k.run(&["ps", &id, "-o", "pid,comm"]);
    let out = o.ok().stdout.clone();
    let mut rows: Vec<i64> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    rows.sort();
    let mut want = pids.clone();
    want.sort();
    assert_eq!(rows, want, "{out}");
    k.run(&["ps", "-f", "yaml", &id]).fails();

    k.run(&["delete", "--force", &id]).ok();
    t.assert_clean();
}

#[test]
fn delete_leaves_no_cgroup_dir() {
    let t = env();
    let mut b = t.bundle(&["sleep", "1000"]);
    set_resources(
        &mut b,
        json!({"memory": {"limit": 64 * MB}, "pids": {"limit": 20}}),
    );
    let id = b.id.clone();
    t.create_start(&b);
    let dirs: Vec<PathBuf> = cgroup_parent_dirs(&t.cgroup_parent)
        .into_iter()
        .map(|d| d.join(&id))
        .collect();
    assert!(dirs.len() >= 2, "{dirs:?}");
    for d in &dirs {
        assert!(d.is_dir(), "{} missing while running", d.display());
    }
    t.k().run(&["delete", "--force", &id]).ok();
    for d in &dirs {
        assert!(!d.exists(), "{} left after delete", d.display());
    }

    // A container that exited on its own, deleted without --force.
    let b2 = t.bundle(&["true"]);
    let o = t.run(&b2);
    o.ok();
    let dirs2: Vec<PathBuf> = cgroup_parent_dirs(&t.cgroup_parent)
        .into_iter()
        .map(|d| d.join(&b2.id))
        .collect();
    for d in &dirs2 {
        assert!(!d.exists(), "{} left after run", d.display());
    }
    t.assert_clean();
}

#[test]
fn a_resource_the_host_lacks_fails_create_cleanly() {
    let t = env();
    let has_net_cls = hier()
        .iter()
        .any(|h| h.controllers.iter().any(|c| c == "net_cls"));
    let mut b = t.bundle(&["true"]);
    set_resources(
        &mut b,
        json!({"pids": {"limit": 10}, "network": {"classID": 1048577}}),
    );
    let o = t
        .k()
        .run(&["create", "--bundle", b.dir.to_str().unwrap(), &b.id]);
    if has_net_cls {
        o.ok();
        let d = need_v1(&t, &b.id, "net_cls");
        assert_eq!(read(&d, "net_cls.classid"), "1048577");
        t.k().run(&["delete", "--force", &b.id]).ok();
    } else {
        o.fails()
            .stderr_has("linux.resources.network: the net_cls controller is not mounted");
        let left = cgroup_parent_dirs(&t.cgroup_parent)
            .into_iter()
            .map(|d| d.join(&b.id))
            .filter(|d| d.exists())
            .collect::<Vec<_>>();
        assert!(left.is_empty(), "{left:?}");
    }

    // cgroup v2 keys on a host whose memory controller is v1.
    let mut b = t.bundle(&["true"]);
    set_resources(&mut b, json!({"unified": {"memory.high": "1000000"}}));
    t.k()
        .run(&["create", "--bundle", b.dir.to_str().unwrap(), &b.id])
        .fails()
        .stderr_has("linux.resources.unified");
    // A page size the kernel does not have.
    let mut b = t.bundle(&["true"]);
    set_resources(
        &mut b,
        json!({"hugepageLimits": [{"pageSize": "3MB", "limit": 1}]}),
    );
    t.k()
        .run(&["create", "--bundle", b.dir.to_str().unwrap(), &b.id])
        .fails()
        .stderr_has("linux.resources.hugepageLimits");
    t.assert_clean();
}

#[test]
fn events_refuses_bad_input() {
    let t = env();
    let b = t.bundle(&["sleep", "1000"]);
    let id = b.id.clone();
    t.create_start(&b);
    let k = t.k();
    k.run(&["events", "--interval", "0s", &id])
        .fails()
        .stderr_has("--interval");
    k.run(&["events", "--interval", "soon", &id])
        .fails()
        .stderr_has("--interval");
    k.run(&["events", "--stats", "no-such-container"])
        .fails()
        .stderr_has("does not exist");
    k.run(&["kill", &id, "KILL"]).ok();
    k.wait_status(&id, "stopped");
    k.run(&["events", "--stats", &id])
        .fails()
        .stderr_has("not running");
    k.run(&["pause", &id]).fails().stderr_has("not running");
    k.run(&["update", "--pids-limit", "3", &id])
        .fails()
        .stderr_has("not running");
    k.run(&["delete", &id]).ok();
    t.assert_clean();
}

/// Removes a directory tree in the cgroup2 hierarchy, deepest first.
struct V2Dir(PathBuf);
impl Drop for V2Dir {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        for d in [self.0.join("c"), self.0.clone()] {
            while d.exists() && fs::remove_dir(&d).is_err() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Runs `sh -c script` as a child that first moves itself into the cgroup2 dir.
fn run_in_v2(dir: &Path, script: &str) -> String {
    use std::os::unix::process::CommandExt;
    let procs = std::ffi::CString::new(dir.join("cgroup.procs").to_str().unwrap()).unwrap();
    let mut c = Command::new("/bin/busybox");
    c.args(["sh", "-c", script]);
    // SAFETY: open/write/close only, between fork and exec.
    unsafe {
        c.pre_exec(move || {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let r = libc::write(fd, b"0".as_ptr().cast(), 1);
            libc::close(fd);
            if r != 1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = c
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("run child in the cgroup");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn v2_device_program_blocks_and_is_replaced_on_update() {
    use kraal::cgroups::devices::{container_rules, Access, Kind, Rule, State, ANY};
    use kraal::cgroups::devices_bpf;
    let Some(h) = hier().into_iter().find(|h| h.v2) else {
        panic!("this host has no cgroup2 mount to attach a device program to");
    };
    let parent = cgroups::container_dir(
        &h,
        Some(Path::new(&format!(
            "kraal-cgtest-{}-{}",
            std::process::id(),
            next_n()
        ))),
        "x",
    )
    .unwrap();
    fs::create_dir_all(parent.join("c")).expect("create cgroup2 dirs");
    let guard = V2Dir(parent.clone());
    let dir = parent.join("c");
    // No `2>/dev/null` in the probe: /dev/null itself may be denied (stderr is
    // already /dev/null, opened before the child joined the cgroup).
    let probe = "for d in null zero; do \
        (exec 3</dev/$d) && echo $d-r-ok || echo $d-r-no; \
        (exec 3>/dev/$d) && echo $d-w-ok || echo $d-w-no; done";

    // Allow list: only /dev/zero, read only.
    let s = State::from_rules(&[
        Rule {
            allow: false,
            kind: None,
            major: ANY,
            minor: ANY,
            access: Access::ALL,
        },
        Rule {
            allow: true,
            kind: Some(Kind::Char),
            major: 1,
            minor: 5,
            access: Access::READ,
        },
    ])
    .unwrap();
    devices_bpf::apply(&dir, &s).expect("attach the device program");
    let out = run_in_v2(&dir, probe);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["null-r-no", "null-w-no", "zero-r-ok", "zero-w-no"],
        "{out}"
    );
    let fd: std::os::fd::OwnedFd = fs::File::open(&dir).unwrap().into();
    assert_eq!(devices_bpf::attached(&fd).unwrap().len(), 1);

    // Update: the container defaults (null, zero, ... rwm) replace the program.
    let s = State::from_rules(&container_rules(&[]).unwrap()).unwrap();
    devices_bpf::apply(&dir, &s).expect("replace the device program");
    assert_eq!(
        devices_bpf::attached(&fd).unwrap().len(),
        1,
        "old program left attached"
    );
    let out = run_in_v2(&dir, probe);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["null-r-ok", "null-w-ok", "zero-r-ok", "zero-w-ok"],
        "{out}"
    );

    // Deny list: everything but writes to /dev/null.
    let s = State::from_rules(&[
        Rule {
            allow: true,
            kind: None,
            major: ANY,
            minor: ANY,
            access: Access::ALL,
        },
        Rule {
            allow: false,
            kind: Some(Kind::Char),
            major: 1,
            minor: 3,
            access: Access::WRITE,
        },
    ])
    .unwrap();
    devices_bpf::apply(&dir, &s).unwrap();
    let out = run_in_v2(&dir, probe);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["null-r-ok", "null-w-no", "zero-r-ok", "zero-w-ok"],
        "{out}"
    );
    drop(fd);
    drop(guard);
    assert!(!parent.exists(), "{} left behind", parent.display());
}

/// Deleting a paused container without --force fails (as with runc) and leaves it
/// paused; --force thaws, kills and removes it.
#[test]
fn delete_paused_needs_force() {
    let t = env();
    let k = t.k();
    let b = t.bundle(&["sleep", "1000"]);
    t.create_start(&b);
    k.wait_status(&b.id, "running");
    k.run(&["pause", &b.id]).ok();
    assert_eq!(k.status(&b.id), "paused");
    k.run(&["delete", &b.id]).fails().stderr_has("paused");
    assert_eq!(
        k.status(&b.id),
        "paused",
        "a refused delete changed nothing"
    );
    k.run(&["delete", "--force", &b.id]).ok();
    k.run(&["state", &b.id]).fails();
    t.assert_clean_strict();
}

/// Cleanup for `a_container_owning_its_cgroup_tree_cannot_block_delete`, when delete
/// failed: thaws, kills and removes, deepest first, the cgroups below `dir` by
/// directory fds (the tree is deeper than PATH_MAX), then deletes the container.
/// Never panics: it runs from TestEnv's Drop.
fn force_remove_tree_at(parent: i32, name: &std::ffi::CStr) {
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: openat on an fd the caller holds and a NUL-terminated name.
    let fd = unsafe { libc::openat(parent, name.as_ptr(), flags) };
    if fd < 0 {
        return;
    }
    // SAFETY: fd was just opened here and is owned by nothing else.
    let dir = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let dir_fd = std::os::fd::AsRawFd::as_raw_fd(&dir);
    let read_at = |file: &std::ffi::CStr| -> String {
        // SAFETY: openat on the fd we hold and a NUL-terminated name.
        let f = unsafe { libc::openat(dir_fd, file.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if f < 0 {
            return String::new();
        }
        // SAFETY: f was just opened here and is owned by nothing else.
        let f = unsafe { <fs::File as std::os::fd::FromRawFd>::from_raw_fd(f) };
        std::io::read_to_string(f).unwrap_or_default()
    };
    // SAFETY: openat on the fd we hold and a NUL-terminated name.
    let st = unsafe {
        libc::openat(
            dir_fd,
            c"freezer.state".as_ptr(),
            libc::O_WRONLY | libc::O_CLOEXEC,
        )
    };
    if st >= 0 {
        // SAFETY: st was just opened here and is owned by nothing else.
        let mut f = unsafe { <fs::File as std::os::fd::FromRawFd>::from_raw_fd(st) };
        let _ = std::io::Write::write_all(&mut f, b"THAWED");
    }
    let subs: Vec<std::ffi::CString> = fs::read_dir(format!("/proc/self/fd/{dir_fd}"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .filter_map(|e| std::ffi::CString::new(e.file_name().into_encoded_bytes()).ok())
                .collect()
        })
        .unwrap_or_default();
    for s in &subs {
        force_remove_tree_at(dir_fd, s);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        for pid in read_at(c"cgroup.procs")
            .lines()
            .filter_map(|l| l.trim().parse::<i32>().ok())
        {
            // SAFETY: kill(2) on a pid in this test's own container's cgroup.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        // SAFETY: unlinkat on the parent fd the caller holds and a NUL-terminated name.
        let r = unsafe { libc::unlinkat(parent, name.as_ptr(), libc::AT_REMOVEDIR) };
        if r == 0 || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts a container running `script` (with `$1` = `arg`) with a read-write cgroup
/// mount in its cgroup namespace, so that it owns the tree below its cgroup, and
/// waits until the script touches /shared/ready. Returns its id and its cgroup
/// directories on the host; if the test fails, the tree is removed by fds.
fn start_cgroup_owner(t: &TestEnv, script: &str, arg: &str) -> (String, Vec<PathBuf>) {
    let shared = t.dir(&format!("shared-{}", next_n()));
    let mut b = t.bundle(&["sh", "-c", script, "sh", arg]);
    b.bind(&shared, "/shared");
    // The default spec has the cgroup namespace; make its cgroup mount read-write.
    b.edit(|c| {
        for m in c["mounts"].as_array_mut().expect("mounts") {
            if m["destination"] == "/sys/fs/cgroup" {
                m["options"] = json!(["nosuid", "noexec", "nodev", "relatime", "rw"]);
            }
        }
    });
    let id = b.id.clone();
    let dirs: Vec<PathBuf> = cgroup_parent_dirs(&t.cgroup_parent)
        .into_iter()
        .map(|d| d.join(&id))
        .collect();
    let (cdirs, bin, root, io, cid) = (
        dirs.clone(),
        t.k().bin.clone(),
        t.k().root.clone(),
        t.tmp.join("cleanup-io"),
        id.clone(),
    );
    t.on_drop(move || {
        for d in &cdirs {
            let (Some(parent), Some(name)) = (d.parent(), d.file_name()) else {
                continue;
            };
            let Ok(p) = fs::File::open(parent) else {
                continue;
            };
            let Ok(name) = std::ffi::CString::new(name.as_encoded_bytes()) else {
                continue;
            };
            force_remove_tree_at(std::os::fd::AsRawFd::as_raw_fd(&p), &name);
        }
        let mut c = Command::new(bin);
        c.arg("--root").arg(root).args(["delete", "--force", &cid]);
        let _ = try_run(&mut c, CMD_TIMEOUT, &io);
    });
    t.create_start(&b);
    wait_file(&shared.join("ready"));
    (id, dirs)
}

/// `delete --force` succeeded, the container's cgroup directories are gone from
/// every hierarchy, its state too, and nothing of the test is left.
#[track_caller]
fn assert_deleted(t: &TestEnv, id: &str, dirs: &[PathBuf], del: &Out) {
    del.ok();
    for d in dirs {
        assert!(!d.exists(), "{} left after delete", d.display());
    }
    t.k().run(&["state", id]).fails();
    t.assert_clean();
}

/// A container whose cgroup is writable to it (a cgroup namespace and a read-write
/// cgroup mount) owns the tree below its cgroup. It builds chains of 70 nested
/// sub-cgroups with 250-character names in two hierarchies (cpu, the first one,
/// where `ps` looks, and pids), far past PATH_MAX on the host and deeper than the
/// fds kraal keeps open while walking, with a process at the bottom. `ps` must
/// still list every process, and `delete --force` must kill them and remove every
/// cgroup directory of the container.
#[test]
fn a_deep_cgroup_tree_of_the_container_cannot_block_delete() {
    let t = env();
    let long = "k".repeat(250);
    // Pure cgroup v2 (the VM guests): one hierarchy, the same chain in it.
    let script = r#"set -e
if [ -e /sys/fs/cgroup/cgroup.controllers ]; then hs=.; else hs="cpu pids"; fi
for h in $hs; do
  ( cd /sys/fs/cgroup/$h
    i=0
    while [ $i -lt 70 ]; do mkdir "$1"; cd -P "$1"; i=$((i+1)); done
    [ $h != pids ] || exit 0
    sleep 1001 &
    echo $! > cgroup.procs
  )
done
touch /shared/ready
exec sleep 1000
"#;
    let (id, dirs) = start_cgroup_owner(&t, script, &long);
    let k = t.k();
    for c in ["cpu", "pids"] {
        let d = own_dir(&t, &id, c, &dirs);
        assert!(d.join(&long).is_dir(), "no sub-cgroup in {}", d.display());
    }
    let ps = k.run(&["ps", "--format", "json", &id]);
    let del = k.run(&["delete", "--force", &id]);
    assert_deleted(&t, &id, &dirs, &del);
    let pids: Vec<i64> = serde_json::from_str(ps.ok().stdout.trim()).expect("pid array");
    assert_eq!(pids.len(), 2, "init and the deep sleep: {pids:?}");
}

/// A container freezes a sub-cgroup of its own (v1 freezer, two levels down)
/// holding a process: thawing the container's cgroup alone leaves it frozen, and a
/// frozen v1 task only dies of SIGKILL once thawed. `ps` lists it, and
/// `delete --force` must kill it too and remove every cgroup directory.
#[test]
fn a_cgroup_the_container_froze_cannot_block_delete() {
    let t = env();
    // On pure cgroup v2 (the VM guests) the same with cgroup.freeze.
    let script = r#"set -e
if [ -e /sys/fs/cgroup/cgroup.controllers ]; then
  c=/sys/fs/cgroup/ice/cold
  mkdir -p $c
  sleep 1002 &
  echo $! > $c/cgroup.procs
  echo 1 > $c/cgroup.freeze
  while ! grep -qx 'frozen 1' $c/cgroup.events; do sleep 0.05; done
else
  c=/sys/fs/cgroup/freezer/ice/cold
  mkdir -p $c
  sleep 1002 &
  echo $! > $c/cgroup.procs
  echo FROZEN > $c/freezer.state
  while [ "$(cat $c/freezer.state)" != FROZEN ]; do sleep 0.05; done
fi
touch /shared/ready
exec sleep 1000
"#;
    let (id, dirs) = start_cgroup_owner(&t, script, "");
    let k = t.k();
    let cold = own_dir(&t, &id, "freezer", &dirs).join("ice/cold");
    if cold.join("freezer.state").exists() {
        assert_eq!(read(&cold, "freezer.state"), "FROZEN");
    } else {
        assert_eq!(read(&cold, "cgroup.freeze"), "1");
    }
    let frozen: Vec<i64> = read(&cold, "cgroup.procs")
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert_eq!(frozen.len(), 1, "{}: {frozen:?}", cold.display());
    let frozen = frozen[0];
    assert!(pid_alive(frozen), "frozen process {frozen} is not running");

    let ps = k.run(&["ps", "--format", "json", &id]);
    let pids: Vec<i64> = serde_json::from_str(ps.ok().stdout.trim()).expect("pid array");
    assert!(pids.contains(&frozen), "{pids:?} lacks the frozen {frozen}");
    let del = k.run(&["delete", "--force", &id]);
    assert_deleted(&t, &id, &dirs, &del);
    assert!(
        wait_for(Duration::from_secs(5), || (!pid_alive(frozen))
            .then_some(()))
        .is_some(),
        "the process the container froze ({frozen}) survived delete --force"
    );
}
