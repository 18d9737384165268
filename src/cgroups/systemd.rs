//! The systemd cgroup driver (`--systemd-cgroup`): the container's cgroup is a
//! transient scope that systemd creates, owns and removes, as runc's systemd driver does.
//!
//! This module owns the `slice:prefix:name` form of `linux.cgroupsPath`, the slice
//! naming rules (`a-b.slice` lives in `a.slice`), the translation of
//! `linux.resources` into unit properties, and the D-Bus conversation with systemd's
//! manager object (StartTransientUnit, SetUnitProperties, StopUnit, each job awaited
//! through its JobRemoved signal). Properties are only half of it: systemd does not
//! know every controller or every file, so after systemd has made the scope, kraal
//! joins the hierarchies systemd leaves alone and writes every resource through the
//! cgroupfs code, as for any other container.

use super::devices::{self, Kind, State, ANY};
use super::{convert, freezer, layout, v2, Cgroup, Hierarchy, Layout};
use crate::dbus::{self, Address, Conn, RemoteError, Value};
use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::LinuxResources;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The error every entry point returns on a host without systemd.
pub const NOT_RUNNING: &str = "--systemd-cgroup: systemd is not running (no /run/systemd/system)";

/// systemd creates this directory early at boot (sd_booted(3) checks it).
const BOOTED_MARKER: &str = "/run/systemd/system";
/// systemd's own socket, usable by root when no bus daemon runs.
const PRIVATE_SOCKET: &str = "/run/systemd/private";

const DEST: &str = "org.freedesktop.systemd1";
const PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";

const DEFAULT_SLICE: &str = "system.slice";
/// The unit prefix when `linux.cgroupsPath` is empty (runc uses "runc").
const DEFAULT_PREFIX: &str = "kraal";
/// How long systemd may take to run a start or stop job (runc waits as long).
const JOB_TIMEOUT: Duration = Duration::from_secs(30);
/// systemd's name for "no limit" in u64 properties (USEC_INFINITY, CGROUP_LIMIT_MAX).
const INFINITY: u64 = u64::MAX;
/// The kernel's default CFS period, which systemd assumes when none is given.
const DEFAULT_PERIOD: u64 = 100_000;
/// Highest CPU or memory node number accepted in cpuset lists (Linux's NR_CPUS limit).
const MAX_CPU: u32 = 8191;

/// True when systemd is PID 1 (as sd_booted(3) decides).
pub fn running() -> bool {
    running_at(Path::new(BOOTED_MARKER))
}

fn running_at(marker: &Path) -> bool {
    std::fs::symlink_metadata(marker)
        .map(|m| m.is_dir())
        .unwrap_or(false)
}

fn ensure_running() -> Result<()> {
    if !running() {
        bail!(NOT_RUNNING);
    }
    Ok(())
}

/// Splits `linux.cgroupsPath` (`slice:prefix:name`) into the slice and the scope unit
/// name. An empty path gives `kraal-<id>.scope` in `system.slice`; an empty slice is
/// `system.slice`; an empty prefix gives `<name>.scope`.
pub fn parse_path(cgroups_path: &str, id: &str) -> Result<(String, String)> {
    if cgroups_path.is_empty() {
        let unit = format!("{DEFAULT_PREFIX}-{}.scope", escape_unit_part(id));
        check_unit_name(&unit).with_context(|| format!("container id {id:?}"))?;
        return Ok((DEFAULT_SLICE.to_string(), unit));
    }
    let field = "linux.cgroupsPath";
    let parts: Vec<&str> = cgroups_path.split(':').collect();
    let [slice, prefix, name] = parts[..] else {
        bail!(
            "{field}: {cgroups_path:?} must have the form slice:prefix:name with --systemd-cgroup"
        );
    };
    let slice = if slice.is_empty() {
        DEFAULT_SLICE
    } else {
        slice
    };
    expand_slice(slice).with_context(|| format!("{field}: {cgroups_path:?}"))?;
    if name.is_empty() {
        bail!("{field}: {cgroups_path:?} has an empty name (slice:prefix:name)");
    }
    if name.ends_with(".slice") {
        bail!("{field}: {cgroups_path:?} names a slice: a container's processes need a scope");
    }
    let unit = if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    check_unit_name(&unit).with_context(|| format!("{field}: {cgroups_path:?}"))?;
    Ok((slice.to_string(), unit))
}

/// Characters kraal accepts in a unit name: systemd's set for plain names, less the
/// `:` that separates the parts of `linux.cgroupsPath` (and the `@` of templates).
fn unit_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-' | b'\\')
}

fn check_unit_name(unit: &str) -> Result<()> {
    if unit.len() > 255 {
        bail!("unit name {unit:?} is longer than systemd's 255 bytes");
    }
    if let Some(c) = unit.bytes().find(|&c| !unit_char(c)) {
        bail!(
            "unit name {unit:?}: character {:?} is not allowed (letters, digits, _ . - \\ only)",
            c as char
        );
    }
    Ok(())
}

/// Escapes what systemd does not allow in unit names as `\xNN` (systemd-escape's way),
/// so a container id such as `a+b` still names a valid unit.
fn escape_unit_part(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.bytes() {
        if unit_char(c) && c != b'\\' {
            out.push(c as char);
        } else {
            out.push_str(&format!("\\x{c:02x}"));
        }
    }
    out
}

/// The cgroup path of a slice, as systemd builds it: `a-b-c.slice` is
/// `/a.slice/a-b.slice/a-b-c.slice`, and `-.slice` is the root.
pub fn expand_slice(slice: &str) -> Result<PathBuf> {
    let bad = |why: &str| anyhow!("slice {slice:?} is not a valid slice name: {why}");
    let Some(base) = slice.strip_suffix(".slice") else {
        return Err(bad("it must end in .slice"));
    };
    if slice.contains('/') {
        return Err(bad("it must not contain /"));
    }
    if base.is_empty() {
        return Err(bad("it has no name before .slice"));
    }
    if base == "-" {
        return Ok(PathBuf::from("/"));
    }
    if let Some(c) = slice.bytes().find(|&c| !unit_char(c)) {
        return Err(bad(&format!("character {:?} is not allowed", c as char)));
    }
    let mut path = PathBuf::from("/");
    let mut prefix = String::new();
    for part in base.split('-') {
        if part.is_empty() {
            return Err(bad("a dash may not start or end it, nor follow another"));
        }
        prefix.push_str(part);
        path.push(cgroup_dir_name(&format!("{prefix}.slice")));
        prefix.push('-');
    }
    Ok(path)
}

/// The scope's directory in every mounted hierarchy (absolute: systemd places
/// units from the hierarchy's root, wherever kraal itself runs).
pub fn unit_dirs(hier: &[Hierarchy], slice: &str, unit: &str) -> Result<Vec<PathBuf>> {
    if hier.is_empty() {
        bail!("--systemd-cgroup: no cgroup hierarchy is mounted");
    }
    let rel = relative_unit_path(slice, unit)?;
    Ok(hier.iter().map(|h| h.mountpoint.join(&rel)).collect())
}

/// `<slice path>/<unit>` without the leading slash.
fn relative_unit_path(slice: &str, unit: &str) -> Result<PathBuf> {
    let s = expand_slice(slice)?;
    Ok(s.strip_prefix("/")
        .unwrap_or(&s)
        .join(cgroup_dir_name(unit)))
}

/// The directory systemd makes for a unit: its name, with a `_` in front when the
/// name could be mistaken for a cgroupfs file (`cpu.x.scope`, `cgroup.y.scope`,
/// `tasks`) or starts with `_` or `.` (systemd's cg_escape).
fn cgroup_dir_name(unit: &str) -> String {
    const CONTROLLERS: [&str; 13] = [
        "cpu",
        "cpuacct",
        "cpuset",
        "io",
        "blkio",
        "memory",
        "devices",
        "pids",
        "bpf-firewall",
        "bpf-devices",
        "bpf-foreign",
        "bpf-socket-bind",
        "bpf-restrict-network-interfaces",
    ];
    let clash = unit.starts_with(['_', '.'])
        || matches!(unit, "notify_on_release" | "release_agent" | "tasks")
        || unit.starts_with("cgroup.")
        || CONTROLLERS
            .iter()
            .any(|c| unit.strip_prefix(c).is_some_and(|r| r.starts_with('.')));
    if clash {
        format!("_{unit}")
    } else {
        unit.to_string()
    }
}

