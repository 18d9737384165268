//! The container's filesystem view: its root, hostname, host mounts kept out, masked
//! and read-only paths, root.readonly, --no-pivot, and bundles from contrib/mkbundle.sh.

mod common;

use common::*;
use serde_json::{json, Value};
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

/// The UTS namespace gets config.json's hostname; the host's stays as it was.
#[test]
fn hostname_comes_from_config() {
    let t = TestEnv::new();
    let host_before = fs::read_to_string("/proc/sys/kernel/hostname").expect("host hostname");
    let name = format!("kraal-h-{}", t.n);
    let mut b = t.bundle(&["sh", "-c", "hostname; cat /proc/sys/kernel/hostname"]);
    b.edit(|c| c["hostname"] = json!(name));
    let o = t.run(&b);
    o.ok();
    assert_eq!(o.stdout, format!("{name}\n{name}\n"));
    let host_after = fs::read_to_string("/proc/sys/kernel/hostname").expect("host hostname");
    assert_eq!(host_before, host_after, "the host's hostname changed");
    t.assert_clean_strict();
}

/// The container sees its rootfs as / and none of the host's mounts: a tmpfs mounted
/// on the host (with a recognisable source) is absent from its mountinfo.
#[test]
fn host_mounts_are_invisible_inside() {
    let t = TestEnv::new();
    let marker = format!("kraal-hostonly-{}-{}", std::process::id(), t.n);
    let host_mnt = t.tmp.join("hostmnt");
    mount_tmpfs(&marker, &host_mnt);
    fs::write(host_mnt.join("file"), b"x").expect("write into host tmpfs");
    assert!(
        fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .contains(&marker),
        "the host mount is not visible on the host"
    );

    let b = t.bundle(&[
        "sh",
        "-c",
        "cat /proc/self/mountinfo; echo ===; cat /rootfs-marker; ls /",
    ]);
    fs::write(b.rootfs.join("rootfs-marker"), format!("marker-{}\n", t.n)).unwrap();
    b.save();
    let o = t.run(&b);
    o.ok();
    let (mi, rest) = o.stdout.split_once("===\n").expect("separator");
    assert!(!mi.contains(&marker), "host mount visible inside:\n{mi}");
    // Mount points (field 5) are the container's; the host path may only appear as the
    // root (field 4) of the rootfs bind mount itself.
    let tmp = t.tmp.to_string_lossy();
    assert!(
        !mi.lines().any(
            |l| l.split(' ').nth(4).is_some_and(|p| p.contains(&*tmp)) || l.contains("hostmnt")
        ),
        "a host mount point is visible inside:\n{mi}"
    );
    // Not vacuous: the container's own mounts are listed.
    assert!(
        mi.lines().any(|l| l.split(' ').nth(4) == Some("/proc")),
        "no /proc in the container's mountinfo:\n{mi}"
    );
    assert!(
        mi.lines().any(|l| l.split(' ').nth(4) == Some("/")),
        "no / in the container's mountinfo:\n{mi}"
    );
    let mut rest = rest.lines();
    assert_eq!(rest.next(), Some(format!("marker-{}", t.n).as_str()));
    let root_entries: Vec<&str> = rest.collect();
    assert!(root_entries.contains(&"bin"), "{root_entries:?}");
    assert!(
        !root_entries.contains(&"work") && !root_entries.contains(&"usr"),
        "the host's / leaks into the container: {root_entries:?}"
    );

    umount(&host_mnt).expect("umount host tmpfs");
    t.assert_clean_strict();
}

