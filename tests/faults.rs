//! Faults: kraal SIGKILLed at each stage of `create` (test-only failpoints), a state dir
//! lost under a running container (a host reboot of /run without one of the cgroups),
//! many parallel create/start/delete loops, and a state root on a full filesystem.
//! After each, the test checks that nothing is left: no state dir, mount, cgroup,
//! process in the container's cgroups, kraal process, or stray fd in the runtime.
//!
//! Built only with `--features failpoints` (contrib/faults.sh); a normal build has no
//! failpoints to fire, so the whole file is compiled out rather than skipped.

#![cfg(feature = "failpoints")]

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Pids of the processes whose cgroup (in any hierarchy) lies below `cgroup` (a
/// relative cgroup path such as the test's parent, or `<parent>/<id>`).
fn procs_in_cgroup(cgroup: &str) -> Vec<(i32, String)> {
    let needle = format!("/{cgroup}");
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cg) = fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
            continue;
        };
        let inside = cg.lines().any(|l| {
            let path = l.splitn(3, ':').nth(2).unwrap_or("");
            path.ends_with(&needle) || path.contains(&format!("{needle}/"))
        });
        if inside && pid_alive(pid.into()) {
            let cmd = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            out.push((pid, cmd.trim().to_string()));
        }
    }
    out
}

/// kraal processes (the binary under test) still running with this test's state root.
fn kraal_procs(t: &TestEnv) -> Vec<(i32, String)> {
    let root = t.k().root.to_string_lossy().into_owned();
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmd = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.contains(&root) && pid_alive(pid.into()) {
            out.push((pid, args.join(" ")));
        }
    }
    out
}

/// Everything the issue lists as a leak: state, mounts and cgroups (`assert_clean`),
/// processes in the test's cgroups and kraal processes. An exiting process may take a
/// moment to go from /proc, so the process checks wait a little.
#[track_caller]
fn assert_no_leaks(t: &TestEnv, what: &str) {
    t.assert_clean();
    let procs = wait_for(Duration::from_secs(3), || {
        let p = procs_in_cgroup(&t.cgroup_parent);
        p.is_empty().then_some(())
    });
    assert!(
        procs.is_some(),
        "{what}: processes left in the container cgroups: {:?}",
        procs_in_cgroup(&t.cgroup_parent)
    );
    let kraal = wait_for(Duration::from_secs(3), || {
        kraal_procs(t).is_empty().then_some(())
    });
    assert!(
        kraal.is_some(),
        "{what}: kraal processes left: {:?}",
        kraal_procs(t)
    );
}

// ---------------------------------------------------------------------------
// SIGKILL at each stage of create
// ---------------------------------------------------------------------------

/// `create` dies by SIGKILL at `stage`; `delete --force` must then remove everything
/// the dead create had made: its state dir, cgroups, init process and mounts.
fn killed_at(stage: &str) {
    assert!(kraal::failpoint::CREATE_STAGES.contains(&stage), "{stage}");
    let t = TestEnv::new();
    let mut b = t.bundle(&["sleep", "100"]);
    let mut c = t
        .k()
        .command(&["create", "--bundle", b.dir.to_str().unwrap(), &b.id]);
    c.env(kraal::failpoint::ENV, stage);
    let o = t.k().exec(c);
    assert_eq!(
        signal_of(&o.status),
        Some(libc::SIGKILL),
        "create should die at failpoint {stage}: {o:?}"
    );
    assert!(
        t.k().root.join(&b.id).is_dir(),
        "{stage}: the state dir was made before the failpoint"
    );
    t.k().run(&["delete", "--force", &b.id]).ok();
    assert!(!t.k().root.join(&b.id).exists());
    t.k()
        .run(&["state", &b.id])
        .fails()
        .stderr_has("does not exist");
    assert_no_leaks(&t, &format!("killed {stage}, then delete --force"));
    // The id is free again, and a normal container under it works.
    b.set_args(&["true"]);
    assert_eq!(t.run(&b).ok().code(), Some(0));
    assert_no_leaks(&t, &format!("after {stage}: a new run of the same id"));
}

#[test]
fn killed_after_state_dir() {
    killed_at("after-state-dir");
}

#[test]
fn killed_after_cgroups() {
    killed_at("after-cgroups");
}

