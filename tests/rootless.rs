//! A non-root user runs a container: `kraal spec --rootless`, then `kraal run`, with
//! state under $XDG_RUNTIME_DIR, its own ids mapped to root inside (or a subordinate
//! range through newuidmap/newgidmap), no cgroups.
//!
//! Each test makes a throwaway user with `useradd` and removes it with `userdel`, on
//! failure too: first `kraal delete --force` (as the user) for every container the test
//! made, then any process still running under the user's ids is killed by its pid.

mod common;

use common::*;
use serde_json::{json, Value};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

/// useradd and userdel lock /etc/passwd: one at a time in this binary.
static USERDB: Mutex<()> = Mutex::new(());

/// Runs useradd/userdel, retrying while another process holds the user database lock.
fn user_db(args: &[&str]) -> Result<(), String> {
    let _g = USERDB.lock().unwrap_or_else(|e| e.into_inner());
    let mut last = String::new();
    for _ in 0..50 {
        let out = Command::new(args[0])
            .args(&args[1..])
            .output()
            .map_err(|e| format!("run {}: {e}", args[0]))?;
        if out.status.success() {
            return Ok(());
        }
        last = format!(
            "{args:?}: {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        if !last.contains("lock") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(last)
}

/// The first subordinate range of `user` in /etc/subuid or /etc/subgid.
fn subordinate(file: &str, user: &str) -> (u32, u32) {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    text.lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() == 3 && f[0] == user).then(|| (f[1].parse().unwrap(), f[2].parse().unwrap()))
        })
        .unwrap_or_else(|| panic!("{user} has no range in {file}: {text}"))
}

fn id_of(flag: &str, user: &str) -> u32 {
    let out = Command::new("id")
        .args([flag, user])
        .output()
        .expect("run id");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("id {flag} {user}: {out:?}"))
}

/// A throwaway user (with its own group and, from useradd, subordinate uid and gid
/// ranges), removed when dropped (on failure too).
struct TempUser {
    name: String,
    uid: u32,
    gid: u32,
    subuid: (u32, u32),
    subgid: (u32, u32),
}

impl TempUser {
    fn new(tag: u64) -> TempUser {
        let name = format!("krl{}x{tag}", std::process::id() % 100_000);
        user_db(&[
            "useradd",
            "-M",
            "-d",
            "/nonexistent",
            "-s",
            "/bin/false",
            &name,
        ])
        .unwrap_or_else(|e| panic!("useradd: {e}"));
        // From here on Drop removes the user, whatever fails next.
        let mut u = TempUser {
            name,
            uid: 0,
            gid: 0,
            subuid: (0, 0),
            subgid: (0, 0),
        };
        let uid = id_of("-u", &u.name);
        assert_ne!(uid, 0, "{} got uid 0", u.name);
        u.uid = uid;
        u.gid = id_of("-g", &u.name);
        u.subuid = subordinate("/etc/subuid", &u.name);
        u.subgid = subordinate("/etc/subgid", &u.name);
        u
    }

    /// Pids of processes whose real or effective uid is the user's or in its
    /// subordinate range: only this test's containers can run as those.
    fn processes(&self) -> Vec<i32> {
        if self.uid == 0 {
            return Vec::new(); // Not known yet (or never): match nothing.
        }
        let ours = |id: u32| {
            id == self.uid || (self.subuid.0..self.subuid.0 + self.subuid.1).contains(&id)
        };
        let mut pids = Vec::new();
        let Ok(rd) = std::fs::read_dir("/proc") else {
            return pids;
        };
        for e in rd.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
            let uids: Vec<u32> = status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|v| {
                    v.split_whitespace()
                        .filter_map(|n| n.parse().ok())
                        .collect()
                })
                .unwrap_or_default();
            if uids.iter().take(2).any(|&u| ours(u)) {
                pids.push(pid);
            }
        }
        pids
    }
}