/// A cpuset list (`0-3,7`) as the bitmask systemd takes for AllowedCPUs and
/// AllowedMemoryNodes: byte i holds CPUs 8i..8i+7, lowest bit first.
pub fn range_to_bits(list: &str) -> Result<Vec<u8>> {
    let mut bits: Vec<u8> = Vec::new();
    let bad = |why: String| anyhow!("{list:?} is not a CPU list: {why}");
    let num = |s: &str| -> Result<u32> {
        let n: u32 = s
            .trim()
            .parse()
            .map_err(|_| bad(format!("{s:?} is not a number")))?;
        if n > MAX_CPU {
            return Err(bad(format!("{n} is above {MAX_CPU}")));
        }
        Ok(n)
    };
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => {
                let n = num(part)?;
                (n, n)
            }
        };
        if lo > hi {
            return Err(bad(format!("range {part:?} runs backwards")));
        }
        for i in lo..=hi {
            let byte = (i / 8) as usize;
            if bits.len() <= byte {
                bits.resize(byte + 1, 0);
            }
            bits[byte] |= 1 << (i % 8);
        }
    }
    if bits.is_empty() {
        return Err(bad("it is empty".to_string()));
    }
    Ok(bits)
}

/// One unit property, sent as `(sv)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Property {
    pub name: String,
    pub value: Value,
}

fn prop(name: &str, value: Value) -> Property {
    Property {
        name: name.to_string(),
        value,
    }
}

fn prop_u64(name: &str, v: u64) -> Property {
    prop(name, Value::U64(v))
}

fn prop_bool(name: &str, v: bool) -> Property {
    prop(name, Value::Bool(v))
}

/// Properties as the `a(sv)` argument of StartTransientUnit and SetUnitProperties.
pub fn properties_value(props: &[Property]) -> Value {
    Value::Array(
        "(sv)".into(),
        props
            .iter()
            .map(|p| Value::Struct(vec![Value::str(&p.name), Value::variant(p.value.clone())]))
            .collect(),
    )
}

/// A byte count as systemd takes it: negative means no limit.
fn bytes_limit(v: i64) -> u64 {
    if v < 0 {
        INFINITY
    } else {
        v as u64
    }
}

/// systemd versions that introduced the properties kraal sets conditionally.
const V_DEVICE_GROUPS: i64 = 240;
const V_QUOTA_PERIOD: i64 = 242;
const V_ALLOWED_CPUS: i64 = 244;
const V_CPU_IDLE: i64 = 252;
const V_OOM_POLICY: i64 = 253;

/// The unit properties for `res`, and a copy of `res` to write through cgroupfs
/// (with the CPU quota rounded as systemd rounds it, so both agree).
///
/// `v2` selects the property names of a pure cgroup v2 host (MemoryMax, CPUWeight,
/// IOWeight) over the v1 ones (MemoryLimit, CPUShares, BlockIOWeight). `initial`
/// (StartTransientUnit) always sends the device list; an update only when `res`
/// has one. `version` is systemd's; older versions do not get newer properties
/// (cgroupfs still applies those values).
pub fn resource_properties(
    res: &LinuxResources,
    v2: bool,
    version: i64,
    initial: bool,
) -> Result<(Vec<Property>, LinuxResources)> {
    let mut props = Vec::new();
    let mut adjusted = res.clone();

    if initial || res.devices().is_some() {
        let rules = devices::container_rules(res.devices().as_deref().unwrap_or(&[]))?;
        let state =
            State::from_rules(&rules).map_err(|e| anyhow!("linux.resources.devices: {e:#}"))?;
        props.extend(device_properties(&state, version));
    }

    if let Some(m) = res.memory() {
        let limit = m.limit().filter(|&l| l != 0);
        if v2 {
            if let Some(l) = limit {
                props.push(prop_u64("MemoryMax", bytes_limit(l)));
            }
            if let Some(r) = m.reservation().filter(|&r| r != 0) {
                props.push(prop_u64("MemoryLow", bytes_limit(r)));
            }
            let swap = convert::swap_to_v2(m.swap().unwrap_or(0), m.limit().unwrap_or(0))
                .map_err(|e| anyhow!("linux.resources.{e}"))?;
            if swap != 0 {
                props.push(prop_u64("MemorySwapMax", bytes_limit(swap)));
            }
        } else if let Some(l) = limit {
            props.push(prop_u64("MemoryLimit", bytes_limit(l)));
        }
    }

    if let Some(c) = res.cpu() {
        let mut idle_set = false;
        if v2 && c.idle() == Some(1) && version >= V_CPU_IDLE {
            // CPUWeight=0 is how systemd spells cpu.idle=1.
            props.push(prop_u64("CPUWeight", 0));
            idle_set = true;
        }
        if let Some(shares) = c.shares().filter(|&s| s != 0) {
            if !v2 {
                props.push(prop_u64("CPUShares", shares));
            } else if idle_set {
                crate::logging::warn(
                    "--systemd-cgroup: cpu.idle and cpu.shares cannot both be unit properties; cpu.shares is applied through cgroupfs only",
                );
            } else {
                props.push(prop_u64("CPUWeight", convert::shares_to_weight(shares)));
            }
        }
        let quota = c.quota().unwrap_or(0);
        let rounded = add_cpu_quota(&mut props, quota, c.period().unwrap_or(0), version);
        if rounded != quota {
            if let Some(cpu) = adjusted.cpu_mut() {
                cpu.set_quota(Some(rounded));
            }
        }
        add_cpuset(
            &mut props,
            c.cpus().as_deref(),
            c.mems().as_deref(),
            version,
        )?;
    }

    if let Some(p) = res.pids() {
        props.push(prop_u64("TasksMax", tasks_max(p.limit())));
    }

    if let Some(w) = res
        .block_io()
        .as_ref()
        .and_then(|b| b.weight())
        .filter(|&w| w != 0)
    {
        if v2 {
            props.push(prop_u64("IOWeight", convert::blkio_to_io_weight(w)));
        } else {
            props.push(prop_u64("BlockIOWeight", u64::from(w)));
        }
    }

    if let Some(u) = res.unified().as_ref().filter(|u| !u.is_empty()) {
        if !v2 {
            bail!(
                "linux.resources.unified: needs cgroup v2, and this host runs systemd on cgroup v1"
            );
        }
        props.extend(unified_properties(u, version)?);
    }
    Ok((props, adjusted))
}

/// TasksMax for a pids limit: systemd refuses 0, so the smallest it takes is sent and
/// cgroupfs then writes the real 0.
fn tasks_max(limit: i64) -> u64 {
    match limit {
        l if l < 0 => INFINITY,
        0 => 1,
        l => l as u64,
    }
}

/// Adds CPUQuotaPeriodUSec and CPUQuotaPerSecUSec; returns the quota that matches
/// what systemd will write. systemd keeps the quota as a whole percentage of a CPU
/// (10 ms per second), so a finer quota is rounded up.
fn add_cpu_quota(props: &mut Vec<Property>, quota: i64, period: u64, version: i64) -> i64 {
    if period != 0 {
        if version >= V_QUOTA_PERIOD {
            props.push(prop_u64("CPUQuotaPeriodUSec", period));
        } else {
            crate::logging::debug(&format!(
                "systemd {version} predates CPUQuotaPeriodUSec: the period is applied through cgroupfs only"
            ));
        }
    }
    if quota == 0 && period == 0 {
        return quota;
    }
    let mut out = quota;
    let mut per_sec = INFINITY;
    if quota > 0 {
        let period = if period == 0 { DEFAULT_PERIOD } else { period };
        per_sec = (quota as u64).saturating_mul(1_000_000) / period;
        if per_sec % 10_000 != 0 {
            per_sec = (per_sec / 10_000 + 1) * 10_000;
            out = i64::try_from(per_sec.saturating_mul(period) / 1_000_000).unwrap_or(i64::MAX);
        }
    }
    props.push(prop_u64("CPUQuotaPerSecUSec", per_sec));
    out
}

fn add_cpuset(
    props: &mut Vec<Property>,
    cpus: Option<&str>,
    mems: Option<&str>,
    version: i64,
) -> Result<()> {
    let cpus = cpus.filter(|s| !s.is_empty());
    let mems = mems.filter(|s| !s.is_empty());
    if cpus.is_none() && mems.is_none() {
        return Ok(());
    }
    if version < V_ALLOWED_CPUS {
        crate::logging::debug(&format!(
            "systemd {version} predates AllowedCPUs: cpus and mems are applied through cgroupfs only"
        ));
        return Ok(());
    }
    for (list, name, field) in [
        (cpus, "AllowedCPUs", "cpu.cpus"),
        (mems, "AllowedMemoryNodes", "cpu.mems"),
    ] {
        if let Some(l) = list {
            let bits = range_to_bits(l).with_context(|| format!("linux.resources.{field}"))?;
            props.push(prop(
                name,
                Value::Array("y".into(), bits.into_iter().map(Value::Byte).collect()),
            ));
        }
    }
    Ok(())
}

