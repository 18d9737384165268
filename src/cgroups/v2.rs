//! cgroup v2 controllers: the spec's (v1-shaped) `linux.resources` converted to v2's
//! files (`memory.max`, `cpu.max`, `cpu.weight`, `io.max`, ...), the `unified` map
//! written as given, and enabling controllers down the tree so the container's cgroup
//! can use them.
//!
//! Fields v2 has no file for are refused up front (see the `check_*` functions) so a
//! config is never half applied. `cpuset`, `pids` and `rdma` use the same files as
//! v1 and live in `v1.rs`.

use super::convert;
use super::file::{self, errno};
use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxHugepageLimit, LinuxMemory};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn set(v: Option<i64>) -> Option<i64> {
    v.filter(|&v| v != 0)
}

/// "max" for -1 (and any negative), else the number.
fn limit_str(v: i64) -> String {
    if v < 0 {
        "max".to_string()
    } else {
        v.to_string()
    }
}

/// Memory fields v2 cannot express. disableOOMKiller and swappiness are ignored
/// with a warning, as runc's v2 driver does (clients set them on every host);
/// useHierarchy=false cannot be honoured and is refused.
pub fn check_memory(m: &LinuxMemory) -> Result<()> {
    let f = "linux.resources.memory";
    if m.disable_oom_killer() == Some(true) {
        crate::logging::warn(&format!(
            "{f}.disableOOMKiller: ignored, cgroup v2 cannot disable the OOM killer"
        ));
    }
    if let Some(s) = m.swappiness().filter(|&s| s != u64::MAX) {
        crate::logging::warn(&format!(
            "{f}.swappiness: {s} ignored, cgroup v2 has no per-cgroup swappiness"
        ));
    }
    if m.use_hierarchy() == Some(false) {
        bail!("{f}.useHierarchy: cgroup v2 is always hierarchical");
    }
    Ok(())
}

pub fn memory(dir: &Path, m: &LinuxMemory) -> Result<()> {
    let f = "linux.resources.memory";
    check_memory(m)?;
    let limit = set(m.limit());
    let swap = set(m.swap());
    if m.check_before_update() == Some(true) {
        // v2 answers a limit below usage with reclaim and the OOM killer, not an
        // error; the spec asks for v1's refusal. Best effort: no usage, no check.
        if let Ok(usage) = file::read_u64(dir, "memory.current") {
            for (name, v) in [("swap", swap), ("limit", limit)] {
                if let Some(v) = v.filter(|&v| v > 0) {
                    if v as u64 <= usage {
                        bail!("{f}.{name}: {v} is not above the current usage {usage} (checkBeforeUpdate)");
                    }
                }
            }
        }
    }
    if let Some(s) = swap {
        // memory+swap needs the memory limit; on update take the one in force.
        let l = match limit {
            Some(l) => l,
            None => match file::read(dir, "memory.max")?.trim() {
                "max" => -1,
                v => v.parse().unwrap_or(0),
            },
        };
        let v2 = convert::swap_to_v2(s, l).map_err(|e| anyhow!("linux.resources.{e}"))?;
        let text = if v2 == 0 {
            // Swap equal to the limit: no swap at all.
            "0".to_string()
        } else {
            limit_str(v2)
        };
        write_swap(dir, &text)?;
    } else if limit == Some(-1) {
        // Unlimited memory without a swap value lifts swap too, as on v1.
        write_swap(dir, "max")?;
    }
    if let Some(l) = limit {
        file::write(dir, "memory.max", &limit_str(l)).with_context(|| format!("{f}.limit"))?;
    }
    if let Some(r) = set(m.reservation()) {
        file::write(dir, "memory.low", &limit_str(r))
            .with_context(|| format!("{f}.reservation"))?;
    }
    #[allow(deprecated)]
    let kernel = m.kernel();
    if set(kernel).is_some() || set(m.kernel_tcp()).is_some() {
        // NOT RECOMMENDED since runtime-spec 1.1; v2 accounts kernel memory in memory.max.
        crate::logging::warn(&format!(
            "{f}.kernel and {f}.kernelTCP are ignored on cgroup v2 (kernel memory counts against memory.limit)"
        ));
    }
    Ok(())
}

