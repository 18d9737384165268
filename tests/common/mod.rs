//! Shared helpers for kraal's integration tests: a per-test environment (`TestEnv`)
//! that owns a temp dir, a private state root and a private cgroup parent, a `Kraal`
//! runner whose every call is bounded by a timeout, a busybox `Bundle` builder, and the
//! checks that a test left nothing behind.
//!
//! Tests run as parallel threads of one process, so everything a test makes is named
//! after the test process's pid plus a process-wide counter; `TestEnv`'s `Drop` undoes
//! it all, on panic too (containers, host mounts under the temp dir, cgroup dirs, files).

#![allow(dead_code)]

use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Bound on one kraal command; a hung kraal fails the test instead of hanging CI.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on waiting for a container to reach a state or write a file.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(15);

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A process-wide unique number (for ids, dirs and cgroup parents).
pub fn next_n() -> u64 {
    COUNTER.fetch_add(1, Ordering::SeqCst)
}

pub fn kraal_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kraal"))
}

pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------
// Running processes with a timeout
// ---------------------------------------------------------------------------

/// What a finished command left: its status and what it wrote (from files, so a
/// container that inherits the descriptors can never keep a pipe open forever).
#[derive(Debug, Clone)]
pub struct Out {
    pub what: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
}

impl Out {
    /// The exit code; None when the process was killed by a signal.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn success(&self) -> bool {
        self.status.success()
    }

    fn describe(&self) -> String {
        format!(
            "{}\n  status: {:?}\n  stdout: {}\n  stderr: {}",
            self.what,
            self.status,
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }

    /// Panics unless the command exited 0.
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert!(self.success(), "command failed: {}", self.describe());
        self
    }

    /// Panics unless the command exited with a non-zero code (not a signal, which would
    /// be a crash rather than an error report).
    #[track_caller]
    pub fn fails(&self) -> &Self {
        match self.code() {
            Some(c) if c != 0 => self,
            _ => panic!(
                "command should have failed with an exit code: {}",
                self.describe()
            ),
        }
    }

    /// Panics unless stderr contains `needle` (case-insensitive).
    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.to_lowercase().contains(&needle.to_lowercase()),
            "stderr should mention {needle:?}: {}",
            self.describe()
        );
        self
    }

    /// Re-reads stdout: a detached container keeps writing to the file it inherited.
    pub fn stdout_now(&self) -> String {
        fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lines().map(str::to_string).collect()
    }
}

/// Waits for a child for at most `t`; None on timeout (the child is still running).
pub fn wait_timeout(child: &mut Child, t: Duration) -> std::io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + t;
    let mut nap = Duration::from_millis(1);
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(Some(st));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(20));
    }
}

static IO_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Runs `cmd` with stdin from /dev/null and stdout/stderr to files under `io_dir`,
/// killing it (the child we started, by its pid) after `t`. Err on timeout or spawn
/// failure, so Drop-time cleanup can use it without panicking.
pub fn try_run(cmd: &mut Command, t: Duration, io_dir: &Path) -> Result<Out, String> {
    let what = format!("{cmd:?}");
    let k = IO_COUNTER.fetch_add(1, Ordering::SeqCst);
    fs::create_dir_all(io_dir).map_err(|e| format!("create {}: {e}", io_dir.display()))?;
    let out_p = io_dir.join(format!("{k}.out"));
    let err_p = io_dir.join(format!("{k}.err"));
    let out_f = fs::File::create(&out_p).map_err(|e| format!("{}: {e}", out_p.display()))?;
    let err_f = fs::File::create(&err_p).map_err(|e| format!("{}: {e}", err_p.display()))?;
    cmd.stdin(Stdio::null()).stdout(out_f).stderr(err_f);
    let mut child = cmd.spawn().map_err(|e| format!("spawn {what}: {e}"))?;
    let status = match wait_timeout(&mut child, t) {
        Ok(Some(st)) => st,
        Ok(None) => {
            let _ = child.kill();
            let _ = child.wait();
            let so = fs::read_to_string(&out_p).unwrap_or_default();
            let se = fs::read_to_string(&err_p).unwrap_or_default();
            return Err(format!(
                "TIMEOUT after {t:?}: {what}\n  stdout: {so}\n  stderr: {se}"
            ));
        }
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("wait {what}: {e}"));
        }
    };
    Ok(Out {
        what,
        status,
        stdout: fs::read_to_string(&out_p).unwrap_or_default(),
        stderr: fs::read_to_string(&err_p).unwrap_or_default(),
        stdout_path: out_p,
        stderr_path: err_p,
    })
}

