//! Resource usage of a container for `events`, read from the v1 controllers or the
//! v2 cgroup, in the JSON shape runc prints (`types.Stats`: cpu, cpuset, memory,
//! pids, blkio, hugetlb, ...), v2 values converted to v1's units and layout.
//!
//! Field names and "omitted when zero" rules copy Go's `omitempty`/`omitzero`, which
//! is what containerd's and Podman's decoders were written against.

use super::resources::Placement;
use super::{convert, file};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

fn zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Serialize, Default, Debug, Clone, PartialEq)]
pub struct Stats {
    pub cpu: Cpu,
    pub cpuset: CpuSet,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
    pub intel_rdt: IntelRdt,
    pub network_interfaces: Option<Vec<()>>,
}

/// kraal has no Intel RDT support: always empty, as runc prints it without RDT.
#[derive(Serialize, Default, Debug, Clone, PartialEq)]
pub struct IntelRdt {}

#[derive(Serialize, Default, Debug, Clone, PartialEq)]
pub struct Hugetlb {
    #[serde(skip_serializing_if = "zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Serialize, Default, Debug, Clone, PartialEq)]
pub struct BlkioEntry {
    #[serde(skip_serializing_if = "zero")]
    pub major: u64,
    #[serde(skip_serializing_if = "zero")]
    pub minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(skip_serializing_if = "zero")]
    pub value: u64,
}

#[derive(Serialize, Default, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Blkio {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty", rename = "ioQueueRecursive")]
    pub io_queued_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_wait_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_merged_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sectors_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi: Option<Psi>,
}

#[derive(Serialize, Default, Debug, Clone, PartialEq)]
pub struct Pids {
    #[serde(skip_serializing_if = "zero")]
    pub current: u64,
    #[serde(skip_serializing_if = "zero")]
    pub limit: u64,
}

#[derive(Serialize, Default, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Throttling {
    #[serde(skip_serializing_if = "zero")]
    pub periods: u64,
    #[serde(skip_serializing_if = "zero")]
    pub throttled_periods: u64,
    #[serde(skip_serializing_if = "zero")]
    pub throttled_time: u64,
}

#[derive(Serialize, Default, Debug, Clone, PartialEq)]
pub struct CpuUsage {
    #[serde(skip_serializing_if = "zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Serialize, Default, Debug, Clone, PartialEq)]
pub struct Cpu {
    #[serde(skip_serializing_if = "is_default")]
    pub usage: CpuUsage,
    #[serde(skip_serializing_if = "is_default")]
    pub throttling: Throttling,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi: Option<Psi>,
}

#[derive(Serialize, Default, Debug, Clone, PartialEq)]
pub struct CpuSet {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    pub cpu_exclusive: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
    pub mem_hardwall: u64,
    pub mem_exclusive: u64,
    pub memory_migrate: u64,
    pub memory_spread_page: u64,
    pub memory_spread_slab: u64,
    pub memory_pressure: u64,
    pub sched_load_balance: u64,
    pub sched_relax_domain_level: i64,
}

#[derive(Serialize, Default, Debug, Clone, PartialEq)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Serialize, Default, Debug, Clone, PartialEq)]
pub struct Memory {
    #[serde(skip_serializing_if = "zero")]
    pub cache: u64,
    #[serde(skip_serializing_if = "is_default")]
    pub usage: MemoryEntry,
    #[serde(skip_serializing_if = "is_default")]
    pub swap: MemoryEntry,
    #[serde(skip_serializing_if = "is_default")]
    pub kernel: MemoryEntry,
    #[serde(skip_serializing_if = "is_default", rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi: Option<Psi>,
}

#[derive(Serialize, Default, Debug, Clone, PartialEq)]
pub struct PsiData {
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
    pub total: u64,
}

#[derive(Serialize, Default, Debug, Clone, PartialEq)]
pub struct Psi {
    #[serde(skip_serializing_if = "is_default")]
    pub some: PsiData,
    #[serde(skip_serializing_if = "is_default")]
    pub full: PsiData,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

fn read_opt(dir: &Path, name: &str) -> Option<String> {
    file::read(dir, name).ok()
}

fn num(dir: &Path, name: &str) -> u64 {
    file::read_u64(dir, name)
        .map(|v| if v == u64::MAX { 0 } else { v })
        .unwrap_or(0)
}

fn nums(text: &str) -> Vec<u64> {
    text.split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect()
}

/// Expands a cpu or node list ("0-3,7") as runc reports it.
pub fn parse_list(s: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) {
                    out.extend(a..=b);
                }
            }
            None => out.extend(part.parse::<u16>().ok()),
        }
    }
    out
}

