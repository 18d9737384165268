//! Per-process kernel attributes from the config, converted once in the runtime and
//! applied by the process itself: scheduler (sched_setattr), I/O priority,
//! personality, NUMA memory policy, and the LSM exec labels (AppArmor, SELinux).

use anyhow::{bail, Context, Result};
use std::ffi::CString;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedAttr {
    pub size: u32,
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
}

/// Everything here is optional; `Default` changes nothing.
#[derive(Clone, Debug, Default)]
pub struct Attrs {
    pub sched: Option<SchedAttr>,
    /// ioprio value for ioprio_set(IOPRIO_WHO_PROCESS, 0, ...).
    pub ioprio: Option<i32>,
    pub personality: Option<libc::c_ulong>,
    /// (mode | flags, node mask words) for set_mempolicy.
    pub mempolicy: Option<(i32, Vec<libc::c_ulong>)>,
    /// Written to /proc/thread-self/attr/apparmor/exec as "exec <profile>".
    pub apparmor: Option<CString>,
    /// Written to /proc/thread-self/attr/exec.
    pub selinux: Option<CString>,
}

fn name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

pub fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.starts_with('Y'))
}

pub fn selinux_enabled() -> bool {
    std::path::Path::new("/sys/fs/selinux/enforce").exists()
}

/// The scheduler settings of `process.scheduler`.
pub fn sched(s: &oci_spec::runtime::Scheduler) -> Result<SchedAttr> {
    let policy = match name(s.policy()).as_str() {
        "SCHED_OTHER" => 0,
        "SCHED_FIFO" => 1,
        "SCHED_RR" => 2,
        "SCHED_BATCH" => 3,
        "SCHED_ISO" => 4,
        "SCHED_IDLE" => 5,
        "SCHED_DEADLINE" => 6,
        other => bail!("process.scheduler.policy: unknown policy {other:?}"),
    };
    let mut flags = 0u64;
    for f in s.flags().as_deref().unwrap_or(&[]) {
        flags |= match name(f).as_str() {
            // oci-spec 0.10 spells two flags its own way; accept both spellings.
            "SCHED_FLAG_RESET_ON_FORK" | "SCHED_RESET_ON_FORK" => 0x01,
            "SCHED_FLAG_RECLAIM" => 0x02,
            "SCHED_FLAG_DL_OVERRUN" | "SCHED_FLAG_D_L_OVERRUN" => 0x04,
            "SCHED_FLAG_KEEP_POLICY" => 0x08,
            "SCHED_FLAG_KEEP_PARAMS" => 0x10,
            "SCHED_FLAG_UTIL_CLAMP_MIN" => 0x20,
            "SCHED_FLAG_UTIL_CLAMP_MAX" => 0x40,
            other => bail!("process.scheduler.flags: unknown flag {other:?}"),
        };
    }
    Ok(SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy,
        flags,
        nice: s.nice().unwrap_or(0),
        priority: s.priority().unwrap_or(0) as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
    })
}

pub fn ioprio(p: &oci_spec::runtime::LinuxIOPriority) -> Result<i32> {
    let class = match name(&p.class()).as_str() {
        "IOPRIO_CLASS_RT" => 1,
        "IOPRIO_CLASS_BE" => 2,
        "IOPRIO_CLASS_IDLE" => 3,
        other => bail!("process.ioPriority.class: unknown class {other:?}"),
    };
    if !(0..8).contains(&p.priority()) {
        bail!(
            "process.ioPriority.priority: {} is outside 0..7",
            p.priority()
        );
    }
    Ok((class << 13) | p.priority() as i32)
}

pub fn personality(p: &oci_spec::runtime::LinuxPersonality) -> Result<libc::c_ulong> {
    let domain = match name(&p.domain()).as_str() {
        "LINUX" => 0x0000,
        "LINUX32" => 0x0008,
        other => bail!("linux.personality.domain: unknown domain {other:?}"),
    };
    if let Some(f) = p.flags().as_deref().and_then(|f| f.first()) {
        bail!("linux.personality.flags: {f:?} is not supported (no flags are defined)");
    }
    Ok(domain)
}

/// Parses a node list such as "0-3,7" into set_mempolicy's bit mask.
pub fn node_mask(nodes: &str) -> Result<Vec<libc::c_ulong>> {
    let bits = 8 * std::mem::size_of::<libc::c_ulong>();
    let mut mask: Vec<libc::c_ulong> = Vec::new();
    for part in nodes.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let (a, b): (usize, usize) = match (a.parse(), b.parse()) {
            (Ok(a), Ok(b)) if a <= b && b < 4096 => (a, b),
            _ => bail!("linux.memoryPolicy.nodes: bad node range {part:?}"),
        };
        for n in a..=b {
            if mask.len() <= n / bits {
                mask.resize(n / bits + 1, 0);
            }
            mask[n / bits] |= 1 << (n % bits);
        }
    }
    Ok(mask)
}

pub fn mempolicy(m: &oci_spec::runtime::LinuxMemoryPolicy) -> Result<(i32, Vec<libc::c_ulong>)> {
    let mode = match name(&m.mode()).as_str() {
        "MPOL_DEFAULT" => 0,
        "MPOL_PREFERRED" => 1,
        "MPOL_BIND" => 2,
        "MPOL_INTERLEAVE" => 3,
        "MPOL_LOCAL" => 4,
        "MPOL_PREFERRED_MANY" => 5,
        "MPOL_WEIGHTED_INTERLEAVE" => 6,
        other => bail!("linux.memoryPolicy.mode: unknown mode {other:?}"),
    };
    let mut flags = 0;
    for f in m.flags().as_deref().unwrap_or(&[]) {
        flags |= match name(f).as_str() {
            "MPOL_F_NUMA_BALANCING" => 1 << 13,
            "MPOL_F_RELATIVE_NODES" => 1 << 14,
            "MPOL_F_STATIC_NODES" => 1 << 15,
            other => bail!("linux.memoryPolicy.flags: unknown flag {other:?}"),
        };
    }
    Ok((mode | flags, node_mask(m.nodes().as_deref().unwrap_or(""))?))
}

