//! Namespaces and kernel settings that need more than a default config: network
//! devices moved in (runtime-spec 1.3 netDevices), time namespace offsets, user
//! namespaces with id mappings, sysctls, devices and domainname.

mod common;

use common::*;
use serde_json::json;
use std::process::Command;

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A host veth end is moved into the container under a new name with its address,
/// and leaves the host; when the container is gone nothing of it is left.
#[test]
fn net_device_moves_in_renamed_with_its_address() {
    let t = TestEnv::new();
    let host = format!("kt{}n{}", std::process::id() % 100_000, t.n);
    let peer = format!("{host}p");
    assert!(ip(&[
        "link", "add", &host, "type", "veth", "peer", "name", &peer
    ]));
    {
        let (h, p) = (host.clone(), peer.clone());
        t.on_drop(move || {
            let _ = Command::new("ip").args(["link", "del", &h]).status();
            let _ = Command::new("ip").args(["link", "del", &p]).status();
        });
    }
    assert!(ip(&["addr", "add", "10.231.7.1/24", "dev", &host]));
    let mut b = t.bundle(&[
        "sh",
        "-c",
        "ip -o addr show dev ceth0; ip -o link show dev ceth0",
    ]);
    let h = host.clone();
    b.edit(|c| c["linux"]["netDevices"] = json!({ h: { "name": "ceth0" } }));
    let o = t.run(&b);
    o.ok();
    let out = o.stdout_now();
    assert!(out.contains("inet 10.231.7.1/24"), "{out}");
    assert!(out.contains("ceth0") && out.contains(",UP"), "{out}");
    // The device left the host while the container had it; the veth is gone with
    // the container's network namespace (runtime-spec: no move back on delete).
    assert!(!ip(&["link", "show", "dev", &host]));
    t.assert_clean_strict();
}

/// netDevices naming a device the host does not have fails create, names it, and
/// leaves nothing behind.
#[test]
fn missing_net_device_is_named() {
    let t = TestEnv::new();
    let mut b = t.bundle(&["true"]);
    b.edit(|c| c["linux"]["netDevices"] = json!({ "nosuchdev0": {} }));
    let o = t
        .k()
        .run(&["create", "--bundle", b.dir.to_str().unwrap(), &b.id]);
    o.fails().stderr_has("nosuchdev0");
    t.assert_clean_strict();
}

/// linux.timeOffsets shift the container's boottime clock; the process is really in
/// the new time namespace (offsets visible in /proc/self/timens_offsets).
#[test]
fn time_namespace_offsets_apply() {
    let t = TestEnv::new();
    let mut b = t.bundle(&[
        "sh",
        "-c",
        "cut -d. -f1 /proc/uptime; cat /proc/self/timens_offsets",
    ]);
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "time"}));
        c["linux"]["timeOffsets"] =
            json!({"boottime": {"secs": 1_000_000}, "monotonic": {"secs": 7}});
    });
    let o = t.run(&b);
    o.ok();
    let lines = o.stdout_lines();
    let host_up: u64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let inside: u64 = lines[0].parse().unwrap();
    assert!(
        inside >= host_up + 1_000_000 - 5 && inside < host_up + 1_000_000 + 60,
        "{lines:?} vs {host_up}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["monotonic", "7", "0"]),
        "{lines:?}"
    );
    t.assert_clean_strict();
}

/// A new user namespace: uid 0 inside maps to the configured host id, files made
/// inside show the mapped owner on the host.
#[test]
fn user_namespace_maps_ids() {
    let t = TestEnv::new();
    let base = 200_000 + (t.n as u32 % 100) * 65_536;
    let mut b = t.bundle(&[
        "sh",
        "-c",
        "cat /proc/self/uid_map; id -u; touch /tmp/made-inside",
    ]);
    b.user_namespace(base);
    let o = t.run(&b);
    o.ok();
    let lines = o.stdout_lines();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["0", &base.to_string(), "65536"]
    );
    assert_eq!(lines[1], "0");
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(b.rootfs.join("tmp/made-inside")).unwrap();
    assert_eq!((md.uid(), md.gid()), (base, base));
    t.assert_clean_strict();
}

