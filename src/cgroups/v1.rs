//! cgroup v1 controllers: each `fn` writes one `linux.resources` section to the
//! directory of its controller's hierarchy, in the order and with the retries runc
//! uses, and names the spec field in every error.
//!
//! All of them are plain functions over a directory, so the unit tests run them
//! against a temp dir seeded with the control files.

use super::devices::State;
use super::file::{self, errno};
use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxHugepageLimit, LinuxInterfacePriority, LinuxMemory, LinuxPids,
    LinuxRdma,
};
use std::collections::HashMap;
use std::path::Path;

const MEM_LIMIT: &str = "memory.limit_in_bytes";
const MEMSW_LIMIT: &str = "memory.memsw.limit_in_bytes";

/// Unset values are absent or 0 (runc treats 0 as "not set" for byte limits).
fn set(v: Option<i64>) -> Option<i64> {
    v.filter(|&v| v != 0)
}

fn write_limit(dir: &Path, value: i64) -> Result<()> {
    match file::write(dir, MEM_LIMIT, &value.to_string()) {
        Err(e) if errno(&e) == Some(libc::EBUSY) => {
            let usage = file::read_u64(dir, "memory.usage_in_bytes").unwrap_or(0);
            let peak = file::read_u64(dir, "memory.max_usage_in_bytes").unwrap_or(0);
            Err(e).context(format!(
                "cannot lower the limit to {value} below what the container uses (usage {usage}, peak {peak})"
            ))
        }
        Err(e) if errno(&e) == Some(libc::EINVAL) && file::exists(dir, MEMSW_LIMIT) => {
            let memsw = file::read(dir, MEMSW_LIMIT).unwrap_or_default();
            Err(e).context(format!(
                "the limit must not exceed the memory+swap limit ({}); set memory.swap too",
                memsw.trim()
            ))
        }
        r => r,
    }
}

fn write_swap(dir: &Path, value: i64) -> Result<()> {
    if !file::exists(dir, MEMSW_LIMIT) {
        // No swap accounting: "unlimited" is what the cgroup already has.
        if value == -1 {
            return Ok(());
        }
        bail!(
            "{} does not exist: the kernel does not account swap (boot with swapaccount=1)",
            dir.join(MEMSW_LIMIT).display()
        );
    }
    file::write(dir, MEMSW_LIMIT, &value.to_string())
}