pub fn parse_psi(text: &str) -> Option<Psi> {
    let mut psi = Psi::default();
    let mut any = false;
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let slot = match f.next() {
            Some("some") => &mut psi.some,
            Some("full") => &mut psi.full,
            _ => continue,
        };
        any = true;
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            match k {
                "avg10" => slot.avg10 = v.parse().unwrap_or(0.0),
                "avg60" => slot.avg60 = v.parse().unwrap_or(0.0),
                "avg300" => slot.avg300 = v.parse().unwrap_or(0.0),
                "total" => slot.total = v.parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    any.then_some(psi)
}

/// Reads every statistic the container's controllers offer; a controller the host
/// lacks leaves its section empty (stats must not fail because blkio is absent).
pub fn read(p: &Placement) -> Stats {
    let mut s = Stats::default();
    let v2 = p.v2_dir();
    match (p.v1("cpuacct"), v2) {
        (Some(d), _) => cpuacct_v1(d, &mut s.cpu),
        (None, Some(d)) => cpu_v2(d, &mut s.cpu),
        _ => {}
    }
    if let Some(d) = p.v1("cpu") {
        throttling_v1(d, &mut s.cpu.throttling);
    }
    if let Some(d) = p.v1("cpuset") {
        cpuset_v1(d, &mut s.cpuset);
    }
    match (p.v1("memory"), v2) {
        (Some(d), _) => memory_v1(d, &mut s.memory),
        (None, Some(d)) if file::exists(d, "memory.current") => memory_v2(d, &mut s.memory),
        _ => {}
    }
    match (p.v1("pids"), v2) {
        (Some(d), _) => pids(d, &mut s.pids),
        (None, Some(d)) if file::exists(d, "pids.current") => pids(d, &mut s.pids),
        (None, Some(d)) => {
            // No pids controller: count the processes (runc does the same).
            s.pids.current = read_opt(d, "cgroup.procs")
                .map(|t| t.lines().count() as u64)
                .unwrap_or(0)
        }
        _ => {}
    }
    match (p.v1("blkio"), v2) {
        (Some(d), _) => blkio_v1(d, &mut s.blkio),
        (None, Some(d)) => io_v2(d, &mut s.blkio),
        _ => {}
    }
    let sizes = convert::host_page_sizes();
    let hugetlb_v2 = v2.filter(|d| super::v2::controllers(d).iter().any(|c| c == "hugetlb"));
    match (p.v1("hugetlb"), hugetlb_v2) {
        (Some(d), _) => hugetlb_v1(d, &sizes, &mut s.hugetlb),
        (None, Some(d)) => hugetlb_v2_read(d, &sizes, &mut s.hugetlb),
        _ => {}
    }
    s
}

fn cpuacct_v1(d: &Path, c: &mut Cpu) {
    c.usage.total = num(d, "cpuacct.usage");
    c.usage.percpu = read_opt(d, "cpuacct.usage_percpu")
        .map(|t| nums(&t))
        .unwrap_or_default();
    // cpuacct.usage_all: "cpu user system" per line, in ns.
    if let Some(t) = read_opt(d, "cpuacct.usage_all") {
        for l in t.lines().skip(1) {
            let v = nums(l);
            if v.len() == 3 {
                c.usage.percpu_user.push(v[1]);
                c.usage.percpu_kernel.push(v[2]);
            }
        }
    }
    // cpuacct.stat is in clock ticks.
    if let Some(t) = read_opt(d, "cpuacct.stat") {
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        let ns = |ticks: u64| ticks.saturating_mul(1_000_000_000 / hz);
        c.usage.user = ns(file::keyed(&t, "user").unwrap_or(0));
        c.usage.kernel = ns(file::keyed(&t, "system").unwrap_or(0));
    }
}

fn throttling_v1(d: &Path, t: &mut Throttling) {
    if let Some(s) = read_opt(d, "cpu.stat") {
        t.periods = file::keyed(&s, "nr_periods").unwrap_or(0);
        t.throttled_periods = file::keyed(&s, "nr_throttled").unwrap_or(0);
        t.throttled_time = file::keyed(&s, "throttled_time").unwrap_or(0);
    }
}

fn cpu_v2(d: &Path, c: &mut Cpu) {
    if let Some(s) = read_opt(d, "cpu.stat") {
        let us = |k: &str| file::keyed(&s, k).unwrap_or(0).saturating_mul(1000);
        c.usage.total = us("usage_usec");
        c.usage.user = us("user_usec");
        c.usage.kernel = us("system_usec");
        c.throttling.periods = file::keyed(&s, "nr_periods").unwrap_or(0);
        c.throttling.throttled_periods = file::keyed(&s, "nr_throttled").unwrap_or(0);
        c.throttling.throttled_time = us("throttled_usec");
    }
    c.psi = read_opt(d, "cpu.pressure").and_then(|t| parse_psi(&t));
}

fn cpuset_v1(d: &Path, c: &mut CpuSet) {
    c.cpus = read_opt(d, "cpuset.cpus")
        .map(|t| parse_list(&t))
        .unwrap_or_default();
    c.mems = read_opt(d, "cpuset.mems")
        .map(|t| parse_list(&t))
        .unwrap_or_default();
    c.cpu_exclusive = num(d, "cpuset.cpu_exclusive");
    c.mem_hardwall = num(d, "cpuset.mem_hardwall");
    c.mem_exclusive = num(d, "cpuset.mem_exclusive");
    c.memory_migrate = num(d, "cpuset.memory_migrate");
    c.memory_spread_page = num(d, "cpuset.memory_spread_page");
    c.memory_spread_slab = num(d, "cpuset.memory_spread_slab");
    c.memory_pressure = num(d, "cpuset.memory_pressure");
    c.sched_load_balance = num(d, "cpuset.sched_load_balance");
    c.sched_relax_domain_level = read_opt(d, "cpuset.sched_relax_domain_level")
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
}

fn memory_entry_v1(d: &Path, prefix: &str) -> MemoryEntry {
    let f = |s: &str| format!("{prefix}.{s}");
    MemoryEntry {
        limit: file::read_u64(d, &f("limit_in_bytes")).unwrap_or(0),
        usage: num(d, &f("usage_in_bytes")),
        max: num(d, &f("max_usage_in_bytes")),
        failcnt: num(d, &f("failcnt")),
    }
}

fn memory_v1(d: &Path, m: &mut Memory) {
    if let Some(t) = read_opt(d, "memory.stat") {
        m.raw = file::keyed_all(&t).into_iter().collect();
    }
    m.cache = m.raw.get("cache").copied().unwrap_or(0);
    m.usage = memory_entry_v1(d, "memory");
    m.swap = memory_entry_v1(d, "memory.memsw");
    m.kernel = memory_entry_v1(d, "memory.kmem");
    m.kernel_tcp = memory_entry_v1(d, "memory.kmem.tcp");
}

fn memory_v2(d: &Path, m: &mut Memory) {
    if let Some(t) = read_opt(d, "memory.stat") {
        m.raw = file::keyed_all(&t).into_iter().collect();
    }
    m.cache = m.raw.get("file").copied().unwrap_or(0);
    let events = read_opt(d, "memory.events").unwrap_or_default();
    m.usage = MemoryEntry {
        limit: file::read_u64(d, "memory.max").unwrap_or(u64::MAX),
        usage: num(d, "memory.current"),
        max: num(d, "memory.peak"),
        failcnt: file::keyed(&events, "max").unwrap_or(0),
    };
    if file::exists(d, "memory.swap.current") {
        let swap_events = read_opt(d, "memory.swap.events").unwrap_or_default();
        let swap_limit = file::read_u64(d, "memory.swap.max").unwrap_or(u64::MAX);
        // v1 reports memory+swap: add memory to swap-only numbers; no combined peak.
        m.swap = MemoryEntry {
            limit: if swap_limit == u64::MAX || m.usage.limit == u64::MAX {
                u64::MAX
            } else {
                swap_limit + m.usage.limit
            },
            usage: num(d, "memory.swap.current") + m.usage.usage,
            max: 0,
            failcnt: file::keyed(&swap_events, "fail").unwrap_or(0),
        };
    }
    m.psi = read_opt(d, "memory.pressure").and_then(|t| parse_psi(&t));
}

fn pids(d: &Path, p: &mut Pids) {
    p.current = num(d, "pids.current");
    p.limit = num(d, "pids.max");
}

/// One v1 blkio stat file: `MAJ:MIN Op value` lines (and a `Total` line, skipped).
pub fn parse_blkio(text: &str) -> Vec<BlkioEntry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split([' ', ':']).filter(|s| !s.is_empty()).collect();
        let (major, minor, op, value) = match f.as_slice() {
            [ma, mi, op, v] => (ma, mi, *op, v),
            [ma, mi, v] => (ma, mi, "", v),
            _ => continue,
        };
        let (Ok(major), Ok(minor), Ok(value)) = (major.parse(), minor.parse(), value.parse())
        else {
            continue;
        };
        out.push(BlkioEntry {
            major,
            minor,
            op: op.to_string(),
            value,
        });
    }
    out
}

