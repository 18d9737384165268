//! Applying `linux.resources`: finding, for every section, the directory of the
//! controller that enforces it (a v1 hierarchy, or the v2 cgroup on unified and hybrid
//! hosts), refusing the whole config before any write when something cannot be
//! applied, then writing each section with its v1 or v2 controller.

use super::devices::{self, State};
use super::{convert, devices_bpf, v1, v2, Hierarchy};
use anyhow::{anyhow, bail, Result};
use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxHugepageLimit, LinuxInterfacePriority, LinuxMemory, LinuxPids,
    LinuxRdma, LinuxResources,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The container's cgroup directories, by the hierarchy each belongs to.
#[derive(Clone, Debug, Default)]
pub struct Placement {
    /// v1 hierarchies: their controllers and the container's directory in them.
    pub v1: Vec<(Vec<String>, PathBuf)>,
    /// The container's cgroup2 directory and the cgroup2 mount point.
    pub v2: Option<(PathBuf, PathBuf)>,
}

impl Placement {
    /// Pairs each directory with the hierarchy whose mount point holds it.
    pub fn new(hier: &[Hierarchy], dirs: &[PathBuf]) -> Placement {
        let mut p = Placement::default();
        for d in dirs {
            let Some(h) = hier
                .iter()
                .filter(|h| d.starts_with(&h.mountpoint))
                .max_by_key(|h| h.mountpoint.as_os_str().len())
            else {
                continue;
            };
            if h.v2 {
                p.v2 = Some((d.clone(), h.mountpoint.clone()));
            } else {
                p.v1.push((h.controllers.clone(), d.clone()));
            }
        }
        p
    }

    /// The container's directory in the v1 hierarchy of `controller`.
    pub fn v1(&self, controller: &str) -> Option<&Path> {
        self.v1
            .iter()
            .find(|(c, _)| c.iter().any(|c| c == controller))
            .map(|(_, d)| d.as_path())
    }

    pub fn v2_dir(&self) -> Option<&Path> {
        self.v2.as_ref().map(|(d, _)| d.as_path())
    }

    /// Every controller mounted as v1 (so the v2 side must leave it alone).
    pub fn v1_controllers(&self) -> Vec<String> {
        self.v1
            .iter()
            .flat_map(|(c, _)| c.iter().cloned())
            .collect()
    }

    /// Where controller `v1name` (called `v2name` on cgroup v2) applies: its v1
    /// hierarchy if mounted, else the v2 cgroup when it has the controller enabled.
    pub fn target(&self, v1name: &str, v2name: Option<&str>) -> Result<Target<'_>> {
        if let Some(d) = self.v1(v1name) {
            return Ok(Target::V1(d));
        }
        let Some(v2name) = v2name else {
            return Err(anyhow!("the {v1name} controller is not mounted"));
        };
        let Some((dir, mount)) = &self.v2 else {
            return Err(anyhow!("the {v1name} controller is not mounted"));
        };
        if v2::controllers(dir).iter().any(|c| c == v2name) {
            return Ok(Target::V2(dir));
        }
        if v2::controllers(mount).iter().any(|c| c == v2name) {
            return Err(anyhow!(
                "the {v2name} controller is not enabled for {} (not passed down by {})",
                dir.display(),
                blocker(mount, dir, v2name)
                    .join("cgroup.subtree_control")
                    .display()
            ));
        }
        if self.v1.is_empty() {
            Err(anyhow!(
                "the {v2name} controller is not available in cgroup v2"
            ))
        } else {
            Err(anyhow!("the {v1name} controller is not mounted"))
        }
    }
}