/// The `unified` keys systemd has properties for (as runc maps them); the others are
/// only written through cgroupfs.
fn unified_properties(map: &HashMap<String, String>, version: i64) -> Result<Vec<Property>> {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    let mut props = Vec::new();
    let idle = map.get("cpu.idle").map(|v| v.trim()) == Some("1") && version >= V_CPU_IDLE;
    for k in keys {
        let field = format!("linux.resources.unified[{k:?}]");
        let v = map[k].trim();
        let number = |s: &str| -> Result<u64> {
            s.parse()
                .map_err(|_| anyhow!("{field}: {s:?} is not a number"))
        };
        let limit = |s: &str| -> Result<u64> {
            if s == "max" {
                Ok(INFINITY)
            } else {
                number(s)
            }
        };
        match k.as_str() {
            "cpu.idle" if idle => props.push(prop_u64("CPUWeight", 0)),
            "cpu.weight" if !idle => props.push(prop_u64("CPUWeight", number(v)?)),
            "cpu.max" => {
                let f: Vec<&str> = v.split_whitespace().collect();
                if f.is_empty() || f.len() > 2 {
                    bail!("{field}: {v:?} is not \"QUOTA [PERIOD]\"");
                }
                let quota = if f[0] == "max" {
                    0
                } else {
                    i64::try_from(number(f[0])?)
                        .map_err(|_| anyhow!("{field}: quota {:?} is too large", f[0]))?
                };
                let period = match f.get(1) {
                    Some(p) => number(p)?,
                    None => DEFAULT_PERIOD,
                };
                add_cpu_quota(&mut props, quota, period, version);
            }
            "cpuset.cpus" | "cpuset.mems" if version >= V_ALLOWED_CPUS => {
                let name = if k == "cpuset.cpus" {
                    "AllowedCPUs"
                } else {
                    "AllowedMemoryNodes"
                };
                let bits = range_to_bits(v).with_context(|| field.clone())?;
                props.push(prop(
                    name,
                    Value::Array("y".into(), bits.into_iter().map(Value::Byte).collect()),
                ));
            }
            "memory.high" | "memory.low" | "memory.min" | "memory.max" | "memory.swap.max" => {
                let name = match k.as_str() {
                    "memory.high" => "MemoryHigh",
                    "memory.low" => "MemoryLow",
                    "memory.min" => "MemoryMin",
                    "memory.max" => "MemoryMax",
                    _ => "MemorySwapMax",
                };
                props.push(prop_u64(name, limit(v)?));
            }
            "pids.max" => {
                let n = limit(v)?;
                props.push(prop_u64("TasksMax", if n == 0 { 1 } else { n }));
            }
            _ => {}
        }
    }
    Ok(props)
}

/// OOMPolicy from `unified["memory.oom.group"]`: systemd only takes it when the unit
/// starts.
fn oom_policy(res: &LinuxResources, version: i64) -> Result<Option<Property>> {
    let Some(v) = res
        .unified()
        .as_ref()
        .and_then(|u| u.get("memory.oom.group"))
    else {
        return Ok(None);
    };
    if version < V_OOM_POLICY {
        return Ok(None);
    }
    Ok(match v.trim() {
        "0" => Some(prop("OOMPolicy", Value::str("continue"))),
        "1" => Some(prop("OOMPolicy", Value::str("kill"))),
        other => bail!("linux.resources.unified[\"memory.oom.group\"]: {other:?} is not 0 or 1"),
    })
}

/// DevicePolicy and DeviceAllow for the container's device list, so that systemd,
/// whenever it re-applies the unit's settings, grants exactly what kraal's own
/// cgroupfs rules or eBPF program grant (and not its default "allow everything").
pub fn device_properties(state: &State, version: i64) -> Vec<Property> {
    // An empty DeviceAllow first clears what the unit had.
    let clear = prop("DeviceAllow", Value::Array("(ss)".into(), vec![]));
    if state.is_allow_all() {
        return vec![clear, prop("DevicePolicy", Value::str("auto"))];
    }
    let strict = prop("DevicePolicy", Value::str("strict"));
    if state.default_allow {
        crate::logging::warn(
            "--systemd-cgroup: systemd cannot express a device deny list: the unit denies every device and kraal's own device rules grant the rest",
        );
        return vec![clear, strict];
    }
    let mut entries = Vec::new();
    for (node, access) in &state.exceptions {
        let group = match node.kind {
            Kind::Block => "block",
            Kind::Char => "char",
        };
        let path = match (node.major, node.minor) {
            (ANY, ANY) => format!("{group}-*"),
            (ANY, minor) => {
                crate::logging::warn(&format!(
                    "--systemd-cgroup: systemd has no rule for {} *:{minor}; kraal's own device rules still grant it",
                    node.kind.letter()
                ));
                continue;
            }
            (major, ANY) if version >= V_DEVICE_GROUPS => format!("{group}-{major}"),
            (major, ANY) => match proc_devices_group(node.kind, major) {
                Some(g) => format!("{group}-{g}"),
                None => continue,
            },
            (major, minor) => {
                let p = format!("/dev/{group}/{major}:{minor}");
                // Before v240 systemd stat()s the path and skips it when missing.
                if version < V_DEVICE_GROUPS && !Path::new(&p).exists() {
                    continue;
                }
                p
            }
        };
        entries.push(Value::Struct(vec![
            Value::Str(path),
            Value::Str(access.to_string()),
        ]));
    }
    vec![
        clear,
        strict,
        prop("DeviceAllow", Value::Array("(ss)".into(), entries)),
    ]
}

/// The driver name /proc/devices lists for a major number (older systemd only
/// understands those names for whole-major rules).
fn proc_devices_group(kind: Kind, major: i64) -> Option<String> {
    let text = std::fs::read_to_string("/proc/devices").ok()?;
    let header = match kind {
        Kind::Block => "Block devices:",
        Kind::Char => "Character devices:",
    };
    let mut in_section = false;
    for line in text.lines().map(str::trim) {
        if line.ends_with("devices:") {
            in_section = line == header;
            continue;
        }
        if !in_section {
            continue;
        }
        if let Some((n, name)) = line.split_once(' ') {
            if n.parse::<i64>().ok() == Some(major) {
                return Some(name.trim().to_string());
            }
        }
    }
    None
}

/// Parses systemd's Version property ("252.30-1~deb12u2", "v245.4-1.fc32") to its
/// major number.
pub fn parse_version(v: &str) -> Option<i64> {
    let v = v.trim_start_matches(['"', 'v']);
    let end = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    v[..end].parse().ok()
}

/// A connection to systemd's manager object.
pub struct Systemd {
    conn: Conn,
    version: Option<i64>,
}

impl Systemd {
    /// Connects as runc does: the system bus first, then (root only) systemd's private
    /// socket, which works without a bus daemon.
    pub fn connect() -> Result<Systemd> {
        ensure_running()?;
        let addr = std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
            .unwrap_or_else(|_| dbus::SYSTEM_BUS_DEFAULT.to_string());
        let bus = dbus::parse_address(&addr).and_then(|a| {
            let mut c = Conn::connect(&a)?;
            c.hello()?;
            Ok(c)
        });
        match bus {
            Ok(c) => Systemd::over_bus(c),
            Err(e) if nix::unistd::geteuid().is_root() => {
                match Conn::connect(&[Address::Path(PathBuf::from(PRIVATE_SOCKET))]) {
                    Ok(c) => Ok(Systemd::direct(c)),
                    Err(e2) => Err(anyhow!(
                        "--systemd-cgroup: cannot reach systemd over D-Bus: system bus ({addr}): {e:#}; {PRIVATE_SOCKET}: {e2:#}"
                    )),
                }
            }
            Err(e) => Err(e.context(format!(
                "--systemd-cgroup: cannot reach systemd over the system bus ({addr})"
            ))),
        }
    }

    /// Through a bus daemon (after Hello): JobRemoved reaches us only through a match.
    pub fn over_bus(mut conn: Conn) -> Result<Systemd> {
        conn.add_match(&format!(
            "type='signal',sender='{DEST}',path='{PATH}',interface='{MANAGER}',member='JobRemoved'"
        ))?;
        Ok(Systemd {
            conn,
            version: None,
        })
    }

    /// Straight to systemd: it sends every signal to direct connections.
    pub fn direct(conn: Conn) -> Systemd {
        Systemd {
            conn,
            version: None,
        }
    }

    fn call(
        &mut self,
        member: &str,
        args: Vec<Value>,
    ) -> Result<std::result::Result<Vec<Value>, RemoteError>> {
        self.conn
            .call_checked(Some(DEST), PATH, MANAGER, member, args, dbus::CALL_TIMEOUT)
    }

