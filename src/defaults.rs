//! The config.json that `kraal spec` writes.
//!
//! The content is what `runc spec` writes (runc's libcontainer/specconv example), with
//! kraal's name as the hostname, so a bundle made for one runtime runs on the other. Two
//! deliberate differences from runc: the cgroup namespace is always listed (runc lists it
//! only on cgroup v2 hosts, which makes its output depend on the machine), and key order
//! follows serde_json's map (alphabetical), which JSON readers do not care about.

use serde_json::{json, Value};

/// The hostname in the default config.
pub const HOSTNAME: &str = "kraal";

const DEFAULT_CAPS: [&str; 3] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
];

const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The default config. With `rootless`, the variant `runc spec --rootless` writes for the
/// calling user: a user namespace mapping the effective uid/gid to root, no network
/// namespace, the host's /sys bound read-only, no uid=/gid= mount options and no cgroup
/// resources.
pub fn default_spec(rootless: bool) -> Value {
    let ids = rootless.then(|| {
        (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        )
    });
    build(ids)
}

/// `rootless_ids` is the host (uid, gid) mapped to root in the container, or None for the
/// rootful config.
fn build(rootless_ids: Option<(u32, u32)>) -> Value {
    let rootless = rootless_ids.is_some();
    let mut linux = json!({
        "maskedPaths": MASKED_PATHS,
        "readonlyPaths": READONLY_PATHS,
    });
    let mut namespaces = vec![json!({"type": "pid"})];
    if !rootless {
        namespaces.push(json!({"type": "network"}));
    }
    namespaces.extend([
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
        json!({"type": "cgroup"}),
    ]);
    match rootless_ids {
        Some((uid, gid)) => {
            namespaces.push(json!({"type": "user"}));
            linux["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1}]);
            linux["gidMappings"] = json!([{"containerID": 0, "hostID": gid, "size": 1}]);
        }
        None => {
            linux["resources"] = json!({"devices": [{"allow": false, "access": "rwm"}]});
        }
    }
    linux["namespaces"] = Value::Array(namespaces);

    json!({
        "ociVersion": crate::OCI_VERSION,
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm",
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": DEFAULT_CAPS,
                "effective": DEFAULT_CAPS,
                "permitted": DEFAULT_CAPS,
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true,
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": HOSTNAME,
        "mounts": mounts(rootless),
        "linux": linux,
    })
}

fn mount(destination: &str, typ: &str, source: &str, options: &[&str]) -> Value {
    let mut m = json!({"destination": destination, "type": typ, "source": source});
    if !options.is_empty() {
        m["options"] = json!(options);
    }
    m
}

fn mounts(rootless: bool) -> Value {
    // gid=5 (tty) may not be mapped in a rootless user namespace; runc drops it there.
    let devpts: &[&str] = if rootless {
        &[
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
        ]
    } else {
        &[
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
            "gid=5",
        ]
    };
    // A fresh sysfs needs a network namespace of the container's own, which a rootless
    // container lacks: bind the host's instead.
    let sys = if rootless {
        mount(
            "/sys",
            "none",
            "/sys",
            &["rbind", "nosuid", "noexec", "nodev", "ro"],
        )
    } else {
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        )
    };
    json!([
        mount("/proc", "proc", "proc", &[]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"]
        ),
        mount("/dev/pts", "devpts", "devpts", devpts),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"]
        ),
        sys,
        // Kept for rootless too, as runc does since 1.0: with a cgroup namespace the
        // container then sees its own cgroup rather than the host's tree.
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"]
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{Capability, LinuxNamespaceType, PosixRlimitType, Spec};

    fn parse(v: &Value) -> Spec {
        crate::validate::parse(v.to_string().as_bytes()).expect("default spec parses")
    }

    fn namespace_types(spec: &Spec) -> Vec<LinuxNamespaceType> {
        let linux = spec.linux().as_ref().expect("linux section");
        linux
            .namespaces()
            .as_ref()
            .expect("namespaces")
            .iter()
            .map(|ns| ns.typ())
            .collect()
    }

    fn mount_options(spec: &Spec, destination: &str) -> Vec<String> {
        spec.mounts()
            .as_ref()
            .expect("mounts")
            .iter()
            .find(|m| m.destination().to_str() == Some(destination))
            .unwrap_or_else(|| panic!("no mount at {destination}"))
            .options()
            .clone()
            .unwrap_or_default()
    }

    #[test]
    fn rootful_spec_matches_runc_content_and_passes_validation() {
        let value = default_spec(false);
        let spec = parse(&value);
        crate::validate::check_structure(&spec).expect("default spec is valid");

        assert_eq!(spec.version(), crate::OCI_VERSION);
        assert_eq!(spec.hostname().as_deref(), Some(HOSTNAME));
        let root = spec.root().as_ref().unwrap();
        assert_eq!(root.path().to_str(), Some("rootfs"));
        assert_eq!(root.readonly(), Some(true));

        let process = spec.process().as_ref().unwrap();
        assert_eq!(process.terminal(), Some(true));
        assert_eq!(process.user().uid(), 0);
        assert_eq!(process.user().gid(), 0);
        assert_eq!(process.args().as_deref(), Some(&["sh".to_string()][..]));
        assert_eq!(process.cwd().to_str(), Some("/"));
        assert_eq!(process.no_new_privileges(), Some(true));
        let caps = process.capabilities().as_ref().unwrap();
        let want = [
            Capability::AuditWrite,
            Capability::Kill,
            Capability::NetBindService,
        ]
        .into_iter()
        .collect();
        assert_eq!(caps.bounding().as_ref(), Some(&want));
        assert_eq!(caps.effective().as_ref(), Some(&want));
        assert_eq!(caps.permitted().as_ref(), Some(&want));
        assert!(caps.inheritable().is_none() && caps.ambient().is_none());
        let rlimits = process.rlimits().as_ref().unwrap();
        assert_eq!(rlimits.len(), 1);
        assert_eq!(rlimits[0].typ(), PosixRlimitType::RlimitNofile);
        assert_eq!((rlimits[0].soft(), rlimits[0].hard()), (1024, 1024));

        let destinations: Vec<String> = spec
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| m.destination().display().to_string())
            .collect();
        assert_eq!(
            destinations,
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/dev/shm",
                "/dev/mqueue",
                "/sys",
                "/sys/fs/cgroup"
            ]
        );
        assert!(mount_options(&spec, "/dev/pts").contains(&"gid=5".to_string()));
        assert_eq!(
            value["mounts"][5],
            json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]})
        );

        assert_eq!(
            namespace_types(&spec),
            [
                LinuxNamespaceType::Pid,
                LinuxNamespaceType::Network,
                LinuxNamespaceType::Ipc,
                LinuxNamespaceType::Uts,
                LinuxNamespaceType::Mount,
                LinuxNamespaceType::Cgroup,
            ]
        );
        let linux = spec.linux().as_ref().unwrap();
        assert!(linux.uid_mappings().is_none());
        assert_eq!(linux.masked_paths().as_ref().map(Vec::len), Some(10));
        assert_eq!(linux.readonly_paths().as_ref().map(Vec::len), Some(5));
        assert_eq!(
            value["linux"]["resources"],
            json!({"devices": [{"allow": false, "access": "rwm"}]})
        );
    }

    #[test]
    fn rootless_spec_matches_runc_rootless_and_passes_validation() {
        let value = build(Some((1000, 1001)));
        let spec = parse(&value);
        crate::validate::check_structure(&spec).expect("rootless spec is valid");

        assert_eq!(
            namespace_types(&spec),
            [
                LinuxNamespaceType::Pid,
                LinuxNamespaceType::Ipc,
                LinuxNamespaceType::Uts,
                LinuxNamespaceType::Mount,
                LinuxNamespaceType::Cgroup,
                LinuxNamespaceType::User,
            ]
        );
        assert_eq!(
            value["linux"]["uidMappings"],
            json!([{"containerID": 0, "hostID": 1000, "size": 1}])
        );
        assert_eq!(
            value["linux"]["gidMappings"],
            json!([{"containerID": 0, "hostID": 1001, "size": 1}])
        );
        assert!(value["linux"].get("resources").is_none());
        assert_eq!(
            value["mounts"][5],
            json!({"destination": "/sys", "type": "none", "source": "/sys", "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]})
        );
        for m in value["mounts"].as_array().unwrap() {
            for o in m["options"].as_array().into_iter().flatten() {
                let o = o.as_str().unwrap();
                assert!(
                    !o.starts_with("uid=") && !o.starts_with("gid="),
                    "{o} in {m}"
                );
            }
        }
        // Everything else is the rootful config.
        let rootful = build(None);
        assert_eq!(value["process"], rootful["process"]);
        assert_eq!(value["root"], rootful["root"]);
        assert_eq!(value["hostname"], rootful["hostname"]);
        assert_eq!(
            value["linux"]["maskedPaths"],
            rootful["linux"]["maskedPaths"]
        );
    }

    #[test]
    fn default_spec_rootless_maps_the_effective_ids() {
        let value = default_spec(true);
        assert_eq!(
            value["linux"]["uidMappings"][0]["hostID"],
            json!(nix::unistd::geteuid().as_raw())
        );
        assert_eq!(
            value["linux"]["gidMappings"][0]["hostID"],
            json!(nix::unistd::getegid().as_raw())
        );
    }
}