fn write_swap(dir: &Path, value: &str) -> Result<()> {
    if !file::exists(dir, "memory.swap.max") {
        if value == "max" || value == "0" {
            return Ok(());
        }
        bail!(
            "linux.resources.memory.swap: {} does not exist: the kernel does not account swap",
            dir.join("memory.swap.max").display()
        );
    }
    file::write(dir, "memory.swap.max", value).context("linux.resources.memory.swap")
}

/// CPU fields v2 cannot express.
pub fn check_cpu(c: &LinuxCpu) -> Result<()> {
    let f = "linux.resources.cpu";
    if let Some(r) = c.realtime_runtime().filter(|&r| r != 0) {
        bail!("{f}.realtimeRuntime: {r} cannot be set: cgroup v2 has no realtime CPU bandwidth");
    }
    if let Some(p) = c.realtime_period().filter(|&p| p != 0) {
        bail!("{f}.realtimePeriod: {p} cannot be set: cgroup v2 has no realtime CPU bandwidth");
    }
    Ok(())
}

pub fn cpu(dir: &Path, c: &LinuxCpu) -> Result<()> {
    let f = "linux.resources.cpu";
    check_cpu(c)?;
    // An idle group (SCHED_IDLE) refuses a weight with EINVAL: leaving idle comes
    // before the weight, entering it after everything else. A weight together with
    // idle 1 would have no effect (the kernel gives an idle group the minimum weight,
    // and the default one back when it leaves idle), and under the systemd driver
    // the group is idle already: it is skipped, with a warning.
    if c.idle() == Some(0) {
        file::write(dir, "cpu.idle", "0").with_context(|| format!("{f}.idle"))?;
    }
    if let Some(shares) = c.shares().filter(|&s| s != 0) {
        if c.idle() == Some(1) {
            crate::logging::warn(&format!(
                "{f}.shares: {shares} ignored, an idle cgroup (cpu.idle 1) has the minimum weight"
            ));
        } else {
            let w = convert::shares_to_weight(shares);
            if let Err(e) = file::write(dir, "cpu.weight", &w.to_string()) {
                return Err(weight_error(dir, e));
            }
        }
    }
    let quota = c.quota().filter(|&q| q != 0);
    let period = c.period().filter(|&p| p != 0);
    let mut burst_later = None;
    if let Some(b) = c.burst() {
        match file::write(dir, "cpu.max.burst", &b.to_string()) {
            Ok(()) => {}
            // A burst above the old quota is refused; it fits once the quota is written.
            Err(e) if quota.is_some() && errno(&e) == Some(libc::EINVAL) => burst_later = Some(b),
            Err(e) => return Err(e).context(format!("{f}.burst")),
        }
    }
    if quota.is_some() || period.is_some() {
        // cpu.max holds both; keep the half that is not being changed.
        let cur = file::read(dir, "cpu.max").unwrap_or_default();
        let mut it = cur.split_whitespace();
        let cur_quota = it.next().unwrap_or("max").to_string();
        let cur_period = it.next().unwrap_or("100000").to_string();
        let q = match quota {
            Some(q) => limit_str(q),
            None => cur_quota,
        };
        let p = period.map(|p| p.to_string()).unwrap_or(cur_period);
        file::write(dir, "cpu.max", &format!("{q} {p}"))
            .with_context(|| format!("{f}.quota/period (as cpu.max)"))?;
    }
    if let Some(b) = burst_later {
        file::write(dir, "cpu.max.burst", &b.to_string()).with_context(|| format!("{f}.burst"))?;
    }
    // Last: the kernel then sets the minimum weight itself (and restores the
    // default weight, not the one written above, when idle goes back to 0).
    if let Some(idle) = c.idle().filter(|&i| i != 0) {
        file::write(dir, "cpu.idle", &idle.to_string()).with_context(|| format!("{f}.idle"))?;
    }
    Ok(())
}

/// The error of a failed cpu.weight write, explained when the group is SCHED_IDLE.
fn weight_error(dir: &Path, e: anyhow::Error) -> anyhow::Error {
    let f = "linux.resources.cpu";
    let idle = file::read(dir, "cpu.idle").unwrap_or_default();
    if errno(&e) == Some(libc::EINVAL) && idle.trim() == "1" {
        return e.context(format!(
            "{f}.shares (as cpu.weight): the cgroup is SCHED_IDLE (cpu.idle 1), set idle to 0 to give it a weight"
        ));
    }
    e.context(format!("{f}.shares (as cpu.weight)"))
}