fn blkio_v1(d: &Path, b: &mut Blkio) {
    let get = |name: &str| {
        read_opt(d, name)
            .map(|t| parse_blkio(&t))
            .unwrap_or_default()
    };
    // CFQ's files when present, else BFQ's, else what throttling counts.
    let prefix = if file::exists(d, "blkio.io_serviced_recursive") {
        "blkio."
    } else if file::exists(d, "blkio.bfq.io_serviced_recursive") {
        "blkio.bfq."
    } else {
        b.io_service_bytes_recursive = get("blkio.throttle.io_service_bytes_recursive");
        b.io_serviced_recursive = get("blkio.throttle.io_serviced_recursive");
        return;
    };
    let p = |s: &str| format!("{prefix}{s}");
    b.io_service_bytes_recursive = get(&p("io_service_bytes_recursive"));
    b.io_serviced_recursive = get(&p("io_serviced_recursive"));
    b.io_queued_recursive = get(&p("io_queued_recursive"));
    b.io_service_time_recursive = get(&p("io_service_time_recursive"));
    b.io_wait_time_recursive = get(&p("io_wait_time_recursive"));
    b.io_merged_recursive = get(&p("io_merged_recursive"));
    b.io_time_recursive = get(&p("time_recursive"));
    b.sectors_recursive = get(&p("sectors_recursive"));
    // With only BFQ's always-present files, the throttle counters are the real ones.
    if b.io_service_bytes_recursive.is_empty() {
        b.io_service_bytes_recursive = get("blkio.throttle.io_service_bytes_recursive");
        b.io_serviced_recursive = get("blkio.throttle.io_serviced_recursive");
    }
}