#[test]
fn killed_after_clone() {
    killed_at("after-clone");
}

#[test]
fn killed_after_go() {
    killed_at("after-go");
}

#[test]
fn killed_after_ready() {
    killed_at("after-ready");
}

#[test]
fn killed_after_state_json() {
    killed_at("after-state-json");
}

#[test]
fn every_create_stage_has_a_test() {
    let src = include_str!("faults.rs");
    for stage in kraal::failpoint::CREATE_STAGES {
        let name = format!("fn killed_{}()", stage.replace('-', "_"));
        assert!(src.contains(&name), "no test {name}");
    }
}

// ---------------------------------------------------------------------------
// A lost state dir
// ---------------------------------------------------------------------------

/// The container's cgroup directories, from its saved state.
fn cgroup_dirs(t: &TestEnv, id: &str) -> Vec<PathBuf> {
    let data = fs::read(t.k().root.join(id).join("state.json")).expect("read state.json");
    let v: serde_json::Value = serde_json::from_slice(&data).expect("parse state.json");
    v["cgroup_dirs"]
        .as_array()
        .expect("cgroup_dirs in state.json")
        .iter()
        .map(|d| PathBuf::from(d.as_str().expect("a path")))
        .collect()
}

/// The recovery for a container whose state is gone (see contrib/faults.sh): kill every
/// process listed in its cgroups, then remove the cgroup directories. Returns errors.
fn remove_orphan_cgroup(dirs: &[PathBuf]) -> Vec<String> {
    let mut errs = Vec::new();
    for d in dirs {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let procs = fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                // SAFETY: kill(2) of a pid listed in this test's own container cgroup.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            match fs::remove_dir(d) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) if Instant::now() >= deadline => {
                    errs.push(format!("rmdir {}: {e}", d.display()));
                    break;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
    errs
}

/// The state dir of a running container is lost (as after a reboot that kept the
/// cgroups, or an `rm -rf` of the state root). kraal must not crash; `delete --force`
/// of the now unknown id succeeds quietly as in runc; a new `create` of the id must not
/// adopt the old container's cgroup (runc: "container's cgroup is not empty"); and the
/// leftover is removed by the documented recovery (kill what cgroup.procs lists, rmdir).
#[test]
fn lost_state_dir() {
    let t = TestEnv::new();
    let b = t.bundle(&["sleep", "100"]);
    t.create_start(&b);
    let pid = t.k().pid(&b.id);
    let dirs = cgroup_dirs(&t, &b.id);
    assert!(!dirs.is_empty());
    fs::remove_dir_all(t.k().root.join(&b.id)).unwrap();

    let d = t.k().run(&["delete", "--force", &b.id]);
    assert_eq!(d.code(), Some(0), "delete --force of a lost id: {d:?}");
    let s = t.k().run(&["state", &b.id]);
    s.fails().stderr_has("does not exist");
    let l = t.k().run(&["list", "--format", "json"]);
    l.ok();
    assert!(!l.stdout.contains(&b.id), "{}", l.stdout);
    // kraal has lost track of it: the container still runs, in its cgroup.
    assert!(pid_alive(pid), "the container died with its state dir");
    let cg = format!("{}/{}", t.cgroup_parent, b.id);
    assert!(procs_in_cgroup(&cg)
        .iter()
        .any(|(p, _)| i64::from(*p) == pid));

    // A rerun must not join the orphan's cgroup.
    let r = t
        .k()
        .run(&["create", "--bundle", b.dir.to_str().unwrap(), &b.id]);
    let shared = r.success();
    if shared {
        t.k().run(&["delete", "--force", &b.id]).ok();
    }
    assert!(
        r.code().is_some(),
        "create over a lost container crashed: {r:?}"
    );
    assert!(pid_alive(pid) || shared);

    let errs = remove_orphan_cgroup(&dirs);
    assert!(errs.is_empty(), "recovery failed: {errs:?}");
    assert!(
        wait_for(WAIT_TIMEOUT, || (!pid_alive(pid)).then_some(())).is_some(),
        "the lost container survived its cgroup's removal"
    );
    assert_no_leaks(&t, "lost state dir, after recovery");
    assert!(
        !shared,
        "create of a lost container's id joined its non-empty cgroup: {r:?}"
    );
    r.stderr_has("not empty");
}

// ---------------------------------------------------------------------------
// Parallel loops
// ---------------------------------------------------------------------------

/// 50 threads each loop create, start, delete --force on their own bundle for about a
/// minute in total; every command must succeed, and nothing may be left.
#[test]
fn parallel_create_start_delete_loops() {
    const THREADS: usize = 50;
    const RUN_FOR: Duration = Duration::from_secs(60);
    let t = Arc::new(TestEnv::new());
    let first = t.bundle(&["sleep", "100"]);
    // One rootfs for all (read by each container through its own mount namespace).
    let rootfs = first.rootfs.clone();
    let bundles: Vec<(PathBuf, String)> = (0..THREADS)
        .map(|i| {
            let dir = t.dir(&format!("loop-bundle-{i}"));
            let mut config = first.config.clone();
            config["root"]["path"] = serde_json::json!(rootfs);
            config["linux"]["cgroupsPath"] =
                serde_json::json!(format!("{}/loop-{i}", t.cgroup_parent));
            fs::write(
                dir.join("config.json"),
                serde_json::to_vec(&config).unwrap(),
            )
            .unwrap();
            (dir, format!("loop-{}-{}-{i}", std::process::id(), t.n))
        })
        .collect();
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let workers: Vec<_> = bundles
        .into_iter()
        .map(|(dir, prefix)| {
            let t = Arc::clone(&t);
            let done = Arc::clone(&done);
            std::thread::spawn(move || -> Result<(), String> {
                let mut n = 0;
                while start.elapsed() < RUN_FOR {
                    let id = format!("{prefix}-{n}");
                    let steps: [&[&str]; 3] = [
                        &["create", "--bundle", dir.to_str().unwrap(), &id],
                        &["start", &id],
                        &["delete", "--force", &id],
                    ];
                    for args in steps {
                        let o = try_run(&mut t.k().command(args), CMD_TIMEOUT, &dir.join("io"))?;
                        if !o.success() {
                            // Leave nothing running for the others to trip over.
                            let _ = try_run(
                                &mut t.k().command(&["delete", "--force", &id]),
                                CMD_TIMEOUT,
                                &dir.join("io"),
                            );
                            return Err(format!("{args:?}: {:?}: {}", o.status, o.stderr));
                        }
                    }
                    // The io files of finished commands are not needed.
                    let _ = fs::remove_dir_all(dir.join("io"));
                    n += 1;
                    done.fetch_add(1, Ordering::SeqCst);
                }
                Ok(())
            })
        })
        .collect();
    let mut errs = Vec::new();
    for w in workers {
        match w.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errs.push(e),
            Err(_) => errs.push("a loop thread panicked".to_string()),
        }
    }
    let loops = done.load(Ordering::SeqCst);
    eprintln!(
        "{loops} create/start/delete loops in {:?} with {THREADS} threads",
        start.elapsed()
    );
    assert!(errs.is_empty(), "{} loops failed: {errs:#?}", errs.len());
    assert!(loops >= THREADS as u64, "only {loops} loops finished");
    assert!(
        start.elapsed() < RUN_FOR + CMD_TIMEOUT * 3,
        "the loops overran"
    );
    assert_no_leaks(&t, "after the parallel loops");
}