pub fn memory(dir: &Path, m: &LinuxMemory) -> Result<()> {
    let f = "linux.resources.memory";
    let limit = set(m.limit());
    let mut swap = set(m.swap());
    // Unlimited memory with no swap value: lift memory+swap too, or the old memsw
    // limit would keep capping the container.
    if limit == Some(-1) && swap.is_none() && file::exists(dir, MEMSW_LIMIT) {
        swap = Some(-1);
    }
    // checkBeforeUpdate needs no code on v1: the kernel itself refuses a limit below
    // the usage (EBUSY), which write_limit explains.
    match (limit, swap) {
        (Some(l), Some(s)) if s != -1 && l != -1 && s < l => {
            bail!("{f}.swap: {s} is below memory.limit {l} (swap is memory+swap)")
        }
        (Some(l), Some(s)) => {
            // memsw must stay >= the limit at every step: raise swap first when growing.
            let cur = file::read_u64(dir, MEM_LIMIT).with_context(|| format!("{f}.limit"))?;
            if s == -1 || cur < s as u64 {
                write_swap(dir, s).with_context(|| format!("{f}.swap"))?;
                write_limit(dir, l).with_context(|| format!("{f}.limit"))?;
            } else {
                write_limit(dir, l).with_context(|| format!("{f}.limit"))?;
                write_swap(dir, s).with_context(|| format!("{f}.swap"))?;
            }
        }
        (Some(l), None) => write_limit(dir, l).with_context(|| format!("{f}.limit"))?,
        (None, Some(s)) => write_swap(dir, s).with_context(|| format!("{f}.swap"))?,
        (None, None) => {}
    }
    if let Some(r) = set(m.reservation()) {
        file::write(dir, "memory.soft_limit_in_bytes", &r.to_string())
            .with_context(|| format!("{f}.reservation"))?;
    }
    #[allow(deprecated)]
    if let Some(k) = set(m.kernel()) {
        file::write(dir, "memory.kmem.limit_in_bytes", &k.to_string())
            .with_context(|| format!("{f}.kernel"))?;
    }
    if let Some(k) = set(m.kernel_tcp()) {
        file::write(dir, "memory.kmem.tcp.limit_in_bytes", &k.to_string())
            .with_context(|| format!("{f}.kernelTCP"))?;
    }
    if m.disable_oom_killer() == Some(true) {
        file::write(dir, "memory.oom_control", "1")
            .with_context(|| format!("{f}.disableOOMKiller"))?;
    }
    match m.swappiness() {
        // Docker passes -1 (as an unsigned 64-bit number) for "kernel default".
        None | Some(u64::MAX) => {}
        Some(s) if s <= 100 => file::write(dir, "memory.swappiness", &s.to_string())
            .with_context(|| format!("{f}.swappiness"))?,
        Some(s) => bail!("{f}.swappiness: {s} is out of range (0 to 100)"),
    }
    if let Some(h) = m.use_hierarchy() {
        let cur = file::read(dir, "memory.use_hierarchy").unwrap_or_default();
        let want = if h { "1" } else { "0" };
        if cur.trim() != want {
            file::write(dir, "memory.use_hierarchy", want).with_context(|| {
                format!("{f}.useHierarchy (kernels since 5.16 only accept true)")
            })?;
        }
    }
    Ok(())
}

/// Writes `value` to `name`; when the kernel says EINVAL and `retry` will be
/// written next, returns the value to write again after it (runc's ordering dance
/// between cfs period, burst and quota, and between rt period and runtime).
fn write_or_defer(dir: &Path, name: &str, value: String, retry: bool) -> Result<Option<String>> {
    match file::write(dir, name, &value) {
        Ok(()) => Ok(None),
        Err(e) if retry && errno(&e) == Some(libc::EINVAL) => Ok(Some(value)),
        Err(e) => Err(e),
    }
}

pub fn cpu(dir: &Path, c: &LinuxCpu) -> Result<()> {
    let f = "linux.resources.cpu";
    // Leaving SCHED_IDLE must come first: an idle group refuses new shares.
    if c.idle() == Some(0) {
        file::write(dir, "cpu.idle", "0").with_context(|| format!("{f}.idle"))?;
    }
    if let Some(shares) = c.shares().filter(|&s| s != 0) {
        if let Err(e) = file::write(dir, "cpu.shares", &shares.to_string()) {
            let idle = file::read(dir, "cpu.idle").unwrap_or_default();
            if errno(&e) == Some(libc::EINVAL) && idle.trim() == "1" {
                return Err(e).context(format!(
                    "{f}.shares: the cgroup is SCHED_IDLE (cpu.idle 1), set idle to 0 to give it shares"
                ));
            }
            return Err(e).context(format!("{f}.shares"));
        }
        // The kernel clamps out-of-range shares silently: read back and say so.
        let got = file::read_u64(dir, "cpu.shares").with_context(|| format!("{f}.shares"))?;
        if got != shares {
            bail!(
                "{f}.shares: {shares} is out of range; the kernel allows {} {got}",
                if shares > got { "at most" } else { "at least" }
            );
        }
    }
    let quota = c.quota().filter(|&q| q != 0);
    let period = match c.period().filter(|&p| p != 0) {
        Some(p) => write_or_defer(dir, "cpu.cfs_period_us", p.to_string(), quota.is_some())
            .with_context(|| format!("{f}.period"))?,
        None => None,
    };
    let burst = match c.burst() {
        Some(b) if !file::exists(dir, "cpu.cfs_burst_us") => {
            bail!("{f}.burst: {b} cannot be set: this kernel has no cpu.cfs_burst_us")
        }
        Some(b) => write_or_defer(dir, "cpu.cfs_burst_us", b.to_string(), quota.is_some())
            .with_context(|| format!("{f}.burst"))?,
        None => None,
    };
    if let Some(q) = quota {
        file::write(dir, "cpu.cfs_quota_us", &q.to_string())
            .with_context(|| format!("{f}.quota"))?;
        if let Some(p) = period {
            file::write(dir, "cpu.cfs_period_us", &p).with_context(|| format!("{f}.period"))?;
        }
        if let Some(b) = burst {
            file::write(dir, "cpu.cfs_burst_us", &b).with_context(|| format!("{f}.burst"))?;
        }
    }
    if let Some(idle) = c.idle().filter(|&i| i != 0) {
        file::write(dir, "cpu.idle", &idle.to_string()).with_context(|| format!("{f}.idle"))?;
    }
    let runtime = c.realtime_runtime().filter(|&r| r != 0);
    let rt_period = match c.realtime_period().filter(|&p| p != 0) {
        Some(p) => write_or_defer(dir, "cpu.rt_period_us", p.to_string(), runtime.is_some())
            .with_context(|| format!("{f}.realtimePeriod"))?,
        None => None,
    };
    if let Some(r) = runtime {
        file::write(dir, "cpu.rt_runtime_us", &r.to_string())
            .with_context(|| format!("{f}.realtimeRuntime"))?;
        if let Some(p) = rt_period {
            file::write(dir, "cpu.rt_period_us", &p)
                .with_context(|| format!("{f}.realtimePeriod"))?;
        }
    }
    Ok(())
}