/// maskedPaths: files read empty (/dev/null over them), directories are an empty
/// read-only tmpfs; /proc/timer_list from the default config is masked too (this
/// kernel has no /proc/kcore).
#[test]
fn masked_paths_hide_files_and_directories() {
    let t = TestEnv::new();
    let mut b = t.bundle(&[
        "sh",
        "-c",
        "test -e /proc/timer_list && echo timer-list-exists; \
         echo timer-list=$(cat /proc/timer_list | wc -c); \
         test -e /masked-file && echo file-exists; \
         echo file=$(cat /masked-file | wc -c); \
         test -d /masked-dir && echo dir-exists; \
         echo dir=$(ls -A /masked-dir | wc -l); \
         echo dirfs=$(stat -f -c %T /masked-dir); \
         touch /masked-dir/new 2>/dev/null && echo dir-writable || echo dir-readonly; \
         echo visible=$(cat /visible-file)",
    ]);
    fs::create_dir(b.rootfs.join("masked-dir")).unwrap();
    fs::write(b.rootfs.join("masked-dir/secret"), b"s3cret").unwrap();
    fs::write(b.rootfs.join("masked-file"), b"s3cret").unwrap();
    fs::write(b.rootfs.join("visible-file"), b"s3cret").unwrap();
    b.edit(|c| {
        let m = c["linux"]["maskedPaths"]
            .as_array_mut()
            .expect("maskedPaths");
        assert!(
            m.contains(&json!("/proc/timer_list")),
            "default config masks it"
        );
        m.push(json!("/masked-file"));
        m.push(json!("/masked-dir"));
    });
    // Not vacuous: the host's timer_list has content.
    assert!(!fs::read("/proc/timer_list").unwrap().is_empty());
    let o = t.run(&b);
    o.ok();
    assert_eq!(
        o.stdout_lines(),
        [
            "timer-list-exists",
            "timer-list=0",
            "file-exists",
            "file=0",
            "dir-exists",
            "dir=0",
            "dirfs=tmpfs",
            "dir-readonly",
            "visible=s3cret",
        ],
        "{o:?}"
    );
    // The rootfs itself is untouched.
    assert_eq!(fs::read(b.rootfs.join("masked-file")).unwrap(), b"s3cret");
    t.assert_clean_strict();
}

/// readonlyPaths: writes fail with EROFS there (and only there). Control: without the
/// entry, the same write to /proc/sys succeeds.
#[test]
fn readonly_paths_refuse_writes() {
    let t = TestEnv::new();
    let script = "echo kraal-ro-test > /proc/sys/kernel/hostname && echo procsys-written; \
                  touch /ro-dir/x && echo ro-dir-written; \
                  touch /rw-dir/x && echo rw-dir-written; \
                  hostname";
    let mut b = t.bundle(&["sh", "-c", script]);
    fs::create_dir(b.rootfs.join("ro-dir")).unwrap();
    fs::create_dir(b.rootfs.join("rw-dir")).unwrap();
    b.edit(|c| {
        let r = c["linux"]["readonlyPaths"]
            .as_array_mut()
            .expect("readonlyPaths");
        assert!(r.contains(&json!("/proc/sys")));
        r.push(json!("/ro-dir"));
        c["hostname"] = json!("before");
    });
    let o = t.run(&b);
    o.ok();
    assert_eq!(o.stdout_lines(), ["rw-dir-written", "before"], "{o:?}");
    let erofs = o.stderr.matches("Read-only file system").count();
    assert_eq!(erofs, 2, "both writes should fail with EROFS: {o:?}");
    assert!(!b.rootfs.join("ro-dir/x").exists());
    assert!(b.rootfs.join("rw-dir/x").exists());

    // Control: /proc/sys writable when not listed (root in its own UTS namespace).
    let mut b2 = t.bundle(&["sh", "-c", script]);
    fs::create_dir(b2.rootfs.join("ro-dir")).unwrap();
    fs::create_dir(b2.rootfs.join("rw-dir")).unwrap();
    b2.edit(|c| {
        c["linux"]["readonlyPaths"] = json!([]);
        c["hostname"] = json!("before");
    });
    let o = t.run(&b2);
    o.ok();
    assert_eq!(
        o.stdout_lines(),
        [
            "procsys-written",
            "ro-dir-written",
            "rw-dir-written",
            "kraal-ro-test"
        ],
        "{o:?}"
    );
    t.assert_clean_strict();
}

/// root.readonly true: / refuses writes with EROFS; false: writes land in the rootfs.
#[test]
fn root_readonly_controls_writes_to_root() {
    let t = TestEnv::new();
    let script = "touch /x && echo root-written; touch /dev/shm/y && echo shm-written";
    let mut ro = t.bundle(&["sh", "-c", script]);
    ro.edit(|c| c["root"]["readonly"] = json!(true));
    let o = t.run(&ro);
    o.ok();
    assert_eq!(o.stdout_lines(), ["shm-written"], "{o:?}");
    assert!(o.stderr.contains("Read-only file system"), "{o:?}");
    assert!(!ro.rootfs.join("x").exists());

    let mut rw = t.bundle(&["sh", "-c", script]);
    rw.edit(|c| c["root"]["readonly"] = json!(false));
    let o = t.run(&rw);
    o.ok();
    assert_eq!(o.stdout_lines(), ["root-written", "shm-written"], "{o:?}");
    assert!(
        rw.rootfs.join("x").exists(),
        "write did not reach the rootfs"
    );
    t.assert_clean_strict();
}

