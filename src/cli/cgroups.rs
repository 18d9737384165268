//! `update`, `pause`, `resume`, `events` and `ps`: the commands that act on a live
//! container's cgroups, with runc's flags, output and errors.

use crate::cgroups::{self, oom::OomWatch, stats, systemd::SystemdCgroup, Placement};
use crate::state::{Dir, Saved, Status};
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use oci_spec::runtime::LinuxResources;
use serde_json::{json, Map, Value};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Args, Debug, Default)]
pub struct UpdateArgs {
    /// File with the resources to set (LinuxResources JSON), or - for stdin; the other
    /// resource flags are then ignored (with a warning), as runc ignores them.
    #[arg(short = 'r', long)]
    pub resources: Option<String>,
    /// Block I/O weight (10 to 1000).
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// CPU CFS period in microseconds.
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    /// CPU CFS quota in microseconds per period (-1: no limit).
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPU CFS burst in microseconds.
    #[arg(long = "cpu-burst")]
    pub cpu_burst: Option<u64>,
    /// CPU shares (relative weight).
    #[arg(long = "cpu-share", alias = "cpu-shares")]
    pub cpu_share: Option<u64>,
    /// Realtime period in microseconds.
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    /// Realtime runtime in microseconds per period.
    #[arg(long = "cpu-rt-runtime", allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// CPUs the container may run on (0-3,7).
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes the container may use.
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// 1: SCHED_IDLE for the cgroup, 0: normal.
    #[arg(long = "cpu-idle")]
    pub cpu_idle: Option<i64>,
    /// Memory limit (bytes, or with a unit: 512k, 64m, 1g; -1: no limit).
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory plus swap limit (same units; -1: unlimited swap).
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Memory soft limit (same units).
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Maximum number of tasks (-1: no limit).
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Ignored with a warning, as runc does: kernel memory limits are obsolete.
    #[arg(long = "kernel-memory", hide = true, allow_hyphen_values = true)]
    pub kernel_memory: Option<String>,
    /// Ignored with a warning, as runc does: kernel TCP memory limits are obsolete.
    #[arg(long = "kernel-memory-tcp", hide = true, allow_hyphen_values = true)]
    pub kernel_memory_tcp: Option<String>,
    /// Refused: kraal has no Intel RDT support.
    #[arg(long = "l3-cache-schema")]
    pub l3_cache_schema: Option<String>,
    /// Refused: kraal has no Intel RDT support.
    #[arg(long = "mem-bw-schema")]
    pub mem_bw_schema: Option<String>,
    /// Container id.
    pub id: String,
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Print one statistics event and exit.
    #[arg(long)]
    pub stats: bool,
    /// Time between statistics events (Go duration: 500ms, 5s, 1m).
    #[arg(long, default_value = "5s")]
    pub interval: String,
    /// Container id.
    pub id: String,
}

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Output format: table (ps output for the container's processes) or json (pids).
    #[arg(short = 'f', long, default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
    /// Container id.
    pub id: String,
    /// Arguments for ps(1) (default -ef).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

/// Opens a container and loads its state; fails while it is still being created.
fn open(root: &Path, id: &str) -> Result<(Dir, Saved)> {
    let dir = Dir::open(root, id)?;
    let saved = dir
        .load()?
        .ok_or_else(|| anyhow!("container {id:?} is still being created"))?;
    Ok((dir, saved))
}

/// Parses a byte size as Docker's units do: a number with an optional binary unit
/// (k, m, g, t, p; with optional b or ib), case-insensitive. "-1" means unlimited.
pub fn parse_bytes(flag: &str, s: &str) -> Result<i64> {
    if s == "-1" {
        return Ok(-1);
    }
    let bad = || anyhow!("{flag}: invalid size {s:?} (a number of bytes, or with k, m, g, t or p)");
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let t = t.strip_suffix('i').unwrap_or(t);
    let (num, mult) = match t.chars().last() {
        Some(c @ ('k' | 'm' | 'g' | 't' | 'p')) => {
            let shift = 10 * ("kmgtp".find(c).unwrap_or(0) as u32 + 1);
            (t[..t.len() - 1].trim_end(), 1u64 << shift)
        }
        _ => (t, 1),
    };
    if num.is_empty() || !num.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(bad());
    }
    let v: f64 = num.parse().map_err(|_| bad())?;
    let bytes = v * mult as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes >= i64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as i64)
}

