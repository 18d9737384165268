//! Regression tests for published container-runtime escapes (runc's CVE list): each
//! attempts the attack's mechanism through a crafted bundle or from inside a real
//! container, and asserts that it fails. docs/security.md maps each CVE to its test.

mod common;

use common::*;
use serde_json::json;
use std::os::unix::fs::symlink;
use std::time::Duration;

fn create_fails(t: &TestEnv, b: &Bundle, needle: &str) {
    t.k()
        .run(&["create", "--bundle", b.dir.to_str().unwrap(), &b.id])
        .fails()
        .stderr_has(needle);
}

/// CVE-2019-5736: a process of the runtime's image inside the container's pid
/// namespace (here: a second container's init, joined into the first one's pid
/// namespace and waiting for `start`) must not expose its executable: the container
/// cannot open /proc/<pid>/exe of it.
#[test]
fn cve_2019_5736_runtime_binary_not_reachable_from_container() {
    let t = TestEnv::new();
    let a = t.bundle(&["sleep", "300"]);
    t.create_start(&a);
    let a_pid = t.k().pid(&a.id);
    let mut b = t.bundle(&["true"]);
    b.edit(|c| {
        for n in c["linux"]["namespaces"].as_array_mut().unwrap() {
            if n["type"] == "pid" {
                n["path"] = json!(format!("/proc/{a_pid}/ns/pid"));
            }
        }
    });
    t.create(&b);
    // In A's pid namespace, B's waiting init is the process whose comm is kraal.
    let script = "for d in /proc/[0-9]*; do \
                    if [ \"$(cat $d/comm 2>/dev/null)\" = kraal ]; then \
                      echo found; readlink $d/exe && echo LEAK; cat $d/exe > /dev/null 2>&1 && echo LEAK; \
                    fi; done";
    let o = t.k().run(&["exec", &a.id, "sh", "-c", script]);
    let out = o.stdout_now();
    assert!(out.contains("found"), "B's init is visible in A: {o:?}");
    assert!(
        !out.contains("LEAK"),
        "the runtime binary was reachable: {o:?}"
    );
    t.k().run(&["delete", "--force", &b.id]).ok();
    t.k().run(&["delete", "--force", &a.id]).ok();
    t.assert_clean();
}

// ---------------------------------------------------------------------------
// CVE-2019-5736 through an execve: the runtime's image run inside the container
// ---------------------------------------------------------------------------

/// What the attacker (a busybox shell script in a container) does, as in the published
/// exploit: find the process whose argv starts with /proc/self/exe and carries `$1`
/// (the kernel ran the runtime's image for it), hold /proc/PID/exe open, kill it, wait
/// until the file can be opened for writing (ETXTBSY clears once nothing runs it) and
/// write through the held fd. Everything it sees goes to /result.
const ATTACK: &str = r#"mark=$1
out=/result.tmp
: > $out
log() { echo "$*" >> $out; }
finish() { mv $out /result; exit 0; }
pid=
n=0
while [ -z "$pid" ]; do
  for d in /proc/[0-9]*; do
    c=$(tr '\0' ' ' < $d/cmdline 2>/dev/null)
    case "$c" in "/proc/self/exe "*"$mark"*) pid=${d#/proc/} ;; esac
  done
  if [ -z "$pid" ]; then
    n=$((n+1)); [ $n -gt 600 ] && { log "no target"; finish; }
    sleep 0.05
  fi
done
log "target $pid"
if ( : < /proc/$pid/exe ) 2>/dev/null; then exec 3< /proc/$pid/exe; else log "cannot open exe"; finish; fi
log "link $(readlink /proc/self/fd/3)"
log "md5 $(md5sum <&3 | cut -d' ' -f1)"
kill -9 $pid
n=0
until err=$( ( : 1<> /proc/self/fd/3 ) 2>&1 ); do
  case "$err" in *"Read-only"*) log "open for writing: $err"; finish ;; esac
  n=$((n+1)); [ $n -gt 600 ] && { log "never writable: $err"; finish; }
  sleep 0.05
done
log "opened for writing after $n polls"
printf PWNED 1<> /proc/self/fd/3 2>/dev/null
log "head $(head -c 5 /proc/self/fd/3)"
finish
"#;

/// Which protected image kraal should end up running from.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Seal {
    /// The read-only detached overlayfs view (the first choice, as root).
    Overlay,
    /// The sealed memfd copy: forced by a state root inside the binary's directory,
    /// which overlayfs refuses as overlapping layers.
    Memfd,
}

/// A test environment plus a private copy of the kraal binary: the attacked commands
/// run that copy, so an attack that works damages only the copy.
struct ExeAttack {
    t: TestEnv,
    seal: Seal,
    copy: std::path::PathBuf,
    original: Vec<u8>,
    md5: String,
}

impl ExeAttack {
    fn new(seal: Seal) -> ExeAttack {
        let mut t = TestEnv::new();
        let copy = t.dir("bin").join("kraal");
        if seal == Seal::Memfd {
            t.kraal.root = t.tmp.join("bin/state");
        }
        std::fs::copy(kraal_bin(), &copy).unwrap();
        let original = std::fs::read(&copy).unwrap();
        let o = run_timeout(
            std::process::Command::new("md5sum").arg(&copy),
            CMD_TIMEOUT,
            &t.tmp.join("io"),
        );
        o.ok();
        let md5 = o.stdout.split(' ').next().unwrap().to_string();
        ExeAttack {
            t,
            seal,
            copy,
            original,
            md5,
        }
    }

    /// A kraal command (with the test's --root) running the copy.
    #[track_caller]
    fn run(&self, args: &[&str]) -> Out {
        let mut c = std::process::Command::new(&self.copy);
        c.arg("--root").arg(&self.t.k().root).args(args);
        self.t.k().exec(c)
    }