/// Block I/O fields v2 cannot express.
pub fn check_io(b: &LinuxBlockIo) -> Result<()> {
    let f = "linux.resources.blockIO";
    if b.leaf_weight().is_some_and(|w| w != 0) {
        bail!("{f}.leafWeight: cgroup v2 has no leaf weights");
    }
    for (i, d) in b
        .weight_device()
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .enumerate()
    {
        if d.leaf_weight().is_some_and(|w| w != 0) {
            bail!("{f}.weightDevice[{i}].leafWeight: cgroup v2 has no leaf weights");
        }
    }
    Ok(())
}

pub fn io(dir: &Path, b: &LinuxBlockIo) -> Result<()> {
    let f = "linux.resources.blockIO";
    check_io(b)?;
    // BFQ takes v1's weight range as is; io.weight (io.cost) needs converting.
    let bfq = file::exists(dir, "io.bfq.weight");
    let weight_file = || -> Result<&'static str> {
        if bfq {
            Ok("io.bfq.weight")
        } else if file::exists(dir, "io.weight") {
            Ok("io.weight")
        } else {
            Err(anyhow!(
                "neither io.bfq.weight nor io.weight exists in {} (no weight-based I/O scheduling)",
                dir.display()
            ))
        }
    };
    let conv = |w: u16| -> String {
        if bfq {
            w.to_string()
        } else {
            convert::blkio_to_io_weight(w).to_string()
        }
    };
    if let Some(w) = b.weight().filter(|&w| w != 0) {
        let name = weight_file().with_context(|| format!("{f}.weight"))?;
        file::write(dir, name, &conv(w)).with_context(|| format!("{f}.weight"))?;
    }
    for (i, d) in b
        .weight_device()
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .enumerate()
    {
        if let Some(w) = d.weight().filter(|&w| w != 0) {
            let field = format!("{f}.weightDevice[{i}].weight");
            let name = weight_file().with_context(|| field.clone())?;
            let dev = format!("{}:{}", d.major(), d.minor());
            file::write(dir, name, &format!("{dev} {}", conv(w)))
                .map_err(|e| device_weight_error(name, &dev, e))
                .with_context(|| field.clone())?;
        }
    }
    let throttles = [
        (
            "throttleReadBpsDevice",
            b.throttle_read_bps_device(),
            "rbps",
        ),
        (
            "throttleWriteBpsDevice",
            b.throttle_write_bps_device(),
            "wbps",
        ),
        (
            "throttleReadIOPSDevice",
            b.throttle_read_iops_device(),
            "riops",
        ),
        (
            "throttleWriteIOPSDevice",
            b.throttle_write_iops_device(),
            "wiops",
        ),
    ];
    for (field, list, key) in throttles {
        for (i, d) in list.as_deref().unwrap_or(&[]).iter().enumerate() {
            // v1 reads a rate of 0 as "no limit"; v2 spells that "max".
            let rate = if d.rate() == 0 {
                "max".to_string()
            } else {
                d.rate().to_string()
            };
            file::write(
                dir,
                "io.max",
                &format!("{}:{} {key}={rate}", d.major(), d.minor()),
            )
            .with_context(|| format!("{f}.{field}[{i}]"))?;
        }
    }
    Ok(())
}

/// The error of a per-device weight write, explained where the kernel says
/// EOPNOTSUPP: the device has no weight-based I/O control to take it.
fn device_weight_error(file: &str, dev: &str, e: anyhow::Error) -> anyhow::Error {
    if errno(&e) != Some(libc::EOPNOTSUPP) {
        return e;
    }
    let how = if file == "io.weight" {
        "io.weight takes a device's weight only once blk-iocost is enabled for the device (io.cost.qos in the root cgroup, e.g. \"MAJ:MIN enable=1\")"
    } else {
        "io.bfq.weight takes a device's weight only while the device uses the bfq scheduler (/sys/block/DEV/queue/scheduler)"
    };
    e.context(format!(
        "device {dev} has no weight-based I/O control: {how}"
    ))
}