/// `try_run` that panics on timeout: the test fails, the hung child is killed.
#[track_caller]
pub fn run_timeout(cmd: &mut Command, t: Duration, io_dir: &Path) -> Out {
    match try_run(cmd, t, io_dir) {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    }
}

/// Makes `file` the child's fd `target` (for --preserve-fds / LISTEN_FDS style tests).
/// The caller keeps `file` open until the command has been spawned.
pub fn pass_fd(cmd: &mut Command, file: &fs::File, target: i32) {
    use std::os::fd::AsRawFd;
    let src = file.as_raw_fd();
    // SAFETY: only async-signal-safe calls (dup2, fcntl) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if src == target {
                // dup2 onto itself keeps FD_CLOEXEC: clear it explicitly.
                let fl = libc::fcntl(src, libc::F_GETFD);
                if fl < 0 || libc::fcntl(src, libc::F_SETFD, fl & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(src, target) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Polls `f` until it returns Some or `t` passes.
pub fn wait_for<T>(t: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + t;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `path` exists; panics after WAIT_TIMEOUT.
#[track_caller]
pub fn wait_file(path: &Path) {
    if wait_for(WAIT_TIMEOUT, || path.exists().then_some(())).is_none() {
        panic!("{} did not appear within {WAIT_TIMEOUT:?}", path.display());
    }
}

/// True while `pid` exists and is not a zombie.
pub fn pid_alive(pid: i64) -> bool {
    if pid <= 0 {
        return false;
    }
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => match s.rfind(')') {
            Some(i) => !matches!(s[i + 1..].split_whitespace().next(), Some("Z") | Some("X")),
            None => false,
        },
        Err(_) => false,
    }
}

// ---------------------------------------------------------------------------
// The kraal runner
// ---------------------------------------------------------------------------

/// Runs the kraal under test with a private `--root`.
pub struct Kraal {
    pub bin: PathBuf,
    pub root: PathBuf,
    io: PathBuf,
}

impl Kraal {
    /// A kraal command with `--root` set; `args` follow (global flags may come first).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(&self.root).args(args);
        c
    }

    /// Runs a prepared command (from `command`) with the default timeout.
    #[track_caller]
    pub fn exec(&self, mut cmd: Command) -> Out {
        run_timeout(&mut cmd, CMD_TIMEOUT, &self.io)
    }

    #[track_caller]
    pub fn run(&self, args: &[&str]) -> Out {
        self.run_timeout(args, CMD_TIMEOUT)
    }

    #[track_caller]
    pub fn run_timeout(&self, args: &[&str], t: Duration) -> Out {
        run_timeout(&mut self.command(args), t, &self.io)
    }

    /// `kraal state ID` parsed; None when the command fails.
    #[track_caller]
    pub fn state(&self, id: &str) -> Option<Value> {
        let o = self.run(&["state", id]);
        if !o.success() {
            return None;
        }
        match serde_json::from_str(&o.stdout) {
            Ok(v) => Some(v),
            Err(e) => panic!("state {id}: stdout is not JSON ({e}): {:?}", o.stdout),
        }
    }

    /// The container's status; panics if `state` fails.
    #[track_caller]
    pub fn status(&self, id: &str) -> String {
        let Some(s) = self.state(id) else {
            panic!("state {id} failed")
        };
        s["status"].as_str().unwrap_or_default().to_string()
    }

    /// The init pid from `state`; panics if `state` fails.
    #[track_caller]
    pub fn pid(&self, id: &str) -> i64 {
        let Some(s) = self.state(id) else {
            panic!("state {id} failed")
        };
        s["pid"].as_i64().unwrap_or(-1)
    }

    /// Polls `state` until the status is `want`; panics after WAIT_TIMEOUT.
    #[track_caller]
    pub fn wait_status(&self, id: &str, want: &str) -> Value {
        let mut last = None;
        let got = wait_for(WAIT_TIMEOUT, || {
            let s = self.state(id);
            let hit = s.as_ref().is_some_and(|s| s["status"] == want);
            last = s.clone();
            if hit {
                s
            } else {
                None
            }
        });
        match got {
            Some(v) => v,
            None => panic!("container {id} did not become {want}: last state {last:?}"),
        }
    }
}

// ---------------------------------------------------------------------------
// Cgroup hierarchies, as the test process sees them
// ---------------------------------------------------------------------------

/// Directory of this process's own cgroup in every mounted hierarchy (v1 and v2),
/// found from /proc/self/cgroup and /proc/self/mountinfo: the place a relative
/// cgroupsPath is resolved from.
pub fn own_cgroup_dirs() -> Vec<PathBuf> {
    let cg = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mi = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    struct M {
        root: String,
        point: String,
        v2: bool,
        opts: Vec<String>,
    }
    let mounts: Vec<M> = mi
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            if pre.len() < 5 || post.len() < 3 {
                return None;
            }
            let v2 = match post[0] {
                "cgroup2" => true,
                "cgroup" => false,
                _ => return None,
            };
            Some(M {
                root: pre[3].to_string(),
                point: pre[4].to_string(),
                v2,
                opts: post[2].split(',').map(str::to_string).collect(),
            })
        })
        .collect();
    let mut out: Vec<PathBuf> = Vec::new();
    for line in cg.lines() {
        let mut it = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let m = if ctrls.is_empty() {
            mounts.iter().find(|m| m.v2)
        } else {
            mounts
                .iter()
                .find(|m| !m.v2 && ctrls.split(',').all(|c| m.opts.iter().any(|o| o == c)))
        };
        let Some(m) = m else { continue };
        let rel = Path::new(path)
            .strip_prefix(&m.root)
            .unwrap_or(Path::new(""))
            .to_path_buf();
        let mut dir = Path::new(&m.point).join(rel);
        // kraal (like runc) resolves relative v2 paths from the parent of its own
        // cgroup, which may not hold children of a populated cgroup.
        if m.v2 && dir != Path::new(&m.point) {
            dir.pop();
        }
        if !out.contains(&dir) {
            out.push(dir);
        }
    }
    out
}

