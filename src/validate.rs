//! Loading `config.json` and checking it before kraal creates anything.
//!
//! [`load`] and [`parse`] turn the file into an [`oci_spec::runtime::Spec`]; a parse error
//! names the JSON path at fault. [`check_structure`] holds every rule that needs only the
//! spec itself; [`validate`] adds the rules that look at the host (the root directory and
//! the namespace files the config names). Every error reads `<field path>: <problem>`,
//! with field paths spelled as in config.json (`linux.namespaces[3].path`,
//! `linux.sysctl["net.ipv4.ip_forward"]`), so a user can find the line to fix.
//!
//! Where runc and the runtime spec disagree, runc's behaviour wins (it is what containerd,
//! Docker and Podman generate configs for); each such place says so.

use std::collections::HashMap;
use std::fs;
use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path};

use anyhow::{anyhow, bail, Result};
use oci_spec::runtime::{
    Hook, LinuxDeviceType, LinuxIdMapping, LinuxNamespaceType, LinuxSchedulerPolicy, Mount,
    Process, Spec,
};
use serde_json::Value;

use crate::features;

/// The kernel refuses `uid_map`/`gid_map` writes with more lines than this (since Linux 4.15).
const MAX_ID_MAP_ENTRIES: usize = 340;

/// `sethostname(2)`/`setdomainname(2)` limit (`__NEW_UTS_LEN`).
const MAX_UTS_NAME_LEN: usize = 64;

/// Longest network interface name: `IFNAMSIZ` less the terminating NUL.
const MAX_IFNAME_LEN: usize = 15;

/// The clocks a time namespace can offset (time_namespaces(7)).
const TIME_OFFSET_CLOCKS: &[&str] = &["monotonic", "boottime"];

/// runc accepts the recursive forms too; the spec lists only the first four.
const ROOTFS_PROPAGATIONS: &[&str] = &[
    "shared",
    "slave",
    "private",
    "unbindable",
    "rshared",
    "rslave",
    "rprivate",
    "runbindable",
];

/// System V IPC sysctls that live in the IPC namespace (besides `fs.mqueue.*`).
const IPC_SYSCTLS: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// Reads and parses `<bundle>/config.json`.
///
/// A missing file, malformed JSON or a value of the wrong type gives an error naming the
/// file, the JSON path at fault and, where serde knows it, the line and column.
pub fn load(bundle: &Path) -> Result<Spec> {
    let path = bundle.join("config.json");
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == ErrorKind::NotFound => bail!(
            "{}: no such file (is {} an OCI bundle?)",
            path.display(),
            bundle.display()
        ),
        Err(e) => bail!("{}: cannot read: {e}", path.display()),
    };
    parse(&bytes).map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// Parses config.json content. Errors read `<json path>: <problem> at line L column C`.
pub fn parse(bytes: &[u8]) -> Result<Spec> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let spec: Spec = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let message = explain_serde_error(e.inner());
        if path == "." {
            anyhow!("{message}")
        } else {
            anyhow!("{path}: {message}")
        }
    })?;
    de.end().map_err(|e| anyhow!("{e}"))?;
    // The typed Spec fills absent numbers with 0, so "required" fields that have a valid
    // zero can only be checked on the raw document.
    let raw: Value = serde_json::from_slice(bytes).map_err(|e| anyhow!("{e}"))?;
    // serde also builds a struct from an array of its fields in order; no one means that.
    if !raw.is_object() {
        bail!("the top level must be a JSON object");
    }
    check_required_numbers(&raw)?;
    Ok(spec)
}

/// oci-spec's capability parser reports `no variant for X (converted to Y)`; say what it means.
fn explain_serde_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let Some(rest) = text.strip_prefix("no variant for ") else {
        return text;
    };
    let Some((name, _)) = rest.split_once(" (converted to ") else {
        return text;
    };
    if e.line() == 0 {
        format!("unknown capability {name:?}")
    } else {
        format!(
            "unknown capability {name:?} at line {} column {}",
            e.line(),
            e.column()
        )
    }
}

fn check_required_numbers(raw: &Value) -> Result<()> {
    if let Some(devices) = raw.pointer("/linux/devices").and_then(Value::as_array) {
        for (i, device) in devices.iter().enumerate() {
            let typ = device.get("type").and_then(Value::as_str).unwrap_or("");
            if !matches!(typ, "c" | "b" | "u") {
                continue;
            }
            for field in ["major", "minor"] {
                if device.get(field).is_none_or(Value::is_null) {
                    bail!("linux.devices[{i}].{field}: required for device type {typ:?}");
                }
            }
        }
    }
    if let Some(rlimits) = raw.pointer("/process/rlimits").and_then(Value::as_array) {
        for (i, rlimit) in rlimits.iter().enumerate() {
            for field in ["soft", "hard"] {
                if rlimit.get(field).is_none_or(Value::is_null) {
                    bail!("process.rlimits[{i}].{field}: required");
                }
            }
        }
    }
    Ok(())
}

/// Every check: [`check_structure`], then the ones that look at the host.
pub fn validate(spec: &Spec, bundle: &Path) -> Result<()> {
    check_structure(spec)?;
    check_root_dir(spec, bundle)?;
    check_namespace_files(spec)?;
    check_host_netns_use(spec)?;
    Ok(())
}

/// The checks that need only the spec: no file system access, no syscalls.
pub fn check_structure(spec: &Spec) -> Result<()> {
    check_version(spec)?;
    check_root(spec)?;
    check_annotations(spec)?;
    if let Some(process) = spec.process() {
        check_process(process)?;
    }
    check_hooks(spec)?;
    let namespaces = check_namespaces(spec)?;
    check_mounts(spec, &namespaces, features::IDMAP_MOUNTS)?;
    check_id_mappings(spec, &namespaces)?;
    check_uts(spec, &namespaces)?;
    check_time_offsets(spec, &namespaces)?;
    check_sysctl(spec, &namespaces)?;
    check_rootfs_propagation(spec)?;
    check_masked_readonly(spec, &namespaces)?;
    check_devices(spec)?;
    check_device_cgroup(spec)?;
    check_net_devices(spec, &namespaces)?;
    check_unsupported(spec)?;
    Ok(())
}

fn has_nul(bytes: &[u8]) -> bool {
    bytes.contains(&0)
}

fn path_has_nul(path: &Path) -> bool {
    has_nul(path.as_os_str().as_bytes())
}

/// True if `..` components take the path above the directory it is resolved in.
fn climbs_out(path: &Path) -> bool {
    let mut depth = 0usize;
    for component in path.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::ParentDir => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return true,
            },
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    false
}

fn check_version(spec: &Spec) -> Result<()> {
    let version = spec.version();
    if version.is_empty() {
        bail!(
            "ociVersion: missing (expected a version such as {:?})",
            crate::OCI_VERSION
        );
    }
    let Some(major) = semver_major(version) else {
        bail!("ociVersion: {version:?} is not a semantic version (MAJOR.MINOR.PATCH)");
    };
    if major != 1 {
        bail!(
            "ociVersion: {version:?} is not supported (kraal implements runtime-spec 1.x, up to {})",
            crate::OCI_VERSION
        );
    }
    Ok(())
}

/// The major number of a SemVer 2.0 version; leading zeros are tolerated.
fn semver_major(version: &str) -> Option<u64> {
    let (rest, build) = match version.split_once('+') {
        Some((rest, build)) => (rest, Some(build)),
        None => (version, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (rest, None),
    };
    if pre.is_some_and(str::is_empty) || build.is_some_and(str::is_empty) {
        return None;
    }
    let parts: Vec<&str> = core.split('.').collect();
    let numeric = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if parts.len() != 3 || !parts.iter().all(numeric) {
        return None;
    }
    parts[0].parse().ok()
}

fn check_root(spec: &Spec) -> Result<()> {
    let Some(root) = spec.root() else {
        bail!("root: missing (required on Linux)");
    };
    let path = root.path();
    if path.as_os_str().is_empty() {
        bail!("root.path: missing");
    }
    if path_has_nul(path) {
        bail!("root.path: contains a NUL byte");
    }
    // A relative root is the bundle's; one that climbs out is a root elsewhere in
    // disguise (`../../..` is the host's /), so it must be written as an absolute path.
    if path.is_relative() && climbs_out(path) {
        bail!(
            "root.path: {} leaves the bundle through \"..\" (give an absolute path for a root outside the bundle)",
            path.display()
        );
    }
    Ok(())
}

fn check_root_dir(spec: &Spec, bundle: &Path) -> Result<()> {
    let Some(root) = spec.root() else {
        bail!("root: missing (required on Linux)");
    };
    let path = if root.path().is_absolute() {
        root.path().clone()
    } else {
        bundle.join(root.path())
    };
    match fs::metadata(&path) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => bail!("root.path: {} is not a directory", path.display()),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            bail!("root.path: {} does not exist", path.display())
        }
        Err(e) => bail!("root.path: cannot stat {}: {e}", path.display()),
    }
    // As runc: the root must be named by its real path, with no symlink in it. A link
    // would be followed to wherever it points at the moment kraal resolves it, outside
    // the bundle, and could be swapped between this check and the mounts.
    let base = if root.path().is_absolute() {
        std::path::PathBuf::from("/")
    } else {
        fs::canonicalize(bundle)
            .map_err(|e| anyhow!("bundle {}: cannot resolve: {e}", bundle.display()))?
    };
    let real = fs::canonicalize(&path)
        .map_err(|e| anyhow!("root.path: cannot resolve {}: {e}", path.display()))?;
    if real != crate::mounts::normalize(&base.join(root.path())) {
        bail!(
            "root.path: {} is a symlink or passes through one (to {}); give the real path",
            path.display(),
            real.display()
        );
    }
    Ok(())
}