    /// A rootfs in which the runtime's ELF can start but blocks: the host's glibc
    /// loader is there, and the libraries kraal needs are FIFOs, so ld.so waits in
    /// open() with kraal's image mapped. /bin/sh is the attacker's `#!/proc/self/exe`.
    fn victim_rootfs(&self, b: &Bundle) {
        let r = &b.rootfs;
        let libdir = r.join("lib/x86_64-linux-gnu");
        std::fs::create_dir_all(&libdir).unwrap();
        std::fs::create_dir_all(r.join("lib64")).unwrap();
        let ld = std::fs::canonicalize("/lib64/ld-linux-x86-64.so.2").unwrap();
        std::fs::copy(&ld, libdir.join("ld-linux-x86-64.so.2")).unwrap();
        symlink(
            "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
            r.join("lib64/ld-linux-x86-64.so.2"),
        )
        .unwrap();
        let o = run_timeout(
            std::process::Command::new("ldd").arg(&self.copy),
            CMD_TIMEOUT,
            &self.t.tmp.join("io"),
        );
        o.ok();
        let mut fifos = 0;
        for l in o.stdout.lines() {
            if let Some((name, _)) = l.trim().split_once(" => ") {
                nix::unistd::mkfifo(
                    &libdir.join(name),
                    nix::sys::stat::Mode::from_bits_truncate(0o644),
                )
                .unwrap();
                fifos += 1;
            }
        }
        assert!(fifos > 0, "kraal needs shared libraries: {o:?}");
        let sh = r.join("bin/sh");
        std::fs::remove_file(&sh).unwrap();
        std::fs::write(&sh, "#!/proc/self/exe\n").unwrap();
        std::fs::set_permissions(&sh, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }

    /// Puts the attack script into a rootfs.
    fn attacker_rootfs(&self, b: &Bundle) {
        std::fs::write(b.rootfs.join("attack.sh"), ATTACK).unwrap();
    }

    /// Waits for the attacker's report and checks the outcome: the attacker really
    /// held the runtime's image (same md5 as the binary), and the binary is unchanged.
    #[track_caller]
    fn verdict(&self, attacker: &Bundle) {
        let res = attacker.rootfs.join("result");
        if wait_for(Duration::from_secs(60), || res.exists().then_some(())).is_none() {
            panic!("the attacker never reported");
        }
        let report = String::from_utf8_lossy(&std::fs::read(&res).unwrap()).into_owned();
        eprintln!("attacker's report:\n{report}");
        assert!(
            report.contains(&format!("md5 {}", self.md5)),
            "the attacker did not get hold of the runtime's image, so the attack did not \
             run: {report}"
        );
        let now = std::fs::read(&self.copy).unwrap();
        assert!(
            now == self.original,
            "the kraal binary was modified from inside the container (first bytes now {:?}); \
             attacker's report: {report}",
            String::from_utf8_lossy(&now[..16])
        );
        // And the protection under test was the one in force.
        let want = match self.seal {
            Seal::Overlay => "link /kraal",
            Seal::Memfd => "link /memfd:kraal (deleted)",
        };
        assert!(
            report.lines().any(|l| l == want),
            "expected {want:?}: {report}"
        );
    }
}

/// (a) The published exploit: the container's /bin/sh is `#!/proc/self/exe`, and the
/// host runs `kraal exec CTR /bin/sh`.
fn exec_shebang(seal: Seal) {
    let x = ExeAttack::new(seal);
    let mark = format!("mark-{}", x.t.n);
    let b = x.t.bundle(&["/bin/busybox", "sh", "/attack.sh", &mark]);
    x.victim_rootfs(&b);
    x.attacker_rootfs(&b);
    x.run(&["create", "--bundle", b.dir.to_str().unwrap(), &b.id])
        .ok();
    x.run(&["start", &b.id]).ok();
    // Killed by the attacker: its status is not the point.
    x.run(&["exec", &b.id, "/bin/sh", &mark]);
    x.verdict(&b);
    x.t.k().run(&["delete", "--force", &b.id]).ok();
    x.t.assert_clean();
}

/// (b) `kraal exec CTR /proc/self/exe` directly (a user or tool running the path it
/// finds in the container).
fn exec_proc_self_exe(seal: Seal) {
    let x = ExeAttack::new(seal);
    let mark = format!("mark-{}", x.t.n);
    let b = x.t.bundle(&["/bin/busybox", "sh", "/attack.sh", &mark]);
    x.victim_rootfs(&b);
    x.attacker_rootfs(&b);
    x.run(&["create", "--bundle", b.dir.to_str().unwrap(), &b.id])
        .ok();
    x.run(&["start", &b.id]).ok();
    x.run(&["exec", &b.id, "/proc/self/exe", &mark]);
    x.verdict(&b);
    x.t.k().run(&["delete", "--force", &b.id]).ok();
    x.t.assert_clean();
}

/// Container A (the attacker, via an exec'd process) and container B in A's pid
/// namespace, whose rootfs is the victim's; `edit_b` makes B run kraal's image.
fn attack_second_container(x: &ExeAttack, mark: &str, edit_b: impl FnOnce(&mut serde_json::Value)) {
    let t = &x.t;
    let a = t.bundle(&["/bin/busybox", "sleep", "300"]);
    x.attacker_rootfs(&a);
    x.run(&["create", "--bundle", a.dir.to_str().unwrap(), &a.id])
        .ok();
    x.run(&["start", &a.id]).ok();
    let a_pid = t.k().pid(&a.id);
    x.run(&[
        "exec",
        "-d",
        &a.id,
        "/bin/busybox",
        "sh",
        "/attack.sh",
        mark,
    ])
    .ok();
    let mut b = t.bundle(&["/bin/busybox", "true"]);
    x.victim_rootfs(&b);
    b.edit(|c| {
        for n in c["linux"]["namespaces"].as_array_mut().unwrap() {
            if n["type"] == "pid" {
                n["path"] = json!(format!("/proc/{a_pid}/ns/pid"));
            }
        }
        edit_b(c);
    });
    x.run(&["create", "--bundle", b.dir.to_str().unwrap(), &b.id])
        .ok();
    // Returns once the init's execve succeeded (a), or fails when the attacker
    // kills the hook (b): either way the attacker acts on the process.
    x.run(&["start", &b.id]);
    x.verdict(&a);
    t.k().run(&["delete", "--force", &b.id]).ok();
    t.k().run(&["delete", "--force", &a.id]).ok();
    t.assert_clean();
}

/// (c) The init's own execve: process.args is the container's `#!/proc/self/exe`
/// /bin/sh; an exec'd process of another container sharing the pid namespace attacks.
fn init_execve_shebang(seal: Seal) {
    let x = ExeAttack::new(seal);
    let mark = format!("mark-{}", x.t.n);
    let m = mark.clone();
    attack_second_container(&x, &mark, |c| c["process"]["args"] = json!(["/bin/sh", m]));
}

/// (d) A startContainer hook runs in the container (after pivot_root, so its path is
/// the container's): a `#!/proc/self/exe` hook is another execve of kraal's fork.
fn start_container_hook_shebang(seal: Seal) {
    let x = ExeAttack::new(seal);
    let mark = format!("mark-{}", x.t.n);
    let m = mark.clone();
    attack_second_container(&x, &mark, |c| {
        c["hooks"] = json!({"startContainer": [{"path": "/bin/sh", "args": ["sh", m]}]})
    });
}

#[test]
fn cve_2019_5736_exec_shebang_proc_self_exe() {
    exec_shebang(Seal::Overlay);
}

#[test]
fn cve_2019_5736_exec_shebang_proc_self_exe_memfd() {
    exec_shebang(Seal::Memfd);
}

#[test]
fn cve_2019_5736_exec_proc_self_exe_directly() {
    exec_proc_self_exe(Seal::Overlay);
}

#[test]
fn cve_2019_5736_exec_proc_self_exe_directly_memfd() {
    exec_proc_self_exe(Seal::Memfd);
}

#[test]
fn cve_2019_5736_init_execve_shebang() {
    init_execve_shebang(Seal::Overlay);
}

#[test]
fn cve_2019_5736_init_execve_shebang_memfd() {
    init_execve_shebang(Seal::Memfd);
}

#[test]
fn cve_2019_5736_start_container_hook_shebang() {
    start_container_hook_shebang(Seal::Overlay);
}

#[test]
fn cve_2019_5736_start_container_hook_shebang_memfd() {
    start_container_hook_shebang(Seal::Memfd);
}

/// With executable memfds forbidden (vm.memfd_noexec=2, set here in a private pid
/// namespace only): where the memfd copy is the only protection left (state root
/// inside the binary's directory, so no overlay), create fails with an error naming
/// the sysctl instead of running unprotected; the overlay form does not need a memfd
/// (run works), and the commands that stay on the host are not affected.
#[test]
fn cve_2019_5736_memfd_noexec_is_a_clear_error() {
    let x = ExeAttack::new(Seal::Overlay);
    let t = &x.t;
    let b = t.bundle(&["true"]);
    let bin = x.copy.to_str().unwrap();
    let nested = t.tmp.join("bin/state");
    let script = format!(
        "echo 2 > /proc/sys/vm/memfd_noexec || exit 99; \
         {bin} --root {nested} create --bundle {bd} {id}; echo create=$?; \
         {bin} --root {nested} list -q; echo list=$?; \
         {bin} --root {root} run --bundle {bd} {id}; echo run=$?",
        nested = nested.display(),
        root = t.k().root.display(),
        bd = b.dir.display(),
        id = b.id
    );
    let mut c = std::process::Command::new("unshare");
    // --mount-proc: kraal reads /proc/<pid> of the processes it starts, so its /proc
    // must be the one of its own pid namespace.
    c.args(["--pid", "--fork", "--mount-proc", "sh", "-c", &script]);
    let o = t.k().exec(c);
    o.ok();
    assert!(o.stdout.contains("create=1"), "{o:?}");
    assert!(o.stdout.contains("list=0"), "{o:?}");
    assert!(o.stdout.contains("run=0"), "{o:?}");
    o.stderr_has("vm.memfd_noexec");
    assert!(
        std::fs::read_dir(&nested).unwrap().next().is_none(),
        "the refused create left nothing: {o:?}"
    );
    t.assert_clean();
}

/// CVE-2019-16884 / CVE-2023-27561: nothing but a procfs may be mounted on /proc,
/// and nothing on the parts of /proc kraal writes to (LSM labels, sysctls).
#[test]
fn cve_2019_16884_no_mount_over_proc() {
    let t = TestEnv::new();
    let fake = t.dir("fakeproc");
    for (dest, typ) in [
        ("/proc", "bind"),
        ("/proc/self/attr", "bind"),
        ("/proc/sys", "tmpfs"),
    ] {
        let mut b = t.bundle(&["true"]);
        let src = fake.to_str().unwrap().to_string();
        b.edit(|c| {
            let opts = if typ == "bind" {
                json!(["rbind"])
            } else {
                json!([])
            };
            c["mounts"]
                .as_array_mut()
                .unwrap()
                .push(json!({"destination": dest, "type": typ, "source": src, "options": opts}));
        });
        create_fails(&t, &b, "/proc");
    }
    t.assert_clean();
}

/// CVE-2019-19921 / CVE-2021-30465: a symlink in the image pointing at a host path
/// must not redirect a mount onto the host: the target is resolved inside the rootfs.
#[test]
fn cve_2021_30465_symlinked_mount_target_stays_inside() {
    let t = TestEnv::new();
    let host = t.dir("host-target");
    let mut b = t.bundle(&[
        "sh",
        "-c",
        "grep -c 'host-target/sub .* - tmpfs' /proc/self/mountinfo",
    ]);
    symlink(&host, b.rootfs.join("escape")).unwrap();
    b.edit(|c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/escape/sub", "type": "tmpfs", "source": "tmpfs"}));
    });
    let o = t.run(&b);
    o.ok();
    assert_eq!(
        o.stdout_lines(),
        ["1"],
        "the tmpfs is mounted inside, where the link leads within the rootfs"
    );
    assert!(
        !host.join("sub").exists(),
        "nothing was created on the host"
    );
    let inside = b.rootfs.join(host.strip_prefix("/").unwrap()).join("sub");
    assert!(
        inside.is_dir(),
        "the symlink was followed inside the rootfs: {}",
        inside.display()
    );
    t.assert_clean();
}

