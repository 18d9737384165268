//! The container's filesystem view: its root, hostname, host mounts kept out, masked
//! and read-only paths, root.readonly, --no-pivot, and bundles from contrib/mkbundle.sh.

mod common;

use common::*;
use serde_json::{json, Value};
use std::fs;
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
    t.assert_clean();
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
    t.assert_clean();
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
    t.assert_clean();
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
    t.assert_clean();
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
    t.assert_clean();
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
    t.assert_clean();
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
    t.assert_clean();
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
    t.assert_clean();
}