/// The test's cgroup parent (`name`, relative) in every hierarchy.
pub fn cgroup_parent_dirs(name: &str) -> Vec<PathBuf> {
    own_cgroup_dirs()
        .into_iter()
        .map(|d| d.join(name))
        .collect()
}

/// Kills whatever is left in a test's cgroup tree (only our containers can be there)
/// and removes its directories, deepest first. Returns what could not be removed.
fn remove_cgroup_tree(dir: &Path) -> Vec<String> {
    let mut errs = Vec::new();
    if !dir.is_dir() {
        return errs;
    }
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                errs.extend(remove_cgroup_tree(&e.path()));
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) {
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                // SAFETY: kill(2) on a pid listed in our own test cgroup.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        match fs::remove_dir(dir) {
            Ok(()) => break,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                errs.push(format!("rmdir {}: {e}", dir.display()));
                break;
            }
        }
    }
    errs
}

// ---------------------------------------------------------------------------
// Mounts
// ---------------------------------------------------------------------------

fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount points of the host (test process) mount namespace at or under `dir`.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let mi = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    mi.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mountinfo(p)))
        .filter(|p| p.starts_with(dir))
        .collect()
}

/// Mounts a tmpfs (source name `source`, so it can be recognised) on `target`.
pub fn mount_tmpfs(source: &str, target: &Path) {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    fs::create_dir_all(target).expect("create mount target");
    let src = CString::new(source).expect("tmpfs source");
    let tgt = CString::new(target.as_os_str().as_bytes()).expect("tmpfs target");
    // SAFETY: plain mount(2) with valid C strings.
    let r = unsafe {
        libc::mount(
            src.as_ptr(),
            tgt.as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            c"size=1m".as_ptr().cast(),
        )
    };
    assert_eq!(
        r,
        0,
        "mount tmpfs on {}: {}",
        target.display(),
        std::io::Error::last_os_error()
    );
}