/// CVE-2024-45310: a symlink placed in a shared volume (by an earlier container)
/// must not make a later mount create directories on the host.
#[test]
fn cve_2024_45310_volume_symlink_cannot_create_on_host() {
    let t = TestEnv::new();
    let vol = t.dir("volume");
    let host = t.dir("host-side");
    symlink(&host, vol.join("link")).unwrap();
    let mut b = t.bundle(&["true"]);
    let v = vol.to_str().unwrap().to_string();
    b.edit(|c| {
        let m = c["mounts"].as_array_mut().unwrap();
        m.push(json!({"destination": "/vol", "type": "bind", "source": v, "options": ["rbind"]}));
        m.push(
            json!({"destination": "/vol/link/made-by-mount", "type": "tmpfs", "source": "tmpfs"}),
        );
    });
    t.run(&b).ok();
    assert!(
        !host.join("made-by-mount").exists(),
        "a directory was created on the host"
    );
    t.assert_clean();
}

/// CVE-2022-29162: the default config grants no inheritable capabilities.
#[test]
fn cve_2022_29162_no_inheritable_capabilities_by_default() {
    let t = TestEnv::new();
    let b = t.bundle(&["sh", "-c", "grep -E '^Cap(Inh|Amb):' /proc/self/status"]);
    let o = t.run(&b);
    o.ok();
    for l in o.stdout_lines() {
        assert!(l.ends_with("0000000000000000"), "{l}");
    }
    t.assert_clean();
}

/// CVE-2023-28642: /proc (or /sys) as a symlink in the image is refused.
#[test]
fn cve_2023_28642_proc_symlink_refused() {
    let t = TestEnv::new();
    let b = t.bundle(&["true"]);
    std::fs::remove_dir(b.rootfs.join("proc")).unwrap();
    symlink("/tmp", b.rootfs.join("proc")).unwrap();
    create_fails(&t, &b, "not a directory");
    t.assert_clean();
}

/// CVE-2024-21626: no runtime fd survives into the container (the init and exec'd
/// processes hold only stdio), and a cwd pointing at a leaked fd is refused.
#[test]
fn cve_2024_21626_no_leaked_fds_and_no_fd_cwd() {
    let t = TestEnv::new();
    let b = t.bundle(&["sh", "-c", "exec ls /proc/self/fd"]);
    let o = t.run(&b);
    o.ok();
    assert_eq!(
        o.stdout_lines(),
        ["0", "1", "2", "3"],
        "only stdio (+ ls's own dir fd)"
    );
    let b = t.bundle(&["sleep", "300"]);
    t.create_start(&b);
    let o = t.k().run(&["exec", &b.id, "ls", "/proc/self/fd"]);
    o.ok();
    assert_eq!(o.stdout_lines(), ["0", "1", "2", "3"]);
    // The init's own fds, seen from the host: stdio only.
    let pid = t.k().pid(&b.id);
    let fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut fds = fds;
    fds.sort();
    assert_eq!(fds, ["0", "1", "2"]);
    t.k().run(&["delete", "--force", &b.id]).ok();
    for fd in 3..8 {
        let mut b = t.bundle(&["pwd"]);
        b.edit(|c| c["process"]["cwd"] = json!(format!("/proc/self/fd/{fd}")));
        let o = t.run(&b);
        if o.success() {
            let cwd = o.stdout_now();
            assert!(
                !cwd.contains("unreachable") && cwd.starts_with('/'),
                "cwd escaped: {cwd}"
            );
        }
    }
    t.assert_clean();
}