fn check_annotations(spec: &Spec) -> Result<()> {
    if let Some(annotations) = spec.annotations() {
        if annotations.contains_key("") {
            bail!("annotations: keys must not be empty");
        }
    }
    Ok(())
}

fn check_env(field: &str, env: &[String]) -> Result<()> {
    for (i, entry) in env.iter().enumerate() {
        match entry.find('=') {
            None => bail!("{field}[{i}]: {entry:?} has no '=' (expected NAME=VALUE)"),
            Some(0) => bail!("{field}[{i}]: {entry:?} has an empty name"),
            Some(_) => {}
        }
        if has_nul(entry.as_bytes()) {
            bail!("{field}[{i}]: contains a NUL byte");
        }
    }
    Ok(())
}

pub fn check_process(process: &Process) -> Result<()> {
    let args = process.args().as_deref().unwrap_or_default();
    if args.is_empty() {
        bail!("process.args: must contain at least the program to run");
    }
    if args[0].is_empty() {
        bail!("process.args[0]: must not be empty");
    }
    if let Some(i) = args.iter().position(|a| has_nul(a.as_bytes())) {
        bail!("process.args[{i}]: contains a NUL byte");
    }
    let cwd = process.cwd();
    if cwd.as_os_str().is_empty() {
        bail!("process.cwd: missing");
    }
    if !cwd.is_absolute() {
        bail!("process.cwd: {} is not an absolute path", cwd.display());
    }
    if path_has_nul(cwd) {
        bail!("process.cwd: contains a NUL byte");
    }
    if let Some(env) = process.env() {
        check_env("process.env", env)?;
    }
    if let Some(adj) = process.oom_score_adj() {
        if !(-1000..=1000).contains(&adj) {
            bail!("process.oomScoreAdj: {adj} is outside -1000..1000");
        }
    }
    if let Some(umask) = process.user().umask() {
        if umask > 0o777 {
            bail!("process.user.umask: {umask:#o} has bits beyond 0o777");
        }
    }
    check_rlimits(process)?;
    check_scheduler(process)?;
    if let Some(io) = process.io_priority() {
        if !(0..=7).contains(&io.priority()) {
            bail!(
                "process.ioPriority.priority: {} is outside 0..7",
                io.priority()
            );
        }
    }
    Ok(())
}

fn check_rlimits(process: &Process) -> Result<()> {
    let rlimits = process.rlimits().as_deref().unwrap_or_default();
    for (i, rlimit) in rlimits.iter().enumerate() {
        if let Some(first) = rlimits[..i].iter().position(|r| r.typ() == rlimit.typ()) {
            bail!(
                "process.rlimits[{i}]: duplicate type {} (first at process.rlimits[{first}])",
                rlimit.typ()
            );
        }
        if rlimit.soft() > rlimit.hard() {
            bail!(
                "process.rlimits[{i}]: soft limit {} exceeds hard limit {} for {}",
                rlimit.soft(),
                rlimit.hard(),
                rlimit.typ()
            );
        }
    }
    Ok(())
}

/// The rules runc applies before sched_setattr(2), so the error names the field.
fn check_scheduler(process: &Process) -> Result<()> {
    let Some(sched) = process.scheduler() else {
        return Ok(());
    };
    let policy = sched.policy();
    if matches!(
        policy,
        LinuxSchedulerPolicy::SchedOther | LinuxSchedulerPolicy::SchedBatch
    ) {
        if let Some(nice) = sched.nice() {
            if !(-20..=19).contains(nice) {
                bail!("process.scheduler.nice: {nice} is outside -20..19 for {policy}");
            }
        }
    }
    let realtime = matches!(
        policy,
        LinuxSchedulerPolicy::SchedFifo | LinuxSchedulerPolicy::SchedRr
    );
    if sched.priority().is_some_and(|p| p != 0) && !realtime {
        bail!("process.scheduler.priority: only SCHED_FIFO and SCHED_RR take a priority, not {policy}");
    }
    let deadline_set = [sched.runtime(), sched.deadline(), sched.period()]
        .iter()
        .any(|v| v.is_some_and(|v| v != 0));
    if deadline_set && *policy != LinuxSchedulerPolicy::SchedDeadline {
        bail!("process.scheduler: runtime, deadline and period apply only to SCHED_DEADLINE, not {policy}");
    }
    Ok(())
}

fn check_hooks(spec: &Spec) -> Result<()> {
    let Some(hooks) = spec.hooks() else {
        return Ok(());
    };
    // prestart is deprecated but still part of the spec, and still run by runc.
    #[allow(deprecated)]
    let lists: [(&str, &Option<Vec<Hook>>); 6] = [
        ("prestart", hooks.prestart()),
        ("createRuntime", hooks.create_runtime()),
        ("createContainer", hooks.create_container()),
        ("startContainer", hooks.start_container()),
        ("poststart", hooks.poststart()),
        ("poststop", hooks.poststop()),
    ];
    for (name, list) in lists {
        for (i, hook) in list.as_deref().unwrap_or_default().iter().enumerate() {
            let field = format!("hooks.{name}[{i}]");
            let path = hook.path();
            if path.as_os_str().is_empty() {
                bail!("{field}.path: missing");
            }
            if !path.is_absolute() {
                bail!("{field}.path: {} is not an absolute path", path.display());
            }
            if path_has_nul(path) {
                bail!("{field}.path: contains a NUL byte");
            }
            if let Some(env) = hook.env() {
                check_env(&format!("{field}.env"), env)?;
            }
            if let Some(timeout) = hook.timeout() {
                if timeout <= 0 {
                    bail!("{field}.timeout: {timeout} is not greater than zero");
                }
            }
        }
    }
    Ok(())
}

fn namespace_name(typ: LinuxNamespaceType) -> &'static str {
    match typ {
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Time => "time",
    }
}

fn clone_flag(typ: LinuxNamespaceType) -> libc::c_int {
    match typ {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => libc::CLONE_NEWTIME,
    }
}

/// The namespace a `path` names, if any. An empty path means "create a new one", as in
/// runc (Go cannot tell an empty string from an absent one).
fn join_path(ns: &oci_spec::runtime::LinuxNamespace) -> Option<&Path> {
    ns.path().as_deref().filter(|p| !p.as_os_str().is_empty())
}

/// Which namespaces the config lists, and whether each is new or joined.
#[derive(Default)]
struct Namespaces<'a> {
    entries: HashMap<LinuxNamespaceType, Option<&'a Path>>,
}

impl<'a> Namespaces<'a> {
    /// Listed at all, new or joined (runc's `Contains`).
    fn has(&self, typ: LinuxNamespaceType) -> bool {
        self.entries.contains_key(&typ)
    }

    fn is_new(&self, typ: LinuxNamespaceType) -> bool {
        matches!(self.entries.get(&typ), Some(None))
    }

    fn joined(&self, typ: LinuxNamespaceType) -> Option<&'a Path> {
        self.entries.get(&typ).copied().flatten()
    }
}

fn check_namespaces(spec: &Spec) -> Result<Namespaces<'_>> {
    let mut namespaces = Namespaces::default();
    let Some(list) = spec.linux().as_ref().and_then(|l| l.namespaces().as_ref()) else {
        return Ok(namespaces);
    };
    let mut first_index = HashMap::new();
    for (i, ns) in list.iter().enumerate() {
        let typ = ns.typ();
        if let Some(first) = first_index.insert(typ, i) {
            bail!(
                "linux.namespaces[{i}]: duplicate namespace {:?} (first at linux.namespaces[{first}])",
                namespace_name(typ)
            );
        }
        // Every type can be joined with setns(2) (time since Linux 5.8), so any may have a path.
        let path = join_path(ns);
        if let Some(path) = path {
            if !path.is_absolute() {
                bail!(
                    "linux.namespaces[{i}].path: {} is not an absolute path",
                    path.display()
                );
            }
            if path_has_nul(path) {
                bail!("linux.namespaces[{i}].path: contains a NUL byte");
            }
        }
        namespaces.entries.insert(typ, path);
    }
    Ok(namespaces)
}

/// Each joined namespace file must exist and be a namespace of the listed type.
fn check_namespace_files(spec: &Spec) -> Result<()> {
    let Some(list) = spec.linux().as_ref().and_then(|l| l.namespaces().as_ref()) else {
        return Ok(());
    };
    for (i, ns) in list.iter().enumerate() {
        if let Some(path) = join_path(ns) {
            check_namespace_file(&format!("linux.namespaces[{i}].path"), ns.typ(), path)?;
        }
    }
    Ok(())
}