// ---------------------------------------------------------------------------
// A full state root
// ---------------------------------------------------------------------------

/// A tmpfs of `options` on `target` (source named for the leak check), unmounted by
/// TestEnv's Drop if the test fails before it does.
fn mount_small_tmpfs(target: &Path, options: &str) {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    fs::create_dir_all(target).unwrap();
    let tgt = CString::new(target.as_os_str().as_bytes()).unwrap();
    let opts = CString::new(options).unwrap();
    // SAFETY: mount(2) with valid C strings.
    let r = unsafe {
        libc::mount(
            c"kraal-test-tiny".as_ptr(),
            tgt.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            opts.as_ptr().cast(),
        )
    };
    assert_eq!(r, 0, "mount tmpfs: {}", std::io::Error::last_os_error());
}

/// Fills a filesystem: data blocks with one file, and then inodes with empty files.
fn fill(dir: &Path, inodes_too: bool) {
    use std::io::Write;
    let mut f = fs::File::create(dir.join("filler")).unwrap();
    let block = vec![0u8; 4096];
    loop {
        match f.write(&block) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("fill {}: {e}", dir.display()),
        }
    }
    if inodes_too {
        for i in 0.. {
            match fs::File::create(dir.join(format!("f{i}"))) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("fill {}: {e}", dir.display()),
            }
        }
    }
}