pub fn umount(target: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let tgt = CString::new(target.as_os_str().as_bytes())?;
    // SAFETY: umount2(2) with a valid C string.
    if unsafe { libc::umount2(tgt.as_ptr(), libc::MNT_DETACH) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The "nothing left behind" check
// ---------------------------------------------------------------------------

/// Asserts that kraal left nothing behind: the state root holds no container, no host
/// mount mentions any of `paths` (bundles, temp dirs), and the test's cgroup parent
/// holds no container cgroup in any hierarchy. (The parent itself may remain, as with
/// runc, which removes only the container's own directory: see `assert_clean_strict`.)
#[track_caller]
pub fn assert_clean(root: &Path, cgroup_parent: &str, paths: &[&Path]) {
    let problems = clean_problems(root, cgroup_parent, paths);
    assert!(
        problems.is_empty(),
        "kraal left things behind:\n  {}",
        problems.join("\n  ")
    );
}

/// `assert_clean`, and the test's cgroup parent is gone from every hierarchy: kraal
/// removes the parents a create made once they are empty. Only for tests whose
/// containers never overlap: a parent that already existed when a container was
/// created (B created while A exists, A deleted first) is not that container's to
/// remove, so it legitimately stays.
#[track_caller]
pub fn assert_clean_strict(root: &Path, cgroup_parent: &str, paths: &[&Path]) {
    let mut problems = clean_problems(root, cgroup_parent, paths);
    for d in cgroup_parent_dirs(cgroup_parent) {
        if d.exists() {
            problems.push(format!("cgroup parent left: {}", d.display()));
        }
    }
    assert!(
        problems.is_empty(),
        "kraal left things behind:\n  {}",
        problems.join("\n  ")
    );
}

fn clean_problems(root: &Path, cgroup_parent: &str, paths: &[&Path]) -> Vec<String> {
    let mut problems = Vec::new();
    match fs::read_dir(root) {
        Ok(rd) => {
            let left: Vec<String> = rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            if !left.is_empty() {
                problems.push(format!("state root {} holds {left:?}", root.display()));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => problems.push(format!("read state root {}: {e}", root.display())),
    }
    let mi = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for line in mi.lines() {
        let unescaped = unescape_mountinfo(line);
        for p in paths {
            if unescaped.contains(&*p.to_string_lossy()) {
                problems.push(format!("host mount left: {line}"));
            }
        }
    }
    for d in cgroup_parent_dirs(cgroup_parent) {
        if let Ok(rd) = fs::read_dir(&d) {
            for e in rd.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    problems.push(format!("cgroup left: {}", e.path().display()));
                }
            }
        }
    }
    problems
}

// ---------------------------------------------------------------------------
// Bundles
// ---------------------------------------------------------------------------

/// Applet names of the host's busybox (asked once per test binary).
pub fn applets() -> &'static [String] {
    static APPLETS: OnceLock<Vec<String>> = OnceLock::new();
    APPLETS.get_or_init(|| {
        let busybox = Path::new("/bin/busybox");
        assert!(
            busybox.exists(),
            "/bin/busybox is missing: apt-get install -y busybox-static"
        );
        let io = std::env::temp_dir().join(format!(
            "kraal-test-{}-{}-applets",
            std::process::id(),
            next_n()
        ));
        let mut c = Command::new(busybox);
        c.arg("--list");
        let r = try_run(&mut c, CMD_TIMEOUT, &io);
        let _ = fs::remove_dir_all(&io);
        let out = match r {
            Ok(o) if o.success() => o.stdout,
            Ok(o) => panic!("busybox --list failed: {o:?}"),
            Err(e) => panic!("{e}"),
        };
        out.lines()
            .map(str::trim)
            .filter(|a| !a.is_empty() && *a != "busybox" && !a.contains('/'))
            .map(str::to_string)
            .collect()
    })
}

pub const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
kraaluser:x:1000:1000:kraal test user:/home/kraaluser:/bin/sh\n\
nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
pub const GROUP: &str = "root:x:0:\nkraaluser:x:1000:\nextra:x:2000:kraaluser\nnogroup:x:65534:\n";

/// Builds the same rootfs as contrib/mkbundle.sh: busybox, one symlink per applet,
/// /etc/passwd and /etc/group, and the usual mount points.
pub fn build_rootfs(rootfs: &Path) {
    for d in [
        "bin",
        "proc",
        "sys",
        "dev",
        "etc",
        "tmp",
        "root",
        "home/kraaluser",
    ] {
        fs::create_dir_all(rootfs.join(d)).expect("create rootfs dir");
    }
    fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777))
        .expect("chmod rootfs/tmp");
    fs::set_permissions(rootfs.join("root"), fs::Permissions::from_mode(0o700))
        .expect("chmod rootfs/root");
    std::os::unix::fs::chown(rootfs.join("home/kraaluser"), Some(1000), Some(1000))
        .expect("chown home");
    fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("copy busybox");
    for a in applets() {
        symlink("busybox", rootfs.join("bin").join(a)).expect("applet symlink");
    }
    fs::write(rootfs.join("etc/passwd"), PASSWD).expect("write passwd");
    fs::write(rootfs.join("etc/group"), GROUP).expect("write group");
}