/// v2's `io.stat` (`MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=..`) in v1's tables.
pub fn parse_io_stat(text: &str, b: &mut Blkio) {
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let Some((ma, mi)) = f.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (ma.parse(), mi.parse()) else {
            continue;
        };
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(value) = v.parse() else { continue };
            let (table, op) = match k {
                "rbytes" => (&mut b.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut b.io_service_bytes_recursive, "Write"),
                "rios" => (&mut b.io_serviced_recursive, "Read"),
                "wios" => (&mut b.io_serviced_recursive, "Write"),
                _ => continue,
            };
            table.push(BlkioEntry {
                major,
                minor,
                op: op.to_string(),
                value,
            });
        }
    }
}

fn io_v2(d: &Path, b: &mut Blkio) {
    if let Some(t) = read_opt(d, "io.stat") {
        parse_io_stat(&t, b);
    }
    b.psi = read_opt(d, "io.pressure").and_then(|t| parse_psi(&t));
}

fn hugetlb_v1(d: &Path, sizes: &[String], out: &mut BTreeMap<String, Hugetlb>) {
    for s in sizes {
        let f = |k: &str| format!("hugetlb.{s}.{k}");
        out.insert(
            s.clone(),
            Hugetlb {
                usage: num(d, &f("usage_in_bytes")),
                max: num(d, &f("max_usage_in_bytes")),
                failcnt: num(d, &f("failcnt")),
            },
        );
    }
}

