//! Process privileges as seen from inside a real container: capability sets,
//! no_new_privs, rlimits, scheduler, I/O priority, personality, and the errors for
//! what cannot be granted.

mod common;

use common::*;
use serde_json::json;

fn status_field(out: &str, field: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

#[test]
fn capability_sets_no_new_privs_and_rlimits() {
    let t = TestEnv::new();
    let mut b = t.bundle(&[
        "sh",
        "-c",
        "cat /proc/self/status; echo nofile=$(ulimit -n)",
    ]);
    b.edit(|c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        c["process"]["capabilities"] = json!({
            "bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN"],
            "effective": ["CAP_NET_BIND_SERVICE"],
            "permitted": ["CAP_NET_BIND_SERVICE"],
            "inheritable": ["CAP_NET_BIND_SERVICE"],
            "ambient": ["CAP_NET_BIND_SERVICE"],
        });
        c["process"]["noNewPrivileges"] = json!(true);
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 321, "hard": 654}]);
    });
    let o = t.run(&b);
    o.ok();
    let out = o.stdout_now();
    // CAP_CHOWN=0, CAP_KILL=5, CAP_NET_BIND_SERVICE=10.
    assert_eq!(status_field(&out, "CapBnd"), "0000000000000421", "{out}");
    for f in ["CapEff", "CapPrm", "CapInh", "CapAmb"] {
        assert_eq!(status_field(&out, f), "0000000000000400", "{f}: {out}");
    }
    assert_eq!(status_field(&out, "NoNewPrivs"), "1");
    assert!(out.contains("nofile=321"), "{out}");
    t.assert_clean();
}

#[test]
fn root_without_capabilities_has_none() {
    let t = TestEnv::new();
    let mut b = t.bundle(&["sh", "-c", "grep -E '^Cap(Eff|Bnd|Inh)' /proc/self/status; echo x > /proc/sys/kernel/hostname || echo denied"]);
    b.edit(|c| {
        c["process"]["capabilities"] = json!({});
        c["process"]["noNewPrivileges"] = json!(false);
    });
    let o = t.run(&b);
    o.ok();
    let out = o.stdout_now();
    assert_eq!(status_field(&out, "CapEff"), "0000000000000000", "{out}");
    assert_eq!(status_field(&out, "CapBnd"), "0000000000000000", "{out}");
    assert_eq!(status_field(&out, "CapInh"), "0000000000000000", "{out}");
    t.assert_clean();
}

#[test]
fn scheduler_io_priority_and_personality() {
    let t = TestEnv::new();
    let mut b = t.bundle(&[
        "sh",
        "-c",
        "grep ^policy /proc/self/sched; cat /proc/self/personality; uname -m",
    ]);
    b.edit(|c| {
        c["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 3});
        c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 5});
        c["linux"]["personality"] = json!({"domain": "LINUX32"});
    });
    let o = t.run(&b);
    o.ok();
    let l = o.stdout_lines();
    assert!(l[0].ends_with(" 3"), "SCHED_BATCH is policy 3: {l:?}");
    assert_eq!(l[1], "00000008");
    assert_eq!(l[2], "i686");
    t.assert_clean();
}

#[test]
fn unknown_capability_rlimit_and_unavailable_apparmor_fail_clearly() {
    let t = TestEnv::new();
    let cases: Vec<(serde_json::Value, &str)> =
        vec![(json!({"bounding": ["CAP_NOT_A_CAP"]}), "CAP_NOT_A_CAP")];
    for (caps, needle) in cases {
        let mut b = t.bundle(&["true"]);
        b.edit(|c| c["process"]["capabilities"] = caps.clone());
        t.k()
            .run(&["create", "--bundle", b.dir.to_str().unwrap(), &b.id])
            .fails()
            .stderr_has(needle)
            .stderr_has("capabilities");
    }
    let mut b = t.bundle(&["true"]);
    b.edit(|c| c["process"]["rlimits"] = json!([{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]));
    t.k()
        .run(&["create", "--bundle", b.dir.to_str().unwrap(), &b.id])
        .fails()
        .stderr_has("RLIMIT_BOGUS");
    if !kraal::process::attrs::apparmor_enabled() {
        let mut b = t.bundle(&["true"]);
        b.edit(|c| c["process"]["apparmorProfile"] = json!("docker-default"));
        t.k()
            .run(&["create", "--bundle", b.dir.to_str().unwrap(), &b.id])
            .fails()
            .stderr_has("process.apparmorProfile: AppArmor is not enabled");
    }
    let mut b = t.bundle(&["true"]);
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 0}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 10}]);
    });
    t.k()
        .run(&["create", "--bundle", b.dir.to_str().unwrap(), &b.id])
        .fails()
        .stderr_has("uidMappings");
    t.assert_clean();
}