/// Parses a Go duration ("300ms", "1.5s", "2m30s", "1h").
pub fn parse_duration(s: &str) -> Result<Duration> {
    let bad = || anyhow!("--interval: invalid duration {s:?} (examples: 500ms, 5s, 1m)");
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let v: f64 = rest[..n].parse().map_err(|_| bad())?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += v * secs;
        rest = &rest[u..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

/// The resources an `update` asks for, from `--resources` or from the flags. As in
/// runc's update.go: with `--resources` the other resource flags are ignored (kraal
/// says so in a warning; runc is silent), `--kernel-memory[-tcp]` are ignored with a
/// warning, and the Intel RDT flags are checked either way (kraal has no RDT).
pub fn update_resources(a: &UpdateArgs) -> Result<LinuxResources> {
    if a.l3_cache_schema.is_some() || a.mem_bw_schema.is_some() {
        bail!("--l3-cache-schema, --mem-bw-schema: Intel RDT is not supported by kraal");
    }
    match &a.resources {
        Some(src) => {
            let ignored = resource_flags_given(a);
            if !ignored.is_empty() {
                crate::logging::warn(&format!(
                    "{}: ignored, --resources {src} sets the resources",
                    ignored.join(", ")
                ));
            }
            resources_file(src)
        }
        None => resources_from_flags(a),
    }
}

/// `--resources FILE|-`: LinuxResources JSON.
fn resources_file(src: &str) -> Result<LinuxResources> {
    let data = if src == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("--resources: read stdin")?;
        s
    } else {
        std::fs::read_to_string(src).with_context(|| format!("--resources: read {src}"))?
    };
    let mut value: Value =
        serde_json::from_str(&data).with_context(|| format!("--resources: parse {src}"))?;
    // `"pids": {}` means "no change" to runc; oci-spec would read it as limit 0.
    if let Some(p) = value.get("pids") {
        if matches!(p.get("limit"), None | Some(Value::Null)) {
            value.as_object_mut().map(|o| o.remove("pids"));
        }
    }
    from_json(value, "--resources")
}

/// runc's update flags as LinuxResources.
fn resources_from_flags(a: &UpdateArgs) -> Result<LinuxResources> {
    for (flag, v) in [
        ("--kernel-memory", &a.kernel_memory),
        ("--kernel-memory-tcp", &a.kernel_memory_tcp),
    ] {
        if v.is_some() {
            crate::logging::warn(&format!(
                "{flag}: ignored, kernel memory limits are obsolete (Linux 5.4 and the runtime spec dropped them)"
            ));
        }
    }
    let mut mem = Map::new();
    let mut cpu = Map::new();
    let mut v = Map::new();
    for (flag, val, key) in [
        ("--memory", &a.memory, "limit"),
        ("--memory-swap", &a.memory_swap, "swap"),
        ("--memory-reservation", &a.memory_reservation, "reservation"),
    ] {
        if let Some(s) = val {
            mem.insert(key.into(), json!(parse_bytes(flag, s)?));
        }
    }
    let mut put = |k: &str, x: Option<Value>| {
        if let Some(x) = x {
            cpu.insert(k.into(), x);
        }
    };
    put("shares", a.cpu_share.map(|x| json!(x)));
    put("period", a.cpu_period.map(|x| json!(x)));
    put("quota", a.cpu_quota.map(|x| json!(x)));
    put("burst", a.cpu_burst.map(|x| json!(x)));
    put("realtimePeriod", a.cpu_rt_period.map(|x| json!(x)));
    put("realtimeRuntime", a.cpu_rt_runtime.map(|x| json!(x)));
    put("cpus", a.cpuset_cpus.clone().map(|x| json!(x)));
    put("mems", a.cpuset_mems.clone().map(|x| json!(x)));
    put("idle", a.cpu_idle.map(|x| json!(x)));
    if !mem.is_empty() {
        v.insert("memory".into(), Value::Object(mem));
    }
    if !cpu.is_empty() {
        v.insert("cpu".into(), Value::Object(cpu));
    }
    if let Some(l) = a.pids_limit {
        v.insert("pids".into(), json!({ "limit": l }));
    }
    if let Some(w) = a.blkio_weight {
        v.insert("blockIO".into(), json!({ "weight": w }));
    }
    from_json(Value::Object(v), "update")
}

/// The resource flags given besides `--resources` (which runc ignores then).
fn resource_flags_given(a: &UpdateArgs) -> Vec<&'static str> {
    let given = [
        ("--blkio-weight", a.blkio_weight.is_some()),
        ("--cpu-period", a.cpu_period.is_some()),
        ("--cpu-quota", a.cpu_quota.is_some()),
        ("--cpu-burst", a.cpu_burst.is_some()),
        ("--cpu-share", a.cpu_share.is_some()),
        ("--cpu-rt-period", a.cpu_rt_period.is_some()),
        ("--cpu-rt-runtime", a.cpu_rt_runtime.is_some()),
        ("--cpuset-cpus", a.cpuset_cpus.is_some()),
        ("--cpuset-mems", a.cpuset_mems.is_some()),
        ("--cpu-idle", a.cpu_idle.is_some()),
        ("--memory", a.memory.is_some()),
        ("--memory-swap", a.memory_swap.is_some()),
        ("--memory-reservation", a.memory_reservation.is_some()),
        ("--pids-limit", a.pids_limit.is_some()),
        ("--kernel-memory", a.kernel_memory.is_some()),
        ("--kernel-memory-tcp", a.kernel_memory_tcp.is_some()),
    ];
    given
        .into_iter()
        .filter_map(|(f, set)| set.then_some(f))
        .collect()
}