    /// systemd's major version, -1 when it cannot be read (only properties every
    /// version knows are then sent).
    pub fn version(&mut self) -> i64 {
        if let Some(v) = self.version {
            return v;
        }
        let r = self.conn.call(
            Some(DEST),
            PATH,
            "org.freedesktop.DBus.Properties",
            "Get",
            vec![Value::str(MANAGER), Value::str("Version")],
            dbus::CALL_TIMEOUT,
        );
        let v = match r {
            Ok(body) => body
                .first()
                .and_then(|v| v.inner().as_str())
                .and_then(parse_version),
            Err(e) => {
                crate::logging::warn(&format!("--systemd-cgroup: read systemd's version: {e:#}"));
                None
            }
        };
        let v = v.unwrap_or(-1);
        self.version = Some(v);
        v
    }

    /// Starts a transient unit and waits until systemd has run the job. A failed
    /// leftover of the same name is reset and the start tried once more.
    pub fn start_unit(&mut self, unit: &str, props: &[Property]) -> Result<()> {
        let args = vec![
            Value::str(unit),
            Value::str("replace"),
            properties_value(props),
            Value::Array("(sa(sv))".into(), vec![]),
        ];
        let mut retried = false;
        let job = loop {
            match self
                .call("StartTransientUnit", args.clone())
                .with_context(|| format!("--systemd-cgroup: start unit {unit}"))?
            {
                Ok(body) => break job_path(&body, "StartTransientUnit")?,
                Err(e) if e.name == "org.freedesktop.systemd1.UnitExists" && !retried => {
                    retried = true;
                    if let Err(e) = self.reset_failed(unit) {
                        crate::logging::warn(&format!("{e:#}"));
                    }
                }
                Err(e) => bail!(
                    "--systemd-cgroup: start unit {unit} (properties {}): {e}",
                    props
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        };
        let result = match self.wait_job(&job) {
            Ok(r) => r,
            Err(e) => {
                let _ = self.reset_failed(unit);
                return Err(e.context(format!("--systemd-cgroup: start unit {unit}")));
            }
        };
        if result != "done" {
            let _ = self.reset_failed(unit);
            bail!("--systemd-cgroup: systemd could not start unit {unit}: the job ended with {result:?}");
        }
        Ok(())
    }

    /// Stops a unit and waits for the job; a unit already gone is not an error
    /// (systemd collects a scope on its own once its processes have exited).
    pub fn stop_unit(&mut self, unit: &str) -> Result<()> {
        let r = self
            .call("StopUnit", vec![Value::str(unit), Value::str("replace")])
            .with_context(|| format!("--systemd-cgroup: stop unit {unit}"))?;
        match r {
            Ok(body) => {
                let job = job_path(&body, "StopUnit")?;
                let result = self
                    .wait_job(&job)
                    .with_context(|| format!("--systemd-cgroup: stop unit {unit}"))?;
                if result != "done" {
                    crate::logging::warn(&format!(
                        "--systemd-cgroup: stopping unit {unit} ended with {result:?}; continuing"
                    ));
                }
            }
            Err(e) if e.name == "org.freedesktop.systemd1.NoSuchUnit" => {}
            Err(e) => bail!("--systemd-cgroup: stop unit {unit}: {e}"),
        }
        // A unit that failed stays loaded until reset; let systemd forget it.
        let _ = self.reset_failed(unit);
        Ok(())
    }

    pub fn reset_failed(&mut self, unit: &str) -> Result<()> {
        match self.call("ResetFailedUnit", vec![Value::str(unit)])? {
            Ok(_) => Ok(()),
            Err(e) if e.name == "org.freedesktop.systemd1.NoSuchUnit" => Ok(()),
            Err(e) => bail!("--systemd-cgroup: reset failed unit {unit}: {e}"),
        }
    }

    /// Changes properties of a running unit (runtime only: nothing is persisted).
    pub fn set_properties(&mut self, unit: &str, props: &[Property]) -> Result<()> {
        let args = vec![Value::str(unit), Value::Bool(true), properties_value(props)];
        match self
            .call("SetUnitProperties", args)
            .with_context(|| format!("--systemd-cgroup: set properties of unit {unit}"))?
        {
            Ok(_) => Ok(()),
            Err(e) => bail!("--systemd-cgroup: set properties of unit {unit}: {e}"),
        }
    }

    /// Waits for JobRemoved of `job`; returns its result ("done", "failed", ...).
    fn wait_job(&mut self, job: &str) -> Result<String> {
        let deadline = Instant::now() + JOB_TIMEOUT;
        let m = self
            .conn
            .wait_signal(deadline, |m| {
                m.interface.as_deref() == Some(MANAGER)
                    && m.member.as_deref() == Some("JobRemoved")
                    && m.body.get(1).and_then(Value::as_str) == Some(job)
            })
            .with_context(|| format!("wait for systemd job {job}"))?;
        match m.body.get(3) {
            Some(Value::Str(r)) => Ok(r.clone()),
            _ => bail!(
                "JobRemoved for {job}: malformed signal (signature {:?})",
                m.signature()
            ),
        }
    }
}

/// `memory.checkBeforeUpdate` on v2: a limit at or below the current usage is refused
/// (the cgroupfs code checks the same, but only after systemd has applied it).
fn check_memory_usage(dir: &Path, res: &LinuxResources) -> Result<()> {
    let Some(m) = res
        .memory()
        .as_ref()
        .filter(|m| m.check_before_update() == Some(true))
    else {
        return Ok(());
    };
    let Ok(usage) = super::file::read_u64(dir, "memory.current") else {
        return Ok(());
    };
    for (name, v) in [("swap", m.swap()), ("limit", m.limit())] {
        if let Some(v) = v.filter(|&v| v > 0) {
            if v as u64 <= usage {
                bail!("linux.resources.memory.{name}: {v} is not above the current usage {usage} (checkBeforeUpdate)");
            }
        }
    }
    Ok(())
}

/// For the properties only: the spec's swap is memory+swap, so a swap value alone
/// (`update --memory-swap`) is read against the memory limit in force.
fn with_current_limit(res: &LinuxResources, dir: &Path) -> LinuxResources {
    let mut r = res.clone();
    if let Some(m) = r.memory_mut() {
        if m.swap().is_some_and(|s| s > 0) && m.limit().unwrap_or(0) == 0 {
            let cur = super::file::read(dir, "memory.max")
                .ok()
                .and_then(|v| match v.trim() {
                    "max" => Some(-1),
                    v => v.parse().ok(),
                });
            m.set_limit(cur);
        }
    }
    r
}

fn job_path(body: &[Value], method: &str) -> Result<String> {
    match body.first() {
        Some(Value::ObjectPath(p)) => Ok(p.clone()),
        _ => bail!("{method}: the reply carries no job path"),
    }
}

/// A container's cgroup under systemd: a transient scope in a slice, and the scope's
/// directory in each hierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemdCgroup {
    pub slice: String,
    pub unit: String,
    pub dirs: Vec<PathBuf>,
    pub description: String,
}

impl SystemdCgroup {
    /// Where the container's cgroups will be. Checks that systemd runs and that
    /// `cgroups_path` is valid, without talking to systemd yet, so `create` knows
    /// the directories before it clones the init.
    pub fn resolve(
        hier: &[Hierarchy],
        cgroups_path: Option<&str>,
        id: &str,
        rootless: bool,
    ) -> Result<SystemdCgroup> {
        ensure_running()?;
        if rootless {
            bail!("--systemd-cgroup: rootless containers would need systemd's per-user instance, which kraal does not drive; run without --systemd-cgroup");
        }
        let (slice, unit) = parse_path(cgroups_path.unwrap_or(""), id)?;
        let dirs = unit_dirs(hier, &slice, &unit)?;
        super::ensure_empty(&dirs)?;
        Ok(SystemdCgroup {
            slice,
            unit,
            dirs,
            description: format!("kraal container {id}"),
        })
    }

    /// Creates the scope holding `pid` (call it after the clone, before the init is
    /// released), with the resources as unit properties; then joins `pid` to the
    /// hierarchies systemd does not manage and writes every resource (and the device
    /// list) through cgroupfs. On error nothing is left: the unit is stopped.
    pub fn start(&self, hier: &[Hierarchy], pid: i32, res: &LinuxResources) -> Result<()> {
        ensure_running()?;
        let v2 = layout(hier) == Layout::Unified;
        let mut sd = Systemd::connect()?;
        let version = sd.version();
        let (props, adjusted) = self.start_properties(pid, res, v2, version)?;
        sd.start_unit(&self.unit, &props)?;
        if let Err(e) = self.join_and_apply(hier, pid, &adjusted) {
            // The init (our child, still waiting for its go) would otherwise hold the
            // stop job for the unit's whole stop timeout.
            // SAFETY: kill(2) on a pid this process forked and has not reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            if let Err(stop) = sd.stop_unit(&self.unit) {
                crate::logging::warn(&format!("{stop:#}"));
            }
            let _ = super::destroy(&self.dirs);
            return Err(e);
        }
        Ok(())
    }