/// --no-pivot (MS_MOVE + chroot) still gives the rootfs as / and hides the host.
#[test]
fn no_pivot_still_roots_the_container() {
    let t = TestEnv::new();
    let b = t.bundle(&[
        "sh",
        "-c",
        "cat /rootfs-marker; test -e /work || echo no-host-root",
    ]);
    fs::write(b.rootfs.join("rootfs-marker"), b"nopivot\n").unwrap();
    let o = t.kraal.run(&[
        "run",
        "--no-pivot",
        "--bundle",
        b.dir.to_str().unwrap(),
        &b.id,
    ]);
    o.ok();
    assert_eq!(o.stdout_lines(), ["nopivot", "no-host-root"], "{o:?}");
    t.assert_clean_strict();
}

/// contrib/mkbundle.sh makes a complete bundle that kraal runs, and refuses bad usage.
#[test]
fn mkbundle_script_makes_a_runnable_bundle() {
    let t = TestEnv::new();
    let script = crate_dir().join("contrib/mkbundle.sh");
    let dir = t.tmp.join("mk");
    let io = t.tmp.join("io");
    let mut c = Command::new(&script);
    c.env("KRAAL", kraal_bin()).arg(&dir).args([
        "--",
        "sh",
        "-c",
        "echo hello from $0; id kraaluser; cat /proc/self/status | grep ^Uid",
    ]);
    run_timeout(&mut c, CMD_TIMEOUT, &io).ok();

    let rootfs = dir.join("rootfs");
    for d in ["proc", "sys", "dev", "tmp", "etc", "bin"] {
        assert!(rootfs.join(d).is_dir(), "rootfs/{d} missing");
    }
    let applets = applets();
    assert!(applets.len() > 100);
    for a in applets {
        let l =
            fs::read_link(rootfs.join("bin").join(a)).unwrap_or_else(|e| panic!("applet {a}: {e}"));
        assert_eq!(l.to_str(), Some("busybox"), "applet {a}");
    }
    assert!(fs::symlink_metadata(rootfs.join("bin/busybox"))
        .unwrap()
        .file_type()
        .is_file());
    let passwd = fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert!(passwd.lines().any(|l| l.starts_with("root:x:0:0:")));
    assert!(passwd
        .lines()
        .any(|l| l.starts_with("kraaluser:x:1000:1000:")));
    let group = fs::read_to_string(rootfs.join("etc/group")).unwrap();
    assert!(group.lines().any(|l| l.starts_with("root:x:0:")));
    assert!(group.lines().any(|l| l.starts_with("kraaluser:x:1000:")));
    assert!(group.lines().any(|l| l.starts_with("extra:x:2000:")));

    let mut cfg: Value =
        serde_json::from_slice(&fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["process"]["terminal"], json!(false));
    assert_eq!(
        cfg["process"]["args"],
        json!([
            "sh",
            "-c",
            "echo hello from $0; id kraaluser; cat /proc/self/status | grep ^Uid"
        ])
    );
    // Everything else is `kraal spec`'s default.
    assert_eq!(cfg["root"]["readonly"], json!(true));
    assert_eq!(cfg["hostname"], json!("kraal"));

    let id = t.new_id();
    cfg["linux"]["cgroupsPath"] = json!(format!("{}/{id}", t.cgroup_parent));
    fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    let o = t
        .kraal
        .run(&["run", "--bundle", dir.to_str().unwrap(), &id]);
    o.ok();
    assert_eq!(
        o.stdout_lines()[..2],
        [
            "hello from sh",
            "uid=1000(kraaluser) gid=1000(kraaluser) groups=1000(kraaluser),2000(extra)"
        ],
        "{o:?}"
    );

    // Default args are `sh`.
    let dir2 = t.tmp.join("mk2");
    let mut c = Command::new(&script);
    c.env("KRAAL", kraal_bin()).arg(&dir2);
    run_timeout(&mut c, CMD_TIMEOUT, &io).ok();
    let cfg2: Value = serde_json::from_slice(&fs::read(dir2.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg2["process"]["args"], json!(["sh"]));

    // Usage errors: no DIR; a bundle that already exists (left intact).
    let o = run_timeout(&mut Command::new(&script), CMD_TIMEOUT, &io);
    o.fails().stderr_has("usage");
    let mut c = Command::new(&script);
    c.env("KRAAL", kraal_bin()).arg(&dir);
    run_timeout(&mut c, CMD_TIMEOUT, &io)
        .fails()
        .stderr_has("already exists");
    assert!(dir.join("config.json").exists() && rootfs.join("bin/busybox").exists());
    t.assert_clean_strict();
}

/// `tmpcopyup`: the tmpfs over /etc starts with the image's /etc (files, modes,
/// symlinks), and writes to it do not reach the image.
#[test]
fn tmpfs_tmpcopyup_copies_the_directory() {
    let t = TestEnv::new();
    let mut b = t.bundle(&["sh", "-c", "grep -c kraaluser /etc/passwd; ls -l /etc/link | cut -d'>' -f2; stat -c %a /etc/sub; echo new > /etc/new-file; grep ' /etc ' /proc/self/mountinfo | cut -d' ' -f9"]);
    std::fs::create_dir_all(b.rootfs.join("etc/sub")).unwrap();
    std::fs::set_permissions(
        b.rootfs.join("etc/sub"),
        std::os::unix::fs::PermissionsExt::from_mode(0o710),
    )
    .unwrap();
    std::os::unix::fs::symlink("passwd", b.rootfs.join("etc/link")).unwrap();
    b.edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(serde_json::json!({
            "destination": "/etc", "type": "tmpfs", "source": "tmpfs",
            "options": ["rw", "nosuid", "nodev", "tmpcopyup", "size=1m"],
        }));
    });
    let o = t.run(&b);
    o.ok();
    assert_eq!(o.stdout_lines(), ["1", " passwd", "710", "tmpfs"]);
    assert!(
        !b.rootfs.join("etc/new-file").exists(),
        "the write stayed in the tmpfs"
    );
    t.assert_clean_strict();
}

