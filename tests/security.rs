//! Process privileges as seen from inside a real container: capability sets,
//! no_new_privs, rlimits, scheduler, I/O priority, personality, and the errors for
//! what cannot be granted.

mod common;

use common::*;
use serde_json::{json, Value};

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
        // Every set differs from the others. After execve as a non-root user with no
        // file capabilities the kernel makes permitted and effective the ambient set,
        // so inheritable is the one that stays distinct.
        c["process"]["capabilities"] = json!({
            "bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN"],
            "effective": ["CAP_NET_BIND_SERVICE"],
            "permitted": ["CAP_NET_BIND_SERVICE", "CAP_CHOWN"],
            "inheritable": ["CAP_NET_BIND_SERVICE", "CAP_KILL"],
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
    for f in ["CapEff", "CapPrm", "CapAmb"] {
        assert_eq!(status_field(&out, f), "0000000000000400", "{f}: {out}");
    }
    assert_eq!(status_field(&out, "CapInh"), "0000000000000420", "{out}");
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
        "grep ^policy /proc/self/sched; cat /proc/self/personality; uname -m; ionice; \
         cut -d' ' -f19 /proc/self/stat",
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
    // ioprio_get(IOPRIO_WHO_PROCESS, 0), inherited by the ionice child.
    assert_eq!(l[3], "best-effort: prio 5", "{l:?}");
    // Field 19 of /proc/<pid>/stat is the nice value.
    assert_eq!(l[4], "3", "{l:?}");
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
        .stderr_has("linux.uidMappings[0].size");
    t.assert_clean();
}

/// `create` of `b` must fail naming `needles`; then the id is unknown and nothing is
/// left behind.
#[track_caller]
fn create_fails(t: &TestEnv, b: &Bundle, needles: &[&str]) {
    let o = t
        .k()
        .run(&["create", "--bundle", b.dir.to_str().unwrap(), &b.id]);
    o.fails();
    for n in needles {
        o.stderr_has(n);
    }
    assert!(
        !t.k().run(&["state", &b.id]).success(),
        "the refused container {} is known to `state`",
        b.id
    );
    t.assert_clean();
}

/// Sets that the kernel refuses fail `create` with the set named: ambient needs the
/// capability in permitted (and inheritable), effective must be within permitted.
#[test]
fn capability_sets_the_kernel_refuses_name_the_set() {
    let t = TestEnv::new();
    let cases = [
        (
            json!({
                "bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_NET_BIND_SERVICE"],
                "permitted": ["CAP_NET_BIND_SERVICE"],
                "inheritable": ["CAP_NET_BIND_SERVICE", "CAP_KILL"],
                "ambient": ["CAP_KILL"],
            }),
            vec!["process.capabilities.ambient: raise CAP_KILL"],
        ),
        (
            json!({
                "bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_KILL"],
                "permitted": ["CAP_NET_BIND_SERVICE"],
            }),
            vec!["process.capabilities: capset", "Operation not permitted"],
        ),
    ];
    for (caps, needles) in cases {
        let mut b = t.bundle(&["true"]);
        b.edit(|c| {
            c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
            c["process"]["capabilities"] = caps.clone();
        });
        create_fails(&t, &b, &needles);
    }
}