fn hugetlb_v2_read(d: &Path, sizes: &[String], out: &mut BTreeMap<String, Hugetlb>) {
    for s in sizes {
        let events = read_opt(d, &format!("hugetlb.{s}.events")).unwrap_or_default();
        out.insert(
            s.clone(),
            Hugetlb {
                usage: num(d, &format!("hugetlb.{s}.current")),
                max: 0,
                failcnt: file::keyed(&events, "max").unwrap_or(0),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::FakeDir;
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn empty_stats_json_matches_runc_shape() {
        let s = Stats::default();
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "cpu": {},
                "cpuset": {"cpu_exclusive":0,"mem_hardwall":0,"mem_exclusive":0,"memory_migrate":0,
                    "memory_spread_page":0,"memory_spread_slab":0,"memory_pressure":0,
                    "sched_load_balance":0,"sched_relax_domain_level":0},
                "memory": {},
                "pids": {},
                "blkio": {},
                "hugetlb": {},
                "intel_rdt": {},
                "network_interfaces": null
            })
        );
    }

    #[test]
    fn parsers() {
        assert_eq!(parse_list("0-2,5\n"), vec![0, 1, 2, 5]);
        assert_eq!(parse_list(""), Vec::<u16>::new());
        let e = parse_blkio("254:0 Read 4096\n254:0 Write 0\n254:0 Total 4096\nTotal 4096\n");
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].op, "Read");
        assert_eq!(e[0].value, 4096);
        let mut b = Blkio::default();
        parse_io_stat(
            "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n",
            &mut b,
        );
        assert_eq!(b.io_service_bytes_recursive.len(), 2);
        assert_eq!(b.io_serviced_recursive[1].op, "Write");
        let psi = parse_psi(
            "some avg10=1.50 avg60=0.00 avg300=0.00 total=42\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=7\n",
        )
        .unwrap();
        assert_eq!(psi.some.avg10, 1.5);
        assert_eq!(psi.full.total, 7);
    }

    #[test]
    fn v2_files_in_v1_units() {
        let d = FakeDir::new(&[
            ("cgroup.controllers", "memory pids"),
            ("cpu.stat", "usage_usec 5\nuser_usec 3\nsystem_usec 2\nnr_periods 4\nnr_throttled 1\nthrottled_usec 9\n"),
            ("memory.current", "1000"),
            ("memory.max", "4000"),
            ("memory.peak", "1500"),
            ("memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"),
            ("memory.swap.current", "10"),
            ("memory.swap.max", "max"),
            ("memory.stat", "anon 100\nfile 200\n"),
            ("pids.current", "3"),
            ("pids.max", "max"),
        ]);
        let p = Placement {
            v1: vec![],
            v2: Some((d.0.clone(), PathBuf::from("/nonexistent"))),
        };
        let s = read(&p);
        assert_eq!(s.cpu.usage.total, 5000);
        assert_eq!(s.cpu.usage.kernel, 2000);
        assert_eq!(s.cpu.throttling.throttled_time, 9000);
        assert_eq!(s.memory.usage.usage, 1000);
        assert_eq!(s.memory.usage.limit, 4000);
        assert_eq!(s.memory.usage.max, 1500);
        assert_eq!(s.memory.usage.failcnt, 3);
        assert_eq!(s.memory.swap.usage, 1010);
        assert_eq!(s.memory.swap.limit, u64::MAX);
        assert_eq!(s.memory.cache, 200);
        assert_eq!(s.pids.current, 3);
        assert_eq!(s.pids.limit, 0);
        let j = serde_json::to_value(&s).unwrap();
        assert_eq!(j["memory"]["raw"]["anon"], 100);
        assert_eq!(j["pids"], serde_json::json!({"current": 3}));
    }

    #[test]
    fn v1_files() {
        let mem = FakeDir::new(&[
            ("memory.stat", "cache 7\nrss 9\n"),
            ("memory.limit_in_bytes", "9223372036854771712"),
            ("memory.usage_in_bytes", "100"),
            ("memory.max_usage_in_bytes", "200"),
            ("memory.failcnt", "1"),
        ]);
        let acct = FakeDir::new(&[
            ("cpuacct.usage", "123"),
            ("cpuacct.usage_percpu", "100 23 \n"),
            ("cpuacct.usage_all", "cpu user system\n0 60 40\n1 20 3\n"),
            ("cpuacct.stat", "user 1\nsystem 2\n"),
        ]);
        let p = Placement {
            v1: vec![
                (vec!["memory".into()], mem.0.clone()),
                (vec!["cpuacct".into()], acct.0.clone()),
            ],
            v2: None,
        };
        let s = read(&p);
        assert_eq!(s.memory.cache, 7);
        assert_eq!(s.memory.usage.usage, 100);
        assert_eq!(s.memory.usage.max, 200);
        assert_eq!(s.memory.usage.failcnt, 1);
        assert_eq!(s.cpu.usage.total, 123);
        assert_eq!(s.cpu.usage.percpu, vec![100, 23]);
        assert_eq!(s.cpu.usage.percpu_user, vec![60, 20]);
        assert_eq!(s.cpu.usage.percpu_kernel, vec![40, 3]);
        assert!(s.cpu.usage.kernel > 0);
    }
}