// ---------------------------------------------------------------------------
// rootfsPropagation, /dev, --no-pivot, mounts, absolute root.path
// ---------------------------------------------------------------------------

/// Binds `dir` onto itself on the host and makes that mount shared, as a bundle under
/// systemd's shared `/` would sit. TestEnv's Drop unmounts it (on failure too): `dir`
/// must be the test's temp dir or below it.
fn bind_self_shared(dir: &Path) {
    let c = CString::new(dir.as_os_str().as_bytes()).unwrap();
    // SAFETY: plain mount(2) calls with valid C strings.
    let r = unsafe {
        libc::mount(
            c.as_ptr(),
            c.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    };
    assert_eq!(r, 0, "bind {dir:?}: {}", std::io::Error::last_os_error());
    let r = unsafe {
        libc::mount(
            std::ptr::null(),
            c.as_ptr(),
            std::ptr::null(),
            libc::MS_SHARED,
            std::ptr::null(),
        )
    };
    assert_eq!(
        r,
        0,
        "make {dir:?} shared: {}",
        std::io::Error::last_os_error()
    );
    let mi = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = mi
        .lines()
        .rfind(|l| l.split(' ').nth(4) == dir.to_str())
        .unwrap_or_else(|| panic!("{dir:?} not in mountinfo"));
    assert!(line.contains(" shared:"), "{dir:?} is not shared: {line}");
}

/// Mount points (field 5) of a mountinfo text, with the optional fields and the
/// filesystem type: (mount point, per-mount options, optional fields, fs type).
fn mountinfo_entries(mi: &str) -> Vec<(String, String, String, String)> {
    mi.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let f: Vec<&str> = pre.split(' ').collect();
            if f.len() < 6 {
                return None;
            }
            Some((
                f[4].to_string(),
                f[5].to_string(),
                f[6..].join(" "),
                post.split(' ').next()?.to_string(),
            ))
        })
        .collect()
}