/// An OCI bundle for one container: `dir/rootfs` and `dir/config.json`.
pub struct Bundle {
    pub id: String,
    pub dir: PathBuf,
    pub rootfs: PathBuf,
    pub config: Value,
}

impl Bundle {
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    /// Edits config.json (as JSON) and writes it back.
    pub fn edit(&mut self, f: impl FnOnce(&mut Value)) -> &mut Self {
        f(&mut self.config);
        self.save();
        self
    }

    pub fn save(&self) {
        let data = serde_json::to_vec_pretty(&self.config).expect("encode config");
        fs::write(self.config_path(), data).expect("write config.json");
    }

    pub fn set_args(&mut self, args: &[&str]) -> &mut Self {
        self.edit(|c| c["process"]["args"] = json!(args))
    }

    /// A new user namespace mapping 65536 ids from `base` on the host, with the
    /// rootfs chowned to match so the container's root owns its files.
    pub fn user_namespace(&mut self, base: u32) -> &mut Self {
        let ok = std::process::Command::new("chown")
            .args([
                "-R",
                &format!("{base}:{base}"),
                self.rootfs.to_str().unwrap(),
            ])
            .status()
            .unwrap()
            .success();
        assert!(ok, "chown the rootfs to {base}");
        self.edit(|c| {
            c["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(json!({"type": "user"}));
            let map = json!([{"containerID": 0, "hostID": base, "size": 65536}]);
            c["linux"]["uidMappings"] = map.clone();
            c["linux"]["gidMappings"] = map;
        })
    }

    /// Adds a read-write bind mount of a host directory.
    pub fn bind(&mut self, host: &Path, dest: &str) -> &mut Self {
        let m = json!({
            "destination": dest,
            "type": "bind",
            "source": host,
            "options": ["rbind", "rw"],
        });
        self.edit(|c| {
            c["mounts"]
                .as_array_mut()
                .expect("mounts is an array")
                .push(m)
        })
    }

    /// Appends to an array at a JSON pointer (creating it).
    pub fn push(&mut self, pointer: &str, v: Value) -> &mut Self {
        self.edit(|c| {
            let (parent, key) = pointer.rsplit_once('/').expect("pointer has a /");
            let p = if parent.is_empty() {
                &mut *c
            } else {
                c.pointer_mut(parent).expect("parent of pointer exists")
            };
            let arr = p
                .as_object_mut()
                .expect("parent is an object")
                .entry(key.to_string())
                .or_insert_with(|| json!([]));
            arr.as_array_mut().expect("an array").push(v);
        })
    }

    /// The bundle and rootfs paths as kraal reports them (canonical).
    pub fn canonical_dir(&self) -> PathBuf {
        fs::canonicalize(&self.dir).expect("canonical bundle")
    }
}

// ---------------------------------------------------------------------------
// The per-test environment and its Drop guard
// ---------------------------------------------------------------------------

/// Everything one test makes. Dropping it force-deletes the test's containers, kills
/// and removes its cgroups, unmounts host mounts under its temp dir and removes it.
pub struct TestEnv {
    pub name: String,
    pub n: u64,
    pub tmp: PathBuf,
    pub kraal: Kraal,
    /// Relative cgroup parent: every container gets cgroupsPath `<parent>/<id>`.
    pub cgroup_parent: String,
    ids: Mutex<Vec<String>>,
    cleanups: Mutex<Vec<Box<dyn FnOnce() + Send>>>,
}

fn sanitize(name: &str) -> String {
    let s: String = name
        .rsplit("::")
        .next()
        .unwrap_or(name)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    s.chars().take(40).collect()
}

impl TestEnv {
    /// A fresh environment named after the current test (its thread's name).
    pub fn new() -> TestEnv {
        let name = sanitize(std::thread::current().name().unwrap_or("test"));
        let n = next_n();
        let pid = std::process::id();
        let tmp = std::env::temp_dir().join(format!("kraal-test-{pid}-{n}-{name}"));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).expect("create test temp dir");
        let kraal = Kraal {
            bin: kraal_bin(),
            root: tmp.join("root"),
            io: tmp.join("io"),
        };
        TestEnv {
            name,
            n,
            tmp,
            kraal,
            cgroup_parent: format!("kraal-test-{pid}-{n}"),
            ids: Mutex::new(Vec::new()),
            cleanups: Mutex::new(Vec::new()),
        }
    }