fn from_json(v: Value, what: &str) -> Result<LinuxResources> {
    serde_path_to_error::deserialize(v).map_err(|e| anyhow!("{what}: {}: {}", e.path(), e.inner()))
}

pub fn update(root: &Path, a: &UpdateArgs) -> Result<()> {
    let res = update_resources(a)?;
    let (dir, saved) = open(root, &a.id)?;
    match dir.status(Some(&saved)) {
        Status::Stopped => bail!("container {:?} is not running", a.id),
        Status::Creating => bail!("container {:?} is still being created", a.id),
        _ => {}
    }
    match &saved.systemd_unit {
        Some(unit) => SystemdCgroup::update(unit, &saved.cgroup_dirs, &res),
        None => cgroups::update(&saved.cgroup_dirs, &res),
    }
}

pub fn pause(root: &Path, id: &str) -> Result<()> {
    let (dir, saved) = open(root, id)?;
    match dir.status(Some(&saved)) {
        Status::Running | Status::Created => cgroups::freeze(&saved.cgroup_dirs),
        Status::Paused => bail!("container {id:?} is already paused"),
        _ => bail!("container {id:?} is not running"),
    }
}

pub fn resume(root: &Path, id: &str) -> Result<()> {
    let (dir, saved) = open(root, id)?;
    // A created container can be frozen too; its status still reads "created".
    if dir.status(Some(&saved)) == Status::Stopped || !cgroups::is_frozen(&saved.cgroup_dirs) {
        bail!("container {id:?} is not paused");
    }
    cgroups::thaw(&saved.cgroup_dirs)
}

/// One `events` record, fields in runc's order.
#[derive(serde::Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<stats::Stats>,
}

