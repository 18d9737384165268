//! A non-root user runs a container: `kraal spec --rootless`, then `kraal run`, with
//! state under $XDG_RUNTIME_DIR, its own ids mapped to root inside, no cgroups.

mod common;

use common::*;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

/// A throwaway system user, removed when dropped (on failure too).
struct TempUser {
    name: String,
    uid: u32,
}

impl TempUser {
    fn new(tag: u64) -> TempUser {
        let name = format!("krl{}x{tag}", std::process::id() % 100_000);
        let st = Command::new("useradd")
            .args(["-M", "-d", "/nonexistent", "-s", "/bin/false", &name])
            .status()
            .expect("run useradd");
        assert!(st.success(), "useradd {name}");
        let out = Command::new("id")
            .args(["-u", &name])
            .output()
            .expect("id -u");
        let uid = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("uid");
        TempUser { name, uid }
    }
}

impl Drop for TempUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).status();
    }
}

#[test]
fn unprivileged_user_runs_a_container() {
    let t = TestEnv::new();
    let user = TempUser::new(t.n);
    let home = t.dir("rootless");
    let bundle = home.join("bundle");
    build_rootfs(&bundle.join("rootfs"));
    let runtime_dir = home.join("xdg");
    std::fs::create_dir_all(&runtime_dir).unwrap();
    let st = Command::new("chown")
        .args(["-R", &format!("{0}:{0}", user.uid), home.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
    let as_user = |args: &[&str]| {
        let mut c = Command::new(kraal_bin());
        c.args(args)
            .current_dir(&bundle)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("XDG_RUNTIME_DIR", &runtime_dir)
            .uid(user.uid)
            .gid(user.uid);
        run_timeout(&mut c, Duration::from_secs(30), &t.dir("io"))
    };
    as_user(&["spec", "--rootless"]).ok();
    let cfg = bundle.join("config.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    v["process"]["terminal"] = serde_json::json!(false);
    v["root"]["readonly"] = serde_json::json!(false);
    v["process"]["args"] = serde_json::json!([
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map; touch /tmp/by-user; echo done; \
          (touch /sys/fs/cgroup/x || mkdir /sys/fs/cgroup/pids/x) 2>/dev/null && echo cgroup-writable || echo cgroup-ro"
    ]);
    std::fs::write(&cfg, serde_json::to_vec(&v).unwrap()).unwrap();
    let id = t.new_id();
    let o = as_user(&["run", &id]);
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
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(bundle.join("rootfs/tmp/by-user"))
            .unwrap()
            .uid(),
        user.uid
    );
    // State lived under $XDG_RUNTIME_DIR/kraal and is gone after run.
    let state_root = runtime_dir.join("kraal");
    assert!(state_root.is_dir());
    assert_eq!(std::fs::read_dir(&state_root).unwrap().count(), 0);
    t.assert_clean();
}