/// `cpus` and `mems`; the same file names on v1 and v2.
pub fn cpuset(dir: &Path, c: &LinuxCpu) -> Result<()> {
    let f = "linux.resources.cpu";
    if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
        file::write(dir, "cpuset.cpus", cpus).with_context(|| format!("{f}.cpus"))?;
    }
    if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
        file::write(dir, "cpuset.mems", mems).with_context(|| format!("{f}.mems"))?;
    }
    Ok(())
}

/// `pids.max`, the same on v1 and v2. Since runtime-spec 1.3 a limit of 0 is a
/// real limit (no new tasks at all); negative means no limit.
pub fn pids(dir: &Path, p: &LinuxPids) -> Result<()> {
    let v = match p.limit() {
        l if l < 0 => "max".to_string(),
        l => l.to_string(),
    };
    file::write(dir, "pids.max", &v).context("linux.resources.pids.limit")
}

/// The CFQ weight files, or BFQ's when CFQ is gone (kernels since 5.0 have no CFQ).
fn weight_files(dir: &Path) -> (&'static str, &'static str) {
    if file::exists(dir, "blkio.weight") {
        ("blkio.weight", "blkio.weight_device")
    } else {
        ("blkio.bfq.weight", "blkio.bfq.weight_device")
    }
}

pub fn blkio(dir: &Path, b: &LinuxBlockIo) -> Result<()> {
    let f = "linux.resources.blockIO";
    let (weight, weight_device) = weight_files(dir);
    let need = |name: &str, field: &str| -> Result<()> {
        if file::exists(dir, name) {
            Ok(())
        } else {
            Err(anyhow!(
                "{f}.{field}: {} does not exist (no I/O scheduler with weights for this cgroup)",
                dir.join(name).display()
            ))
        }
    };
    if let Some(w) = b.weight().filter(|&w| w != 0) {
        need(weight, "weight")?;
        file::write(dir, weight, &w.to_string()).with_context(|| format!("{f}.weight"))?;
    }
    if let Some(w) = b.leaf_weight().filter(|&w| w != 0) {
        need("blkio.leaf_weight", "leafWeight")?;
        file::write(dir, "blkio.leaf_weight", &w.to_string())
            .with_context(|| format!("{f}.leafWeight"))?;
    }
    for (i, d) in b
        .weight_device()
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .enumerate()
    {
        let field = format!("{f}.weightDevice[{i}]");
        if let Some(w) = d.weight().filter(|&w| w != 0) {
            need(weight_device, &format!("weightDevice[{i}].weight"))?;
            file::write(
                dir,
                weight_device,
                &format!("{}:{} {w}", d.major(), d.minor()),
            )
            .with_context(|| format!("{field}.weight"))?;
        }
        if let Some(w) = d.leaf_weight().filter(|&w| w != 0) {
            need(
                "blkio.leaf_weight_device",
                &format!("weightDevice[{i}].leafWeight"),
            )?;
            file::write(
                dir,
                "blkio.leaf_weight_device",
                &format!("{}:{} {w}", d.major(), d.minor()),
            )
            .with_context(|| format!("{field}.leafWeight"))?;
        }
    }
    let throttles = [
        (
            "throttleReadBpsDevice",
            b.throttle_read_bps_device(),
            "read_bps_device",
        ),
        (
            "throttleWriteBpsDevice",
            b.throttle_write_bps_device(),
            "write_bps_device",
        ),
        (
            "throttleReadIOPSDevice",
            b.throttle_read_iops_device(),
            "read_iops_device",
        ),
        (
            "throttleWriteIOPSDevice",
            b.throttle_write_iops_device(),
            "write_iops_device",
        ),
    ];
    for (field, list, name) in throttles {
        for (i, d) in list.as_deref().unwrap_or(&[]).iter().enumerate() {
            file::write(
                dir,
                &format!("blkio.throttle.{name}"),
                &format!("{}:{} {}", d.major(), d.minor(), d.rate()),
            )
            .with_context(|| format!("{f}.{field}[{i}]"))?;
        }
    }
    Ok(())
}