/// Every RLIMIT_* the runtime-spec names, each with its own soft and hard value, as
/// /proc/self/limits shows them inside the container.
#[test]
fn every_rlimit_is_applied() {
    // (name, /proc/self/limits row, hard, soft): distinct values, each hard limit
    // capped by the host's (this root may lack CAP_SYS_RESOURCE to raise one).
    const WANT: &[(&str, &str, libc::__rlimit_resource_t, u64, u64)] = &[
        ("RLIMIT_CPU", "Max cpu time", libc::RLIMIT_CPU, 7_000, 7_001),
        (
            "RLIMIT_FSIZE",
            "Max file size",
            libc::RLIMIT_FSIZE,
            4_000_002,
            4_000_003,
        ),
        (
            "RLIMIT_DATA",
            "Max data size",
            libc::RLIMIT_DATA,
            900_000_004,
            900_000_005,
        ),
        (
            "RLIMIT_STACK",
            "Max stack size",
            libc::RLIMIT_STACK,
            9_000_006,
            9_000_007,
        ),
        ("RLIMIT_CORE", "Max core file size", libc::RLIMIT_CORE, 8, 9),
        (
            "RLIMIT_RSS",
            "Max resident set",
            libc::RLIMIT_RSS,
            800_000_010,
            800_000_011,
        ),
        (
            "RLIMIT_NPROC",
            "Max processes",
            libc::RLIMIT_NPROC,
            5_012,
            5_013,
        ),
        (
            "RLIMIT_NOFILE",
            "Max open files",
            libc::RLIMIT_NOFILE,
            514,
            1_015,
        ),
        (
            "RLIMIT_MEMLOCK",
            "Max locked memory",
            libc::RLIMIT_MEMLOCK,
            65_536,
            131_072,
        ),
        (
            "RLIMIT_AS",
            "Max address space",
            libc::RLIMIT_AS,
            2_000_000_018,
            2_000_000_019,
        ),
        ("RLIMIT_LOCKS", "Max file locks", libc::RLIMIT_LOCKS, 20, 21),
        (
            "RLIMIT_SIGPENDING",
            "Max pending signals",
            libc::RLIMIT_SIGPENDING,
            222,
            223,
        ),
        (
            "RLIMIT_MSGQUEUE",
            "Max msgqueue size",
            libc::RLIMIT_MSGQUEUE,
            24_576,
            25_000,
        ),
        (
            "RLIMIT_NICE",
            "Max nice priority",
            libc::RLIMIT_NICE,
            26,
            27,
        ),
        (
            "RLIMIT_RTPRIO",
            "Max realtime priority",
            libc::RLIMIT_RTPRIO,
            28,
            29,
        ),
        (
            "RLIMIT_RTTIME",
            "Max realtime timeout",
            libc::RLIMIT_RTTIME,
            30_000,
            31_000,
        ),
    ];
    let t = TestEnv::new();
    let mut rlimits = Vec::new();
    let mut expect = Vec::new();
    for &(name, row, res, soft, hard) in WANT {
        let mut host = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(unsafe { libc::getrlimit(res, &mut host) }, 0, "{name}");
        let hard = hard.min(host.rlim_max);
        let soft = soft.min(hard);
        rlimits.push(json!({"type": name, "soft": soft, "hard": hard}));
        expect.push((name, row, soft, hard));
    }
    // cat is the init itself: no fork, so RLIMIT_NPROC does not get in the way.
    let mut b = t.bundle(&["cat", "/proc/self/limits"]);
    b.edit(|c| c["process"]["rlimits"] = json!(rlimits));
    let o = t.run(&b);
    o.ok();
    let out = o.stdout_now();
    for (name, row, soft, hard) in expect {
        let line = out
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("no {row:?} row: {out}"));
        let got: Vec<&str> = line[row.len()..].split_whitespace().take(2).collect();
        assert_eq!(got, [soft.to_string(), hard.to_string()], "{name}: {line}");
    }
    t.assert_clean();
}

/// The host's online NUMA nodes (/sys/devices/system/node/online, e.g. "0" or "0-1,3").
fn online_nodes() -> Vec<u32> {
    let s = std::fs::read_to_string("/sys/devices/system/node/online")
        .expect("read /sys/devices/system/node/online");
    let mut nodes = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        nodes.extend(a.parse::<u32>().unwrap()..=b.parse::<u32>().unwrap());
    }
    assert!(!nodes.is_empty(), "no online NUMA node: {s:?}");
    nodes
}

/// A static helper printing the calling task's policy from get_mempolicy(2), as
/// `mode=<mode|flags> nodes=<first mask word, hex>` (busybox cannot show it:
/// /proc/<pid>/numa_maps shows per-VMA policies only).
fn build_mempolicy_probe(t: &TestEnv, dest: &std::path::Path) {
    let src = t.dir("mempolicy").join("m.c");
    std::fs::write(
        &src,
        r#"#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void) {
    int mode = -1;
    unsigned long mask[16] = {0};
    if (syscall(SYS_get_mempolicy, &mode, mask, 8 * sizeof mask, 0, 0) != 0) {
        perror("get_mempolicy");
        return 1;
    }
    printf("mode=%d nodes=%lx\n", mode, mask[0]);
    return 0;
}
"#,
    )
    .unwrap();
    compile_static(&src, dest);
}