/// The state root on a full 64k tmpfs: out of space (the container is fully set up when
/// state.json cannot be written) and out of inodes (the state dir cannot be made).
/// `create` fails naming the path, and nothing is left, on the tmpfs or elsewhere.
#[test]
fn full_state_root() {
    let t = TestEnv::new();
    let b = t.bundle(&["sleep", "100"]);
    for (case, options, inodes, needle) in [
        (
            "no space",
            "size=64k,mode=700",
            false,
            "No space left on device",
        ),
        (
            "no inodes",
            "size=64k,nr_inodes=16,mode=700",
            true,
            "No space left on device",
        ),
    ] {
        let mnt = t.tmp.join(format!("tiny-{}", case.replace(' ', "-")));
        mount_small_tmpfs(&mnt, options);
        let root = mnt.join("root");
        fs::create_dir(&root).unwrap();
        fill(&mnt, inodes);
        let o = run_timeout(
            Command::new(kraal_bin()).arg("--root").arg(&root).args([
                "create",
                "--bundle",
                b.dir.to_str().unwrap(),
                &b.id,
            ]),
            CMD_TIMEOUT,
            &t.tmp.join("io"),
        );
        assert_eq!(o.code(), Some(1), "{case}: {o:?}");
        o.stderr_has(needle)
            .stderr_has(&root.join(&b.id).to_string_lossy());
        let left: Vec<_> = fs::read_dir(&root).unwrap().flatten().collect();
        assert!(left.is_empty(), "{case}: {left:?} left in the state root");
        umount(&mnt).unwrap();
        fs::remove_dir(&mnt).unwrap();
        assert_no_leaks(&t, case);
    }
}

// ---------------------------------------------------------------------------
// fds in the runtime
// ---------------------------------------------------------------------------

/// The fds every child of this test process inherits: the ones it was itself given
/// without close-on-exec (a test harness may pass some down).
fn inherited_fds() -> Vec<String> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(fd) = name.parse::<i32>() else {
            continue;
        };
        // SAFETY: F_GETFD only reads the descriptor's flags.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
            out.push(name);
        }
    }
    out
}

/// A foreground `kraal run` holds no fd beyond its stdio (and what it inherited) while it
/// waits for the container: no state dir lock, sync socket, fifo, pidfd or cgroup file.
#[test]
fn run_holds_no_stray_fds() {
    let t = TestEnv::new();
    let b = t.bundle(&["sleep", "100"]);
    let mut c = t
        .k()
        .command(&["run", "--bundle", b.dir.to_str().unwrap(), &b.id]);
    let io = t.dir("run-io");
    c.stdin(std::process::Stdio::null())
        .stdout(fs::File::create(io.join("out")).unwrap())
        .stderr(fs::File::create(io.join("err")).unwrap());
    let mut child = c.spawn().unwrap();
    let kraal_pid = child.id();
    let running = wait_for(WAIT_TIMEOUT, || {
        t.k()
            .state(&b.id)
            .filter(|s| s["status"] == "running")
            .map(|s| s["pid"].as_i64().unwrap_or(-1))
    });
    let fds: Vec<(String, String)> = fs::read_dir(format!("/proc/{kraal_pid}/fd"))
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    let target = fs::read_link(e.path()).unwrap_or_default();
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        target.display().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    t.k().run(&["kill", &b.id, "KILL"]).ok();
    let st = wait_timeout(&mut child, CMD_TIMEOUT).unwrap();
    if st.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let init = running.expect("the container did not start");
    assert!(init > 0);
    let mut names: Vec<String> = fds.iter().map(|(n, _)| n.clone()).collect();
    names.sort();
    let mut expected = inherited_fds();
    expected.extend(["0", "1", "2"].map(String::from));
    expected.sort();
    expected.dedup();
    assert_eq!(names, expected, "kraal run holds {fds:?}");
    assert_eq!(st.and_then(|s| s.code()), Some(137), "run's exit: {st:?}");
    assert_no_leaks(&t, "kraal run killed");
}