/// CVE-2025-31133: masking binds /dev/null over paths; a /dev/null that is a symlink
/// (here in a /dev bound from a volume) is refused instead of followed.
#[test]
fn cve_2025_31133_masking_refuses_a_fake_dev_null() {
    let t = TestEnv::new();
    let dev = t.dir("fake-dev");
    symlink("/etc/passwd", dev.join("null")).unwrap();
    let mut b = t.bundle(&["true"]);
    let d = dev.to_str().unwrap().to_string();
    b.edit(|c| {
        let m = c["mounts"].as_array_mut().unwrap();
        m.retain(|m| !m["destination"].as_str().unwrap_or("").starts_with("/dev"));
        m.push(json!({"destination": "/dev", "type": "bind", "source": d, "options": ["rbind"]}));
    });
    create_fails(&t, &b, "/dev/null");
    t.assert_clean();
}

/// CVE-2025-52565: the console is never bound onto what a /dev/console symlink points to.
#[test]
fn cve_2025_52565_console_symlink_refused() {
    let t = TestEnv::new();
    let dev = t.dir("fake-dev2");
    std::fs::write(dev.join("target"), b"untouched").unwrap();
    symlink("/dev/target", dev.join("console")).unwrap();
    for n in ["null", "zero", "random", "urandom", "tty", "full"] {
        std::fs::write(dev.join(n), b"").unwrap();
    }
    std::fs::create_dir(dev.join("pts")).unwrap();
    symlink("pts/ptmx", dev.join("ptmx")).unwrap();
    let mut b = t.bundle(&["sh"]);
    let d = dev.to_str().unwrap().to_string();
    b.edit(|c| {
        c["process"]["terminal"] = json!(true);
        let m = c["mounts"].as_array_mut().unwrap();
        m.retain(|m| m["destination"] != "/dev");
        m.insert(
            0,
            json!({"destination": "/dev", "type": "bind", "source": d, "options": ["rbind"]}),
        );
        c["linux"].as_object_mut().unwrap().remove("maskedPaths");
    });
    let sock = t.dir("sock").join("c.sock");
    let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    t.k()
        .run(&[
            "create",
            "--console-socket",
            sock.to_str().unwrap(),
            "--bundle",
            b.dir.to_str().unwrap(),
            &b.id,
        ])
        .fails()
        .stderr_has("/dev/console");
    assert_eq!(std::fs::read(dev.join("target")).unwrap(), b"untouched");
    t.assert_clean();
}

/// Device-node chmod race: a process that can write the directory a device node is
/// made in (a shared volume at /dev, or at a linux.devices path's directory) swaps the
/// new node for a symlink to a host file between mknod and chmod. The host file's mode
/// must never change: kraal acts on the node by fd only, never by name again.
#[test]
fn device_node_race_never_chmods_a_host_file() {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let t = TestEnv::new();
    let vol = t.dir("shared-vol");
    let scratch = t.dir("host-side").join("secret");
    std::fs::write(&scratch, b"host file").unwrap();
    std::fs::set_permissions(&scratch, std::fs::Permissions::from_mode(0o600)).unwrap();
    let v = vol.to_str().unwrap().to_string();
    let node = |path: &str| json!({"path": path, "type": "c", "major": 1, "minor": 3, "fileMode": 0o666, "uid": 0, "gid": 0});
    // A: the volume is the container's /dev; B: it is a linux.devices path's directory.
    let mut a = t.bundle(&["true"]);
    a.edit(|c| {
        let m = c["mounts"].as_array_mut().unwrap();
        m.retain(|m| !m["destination"].as_str().unwrap_or("").starts_with("/dev"));
        m.push(json!({"destination": "/dev", "type": "bind", "source": v, "options": ["rbind"]}));
        c["linux"]["devices"] = json!([node("/dev/null")]);
    });
    let mut b = t.bundle(&["true"]);
    b.edit(|c| {
        let m = c["mounts"].as_array_mut().unwrap();
        m.push(json!({"destination": "/data", "type": "bind", "source": v, "options": ["rbind"]}));
        c["linux"]["devices"] = json!([node("/data/null")]);
    });
    // The racer: a symlink to the host file renamed over the node, in a tight loop.
    let stop = Arc::new(AtomicBool::new(false));
    let racer = {
        let stop = stop.clone();
        let (vol, scratch) = (vol.clone(), scratch.clone());
        std::thread::spawn(move || {
            let (tmp, node) = (vol.join(".swap"), vol.join("null"));
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let _ = std::fs::remove_file(&tmp);
                if symlink(&scratch, &tmp).is_ok() && std::fs::rename(&tmp, &node).is_ok() {
                    swaps += 1;
                }
            }
            swaps
        })
    };
    let mode = || std::fs::metadata(&scratch).unwrap().permissions().mode() & 0o7777;
    let (mut created, mut changed) = (0, None);
    for i in 0..300 {
        let bd = if i % 2 == 0 { &a } else { &b };
        let o = t
            .k()
            .run(&["create", "--bundle", bd.dir.to_str().unwrap(), &bd.id]);
        if o.success() {
            created += 1;
        }
        t.k().run(&["delete", "--force", &bd.id]);
        if mode() != 0o600 {
            changed = Some((i, mode()));
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = racer.join().unwrap();
    eprintln!("{created} creates succeeded; the racer swapped {swaps} times");
    assert!(swaps > 0, "the racer never ran");
    assert_eq!(
        changed, None,
        "a host file's mode was changed through a swapped device node (create #, mode)"
    );
    t.assert_clean();
}

/// Runs kraal (with `args`) under a pid the test knows before kraal starts: a shell
/// started with stdin piped learns it, and execs kraal once the test has set up
/// what it wants (`plant`, given that pid). Returns kraal's output.
fn kraal_with_known_pid(t: &TestEnv, args: &[&str], plant: impl FnOnce(u32)) -> Out {
    use std::io::Write;
    let io = t.dir("io-known-pid");
    let mut c = std::process::Command::new("sh");
    c.arg("-c")
        .arg("read _ && exec \"$0\" \"$@\"")
        .arg(kraal_bin())
        .arg("--root")
        .arg(&t.k().root)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::fs::File::create(io.join("out")).unwrap())
        .stderr(std::fs::File::create(io.join("err")).unwrap());
    let mut child = c.spawn().unwrap();
    plant(child.id());
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let status = match wait_timeout(&mut child, CMD_TIMEOUT) {
        Ok(Some(st)) => st,
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kraal {args:?} timed out");
        }
    };
    Out {
        what: format!("kraal {args:?}"),
        status,
        stdout: std::fs::read_to_string(io.join("out")).unwrap_or_default(),
        stderr: std::fs::read_to_string(io.join("err")).unwrap_or_default(),
        stdout_path: io.join("out"),
        stderr_path: io.join("err"),
    }
}