#[test]
fn memory_policy_is_applied() {
    let t = TestEnv::new();
    let nodes = online_nodes();
    // A node this host does not have: set_mempolicy itself refuses it (EINVAL).
    let beyond = nodes.iter().max().unwrap() + 1;
    let mut b = t.bundle(&["true"]);
    b.edit(|c| {
        c["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": beyond.to_string()})
    });
    create_fails(
        &t,
        &b,
        &["linux.memoryPolicy: set_mempolicy", "Invalid argument"],
    );

    let node = nodes[0];
    assert!(
        node < 64,
        "first online node {node} is past the first mask word"
    );
    let mask = format!("{:x}", 1u64 << node);
    let mut b = t.bundle(&["/mempolicy"]);
    build_mempolicy_probe(&t, &b.rootfs.join("mempolicy"));
    let n = node.to_string();
    // MPOL_BIND 2, MPOL_PREFERRED 1, MPOL_INTERLEAVE 3, MPOL_LOCAL 4;
    // MPOL_F_STATIC_NODES is 1 << 15. No policy: MPOL_DEFAULT 0, no nodes.
    for (policy, want) in [
        (Value::Null, "mode=0 nodes=0".to_string()),
        (
            json!({"mode": "MPOL_BIND", "nodes": n}),
            format!("mode=2 nodes={mask}"),
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": n, "flags": ["MPOL_F_STATIC_NODES"]}),
            format!("mode=32770 nodes={mask}"),
        ),
        (
            json!({"mode": "MPOL_PREFERRED", "nodes": n}),
            format!("mode=1 nodes={mask}"),
        ),
        (
            json!({"mode": "MPOL_INTERLEAVE", "nodes": n}),
            format!("mode=3 nodes={mask}"),
        ),
        (json!({"mode": "MPOL_LOCAL"}), "mode=4 nodes=0".to_string()),
    ] {
        b.edit(|c| match &policy {
            Value::Null => {
                c["linux"].as_object_mut().unwrap().remove("memoryPolicy");
            }
            p => c["linux"]["memoryPolicy"] = p.clone(),
        });
        let o = t.run(&b);
        o.ok();
        assert_eq!(o.stdout_now().trim(), want, "{policy}");
    }
    t.assert_clean();
}

/// Without SELinux, a `process.selinuxLabel` is refused, as runc refuses it (the
/// process would otherwise run unconfined), and nothing is left behind.
/// `linux.mountLabel` is ignored: the container runs and no mount gets a context=
/// option (runc passes context= to the kernel, which then refuses the /dev tmpfs).
#[test]
fn selinux_label_refused_and_mount_label_ignored_without_selinux() {
    if kraal::process::attrs::selinux_enabled() {
        eprintln!("SELinux is enabled here: this test is about hosts without it");
        return;
    }
    let t = TestEnv::new();
    let mut b = t.bundle(&["true"]);
    b.edit(|c| {
        c["process"]["selinuxLabel"] = json!("system_u:system_r:container_t:s0:c1,c2");
    });
    create_fails(
        &t,
        &b,
        &[
            "process.selinuxLabel",
            "SELinux is not enabled on this host",
        ],
    );
    let mut b = t.bundle(&["cat", "/proc/self/mountinfo"]);
    b.edit(|c| {
        c["linux"]["mountLabel"] = json!("system_u:object_r:container_file_t:s0:c1,c2");
    });
    let o = t.run(&b);
    o.ok();
    let out = o.stdout_now();
    // The mounts a label would decorate are there (tmpfs /dev, /dev/shm, mqueue).
    for (point, fstype) in [
        ("/dev", "tmpfs"),
        ("/dev/shm", "tmpfs"),
        ("/dev/mqueue", "mqueue"),
    ] {
        assert!(
            out.lines().any(|l| l.split(' ').nth(4) == Some(point)
                && l.contains(&format!(" - {fstype} "))),
            "no {fstype} at {point}: {out}"
        );
    }
    assert!(!out.contains("context="), "{out}");
    t.assert_clean();
}

/// In a user namespace mknod is refused: /dev/null, /dev/zero, /dev/full and a
/// linux.devices entry are the host's nodes bound in, and a fresh sysfs is readable.
#[test]
fn user_namespace_devices_and_sysfs_are_usable() {
    let t = TestEnv::new();
    let base = 400_000 + (t.n as u32 % 100) * 65_536;
    let mut b = t.bundle(&[
        "sh",
        "-c",
        "stat -c '%t:%T' /dev/null /dev/zero /dev/full /dev/kmsg; echo x > /dev/null && echo null-ok; \
         head -c1 /dev/zero | wc -c; head -c1 /dev/full | wc -c; \
         ls /sys/kernel >/dev/null && echo sysfs-ok; \
         grep -c ' /sys .* - sysfs ' /proc/self/mountinfo",
    ]);
    b.user_namespace(base);
    b.edit(|c| {
        // A new device, and one of the default devices listed again (the entry
        // replaces the default, as with runc).
        c["linux"]["devices"] = json!([
            {"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11,
             "fileMode": 0o644, "uid": 0, "gid": 0},
            {"path": "/dev/full", "type": "c", "major": 1, "minor": 7,
             "fileMode": 0o666, "uid": 0, "gid": 0}]);
    });
    let o = t.run(&b);
    o.ok();
    let out = o.stdout_now();
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(
        lines,
        // stat prints major:minor in hex.
        ["1:3", "1:5", "1:7", "1:b", "null-ok", "1", "1", "sysfs-ok", "1"],
        "{out}"
    );
    t.assert_clean();
}