fn check_namespace_file(field: &str, typ: LinuxNamespaceType, path: &Path) -> Result<()> {
    // O_NONBLOCK: a FIFO given by mistake must not hang kraal in open(2).
    let file = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            bail!("{field}: {} does not exist", path.display())
        }
        Err(e) => bail!("{field}: cannot open {}: {e}", path.display()),
    };
    // SAFETY: NS_GET_NSTYPE takes no argument; it only queries the open descriptor.
    let actual = unsafe { libc::ioctl(file.as_raw_fd(), libc::NS_GET_NSTYPE) };
    if actual < 0 {
        let err = std::io::Error::last_os_error();
        if matches!(err.raw_os_error(), Some(libc::ENOTTY) | Some(libc::EINVAL)) {
            bail!("{field}: {} is not a namespace file", path.display());
        }
        bail!("{field}: cannot query {}: {err}", path.display());
    }
    if actual != clone_flag(typ) {
        let actual_name = [
            LinuxNamespaceType::Mount,
            LinuxNamespaceType::Cgroup,
            LinuxNamespaceType::Uts,
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::User,
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Network,
            LinuxNamespaceType::Time,
        ]
        .into_iter()
        .find(|t| clone_flag(*t) == actual)
        .map_or("unknown", namespace_name);
        bail!(
            "{field}: {} is a {actual_name} namespace, not {}",
            path.display(),
            namespace_name(typ)
        );
    }
    Ok(())
}

/// Settings that act on the container's network namespace are refused when that namespace
/// is kraal's own (runc checks the same for `net.*` sysctls).
fn check_host_netns_use(spec: &Spec) -> Result<()> {
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    let Some(path) = linux
        .namespaces()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|ns| ns.typ() == LinuxNamespaceType::Network)
        .and_then(join_path)
    else {
        return Ok(());
    };
    let net_sysctl = linux.sysctl().as_ref().and_then(|s| {
        let mut keys: Vec<&String> = s.keys().collect();
        keys.sort();
        keys.into_iter()
            .find(|k| sysctl_dotted(k).starts_with("net."))
    });
    let has_net_devices = linux.net_devices().as_ref().is_some_and(|d| !d.is_empty());
    if net_sysctl.is_none() && !has_net_devices {
        return Ok(());
    }
    const OWN_NETNS: &str = "/proc/self/ns/net";
    let own = fs::metadata(OWN_NETNS).map_err(|e| anyhow!("cannot stat {OWN_NETNS}: {e}"))?;
    let target = fs::metadata(path)
        .map_err(|e| anyhow!("linux.namespaces: cannot stat {}: {e}", path.display()))?;
    if own.dev() == target.dev() && own.ino() == target.ino() {
        if let Some(key) = net_sysctl {
            bail!(
                "linux.sysctl[{key:?}]: not allowed in the host network namespace ({} is kraal's own)",
                path.display()
            );
        }
        bail!(
            "linux.netDevices: cannot move devices into the host network namespace ({} is kraal's own)",
            path.display()
        );
    }
    Ok(())
}

fn check_mounts(spec: &Spec, namespaces: &Namespaces, idmap_supported: bool) -> Result<()> {
    for (i, mount) in spec
        .mounts()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        check_mount(&format!("mounts[{i}]"), mount, namespaces, idmap_supported)?;
    }
    Ok(())
}

fn is_bind(mount: &Mount) -> bool {
    mount.typ().as_deref() == Some("bind")
        || mount
            .options()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|o| o == "bind" || o == "rbind")
}

use crate::mounts::PROC_BIND_ALLOWED;

fn is_procfs(p: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    unsafe { libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type == libc::PROC_SUPER_MAGIC }
}

/// CVE-2019-16884 / CVE-2023-27561: something mounted over /proc (or parts of it)
/// would let the image intercept what kraal and the kernel's LSMs write there. Only
/// a procfs may go on /proc, and only a few read-only views below it. This looks at
/// the destination as written; `mounts::check_target` checks it again once the image's
/// symlinks are resolved.
fn check_proc_mount(field: &str, mount: &Mount, bind: bool) -> Result<()> {
    let dest = Path::new("/").join(mount.destination());
    let dest = crate::mounts::normalize(&dest);
    if !dest.starts_with("/proc") {
        return Ok(());
    }
    let procfs_source = mount.source().as_deref().is_some_and(is_procfs);
    if dest == Path::new("/proc") {
        if mount.typ().as_deref() == Some("proc") || (bind && procfs_source) {
            return Ok(());
        }
        bail!("{field}.destination: only a procfs may be mounted on /proc");
    }
    if bind && PROC_BIND_ALLOWED.iter().any(|p| dest == Path::new(p)) {
        return Ok(());
    }
    bail!(
        "{field}.destination: {} is inside /proc; only bind mounts onto {} are allowed there",
        dest.display(),
        PROC_BIND_ALLOWED.join(", ")
    )
}

fn check_mount(
    field: &str,
    mount: &Mount,
    namespaces: &Namespaces,
    idmap_supported: bool,
) -> Result<()> {
    let destination = mount.destination();
    if destination.as_os_str().is_empty() {
        bail!("{field}.destination: must not be empty");
    }
    if path_has_nul(destination) {
        bail!("{field}.destination: contains a NUL byte");
    }
    // Relative destinations are deprecated but valid: they are taken from "/".
    if climbs_out(destination) {
        bail!(
            "{field}.destination: {} leaves the container root through \"..\"",
            destination.display()
        );
    }
    if let Some(source) = mount.source() {
        if path_has_nul(source) {
            bail!("{field}.source: contains a NUL byte");
        }
    }
    if mount
        .typ()
        .as_deref()
        .is_some_and(|t| has_nul(t.as_bytes()))
    {
        bail!("{field}.type: contains a NUL byte");
    }
    let options = mount.options().as_deref().unwrap_or_default();
    if let Some(j) = options.iter().position(|o| has_nul(o.as_bytes())) {
        bail!("{field}.options[{j}]: contains a NUL byte");
    }
    if let Some(j) = options.iter().position(|o| o == "tmpcopyup") {
        if mount.typ().as_deref() != Some("tmpfs") {
            bail!("{field}.options[{j}]: \"tmpcopyup\" applies only to tmpfs mounts");
        }
    }
    let bind = is_bind(mount);
    check_proc_mount(field, mount, bind)?;
    if bind {
        if mount
            .source()
            .as_ref()
            .is_none_or(|s| s.as_os_str().is_empty())
        {
            bail!("{field}.source: required for a bind mount");
        }
        // The kernel ignores filesystem data on a bind mount. runc 1.1 ignored such
        // options and configs in the wild (runtime-tools' among them) carry them, so
        // they are dropped with a warning rather than refused.
        for (j, option) in options.iter().enumerate() {
            let known = option.is_empty()
                || features::MOUNT_OPTIONS.contains(&option.as_str())
                || option == "idmap"
                || option == "ridmap";
            if !known {
                crate::logging::warn(&format!(
                    "{field}.options[{j}]: {option:?} is a filesystem-specific option, which a bind mount ignores"
                ));
            }
        }
    }
    check_mount_idmap(field, mount, bind, namespaces, idmap_supported)
}

fn check_mount_idmap(
    field: &str,
    mount: &Mount,
    bind: bool,
    namespaces: &Namespaces,
    supported: bool,
) -> Result<()> {
    let options = mount.options().as_deref().unwrap_or_default();
    let wants_idmap = options.iter().any(|o| o == "idmap" || o == "ridmap");
    let uid = mount.uid_mappings().as_deref().filter(|m| !m.is_empty());
    let gid = mount.gid_mappings().as_deref().filter(|m| !m.is_empty());
    if !wants_idmap && uid.is_none() && gid.is_none() {
        return Ok(());
    }
    if !supported {
        bail!("{field}: id-mapped mounts (idmap, ridmap, uidMappings, gidMappings) are not supported by kraal");
    }
    if !bind {
        bail!("{field}: id-mapped mounts must be bind mounts");
    }
    match (uid, gid) {
        (Some(uid), Some(gid)) => {
            check_mapping_list(&format!("{field}.uidMappings"), uid)?;
            check_mapping_list(&format!("{field}.gidMappings"), gid)
        }
        (Some(_), None) => bail!("{field}.gidMappings: required with uidMappings"),
        (None, Some(_)) => bail!("{field}.uidMappings: required with gidMappings"),
        (None, None) if namespaces.has(LinuxNamespaceType::User) => Ok(()),
        (None, None) => bail!(
            "{field}: an id-mapped mount needs uidMappings and gidMappings, or a user namespace whose mappings it can use"
        ),
    }
}