    /// A unique container id (pid + counter + test name), remembered for cleanup.
    pub fn new_id(&self) -> String {
        let id = format!("{}-{}-{}", self.name, std::process::id(), next_n());
        self.ids.lock().expect("ids lock").push(id.clone());
        id
    }

    /// A new directory under the test's temp dir.
    pub fn dir(&self, name: &str) -> PathBuf {
        let d = self.tmp.join(name);
        fs::create_dir_all(&d).expect("create test dir");
        d
    }

    /// Runs `f` when the environment is dropped (before temp dirs are removed).
    pub fn on_drop(&self, f: impl FnOnce() + Send + 'static) {
        self.cleanups
            .lock()
            .expect("cleanups lock")
            .push(Box::new(f));
    }

    /// A bundle running `args` with a fresh id: `kraal spec` output with terminal
    /// false, a writable root (tests that need it read-only say so), and cgroupsPath
    /// `<test cgroup parent>/<id>`.
    pub fn bundle(&self, args: &[&str]) -> Bundle {
        let id = self.new_id();
        let dir = self.tmp.join(format!("bundle-{id}"));
        fs::create_dir_all(&dir).expect("create bundle dir");
        let rootfs = dir.join("rootfs");
        build_rootfs(&rootfs);
        self.kraal
            .run(&["spec", "-b", dir.to_str().expect("utf-8 path")])
            .ok();
        let data = fs::read(dir.join("config.json")).expect("read config.json");
        let config: Value = serde_json::from_slice(&data).expect("parse config.json");
        let mut b = Bundle {
            id,
            dir,
            rootfs,
            config,
        };
        let cg = format!("{}/{}", self.cgroup_parent, b.id);
        b.edit(|c| {
            c["process"]["terminal"] = json!(false);
            c["process"]["args"] = json!(args);
            c["root"]["readonly"] = json!(false);
            c["linux"]["cgroupsPath"] = json!(cg);
        });
        b
    }

    pub fn k(&self) -> &Kraal {
        &self.kraal
    }

    /// `create --bundle B ID` for the bundle's id; panics unless it succeeds.
    #[track_caller]
    pub fn create(&self, b: &Bundle) -> Out {
        let o = self.kraal.run(&[
            "create",
            "--bundle",
            b.dir.to_str().expect("utf-8 path"),
            &b.id,
        ]);
        o.ok();
        o
    }

    /// create + start; returns the create output (the container's stdout/stderr files).
    #[track_caller]
    pub fn create_start(&self, b: &Bundle) -> Out {
        let o = self.create(b);
        self.kraal.run(&["start", &b.id]).ok();
        o
    }

    /// `run --bundle B ID` in the foreground.
    #[track_caller]
    pub fn run(&self, b: &Bundle) -> Out {
        self.kraal.run(&[
            "run",
            "--bundle",
            b.dir.to_str().expect("utf-8 path"),
            &b.id,
        ])
    }