/// `--pid-file` (and `--log`) are written as root in a directory the caller chose,
/// where another user may have planted symlinks: at the pid file's temporary name,
/// at the pid file itself, at the log file. None of them is written through; a
/// directory that others may write (not sticky) is refused.
#[test]
fn pid_file_and_log_never_write_through_planted_symlinks() {
    let t = TestEnv::new();
    let dir = t.dir("pidfiles");
    let scratch = t.dir("host-side").join("precious");
    std::fs::write(&scratch, b"precious").unwrap();
    let b = t.bundle(&["sleep", "300"]);
    let pf = dir.join("ctr.pid");
    let args = [
        "create",
        "--pid-file",
        pf.to_str().unwrap(),
        "--bundle",
        b.dir.to_str().unwrap(),
        &b.id,
    ];
    // The temporary name 9f4dbed used (stem.tmp<pid>), and the pid file itself.
    let o = kraal_with_known_pid(&t, &args, |pid| {
        symlink(&scratch, dir.join(format!("ctr.tmp{pid}"))).unwrap();
        symlink(&scratch, &pf).unwrap();
    });
    o.ok();
    assert_eq!(
        std::fs::read(&scratch).unwrap(),
        b"precious",
        "kraal wrote the pid file through a planted symlink"
    );
    let pid = t.k().pid(&b.id);
    assert!(
        !std::fs::symlink_metadata(&pf).unwrap().is_symlink(),
        "the pid file is still the planted symlink"
    );
    assert_eq!(std::fs::read_to_string(&pf).unwrap(), pid.to_string());
    t.k().run(&["delete", "--force", &b.id]).ok();

    // --log: every call appends to it, so it cannot be created O_EXCL; a symlink
    // there is refused instead of followed.
    let log = dir.join("log.json");
    symlink(&scratch, &log).unwrap();
    t.k()
        .run(&[
            "--log",
            log.to_str().unwrap(),
            "--debug",
            "state",
            "no-such-ctr",
        ])
        .fails()
        .stderr_has(log.to_str().unwrap());
    assert_eq!(
        std::fs::read(&scratch).unwrap(),
        b"precious",
        "log written through a symlink"
    );

    // A directory anyone may write (not sticky) is refused, naming it.
    let open = t.dir("world-writable");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let pf2 = open.join("ctr.pid");
    let b2 = t.bundle(&["sleep", "300"]);
    t.k()
        .run(&[
            "create",
            "--pid-file",
            pf2.to_str().unwrap(),
            "--bundle",
            b2.dir.to_str().unwrap(),
            &b2.id,
        ])
        .fails()
        .stderr_has(open.to_str().unwrap());
    assert!(!pf2.exists());
    t.assert_clean();
}

/// `exec` into a container without a mount namespace (its init is only chrooted),
/// and into a --no-pivot one: the new process's / is the rootfs, never the host's.
#[test]
fn exec_without_mount_namespace_stays_in_the_rootfs() {
    let t = TestEnv::new();
    let secret = t.dir("host-only").join("secret");
    std::fs::write(&secret, b"host secret").unwrap();
    let secret = secret.to_str().unwrap().to_string();
    let mut nomnt = t.bundle(&["sleep", "300"]);
    nomnt.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "mount");
        let l = c["linux"].as_object_mut().unwrap();
        l.remove("maskedPaths");
        l.remove("readonlyPaths");
    });
    let nopivot = t.bundle(&["sleep", "300"]);
    for (b, extra) in [(&nomnt, None), (&nopivot, Some("--no-pivot"))] {
        std::fs::write(b.rootfs.join("in-rootfs"), b"rootfs file").unwrap();
        let mut args = vec!["create"];
        args.extend(extra);
        args.extend(["--bundle", b.dir.to_str().unwrap(), &b.id]);
        t.k().run(&args).ok();
        t.k().run(&["start", &b.id]).ok();
        let o = t.k().run(&["exec", &b.id, "cat", &secret]);
        assert!(
            !o.stdout.contains("host secret"),
            "exec ({extra:?}) read a host file: {o:?}"
        );
        o.fails();
        let o = t.k().run(&["exec", &b.id, "cat", "/in-rootfs"]);
        o.ok();
        assert_eq!(
            o.stdout, "rootfs file",
            "exec ({extra:?}): / is not the rootfs"
        );
        t.k().run(&["delete", "--force", &b.id]).ok();
    }
    t.assert_clean();
}

/// The container's /etc/passwd is read for HOME when the process sets none: a FIFO
/// there (open would wait for a writer) or a symlink to /dev/zero (endless) must not
/// hang `exec` or grow kraal's memory: exec returns promptly with HOME=/.
#[test]
fn exec_home_lookup_survives_a_hostile_etc_passwd() {
    let t = TestEnv::new();
    let mut b = t.bundle(&["sleep", "300"]);
    // Bounds the damage if the read is not bounded (the exec process joins this cgroup).
    b.edit(|c| c["linux"]["resources"] = json!({"memory": {"limit": 64 << 20}}));
    t.create_start(&b);
    let passwd = b.rootfs.join("etc/passwd");
    let c = std::ffi::CString::new(passwd.to_str().unwrap()).unwrap();
    for kind in ["dev-zero", "fifo"] {
        std::fs::remove_file(&passwd).unwrap();
        match kind {
            // SAFETY: mkfifo(3) with a NUL-terminated path.
            "fifo" => assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0),
            _ => symlink("/dev/zero", &passwd).unwrap(),
        }
        let o = t
            .k()
            .run(&["exec", &b.id, "sh", "-c", "echo \"HOME=$HOME\""]);
        o.ok();
        assert_eq!(o.stdout_lines(), ["HOME=/"], "{kind}: {o:?}");
    }
    t.k().run(&["delete", "--force", &b.id]).ok();
    t.assert_clean();
}

/// Adds a bind mount of `src` at `dest` after the config's own mounts (so after /proc
/// and /sys are mounted).
fn push_bind(b: &mut Bundle, src: &std::path::Path, dest: &str) {
    let s = src.to_str().unwrap().to_string();
    b.edit(|c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": dest, "type": "bind", "source": s, "options": ["rbind"]}));
    });
}

/// A symlink in the image plus a volume at its name must not put the volume inside
/// /proc: over the init's /proc/1/fd it would redirect every later mount made through
/// /proc/self/fd/N (masked and readonly paths: /proc/sys stayed writable, /proc/keys
/// unmasked), over /proc/sys/kernel it would fake sysctls, over /proc/self/attr the
/// LSM labels. The destination is checked where it really lands, as runc does
/// ("... cannot be mounted because it is inside /proc"), for directories and files.
#[test]
fn symlinked_volume_into_proc_refused() {
    let t = TestEnv::new();
    // Names a process's fds could have: once over /proc/1/fd, /proc/self/fd/N of the
    // init leads here, and from here to a directory of the container's choosing.
    let vol = t.dir("vol");
    for n in 0..100 {
        symlink("/tmp", vol.join(n.to_string())).unwrap();
    }
    let file = t.dir("filevol").join("f");
    std::fs::write(&file, b"fake\n").unwrap();
    for (link, target, src) in [
        ("data", "/proc/1/fd", &vol),
        ("kern", "/proc/sys/kernel", &vol),
        ("attr", "/proc/self/attr", &vol),
        ("cp", "/proc/sys/kernel/core_pattern", &file),
        // Relative, through a directory of the image first.
        ("etc/fd", "../proc/1/fd", &vol),
    ] {
        let mut b = t.bundle(&["true"]);
        symlink(target, b.rootfs.join(link)).unwrap();
        push_bind(&mut b, src, &format!("/{link}"));
        let o = t
            .k()
            .run(&["create", "--bundle", b.dir.to_str().unwrap(), &b.id]);
        o.fails();
        let err = o.stderr.clone();
        assert!(
            err.contains(&format!("(/{link})"))
                && err.contains("mounts[")
                && err.contains(", inside /proc"),
            "{link} -> {target}: the error names the mount and /proc: {err}"
        );
    }
    t.assert_clean();
}