fn check_mapping_list(field: &str, mappings: &[LinuxIdMapping]) -> Result<()> {
    if mappings.len() > MAX_ID_MAP_ENTRIES {
        bail!(
            "{field}: {} entries, the kernel accepts at most {MAX_ID_MAP_ENTRIES}",
            mappings.len()
        );
    }
    // The kernel rejects ranges that wrap past u32::MAX, whose last id (-1) is never valid.
    let limit = u64::from(u32::MAX);
    for (i, m) in mappings.iter().enumerate() {
        if m.size() == 0 {
            bail!("{field}[{i}].size: must be greater than 0");
        }
        for (side, start) in [("containerID", m.container_id()), ("hostID", m.host_id())] {
            if u64::from(start) + u64::from(m.size()) > limit {
                bail!(
                    "{field}[{i}]: {side} {start} plus size {} runs past the largest id {}",
                    m.size(),
                    limit - 1
                );
            }
        }
        let overlaps = |a: u32, b: u32, size_a: u32, size_b: u32| {
            let (a, b) = (u64::from(a), u64::from(b));
            a < b + u64::from(size_b) && b < a + u64::from(size_a)
        };
        for (j, earlier) in mappings[..i].iter().enumerate() {
            if overlaps(
                m.container_id(),
                earlier.container_id(),
                m.size(),
                earlier.size(),
            ) {
                bail!("{field}[{i}]: container range overlaps {field}[{j}]");
            }
            if overlaps(m.host_id(), earlier.host_id(), m.size(), earlier.size()) {
                bail!("{field}[{i}]: host range overlaps {field}[{j}]");
            }
        }
    }
    Ok(())
}

fn check_id_mappings(spec: &Spec, namespaces: &Namespaces) -> Result<()> {
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    let uid = linux.uid_mappings().as_deref().unwrap_or_default();
    let gid = linux.gid_mappings().as_deref().unwrap_or_default();
    if !namespaces.has(LinuxNamespaceType::User) {
        if !uid.is_empty() {
            bail!("linux.uidMappings: set, but linux.namespaces has no user namespace");
        }
        if !gid.is_empty() {
            bail!("linux.gidMappings: set, but linux.namespaces has no user namespace");
        }
        return Ok(());
    }
    // Mappings beside a joined user namespace are tolerated, as in runc: configs written
    // for older runtimes (which demanded mappings) still carry them.
    if namespaces.is_new(LinuxNamespaceType::User) {
        if uid.is_empty() {
            bail!("linux.uidMappings: required with a new user namespace");
        }
        if gid.is_empty() {
            bail!("linux.gidMappings: required with a new user namespace");
        }
    }
    check_mapping_list("linux.uidMappings", uid)?;
    check_mapping_list("linux.gidMappings", gid)
}

/// hostname and domainname need a UTS namespace of the container's own. As in runc, a
/// joined one counts: Podman sets the pod's hostname in containers that join the pod's.
fn check_uts(spec: &Spec, namespaces: &Namespaces) -> Result<()> {
    for (field, value) in [
        ("hostname", spec.hostname()),
        ("domainname", spec.domainname()),
    ] {
        let Some(value) = value.as_deref().filter(|v| !v.is_empty()) else {
            continue;
        };
        if !namespaces.has(LinuxNamespaceType::Uts) {
            bail!("{field}: unable to set {field} without a private UTS namespace (add {{\"type\": \"uts\"}} to linux.namespaces)");
        }
        if value.len() > MAX_UTS_NAME_LEN {
            bail!(
                "{field}: {} bytes long, the kernel allows at most {MAX_UTS_NAME_LEN}",
                value.len()
            );
        }
        if has_nul(value.as_bytes()) {
            bail!("{field}: contains a NUL byte");
        }
    }
    Ok(())
}

fn sorted_keys<V>(map: &HashMap<String, V>) -> Vec<&String> {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    keys
}

fn check_time_offsets(spec: &Spec, namespaces: &Namespaces) -> Result<()> {
    let Some(offsets) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref())
        .filter(|o| !o.is_empty())
    else {
        return Ok(());
    };
    if !namespaces.has(LinuxNamespaceType::Time) {
        bail!("linux.timeOffsets: set, but linux.namespaces has no time namespace");
    }
    if let Some(path) = namespaces.joined(LinuxNamespaceType::Time) {
        bail!(
            "linux.timeOffsets: offsets apply only to a new time namespace, not the joined {}",
            path.display()
        );
    }
    for clock in sorted_keys(offsets) {
        if !TIME_OFFSET_CLOCKS.contains(&clock.as_str()) {
            bail!("linux.timeOffsets[{clock:?}]: unknown clock (expected \"monotonic\" or \"boottime\")");
        }
        if let Some(nanosecs) = offsets[clock].nanosecs() {
            if nanosecs >= 1_000_000_000 {
                bail!("linux.timeOffsets[{clock:?}].nanosecs: {nanosecs} is not below 1000000000");
            }
        }
    }
    Ok(())
}

/// sysctl(8) accepts '/' as the separator when it comes first: "net/ipv4/conf/eth0.100/x"
/// means "net.ipv4.conf.eth0/100.x". Returns the dotted form.
fn sysctl_dotted(key: &str) -> String {
    match key.find(['.', '/']) {
        Some(i) if key.as_bytes()[i] == b'/' => key
            .chars()
            .map(|c| match c {
                '/' => '.',
                '.' => '/',
                c => c,
            })
            .collect(),
        _ => key.to_string(),
    }
}

/// runc's rules: only sysctls that live in a namespace the container has may be set.
fn check_sysctl(spec: &Spec, namespaces: &Namespaces) -> Result<()> {
    let Some(sysctl) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) else {
        return Ok(());
    };
    for key in sorted_keys(sysctl) {
        let name = sysctl_dotted(key);
        let field = format!("linux.sysctl[{key:?}]");
        if IPC_SYSCTLS.contains(&name.as_str()) || name.starts_with("fs.mqueue.") {
            if !namespaces.has(LinuxNamespaceType::Ipc) {
                bail!("{field}: not allowed without an IPC namespace (it would change the host's)");
            }
        } else if name.starts_with("net.") {
            // A joined network namespace that is kraal's own is refused in validate().
            if !namespaces.has(LinuxNamespaceType::Network) {
                bail!("{field}: not allowed in the host network namespace");
            }
        } else if name == "kernel.hostname" {
            bail!("{field}: not allowed; set the top-level hostname field instead");
        } else if name == "kernel.domainname" {
            if !namespaces.has(LinuxNamespaceType::Uts) {
                bail!("{field}: not allowed without a UTS namespace (it would change the host's)");
            }
        } else if name.starts_with("user.") {
            if !namespaces.has(LinuxNamespaceType::User) {
                bail!("{field}: not allowed without a user namespace (it would change the host's)");
            }
        } else {
            bail!("{field}: not in a separate kernel namespace, so it would change the host");
        }
    }
    Ok(())
}

fn check_rootfs_propagation(spec: &Spec) -> Result<()> {
    let Some(value) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
        .filter(|v| !v.is_empty())
    else {
        return Ok(());
    };
    if !ROOTFS_PROPAGATIONS.contains(&value) {
        bail!(
            "linux.rootfsPropagation: {value:?} is not one of {}",
            ROOTFS_PROPAGATIONS.join(", ")
        );
    }
    Ok(())
}

fn check_masked_readonly(spec: &Spec, namespaces: &Namespaces) -> Result<()> {
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    for (field, paths) in [
        ("linux.maskedPaths", linux.masked_paths()),
        ("linux.readonlyPaths", linux.readonly_paths()),
    ] {
        let paths = paths.as_deref().unwrap_or_default();
        if paths.is_empty() {
            continue;
        }
        if !namespaces.has(LinuxNamespaceType::Mount) {
            bail!("{field}: cannot restrict paths without a mount namespace");
        }
        for (i, path) in paths.iter().enumerate() {
            if !path.starts_with('/') {
                bail!("{field}[{i}]: {path:?} is not an absolute path");
            }
            if has_nul(path.as_bytes()) {
                bail!("{field}[{i}]: contains a NUL byte");
            }
        }
    }
    Ok(())
}

fn check_devices(spec: &Spec) -> Result<()> {
    let Some(devices) = spec.linux().as_ref().and_then(|l| l.devices().as_ref()) else {
        return Ok(());
    };
    for (i, device) in devices.iter().enumerate() {
        let field = format!("linux.devices[{i}]");
        if device.typ() == LinuxDeviceType::A {
            bail!("{field}.type: \"a\" is not a device type (expected c, b, u or p)");
        }
        let path = device.path();
        if path.as_os_str().is_empty() {
            bail!("{field}.path: missing");
        }
        if !path.is_absolute() {
            bail!("{field}.path: {} is not an absolute path", path.display());
        }
        if path_has_nul(path) {
            bail!("{field}.path: contains a NUL byte");
        }
        if climbs_out(path) {
            bail!(
                "{field}.path: {} leaves the container root through \"..\"",
                path.display()
            );
        }
        if device.typ() != LinuxDeviceType::P {
            for (name, value) in [("major", device.major()), ("minor", device.minor())] {
                if value < 0 {
                    bail!("{field}.{name}: {value} is negative");
                }
            }
        }
    }
    Ok(())
}