/// A user namespace and a time namespace together: the init writes its clock offsets
/// after entering the user namespace, where a non-dumpable process may not open its
/// own /proc files (the offsets file is opened before). exec joins both.
#[test]
fn user_and_time_namespaces_together() {
    let t = TestEnv::new();
    let base = 400_000 + (t.n as u32 % 100) * 65_536;
    let mut b = t.bundle(&["sh", "-c", "cat /proc/self/timens_offsets; exec sleep 300"]);
    b.user_namespace(base);
    b.edit(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.push(json!({"type": "time"}));
        c["linux"]["timeOffsets"] = json!({"monotonic": {"secs": 7}, "boottime": {"secs": 3600}});
    });
    t.create_start(&b);
    let o = t.k().run(&[
        "exec",
        &b.id,
        "sh",
        "-c",
        "cat /proc/self/timens_offsets /proc/self/uid_map",
    ]);
    o.ok();
    let words: Vec<Vec<String>> = o
        .stdout_lines()
        .iter()
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect();
    let has = |l: &[&str]| words.iter().any(|w| w == l);
    assert!(has(&["monotonic", "7", "0"]), "{words:?}");
    assert!(has(&["boottime", "3600", "0"]), "{words:?}");
    assert!(has(&["0", &base.to_string(), "65536"]), "{words:?}");
    t.k().run(&["delete", "--force", &b.id]).ok();
    t.assert_clean();
}

/// `exec` into a user-namespace container must not hand the caller's supplementary
/// groups to the new process. The container decides what its /proc shows: here it
/// covers /proc with a tmpfs claiming setgroups is "deny". kraal used to believe it,
/// skip setgroups, and leave the caller's host groups (seen as nogroup inside, still
/// effective on host files). Now the groups are dropped before joining the user
/// namespace, and nothing is read from the container's /proc to decide.
#[test]
fn exec_drops_the_callers_groups_whatever_the_containers_proc_says() {
    let t = TestEnv::new();
    let mut b = t.bundle(&[
        "sh",
        "-c",
        "mount -t tmpfs fake /proc && mkdir /proc/self && echo deny > /proc/self/setgroups \
         && echo ready > /proc/ready; sleep 300",
    ]);
    b.user_namespace(200000).edit(|c| {
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_SYS_ADMIN"));
        }
    });
    t.create_start(&b);
    let ready = wait_for(WAIT_TIMEOUT, || {
        let o = t.k().run(&["exec", &b.id, "cat", "/proc/ready"]);
        (o.success() && o.stdout_now().contains("ready")).then_some(())
    });
    assert!(ready.is_some(), "the container never covered its /proc");
    // kraal runs with host group 6 (disk) besides root's own.
    let mut cmd = std::process::Command::new("setpriv");
    cmd.args(["--groups", "6", "--"])
        .arg(kraal_bin())
        .arg("--root")
        .arg(&t.k().root)
        .args(["exec", "--user", "1000:1000", &b.id, "id", "-G"]);
    let o = t.k().exec(cmd);
    o.ok();
    assert_eq!(
        o.stdout_lines(),
        ["1000"],
        "the exec'd process kept the caller's groups: {o:?}"
    );
    t.k().run(&["delete", "--force", &b.id]).ok();
    t.assert_clean();
}

/// What kraal writes as root in shared places, and the state it trusts, found by
/// an attacker's read of the first fixes: a log file another user made first in a
/// sticky directory is refused (their file would collect kraal's lines, their FIFO
/// could block every write); a state root under a directory others may write is
/// refused (they could swap the checked root for a forged one); a container's own
/// state directory is private when it has no user namespace (exec.fifo and the
/// notify socket are reachable by nobody but kraal and the container).
#[test]
fn shared_places_kraal_writes_or_trusts_are_checked() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let t = TestEnv::new();
    // A sticky, world-writable directory like /tmp, with another user's file in it.
    let shared = t.dir("sticky");
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let log = shared.join("kraal.log");
    std::fs::write(&log, "theirs\n").unwrap();
    std::os::unix::fs::chown(&log, Some(65534), Some(65534)).unwrap();
    let o = t.k().run(&["--log", log.to_str().unwrap(), "list"]);
    o.fails().stderr_has("owned by uid 65534");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "theirs\n");
    // A state root whose parent anyone may write (and is not sticky).
    let open = t.dir("open-parent");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let root = open.join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut cmd = std::process::Command::new(kraal_bin());
    cmd.arg("--root").arg(&root).arg("list");
    let o = t.k().exec(cmd);
    o.fails()
        .stderr_has(&format!("{} above it", open.display()));
    // Without a user namespace, the container's state directory is kraal's alone.
    let b = t.bundle(&["sleep", "30"]);
    t.create(&b);
    let md = std::fs::metadata(t.k().root.join(&b.id)).unwrap();
    assert_eq!(md.mode() & 0o777, 0o700, "state dir of {}", b.id);
    t.k().run(&["delete", "--force", &b.id]).ok();
    t.assert_clean();
}