/// Checks a page size against the kernel's; `sizes` is [`super::convert::host_page_sizes`].
pub fn check_page_size(i: usize, size: &str, sizes: &[String]) -> Result<()> {
    if sizes.iter().any(|s| s == size) {
        return Ok(());
    }
    bail!(
        "linux.resources.hugepageLimits[{i}].pageSize: {size:?} is not a huge page size of this kernel (it has {})",
        if sizes.is_empty() { "none".to_string() } else { sizes.join(", ") }
    )
}

pub fn hugetlb(dir: &Path, limits: &[LinuxHugepageLimit], sizes: &[String]) -> Result<()> {
    for (i, l) in limits.iter().enumerate() {
        let field = format!("linux.resources.hugepageLimits[{i}]");
        check_page_size(i, l.page_size(), sizes)?;
        let v = l.limit().to_string();
        let base = format!("hugetlb.{}", l.page_size());
        file::write(dir, &format!("{base}.limit_in_bytes"), &v)
            .with_context(|| format!("{field}.limit"))?;
        // Reservation accounting (5.7+) is the one the spec prefers; set both.
        let rsvd = format!("{base}.rsvd.limit_in_bytes");
        if file::exists(dir, &rsvd) {
            file::write(dir, &rsvd, &v).with_context(|| format!("{field}.limit"))?;
        }
    }
    Ok(())
}

pub fn net_cls(dir: &Path, class_id: u32) -> Result<()> {
    file::write(dir, "net_cls.classid", &class_id.to_string())
        .context("linux.resources.network.classID")
}

pub fn net_prio(dir: &Path, prios: &[LinuxInterfacePriority]) -> Result<()> {
    for (i, p) in prios.iter().enumerate() {
        file::write(
            dir,
            "net_prio.ifpriomap",
            &format!("{} {}", p.name(), p.priority()),
        )
        .with_context(|| format!("linux.resources.network.priorities[{i}]"))?;
    }
    Ok(())
}

