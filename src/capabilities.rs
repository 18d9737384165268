//! `process.capabilities`: the five sets as bit masks computed in the runtime, and
//! their application in the init around the uid switch so that ambient capabilities
//! survive exec (bounding first, keep-caps across setuid, then capset, then ambient).

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{Capability, LinuxCapabilities};

/// The five capability sets as masks over capability numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sets {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

/// Highest capability number the running kernel knows.
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// The number of a capability, from its `CAP_*` name.
pub fn number(c: &Capability) -> Result<u32> {
    let name = serde_json::to_value(c).context("encode capability")?;
    let name = name.as_str().unwrap_or_default();
    match crate::features::CAPABILITIES
        .iter()
        .position(|n| *n == name)
    {
        Some(i) => Ok(i as u32),
        None => bail!("unknown capability {name:?}"),
    }
}

/// Converts the config into masks. Names the kernel lacks are dropped with a
/// warning (as runc does); an absent config grants nothing.
pub fn from_spec(c: Option<&LinuxCapabilities>, last: u32) -> Result<Sets> {
    let Some(c) = c else {
        return Ok(Sets::default());
    };
    let mask = |field: &str, set: &Option<oci_spec::runtime::Capabilities>| -> Result<u64> {
        let mut m = 0u64;
        for cap in set.iter().flatten() {
            let n = number(cap).with_context(|| format!("process.capabilities.{field}"))?;
            if n > last {
                crate::logging::warn(&format!(
                    "process.capabilities.{field}: {} is unknown to the running kernel, ignored",
                    crate::features::CAPABILITIES[n as usize]
                ));
                continue;
            }
            m |= 1 << n;
        }
        Ok(m)
    };
    Ok(Sets {
        bounding: mask("bounding", c.bounding())?,
        effective: mask("effective", c.effective())?,
        permitted: mask("permitted", c.permitted())?,
        inheritable: mask("inheritable", c.inheritable())?,
        ambient: mask("ambient", c.ambient())?,
    })
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Step 1, before the uid switch: shrink the bounding set and keep permitted caps
/// across setuid.
pub fn before_setuid(s: &Sets, last: u32) -> Result<()> {
    for cap in 0..=last {
        if s.bounding & (1 << cap) == 0 {
            let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
            if r != 0 {
                return Err(std::io::Error::last_os_error()).with_context(|| {
                    format!("process.capabilities.bounding: drop capability {cap}")
                });
            }
        }
    }
    if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error()).context("prctl(PR_SET_KEEPCAPS)");
    }
    Ok(())
}

/// Step 2, after the uid switch: set effective/permitted/inheritable, then ambient.
pub fn after_setuid(s: &Sets) -> Result<()> {
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
    let mut hdr = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let lo = |m: u64| m as u32;
    let hi = |m: u64| (m >> 32) as u32;
    let data = [
        CapData {
            effective: lo(s.effective),
            permitted: lo(s.permitted),
            inheritable: lo(s.inheritable),
        },
        CapData {
            effective: hi(s.effective),
            permitted: hi(s.permitted),
            inheritable: hi(s.inheritable),
        },
    ];
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) };
    if r != 0 {
        return Err(std::io::Error::last_os_error()).context("process.capabilities: capset");
    }
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    for cap in 0..64u32 {
        if s.ambient & (1 << cap) != 0 {
            let r = unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE,
                    cap as libc::c_ulong,
                    0,
                    0,
                )
            };
            if r != 0 {
                return Err(std::io::Error::last_os_error()).with_context(|| {
                    format!("process.capabilities.ambient: raise {} (it must also be permitted and inheritable)", cap_name(cap))
                });
            }
        }
    }
    Ok(())
}

fn cap_name(n: u32) -> &'static str {
    crate::features::CAPABILITIES
        .get(n as usize)
        .copied()
        .unwrap_or("?")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_from_names() {
        let c: LinuxCapabilities = serde_json::from_str(
            r#"{"bounding":["CAP_CHOWN","CAP_KILL","CAP_CHECKPOINT_RESTORE"],"effective":["CAP_KILL"],"ambient":["CAP_NET_BIND_SERVICE"]}"#,
        )
        .unwrap();
        let s = from_spec(Some(&c), 40).unwrap();
        assert_eq!(s.bounding, 1 | (1 << 5) | (1 << 40));
        assert_eq!(s.effective, 1 << 5);
        assert_eq!(s.ambient, 1 << 10);
        assert_eq!(s.permitted, 0);
        // A kernel without CAP_CHECKPOINT_RESTORE (added in 5.9) drops it.
        assert_eq!(from_spec(Some(&c), 39).unwrap().bounding, 1 | (1 << 5));
        assert_eq!(from_spec(None, 40).unwrap(), Sets::default());
    }
}