/// One line of `events` output, as runc's JSON encoder writes it.
fn emit(out: &mut impl Write, ev: &Event) -> Result<()> {
    let line = serde_json::to_string(ev).context("encode event")?;
    writeln!(out, "{line}")
        .and_then(|_| out.flush())
        .context("write event")
}

fn stats_event<'a>(id: &'a str, p: &Placement) -> Event<'a> {
    Event {
        kind: "stats",
        id,
        data: Some(stats::read(p)),
    }
}

pub fn events(root: &Path, a: &EventsArgs) -> Result<()> {
    let interval = parse_duration(&a.interval)?;
    if interval.is_zero() {
        bail!("--interval: must be greater than 0");
    }
    let saved = {
        // The lock is held only while reading the state: a long `events` stream must
        // not block `kill` or `delete`.
        let (dir, saved) = open(root, &a.id)?;
        if dir.status(Some(&saved)) == Status::Stopped {
            bail!("container {:?} is not running", a.id);
        }
        saved
    };
    let placement = Placement::new(&cgroups::hierarchies()?, &saved.cgroup_dirs);
    let mut out = std::io::stdout().lock();
    if a.stats {
        return emit(&mut out, &stats_event(&a.id, &placement));
    }
    let mut watch = OomWatch::new(&placement)?;
    let alive = || {
        crate::state::process_alive(saved.pid, saved.init_start)
            && saved.cgroup_dirs.iter().all(|d| d.exists())
    };
    let mut next = Instant::now() + interval;
    loop {
        let wait = next.saturating_duration_since(Instant::now());
        if let Some(w) = &mut watch {
            let mut pfd = libc::pollfd {
                fd: w.fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = wait.as_millis().min(i32::MAX as u128) as i32;
            let r = unsafe { libc::poll(&mut pfd, 1, ms) };
            if r > 0 {
                let seen = w.read()?;
                for _ in 0..seen.ooms {
                    let ev = Event {
                        kind: "oom",
                        id: &a.id,
                        data: None,
                    };
                    emit(&mut out, &ev)?;
                }
                if seen.gone {
                    return Ok(());
                }
                continue;
            }
        } else {
            std::thread::sleep(wait);
        }
        if Instant::now() < next {
            continue;
        }
        next += interval;
        // The stream ends with the container (after any OOM that stopped it).
        if !alive() {
            return Ok(());
        }
        emit(&mut out, &stats_event(&a.id, &placement))?;
    }
}

pub fn ps(root: &Path, a: &PsArgs) -> Result<()> {
    let pids = {
        let (_dir, saved) = open(root, &a.id)?;
        cgroups::pids(&saved.cgroup_dirs)?
    };
    if a.format == "json" {
        println!("{}", serde_json::to_string(&pids).context("encode pids")?);
        return Ok(());
    }
    let args: Vec<String> = if a.ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        a.ps_args.clone()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .context("run ps")?;
    if !out.status.success() {
        bail!(
            "ps {}: {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    print!(
        "{}",
        filter_ps(&String::from_utf8_lossy(&out.stdout), &pids)?
    );
    Ok(())
}

/// Keeps ps's header and the rows whose PID column is one of `pids`.
pub fn filter_ps(text: &str, pids: &[i32]) -> Result<String> {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| anyhow!("ps: no PID column in its output (header {header:?})"))?;
    let mut out = format!("{header}\n");
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let pid = line
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok())
            .ok_or_else(|| anyhow!("ps: cannot read the PID of {line:?}"))?;
        if pids.contains(&pid) {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(subcommand)]
        c: C,
    }
    #[derive(clap::Subcommand)]
    enum C {
        Update(Box<UpdateArgs>),
        Ps(PsArgs),
        Events(EventsArgs),
    }

    fn update_args(args: &[&str]) -> UpdateArgs {
        let mut v = vec!["t", "update"];
        v.extend(args);
        match T::try_parse_from(v).unwrap().c {
            C::Update(u) => *u,
            _ => unreachable!(),
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("m", "1024").unwrap(), 1024);
        assert_eq!(parse_bytes("m", "64m").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("m", "64MB").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("m", "1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_bytes("m", "2KiB").unwrap(), 2048);
        assert_eq!(parse_bytes("m", "-1").unwrap(), -1);
        for bad in ["", "m", "-2", "1x", "1.2.3k", "abc"] {
            assert!(parse_bytes("--memory", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        for bad in ["", "5", "s", "5x", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    /// Every resource flag of runc's update.go lands in its LinuxResources field.
    #[test]
    fn flags_become_resources() {
        let a = update_args(&[
            "--memory",
            "64m",
            "--memory-swap",
            "-1",
            "--memory-reservation",
            "32m",
            "--cpu-share",
            "512",
            "--cpu-period",
            "200000",
            "--cpu-quota",
            "-1",
            "--cpu-burst",
            "1000",
            "--cpu-rt-period",
            "1000000",
            "--cpu-rt-runtime",
            "-1",
            "--cpuset-cpus",
            "0",
            "--cpuset-mems",
            "0-1",
            "--cpu-idle",
            "1",
            "--pids-limit",
            "20",
            "--blkio-weight",
            "300",
            "c1",
        ]);
        assert_eq!(a.id, "c1");
        let r = update_resources(&a).unwrap();
        let m = r.memory().unwrap();
        assert_eq!(m.limit(), Some(64 << 20));
        assert_eq!(m.swap(), Some(-1));
        assert_eq!(m.reservation(), Some(32 << 20));
        let c = r.cpu().as_ref().unwrap();
        assert_eq!(c.shares(), Some(512));
        assert_eq!(c.period(), Some(200000));
        assert_eq!(c.quota(), Some(-1));
        assert_eq!(c.burst(), Some(1000));
        assert_eq!(c.realtime_period(), Some(1000000));
        assert_eq!(c.realtime_runtime(), Some(-1));
        assert_eq!(c.cpus().as_deref(), Some("0"));
        assert_eq!(c.mems().as_deref(), Some("0-1"));
        assert_eq!(c.idle(), Some(1));
        assert_eq!(r.pids().unwrap().limit(), 20);
        assert_eq!(r.block_io().as_ref().unwrap().weight(), Some(300));
        assert!(r.devices().is_none());
        assert!(r.unified().is_none());
        // runc's spelling and the brief's both work.
        let a = update_args(&["--cpu-shares", "2", "c1"]);
        assert_eq!(a.cpu_share, Some(2));
        // Only what is given is set: the rest stays as it is.
        let r = update_resources(&update_args(&["--pids-limit", "-1", "c1"])).unwrap();
        assert_eq!(r.pids().unwrap().limit(), -1);
        assert!(r.memory().is_none() && r.cpu().is_none() && r.block_io().is_none());
        let r = update_resources(&update_args(&["c1"])).unwrap();
        assert!(r.memory().is_none() && r.cpu().is_none() && r.pids().is_none());
        // Bad values name the flag.
        for (args, flag) in [
            (&["--memory", "lots", "c1"][..], "--memory"),
            (&["--memory-swap", "-2", "c1"][..], "--memory-swap"),
            (
                &["--memory-reservation", "1x", "c1"][..],
                "--memory-reservation",
            ),
        ] {
            let e = update_resources(&update_args(args)).unwrap_err();
            assert!(e.to_string().starts_with(flag), "{args:?}: {e}");
        }
        for args in [
            &["--cpu-period", "-1", "c1"][..],
            &["--cpu-share", "x", "c1"][..],
            &["--blkio-weight", "70000", "c1"][..],
            &["--pids-limit", "many", "c1"][..],
        ] {
            let mut v = vec!["t", "update"];
            v.extend(args);
            assert!(T::try_parse_from(v).is_err(), "{args:?} should not parse");
        }
    }

    /// As runc: --kernel-memory[-tcp] are ignored (with a warning), and so are the
    /// other resource flags when --resources is given; Intel RDT is refused.
    #[test]
    fn ignored_and_refused_flags() {
        let r = update_resources(&update_args(&[
            "--kernel-memory",
            "1m",
            "--kernel-memory-tcp",
            "1m",
            "c1",
        ]))
        .unwrap();
        assert!(r.memory().is_none(), "{:?}", r.memory());
        let r = update_resources(&update_args(&[
            "--kernel-memory",
            "1m",
            "--memory",
            "2m",
            "c1",
        ]))
        .unwrap();
        assert_eq!(r.memory().unwrap().limit(), Some(2 << 20));
        let e = update_resources(&update_args(&["--l3-cache-schema", "L3:0=f", "c1"])).unwrap_err();
        assert!(e.to_string().contains("Intel RDT"), "{e}");
        let e = update_resources(&update_args(&["--mem-bw-schema", "MB:0=20", "c1"])).unwrap_err();
        assert!(e.to_string().contains("Intel RDT"), "{e}");
        let dir = std::env::temp_dir().join(format!("kraal-upd-{}.json", std::process::id()));
        std::fs::write(&dir, r#"{"pids":{},"memory":{"limit":1048576}}"#).unwrap();
        let p = dir.to_str().unwrap();
        let r = update_resources(&update_args(&["-r", p, "c1"])).unwrap();
        assert!(r.pids().is_none());
        assert_eq!(r.memory().unwrap().limit(), Some(1048576));
        // Flags next to --resources are ignored, even ones that would not parse.
        let a = update_args(&["-r", p, "--memory", "lots", "--pids-limit", "3", "c1"]);
        assert_eq!(resource_flags_given(&a), ["--memory", "--pids-limit"]);
        let r = update_resources(&a).unwrap();
        assert_eq!(r.memory().unwrap().limit(), Some(1048576));
        assert!(r.pids().is_none());
        let e = update_resources(&update_args(&["-r", p, "--mem-bw-schema", "MB:0=1", "c1"]))
            .unwrap_err();
        assert!(e.to_string().contains("Intel RDT"), "{e}");
        std::fs::write(&dir, r#"{"memory":{"limit":"lots"}}"#).unwrap();
        let e = update_resources(&update_args(&["-r", p, "c1"])).unwrap_err();
        assert!(
            e.to_string().starts_with("--resources: memory.limit"),
            "{e}"
        );
        std::fs::remove_file(&dir).unwrap();
        let e =
            update_resources(&update_args(&["-r", "/nonexistent/kraal.json", "c1"])).unwrap_err();
        assert!(e.to_string().starts_with("--resources: read"), "{e}");
    }

    #[test]
    fn ps_args_and_filter() {
        let a = match T::try_parse_from(["t", "ps", "-f", "json", "c1", "-o", "pid,comm"])
            .unwrap()
            .c
        {
            C::Ps(p) => p,
            _ => unreachable!(),
        };
        assert_eq!(a.format, "json");
        assert_eq!(a.id, "c1");
        assert_eq!(a.ps_args, ["-o", "pid,comm"]);
        let text = "UID PID PPID CMD\nroot 1 0 init\nroot 42 1 sh\nroot 43 42 sleep 1\n";
        assert_eq!(
            filter_ps(text, &[42, 43]).unwrap(),
            "UID PID PPID CMD\nroot 42 1 sh\nroot 43 42 sleep 1\n"
        );
        assert!(filter_ps("USER COMMAND\nroot x\n", &[1]).is_err());
    }

    #[test]
    fn events_args() {
        match T::try_parse_from(["t", "events", "--stats", "c1"])
            .unwrap()
            .c
        {
            C::Events(e) => {
                assert!(e.stats);
                assert_eq!(e.interval, "5s");
            }
            _ => unreachable!(),
        }
    }
}