/// rootfsPropagation (runtime-spec config-linux.md), with the bundle on a shared host
/// mount: a host mount made under the rootfs after start reaches the container only
/// with a slave root. By default (unset: runc's private root), with private, and with
/// shared (a new peer group, "not shared with the host") it does not. A mount made
/// inside the container never appears on the host.
#[test]
fn root_propagation_default_and_explicit() {
    let t = TestEnv::new();
    let k = t.k();
    bind_self_shared(&t.tmp);
    let cases: [(Option<&str>, bool); 6] = [
        (None, false),
        (Some("rslave"), true),
        (Some("slave"), true),
        (Some("rprivate"), false),
        (Some("rshared"), false),
        (Some("shared"), false),
    ];
    for (i, (prop, late_visible)) in cases.into_iter().enumerate() {
        let tag = format!("{}-{}-{i}", std::process::id(), t.n);
        let inside = format!("kraal-inside-{tag}");
        let late = format!("kraal-late-{tag}");
        let mut b = t.bundle(&[
            "sh",
            "-c",
            &format!("mount -t tmpfs {inside} /mnt/inside && touch /ready; exec sleep 1000"),
        ]);
        fs::create_dir_all(b.rootfs.join("mnt/inside")).unwrap();
        fs::create_dir_all(b.rootfs.join("mnt/late")).unwrap();
        b.edit(|c| {
            for set in ["bounding", "effective", "permitted"] {
                c["process"]["capabilities"][set]
                    .as_array_mut()
                    .expect("capability set")
                    .push(json!("CAP_SYS_ADMIN"));
            }
            match prop {
                Some(p) => c["linux"]["rootfsPropagation"] = json!(p),
                None => {
                    c["linux"]
                        .as_object_mut()
                        .unwrap()
                        .remove("rootfsPropagation");
                }
            }
        });
        t.create_start(&b);
        wait_file(&b.rootfs.join("ready"));
        let late_at = b.rootfs.join("mnt/late");
        mount_tmpfs(&late, &late_at);
        let o = k.run(&["exec", &b.id, "cat", "/proc/self/mountinfo"]);
        o.ok();
        let mi = &o.stdout;
        // Not vacuous: the container's own mount is listed.
        assert!(mi.contains(&inside), "{prop:?}: no inside mount:\n{mi}");
        assert_eq!(
            mi.contains(&late),
            late_visible,
            "{prop:?}: host mount made after start visible inside: {}\n{mi}",
            mi.contains(&late)
        );
        let host = fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !host.contains(&inside),
            "{prop:?}: a mount made in the container reached the host:\n{host}"
        );
        k.run(&["delete", "--force", &b.id]).ok();
        umount(&late_at).expect("umount the host's late mount");
    }
    umount(&t.tmp).expect("umount the shared bind of the temp dir");
    t.assert_clean_strict();
}