/// The same through a symlink into /sys: a volume over /sys/firmware (masked) or any
/// other part of sysfs is refused unless the configured destination is under /sys.
#[test]
fn symlinked_volume_into_sys_refused() {
    let t = TestEnv::new();
    let vol = t.dir("vol");
    for (link, target) in [("fw", "/sys/firmware"), ("kk", "/sys/kernel")] {
        let mut b = t.bundle(&["true"]);
        symlink(target, b.rootfs.join(link)).unwrap();
        push_bind(&mut b, &vol, &format!("/{link}"));
        create_fails(&t, &b, &format!("resolves to {target}, inside /sys"));
    }
    // An explicit destination under /sys stays allowed.
    let mut b = t.bundle(&["sh", "-c", "cat /sys/kernel/mm/marker"]);
    std::fs::write(vol.join("marker"), b"mine\n").unwrap();
    push_bind(&mut b, &vol, "/sys/kernel/mm");
    let o = t.run(&b);
    o.ok();
    assert_eq!(o.stdout_lines(), ["mine"]);
    t.assert_clean();
}

/// tmpcopyup through a symlink into /proc would copy the runtime's fd table (or
/// another procfs directory) into the container: refused the same way.
#[test]
fn tmpcopyup_through_symlink_into_proc_refused() {
    let t = TestEnv::new();
    for (link, target) in [("cp", "/proc/1/fd"), ("sk", "/proc/sys/kernel")] {
        let mut b = t.bundle(&["true"]);
        symlink(target, b.rootfs.join(link)).unwrap();
        let dest = format!("/{link}");
        b.edit(|c| {
            c["mounts"].as_array_mut().unwrap().push(json!({
                "destination": dest, "type": "tmpfs", "source": "tmpfs",
                "options": ["tmpcopyup"]
            }));
        });
        let o = t
            .k()
            .run(&["create", "--bundle", b.dir.to_str().unwrap(), &b.id]);
        o.fails()
            .stderr_has(&format!("(/{link})"))
            .stderr_has(&format!("resolves to {target}, inside /proc"));
    }
    t.assert_clean();
}

/// With the default config the masks and read-only paths really hold (they are now
/// mounted through fds, never through /proc/self/fd after pivot_root): /proc/sys is
/// read-only, core_pattern cannot be opened for writing, /proc/keys and
/// /proc/timer_list read empty, /sys/firmware is an empty read-only tmpfs.
#[test]
fn masked_and_readonly_paths_hold() {
    let t = TestEnv::new();
    let b = t.bundle(&[
        "sh",
        "-c",
        "echo '|/tmp/x' > /proc/sys/kernel/core_pattern 2>/dev/null && echo core-pattern-writable || echo core-pattern-ro; \
         echo 1 > /proc/sys/vm/drop_caches 2>/dev/null && echo sys-writable || echo sys-ro; \
         echo keys=$(wc -c < /proc/keys); echo timer=$(wc -c < /proc/timer_list); \
         echo fw=$(ls -A /sys/firmware | wc -l); touch /sys/firmware/x 2>/dev/null && echo fw-writable || echo fw-ro; \
         grep -c ' /proc/sys ro,nosuid,nodev,noexec' /proc/self/mountinfo",
    ]);
    let o = t.run(&b);
    o.ok();
    assert_eq!(
        o.stdout_lines(),
        [
            "core-pattern-ro",
            "sys-ro",
            "keys=0",
            "timer=0",
            "fw=0",
            "fw-ro",
            "1"
        ],
        "{o:?}"
    );
    t.assert_clean();
}

/// A readonlyPaths entry with a mount below it is read-only all the way down: a
/// writable submount would leave the "read-only" path writable.
#[test]
fn readonly_path_submounts_are_read_only() {
    let t = TestEnv::new();
    let mut b = t.bundle(&[
        "sh",
        "-c",
        "touch /data/x 2>/dev/null && echo top-writable || echo top-ro; \
         touch /data/sub/x 2>/dev/null && echo sub-writable || echo sub-ro",
    ]);
    b.edit(|c| {
        let m = c["mounts"].as_array_mut().unwrap();
        m.push(json!({"destination": "/data", "type": "tmpfs", "source": "tmpfs"}));
        m.push(json!({"destination": "/data/sub", "type": "tmpfs", "source": "tmpfs"}));
        c["linux"]["readonlyPaths"]
            .as_array_mut()
            .unwrap()
            .push(json!("/data"));
    });
    let o = t.run(&b);
    o.ok();
    assert_eq!(o.stdout_lines(), ["top-ro", "sub-ro"], "{o:?}");
    t.assert_clean();
}

/// --no-pivot: the host's fully visible /proc stays in the container's mount
/// namespace outside the chroot, which would let a nested user namespace (with its
/// own pid namespace) mount a fresh, unmasked procfs. kraal detaches the host's procfs
/// and sysfs mounts before the chroot, as runc does.
#[test]
fn no_pivot_nested_userns_cannot_mount_procfs() {
    let t = TestEnv::new();
    let mut b = t.bundle(&[
        "sh",
        "-c",
        "mkdir -p /tmp/p; unshare -U -r -m -p -n -f sh -c 'echo in-userns; \
         mount -t proc proc /tmp/p 2>&1 && echo proc-mounted || echo proc-refused; \
         mount -t sysfs sysfs /tmp/p 2>&1 && echo sysfs-mounted || echo sysfs-refused'",
    ]);
    b.edit(|c| {
        c["linux"].as_object_mut().unwrap().remove("seccomp");
        // Not root: an unprivileged user may map only itself into a new user
        // namespace, which needs no capability (root mapping itself would need
        // CAP_SETFCAP, which the default config does not grant).
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    });
    let o = t.kraal.run(&[
        "run",
        "--no-pivot",
        "--bundle",
        b.dir.to_str().unwrap(),
        &b.id,
    ]);
    o.ok();
    let out = o.stdout_now();
    assert!(
        out.contains("in-userns"),
        "the user namespace was made: {o:?}"
    );
    assert!(out.contains("proc-refused"), "procfs was mounted: {o:?}");
    assert!(!out.contains("proc-mounted"), "procfs was mounted: {o:?}");
    assert!(out.contains("sysfs-refused"), "sysfs was mounted: {o:?}");
    t.assert_clean();
}

/// The filesystem under a target counts, not only its path: with the host's /proc
/// or /sys shown elsewhere in the container (a bind the config asked for), a later
/// mount below it is refused as one inside /proc or /sys would be.
#[test]
fn mount_onto_a_procfs_or_sysfs_elsewhere_refused() {
    let t = TestEnv::new();
    let file = t.dir("filevol").join("f");
    std::fs::write(&file, b"fake\n").unwrap();
    let vol = t.dir("vol");
    for (shown, src, dest, want) in [
        (
            "/hostproc",
            "/proc",
            "/hostproc/sys/kernel/core_pattern",
            "on a procfs",
        ),
        ("/hostproc", "/proc", "/hostproc/sys/kernel", "inside /proc"),
        ("/hostsys", "/sys", "/hostsys/kernel", "on a sysfs"),
    ] {
        let mut b = t.bundle(&["true"]);
        push_bind(&mut b, std::path::Path::new(src), shown);
        let from = if dest.ends_with("core_pattern") {
            &file
        } else {
            &vol
        };
        push_bind(&mut b, from, dest);
        create_fails(&t, &b, want);
    }
    t.assert_clean();
}

// ---------------------------------------------------------------------------
// exec.fifo, the notify socket, the pty drain, the mount-flag race
// ---------------------------------------------------------------------------