fn check_device_cgroup(spec: &Spec) -> Result<()> {
    let Some(rules) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.devices().as_ref())
    else {
        return Ok(());
    };
    for (i, rule) in rules.iter().enumerate() {
        let field = format!("linux.resources.devices[{i}].access");
        // runc refuses an empty access too; "allow nothing" is not what an absent one means.
        let access = rule.access().as_deref().unwrap_or_default();
        if access.is_empty() {
            bail!("{field}: missing (a combination of r, w and m)");
        }
        if let Some(c) = access.chars().find(|c| !matches!(c, 'r' | 'w' | 'm')) {
            bail!("{field}: {c:?} in {access:?} is not one of r, w, m");
        }
    }
    Ok(())
}

/// The kernel's dev_valid_name(): 1..=15 bytes, not "." or "..", no '/', ':' or whitespace.
fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_IFNAME_LEN
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c == '\0')
}

fn check_net_devices(spec: &Spec, namespaces: &Namespaces) -> Result<()> {
    let Some(devices) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.net_devices().as_ref())
        .filter(|d| !d.is_empty())
    else {
        return Ok(());
    };
    // A joined namespace is the common case (a pod's); kraal's own is refused in validate().
    if !namespaces.has(LinuxNamespaceType::Network) {
        bail!("linux.netDevices: set, but linux.namespaces has no network namespace");
    }
    for key in sorted_keys(devices) {
        let field = format!("linux.netDevices[{key:?}]");
        if !valid_ifname(key) {
            bail!("{field}: {key:?} is not a valid interface name (1 to {MAX_IFNAME_LEN} bytes, no '/', ':' or whitespace, not \".\" or \"..\")");
        }
        if let Some(name) = devices[key].name().as_deref().filter(|n| !n.is_empty()) {
            if !valid_ifname(name) {
                bail!("{field}.name: {name:?} is not a valid interface name (1 to {MAX_IFNAME_LEN} bytes, no '/', ':' or whitespace, not \".\" or \"..\")");
            }
        }
    }
    Ok(())
}