/// `rdma.max`, the same on v1 and v2; devices in name order for stable writes.
pub fn rdma(dir: &Path, limits: &HashMap<String, LinuxRdma>) -> Result<()> {
    let mut names: Vec<&String> = limits.keys().collect();
    names.sort();
    for name in names {
        let l = &limits[name];
        let field = format!("linux.resources.rdma.{name}");
        if name.is_empty() || name.contains(char::is_whitespace) {
            bail!("{field}: {name:?} is not a device name");
        }
        let mut line = name.clone();
        if let Some(h) = l.hca_handles() {
            line.push_str(&format!(" hca_handle={h}"));
        }
        if let Some(o) = l.hca_objects() {
            line.push_str(&format!(" hca_object={o}"));
        }
        if l.hca_handles().is_none() && l.hca_objects().is_none() {
            bail!("{field}: set hcaHandles, hcaObjects or both");
        }
        file::write(dir, "rdma.max", &line).with_context(|| field.clone())?;
    }
    Ok(())
}

/// Moves the cgroup's device list to `target` with the fewest writes, then reads it
/// back: a list that does not match (a kernel that ignored a write) is an error.
pub fn devices(dir: &Path, target: &State, rules: &[super::devices::Rule]) -> Result<()> {
    let f = "linux.resources.devices";
    let current = State::from_list(&file::read(dir, "devices.list")?)
        .with_context(|| format!("{f}: {}", dir.join("devices.list").display()))?;
    // A fresh cgroup (allow-all) going to deny-by-default gets the rules literally,
    // in the listed order (config-linux.md: entries are applied in order), so
    // devices.list shows them in that order; otherwise the minimal transition.
    let writes = if current.default_allow && !target.default_allow && !rules.is_empty() {
        let mut w = vec![super::devices::Rule {
            allow: false,
            kind: None,
            major: super::devices::ANY,
            minor: super::devices::ANY,
            access: super::devices::Access::ALL,
        }];
        w.extend(rules.iter().cloned());
        w
    } else {
        current.transition(target)
    };
    for rule in writes {
        let name = if rule.allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        file::write(dir, name, &rule.cgroup_string()).with_context(|| f.to_string())?;
    }
    let after = State::from_list(&file::read(dir, "devices.list")?)?;
    let ok = if target.default_allow {
        after.default_allow
    } else {
        after == *target
    };
    if !ok {
        bail!(
            "{f}: {} does not match the requested rules after writing them",
            dir.join("devices.list").display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::fake::FakeDir;
    use super::*;

    fn mem(json: &str) -> LinuxMemory {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn memory_files() {
        let d = FakeDir::new(&[
            (MEM_LIMIT, "9223372036854771712"),
            (MEMSW_LIMIT, "9223372036854771712"),
            ("memory.soft_limit_in_bytes", ""),
            ("memory.swappiness", "60"),
            ("memory.oom_control", ""),
            ("memory.kmem.tcp.limit_in_bytes", ""),
        ]);
        memory(
            &d.0,
            &mem(r#"{"limit":1048576,"swap":2097152,"reservation":524288,"swappiness":10,"disableOOMKiller":true,"kernelTCP":4096}"#),
        )
        .unwrap();
        assert_eq!(d.get(MEM_LIMIT), "1048576");
        assert_eq!(d.get(MEMSW_LIMIT), "2097152");
        assert_eq!(d.get("memory.soft_limit_in_bytes"), "524288");
        assert_eq!(d.get("memory.swappiness"), "10");
        assert_eq!(d.get("memory.oom_control"), "1");
        assert_eq!(d.get("memory.kmem.tcp.limit_in_bytes"), "4096");
        let e = memory(&d.0, &mem(r#"{"swappiness":101}"#)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "linux.resources.memory.swappiness: 101 is out of range (0 to 100)"
        );
        // Docker's "-1" leaves swappiness alone.
        memory(&d.0, &mem(r#"{"swappiness":18446744073709551615}"#)).unwrap();
        assert_eq!(d.get("memory.swappiness"), "10");
    }

    #[test]
    fn unlimited_memory_lifts_swap_too() {
        let d = FakeDir::new(&[(MEM_LIMIT, "1048576"), (MEMSW_LIMIT, "1048576")]);
        memory(&d.0, &mem(r#"{"limit":-1}"#)).unwrap();
        assert_eq!(d.get(MEM_LIMIT), "-1");
        assert_eq!(d.get(MEMSW_LIMIT), "-1");
    }

    #[test]
    fn swap_below_limit_is_refused() {
        let d = FakeDir::new(&[(MEM_LIMIT, "0"), (MEMSW_LIMIT, "0")]);
        let e = memory(&d.0, &mem(r#"{"limit":4096,"swap":2048}"#)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "linux.resources.memory.swap: 2048 is below memory.limit 4096 (swap is memory+swap)"
        );
        assert_eq!(d.get(MEM_LIMIT), "0");
    }

    #[test]
    fn swap_without_accounting() {
        let d = FakeDir::new(&[(MEM_LIMIT, "1048576")]);
        let e = memory(&d.0, &mem(r#"{"limit":4096,"swap":8192}"#)).unwrap_err();
        assert!(
            format!("{e:#}").starts_with("linux.resources.memory.swap: "),
            "{e:#}"
        );
        assert!(format!("{e:#}").contains("swapaccount"), "{e:#}");
    }

    #[test]
    fn missing_file_names_field_and_path() {
        let d = FakeDir::new(&[]);
        let e = memory(&d.0, &mem(r#"{"reservation":4096}"#)).unwrap_err();
        let s = format!("{e:#}");
        assert!(
            s.starts_with("linux.resources.memory.reservation: write \"4096\" to "),
            "{s}"
        );
        assert!(s.contains("memory.soft_limit_in_bytes"), "{s}");
    }

    #[test]
    fn cpu_files() {
        let d = FakeDir::new(&[
            ("cpu.shares", ""),
            ("cpu.cfs_period_us", ""),
            ("cpu.cfs_quota_us", ""),
            ("cpu.cfs_burst_us", ""),
            ("cpu.idle", ""),
            ("cpu.rt_period_us", ""),
            ("cpu.rt_runtime_us", ""),
        ]);
        let c: LinuxCpu = serde_json::from_str(
            r#"{"shares":512,"quota":50000,"period":100000,"burst":10000,"idle":1,"realtimeRuntime":950,"realtimePeriod":1000}"#,
        )
        .unwrap();
        // The fake cpu.shares reads back what was written, as the kernel does in range.
        cpu(&d.0, &c).unwrap();
        assert_eq!(d.get("cpu.shares"), "512");
        assert_eq!(d.get("cpu.cfs_quota_us"), "50000");
        assert_eq!(d.get("cpu.cfs_period_us"), "100000");
        assert_eq!(d.get("cpu.cfs_burst_us"), "10000");
        assert_eq!(d.get("cpu.idle"), "1");
        assert_eq!(d.get("cpu.rt_runtime_us"), "950");
        assert_eq!(d.get("cpu.rt_period_us"), "1000");
    }

    #[test]
    fn cpu_burst_needs_kernel_support() {
        let d = FakeDir::new(&[("cpu.cfs_quota_us", "")]);
        let c: LinuxCpu = serde_json::from_str(r#"{"burst":5}"#).unwrap();
        let e = cpu(&d.0, &c).unwrap_err();
        assert!(
            e.to_string().starts_with("linux.resources.cpu.burst"),
            "{e}"
        );
    }

    #[test]
    fn cpuset_pids_files() {
        let d = FakeDir::new(&[("cpuset.cpus", ""), ("cpuset.mems", ""), ("pids.max", "")]);
        let c: LinuxCpu = serde_json::from_str(r#"{"cpus":"0-1","mems":"0"}"#).unwrap();
        cpuset(&d.0, &c).unwrap();
        assert_eq!(d.get("cpuset.cpus"), "0-1");
        assert_eq!(d.get("cpuset.mems"), "0");
        for (limit, want) in [(-1, "max"), (0, "0"), (42, "42")] {
            let p: LinuxPids = serde_json::from_str(&format!(r#"{{"limit":{limit}}}"#)).unwrap();
            pids(&d.0, &p).unwrap();
            assert_eq!(d.get("pids.max"), want);
        }
    }

    #[test]
    fn blkio_prefers_cfq_then_bfq() {
        let b: LinuxBlockIo = serde_json::from_str(
            r#"{"weight":300,"weightDevice":[{"major":8,"minor":0,"weight":500}],
                "throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1000}],
                "throttleWriteIOPSDevice":[{"major":8,"minor":16,"rate":30}]}"#,
        )
        .unwrap();
        let d = FakeDir::new(&[
            ("blkio.bfq.weight", ""),
            ("blkio.bfq.weight_device", ""),
            ("blkio.throttle.read_bps_device", ""),
            ("blkio.throttle.write_iops_device", ""),
        ]);
        blkio(&d.0, &b).unwrap();
        assert_eq!(d.get("blkio.bfq.weight"), "300");
        assert_eq!(d.get("blkio.bfq.weight_device"), "8:0 500");
        assert_eq!(d.get("blkio.throttle.read_bps_device"), "8:0 1000");
        assert_eq!(d.get("blkio.throttle.write_iops_device"), "8:16 30");
        let d = FakeDir::new(&[("blkio.weight", ""), ("blkio.weight_device", "")]);
        let b: LinuxBlockIo = serde_json::from_str(r#"{"weight":300}"#).unwrap();
        blkio(&d.0, &b).unwrap();
        assert_eq!(d.get("blkio.weight"), "300");
        let b: LinuxBlockIo = serde_json::from_str(r#"{"leafWeight":300}"#).unwrap();
        let e = blkio(&d.0, &b).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("linux.resources.blockIO.leafWeight: "),
            "{e}"
        );
    }

    #[test]
    fn hugetlb_and_network_and_rdma_files() {
        let d = FakeDir::new(&[
            ("hugetlb.2MB.limit_in_bytes", ""),
            ("hugetlb.2MB.rsvd.limit_in_bytes", ""),
            ("net_cls.classid", ""),
            ("net_prio.ifpriomap", ""),
            ("rdma.max", ""),
        ]);
        let sizes = vec!["1GB".to_string(), "2MB".to_string()];
        let l: Vec<LinuxHugepageLimit> =
            serde_json::from_str(r#"[{"pageSize":"2MB","limit":4194304}]"#).unwrap();
        hugetlb(&d.0, &l, &sizes).unwrap();
        assert_eq!(d.get("hugetlb.2MB.limit_in_bytes"), "4194304");
        assert_eq!(d.get("hugetlb.2MB.rsvd.limit_in_bytes"), "4194304");
        let l: Vec<LinuxHugepageLimit> =
            serde_json::from_str(r#"[{"pageSize":"3MB","limit":1}]"#).unwrap();
        let e = hugetlb(&d.0, &l, &sizes).unwrap_err();
        assert!(e.to_string().contains("hugepageLimits[0].pageSize"), "{e}");
        net_cls(&d.0, 0x100001).unwrap();
        assert_eq!(d.get("net_cls.classid"), "1048577");
        let p: Vec<LinuxInterfacePriority> =
            serde_json::from_str(r#"[{"name":"eth0","priority":5}]"#).unwrap();
        net_prio(&d.0, &p).unwrap();
        assert_eq!(d.get("net_prio.ifpriomap"), "eth0 5");
        let r: HashMap<String, LinuxRdma> =
            serde_json::from_str(r#"{"mlx5_1":{"hcaHandles":3,"hcaObjects":1000}}"#).unwrap();
        rdma(&d.0, &r).unwrap();
        assert_eq!(d.get("rdma.max"), "mlx5_1 hca_handle=3 hca_object=1000");
        let r: HashMap<String, LinuxRdma> = serde_json::from_str(r#"{"mlx5_1":{}}"#).unwrap();
        assert!(rdma(&d.0, &r).is_err());
    }
}