/// Runs `f` in a forked child as uid/gid 65534 with no supplementary groups and
/// returns what it returns (an errno, 0 for success). `f` must only make system
/// calls (no allocation: the test process has other threads).
fn as_nobody(f: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child only makes system calls (setgroups, setresgid, setresuid,
    // whatever `f` makes) on data prepared before the fork, then _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        unsafe {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setresgid(65534, 65534, 65534) != 0
                || libc::setresuid(65534, 65534, 65534) != 0
            {
                libc::_exit(255);
            }
            libc::_exit(f());
        }
    }
    let mut st = 0;
    // SAFETY: waits for the child forked above.
    assert_eq!(unsafe { libc::waitpid(pid, &mut st, 0) }, pid);
    assert!(libc::WIFEXITED(st), "helper child: status {st}");
    let code = libc::WEXITSTATUS(st);
    assert_ne!(code, 255, "could not become uid 65534");
    code
}

fn errno() -> i32 {
    // SAFETY: reads the calling thread's errno.
    unsafe { *libc::__errno_location() }
}

/// As an unprivileged host user: open `path` with `flags` (0 or the errno).
fn nobody_open(path: &std::path::Path, flags: i32) -> i32 {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    as_nobody(|| {
        // SAFETY: c is a NUL-terminated path that outlives the call.
        let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) };
        if fd < 0 {
            errno()
        } else {
            0
        }
    })
}

/// As an unprivileged host user: send READY=1 to the datagram socket at `target`
/// (reached through a short symlink: the real path is longer than sun_path).
fn nobody_send_ready(target: &std::path::Path) -> i32 {
    let path = std::env::temp_dir().join(format!("kn-{}-{}", std::process::id(), next_n()));
    symlink(target, &path).unwrap();
    let r = nobody_send_ready_at(&path);
    let _ = std::fs::remove_file(&path);
    r
}

fn nobody_send_ready_at(path: &std::path::Path) -> i32 {
    let mut a: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    a.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let b = path.as_os_str().as_encoded_bytes();
    assert!(b.len() < a.sun_path.len(), "socket path too long");
    for (d, s) in a.sun_path.iter_mut().zip(b) {
        *d = *s as libc::c_char;
    }
    let msg = b"READY=1\n";
    as_nobody(|| unsafe {
        // SAFETY: a and msg live across the calls; the lengths are theirs.
        let s = libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return 100;
        }
        let r = libc::sendto(
            s,
            msg.as_ptr().cast(),
            msg.len(),
            0,
            (&a as *const libc::sockaddr_un).cast(),
            std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
        );
        if r < 0 {
            errno()
        } else {
            0
        }
    })
}

/// A static notify client for the rootfs: waits until /tmp/go exists, then sends
/// READY=1 to $NOTIFY_SOCKET (exit 3 if that fails) and waits.
fn build_go_notify_client(t: &TestEnv, b: &Bundle) {
    let src = t.dir("notify-src").join("go-notify.c");
    std::fs::write(
        &src,
        r#"#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
int main(void) {
    const char *p = getenv("NOTIFY_SOCKET");
    if (!p) return 2;
    for (int i = 0; access("/tmp/go", F_OK) != 0; i++) {
        if (i > 3000) return 4;
        usleep(10000);
    }
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strncpy(a.sun_path, p, sizeof a.sun_path - 1);
    int s = socket(AF_UNIX, SOCK_DGRAM, 0);
    const char *m = "READY=1\n";
    if (sendto(s, m, strlen(m), 0, (struct sockaddr *)&a, sizeof a) < 0) return 3;
    pause();
    return 0;
}
"#,
    )
    .unwrap();
    compile_static(&src, &b.rootfs.join("go-notify"));
}

/// exec.fifo and the notify socket belong to kraal and the container's user only:
/// another local user (uid 65534) who can search the state directories (a state
/// root of mode 0711, as containerd makes them) can neither open exec.fifo (to hold
/// `start` up, feed it a fake error, or release the init) nor send a fake READY=1.
/// The container itself, running as a non-root user, with and without a user
/// namespace, still starts and still notifies.
#[test]
fn exec_fifo_and_notify_socket_refuse_other_users() {
    for userns in [false, true] {
        let t = TestEnv::new();
        let mut b = t.bundle(&["/go-notify"]);
        build_go_notify_client(&t, &b);
        b.edit(|c| c["process"]["user"] = json!({"uid": 1000, "gid": 1000}));
        if userns {
            b.user_namespace(300000);
        }
        let host = t.dir("notify").join("host.sock");
        let listener = std::os::unix::net::UnixDatagram::bind(&host).unwrap();
        listener.set_nonblocking(true).unwrap();
        // A state root other users may search (mode 0711, as containerd makes
        // them), in a temp dir they may search too.
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(&t.k().root).unwrap();
        for d in [&t.tmp, &t.k().root] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o711)).unwrap();
        }
        let mut create = t
            .k()
            .command(&["create", "--bundle", b.dir.to_str().unwrap(), &b.id]);
        create.env("NOTIFY_SOCKET", &host);
        t.k().exec(create).ok();
        let cdir = t.k().root.join(&b.id);
        let fifo = cdir.join("exec.fifo");
        assert!(fifo.exists(), "no exec.fifo after create");
        let fifo_w = nobody_open(&fifo, libc::O_WRONLY | libc::O_NONBLOCK);
        let fifo_r = nobody_open(&fifo, libc::O_RDONLY | libc::O_NONBLOCK);
        assert_eq!(t.k().status(&b.id), "created", "userns={userns}");

        let mut start = t.k().command(&["start", &b.id]);
        start.env("NOTIFY_SOCKET", &host);
        let io = t.dir("start-io");
        start
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(io.join("out")).unwrap())
            .stderr(std::fs::File::create(io.join("err")).unwrap());
        let mut child = start.spawn().unwrap();
        let sock = cdir.join("notify").join("notify.sock");
        let seen = wait_for(WAIT_TIMEOUT, || sock.exists().then_some(()));
        if seen.is_none() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("userns={userns}: {} never appeared", sock.display());
        }
        let sent = nobody_send_ready(&sock);
        let mut buf = [0u8; 512];
        let early = listener.recv(&mut buf).ok();
        std::fs::write(b.rootfs.join("tmp/go"), b"").unwrap();
        let st = wait_timeout(&mut child, CMD_TIMEOUT).unwrap();
        if st.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let err = std::fs::read_to_string(io.join("err")).unwrap_or_default();
        // Errnos: EACCES is refused; 0 (or ENXIO, no reader yet) got through.
        assert_eq!(
            (fifo_w, fifo_r, sent),
            (libc::EACCES, libc::EACCES, libc::EACCES),
            "userns={userns}: another user opened exec.fifo for writing, for reading, \
             or sent to the notify socket (errnos)"
        );
        assert!(
            early.is_none(),
            "userns={userns}: readiness forwarded before the container sent it"
        );
        assert!(
            st.is_some_and(|s| s.success()),
            "userns={userns}: start: {st:?} {err}"
        );
        listener.set_nonblocking(false).unwrap();
        listener
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let n = listener.recv(&mut buf).expect("readiness forwarded");
        let msg = String::from_utf8_lossy(&buf[..n]).to_string();
        let pid = t.k().pid(&b.id);
        assert!(
            msg.contains("READY=1") && msg.contains(&format!("MAINPID={pid}")),
            "userns={userns}: {msg}"
        );
        assert_eq!(t.k().status(&b.id), "running", "userns={userns}");
        t.k().run(&["delete", "--force", &b.id]).ok();
        t.assert_clean();
    }
}