/// Features kraal does not implement are refused rather than silently skipped: a container
/// that asked for confinement must not run without it. Each flag lives in `features`, so
/// `kraal features` and this check change together.
fn check_unsupported(spec: &Spec) -> Result<()> {
    if let Some(process) = spec.process() {
        if !features::APPARMOR
            && process
                .apparmor_profile()
                .as_deref()
                .is_some_and(|p| !p.is_empty())
        {
            bail!("process.apparmorProfile: AppArmor is not supported by kraal");
        }
        if !features::SELINUX
            && process
                .selinux_label()
                .as_deref()
                .is_some_and(|l| !l.is_empty())
        {
            bail!("process.selinuxLabel: SELinux is not supported by kraal");
        }
    }
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    if !features::SECCOMP && linux.seccomp().is_some() {
        bail!("linux.seccomp: seccomp filtering is not supported by this kraal build");
    }
    if !features::INTEL_RDT && linux.intel_rdt().is_some() {
        bail!("linux.intelRdt: Intel RDT is not supported by kraal");
    }
    if !features::MEMORY_POLICY && linux.memory_policy().is_some() {
        bail!("linux.memoryPolicy: memory policies are not supported by kraal");
    }
    if !features::NET_DEVICES && linux.net_devices().as_ref().is_some_and(|d| !d.is_empty()) {
        bail!("linux.netDevices: moving network devices is not supported by kraal");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A scratch directory removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, Ordering::SeqCst);
            let path = std::env::temp_dir()
                .join(format!("kraal-validate-{tag}-{}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&path);
            fs::create_dir_all(&path).expect("create temp dir");
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn base() -> Value {
        json!({
            "ociVersion": "1.3.0",
            "root": {"path": "rootfs"},
            "process": {
                "user": {"uid": 0, "gid": 0},
                "args": ["sh"],
                "env": ["PATH=/bin"],
                "cwd": "/"
            },
            "linux": {
                "namespaces": [
                    {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                    {"type": "uts"}, {"type": "mount"}
                ]
            }
        })
    }

    fn spec_of(v: &Value) -> Spec {
        parse(v.to_string().as_bytes()).expect("test config parses")
    }

    /// The structural error for a config, or "" if it passes.
    fn structure_err(v: &Value) -> String {
        match check_structure(&spec_of(v)) {
            Ok(()) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    fn assert_err(v: &Value, expected: &str) {
        let err = structure_err(v);
        assert!(
            err.contains(expected),
            "expected error containing {expected:?}, got {err:?}"
        );
    }

    fn assert_ok(v: &Value) {
        assert_eq!(structure_err(v), "", "expected config to pass");
    }

    fn with_namespaces(mut v: Value, ns: Value) -> Value {
        v["linux"]["namespaces"] = ns;
        v
    }

    // ---- load / parse ----

    #[test]
    fn load_missing_file_names_the_path() {
        let dir = TempDir::new("missing");
        let err = load(&dir.0).unwrap_err().to_string();
        assert!(
            err.contains(&dir.0.join("config.json").display().to_string()),
            "{err}"
        );
        assert!(err.contains("no such file"), "{err}");
    }

    #[test]
    fn load_reads_a_valid_bundle() {
        let dir = TempDir::new("valid");
        fs::create_dir(dir.0.join("rootfs")).unwrap();
        fs::write(dir.0.join("config.json"), base().to_string()).unwrap();
        let spec = load(&dir.0).unwrap();
        assert_eq!(spec.version(), "1.3.0");
        validate(&spec, &dir.0).unwrap();
    }

    #[test]
    fn load_malformed_json_gives_line_and_column() {
        let dir = TempDir::new("malformed");
        fs::write(
            dir.0.join("config.json"),
            "{\n  \"ociVersion\": \"1.0.0\",\n  oops\n}",
        )
        .unwrap();
        let err = load(&dir.0).unwrap_err().to_string();
        assert!(err.contains("config.json: "), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn parse_names_json_path_of_unknown_namespace() {
        let mut v = base();
        v["linux"]["namespaces"][2] = json!({"type": "foo"});
        let err = parse(v.to_string().as_bytes()).unwrap_err().to_string();
        assert!(
            err.starts_with("linux.namespaces[2].type: unknown variant `foo`"),
            "{err}"
        );
        assert!(err.contains("line 1 column"), "{err}");
    }

    #[test]
    fn parse_names_json_path_of_wrong_type() {
        let mut v = base();
        v["process"]["user"]["uid"] = json!("root");
        let err = parse(v.to_string().as_bytes()).unwrap_err().to_string();
        assert!(err.starts_with("process.user.uid: invalid type"), "{err}");
    }

    #[test]
    fn parse_unknown_capability_names_the_field() {
        // oci-spec parses capability names into an enum, so an unknown name fails parsing;
        // the error must still point at the entry.
        let mut v = base();
        v["process"]["capabilities"] = json!({"bounding": ["CAP_KILL", "CAP_FOO"]});
        let err = parse(v.to_string().as_bytes()).unwrap_err().to_string();
        assert!(
            err.starts_with("process.capabilities.bounding[1]: unknown capability \"CAP_FOO\""),
            "{err}"
        );
    }

    #[test]
    fn parse_unknown_rlimit_names_the_field() {
        let mut v = base();
        v["process"]["rlimits"] = json!([{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]);
        let err = parse(v.to_string().as_bytes()).unwrap_err().to_string();
        assert!(
            err.starts_with("process.rlimits[0].type: unknown variant `RLIMIT_BOGUS`"),
            "{err}"
        );
    }

    #[test]
    fn parse_requires_rlimit_soft_and_hard() {
        let mut v = base();
        v["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 1}]);
        let err = parse(v.to_string().as_bytes()).unwrap_err().to_string();
        assert_eq!(err, "process.rlimits[0].soft: required");
    }

    #[test]
    fn parse_requires_major_minor_for_char_devices_only() {
        let mut v = base();
        v["linux"]["devices"] = json!([{"type": "c", "path": "/dev/x", "major": 1}]);
        let err = parse(v.to_string().as_bytes()).unwrap_err().to_string();
        assert_eq!(
            err,
            "linux.devices[0].minor: required for device type \"c\""
        );
        v["linux"]["devices"] = json!([{"type": "p", "path": "/dev/fifo"}]);
        parse(v.to_string().as_bytes()).unwrap();
    }

    #[test]
    fn parse_rejects_trailing_data() {
        let text = format!("{} x", base());
        let err = parse(text.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("trailing characters"), "{err}");
    }

    #[test]
    fn parse_top_level_error_has_no_path_prefix() {
        let err = parse(b"\"x\"").unwrap_err().to_string();
        assert!(
            err.starts_with("invalid type: string \"x\", expected"),
            "{err}"
        );
        let err = parse(b"[]").unwrap_err().to_string();
        assert_eq!(err, "the top level must be a JSON object");
    }

    // ---- root and version ----

    #[test]
    fn root_must_exist_and_be_a_directory() {
        let dir = TempDir::new("root");
        let spec = spec_of(&base());
        let err = validate(&spec, &dir.0).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "root.path: {} does not exist",
                dir.0.join("rootfs").display()
            )
        );
        fs::write(dir.0.join("rootfs"), "").unwrap();
        let err = validate(&spec, &dir.0).unwrap_err().to_string();
        assert!(err.ends_with("rootfs is not a directory"), "{err}");
        fs::remove_file(dir.0.join("rootfs")).unwrap();
        fs::create_dir(dir.0.join("rootfs")).unwrap();
        validate(&spec, &dir.0).unwrap();

        let mut v = base();
        v["root"]["path"] = json!(dir.0.join("rootfs"));
        validate(&spec_of(&v), Path::new("/nonexistent-bundle")).unwrap();
    }

    #[test]
    fn root_outside_the_bundle_must_be_absolute() {
        let mut v = base();
        v["root"]["path"] = json!("../../../..");
        assert_err(
            &v,
            "root.path: ../../../.. leaves the bundle through \"..\"",
        );
        v["root"]["path"] = json!("rootfs/../../other");
        assert_err(&v, "root.path: rootfs/../../other leaves the bundle");
        v["root"]["path"] = json!("images/../rootfs");
        assert_ok(&v);
        v["root"]["path"] = json!("/srv/../rootfs");
        assert_ok(&v);
    }

    #[test]
    fn symlinked_root_is_refused() {
        let dir = TempDir::new("rootlink");
        let outside = TempDir::new("rootlink-target");
        fs::create_dir(dir.0.join("rootfs")).unwrap();
        std::os::unix::fs::symlink(&outside.0, dir.0.join("link")).unwrap();
        std::os::unix::fs::symlink("rootfs", dir.0.join("rel")).unwrap();
        for (root, target) in [("link", &outside.0), ("rel", &dir.0.join("rootfs"))] {
            let mut v = base();
            v["root"]["path"] = json!(root);
            let err = validate(&spec_of(&v), &dir.0).unwrap_err().to_string();
            let want = format!(
                "root.path: {} is a symlink or passes through one (to {})",
                dir.0.join(root).display(),
                fs::canonicalize(target).unwrap().display()
            );
            assert!(err.starts_with(&want), "{err}");
        }
        // An absolute path through a symlinked directory is refused too.
        let mut v = base();
        v["root"]["path"] = json!(dir.0.join("link/."));
        let err = validate(&spec_of(&v), Path::new("/nonexistent-bundle")).unwrap_err();
        assert!(err.to_string().contains("is a symlink"), "{err}");
        v["root"]["path"] = json!(dir.0.join("rootfs/../rootfs"));
        validate(&spec_of(&v), Path::new("/nonexistent-bundle")).unwrap();
    }

    #[test]
    fn root_is_required() {
        let mut v = base();
        v.as_object_mut().unwrap().remove("root");
        assert_err(&v, "root: missing");
        v["root"] = json!({});
        assert_err(&v, "root.path: missing");
    }

    #[test]
    fn version_must_be_semver_major_1() {
        for good in ["1.0.0", "1.2.0-rc.1", "1.0.2-dev", "1.3.0+dev", "1.9.0"] {
            let mut v = base();
            v["ociVersion"] = json!(good);
            assert_ok(&v);
        }
        let mut v = base();
        v.as_object_mut().unwrap().remove("ociVersion");
        assert_err(&v, "ociVersion: missing");
        for (bad, msg) in [
            ("1.0", "is not a semantic version"),
            ("v1.0.0", "is not a semantic version"),
            ("1.0.0-", "is not a semantic version"),
            ("2.0.0", "is not supported"),
            ("0.5.0", "is not supported"),
        ] {
            v["ociVersion"] = json!(bad);
            assert_err(&v, &format!("ociVersion: {bad:?} {msg}"));
        }
    }

    // ---- process ----

    #[test]
    fn process_fields() {
        let mut v = base();
        v["process"]["args"] = json!([]);
        assert_err(&v, "process.args: must contain at least");

        let mut v = base();
        v["process"]["cwd"] = json!("work");
        assert_err(&v, "process.cwd: work is not an absolute path");

        let mut v = base();
        v["process"]["env"] = json!(["A=1", "NOEQUALS"]);
        assert_err(&v, "process.env[1]: \"NOEQUALS\" has no '='");
        v["process"]["env"] = json!(["=x"]);
        assert_err(&v, "process.env[0]: \"=x\" has an empty name");
        v["process"]["env"] = json!(["A=", "B=c=d"]);
        assert_ok(&v);

        let mut v = base();
        v["process"]["oomScoreAdj"] = json!(1001);
        assert_err(&v, "process.oomScoreAdj: 1001 is outside -1000..1000");
        v["process"]["oomScoreAdj"] = json!(-1000);
        assert_ok(&v);

        let mut v = base();
        v["process"]["user"]["umask"] = json!(0o1000);
        assert_err(&v, "process.user.umask:");
        v["process"]["user"]["umask"] = json!(0o777);
        assert_ok(&v);
    }

    #[test]
    fn process_rlimits() {
        let mut v = base();
        v["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 2048, "hard": 1024}]);
        assert_err(
            &v,
            "process.rlimits[0]: soft limit 2048 exceeds hard limit 1024 for RLIMIT_NOFILE",
        );
        v["process"]["rlimits"] = json!([
            {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024},
            {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
            {"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1}
        ]);
        assert_err(
            &v,
            "process.rlimits[2]: duplicate type RLIMIT_NOFILE (first at process.rlimits[0])",
        );
        v["process"]["rlimits"] = json!([{"type": "RLIMIT_RTTIME", "soft": 1, "hard": u64::MAX}]);
        assert_ok(&v);
    }

    #[test]
    fn process_scheduler_and_io_priority() {
        let mut v = base();
        v["process"]["scheduler"] = json!({"policy": "SCHED_OTHER", "nice": 20});
        assert_err(&v, "process.scheduler.nice: 20 is outside -20..19");
        v["process"]["scheduler"] = json!({"policy": "SCHED_OTHER", "priority": 5});
        assert_err(&v, "process.scheduler.priority:");
        v["process"]["scheduler"] = json!({"policy": "SCHED_FIFO", "priority": 5});
        assert_ok(&v);
        v["process"]["scheduler"] = json!({"policy": "SCHED_RR", "runtime": 5});
        assert_err(
            &v,
            "process.scheduler: runtime, deadline and period apply only to SCHED_DEADLINE",
        );
        v["process"]["scheduler"] =
            json!({"policy": "SCHED_DEADLINE", "runtime": 5, "deadline": 10, "period": 10});
        assert_ok(&v);

        let mut v = base();
        v["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 8});
        assert_err(&v, "process.ioPriority.priority: 8 is outside 0..7");
    }

    #[test]
    fn unsupported_security_features_are_refused() {
        let mut v = base();
        v["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW"});
        assert_eq!(features::SECCOMP, structure_err(&v).is_empty());
        let mut v = base();
        v["linux"]["intelRdt"] = json!({"closID": "x"});
        assert_err(&v, "linux.intelRdt: Intel RDT is not supported");
    }

    // ---- hooks and annotations ----

    #[test]
    fn hooks_need_absolute_paths_and_positive_timeouts() {
        let mut v = base();
        v["hooks"] = json!({"createRuntime": [{"path": "/bin/true"}, {"path": "hook"}]});
        assert_err(
            &v,
            "hooks.createRuntime[1].path: hook is not an absolute path",
        );
        v["hooks"] = json!({"poststop": [{"path": "/bin/true", "timeout": 0}]});
        assert_err(&v, "hooks.poststop[0].timeout: 0 is not greater than zero");
        v["hooks"] = json!({"prestart": [{"path": "/bin/true", "env": ["X"]}]});
        assert_err(&v, "hooks.prestart[0].env[0]:");
        v["hooks"] = json!({"poststart": [{"path": "/bin/true", "args": ["true"], "timeout": 5}]});
        assert_ok(&v);
    }

    #[test]
    fn annotation_keys_must_not_be_empty() {
        let mut v = base();
        v["annotations"] = json!({"": "x"});
        assert_err(&v, "annotations: keys must not be empty");
    }

    // ---- namespaces and id mappings ----

    #[test]
    fn duplicate_namespace_is_rejected() {
        let v = with_namespaces(
            base(),
            json!([{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "pid"}]),
        );
        assert_err(
            &v,
            "linux.namespaces[3]: duplicate namespace \"pid\" (first at linux.namespaces[0])",
        );
    }

    #[test]
    fn namespace_path_must_be_absolute() {
        let v = with_namespaces(base(), json!([{"type": "ipc", "path": "proc/1/ns/ipc"}]));
        assert_err(
            &v,
            "linux.namespaces[0].path: proc/1/ns/ipc is not an absolute path",
        );
        // An empty path means a new namespace, as in runc.
        let v = with_namespaces(base(), json!([{"type": "ipc", "path": ""}]));
        assert_ok(&v);
    }

    #[test]
    fn namespace_files_must_exist_and_match_the_type() {
        let spec = spec_of(&with_namespaces(
            base(),
            json!([{"type": "ipc", "path": "/nonexistent/ns/ipc"}]),
        ));
        let err = check_namespace_files(&spec).unwrap_err().to_string();
        assert_eq!(
            err,
            "linux.namespaces[0].path: /nonexistent/ns/ipc does not exist"
        );

        let spec = spec_of(&with_namespaces(
            base(),
            json!([{"type": "pid"}, {"type": "ipc", "path": "/proc/self/ns/net"}]),
        ));
        let err = check_namespace_files(&spec).unwrap_err().to_string();
        assert_eq!(
            err,
            "linux.namespaces[1].path: /proc/self/ns/net is a network namespace, not ipc"
        );

        let spec = spec_of(&with_namespaces(
            base(),
            json!([{"type": "uts", "path": "/proc/self/status"}]),
        ));
        let err = check_namespace_files(&spec).unwrap_err().to_string();
        assert_eq!(
            err,
            "linux.namespaces[0].path: /proc/self/status is not a namespace file"
        );

        let spec = spec_of(&with_namespaces(
            base(),
            json!([
                {"type": "network", "path": "/proc/self/ns/net"},
                {"type": "uts", "path": "/proc/self/ns/uts"},
                {"type": "mount", "path": "/proc/self/ns/mnt"}
            ]),
        ));
        check_namespace_files(&spec).unwrap();
    }

    fn userns_base() -> Value {
        let mut v = with_namespaces(base(), json!([{"type": "user"}, {"type": "mount"}]));
        v["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
        v["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
        v
    }

    #[test]
    fn user_namespace_mappings() {
        assert_ok(&userns_base());

        let mut v = userns_base();
        v["linux"].as_object_mut().unwrap().remove("gidMappings");
        assert_err(&v, "linux.gidMappings: required with a new user namespace");

        let mut v = userns_base();
        v["linux"]["namespaces"] = json!([{"type": "mount"}]);
        assert_err(
            &v,
            "linux.uidMappings: set, but linux.namespaces has no user namespace",
        );

        // Joining a user namespace: mappings optional, and tolerated when present.
        let mut v = userns_base();
        v["linux"]["namespaces"] = json!([{"type": "user", "path": "/proc/1/ns/user"}]);
        assert_ok(&v);
        v["linux"].as_object_mut().unwrap().remove("uidMappings");
        v["linux"].as_object_mut().unwrap().remove("gidMappings");
        assert_ok(&v);

        let mut v = userns_base();
        v["linux"]["uidMappings"][0]["size"] = json!(0);
        assert_err(&v, "linux.uidMappings[0].size: must be greater than 0");

        let mut v = userns_base();
        v["linux"]["uidMappings"] = json!([
            {"containerID": 0, "hostID": 1000, "size": 10},
            {"containerID": 5, "hostID": 5000, "size": 10}
        ]);
        assert_err(
            &v,
            "linux.uidMappings[1]: container range overlaps linux.uidMappings[0]",
        );
        v["linux"]["uidMappings"] = json!([
            {"containerID": 0, "hostID": 1000, "size": 10},
            {"containerID": 10, "hostID": 1009, "size": 10}
        ]);
        assert_err(
            &v,
            "linux.uidMappings[1]: host range overlaps linux.uidMappings[0]",
        );
        v["linux"]["uidMappings"] = json!([
            {"containerID": 0, "hostID": 1000, "size": 10},
            {"containerID": 10, "hostID": 1010, "size": 10}
        ]);
        assert_ok(&v);

        let mut v = userns_base();
        v["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": u32::MAX - 1, "size": 2}]);
        assert_err(
            &v,
            "linux.gidMappings[0]: hostID 4294967294 plus size 2 runs past",
        );

        let mut v = userns_base();
        let many: Vec<Value> = (0..341)
            .map(|i| json!({"containerID": i, "hostID": 100_000 + i, "size": 1}))
            .collect();
        v["linux"]["uidMappings"] = json!(many);
        assert_err(
            &v,
            "linux.uidMappings: 341 entries, the kernel accepts at most 340",
        );
        v["linux"]["uidMappings"] = json!(many[..340]);
        assert_ok(&v);
    }

    #[test]
    fn time_offsets() {
        let mut v = base();
        v["linux"]["timeOffsets"] = json!({"monotonic": {"secs": 10}});
        assert_err(
            &v,
            "linux.timeOffsets: set, but linux.namespaces has no time namespace",
        );
        v["linux"]["namespaces"] = json!([{"type": "time"}]);
        assert_ok(&v);
        v["linux"]["timeOffsets"] = json!({"realtime": {"secs": 10}});
        assert_err(&v, "linux.timeOffsets[\"realtime\"]: unknown clock");
        v["linux"]["timeOffsets"] = json!({"boottime": {"nanosecs": 1_000_000_000u32}});
        assert_err(&v, "linux.timeOffsets[\"boottime\"].nanosecs:");
        v["linux"]["namespaces"] = json!([{"type": "time", "path": "/proc/1/ns/time"}]);
        v["linux"]["timeOffsets"] = json!({"boottime": {"secs": 1}});
        assert_err(
            &v,
            "linux.timeOffsets: offsets apply only to a new time namespace",
        );
    }

    #[test]
    fn hostname_needs_uts_namespace() {
        let mut v = with_namespaces(base(), json!([{"type": "mount"}]));
        v["hostname"] = json!("box");
        assert_err(
            &v,
            "hostname: unable to set hostname without a private UTS namespace",
        );
        v["hostname"] = json!("");
        assert_ok(&v);
        let mut v = with_namespaces(base(), json!([{"type": "mount"}]));
        v["domainname"] = json!("example.org");
        assert_err(
            &v,
            "domainname: unable to set domainname without a private UTS namespace",
        );
        v["linux"]["namespaces"] = json!([{"type": "uts"}]);
        assert_ok(&v);
        // Joining a UTS namespace (a pod's) and naming it is allowed, as in runc.
        v["linux"]["namespaces"] = json!([{"type": "uts", "path": "/proc/1/ns/uts"}]);
        assert_ok(&v);
        v["hostname"] = json!("x".repeat(65));
        assert_err(&v, "hostname: 65 bytes long");
    }

    // ---- sysctl ----

    #[test]
    fn sysctl_rules_follow_runc() {
        let none = with_namespaces(base(), json!([{"type": "mount"}]));
        let all = with_namespaces(
            base(),
            json!([{"type": "ipc"}, {"type": "network"}, {"type": "uts"}, {"type": "user"}]),
        );
        // (key, error without any namespace, still refused with every namespace)
        let cases: &[(&str, &str, bool)] = &[
            (
                "kernel.shmmax",
                "not allowed without an IPC namespace",
                false,
            ),
            (
                "kernel/msgmnb",
                "not allowed without an IPC namespace",
                false,
            ),
            (
                "fs.mqueue.msg_max",
                "not allowed without an IPC namespace",
                false,
            ),
            (
                "net.ipv4.ip_forward",
                "not allowed in the host network namespace",
                false,
            ),
            (
                "net/ipv4/conf/eth0.100/forwarding",
                "not allowed in the host network namespace",
                false,
            ),
            (
                "kernel.domainname",
                "not allowed without a UTS namespace",
                false,
            ),
            (
                "user.max_user_namespaces",
                "not allowed without a user namespace",
                false,
            ),
            (
                "kernel.hostname",
                "not allowed; set the top-level hostname field",
                true,
            ),
            ("vm.swappiness", "not in a separate kernel namespace", true),
            ("kernel.pid_max", "not in a separate kernel namespace", true),
        ];
        for &(key, msg, refused_always) in cases {
            let mut v = none.clone();
            v["linux"]["sysctl"] = json!({key: "1"});
            assert_err(&v, &format!("linux.sysctl[{key:?}]: {msg}"));
            let mut v = all.clone();
            v["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
            v["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
            v["linux"]["sysctl"] = json!({key: "1"});
            if refused_always {
                assert_err(&v, &format!("linux.sysctl[{key:?}]: {msg}"));
            } else {
                assert_ok(&v);
            }
        }
    }

    #[test]
    fn sysctl_key_slash_form_is_converted() {
        assert_eq!(
            sysctl_dotted("net/ipv4/conf/eth0.100/rp_filter"),
            "net.ipv4.conf.eth0/100.rp_filter"
        );
        assert_eq!(sysctl_dotted("net.ipv4.ip_forward"), "net.ipv4.ip_forward");
        assert_eq!(sysctl_dotted("kernel"), "kernel");
    }

    #[test]
    fn net_sysctl_in_joined_host_netns_is_refused() {
        let mut v = with_namespaces(
            base(),
            json!([{"type": "network", "path": "/proc/self/ns/net"}]),
        );
        v["linux"]["sysctl"] = json!({"net.core.somaxconn": "256"});
        let spec = spec_of(&v);
        check_structure(&spec).unwrap();
        let err = check_host_netns_use(&spec).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "linux.sysctl[\"net.core.somaxconn\"]: not allowed in the host network namespace"
            ),
            "{err}"
        );
        v["linux"]["sysctl"] = json!({});
        check_host_netns_use(&spec_of(&v)).unwrap();
    }

    // ---- mounts ----

    fn with_mount(m: Value) -> Value {
        let mut v = base();
        v["mounts"] = json!([{"destination": "/proc", "type": "proc", "source": "proc"}, m]);
        v
    }

    #[test]
    fn mount_destination() {
        assert_err(
            &with_mount(json!({"destination": ""})),
            "mounts[1].destination: must not be empty",
        );
        assert_err(
            &with_mount(json!({"destination": "/../etc", "type": "tmpfs"})),
            "mounts[1].destination: /../etc leaves the container root through \"..\"",
        );
        assert_err(
            &with_mount(json!({"destination": "a/../../etc", "type": "tmpfs"})),
            "leaves the container root",
        );
        assert_ok(&with_mount(
            json!({"destination": "/a/../b", "type": "tmpfs"}),
        ));
        // Relative destinations are deprecated but valid.
        assert_ok(&with_mount(json!({"destination": "tmp", "type": "tmpfs"})));
    }

    #[test]
    fn bind_mounts() {
        assert_err(
            &with_mount(json!({"destination": "/data", "type": "bind"})),
            "mounts[1].source: required for a bind mount",
        );
        assert_err(
            &with_mount(json!({"destination": "/data", "options": ["rbind"]})),
            "mounts[1].source: required for a bind mount",
        );
        // Filesystem data on a bind mount is ignored (with a warning), as runc 1.1 did.
        assert_ok(&with_mount(
            json!({"destination": "/data", "source": "/srv", "options": ["rbind", "mode=755"]}),
        ));
        assert_ok(&with_mount(json!({
            "destination": "/data", "source": "/srv", "type": "none",
            "options": ["rbind", "ro", "nosuid", "nodev", "rprivate", "rro"]
        })));
        // Unknown options are filesystem data on a real mount.
        assert_ok(&with_mount(json!({
            "destination": "/tmp", "source": "tmpfs", "type": "tmpfs",
            "options": ["nosuid", "mode=1777", "size=64k", "whatever"]
        })));
        assert_ok(&with_mount(
            json!({"destination": "/tmp", "type": "tmpfs", "options": ["tmpcopyup"]}),
        ));
        assert_err(
            &with_mount(
                json!({"destination": "/x", "type": "bind", "source": "/srv", "options": ["tmpcopyup"]}),
            ),
            "mounts[1].options[0]: \"tmpcopyup\" applies only to tmpfs mounts",
        );
    }

    #[test]
    fn idmap_mounts() {
        let idmapped = json!({
            "destination": "/data", "source": "/srv", "type": "bind", "options": ["idmap"],
            "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 10}],
            "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 10}]
        });
        // While kraal lacks id-mapped mounts, any request for one is refused.
        if !features::IDMAP_MOUNTS {
            assert_err(&with_mount(idmapped.clone()), "mounts[1]: id-mapped mounts");
        }
        let check = |m: &Value, userns: bool| -> String {
            let mount: Mount = serde_json::from_value(m.clone()).unwrap();
            let mut namespaces = Namespaces::default();
            if userns {
                namespaces.entries.insert(LinuxNamespaceType::User, None);
            }
            match check_mount_idmap("m", &mount, is_bind(&mount), &namespaces, true) {
                Ok(()) => String::new(),
                Err(e) => e.to_string(),
            }
        };
        assert_eq!(check(&idmapped, false), "");
        let mut m = idmapped.clone();
        m.as_object_mut().unwrap().remove("gidMappings");
        assert_eq!(check(&m, false), "m.gidMappings: required with uidMappings");
        let mut m = idmapped.clone();
        m.as_object_mut().unwrap().remove("gidMappings");
        m.as_object_mut().unwrap().remove("uidMappings");
        assert!(check(&m, false).contains("needs uidMappings and gidMappings, or a user namespace"));
        assert_eq!(check(&m, true), "");
        let mut m = idmapped.clone();
        m["type"] = json!("tmpfs");
        assert_eq!(check(&m, false), "m: id-mapped mounts must be bind mounts");
        let mut m = idmapped;
        m["uidMappings"][0]["size"] = json!(0);
        assert_eq!(
            check(&m, false),
            "m.uidMappings[0].size: must be greater than 0"
        );
    }

    // ---- remaining linux fields ----

    #[test]
    fn intel_rdt_is_refused() {
        let mut v = base();
        v["linux"]["intelRdt"] = json!({"closID": "guaranteed", "l3CacheSchema": "L3:0=7f0"});
        assert_err(&v, "linux.intelRdt: Intel RDT is not supported by kraal");
    }

    #[test]
    fn rootfs_propagation_values() {
        let mut v = base();
        for good in ROOTFS_PROPAGATIONS {
            v["linux"]["rootfsPropagation"] = json!(good);
            assert_ok(&v);
        }
        v["linux"]["rootfsPropagation"] = json!("recursive");
        assert_err(
            &v,
            "linux.rootfsPropagation: \"recursive\" is not one of shared, slave",
        );
    }

    #[test]
    fn masked_and_readonly_paths() {
        let mut v = base();
        v["linux"]["maskedPaths"] = json!(["/proc/kcore", "proc/keys"]);
        assert_err(
            &v,
            "linux.maskedPaths[1]: \"proc/keys\" is not an absolute path",
        );
        let mut v = with_namespaces(base(), json!([{"type": "pid"}]));
        v["linux"]["readonlyPaths"] = json!(["/proc/sys"]);
        assert_err(
            &v,
            "linux.readonlyPaths: cannot restrict paths without a mount namespace",
        );
    }

    #[test]
    fn devices() {
        let mut v = base();
        v["linux"]["devices"] = json!([{"type": "a", "path": "/dev/x", "major": 1, "minor": 1}]);
        assert_err(&v, "linux.devices[0].type: \"a\" is not a device type");
        v["linux"]["devices"] = json!([{"type": "c", "path": "dev/x", "major": 1, "minor": 1}]);
        assert_err(&v, "linux.devices[0].path: dev/x is not an absolute path");
        v["linux"]["devices"] = json!([{"type": "b", "path": "/dev/x", "major": -1, "minor": 1}]);
        assert_err(&v, "linux.devices[0].major: -1 is negative");
        v["linux"]["devices"] =
            json!([{"type": "c", "path": "/dev/../../x", "major": 1, "minor": 3}]);
        assert_err(
            &v,
            "linux.devices[0].path: /dev/../../x leaves the container root",
        );
        v["linux"]["devices"] = json!([
            {"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229, "fileMode": 438},
            {"type": "u", "path": "/dev/u", "major": 1, "minor": 3},
            {"type": "p", "path": "/run/fifo"}
        ]);
        assert_ok(&v);
    }

    #[test]
    fn device_cgroup_access() {
        let mut v = base();
        v["linux"]["resources"] = json!({"devices": [{"allow": false}]});
        assert_err(&v, "linux.resources.devices[0].access: missing");
        v["linux"]["resources"] = json!({"devices": [{"allow": false, "access": "rwx"}]});
        assert_err(
            &v,
            "linux.resources.devices[0].access: 'x' in \"rwx\" is not one of r, w, m",
        );
        v["linux"]["resources"] = json!({"devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"}]});
        assert_ok(&v);
    }

    #[test]
    fn net_devices() {
        let mut v = with_namespaces(base(), json!([{"type": "mount"}]));
        v["linux"]["netDevices"] = json!({"eth1": {}});
        assert_err(
            &v,
            "linux.netDevices: set, but linux.namespaces has no network namespace",
        );
        v["linux"]["namespaces"] = json!([{"type": "network"}]);
        assert_ok(&v);
        v["linux"]["netDevices"] = json!({"eth1": {"name": "ctr%d"}, "veth-abcdefghijk": {}});
        assert_err(&v, "linux.netDevices[\"veth-abcdefghijk\"]: \"veth-abcdefghijk\" is not a valid interface name");
        for bad in ["", ".", "..", "a/b", "a b", "a:b"] {
            v["linux"]["netDevices"] = json!({"eth1": {"name": bad}});
            if bad.is_empty() {
                assert_ok(&v);
            } else {
                assert_err(&v, "linux.netDevices[\"eth1\"].name:");
            }
        }
        v["linux"]["netDevices"] = json!({"abcdefghijklmno": {"name": "eth0"}});
        assert_ok(&v);
    }

    #[test]
    fn net_devices_into_own_netns_are_refused() {
        let mut v = with_namespaces(
            base(),
            json!([{"type": "network", "path": "/proc/self/ns/net"}]),
        );
        v["linux"]["netDevices"] = json!({"eth1": {}});
        let err = check_host_netns_use(&spec_of(&v)).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "linux.netDevices: cannot move devices into the host network namespace"
            ),
            "{err}"
        );
    }

    #[test]
    fn climbs_out_tracks_depth() {
        assert!(climbs_out(Path::new("..")));
        assert!(climbs_out(Path::new("/a/../..")));
        assert!(!climbs_out(Path::new("/a/b/../..")));
        assert!(!climbs_out(Path::new("/a/./b")));
    }
}