pub fn hugetlb(dir: &Path, limits: &[LinuxHugepageLimit], sizes: &[String]) -> Result<()> {
    for (i, l) in limits.iter().enumerate() {
        let field = format!("linux.resources.hugepageLimits[{i}]");
        super::v1::check_page_size(i, l.page_size(), sizes)?;
        let v = limit_str(l.limit());
        let base = format!("hugetlb.{}", l.page_size());
        file::write(dir, &format!("{base}.max"), &v).with_context(|| format!("{field}.limit"))?;
        let rsvd = format!("{base}.rsvd.max");
        if file::exists(dir, &rsvd) {
            file::write(dir, &rsvd, &v).with_context(|| format!("{field}.limit"))?;
        }
    }
    Ok(())
}

/// The controllers a v2 cgroup can use (its `cgroup.controllers`).
pub fn controllers(dir: &Path) -> Vec<String> {
    file::read(dir, "cgroup.controllers")
        .map(|s| s.split_whitespace().map(String::from).collect())
        .unwrap_or_default()
}

/// Checks the `unified` keys: plain file names of a controller this cgroup has
/// (`enabled`), not one the host runs as cgroup v1 (`v1_owned`, on hybrid hosts).
pub fn check_unified(
    dir: &Path,
    map: &HashMap<String, String>,
    enabled: &[String],
    v1_owned: &[String],
) -> Result<()> {
    for k in map.keys() {
        let field = format!("linux.resources.unified[{k:?}]");
        if k.is_empty() || k.contains('/') || k.starts_with('.') {
            bail!("{field}: must be a file name in the cgroup directory");
        }
        let Some((ctrl, _)) = k.split_once('.') else {
            bail!("{field}: must have the form CONTROLLER.PARAMETER");
        };
        if v1_owned.iter().any(|c| c == ctrl) {
            bail!("{field}: the {ctrl} controller is mounted as cgroup v1 on this host; use the v1 field");
        }
        if ctrl != "cgroup" && !enabled.iter().any(|c| c == ctrl) {
            bail!(
                "{field}: the {ctrl} controller is not enabled for {} (its cgroup.controllers has: {})",
                dir.display(),
                if enabled.is_empty() {
                    "none".to_string()
                } else {
                    enabled.join(" ")
                }
            );
        }
    }
    Ok(())
}

/// Writes the `unified` map as given, keys in order; a multi-line value is written a
/// line at a time (`io.max` takes one device per write).
pub fn unified(dir: &Path, map: &HashMap<String, String>) -> Result<()> {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for k in keys {
        let field = format!("linux.resources.unified[{k:?}]");
        let v = &map[k];
        let mut lines: Vec<&str> = v.split('\n').filter(|l| !l.is_empty()).collect();
        if lines.is_empty() {
            lines.push(v);
        }
        for line in lines {
            file::write(dir, k, line).with_context(|| field.clone())?;
        }
    }
    Ok(())
}