/// sysctls, a linux.devices node with its mode and owner, and the domainname.
#[test]
fn sysctl_devices_and_domainname() {
    let t = TestEnv::new();
    let mut b = t.bundle(&[
        "sh",
        "-c",
        "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax; stat -c '%t:%T %a %u:%g' /dev/kdev; cat /proc/sys/kernel/domainname",
    ]);
    b.edit(|c| {
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1", "kernel.shmmax": "4242"});
        c["linux"]["devices"] = json!([{"path": "/dev/kdev", "type": "c", "major": 1, "minor": 5, "fileMode": 0o640, "uid": 7, "gid": 8}]);
        c["domainname"] = json!("kraal.test");
    });
    let o = t.run(&b);
    o.ok();
    assert_eq!(o.stdout_lines(), ["1", "4242", "1:5 640 7:8", "kraal.test"]);
    t.assert_clean_strict();
}

/// An id-mapped bind mount shows the source's files with mapped owners; the host
/// files keep theirs.
#[test]
fn idmapped_bind_mount_maps_ownership() {
    let t = TestEnv::new();
    let src = t.dir("idsrc");
    std::fs::write(src.join("f"), b"x").unwrap();
    let mut b = t.bundle(&["stat", "-c", "%u:%g", "/mnt/id/f"]);
    let s = src.to_str().unwrap().to_string();
    b.edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/mnt/id", "type": "bind", "source": s, "options": ["bind"],
            "uidMappings": [{"containerID": 0, "hostID": 4242, "size": 1}],
            "gidMappings": [{"containerID": 0, "hostID": 4343, "size": 1}],
        }));
    });
    let o = t.run(&b);
    o.ok();
    assert_eq!(o.stdout_lines(), ["4242:4343"]);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(src.join("f")).unwrap().uid(), 0);
    t.assert_clean_strict();
}

/// Without a mount namespace (runtime-spec: inherited), the container's mounts live
/// in the runtime's namespace below its rootfs, it is entered with chroot, and
/// delete detaches them all.
#[test]
fn no_mount_namespace_mounts_in_host_and_cleans_up() {
    let t = TestEnv::new();
    let mut b = t.bundle(&[
        "sh",
        "-c",
        "ls /proc/self/ns/mnt && cat /proc/self/mountinfo | wc -l && ls /dev/null && touch /marker",
    ]);
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "mount");
        // Like runc, kraal refuses masked/readonly paths without a mount namespace.
        let l = c["linux"].as_object_mut().unwrap();
        l.remove("maskedPaths");
        l.remove("readonlyPaths");
    });
    let rootfs = b.rootfs.canonicalize().unwrap();
    t.create(&b);
    let host_mounts = mounts_under(&rootfs);
    assert!(
        host_mounts.len() >= 3,
        "proc, dev, ... mounted in the host namespace under the rootfs: {host_mounts:?}"
    );
    t.k().run(&["start", &b.id]).ok();
    t.k().wait_status(&b.id, "stopped");
    assert!(b.rootfs.join("marker").exists());
    t.k().run(&["delete", &b.id]).ok();
    assert_eq!(mounts_under(&rootfs), Vec::<std::path::PathBuf>::new());
    t.assert_clean_strict();
}

/// Without a cgroup namespace (Docker and Podman on v1 hosts), /sys/fs/cgroup shows
/// the container's own cgroup of each hierarchy, bound read-only (runc's layout).
#[test]
fn cgroup_mount_without_cgroup_namespace() {
    let t = TestEnv::new();
    let mut b = t.bundle(&[
        "sh",
        "-c",
        "cat /sys/fs/cgroup/pids/cgroup.procs; touch /sys/fs/cgroup/pids/x 2>&1 || true",
    ]);
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "cgroup");
        for m in c["mounts"].as_array_mut().unwrap() {
            if m["destination"] == "/sys/fs/cgroup" {
                m["options"] = json!(["rprivate", "nosuid", "noexec", "nodev", "relatime", "ro"]);
            }
        }
    });
    let o = t.run(&b);
    o.ok();
    let out = o.stdout_now();
    assert!(
        out.lines().next().is_some_and(|l| l.trim() == "1"),
        "the container's own pids cgroup holds its init: {out}"
    );
    assert!(out.contains("Read-only file system"), "{out}");
    t.assert_clean_strict();
}