    /// Every property StartTransientUnit gets, and the resources to write through
    /// cgroupfs afterwards (see [`resource_properties`]).
    pub fn start_properties(
        &self,
        pid: i32,
        res: &LinuxResources,
        v2: bool,
        version: i64,
    ) -> Result<(Vec<Property>, LinuxResources)> {
        let pid = u32::try_from(pid).map_err(|_| anyhow!("--systemd-cgroup: bad pid {pid}"))?;
        let mut props = vec![
            prop("Description", Value::str(&self.description)),
            prop("Slice", Value::str(&self.slice)),
            // The container may manage cgroups below its own (systemd in a container).
            prop_bool("Delegate", true),
            prop("PIDs", Value::Array("u".into(), vec![Value::U32(pid)])),
            // Accounting on from the start: joining the memory controller later is
            // unreliable, and stats then match the cgroupfs driver's.
            prop_bool("MemoryAccounting", true),
            prop_bool("CPUAccounting", true),
            prop_bool(
                if v2 {
                    "IOAccounting"
                } else {
                    "BlockIOAccounting"
                },
                true,
            ),
            prop_bool("TasksAccounting", true),
            // No implicit ordering against shutdown or basic.target: the container is
            // started now and stopped by its runtime.
            prop_bool("DefaultDependencies", false),
        ];
        let (res_props, adjusted) = resource_properties(res, v2, version, true)?;
        props.extend(res_props);
        if v2 {
            props.extend(oom_policy(res, version)?);
        }
        Ok((props, adjusted))
    }

    fn join_and_apply(&self, hier: &[Hierarchy], pid: i32, res: &LinuxResources) -> Result<()> {
        let rel = PathBuf::from("/").join(relative_unit_path(&self.slice, &self.unit)?);
        // Makes the directories systemd did not (v1 hierarchies it does not manage),
        // with cpuset.cpus/mems filled in.
        let cg = Cgroup::make(hier, Some(&rel), &self.unit)?;
        for (h, dir) in hier.iter().zip(&cg.dirs) {
            if h.v2 {
                // systemd enables only the controllers it knows; pass down the others
                // (hugetlb, rdma, misc) from the root to the scope, as runc does. The
                // root counts as "ours" here: under systemd it belongs to no one else.
                v2::enable_controllers(
                    &h.mountpoint,
                    &h.mountpoint,
                    dir,
                    std::slice::from_ref(&h.mountpoint),
                );
            }
        }
        cg.add(pid)?;
        cg.apply(hier, res)
    }

    /// `update`: sets the changed resources as unit properties, then writes them
    /// through cgroupfs (which also covers what systemd has no property for).
    pub fn update(unit: &str, dirs: &[PathBuf], res: &LinuxResources) -> Result<()> {
        ensure_running()?;
        let hier = super::hierarchies()?;
        let v2 = layout(&hier) == Layout::Unified;
        let v2_dir = super::Placement::new(&hier, dirs)
            .v2_dir()
            .map(Path::to_path_buf);
        if v2 {
            if let Some(d) = &v2_dir {
                // Before systemd sees the new limit: under it, v2 reclaims and OOM-kills
                // instead of refusing.
                check_memory_usage(d, res)?;
            }
        }
        let mut sd = Systemd::connect()?;
        let version = sd.version();
        let filled = match (&v2_dir, v2) {
            (Some(d), true) => with_current_limit(res, d),
            _ => res.clone(),
        };
        let (props, filled_adjusted) = resource_properties(&filled, v2, version, false)?;
        // cgroupfs gets what the caller asked for, with the quota rounded as systemd did.
        let mut adjusted = res.clone();
        if let (Some(c), Some(fc)) = (adjusted.cpu_mut(), filled_adjusted.cpu()) {
            c.set_quota(fc.quota());
        }
        if !props.is_empty() {
            // On v1, systemd rewrites the devices cgroup (deny all, then its list)
            // when device properties change; frozen, the container cannot hit the gap.
            let freeze = !v2
                && props.iter().any(|p| p.name.starts_with("Device"))
                && freezer::find(dirs).is_some()
                && !freezer::is_frozen(dirs);
            if freeze {
                freezer::freeze(dirs)
                    .context("--systemd-cgroup: freeze around SetUnitProperties")?;
            }
            let r = sd.set_properties(unit, &props);
            if freeze {
                freezer::thaw(dirs).context("--systemd-cgroup: thaw after SetUnitProperties")?;
            }
            r?;
        }
        super::update(dirs, &adjusted)
    }

    /// Stops the unit (systemd removes the cgroups it made) and waits for it.
    /// The caller removes what is left with [`super::destroy`]: directories in
    /// hierarchies systemd does not manage.
    pub fn stop(unit: &str) -> Result<()> {
        ensure_running()?;
        Systemd::connect()?.stop_unit(unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dbus::{Kind as MsgKind, Message};
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    fn names(props: &[Property]) -> Vec<&str> {
        props.iter().map(|p| p.name.as_str()).collect()
    }

    fn get<'a>(props: &'a [Property], name: &str) -> &'a Value {
        &props.iter().find(|p| p.name == name).unwrap().value
    }

    #[test]
    fn path_parsing() {
        assert_eq!(
            parse_path("system.slice:docker:abc", "x").unwrap(),
            ("system.slice".into(), "docker-abc.scope".into())
        );
        assert_eq!(
            parse_path(":cri-containerd:abc", "x").unwrap(),
            ("system.slice".into(), "cri-containerd-abc.scope".into())
        );
        assert_eq!(
            parse_path("machine-kraal.slice::c1", "x").unwrap(),
            ("machine-kraal.slice".into(), "c1.scope".into())
        );
        assert_eq!(
            parse_path("", "c1").unwrap(),
            ("system.slice".into(), "kraal-c1.scope".into())
        );
        // Ids may hold '+', which unit names may not: it is escaped.
        assert_eq!(parse_path("", "a+b").unwrap().1, "kraal-a\\x2bb.scope");
        let err = |p: &str| format!("{:#}", parse_path(p, "x").unwrap_err());
        assert!(err("/kraal-test/c1").starts_with(
            "linux.cgroupsPath: \"/kraal-test/c1\" must have the form slice:prefix:name"
        ));
        assert!(err("a:b").contains("slice:prefix:name"));
        assert!(err("a.slice:b:c:d").contains("slice:prefix:name"));
        assert!(err("system.slice:p:").contains("empty name"));
        assert!(err("system.slice:p:x.slice").contains("names a slice"));
        let e = err("a--b.slice:p:n");
        assert!(e.starts_with("linux.cgroupsPath: \"a--b.slice:p:n\": slice \"a--b.slice\" is not a valid slice name"), "{e}");
        assert!(err("system:p:n").contains("must end in .slice"));
        let e = err("system.slice:p:a b");
        assert!(
            e.starts_with("linux.cgroupsPath:") && e.contains("' '"),
            "{e}"
        );
        assert!(err("system.slice:p:a@b").contains("'@'"));
        assert!(err(&format!("system.slice:p:{}", "n".repeat(250))).contains("255"));
    }