/// A `start` whose init is not waiting on exec.fifo any more (here: the fifo of a
/// running container made again, as a `start` killed before removing it would
/// leave it) is refused at once instead of waiting for ever for a writer.
#[test]
fn start_does_not_wait_for_an_init_that_already_exec_d() {
    let t = TestEnv::new();
    let b = t.bundle(&["sleep", "100"]);
    t.create_start(&b);
    assert_eq!(t.k().status(&b.id), "running");
    let fifo = t.k().root.join(&b.id).join("exec.fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: c is a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    let began = std::time::Instant::now();
    let o = t
        .k()
        .run_timeout(&["start", &b.id], std::time::Duration::from_secs(20));
    o.fails().stderr_has("already running");
    assert!(
        began.elapsed() < std::time::Duration::from_secs(10),
        "start took {:?}",
        began.elapsed()
    );
    assert!(!fifo.exists(), "the stale exec.fifo was left");
    t.k().run(&["delete", "--force", &b.id]).ok();
    t.assert_clean();
}

/// Without a pid namespace, a process that outlives the init and keeps writing to
/// the container's terminal must not keep a foreground `kraal run -t` (which copies
/// the pty's last output after the init exits) from returning. The writers are a
/// few `cat /dev/zero` started by the init, immune to the hang-up the init's exit
/// sends, faster together than the pty's reader.
#[test]
fn foreground_terminal_run_returns_while_an_orphan_keeps_writing() {
    let t = TestEnv::new();
    let shared = t.dir("shared");
    let mut b = t.bundle(&[
        "sh",
        "-c",
        "trap '' HUP; for i in 1 2 3 4; do cat /dev/zero & echo $! >> /shared/pid; done; sleep 0.5; exit 7",
    ]);
    b.bind(&shared, "/shared");
    b.edit(|c| {
        c["process"]["terminal"] = json!(true);
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "pid");
    });
    let pidfile = shared.join("pid");
    // The writers are host pids (no pid namespace): killed here whatever happens,
    // once each is known to still be one of the container's `cat /dev/zero`.
    let pf = pidfile.clone();
    t.on_drop(move || {
        let pids = std::fs::read_to_string(&pf).unwrap_or_default();
        for pid in pids.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if cmd == b"cat\0/dev/zero\0" {
                // SAFETY: sends a signal to a pid just checked to be a test writer.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    });
    let mut cmd = t
        .k()
        .command(&["run", "--bundle", b.dir.to_str().unwrap(), &b.id]);
    let err_p = t.dir("run-io").join("err");
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&err_p).unwrap());
    let began = std::time::Instant::now();
    let mut child = cmd.spawn().unwrap();
    // kraal's own terminal is slower than the writers (as a real one is): read
    // what it copies at a few hundred KB/s, until it exits.
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = [0u8; 4096];
        while matches!(out.read(&mut buf), Ok(n) if n > 0) {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    });
    let st = wait_timeout(&mut child, std::time::Duration::from_secs(30)).unwrap();
    if st.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    reader.join().unwrap();
    let err = std::fs::read_to_string(&err_p).unwrap_or_default();
    assert!(pidfile.exists(), "the writer never started: {err}");
    assert_eq!(
        st.and_then(|s| s.code()),
        Some(7),
        "run did not return with the init's exit code (took {:?}): {err}",
        began.elapsed()
    );
    t.assert_clean();
}

/// The race the detached-mount code closes (confirmed on 9f4dbed: a read-only bind
/// became read-write): after binding a volume onto its target's fd, the old code
/// looked the destination up again by name and set ro/nosuid/nodev on whatever the
/// name reached then. Whoever can write the parent volume (here a host thread)
/// swaps the mount-point directory with a symlink to "/" in a loop; the container
/// reports every mount of `secret/` it sees and tries to write into each. No write
/// may reach the host's `secret/`, and every such mount must be read-only.
#[test]
fn read_only_bind_flags_survive_a_mount_point_swap() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let t = TestEnv::new();
    let shared = t.dir("shared");
    let secret = t.dir("secret");
    std::fs::create_dir(shared.join("sec")).unwrap();
    symlink("/", shared.join("lnk")).unwrap();
    let mut b = t.bundle(&["/check.sh"]);
    std::fs::write(
        b.rootfs.join("check.sh"),
        "#!/bin/sh\n\
         while read id parent dev root mp opts rest; do\n\
           case \"$root\" in */secret) echo \"MNT $mp $opts\"\n\
             touch \"$mp/pwned\" 2>/dev/null && echo \"WROTE $mp\";; esac\n\
         done < /proc/self/mountinfo\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        b.rootfs.join("check.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    b.bind(&shared, "/data");
    b.push(
        "/mounts",
        json!({"destination": "/data/sec", "type": "bind", "source": secret,
               "options": ["bind", "ro", "nosuid", "nodev"]}),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicU64::new(0));
    let racer = {
        let (stop, swaps) = (stop.clone(), swaps.clone());
        let a = std::ffi::CString::new(shared.join("sec").into_os_string().into_encoded_bytes())
            .unwrap();
        let z = std::ffi::CString::new(shared.join("lnk").into_os_string().into_encoded_bytes())
            .unwrap();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // SAFETY: two NUL-terminated paths that outlive the call.
                let r = unsafe {
                    libc::renameat2(
                        libc::AT_FDCWD,
                        a.as_ptr(),
                        libc::AT_FDCWD,
                        z.as_ptr(),
                        libc::RENAME_EXCHANGE,
                    )
                };
                if r == 0 {
                    swaps.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(150);
    let (mut seen, mut ran, mut attempts) = (0, 0, 0);
    let mut failure = None;
    for i in 0..500 {
        if std::time::Instant::now() > deadline {
            break;
        }
        attempts = i + 1;
        b.id = t.new_id();
        b.edit(|c| {
            c["linux"]["cgroupsPath"] = json!(format!("{}/{}", t.cgroup_parent, i));
        });
        let o = t.run(&b);
        if o.success() {
            ran += 1;
        }
        let found_rw: Vec<&str> = o
            .stdout
            .lines()
            .filter(|l| {
                l.starts_with("MNT ") && !l.split(' ').nth(2).is_some_and(|f| f.starts_with("ro"))
            })
            .collect();
        seen += o.stdout.lines().filter(|l| l.starts_with("MNT ")).count();
        let leaked: Vec<_> = std::fs::read_dir(&secret).unwrap().flatten().collect();
        if !found_rw.is_empty() || !leaked.is_empty() {
            failure = Some(format!(
                "attempt {attempts}: secret/ holds {:?}; container saw:\n{}",
                leaked.iter().map(|e| e.file_name()).collect::<Vec<_>>(),
                o.stdout
            ));
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    racer.join().unwrap();
    let swaps = swaps.load(Ordering::Relaxed);
    eprintln!("{attempts} attempts, {ran} ran, {seen} mounts of secret/ seen, {swaps} swaps");
    assert!(failure.is_none(), "{}", failure.unwrap_or_default());
    assert!(swaps > 100, "the racer swapped only {swaps} times");
    assert!(
        ran > 0 && seen > 0,
        "no container ran and saw secret/ ({ran} ran, {seen} mounts seen in {attempts} attempts)"
    );
    t.assert_clean();
}