/// What systemd as the container's init needs on a v1 or hybrid host: the
/// name=systemd hierarchy at /sys/fs/cgroup/systemd, writable when the config mounts
/// cgroups read-write, and no cgroup2 next to the v1 hierarchies (runc shows none;
/// systemd would otherwise track its units on that one instead).
#[test]
fn v1_cgroup_mount_gives_systemd_its_hierarchy() {
    let hybrid_or_v1 = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.contains(" - cgroup cgroup "));
    if !hybrid_or_v1 {
        eprintln!("pure cgroup v2 host: the v2 mount is covered by integration/vm");
        return;
    }
    let t = TestEnv::new();
    let mut b = t.bundle(&[
        "sh",
        "-c",
        "awk '$5 ~ /^\\/sys\\/fs\\/cgroup/ { for (i = 7; i <= NF; i++) if ($i == \"-\") print $5, $(i + 1) }' \
         /proc/self/mountinfo; \
         mkdir /sys/fs/cgroup/systemd/init.scope && echo made-sub && \
         rmdir /sys/fs/cgroup/systemd/init.scope",
    ]);
    b.edit(|c| {
        for m in c["mounts"].as_array_mut().unwrap() {
            if m["destination"] == "/sys/fs/cgroup" {
                m["options"] = json!(["nosuid", "noexec", "nodev", "relatime"]);
            }
        }
    });
    let o = t.run(&b);
    o.ok();
    let out = o.stdout_now();
    assert!(
        out.lines().any(|l| l == "/sys/fs/cgroup/systemd cgroup"),
        "name=systemd is mounted: {out}"
    );
    assert!(
        !out.contains("cgroup2"),
        "no cgroup2 mount on v1/hybrid: {out}"
    );
    assert!(
        out.contains("made-sub"),
        "the container makes its own sub-cgroups: {out}"
    );
    t.assert_clean_strict();
}

/// user, pid and ipc namespaces joined by path (the user one with A's id mappings):
/// B's process is in A's three namespaces, sees A's uid_map, is root of that user
/// namespace, and is not pid 1 (A's init is). B's own mount, uts, network and cgroup
/// namespaces stay new.
#[test]
fn joins_user_pid_and_ipc_namespaces_by_path() {
    let t = TestEnv::new();
    let k = t.k();
    let base = 300_000 + (t.n as u32 % 100) * 65_536;
    let mut a = t.bundle(&["sleep", "1000"]);
    a.user_namespace(base);
    t.create_start(&a);
    let pid_a = k.pid(&a.id);
    let ns_of = |pid: i64, kind: &str| {
        std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
            .unwrap()
            .to_string_lossy()
            .into_owned()
    };
    let uid_map_a = std::fs::read_to_string(format!("/proc/{pid_a}/uid_map")).unwrap();

    let kinds = ["user", "pid", "ipc", "mnt", "uts", "net", "cgroup"];
    let mut b = t.bundle(&[
        "sh",
        "-c",
        "for n in user pid ipc mnt uts net cgroup; do readlink /proc/self/ns/$n; done; \
         echo ===; cat /proc/self/uid_map; echo ===; echo $$; id -u; \
         cat /proc/1/cmdline | tr '\\0' ' '",
    ]);
    // B joins A's user namespace by path: its rootfs needs the same owner.
    let ok = Command::new("chown")
        .args(["-R", &format!("{base}:{base}"), b.rootfs.to_str().unwrap()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "chown the rootfs");
    b.edit(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        for n in ns.iter_mut() {
            if n["type"] == "pid" || n["type"] == "ipc" {
                n["path"] = json!(format!("/proc/{pid_a}/ns/{}", n["type"].as_str().unwrap()));
            }
        }
        ns.push(json!({"type": "user", "path": format!("/proc/{pid_a}/ns/user")}));
    });
    let o = t.run(&b);
    o.ok();
    let parts: Vec<&str> = o.stdout.split("===\n").collect();
    assert_eq!(parts.len(), 3, "{o:?}");
    let ns_b: Vec<&str> = parts[0].lines().collect();
    assert_eq!(ns_b.len(), kinds.len(), "{o:?}");
    for (kind, inside) in kinds.iter().zip(&ns_b) {
        let a_ns = ns_of(pid_a, kind);
        let host_ns = ns_of(std::process::id() as i64, kind);
        if ["user", "pid", "ipc"].contains(kind) {
            assert_eq!(*inside, a_ns, "{kind}: B did not join A's namespace");
        } else {
            assert_ne!(*inside, a_ns, "{kind}: B should have its own namespace");
        }
        assert_ne!(*inside, host_ns, "{kind}: B is in the host's namespace");
    }
    assert_eq!(parts[1], uid_map_a, "B sees A's uid_map");
    let rest: Vec<&str> = parts[2].lines().collect();
    assert_ne!(
        rest[0], "1",
        "B's process is not pid 1 in A's pid namespace: {o:?}"
    );
    assert_eq!(rest[1], "0", "root in A's user namespace: {o:?}");
    assert_eq!(rest[2].trim(), "sleep 1000", "pid 1 is A's init: {o:?}");
    k.run(&["delete", "--force", &a.id]).ok();
    t.assert_clean_strict();
}