    #[test]
    fn slice_expansion() {
        let ok = |s: &str| expand_slice(s).unwrap();
        assert_eq!(ok("system.slice"), PathBuf::from("/system.slice"));
        assert_eq!(
            ok("a-b-c.slice"),
            PathBuf::from("/a.slice/a-b.slice/a-b-c.slice")
        );
        assert_eq!(
            ok("machine-kraal.slice"),
            PathBuf::from("/machine.slice/machine-kraal.slice")
        );
        assert_eq!(ok("-.slice"), PathBuf::from("/"));
        for bad in [
            ".slice",
            "slice",
            "a--b.slice",
            "-a.slice",
            "a-.slice",
            "a/b.slice",
            "a b.slice",
            "system.slice.x",
        ] {
            assert!(expand_slice(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn directories_per_hierarchy() {
        let h = |m: &str, c: &[&str], v2: bool| Hierarchy {
            mountpoint: PathBuf::from(m),
            controllers: c.iter().map(|s| s.to_string()).collect(),
            v2,
            own: PathBuf::from("/process_api/x"),
        };
        let hybrid = [
            h("/sys/fs/cgroup/unified", &[], true),
            h("/sys/fs/cgroup/memory", &["memory"], false),
            h("/sys/fs/cgroup/cpu,cpuacct", &["cpu", "cpuacct"], false),
        ];
        assert_eq!(
            unit_dirs(&hybrid, "a-b.slice", "kraal-c1.scope").unwrap(),
            [
                PathBuf::from("/sys/fs/cgroup/unified/a.slice/a-b.slice/kraal-c1.scope"),
                PathBuf::from("/sys/fs/cgroup/memory/a.slice/a-b.slice/kraal-c1.scope"),
                PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/a.slice/a-b.slice/kraal-c1.scope"),
            ]
        );
        // Names systemd escapes in cgroupfs.
        assert_eq!(
            unit_dirs(&hybrid[..1], "cpu.slice", "memory.x.scope").unwrap(),
            [PathBuf::from(
                "/sys/fs/cgroup/unified/_cpu.slice/_memory.x.scope"
            )]
        );
        assert_eq!(cgroup_dir_name("cpuset-x.scope"), "cpuset-x.scope");
        assert_eq!(cgroup_dir_name("_x.scope"), "__x.scope");
        let unified = [h("/sys/fs/cgroup", &[], true)];
        assert_eq!(
            unit_dirs(&unified, "-.slice", "x.scope").unwrap(),
            [PathBuf::from("/sys/fs/cgroup/x.scope")]
        );
        assert!(unit_dirs(&[], "system.slice", "x.scope").is_err());
    }

    #[test]
    fn cpu_bitmasks() {
        assert_eq!(range_to_bits("0").unwrap(), [1]);
        assert_eq!(range_to_bits("0-3,7").unwrap(), [0x8f]);
        assert_eq!(range_to_bits("1,3-5").unwrap(), [0x3a]);
        assert_eq!(range_to_bits("8").unwrap(), [0, 1]);
        assert_eq!(range_to_bits(" 0-1 , 9,").unwrap(), [3, 2]);
        for bad in ["", ",", "3-1", "x", "1-", "-1", "99999"] {
            assert!(range_to_bits(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn v2_resource_properties() {
        let r = res(r#"{
            "memory": {"limit": 1048576, "reservation": 4096, "swap": 3145728},
            "cpu": {"shares": 1024, "quota": 12345, "period": 100000, "cpus": "0-1", "mems": "0"},
            "pids": {"limit": 0},
            "blockIO": {"weight": 500}
        }"#);
        let (p, adjusted) = resource_properties(&r, true, 252, false).unwrap();
        assert_eq!(
            names(&p),
            [
                "MemoryMax",
                "MemoryLow",
                "MemorySwapMax",
                "CPUWeight",
                "CPUQuotaPeriodUSec",
                "CPUQuotaPerSecUSec",
                "AllowedCPUs",
                "AllowedMemoryNodes",
                "TasksMax",
                "IOWeight"
            ]
        );
        assert_eq!(*get(&p, "MemoryMax"), Value::U64(1_048_576));
        assert_eq!(*get(&p, "MemoryLow"), Value::U64(4096));
        assert_eq!(*get(&p, "MemorySwapMax"), Value::U64(2_097_152));
        assert_eq!(*get(&p, "CPUWeight"), Value::U64(100));
        assert_eq!(*get(&p, "CPUQuotaPeriodUSec"), Value::U64(100_000));
        // 12345 µs per 100 ms is 123450 µs/s: systemd keeps whole percents, 130000.
        assert_eq!(*get(&p, "CPUQuotaPerSecUSec"), Value::U64(130_000));
        assert_eq!(adjusted.cpu().as_ref().unwrap().quota(), Some(13_000));
        assert_eq!(
            *get(&p, "AllowedCPUs"),
            Value::Array("y".into(), vec![Value::Byte(3)])
        );
        assert_eq!(*get(&p, "TasksMax"), Value::U64(1));
        assert_eq!(*get(&p, "IOWeight"), Value::U64(4950));

        // Unlimited values are systemd's infinity; idle replaces the weight.
        let r = res(
            r#"{"memory":{"limit":-1},"cpu":{"quota":-1,"idle":1,"shares":512},"pids":{"limit":-1}}"#,
        );
        let (p, adjusted) = resource_properties(&r, true, 252, false).unwrap();
        assert_eq!(*get(&p, "MemoryMax"), Value::U64(u64::MAX));
        assert_eq!(*get(&p, "MemorySwapMax"), Value::U64(u64::MAX));
        assert_eq!(*get(&p, "CPUWeight"), Value::U64(0));
        assert_eq!(names(&p).iter().filter(|n| **n == "CPUWeight").count(), 1);
        assert_eq!(*get(&p, "CPUQuotaPerSecUSec"), Value::U64(u64::MAX));
        assert_eq!(*get(&p, "TasksMax"), Value::U64(u64::MAX));
        assert_eq!(adjusted, r);

        // Old systemd: no period, no cpuset, no idle.
        let r = res(r#"{"cpu":{"period":50000,"cpus":"0","idle":1}}"#);
        let (p, _) = resource_properties(&r, true, 230, false).unwrap();
        assert_eq!(names(&p), ["CPUQuotaPerSecUSec"]);

        let e = resource_properties(
            &res(r#"{"memory":{"limit":100,"swap":50}}"#),
            true,
            252,
            false,
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with("linux.resources.memory.swap"),
            "{e}"
        );
        let e =
            resource_properties(&res(r#"{"cpu":{"cpus":"3-1"}}"#), true, 252, false).unwrap_err();
        assert!(
            format!("{e:#}").starts_with("linux.resources.cpu.cpus"),
            "{e:#}"
        );
    }

    #[test]
    fn v1_resource_properties() {
        let r = res(
            r#"{"memory":{"limit":1048576,"reservation":4096},"cpu":{"shares":512,"quota":50000},"blockIO":{"weight":300}}"#,
        );
        let (p, _) = resource_properties(&r, false, 252, false).unwrap();
        assert_eq!(
            names(&p),
            [
                "MemoryLimit",
                "CPUShares",
                "CPUQuotaPerSecUSec",
                "BlockIOWeight"
            ]
        );
        assert_eq!(*get(&p, "CPUShares"), Value::U64(512));
        assert_eq!(*get(&p, "CPUQuotaPerSecUSec"), Value::U64(500_000));
        assert_eq!(*get(&p, "BlockIOWeight"), Value::U64(300));
        let e = resource_properties(&res(r#"{"unified":{"pids.max":"3"}}"#), false, 252, false)
            .unwrap_err();
        assert!(e.to_string().starts_with("linux.resources.unified"), "{e}");
    }

    #[test]
    fn unified_map_properties() {
        let r = res(
            r#"{"unified":{"memory.high":"max","memory.min":"4096","cpu.max":"50000 200000","pids.max":"7","cpuset.cpus":"1","io.max":"8:0 rbps=1","memory.oom.group":"1"}}"#,
        );
        let (p, _) = resource_properties(&r, true, 253, false).unwrap();
        assert_eq!(
            names(&p),
            [
                "CPUQuotaPeriodUSec",
                "CPUQuotaPerSecUSec",
                "AllowedCPUs",
                "MemoryHigh",
                "MemoryMin",
                "TasksMax"
            ]
        );
        assert_eq!(*get(&p, "CPUQuotaPerSecUSec"), Value::U64(250_000));
        assert_eq!(*get(&p, "MemoryHigh"), Value::U64(u64::MAX));
        assert_eq!(
            oom_policy(&r, 253).unwrap(),
            Some(prop("OOMPolicy", Value::str("kill")))
        );
        assert_eq!(oom_policy(&r, 250).unwrap(), None);
        let e = resource_properties(
            &res(r#"{"unified":{"memory.max":"lots"}}"#),
            true,
            253,
            false,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("linux.resources.unified[\"memory.max\"]"),
            "{e}"
        );
    }

    #[test]
    fn default_device_list_as_systemd_rules() {
        let state = State::from_rules(&devices::container_rules(&[]).unwrap()).unwrap();
        let p = device_properties(&state, 252);
        assert_eq!(names(&p), ["DeviceAllow", "DevicePolicy", "DeviceAllow"]);
        assert_eq!(p[0].value, Value::Array("(ss)".into(), vec![]));
        assert_eq!(p[1].value, Value::str("strict"));
        let Value::Array(_, entries) = &p[2].value else {
            panic!("DeviceAllow is not an array");
        };
        let e = |path: &str, acc: &str| Value::Struct(vec![Value::str(path), Value::str(acc)]);
        assert_eq!(entries[0], e("block-*", "m"));
        assert_eq!(entries[1], e("char-*", "m"));
        assert!(entries.contains(&e("/dev/char/1:3", "rwm")));
        assert!(entries.contains(&e("/dev/char/10:200", "rwm")));
        assert_eq!(*entries.last().unwrap(), e("char-136", "rwm"));
        assert_eq!(entries.len(), 11);

        let all = State::from_rules(&[devices::Rule {
            allow: true,
            kind: None,
            major: ANY,
            minor: ANY,
            access: devices::Access::ALL,
        }])
        .unwrap();
        let p = device_properties(&all, 252);
        assert_eq!(p[1].value, Value::str("auto"));
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn start_properties_in_order() {
        let hier = [Hierarchy {
            mountpoint: PathBuf::from("/sys/fs/cgroup"),
            controllers: vec![],
            v2: true,
            own: PathBuf::from("/"),
        }];
        let (slice, unit) = parse_path("machine.slice:kraal:c1", "c1").unwrap();
        let cg = SystemdCgroup {
            dirs: unit_dirs(&hier, &slice, &unit).unwrap(),
            slice,
            unit,
            description: "kraal container c1".into(),
        };
        let (p, _) = cg
            .start_properties(4242, &res(r#"{"pids":{"limit":5}}"#), true, 252)
            .unwrap();
        assert_eq!(
            names(&p)[..9],
            [
                "Description",
                "Slice",
                "Delegate",
                "PIDs",
                "MemoryAccounting",
                "CPUAccounting",
                "IOAccounting",
                "TasksAccounting",
                "DefaultDependencies"
            ]
        );
        assert_eq!(*get(&p, "Slice"), Value::str("machine.slice"));
        assert_eq!(*get(&p, "Delegate"), Value::Bool(true));
        assert_eq!(
            *get(&p, "PIDs"),
            Value::Array("u".into(), vec![Value::U32(4242)])
        );
        assert_eq!(*get(&p, "DefaultDependencies"), Value::Bool(false));
        assert_eq!(*get(&p, "TasksMax"), Value::U64(5));
        assert_eq!(*get(&p, "DevicePolicy"), Value::str("strict"));
        assert_eq!(
            cg.dirs,
            [PathBuf::from("/sys/fs/cgroup/machine.slice/kraal-c1.scope")]
        );
    }

    /// The properties array, byte by byte: `a(sv)` with Delegate=true and PIDs=[7].
    #[test]
    fn property_array_bytes() {
        let v = properties_value(&[
            prop_bool("Delegate", true),
            prop("PIDs", Value::Array("u".into(), vec![Value::U32(7)])),
        ]);
        let mut e = dbus::Encoder::default();
        e.put(&v).unwrap();
        #[rustfmt::skip]
        let want: Vec<u8> = vec![
            48, 0, 0, 0,             // array length (its data runs from offset 8 to 56)
            0, 0, 0, 0,              // padding to the first struct
            8, 0, 0, 0, b'D', b'e', b'l', b'e', b'g', b'a', b't', b'e', 0, // "Delegate"
            1, b'b', 0,              // variant signature "b" (offset 21..24)
            1, 0, 0, 0,              // true
            0, 0, 0, 0,              // padding to the next struct (offset 32)
            4, 0, 0, 0, b'P', b'I', b'D', b's', 0, // "PIDs"
            2, b'a', b'u', 0,        // variant signature "au" (offset 41..45)
            0, 0, 0,                 // padding to 4 (offset 48)
            4, 0, 0, 0,              // the pid array's length
            7, 0, 0, 0,              // pid 7
        ];
        assert_eq!(e.buf, want);
    }

    /// A complete StartTransientUnit call survives marshalling and unmarshalling, and
    /// its body has systemd's signature.
    #[test]
    fn start_transient_unit_call_round_trips() {
        let props = vec![
            prop("Description", Value::str("kraal container c1")),
            prop("Slice", Value::str("system.slice")),
            prop_bool("Delegate", true),
            prop("PIDs", Value::Array("u".into(), vec![Value::U32(99)])),
            prop_u64("MemoryMax", 1 << 20),
            prop(
                "AllowedCPUs",
                Value::Array("y".into(), vec![Value::Byte(3)]),
            ),
            prop(
                "DeviceAllow",
                Value::Array(
                    "(ss)".into(),
                    vec![Value::Struct(vec![Value::str("char-*"), Value::str("m")])],
                ),
            ),
        ];
        let m = Message::method_call(
            Some(DEST),
            PATH,
            MANAGER,
            "StartTransientUnit",
            vec![
                Value::str("kraal-c1.scope"),
                Value::str("replace"),
                properties_value(&props),
                Value::Array("(sa(sv))".into(), vec![]),
            ],
        );
        assert_eq!(m.signature(), "ssa(sv)a(sa(sv))");
        let bytes = m.encode(5).unwrap();
        let back = Message::decode(&bytes).unwrap();
        assert_eq!(back.body, m.body);
        assert_eq!(back.member.as_deref(), Some("StartTransientUnit"));
    }

    #[test]
    fn memory_checks_before_an_update() {
        let d =
            super::super::fake::FakeDir::new(&[("memory.current", "1000"), ("memory.max", "5000")]);
        let check = |json: &str| check_memory_usage(&d.0, &res(json));
        let e = check(r#"{"memory":{"limit":1000,"checkBeforeUpdate":true}}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "linux.resources.memory.limit: 1000 is not above the current usage 1000 (checkBeforeUpdate)"
        );
        check(r#"{"memory":{"limit":1000}}"#).unwrap();
        check(r#"{"memory":{"limit":1001,"checkBeforeUpdate":true}}"#).unwrap();

        // A swap value alone is read against the limit in force: 8000 - 5000.
        let filled = with_current_limit(&res(r#"{"memory":{"swap":8000}}"#), &d.0);
        let (p, _) = resource_properties(&filled, true, 252, false).unwrap();
        assert_eq!(*get(&p, "MemorySwapMax"), Value::U64(3000));
        d.set("memory.max", "max\n");
        let filled = with_current_limit(&res(r#"{"memory":{"swap":8000}}"#), &d.0);
        let (p, _) = resource_properties(&filled, true, 252, false).unwrap();
        assert_eq!(*get(&p, "MemorySwapMax"), Value::U64(8000));
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("252.30-1~deb12u2"), Some(252));
        assert_eq!(parse_version("v245.4-1.fc32"), Some(245));
        assert_eq!(parse_version("\"v239\""), Some(239));
        assert_eq!(parse_version("unknown"), None);
    }

    /// The entry points on this host: without systemd they all fail with the same
    /// message; with it (the VM), resolving works and stopping an unknown unit is
    /// not an error.
    #[test]
    fn entry_points_follow_whether_systemd_runs() {
        assert!(!running_at(Path::new(
            "/nonexistent/kraal/run/systemd/system"
        )));
        let hier = super::super::hierarchies().unwrap();
        let res = res(r#"{"pids":{"limit":5}}"#);
        let resolved = SystemdCgroup::resolve(&hier, Some("system.slice:kraal:t1"), "t1", false);
        let updated = SystemdCgroup::update("kraal-t1-absent.scope", &[], &res);
        let stopped = SystemdCgroup::stop("kraal-t1-absent.scope");
        let connected = Systemd::connect();
        let rootless = SystemdCgroup::resolve(&hier, None, "t1", true);
        if running() {
            assert_eq!(resolved.unwrap().unit, "kraal-t1.scope");
            let e = rootless.unwrap_err().to_string();
            assert!(e.starts_with("--systemd-cgroup: rootless"), "{e}");
            stopped.unwrap();
            assert!(updated.is_err());
        } else {
            for e in [
                resolved.unwrap_err(),
                updated.unwrap_err(),
                stopped.unwrap_err(),
                connected.err().unwrap(),
                rootless.unwrap_err(),
            ] {
                assert_eq!(format!("{e:#}"), NOT_RUNNING);
            }
        }
    }

    /// A fake systemd behind a fake bus on a socketpair: answers Hello, AddMatch, the
    /// Version property, refuses the first start (a leftover unit), expects the reset,
    /// then accepts, and announces the job's end (after an unrelated job's, and
    /// before its own reply). Then a stop of a unit that is already gone.
    #[test]
    fn conversation_with_a_fake_systemd() {
        let (client, mut server) = UnixStream::pair().unwrap();
        let t = std::thread::spawn(move || -> Result<Vec<String>> {
            let mut b = vec![0u8; 0];
            let mut byte = [0u8; 1];
            while !b.ends_with(b"\r\n") {
                server.read_exact(&mut byte)?;
                b.push(byte[0]);
            }
            assert!(b.starts_with(b"\0AUTH EXTERNAL "));
            server.write_all(b"OK 00112233445566778899aabbccddeeff\r\n")?;
            let mut begin = [0u8; 7];
            server.read_exact(&mut begin)?;
            let mut bus = FakeBus {
                s: server,
                buf: Vec::new(),
                serial: 1,
            };
            let mut seen = Vec::new();
            loop {
                let Some(m) = bus.read()? else { break };
                assert_eq!(m.kind, MsgKind::MethodCall);
                seen.push(m.member.clone().unwrap_or_default());
                let reply = match m.member.as_deref().unwrap_or("") {
                    "Hello" => Message::method_return(m.serial, vec![Value::str(":1.7")]),
                    "AddMatch" => {
                        assert!(m.body[0].as_str().unwrap().contains("member='JobRemoved'"));
                        Message::method_return(m.serial, vec![])
                    }
                    "Get" => Message::method_return(
                        m.serial,
                        vec![Value::variant(Value::str("252.30-1~deb12u2"))],
                    ),
                    "StartTransientUnit"
                        if !seen[..seen.len() - 1].contains(&"ResetFailedUnit".to_string()) =>
                    {
                        Message::error(
                            m.serial,
                            "org.freedesktop.systemd1.UnitExists",
                            "Unit kraal-c1.scope already exists.",
                        )
                    }
                    "StartTransientUnit" => {
                        assert_eq!(m.signature(), "ssa(sv)a(sa(sv))");
                        assert_eq!(m.body[0], Value::str("kraal-c1.scope"));
                        assert_eq!(m.destination.as_deref(), Some(DEST));
                        let removed = |job: &str, result: &str| {
                            Message::signal(
                                PATH,
                                MANAGER,
                                "JobRemoved",
                                vec![
                                    Value::U32(1),
                                    Value::ObjectPath(job.into()),
                                    Value::str("kraal-c1.scope"),
                                    Value::str(result),
                                ],
                            )
                        };
                        bus.send(removed("/org/freedesktop/systemd1/job/1", "failed"))?;
                        bus.send(removed("/org/freedesktop/systemd1/job/2", "done"))?;
                        Message::method_return(
                            m.serial,
                            vec![Value::ObjectPath("/org/freedesktop/systemd1/job/2".into())],
                        )
                    }
                    "ResetFailedUnit" => Message::method_return(m.serial, vec![]),
                    "StopUnit" => Message::error(
                        m.serial,
                        "org.freedesktop.systemd1.NoSuchUnit",
                        "Unit kraal-c1.scope not loaded.",
                    ),
                    other => panic!("unexpected call {other}"),
                };
                bus.send(reply)?;
            }
            Ok(seen)
        });
        let mut c = Conn::authenticate(client).unwrap();
        c.hello().unwrap();
        let mut sd = Systemd::over_bus(c).unwrap();
        assert_eq!(sd.version(), 252);
        sd.start_unit("kraal-c1.scope", &[prop_bool("Delegate", true)])
            .unwrap();
        sd.stop_unit("kraal-c1.scope").unwrap();
        drop(sd);
        let seen = t.join().unwrap().unwrap();
        assert_eq!(
            seen,
            [
                "Hello",
                "AddMatch",
                "Get",
                "StartTransientUnit",
                "ResetFailedUnit",
                "StartTransientUnit",
                "StopUnit",
                "ResetFailedUnit"
            ]
        );
    }

    /// The driver's calls routed by a real dbus-daemon to a stand-in that owns
    /// systemd's bus name: the match on `sender='org.freedesktop.systemd1'` must let
    /// its JobRemoved broadcasts through, and replies must find their way back.
    #[test]
    fn conversation_through_a_real_bus_daemon() {
        let d = crate::dbus::test_daemon::Daemon::start();
        let addrs = dbus::parse_address(&d.address).unwrap();
        let mut b = Conn::connect(&addrs).unwrap();
        b.hello().unwrap();
        let owner = b
            .call(
                Some(dbus::BUS_NAME),
                dbus::BUS_PATH,
                dbus::BUS_INTERFACE,
                "RequestName",
                vec![Value::str(DEST), Value::U32(4)],
                dbus::CALL_TIMEOUT,
            )
            .unwrap();
        assert_eq!(owner, [Value::U32(1)], "RequestName: not the primary owner");
        let server = std::thread::spawn(move || -> Result<Vec<(String, Vec<Value>)>> {
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut seen = Vec::new();
            let mut jobs = 0;
            loop {
                let m = b.read_message(deadline)?;
                if m.kind != MsgKind::MethodCall {
                    continue;
                }
                let member = m.member.clone().unwrap_or_default();
                seen.push((m.name(), m.body.clone()));
                let mut job = None;
                let mut reply = match member.as_str() {
                    "Get" => Message::method_return(
                        m.serial,
                        vec![Value::variant(Value::str("255.4-1"))],
                    ),
                    "StartTransientUnit" | "StopUnit" => {
                        jobs += 1;
                        let p = format!("{PATH}/job/{jobs}");
                        job = Some(p.clone());
                        Message::method_return(m.serial, vec![Value::ObjectPath(p)])
                    }
                    _ => Message::method_return(m.serial, vec![]),
                };
                reply.destination = m.sender.clone();
                b.send(&reply)?;
                if let Some(p) = job {
                    b.send(&Message::signal(
                        PATH,
                        MANAGER,
                        "JobRemoved",
                        vec![
                            Value::U32(jobs),
                            Value::ObjectPath(p),
                            Value::str("kraal-c1.scope"),
                            Value::str("done"),
                        ],
                    ))?;
                }
                if member == "ResetFailedUnit" {
                    return Ok(seen);
                }
            }
        });
        let mut a = Conn::connect(&addrs).unwrap();
        a.hello().unwrap();
        let mut sd = Systemd::over_bus(a).unwrap();
        assert_eq!(sd.version(), 255);
        sd.start_unit("kraal-c1.scope", &[prop_bool("Delegate", true)])
            .unwrap();
        sd.set_properties("kraal-c1.scope", &[prop_u64("TasksMax", 5)])
            .unwrap();
        sd.stop_unit("kraal-c1.scope").unwrap();
        let seen = server.join().unwrap().unwrap();
        let calls: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            calls,
            [
                "org.freedesktop.DBus.Properties.Get",
                "org.freedesktop.systemd1.Manager.StartTransientUnit",
                "org.freedesktop.systemd1.Manager.SetUnitProperties",
                "org.freedesktop.systemd1.Manager.StopUnit",
                "org.freedesktop.systemd1.Manager.ResetFailedUnit"
            ]
        );
        assert_eq!(
            seen[2].1,
            [
                Value::str("kraal-c1.scope"),
                Value::Bool(true),
                properties_value(&[prop_u64("TasksMax", 5)])
            ]
        );
        assert_eq!(
            seen[3].1,
            [Value::str("kraal-c1.scope"), Value::str("replace")]
        );
    }

    /// A job that ends in anything but "done" fails the start, naming the result.
    #[test]
    fn failed_job_is_an_error() {
        let (client, server) = UnixStream::pair().unwrap();
        let t = std::thread::spawn(move || -> Result<()> {
            let mut bus = FakeBus {
                s: server,
                buf: Vec::new(),
                serial: 1,
            };
            bus.skip_auth()?;
            while let Some(m) = bus.read()? {
                if m.member.as_deref() == Some("StartTransientUnit") {
                    bus.send(Message::method_return(
                        m.serial,
                        vec![Value::ObjectPath("/org/freedesktop/systemd1/job/9".into())],
                    ))?;
                    bus.send(Message::signal(
                        PATH,
                        MANAGER,
                        "JobRemoved",
                        vec![
                            Value::U32(9),
                            Value::ObjectPath("/org/freedesktop/systemd1/job/9".into()),
                            Value::str("x.scope"),
                            Value::str("failed"),
                        ],
                    ))?;
                } else {
                    bus.send(Message::method_return(m.serial, vec![]))?;
                }
            }
            Ok(())
        });
        let c = Conn::authenticate(client).unwrap();
        // Straight to "systemd": no Hello, no AddMatch.
        let mut sd = Systemd::direct(c);
        let e = sd.start_unit("x.scope", &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--systemd-cgroup: systemd could not start unit x.scope: the job ended with \"failed\""
        );
        drop(sd);
        t.join().unwrap().unwrap();
    }

    /// The server half of a fake bus.
    struct FakeBus {
        s: UnixStream,
        buf: Vec<u8>,
        serial: u32,
    }

    impl FakeBus {
        fn skip_auth(&mut self) -> Result<()> {
            loop {
                let mut byte = [0u8; 1];
                self.s.read_exact(&mut byte)?;
                self.buf.push(byte[0]);
                if self.buf.ends_with(b"\r\n") {
                    break;
                }
            }
            self.buf.clear();
            self.s
                .write_all(b"OK 00112233445566778899aabbccddeeff\r\n")?;
            let mut begin = [0u8; 7];
            self.s.read_exact(&mut begin)?;
            Ok(())
        }

        /// The next message, or None once the client hung up.
        fn read(&mut self) -> Result<Option<Message>> {
            loop {
                if self.buf.len() >= 16 {
                    let n = Message::frame_len(&self.buf[..16])?;
                    if self.buf.len() >= n {
                        let m = Message::decode(&self.buf[..n])?;
                        self.buf.drain(..n);
                        return Ok(Some(m));
                    }
                }
                let mut tmp = [0u8; 4096];
                let n = self.s.read(&mut tmp)?;
                if n == 0 {
                    return Ok(None);
                }
                self.buf.extend_from_slice(&tmp[..n]);
            }
        }

        fn send(&mut self, m: Message) -> Result<()> {
            self.serial += 1;
            self.s.write_all(&m.encode(self.serial)?)?;
            Ok(())
        }
    }
}