impl Attrs {
    pub fn from_process(p: &oci_spec::runtime::Process) -> Result<Attrs> {
        let mut a = Attrs::default();
        if let Some(s) = p.scheduler() {
            a.sched = Some(sched(s)?);
        }
        if let Some(io) = p.io_priority() {
            a.ioprio = Some(ioprio(io)?);
        }
        if let Some(prof) = p.apparmor_profile().as_deref().filter(|s| !s.is_empty()) {
            if !apparmor_enabled() {
                bail!("process.apparmorProfile: AppArmor is not enabled on this host");
            }
            a.apparmor =
                Some(CString::new(format!("exec {prof}")).context("process.apparmorProfile")?);
        }
        if let Some(l) = p.selinux_label().as_deref().filter(|s| !s.is_empty()) {
            // As runc: a process label the host cannot apply is refused rather than
            // silently dropped (the container would run unconfined).
            if !selinux_enabled() {
                bail!("process.selinuxLabel: SELinux is not enabled on this host");
            }
            a.selinux = Some(CString::new(l).context("process.selinuxLabel")?);
        }
        Ok(a)
    }

    /// Scheduler and I/O priority: applied while still privileged.
    pub fn apply_early(&self) -> Result<()> {
        if let Some(s) = &self.sched {
            let r = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, s as *const SchedAttr, 0) };
            if r != 0 {
                return Err(std::io::Error::last_os_error())
                    .context("process.scheduler: sched_setattr");
            }
        }
        if let Some(v) = self.ioprio {
            const IOPRIO_WHO_PROCESS: i32 = 1;
            if unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, v) } != 0 {
                return Err(std::io::Error::last_os_error())
                    .context("process.ioPriority: ioprio_set");
            }
        }
        if let Some((mode, mask)) = &self.mempolicy {
            let maxnode = (mask.len() * 8 * std::mem::size_of::<libc::c_ulong>()) as libc::c_ulong;
            let ptr = if mask.is_empty() {
                std::ptr::null()
            } else {
                mask.as_ptr()
            };
            let r = unsafe { libc::syscall(libc::SYS_set_mempolicy, *mode, ptr, maxnode + 1) };
            if r != 0 {
                return Err(std::io::Error::last_os_error())
                    .context("linux.memoryPolicy: set_mempolicy");
            }
        }
        Ok(())
    }

    /// Personality and LSM exec labels: the last things before execve.
    pub fn apply_late(&self) -> Result<()> {
        if let Some(p) = self.personality {
            if unsafe { libc::personality(p) } < 0 {
                return Err(std::io::Error::last_os_error())
                    .context("linux.personality: personality");
            }
        }
        // Through a verified procfs fd, never by path (CVE-2025-52881, CVE-2019-16884):
        // an image or volume mounted over /proc must not swallow the label.
        let pid = std::process::id();
        if let Some(a) = &self.apparmor {
            crate::rootfs::proc_write(&format!("{pid}/attr/apparmor/exec"), a.as_bytes())
                .or_else(|_| crate::rootfs::proc_write(&format!("{pid}/attr/exec"), a.as_bytes()))
                .context("process.apparmorProfile: set the exec profile")?;
        }
        if let Some(l) = &self.selinux {
            crate::rootfs::proc_write(&format!("{pid}/attr/exec"), l.as_bytes())
                .context("process.selinuxLabel: set the exec label")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_masks() {
        assert_eq!(node_mask("0-3,7").unwrap(), vec![0b1000_1111]);
        assert_eq!(node_mask("64").unwrap(), vec![0, 1]);
        assert!(node_mask("3-1").is_err());
        assert!(node_mask("x").is_err());
        assert_eq!(node_mask("").unwrap(), Vec::<libc::c_ulong>::new());
    }

    #[test]
    fn conversions() {
        let s: oci_spec::runtime::Scheduler = serde_json::from_str(
            r#"{"policy":"SCHED_BATCH","nice":5,"flags":["SCHED_RESET_ON_FORK"]}"#,
        )
        .unwrap();
        let a = sched(&s).unwrap();
        assert_eq!((a.policy, a.nice, a.flags, a.size), (3, 5, 1, 48));
        let io: oci_spec::runtime::LinuxIOPriority =
            serde_json::from_str(r#"{"class":"IOPRIO_CLASS_BE","priority":6}"#).unwrap();
        assert_eq!(ioprio(&io).unwrap(), (2 << 13) | 6);
        let p: oci_spec::runtime::LinuxPersonality =
            serde_json::from_str(r#"{"domain":"LINUX32"}"#).unwrap();
        assert_eq!(personality(&p).unwrap(), 8);
        let m: oci_spec::runtime::LinuxMemoryPolicy = serde_json::from_str(
            r#"{"mode":"MPOL_BIND","nodes":"0","flags":["MPOL_F_STATIC_NODES"]}"#,
        )
        .unwrap();
        assert_eq!(mempolicy(&m).unwrap(), (2 | (1 << 15), vec![1]));
    }
}