    /// Asserts this test left nothing behind (see `assert_clean`).
    #[track_caller]
    pub fn assert_clean(&self) {
        assert_clean(&self.kraal.root, &self.cgroup_parent, &[&self.tmp]);
    }

    /// This test left nothing behind, not even its cgroup parent (see
    /// `assert_clean_strict`: only for tests whose containers never overlap).
    #[track_caller]
    pub fn assert_clean_strict(&self) {
        assert_clean_strict(&self.kraal.root, &self.cgroup_parent, &[&self.tmp]);
    }
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        // Never panic here: a panic while unwinding aborts the whole test binary.
        let mut ids: Vec<String> = self.ids.lock().map(|v| v.clone()).unwrap_or_default();
        if let Ok(rd) = fs::read_dir(&self.kraal.root) {
            for e in rd.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        for id in &ids {
            let mut c = self.kraal.command(&["delete", "--force", id]);
            let _ = try_run(&mut c, CMD_TIMEOUT, &self.kraal.io);
        }
        if let Ok(mut cl) = self.cleanups.lock() {
            for f in cl.drain(..).rev() {
                f();
            }
        }
        let mut errs = Vec::new();
        for d in cgroup_parent_dirs(&self.cgroup_parent) {
            errs.extend(remove_cgroup_tree(&d));
        }
        let mut mounts = mounts_under(&self.tmp);
        mounts.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
        for m in mounts {
            if let Err(e) = umount(&m) {
                errs.push(format!("umount {}: {e}", m.display()));
            }
        }
        if mounts_under(&self.tmp).is_empty() {
            if let Err(e) = fs::remove_dir_all(&self.tmp) {
                errs.push(format!("remove {}: {e}", self.tmp.display()));
            }
        } else {
            // Never recurse into a mount we could not detach.
            errs.push(format!("mounts remain under {}", self.tmp.display()));
        }
        if !errs.is_empty() {
            eprintln!("test cleanup problems: {}", errs.join("; "));
        }
    }
}

/// A network namespace pinned on a file under the test's temp dir (no global
/// /run/netns state): made with util-linux `unshare --net=FILE`, removed by
/// TestEnv's Drop (which unmounts everything under the temp dir).
pub fn make_netns(t: &TestEnv, name: &str) -> PathBuf {
    // The pin file's parent must be a private mount for `unshare --net=FILE`.
    let p = t.tmp.join(name);
    fs::write(&p, b"").expect("create netns pin file");
    let mut c = Command::new("unshare");
    c.arg(format!("--net={}", p.display())).arg("true");
    run_timeout(&mut c, CMD_TIMEOUT, &t.tmp.join("io")).ok();
    p
}

/// Unpins a namespace made by `make_netns` (before `assert_clean`, which would see
/// the pin as a mount under the temp dir).
pub fn release_netns(ns: &Path) {
    // EINVAL: no longer a mount point (already gone); assert_clean still checks that
    // nothing is mounted under the test's temp dir.
    if let Err(e) = umount(ns) {
        assert_eq!(
            e.raw_os_error(),
            Some(libc::EINVAL),
            "unmount netns pin: {e}"
        );
    }
    fs::remove_file(ns).expect("remove netns pin file");
}

/// Runs a command inside a pinned network namespace with `nsenter`.
#[track_caller]
pub fn in_netns(t: &TestEnv, ns: &Path, args: &[&str]) -> Out {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net={}", ns.display())).args(args);
    let o = run_timeout(&mut c, CMD_TIMEOUT, &t.tmp.join("io"));
    o.ok();
    o
}

/// The `ExitStatus` signal number, when the process was killed.
pub fn signal_of(st: &ExitStatus) -> Option<i32> {
    st.signal()
}

/// Compiles the C program `src` into a static binary at `out` (busybox lacks the
/// small clients some tests need inside a container; contrib/deps.sh installs gcc).
pub fn compile_static(src: &Path, out: &Path) {
    let o = Command::new("gcc")
        .args(["-static", "-O1", "-o"])
        .arg(out)
        .arg(src)
        .output()
        .expect("run gcc (contrib/deps.sh installs it)");
    assert!(
        o.status.success(),
        "gcc -static {}: {}",
        src.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}