/// The topmost cgroup between `mount` and `dir` that does not enable `controller`
/// for its children.
fn blocker(mount: &Path, dir: &Path, controller: &str) -> PathBuf {
    let mut d = mount.to_path_buf();
    let rel = dir.strip_prefix(mount).unwrap_or(Path::new(""));
    for c in rel.components() {
        let enabled = super::file::read(&d, "cgroup.subtree_control").unwrap_or_default();
        if !enabled.split_whitespace().any(|c| c == controller) {
            return d;
        }
        d.push(c);
    }
    d
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target<'a> {
    V1(&'a Path),
    V2(&'a Path),
}

/// One write job, decided before anything is written.
enum Step<'a> {
    Cpuset(&'a Path, &'a LinuxCpu),
    CpuV1(&'a Path, &'a LinuxCpu),
    CpuV2(&'a Path, &'a LinuxCpu),
    DevicesV1(&'a Path, State, Vec<devices::Rule>),
    /// The bool: the config asked for device rules (else only the defaults apply).
    DevicesBpf(&'a Path, State, bool),
    MemoryV1(&'a Path, &'a LinuxMemory),
    MemoryV2(&'a Path, &'a LinuxMemory),
    Pids(&'a Path, &'a LinuxPids),
    Blkio(&'a Path, &'a LinuxBlockIo),
    Io(&'a Path, &'a LinuxBlockIo),
    HugetlbV1(&'a Path, &'a [LinuxHugepageLimit], Vec<String>),
    HugetlbV2(&'a Path, &'a [LinuxHugepageLimit], Vec<String>),
    NetCls(&'a Path, u32),
    NetPrio(&'a Path, &'a [LinuxInterfacePriority]),
    Rdma(&'a Path, &'a HashMap<String, LinuxRdma>),
    Unified(&'a Path, &'a HashMap<String, String>),
}

fn cpu_bandwidth_set(c: &LinuxCpu) -> bool {
    c.shares().is_some_and(|v| v != 0)
        || c.quota().is_some_and(|v| v != 0)
        || c.period().is_some_and(|v| v != 0)
        || c.burst().is_some()
        || c.idle().is_some()
        || c.realtime_runtime().is_some_and(|v| v != 0)
        || c.realtime_period().is_some_and(|v| v != 0)
}

fn cpuset_set(c: &LinuxCpu) -> bool {
    c.cpus().as_deref().is_some_and(|s| !s.is_empty())
        || c.mems().as_deref().is_some_and(|s| !s.is_empty())
}

#[allow(deprecated)]
fn memory_set(m: &LinuxMemory) -> bool {
    [
        m.limit(),
        m.reservation(),
        m.swap(),
        m.kernel(),
        m.kernel_tcp(),
    ]
    .iter()
    .any(|v| v.is_some_and(|v| v != 0))
        || m.swappiness().is_some_and(|s| s != u64::MAX)
        || m.disable_oom_killer() == Some(true)
        || m.use_hierarchy().is_some()
}

fn blkio_set(b: &LinuxBlockIo) -> bool {
    b.weight().is_some_and(|w| w != 0)
        || b.leaf_weight().is_some_and(|w| w != 0)
        || [
            b.throttle_read_bps_device().as_ref().map(Vec::len),
            b.throttle_write_bps_device().as_ref().map(Vec::len),
            b.throttle_read_iops_device().as_ref().map(Vec::len),
            b.throttle_write_iops_device().as_ref().map(Vec::len),
            b.weight_device().as_ref().map(Vec::len),
        ]
        .iter()
        .any(|n| n.unwrap_or(0) > 0)
}

/// Decides every write `res` needs; fails, naming the field, if any cannot be made.
/// `initial` (on create) also applies the device list when the config has none:
/// a container always gets the default device list, as with runc.
fn plan<'a>(p: &'a Placement, res: &'a LinuxResources, initial: bool) -> Result<Vec<Step<'a>>> {
    let mut steps = Vec::new();
    let ctx = |field: &str, e: anyhow::Error| anyhow!("linux.resources.{field}: {e}");

    if let Some(c) = res.cpu() {
        if cpuset_set(c) {
            let t = p
                .target("cpuset", Some("cpuset"))
                .map_err(|e| ctx("cpu.cpus/mems", e))?;
            let (Target::V1(d) | Target::V2(d)) = t;
            steps.push(Step::Cpuset(d, c));
        }
    }
    if initial || res.devices().is_some() {
        let rules = devices::container_rules(res.devices().as_deref().unwrap_or(&[]))?;
        let state = State::from_rules(&rules).map_err(|e| ctx("devices", e))?;
        match (p.v1("devices"), p.v2_dir()) {
            (Some(d), _) => steps.push(Step::DevicesV1(d, state, rules)),
            (None, Some(d)) => steps.push(Step::DevicesBpf(d, state, res.devices().is_some())),
            (None, None) => bail!("linux.resources.devices: the devices controller is not mounted"),
        }
    }
    if let Some(m) = res.memory().as_ref().filter(|m| memory_set(m)) {
        match p
            .target("memory", Some("memory"))
            .map_err(|e| ctx("memory", e))?
        {
            Target::V1(d) => steps.push(Step::MemoryV1(d, m)),
            Target::V2(d) => {
                v2::check_memory(m)?;
                steps.push(Step::MemoryV2(d, m))
            }
        }
    }
    if let Some(c) = res.cpu().as_ref().filter(|c| cpu_bandwidth_set(c)) {
        match p.target("cpu", Some("cpu")).map_err(|e| ctx("cpu", e))? {
            Target::V1(d) => steps.push(Step::CpuV1(d, c)),
            Target::V2(d) => {
                v2::check_cpu(c)?;
                steps.push(Step::CpuV2(d, c))
            }
        }
    }
    if let Some(pids) = res.pids() {
        let t = p.target("pids", Some("pids")).map_err(|e| ctx("pids", e))?;
        let (Target::V1(d) | Target::V2(d)) = t;
        steps.push(Step::Pids(d, pids));
    }
    if let Some(b) = res.block_io().as_ref().filter(|b| blkio_set(b)) {
        match p
            .target("blkio", Some("io"))
            .map_err(|e| ctx("blockIO", e))?
        {
            Target::V1(d) => steps.push(Step::Blkio(d, b)),
            Target::V2(d) => {
                v2::check_io(b)?;
                steps.push(Step::Io(d, b))
            }
        }
    }
    if let Some(h) = res.hugepage_limits().as_deref().filter(|h| !h.is_empty()) {
        let t = p
            .target("hugetlb", Some("hugetlb"))
            .map_err(|e| ctx("hugepageLimits", e))?;
        let sizes = convert::host_page_sizes();
        for (i, l) in h.iter().enumerate() {
            v1::check_page_size(i, l.page_size(), &sizes)?;
        }
        steps.push(match t {
            Target::V1(d) => Step::HugetlbV1(d, h, sizes),
            Target::V2(d) => Step::HugetlbV2(d, h, sizes),
        });
    }
    // A pure cgroup v2 host has no net_cls/net_prio at all: ignored, as runc does.
    let v2_only = p.v1("net_cls").is_none() && p.v1("memory").is_none() && p.v2_dir().is_some();
    if let (Some(_), true) = (res.network(), v2_only) {
        crate::logging::warn(
            "linux.resources.network: ignored, cgroup v2 has no net_cls/net_prio controllers",
        );
    } else if let Some(n) = res.network() {
        if let Some(id) = n.class_id() {
            let t = p.target("net_cls", None).map_err(|e| ctx("network", e))?;
            let (Target::V1(d) | Target::V2(d)) = t;
            steps.push(Step::NetCls(d, id));
        }
        if let Some(pr) = n.priorities().as_deref().filter(|p| !p.is_empty()) {
            let t = p.target("net_prio", None).map_err(|e| ctx("network", e))?;
            let (Target::V1(d) | Target::V2(d)) = t;
            steps.push(Step::NetPrio(d, pr));
        }
    }
    if let Some(r) = res.rdma().as_ref().filter(|r| !r.is_empty()) {
        let t = p.target("rdma", Some("rdma")).map_err(|e| ctx("rdma", e))?;
        let (Target::V1(d) | Target::V2(d)) = t;
        steps.push(Step::Rdma(d, r));
    }
    if let Some(u) = res.unified().as_ref().filter(|u| !u.is_empty()) {
        let Some(d) = p.v2_dir() else {
            bail!("linux.resources.unified: needs cgroup v2, and this host mounts only cgroup v1");
        };
        v2::check_unified(d, u, &v2::controllers(d), &p.v1_controllers())?;
        steps.push(Step::Unified(d, u));
    }
    Ok(steps)
}

fn run(step: &Step) -> Result<()> {
    match step {
        Step::Cpuset(d, c) => v1::cpuset(d, c),
        Step::CpuV1(d, c) => v1::cpu(d, c),
        Step::CpuV2(d, c) => v2::cpu(d, c),
        Step::DevicesV1(d, s, rules) => v1::devices(d, s, rules),
        Step::DevicesBpf(d, s, asked) => match devices_bpf::apply(d, s) {
            Ok(()) => Ok(()),
            // Unprivileged kraal in a delegated cgroup cannot load BPF programs; with no
            // rules in the config, the user namespace already keeps host devices out
            // (runc skips this case too).
            Err(e) if !asked && !nix::unistd::geteuid().is_root() => {
                crate::logging::warn(&format!(
                    "linux.resources.devices: default device rules not applied: {e:#}"
                ));
                Ok(())
            }
            Err(e) => Err(anyhow!("linux.resources.devices: {e:#}")),
        },
        Step::MemoryV1(d, m) => v1::memory(d, m),
        Step::MemoryV2(d, m) => v2::memory(d, m),
        Step::Pids(d, p) => v1::pids(d, p),
        Step::Blkio(d, b) => v1::blkio(d, b),
        Step::Io(d, b) => v2::io(d, b),
        Step::HugetlbV1(d, h, s) => v1::hugetlb(d, h, s),
        Step::HugetlbV2(d, h, s) => v2::hugetlb(d, h, s),
        Step::NetCls(d, id) => v1::net_cls(d, *id),
        Step::NetPrio(d, p) => v1::net_prio(d, p),
        Step::Rdma(d, r) => v1::rdma(d, r),
        Step::Unified(d, u) => v2::unified(d, u),
    }
}

/// The first limit `res` sets, for refusing a config that needs a cgroup when the
/// container has none (rootless without delegated cgroups). Device rules do not
/// count: without a cgroup the user namespace keeps host devices out.
pub fn first_limit(res: &LinuxResources) -> Option<&'static str> {
    let set = [
        ("memory", res.memory().as_ref().is_some_and(memory_set)),
        (
            "cpu",
            res.cpu()
                .as_ref()
                .is_some_and(|c| cpu_bandwidth_set(c) || cpuset_set(c)),
        ),
        ("pids", res.pids().is_some()),
        ("blockIO", res.block_io().as_ref().is_some_and(blkio_set)),
        (
            "hugepageLimits",
            res.hugepage_limits()
                .as_ref()
                .is_some_and(|h| !h.is_empty()),
        ),
        ("network", res.network().is_some()),
        ("rdma", res.rdma().as_ref().is_some_and(|r| !r.is_empty())),
        (
            "unified",
            res.unified().as_ref().is_some_and(|u| !u.is_empty()),
        ),
    ];
    set.into_iter().find(|(_, s)| *s).map(|(f, _)| f)
}

/// Applies every set field of `res`. `initial` is true on create (see [`plan`]).
pub fn apply(p: &Placement, res: &LinuxResources, initial: bool) -> Result<()> {
    for step in plan(p, res, initial)? {
        run(&step)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::fake::FakeDir;
    use super::*;

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    /// A hybrid layout like this host's: v1 memory and pids, cgroup2 with hugetlb
    /// available at the root but not enabled for the container.
    fn hybrid() -> (FakeDir, Placement) {
        let root = FakeDir::new(&[]);
        let mk = |sub: &str, files: &[(&str, &str)]| {
            let d = root.0.join(sub);
            std::fs::create_dir_all(&d).unwrap();
            for (f, v) in files {
                std::fs::write(d.join(f), v).unwrap();
            }
            d
        };
        let mem = mk(
            "memory/c1",
            &[
                ("memory.limit_in_bytes", "9223372036854771712"),
                ("memory.memsw.limit_in_bytes", "9223372036854771712"),
            ],
        );
        let pids = mk("pids/c1", &[("pids.max", "max")]);
        mk("unified", &[("cgroup.controllers", "hugetlb")]);
        let v2 = mk("unified/c1", &[("cgroup.controllers", "")]);
        let p = Placement {
            v1: vec![(vec!["memory".into()], mem), (vec!["pids".into()], pids)],
            v2: Some((v2, root.0.join("unified"))),
        };
        (root, p)
    }

    #[test]
    fn routes_to_v1_and_writes() {
        let (root, p) = hybrid();
        apply(
            &p,
            &res(r#"{"memory":{"limit":1048576},"pids":{"limit":7}}"#),
            false,
        )
        .unwrap();
        let read = |f: &str| std::fs::read_to_string(root.0.join(f)).unwrap();
        assert_eq!(read("memory/c1/memory.limit_in_bytes"), "1048576");
        assert_eq!(read("pids/c1/pids.max"), "7");
    }

    #[test]
    fn missing_controllers_are_named_and_nothing_is_written() {
        let (root, p) = hybrid();
        let e = apply(
            &p,
            &res(r#"{"pids":{"limit":7},"network":{"classID":1}}"#),
            false,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "linux.resources.network: the net_cls controller is not mounted"
        );
        assert_eq!(
            std::fs::read_to_string(root.0.join("pids/c1/pids.max")).unwrap(),
            "max"
        );
        let e = apply(&p, &res(r#"{"cpu":{"shares":10}}"#), false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "linux.resources.cpu: the cpu controller is not mounted"
        );
        let e = apply(
            &p,
            &res(r#"{"hugepageLimits":[{"pageSize":"2MB","limit":1}]}"#),
            false,
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with(
                "linux.resources.hugepageLimits: the hugetlb controller is not enabled for"
            ),
            "{e}"
        );
        let blocked_at = root.0.join("unified/cgroup.subtree_control");
        assert!(
            e.to_string()
                .ends_with(&format!("(not passed down by {})", blocked_at.display())),
            "{e}"
        );
        let e = apply(&p, &res(r#"{"unified":{"memory.high":"1"}}"#), false).unwrap_err();
        assert!(e.to_string().contains("cgroup v1"), "{e}");
        // Unset or zero values need no controller.
        apply(
            &p,
            &res(r#"{"cpu":{"shares":0,"cpus":""},"blockIO":{},"memory":{}}"#),
            false,
        )
        .unwrap();
    }

    #[test]
    fn limits_that_need_a_cgroup() {
        assert_eq!(first_limit(&res(r#"{"devices":[]}"#)), None);
        assert_eq!(
            first_limit(&res(r#"{"memory":{}, "cpu":{"shares":0}}"#)),
            None
        );
        assert_eq!(
            first_limit(&res(r#"{"cpu":{"cpus":"0"},"pids":{"limit":3}}"#)),
            Some("cpu")
        );
        let cg = super::super::Cgroup {
            dirs: vec![],
            parents: vec![],
        };
        let e = cg.apply(&[], &res(r#"{"pids":{"limit":3}}"#)).unwrap_err();
        assert!(e.to_string().starts_with("linux.resources.pids: "), "{e}");
        cg.apply(&[], &res(r#"{"devices":[{"allow":false,"access":"rwm"}]}"#))
            .unwrap();
    }

    #[test]
    fn legacy_host_refuses_unified() {
        let d = FakeDir::new(&[("pids.max", "")]);
        let p = Placement {
            v1: vec![(vec!["pids".into()], d.0.clone())],
            v2: None,
        };
        let e = apply(&p, &res(r#"{"unified":{"pids.max":"3"}}"#), false).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("linux.resources.unified: needs cgroup v2"),
            "{e}"
        );
    }

    #[test]
    fn unified_host_routes_to_v2_files() {
        let d = FakeDir::new(&[
            ("cgroup.controllers", "cpu memory pids io"),
            ("memory.max", "max"),
            ("memory.swap.max", "max"),
            ("cpu.weight", "100"),
            ("cpu.max", "max 100000"),
            ("pids.max", "max"),
            ("io.weight", "default 100"),
        ]);
        let p = Placement {
            v1: vec![],
            v2: Some((d.0.clone(), d.0.clone())),
        };
        apply(
            &p,
            &res(r#"{"memory":{"limit":2097152,"swap":4194304},"cpu":{"shares":1024,"quota":20000},"pids":{"limit":-1},"blockIO":{"weight":10}}"#),
            false,
        )
        .unwrap();
        assert_eq!(d.get("memory.max"), "2097152");
        assert_eq!(d.get("memory.swap.max"), "2097152");
        assert_eq!(d.get("cpu.weight"), "100");
        assert_eq!(d.get("cpu.max"), "20000 100000");
        assert_eq!(d.get("pids.max"), "max");
        assert_eq!(d.get("io.weight"), "1");
        // Ignored with a warning on a pure v2 host, as runc does.
        apply(&p, &res(r#"{"memory":{"swappiness":1}}"#), false).unwrap();
        apply(&p, &res(r#"{"network":{"classID":1}}"#), false).unwrap();
        let e = apply(&p, &res(r#"{"memory":{"useHierarchy":false}}"#), false).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("linux.resources.memory.useHierarchy"),
            "{e}"
        );
    }

    #[test]
    fn placement_matches_dirs_to_mounts() {
        let h = |m: &str, c: &[&str], v2: bool| Hierarchy {
            mountpoint: PathBuf::from(m),
            controllers: c.iter().map(|s| s.to_string()).collect(),
            v2,
            own: PathBuf::from("/"),
        };
        let hier = [
            h("/sys/fs/cgroup/cpu", &["cpu"], false),
            h("/sys/fs/cgroup/cpuacct", &["cpuacct"], false),
            h("/sys/fs/cgroup/unified", &[], true),
        ];
        let p = Placement::new(
            &hier,
            &[
                PathBuf::from("/sys/fs/cgroup/cpuacct/x/c"),
                PathBuf::from("/sys/fs/cgroup/cpu/x/c"),
                PathBuf::from("/sys/fs/cgroup/unified/x/c"),
            ],
        );
        assert_eq!(p.v1("cpu"), Some(Path::new("/sys/fs/cgroup/cpu/x/c")));
        assert_eq!(
            p.v1("cpuacct"),
            Some(Path::new("/sys/fs/cgroup/cpuacct/x/c"))
        );
        assert_eq!(p.v2_dir(), Some(Path::new("/sys/fs/cgroup/unified/x/c")));
    }
}
