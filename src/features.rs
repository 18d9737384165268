//! The `kraal features` document (runtime-spec features.md) and the support flags behind it.
//!
//! Every entry here must match what the code does at the same commit: a caller such as
//! containerd trusts this document to decide which config fields it may use. When a
//! feature lands (or goes), change its list or flag here in the same change; `validate`
//! reads the flags, so a config asking for an unsupported feature is refused rather than
//! silently run without it.

use serde_json::{json, Value};

/// The lowest runtime-spec version kraal accepts in config.json.
pub const OCI_VERSION_MIN: &str = "1.0.0";

/// Hooks kraal runs, in lifecycle order.
pub const HOOKS: &[&str] = &[
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// Mount options kraal's mount code interprets itself. Any other option is filesystem
/// data, passed to mount(2) as its `data` argument (and refused on bind mounts).
pub const MOUNT_OPTIONS: &[&str] = &[
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "iversion",
    "lazytime",
    "loud",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "noiversion",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "private",
    "ratime",
    "rbind",
    "rdev",
    "rdiratime",
    "relatime",
    "remount",
    "rexec",
    "rnoatime",
    "rnodev",
    "rnodiratime",
    "rnoexec",
    "rnorelatime",
    "rnostrictatime",
    "rnosuid",
    "rnosymfollow",
    "ro",
    "rprivate",
    "rrelatime",
    "rro",
    "rrw",
    "rshared",
    "rslave",
    "rstrictatime",
    "rsuid",
    "rsymfollow",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "symfollow",
    "sync",
    "tmpcopyup",
    "unbindable",
];

/// Namespace types kraal can create or join, as config.json spells them.
pub const NAMESPACES: &[&str] = &[
    "cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts",
];

/// Capability names kraal knows; the index of each is its kernel number (capability.h).
pub const CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// cgroup v1 (including hybrid hosts) is managed through cgroupfs.
pub const CGROUP_V1: bool = true;
/// cgroup v2 is managed through cgroupfs.
pub const CGROUP_V2: bool = true;
/// The systemd cgroup driver (`--systemd-cgroup`, cgroups/systemd.rs).
pub const CGROUP_SYSTEMD: bool = true;
/// No driver for systemd's per-user instance (rootless `--systemd-cgroup`).
pub const CGROUP_SYSTEMD_USER: bool = false;
/// rdma limits are applied on v1 and v2 (cgroups/resources.rs).
pub const CGROUP_RDMA: bool = true;
/// `linux.seccomp` is compiled with libseccomp and loaded before exec (seccomp.rs).
pub const SECCOMP: bool = true;
/// `process.apparmorProfile` is applied where AppArmor is enabled, an error elsewhere.
pub const APPARMOR: bool = true;
/// `process.selinuxLabel` is applied where SELinux is enabled, ignored elsewhere (as runc).
pub const SELINUX: bool = true;
/// `linux.intelRdt` is not applied; configs that carry it are refused.
pub const INTEL_RDT: bool = false;
/// `linux.memoryPolicy` is applied with set_mempolicy (process::attrs).
pub const MEMORY_POLICY: bool = true;
/// id-mapped bind mounts (`idmap`, `ridmap`, mount `uidMappings`/`gidMappings`) via MOUNT_ATTR_IDMAP.
pub const IDMAP_MOUNTS: bool = true;
/// `linux.netDevices` are moved into the container's network namespace.
pub const NET_DEVICES: bool = true;

/// Annotation carrying kraal's version in the features document.
pub const ANNOTATION_VERSION: &str = "io.github.kraal.version";

/// The features document `kraal features` prints.
pub fn features() -> Value {
    let mut linux = json!({
        "namespaces": NAMESPACES,
        "capabilities": CAPABILITIES,
        "cgroup": {
            "v1": CGROUP_V1,
            "v2": CGROUP_V2,
            "systemd": CGROUP_SYSTEMD,
            "systemdUser": CGROUP_SYSTEMD_USER,
            "rdma": CGROUP_RDMA,
        },
        "seccomp": if SECCOMP { crate::seccomp::features() } else { json!({ "enabled": false }) },
        "apparmor": { "enabled": APPARMOR },
        "selinux": { "enabled": SELINUX },
        "intelRdt": { "enabled": INTEL_RDT },
        "mountExtensions": { "idmap": { "enabled": IDMAP_MOUNTS } },
        "netDevices": { "enabled": NET_DEVICES },
    });
    // features.md has no "enabled" flag for memoryPolicy: listing modes claims support.
    if MEMORY_POLICY {
        linux["memoryPolicy"] = json!({
            "modes": ["MPOL_DEFAULT", "MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_WEIGHTED_INTERLEAVE",
                      "MPOL_PREFERRED", "MPOL_PREFERRED_MANY", "MPOL_LOCAL"],
            "flags": ["MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES", "MPOL_F_STATIC_NODES"],
        });
    }
    json!({
        "ociVersionMin": OCI_VERSION_MIN,
        "ociVersionMax": crate::OCI_VERSION,
        "hooks": HOOKS,
        "mountOptions": MOUNT_OPTIONS,
        "linux": linux,
        "annotations": { ANNOTATION_VERSION: env!("CARGO_PKG_VERSION") },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{Capability, Features, LinuxNamespaceType};
    use std::collections::HashSet;

    fn parsed() -> Features {
        serde_json::from_value(features()).expect("features document deserializes")
    }

    #[test]
    fn deserializes_into_oci_spec_features() {
        let f = parsed();
        assert_eq!(f.oci_version_min(), "1.0.0");
        assert_eq!(f.oci_version_max(), crate::OCI_VERSION);
        assert_eq!(f.hooks().clone().unwrap_or_default(), HOOKS);
        let linux = f.linux().as_ref().expect("linux section");
        let cgroup = linux.cgroup().as_ref().expect("cgroup section");
        assert_eq!(*cgroup.v1(), Some(true));
        assert_eq!(*cgroup.v2(), Some(true));
        assert_eq!(*cgroup.systemd(), Some(CGROUP_SYSTEMD));
        assert_eq!(*cgroup.systemd_user(), Some(CGROUP_SYSTEMD_USER));
        assert_eq!(*cgroup.rdma(), Some(CGROUP_RDMA));
        assert_eq!(*linux.seccomp().as_ref().unwrap().enabled(), Some(SECCOMP));
        assert_eq!(
            *linux.apparmor().as_ref().unwrap().enabled(),
            Some(APPARMOR)
        );
        assert_eq!(*linux.selinux().as_ref().unwrap().enabled(), Some(SELINUX));
        assert_eq!(*linux.intel_rdt().as_ref().unwrap().enabled(), Some(false));
        assert_eq!(*linux.net_devices().as_ref().unwrap().enabled(), Some(true));
        let idmap = linux
            .mount_extensions()
            .as_ref()
            .unwrap()
            .idmap()
            .as_ref()
            .unwrap();
        assert_eq!(*idmap.enabled(), Some(IDMAP_MOUNTS));
        assert_eq!(linux.memory_policy().is_some(), MEMORY_POLICY);
        let annotations = f.annotations().as_ref().unwrap();
        assert_eq!(
            annotations.get(ANNOTATION_VERSION).map(String::as_str),
            Some(env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn namespaces_are_all_eight_spec_types() {
        let linux = parsed().linux().clone().unwrap();
        let got: HashSet<LinuxNamespaceType> =
            linux.namespaces().clone().unwrap().into_iter().collect();
        let want: HashSet<LinuxNamespaceType> = [
            LinuxNamespaceType::Cgroup,
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::Mount,
            LinuxNamespaceType::Network,
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Time,
            LinuxNamespaceType::User,
            LinuxNamespaceType::Uts,
        ]
        .into_iter()
        .collect();
        assert_eq!(got, want);
        assert_eq!(NAMESPACES.len(), 8);
    }

    #[test]
    fn capabilities_are_the_41_kernel_ones_in_order() {
        assert_eq!(CAPABILITIES.len(), 41);
        assert_eq!(CAPABILITIES[0], "CAP_CHOWN");
        assert_eq!(CAPABILITIES[21], "CAP_SYS_ADMIN");
        assert_eq!(CAPABILITIES[40], "CAP_CHECKPOINT_RESTORE");
        let unique: HashSet<&str> = CAPABILITIES.iter().copied().collect();
        assert_eq!(unique.len(), CAPABILITIES.len());
        for name in CAPABILITIES {
            let cap: Capability = serde_json::from_value(json!(name))
                .unwrap_or_else(|e| panic!("{name} is not an oci-spec capability: {e}"));
            // oci-spec serializes the canonical CAP_ name, so this is a round trip.
            assert_eq!(serde_json::to_value(cap).unwrap(), json!(name));
        }
    }

    #[test]
    fn mount_options_are_unique() {
        let unique: HashSet<&str> = MOUNT_OPTIONS.iter().copied().collect();
        assert_eq!(unique.len(), MOUNT_OPTIONS.len());
        assert!(MOUNT_OPTIONS.contains(&"tmpcopyup"));
        assert!(
            !MOUNT_OPTIONS.contains(&"idmap"),
            "idmap is advertised through mountExtensions"
        );
        for needed in [
            "bind",
            "rbind",
            "ro",
            "rro",
            "rprivate",
            "nosymfollow",
            "remount",
        ] {
            assert!(MOUNT_OPTIONS.contains(&needed), "{needed} missing");
        }
        let parsed = parsed();
        assert_eq!(
            parsed.mount_options().as_ref().map(Vec::len),
            Some(MOUNT_OPTIONS.len())
        );
    }
}