/// Turns on, in each directory between the hierarchy root and the container's cgroup,
/// the controllers the directory has, so they reach the container (as runc does).
///
/// Only directories kraal may change are written: those it created for this
/// container and those strictly below its own cgroup. Its own cgroup and the ones
/// above belong to whoever runs kraal; a controller they do not pass down is an
/// error later, when (and only if) a resource needs it.
pub fn enable_controllers(mount: &Path, own: &Path, leaf: &Path, created: &[PathBuf]) {
    let Ok(rel) = leaf.strip_prefix(mount) else {
        return;
    };
    let mut dir = mount.to_path_buf();
    let mut chain = vec![dir.clone()];
    for c in rel.components() {
        dir.push(c);
        chain.push(dir.clone());
    }
    chain.pop(); // the leaf itself holds processes: it must not enable controllers
    for d in chain {
        let ours = created.contains(&d) || (d.starts_with(own) && d != own);
        if !ours {
            continue;
        }
        let have: Vec<String> = file::read(&d, "cgroup.subtree_control")
            .map(|s| s.split_whitespace().map(String::from).collect())
            .unwrap_or_default();
        let want: Vec<String> = controllers(&d)
            .into_iter()
            .filter(|c| !have.contains(c))
            .collect();
        if want.is_empty() {
            continue;
        }
        let all = want
            .iter()
            .map(|c| format!("+{c}"))
            .collect::<Vec<_>>()
            .join(" ");
        if file::write(&d, "cgroup.subtree_control", &all).is_err() {
            // One refusal (a controller that cannot be threaded, a busy parent) must
            // not keep the others away.
            for c in &want {
                let _ = file::write(&d, "cgroup.subtree_control", &format!("+{c}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::FakeDir;
    use super::*;

    fn mem(json: &str) -> LinuxMemory {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn memory_file_names_and_values() {
        let d = FakeDir::new(&[
            ("memory.max", "max"),
            ("memory.swap.max", "max"),
            ("memory.low", "0"),
        ]);
        memory(
            &d.0,
            &mem(r#"{"limit":1048576,"swap":3145728,"reservation":4096}"#),
        )
        .unwrap();
        assert_eq!(d.get("memory.max"), "1048576");
        assert_eq!(d.get("memory.swap.max"), "2097152");
        assert_eq!(d.get("memory.low"), "4096");
        memory(&d.0, &mem(r#"{"limit":-1}"#)).unwrap();
        assert_eq!(d.get("memory.max"), "max");
        assert_eq!(d.get("memory.swap.max"), "max");
        memory(&d.0, &mem(r#"{"limit":1048576,"swap":1048576}"#)).unwrap();
        assert_eq!(d.get("memory.swap.max"), "0");
        // Swap alone: taken relative to the limit in force.
        memory(&d.0, &mem(r#"{"swap":2097152}"#)).unwrap();
        assert_eq!(d.get("memory.swap.max"), "1048576");
        let e = memory(&d.0, &mem(r#"{"limit":4096,"swap":2048}"#)).unwrap_err();
        assert!(
            e.to_string().starts_with("linux.resources.memory.swap"),
            "{e}"
        );
    }

    #[test]
    fn memory_v1_only_fields_are_ignored_or_refused() {
        let d = FakeDir::new(&[("memory.max", "max")]);
        // Ignored with a warning, as runc's v2 driver does.
        memory(&d.0, &mem(r#"{"disableOOMKiller":true,"swappiness":0}"#)).unwrap();
        let e = memory(&d.0, &mem(r#"{"useHierarchy":false}"#)).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("linux.resources.memory.useHierarchy"),
            "{e}"
        );
        memory(
            &d.0,
            &mem(r#"{"disableOOMKiller":false,"swappiness":18446744073709551615}"#),
        )
        .unwrap();
    }

    #[test]
    fn check_before_update() {
        let d = FakeDir::new(&[("memory.max", "max"), ("memory.current", "8192")]);
        let e = memory(&d.0, &mem(r#"{"limit":4096,"checkBeforeUpdate":true}"#)).unwrap_err();
        assert!(e.to_string().contains("current usage 8192"), "{e}");
        assert_eq!(d.get("memory.max"), "max");
        memory(&d.0, &mem(r#"{"limit":4096}"#)).unwrap();
        assert_eq!(d.get("memory.max"), "4096");
    }

    #[test]
    fn cpu_weight_max_and_idle() {
        let d = FakeDir::new(&[
            ("cpu.weight", "100"),
            ("cpu.max", "max 100000"),
            ("cpu.max.burst", "0"),
            ("cpu.idle", "0"),
        ]);
        let c: LinuxCpu = serde_json::from_str(
            r#"{"shares":2048,"quota":50000,"period":200000,"burst":1000,"idle":0}"#,
        )
        .unwrap();
        cpu(&d.0, &c).unwrap();
        assert_eq!(d.get("cpu.weight"), "174");
        assert_eq!(d.get("cpu.max"), "50000 200000");
        assert_eq!(d.get("cpu.max.burst"), "1000");
        assert_eq!(d.get("cpu.idle"), "0");
        // idle 1 after the rest; the shares are then ignored (see below).
        let c: LinuxCpu = serde_json::from_str(r#"{"idle":1}"#).unwrap();
        cpu(&d.0, &c).unwrap();
        assert_eq!(d.get("cpu.idle"), "1");
        // Quota alone keeps the period; -1 is "max".
        let c: LinuxCpu = serde_json::from_str(r#"{"quota":-1}"#).unwrap();
        cpu(&d.0, &c).unwrap();
        assert_eq!(d.get("cpu.max"), "max 200000");
        let c: LinuxCpu = serde_json::from_str(r#"{"period":50000}"#).unwrap();
        cpu(&d.0, &c).unwrap();
        assert_eq!(d.get("cpu.max"), "max 50000");
        let c: LinuxCpu = serde_json::from_str(r#"{"realtimeRuntime":10}"#).unwrap();
        let e = cpu(&d.0, &c).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("linux.resources.cpu.realtimeRuntime"),
            "{e}"
        );
    }

    /// Leaving SCHED_IDLE comes before the weight, entering it after the rest: an
    /// idle group refuses a weight. Without a cpu.idle file the idle write fails,
    /// which shows what was written before it. A weight with idle 1 is skipped.
    #[test]
    fn cpu_idle_is_ordered_around_the_weight() {
        let c: LinuxCpu = serde_json::from_str(r#"{"idle":1,"shares":512,"quota":1000}"#).unwrap();
        let d = FakeDir::new(&[("cpu.weight", "100"), ("cpu.max", "max 100000")]);
        let e = cpu(&d.0, &c).unwrap_err();
        assert!(
            format!("{e:#}").starts_with("linux.resources.cpu.idle"),
            "{e:#}"
        );
        assert_eq!(
            d.get("cpu.max"),
            "1000 100000",
            "quota written before idle 1"
        );
        assert_eq!(d.get("cpu.weight"), "100", "no weight for an idle group");
        // Already idle (systemd set CPUWeight=idle): the weight is skipped, no EINVAL.
        let c: LinuxCpu = serde_json::from_str(r#"{"idle":1,"shares":512}"#).unwrap();
        let d = FakeDir::new(&[("cpu.weight", "100"), ("cpu.idle", "1")]);
        cpu(&d.0, &c).unwrap();
        assert_eq!(d.get("cpu.idle"), "1");
        assert_eq!(d.get("cpu.weight"), "100");
        let c: LinuxCpu = serde_json::from_str(r#"{"idle":0,"shares":512}"#).unwrap();
        let d = FakeDir::new(&[("cpu.weight", "100")]);
        let e = cpu(&d.0, &c).unwrap_err();
        assert!(
            format!("{e:#}").starts_with("linux.resources.cpu.idle"),
            "{e:#}"
        );
        assert_eq!(
            d.get("cpu.weight"),
            "100",
            "weight written before leaving idle"
        );
        let d = FakeDir::new(&[("cpu.weight", "100"), ("cpu.idle", "1")]);
        cpu(&d.0, &c).unwrap();
        assert_eq!(d.get("cpu.idle"), "0");
        assert_eq!(d.get("cpu.weight"), "59");
        // The kernel's EINVAL for a weight on an idle group is explained.
        let einval = anyhow::Error::from(std::io::Error::from_raw_os_error(libc::EINVAL));
        let d = FakeDir::new(&[("cpu.idle", "1")]);
        let e = weight_error(&d.0, einval);
        assert!(format!("{e:#}").contains("SCHED_IDLE"), "{e:#}");
        let einval = anyhow::Error::from(std::io::Error::from_raw_os_error(libc::EINVAL));
        d.set("cpu.idle", "0");
        let e = weight_error(&d.0, einval);
        assert!(!format!("{e:#}").contains("SCHED_IDLE"), "{e:#}");
    }

    #[test]
    fn io_weights_and_max() {
        let b: LinuxBlockIo = serde_json::from_str(
            r#"{"weight":500,"weightDevice":[{"major":8,"minor":0,"weight":100}],
                "throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1048576}],
                "throttleWriteIOPSDevice":[{"major":8,"minor":0,"rate":0}]}"#,
        )
        .unwrap();
        let d = FakeDir::new(&[("io.weight", ""), ("io.max", "")]);
        io(&d.0, &b).unwrap();
        // io.weight gets the converted value; the last write was the device line.
        assert_eq!(d.get("io.weight"), "8:0 910");
        assert_eq!(d.get("io.max"), "8:0 wiops=max");
        let d = FakeDir::new(&[("io.bfq.weight", ""), ("io.max", "")]);
        let b2: LinuxBlockIo = serde_json::from_str(r#"{"weight":500}"#).unwrap();
        io(&d.0, &b2).unwrap();
        assert_eq!(d.get("io.bfq.weight"), "500");
        let d = FakeDir::new(&[("io.max", "")]);
        let e = io(&d.0, &b2).unwrap_err();
        assert!(
            format!("{e:#}").starts_with("linux.resources.blockIO.weight: neither"),
            "{e:#}"
        );
        let b3: LinuxBlockIo = serde_json::from_str(r#"{"leafWeight":10}"#).unwrap();
        assert!(io(&d.0, &b3).is_err());
    }

    #[test]
    fn device_weight_without_iocost_is_explained() {
        let unsupported =
            || anyhow::Error::from(std::io::Error::from_raw_os_error(libc::EOPNOTSUPP));
        let e = device_weight_error("io.weight", "254:0", unsupported());
        assert!(
            format!("{e:#}").contains("254:0 has no weight-based I/O control"),
            "{e:#}"
        );
        assert!(format!("{e:#}").contains("io.cost.qos"), "{e:#}");
        let e = device_weight_error("io.bfq.weight", "8:0", unsupported());
        assert!(format!("{e:#}").contains("bfq scheduler"), "{e:#}");
        let other = anyhow::Error::from(std::io::Error::from_raw_os_error(libc::EINVAL));
        let e = device_weight_error("io.weight", "8:0", other);
        assert!(!format!("{e:#}").contains("weight-based"), "{e:#}");
    }

    #[test]
    fn hugetlb_names() {
        let d = FakeDir::new(&[
            ("hugetlb.2MB.max", ""),
            ("hugetlb.2MB.rsvd.max", ""),
            ("hugetlb.1GB.max", ""),
        ]);
        let l: Vec<LinuxHugepageLimit> = serde_json::from_str(
            r#"[{"pageSize":"2MB","limit":-1},{"pageSize":"1GB","limit":1073741824}]"#,
        )
        .unwrap();
        hugetlb(&d.0, &l, &["1GB".into(), "2MB".into()]).unwrap();
        assert_eq!(d.get("hugetlb.2MB.max"), "max");
        assert_eq!(d.get("hugetlb.2MB.rsvd.max"), "max");
        assert_eq!(d.get("hugetlb.1GB.max"), "1073741824");
    }

    #[test]
    fn unified_keys() {
        let d = FakeDir::new(&[
            ("cgroup.controllers", "cpu memory io\n"),
            ("memory.high", ""),
            ("io.max", ""),
            ("cgroup.max.descendants", ""),
        ]);
        let enabled = controllers(&d.0);
        let m: HashMap<String, String> = serde_json::from_str(
            r#"{"memory.high":"1048576","io.max":"8:0 rbps=1\n8:16 wbps=2","cgroup.max.descendants":"5"}"#,
        )
        .unwrap();
        check_unified(&d.0, &m, &enabled, &[]).unwrap();
        unified(&d.0, &m).unwrap();
        assert_eq!(d.get("memory.high"), "1048576");
        assert_eq!(d.get("io.max"), "8:16 wbps=2");
        assert_eq!(d.get("cgroup.max.descendants"), "5");
        for (k, msg) in [
            ("../x", "file name"),
            ("nodot", "CONTROLLER.PARAMETER"),
            ("hugetlb.2MB.max", "not enabled"),
        ] {
            let m: HashMap<String, String> = [(k.to_string(), "1".to_string())].into();
            let e = check_unified(&d.0, &m, &enabled, &[]).unwrap_err();
            assert!(e.to_string().contains(msg), "{k}: {e}");
        }
        let m: HashMap<String, String> = [("memory.high".to_string(), "1".to_string())].into();
        let e = check_unified(&d.0, &m, &enabled, &["memory".to_string()]).unwrap_err();
        assert!(e.to_string().contains("cgroup v1"), "{e}");
    }

    #[test]
    fn enabling_skips_own_cgroup_and_above() {
        let root = FakeDir::new(&[
            ("cgroup.controllers", "cpu memory"),
            ("cgroup.subtree_control", ""),
        ]);
        let own = root.0.join("own");
        let mid = own.join("kraal-x");
        let leaf = mid.join("c1");
        for d in [&own, &mid, &leaf] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::write(d.join("cgroup.controllers"), "cpu memory").unwrap();
            std::fs::write(d.join("cgroup.subtree_control"), "").unwrap();
        }
        enable_controllers(&root.0, &own, &leaf, std::slice::from_ref(&leaf));
        assert_eq!(root.get("cgroup.subtree_control"), "");
        assert_eq!(
            std::fs::read_to_string(own.join("cgroup.subtree_control")).unwrap(),
            ""
        );
        assert_eq!(
            std::fs::read_to_string(mid.join("cgroup.subtree_control")).unwrap(),
            "+cpu +memory"
        );
        assert_eq!(
            std::fs::read_to_string(leaf.join("cgroup.subtree_control")).unwrap(),
            ""
        );
    }
}