impl Drop for TempUser {
    fn drop(&mut self) {
        // userdel refuses a user with running processes: end ours first, by pid.
        let gone = wait_for(WAIT_TIMEOUT, || {
            let pids = self.processes();
            for &p in &pids {
                // SAFETY: kill(2) on a pid running as the throwaway user's ids.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            pids.is_empty().then_some(())
        });
        if gone.is_none() {
            eprintln!("processes of {} survive: {:?}", self.name, self.processes());
        }
        if let Err(e) = user_db(&["userdel", &self.name]) {
            eprintln!("cleanup: {e}");
        }
    }
}

/// A throwaway user with a bundle, an $XDG_RUNTIME_DIR and the ids of the containers it
/// made. Dropping it deletes those containers as the user, then removes the user.
struct Rootless {
    bundle: PathBuf,
    runtime_dir: PathBuf,
    io: PathBuf,
    ids: Mutex<Vec<String>>,
    // Last: dropped after Rootless::drop has deleted the containers.
    user: TempUser,
}

impl Rootless {
    /// The user, and a busybox bundle with the config `kraal spec --rootless` writes
    /// for it (with terminal off and a writable root), all owned by the user.
    fn new(t: &TestEnv) -> Rootless {
        let user = TempUser::new(t.n);
        let home = t.dir("rootless");
        let r = Rootless {
            bundle: home.join("bundle"),
            runtime_dir: home.join("xdg"),
            io: t.dir("io"),
            ids: Mutex::new(Vec::new()),
            user,
        };
        build_rootfs(&r.bundle.join("rootfs"));
        std::fs::create_dir_all(&r.runtime_dir).unwrap();
        let owner = format!("{}:{}", r.user.uid, r.user.gid);
        let st = Command::new("chown")
            .args(["-R", &owner, home.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(st.success());
        r.kraal(&["spec", "--rootless"]).ok();
        r.edit(|v| {
            v["process"]["terminal"] = json!(false);
            v["root"]["readonly"] = json!(false);
        });
        r
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(kraal_bin());
        c.args(args)
            .current_dir(&self.bundle)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("XDG_RUNTIME_DIR", &self.runtime_dir)
            .uid(self.user.uid)
            .gid(self.user.gid);
        c
    }

    /// Runs kraal as the user, in the bundle directory.
    #[track_caller]
    fn kraal(&self, args: &[&str]) -> Out {
        run_timeout(&mut self.command(args), CMD_TIMEOUT, &self.io)
    }

    fn edit(&self, f: impl FnOnce(&mut Value)) {
        let cfg = self.bundle.join("config.json");
        let mut v: Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
        f(&mut v);
        std::fs::write(&cfg, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    }

    /// A container id, remembered for cleanup.
    fn new_id(&self, t: &TestEnv) -> String {
        let id = t.new_id();
        self.ids.lock().unwrap().push(id.clone());
        id
    }

    /// The user's state root: $XDG_RUNTIME_DIR/kraal.
    fn state_root(&self) -> PathBuf {
        self.runtime_dir.join("kraal")
    }

    /// Nothing of the user's is left: no container state, no process.
    #[track_caller]
    fn assert_clean(&self) {
        let left: Vec<_> = std::fs::read_dir(self.state_root())
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(
            left.is_empty(),
            "state left under $XDG_RUNTIME_DIR: {left:?}"
        );
        let procs = self.user.processes();
        assert!(procs.is_empty(), "processes left: {procs:?}");
    }
}

impl Drop for Rootless {
    fn drop(&mut self) {
        let mut ids = self.ids.lock().map(|v| v.clone()).unwrap_or_default();
        if let Ok(rd) = std::fs::read_dir(self.state_root()) {
            for e in rd.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        for id in &ids {
            let _ = try_run(
                &mut self.command(&["delete", "--force", id]),
                CMD_TIMEOUT,
                &self.io,
            );
        }
    }
}

/// The cgroup a container without cgroupsPath would get, in every hierarchy.
fn default_cgroup_dirs(id: &str) -> Vec<PathBuf> {
    kraal::cgroups::hierarchies()
        .unwrap()
        .iter()
        .filter_map(|h| kraal::cgroups::container_dir(h, None, id).ok())
        .collect()
}

fn owner(p: &Path) -> (u32, u32) {
    let md = std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (md.uid(), md.gid())
}

#[test]
fn unprivileged_user_runs_a_container() {
    let t = TestEnv::new();
    let r = Rootless::new(&t);
    let user = &r.user;
    r.edit(|v| {
        v["process"]["args"] = json!([
            "sh",
            "-c",
            "id -u; cat /proc/self/uid_map; touch /tmp/by-user; echo done; \
              (touch /sys/fs/cgroup/x || mkdir /sys/fs/cgroup/pids/x) 2>/dev/null && echo cgroup-writable || echo cgroup-ro; \
              cat /proc/self/gid_map /proc/self/setgroups"
        ])
    });
    let id = r.new_id(&t);
    let o = r.kraal(&["run", &id]);
    o.ok();
    let l = o.stdout_lines();
    assert_eq!(l[0], "0", "{o:?}");
    assert_eq!(
        l[1].split_whitespace().collect::<Vec<_>>(),
        ["0", &user.uid.to_string(), "1"]
    );
    assert_eq!(l[2], "done");
    // CVE-2023-25809: the host's cgroups are not writable from a rootless container.
    assert_eq!(l[3], "cgroup-ro");
    assert_eq!(
        l[4].split_whitespace().collect::<Vec<_>>(),
        ["0", &user.gid.to_string(), "1"]
    );
    // Mapping only its own gid, an unprivileged user must deny setgroups first.
    assert_eq!(l[5], "deny", "{o:?}");
    assert_eq!(
        owner(&r.bundle.join("rootfs/tmp/by-user")),
        (user.uid, user.gid)
    );
    // No delegated cgroup: kraal says so, and runs without one.
    o.stderr_has("rootless: cgroups are not delegated to this user, running without them");
    for d in default_cgroup_dirs(&id) {
        assert!(!d.exists(), "cgroup {} was made", d.display());
    }
    // State lived under $XDG_RUNTIME_DIR/kraal and is gone after run.
    assert!(r.state_root().is_dir());
    r.assert_clean();
    t.assert_clean();
}

/// A map wider than the caller's own ids goes through newuidmap/newgidmap with the
/// user's ranges from /etc/subuid and /etc/subgid; a range outside them is refused
/// with the field named and nothing left behind.
#[test]
fn unprivileged_user_maps_a_range_via_newuidmap() {
    let t = TestEnv::new();
    let r = Rootless::new(&t);
    let user = &r.user;
    let (subuid, subgid) = (user.subuid.0, user.subgid.0);
    let maps = |uid_host: u32, gid_host: u32| {
        (
            json!([{"containerID": 0, "hostID": user.uid, "size": 1},
                   {"containerID": 1, "hostID": uid_host, "size": 65536}]),
            json!([{"containerID": 0, "hostID": user.gid, "size": 1},
                   {"containerID": 1, "hostID": gid_host, "size": 65536}]),
        )
    };
    let (uids, gids) = maps(subuid, subgid);
    r.edit(|v| {
        v["linux"]["uidMappings"] = uids;
        v["linux"]["gidMappings"] = gids;
        // chown needs CAP_CHOWN (in the container's user namespace).
        for set in ["bounding", "effective", "permitted"] {
            v["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_CHOWN"));
        }
        v["process"]["args"] = json!([
            "sh",
            "-c",
            "cat /proc/self/uid_map /proc/self/gid_map; touch /tmp/f; chown 1:1 /tmp/f && echo chowned"
        ]);
    });
    let id = r.new_id(&t);
    let o = r.kraal(&["run", &id]);
    o.ok();
    let words: Vec<Vec<String>> = o
        .stdout_lines()
        .iter()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    let line = |a: u32, b: u32, c: u32| vec![a.to_string(), b.to_string(), c.to_string()];
    assert_eq!(
        words,
        [
            line(0, user.uid, 1),
            line(1, subuid, 65536),
            line(0, user.gid, 1),
            line(1, subgid, 65536),
            vec!["chowned".to_string()],
        ],
        "{o:?}"
    );
    // Container ids 1:1 are the first subordinate ids on the host.
    assert_eq!(owner(&r.bundle.join("rootfs/tmp/f")), (subuid, subgid));
    r.assert_clean();

    // Ranges just past the user's: the helpers refuse them.
    for (field, helper, (uids, gids)) in [
        (
            "linux.uidMappings",
            "newuidmap",
            maps(subuid + user.subuid.1, subgid),
        ),
        (
            "linux.gidMappings",
            "newgidmap",
            maps(subuid, subgid + user.subgid.1),
        ),
    ] {
        r.edit(|v| {
            v["linux"]["uidMappings"] = uids;
            v["linux"]["gidMappings"] = gids;
        });
        let id = r.new_id(&t);
        let o = r.kraal(&["create", &id]);
        o.fails()
            .stderr_has(&format!("{field}: {helper} failed"))
            .stderr_has("not allowed");
        assert!(
            !r.kraal(&["state", &id]).success(),
            "{id} is known to state"
        );
        for d in default_cgroup_dirs(&id) {
            assert!(!d.exists(), "cgroup {} was made", d.display());
        }
        r.assert_clean();
    }
    t.assert_clean();
}

/// A state root another user could have made: it lays out a container whose
/// state.json carries a poststop hook, which the victim's `delete` would run as the
/// victim. kraal refuses a root it does not own, one that group or others may write,
/// and never falls back to a shared /tmp when $XDG_RUNTIME_DIR is unset.
#[test]
fn state_root_made_by_another_user_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let t = TestEnv::new();
    let r = Rootless::new(&t);
    let uid = r.user.uid;
    let marker = r.runtime_dir.join("hook-ran");
    let id = "forged";
    // The forged container: stopped (pid 0), with the attacker's poststop hook.
    let forge = |root: &Path, owner: u32, mode: u32| {
        let mut cfg: Value =
            serde_json::from_slice(&std::fs::read(r.bundle.join("config.json")).unwrap()).unwrap();
        cfg["hooks"] = json!({"poststop": [{"path": "/bin/sh",
            "args": ["sh", "-c", format!("touch {}", marker.display())]}]});
        let state = json!({"oci_version": "1.3.0", "id": id, "pid": 0, "init_start": 0,
            "bundle": r.bundle, "rootfs": r.bundle.join("rootfs"),
            "created": "2025-01-01T00:00:00Z", "config": cfg});
        std::fs::create_dir_all(root.join(id)).unwrap();
        std::fs::write(root.join(id).join("state.json"), state.to_string()).unwrap();
        for p in [root.to_path_buf(), root.join(id)] {
            std::os::unix::fs::chown(&p, Some(owner), Some(owner)).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    };
    // Made by another user (nobody), readable by all.
    let theirs = t.dir("roots").join("theirs");
    forge(&theirs, 65534, 0o755);
    let o = r.kraal(&["--root", theirs.to_str().unwrap(), "delete", id]);
    assert!(!marker.exists(), "the forged poststop hook ran: {o:?}");
    o.fails().stderr_has(&format!(
        "state root {} is owned by uid 65534",
        theirs.display()
    ));
    // The user's own, but anyone may write it.
    let open = t.dir("roots").join("open");
    forge(&open, uid, 0o777);
    let o = r.kraal(&["--root", open.to_str().unwrap(), "delete", id]);
    assert!(!marker.exists(), "the forged poststop hook ran: {o:?}");
    o.fails()
        .stderr_has(&format!("state root {} has mode 777", open.display()));
    // No $XDG_RUNTIME_DIR: the old fallback, /tmp/kraal-<uid>, made by another user.
    let tmp_root = PathBuf::from(format!("/tmp/kraal-{uid}"));
    assert!(!tmp_root.exists(), "{} exists already", tmp_root.display());
    let run_user = PathBuf::from(format!("/run/user/{uid}"));
    assert!(!run_user.exists(), "{} exists", run_user.display());
    {
        let p = tmp_root.clone();
        t.on_drop(move || {
            let _ = std::fs::remove_dir_all(&p);
        });
    }
    forge(&tmp_root, 65534, 0o755);
    let mut c = r.command(&["delete", id]);
    c.env_remove("XDG_RUNTIME_DIR");
    let o = run_timeout(&mut c, CMD_TIMEOUT, &r.io);
    assert!(!marker.exists(), "the forged poststop hook ran: {o:?}");
    o.fails()
        .stderr_has("XDG_RUNTIME_DIR is not set")
        .stderr_has("--root");
    // Looking into a missing root makes nothing; creating a container makes the
    // root, for the user alone.
    let fresh = r.runtime_dir.join("fresh-root");
    r.kraal(&["--root", fresh.to_str().unwrap(), "list"]).ok();
    assert!(!fresh.exists(), "list made {}", fresh.display());
    r.edit(|v| v["process"]["args"] = json!(["true"]));
    let cid = r.new_id(&t);
    r.kraal(&["--root", fresh.to_str().unwrap(), "run", &cid])
        .ok();
    let md = std::fs::metadata(&fresh).unwrap();
    assert_eq!((md.uid(), md.mode() & 0o7777), (uid, 0o700));
    t.assert_clean();
}

/// CVE-2023-25809 on v1/hybrid hosts: without a cgroup of its own, a rootless
/// container sees the host's /sys/fs/cgroup, and every hierarchy below it must be
/// read-only too, not only the top: here the user owns a cgroup in a v1 hierarchy
/// (as a logged-in user owns its session's), which it could otherwise change from
/// inside the container.
#[test]
fn rootless_v1_cgroup_hierarchies_are_read_only() {
    let t = TestEnv::new();
    let r = Rootless::new(&t);
    // A v1 hierarchy's cgroup the user owns: below this test's own cgroup parent.
    let Some(parent) = cgroup_parent_dirs(&t.cgroup_parent)
        .into_iter()
        .find(|d| d.starts_with("/sys/fs/cgroup/pids") || d.starts_with("/sys/fs/cgroup/memory"))
    else {
        eprintln!("no v1 pids or memory hierarchy on this host: nothing to test");
        return;
    };
    let owned = parent.join("user-owned");
    std::fs::create_dir_all(&owned).unwrap();
    let st = Command::new("chown")
        .args([
            "-R",
            &format!("{}:{}", r.user.uid, r.user.gid),
            owned.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let o = owned.to_str().unwrap().to_string();
    r.edit(|v| {
        v["process"]["args"] = json!([
            "sh",
            "-c",
            format!(
                "test -d {o} && echo visible; \
                 mkdir {o}/x 2>&1 && echo mkdir-ok; \
                 echo 1 > {o}/notify_on_release 2>/dev/null && echo write-ok || echo write-refused"
            )
        ])
    });
    let id = r.new_id(&t);
    let out = r.kraal(&["run", &id]);
    out.ok();
    let text = out.stdout_now();
    assert!(
        text.contains("visible"),
        "the host's cgroup is shown: {out:?}"
    );
    assert!(
        text.contains("Read-only file system") && !text.contains("mkdir-ok"),
        "a cgroup was created in the user's host hierarchy: {out:?}"
    );
    assert!(text.contains("write-refused"), "{out:?}");
    assert!(!owned.join("x").exists());
    r.assert_clean();
    drop(r);
    std::fs::remove_dir(&owned).unwrap();
    t.assert_clean();
}