/// /dev as runc sets it up: the six character devices (numbers, mode 0666, root's),
/// the fd/stdio links, ptmx pointing at the container's own devpts, and the devpts,
/// shm and mqueue mounts; nothing else. With /dev bind-mounted from the bundle kraal
/// adds nothing to it but linux.devices.
#[test]
fn dev_is_set_up_as_runc_does() {
    let t = TestEnv::new();
    let script = "stat -c '%n %F %t:%T %a %u:%g' /dev/null /dev/zero /dev/full /dev/random \
                  /dev/urandom /dev/tty /dev/pts/ptmx; echo ===; \
                  for l in ptmx fd stdin stdout stderr core; do \
                  test -L /dev/$l && echo \"$l -> $(readlink /dev/$l)\"; done; echo ===; \
                  ls -A1 /dev; echo ===; cat /proc/self/mountinfo";
    let b = t.bundle(&["sh", "-c", script]);
    let o = t.run(&b);
    o.ok();
    let parts: Vec<&str> = o.stdout.split("===\n").collect();
    assert_eq!(parts.len(), 4, "{o:?}");
    let cdev = "character special file";
    assert_eq!(
        parts[0].lines().collect::<Vec<_>>(),
        [
            format!("/dev/null {cdev} 1:3 666 0:0"),
            format!("/dev/zero {cdev} 1:5 666 0:0"),
            format!("/dev/full {cdev} 1:7 666 0:0"),
            format!("/dev/random {cdev} 1:8 666 0:0"),
            format!("/dev/urandom {cdev} 1:9 666 0:0"),
            format!("/dev/tty {cdev} 5:0 666 0:0"),
            // ptmxmode=0666 of the default devpts mount.
            format!("/dev/pts/ptmx {cdev} 5:2 666 0:0"),
        ],
        "{o:?}"
    );
    let kcore = Path::new("/proc/kcore").exists();
    let mut links = vec![
        "ptmx -> pts/ptmx",
        "fd -> /proc/self/fd",
        "stdin -> /proc/self/fd/0",
        "stdout -> /proc/self/fd/1",
        "stderr -> /proc/self/fd/2",
    ];
    if kcore {
        links.push("core -> /proc/kcore");
    }
    assert_eq!(parts[1].lines().collect::<Vec<_>>(), links, "{o:?}");
    let mut want = vec![
        "fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin",
        "stdout", "tty", "urandom", "zero",
    ];
    if kcore {
        want.push("core");
    }
    want.sort();
    let mut got: Vec<&str> = parts[2].lines().collect();
    got.sort();
    assert_eq!(got, want, "{o:?}");
    let mi = mountinfo_entries(parts[3]);
    let fstype = |mp: &str| {
        mi.iter()
            .rev()
            .find(|e| e.0 == mp)
            .map(|e| (e.3.clone(), e.1.clone()))
            .unwrap_or_else(|| panic!("{mp} not mounted: {mi:?}"))
    };
    for (mp, ty, opts) in [
        ("/dev", "tmpfs", &["nosuid"][..]),
        ("/dev/pts", "devpts", &["nosuid", "noexec"][..]),
        ("/dev/shm", "tmpfs", &["nosuid", "nodev", "noexec"][..]),
        ("/dev/mqueue", "mqueue", &["nosuid", "nodev", "noexec"][..]),
    ] {
        let (got_ty, got_opts) = fstype(mp);
        assert_eq!(got_ty, ty, "{mp}: {mi:?}");
        for opt in opts {
            assert!(
                got_opts.split(',').any(|x| x == *opt),
                "{mp} lacks {opt}: {got_opts}"
            );
        }
    }

    // /dev bound from the host: only linux.devices is added (here /dev/null, which
    // maskedPaths need); no default nodes, links or ptmx.
    let devsrc = t.dir("devsrc");
    fs::write(devsrc.join("marker"), b"m").unwrap();
    let mut b2 = t.bundle(&["sh", "-c", "ls -A1 /dev; stat -c '%t:%T' /dev/null"]);
    let src = devsrc.clone();
    b2.edit(|c| {
        for m in c["mounts"].as_array_mut().unwrap() {
            if m["destination"] == "/dev" {
                *m = json!({"destination": "/dev", "type": "bind", "source": src,
                            "options": ["rbind", "rw"]});
            }
        }
        c["linux"]["devices"] =
            json!([{"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666}]);
    });
    let o = t.run(&b2);
    o.ok();
    let mut got = o.stdout_lines();
    let null = got.pop();
    got.sort();
    assert_eq!(
        got,
        ["marker", "mqueue", "null", "pts", "shm"],
        "only linux.devices and the mount points are added: {o:?}"
    );
    assert_eq!(null.as_deref(), Some("1:3"), "{o:?}");
    t.assert_clean_strict();
}

/// Forks a child that enters the mount namespace of `pid`, detaches the mount its root
/// sits on (the container's root), enters the namespace again (setns lands on the
/// topmost mount of the namespace root) and checks whether `probe` (a host path) is
/// reachable. Exit code: 0 reachable, 1 not, 2 the detach failed, 3+ setup errors.
fn host_root_under_container_root(pid: i64, probe: &Path) -> i32 {
    let ns = fs::File::open(format!("/proc/{pid}/ns/mnt")).expect("open the mount namespace");
    let probe = CString::new(probe.as_os_str().as_bytes()).unwrap();
    use std::os::fd::AsRawFd;
    let fd = ns.as_raw_fd();
    // SAFETY: the child only makes raw system calls (no allocation, no locks) and
    // leaves with _exit.
    let child = unsafe { libc::fork() };
    assert!(child >= 0, "fork: {}", std::io::Error::last_os_error());
    if child == 0 {
        unsafe {
            if libc::setns(fd, libc::CLONE_NEWNS) != 0 {
                libc::_exit(3);
            }
            if libc::umount2(c"/".as_ptr(), libc::MNT_DETACH) != 0 {
                libc::_exit(2);
            }
            if libc::setns(fd, libc::CLONE_NEWNS) != 0 {
                libc::_exit(4);
            }
            libc::_exit(if libc::access(probe.as_ptr(), libc::F_OK) == 0 {
                0
            } else {
                1
            });
        }
    }
    let mut st = 0;
    // SAFETY: waiting for the child forked above.
    let r = unsafe { libc::waitpid(child, &mut st, 0) };
    assert_eq!(r, child, "waitpid: {}", std::io::Error::last_os_error());
    assert!(libc::WIFEXITED(st), "probe child status {st:#x}");
    libc::WEXITSTATUS(st)
}

/// --no-pivot really takes the MS_MOVE + chroot branch: the host's root stays mounted
/// under the container's root in its mount namespace (detaching the container's root
/// reveals it), while pivot_root detaches it for good.
#[test]
fn no_pivot_keeps_the_host_root_under_the_container_root() {
    let t = TestEnv::new();
    let k = t.k();
    let probe = t.tmp.join("host-root-probe");
    fs::write(&probe, b"host").unwrap();
    for (no_pivot, want) in [(true, 0), (false, 1)] {
        let b = t.bundle(&["sh", "-c", "cat /rootfs-marker; exec sleep 1000"]);
        fs::write(b.rootfs.join("rootfs-marker"), b"rooted\n").unwrap();
        let dir = b.dir.to_str().unwrap();
        let mut args = vec!["create"];
        if no_pivot {
            args.push("--no-pivot");
        }
        args.extend(["--bundle", dir, b.id.as_str()]);
        let o = k.run(&args);
        o.ok();
        k.run(&["start", &b.id]).ok();
        assert!(
            wait_for(WAIT_TIMEOUT, || (o.stdout_now() == "rooted\n")
                .then_some(()))
            .is_some(),
            "no_pivot={no_pivot}: the container did not start in its rootfs: {:?}",
            o.stdout_now()
        );
        let pid = k.pid(&b.id);
        // Not vacuous: the probe is not visible from inside.
        let inside = k.run(&["exec", &b.id, "test", "-e", probe.to_str().unwrap()]);
        assert_eq!(inside.code(), Some(1), "{inside:?}");
        let got = host_root_under_container_root(pid, &probe);
        assert_eq!(
            got, want,
            "no_pivot={no_pivot}: 0 = host root under the container's root, 1 = gone"
        );
        k.run(&["delete", "--force", &b.id]).ok();
    }
    t.assert_clean_strict();
}

/// `mounts` are made in the listed order (a bind below an earlier tmpfs is visible, a
/// tmpfs listed after a bind below it hides it), with their options: ro (top mount
/// only) and rro (submounts too), noexec, nosuid/nodev, propagation flags on binds,
/// and the default sysfs/devpts/mqueue mounts have their types.
#[test]
fn mounts_apply_in_order_with_their_options() {
    let t = TestEnv::new();
    let src = t.dir("src");
    fs::write(src.join("from-src"), b"src\n").unwrap();
    fs::copy("/bin/busybox", src.join("busybox")).unwrap();
    let sub = src.join("sub");
    mount_tmpfs(&format!("kraal-sub-{}-{}", std::process::id(), t.n), &sub);
    // A shared host mount, so that rslave/rshared binds of it have a master.
    let psrc = t.dir("psrc");
    bind_self_shared(&psrc);
    let script =
        "cat /a/b/from-src; test -e /c/d/from-src && echo c-d-visible || echo c-d-hidden; \
                  touch /ro/x 2>/dev/null && echo ro-written || echo ro-refused; \
                  touch /ro/sub/x 2>/dev/null && echo ro-sub-written || echo ro-sub-refused; \
                  touch /rro/sub/y 2>/dev/null && echo rro-sub-written || echo rro-sub-refused; \
                  /nx/busybox true 2>/dev/null && echo nx-ran || echo nx-refused; \
                  /ex/busybox true && echo ex-ran || echo ex-refused; \
                  echo ===; cat /proc/self/mountinfo";
    let mut b = t.bundle(&["sh", "-c", script]);
    let (s, p) = (src.clone(), psrc.clone());
    b.edit(|c| {
        let m = c["mounts"].as_array_mut().unwrap();
        for e in [
            json!({"destination": "/a", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}),
            json!({"destination": "/a/b", "type": "bind", "source": s, "options": ["bind"]}),
            json!({"destination": "/c/d", "type": "bind", "source": s, "options": ["bind"]}),
            json!({"destination": "/c", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}),
            json!({"destination": "/ro", "type": "bind", "source": s, "options": ["rbind", "ro"]}),
            json!({"destination": "/rro", "type": "bind", "source": s, "options": ["rbind", "rro"]}),
            json!({"destination": "/nx", "type": "bind", "source": s, "options": ["bind", "noexec"]}),
            json!({"destination": "/ex", "type": "bind", "source": s, "options": ["bind"]}),
            json!({"destination": "/nsd", "type": "bind", "source": s, "options": ["bind", "nosuid", "nodev"]}),
            json!({"destination": "/pslave", "type": "bind", "source": p, "options": ["bind", "rslave"]}),
            json!({"destination": "/pshared", "type": "bind", "source": p, "options": ["bind", "rshared"]}),
            json!({"destination": "/pprivate", "type": "bind", "source": p, "options": ["bind", "rprivate"]}),
        ] {
            m.push(e);
        }
    });
    let o = t.run(&b);
    o.ok();
    let (top, mi) = o.stdout.split_once("===\n").expect("separator");
    assert_eq!(
        top.lines().collect::<Vec<_>>(),
        [
            "src",
            "c-d-hidden",
            "ro-refused",
            "ro-sub-written",
            "rro-sub-refused",
            "nx-refused",
            "ex-ran",
        ],
        "{o:?}"
    );
    assert!(
        sub.join("x").exists() && !sub.join("y").exists(),
        "the writes landed where expected"
    );
    let mi = mountinfo_entries(mi);
    let top_of = |mp: &str| {
        mi.iter()
            .rev()
            .find(|e| e.0 == mp)
            .cloned()
            .unwrap_or_else(|| panic!("{mp} not mounted: {mi:?}"))
    };
    let has = |opts: &str, o: &str| opts.split(',').any(|x| x == o);
    let sys = top_of("/sys");
    assert_eq!(sys.3, "sysfs", "{sys:?}");
    assert!(has(&sys.1, "ro") && has(&sys.1, "nosuid"), "{sys:?}");
    assert_eq!(top_of("/dev/pts").3, "devpts");
    assert_eq!(top_of("/dev/mqueue").3, "mqueue");
    assert_eq!(top_of("/proc").3, "proc");
    assert_eq!(top_of("/a").3, "tmpfs");
    assert_eq!(top_of("/c").3, "tmpfs");
    let ro = top_of("/ro");
    assert!(has(&ro.1, "ro"), "{ro:?}");
    let ro_sub = top_of("/ro/sub");
    assert!(has(&ro_sub.1, "rw"), "ro is not recursive: {ro_sub:?}");
    let rro_sub = top_of("/rro/sub");
    assert!(has(&rro_sub.1, "ro"), "rro is recursive: {rro_sub:?}");
    assert!(has(&top_of("/nx").1, "noexec"));
    assert!(!has(&top_of("/ex").1, "noexec"));
    let nsd = top_of("/nsd");
    assert!(has(&nsd.1, "nosuid") && has(&nsd.1, "nodev"), "{nsd:?}");
    let slave = top_of("/pslave");
    assert!(
        slave.2.contains("master:") && !slave.2.contains("shared:"),
        "{slave:?}"
    );
    let shared = top_of("/pshared");
    assert!(shared.2.contains("shared:"), "{shared:?}");
    let private = top_of("/pprivate");
    assert!(
        !private.2.contains("master:") && !private.2.contains("shared:"),
        "{private:?}"
    );
    umount(&psrc).expect("umount psrc");
    umount(&sub).expect("umount sub");
    t.assert_clean_strict();
}

/// An absolute root.path outside the bundle directory is the container's root, and
/// `state` reports it.
#[test]
fn absolute_root_path_outside_the_bundle() {
    let t = TestEnv::new();
    let k = t.k();
    let rootfs = t.dir("elsewhere/rootfs");
    build_rootfs(&rootfs);
    fs::write(rootfs.join("marker"), b"outside\n").unwrap();
    let mut b = t.bundle(&["cat", "/marker"]);
    fs::remove_dir_all(&b.rootfs).unwrap();
    let abs = fs::canonicalize(&rootfs).unwrap();
    assert!(!abs.starts_with(b.canonical_dir()));
    let a = abs.clone();
    b.edit(|c| c["root"]["path"] = json!(a));
    let o = t.create(&b);
    let s = k.state(&b.id).expect("state");
    assert_eq!(s["rootfs"], json!(abs), "{s}");
    assert_eq!(s["bundle"], json!(b.canonical_dir()), "{s}");
    k.run(&["start", &b.id]).ok();
    k.wait_status(&b.id, "stopped");
    assert_eq!(o.stdout_now(), "outside\n");
    k.run(&["delete", &b.id]).ok();
    t.assert_clean_strict();
}
