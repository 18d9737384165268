//! Hostile and broken config.json files: wrong types, huge values, missing fields, absurd
//! paths, a rootfs that is a symlink, device nodes naming host devices, cgroup paths and
//! seccomp architectures that do not exist. `create` must refuse each with exit code 1
//! and a message naming the field (or path) at fault, and leave nothing behind: no
//! state, no mount, no cgroup, nothing written outside the container.

mod common;

use common::*;
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt};
use std::path::Path;

/// One broken config: a name, the edit that breaks a good config, and what the error
/// must say.
type Case<'a> = (&'a str, Box<dyn Fn(&mut Value)>, &'a str);

/// `create` of the bundle as it is on disk must fail with exit 1 and `needle` in its
/// message; then the id is unknown and nothing is left.
#[track_caller]
fn rejected(t: &TestEnv, b: &Bundle, case: &str, needle: &str) {
    let o = t
        .kraal
        .run(&["create", "--bundle", b.dir.to_str().unwrap(), &b.id]);
    assert_eq!(
        o.code(),
        Some(1),
        "{case}: create should exit 1\n  stderr: {}",
        o.stderr.trim_end()
    );
    // The text log quotes the message as a JSON string: compare it unescaped.
    let message = o.stderr.replace("\\\"", "\"").to_lowercase();
    assert!(
        message.contains(&needle.to_lowercase()),
        "{case}: the error should mention {needle:?}\n  stderr: {}",
        o.stderr.trim_end()
    );
    assert!(
        !t.kraal.run(&["state", &b.id]).success(),
        "{case}: the refused container is known to `state`"
    );
    t.assert_clean();
}

/// Each case edits a fresh copy of the bundle's config, which `create` must refuse.
#[track_caller]
fn reject_each(t: &TestEnv, b: &mut Bundle, cases: Vec<Case>) {
    let base = b.config.clone();
    for (case, edit, needle) in cases {
        b.config = base.clone();
        b.edit(|c| edit(c));
        rejected(t, b, case, needle);
    }
    b.config = base;
    b.save();
}

/// Writes config.json as raw text (for what serde_json cannot build: numbers past u64,
/// broken nesting), made from the bundle's config with `from` replaced by `to`.
fn write_raw(b: &Bundle, from: &str, to: &str) {
    let text = serde_json::to_string(&b.config).unwrap();
    assert!(text.contains(from), "{from} not in the config");
    fs::write(b.config_path(), text.replacen(from, to, 1)).unwrap();
}

#[test]
fn wrong_types_name_the_field() {
    let t = TestEnv::new();
    let mut b = t.bundle(&["true"]);
    let cases: Vec<Case> = vec![
        (
            "args as a string",
            Box::new(|c| c["process"]["args"] = json!("sh")),
            "process.args: invalid type: string",
        ),
        (
            "uid as a string",
            Box::new(|c| c["process"]["user"]["uid"] = json!("0")),
            "process.user.uid: invalid type",
        ),
        (
            "mounts as an object",
            Box::new(|c| c["mounts"] = json!({})),
            "mounts: invalid type: map",
        ),
        (
            "env entry as a number",
            Box::new(|c| c["process"]["env"] = json!(["PATH=/bin", 1])),
            "process.env[1]: invalid type: integer",
        ),
        (
            "terminal as a string",
            Box::new(|c| c["process"]["terminal"] = json!("yes")),
            "process.terminal: invalid type: string",
        ),
        (
            "memory limit as a string",
            Box::new(|c| c["linux"]["resources"] = json!({"memory": {"limit": "1G"}})),
            "linux.resources.memory.limit: invalid type: string",
        ),
        (
            "namespace type as a number",
            Box::new(|c| c["linux"]["namespaces"][0]["type"] = json!(7)),
            "linux.namespaces[0].type",
        ),
        (
            "root as a string",
            Box::new(|c| c["root"] = json!("rootfs")),
            "root: invalid type: string",
        ),
    ];
    reject_each(&t, &mut b, cases);

    fs::write(b.config_path(), "[]").unwrap();
    rejected(
        &t,
        &b,
        "top level array",
        "the top level must be a JSON object",
    );
    // Far past serde_json's nesting limit: an error, not a stack overflow.
    fs::write(b.config_path(), "[".repeat(100_000)).unwrap();
    rejected(&t, &b, "deep nesting", "config.json");
}

#[test]
fn huge_values_are_refused() {
    let t = TestEnv::new();
    let mut b = t.bundle(&["true"]);

    b.edit(|c| c["linux"]["resources"] = json!({"memory": {"limit": "@HUGE@"}}));
    for n in [
        "18446744073709551616",
        "18446744073709551615",
        "9223372036854775808",
    ] {
        write_raw(&b, "\"@HUGE@\"", n);
        rejected(&t, &b, n, "linux.resources.memory.limit: invalid");
    }
    b.edit(|c| {
        c["linux"].as_object_mut().unwrap().remove("resources");
    });

    let cases: Vec<Case> = vec![
        (
            "cpu shares u64::MAX",
            Box::new(|c| c["linux"]["resources"] = json!({"cpu": {"shares": u64::MAX}})),
            "linux.resources.cpu.shares: 18446744073709551615 is out of range",
        ),
        (
            // Past what the kernel takes: refused where it is written, the cgroup removed.
            "pids limit i64::MAX",
            Box::new(|c| c["linux"]["resources"] = json!({"pids": {"limit": i64::MAX}})),
            "linux.resources.pids.limit",
        ),
        (
            "uid 2^32",
            Box::new(|c| c["process"]["user"]["uid"] = json!(1u64 << 32)),
            "process.user.uid: invalid value: integer `4294967296`",
        ),
        (
            "oomScoreAdj 1001",
            Box::new(|c| c["process"]["oomScoreAdj"] = json!(1001)),
            "process.oomScoreAdj: 1001 is outside -1000..1000",
        ),
        (
            "10k mounts, the last climbing out",
            Box::new(|c| {
                let mounts = c["mounts"].as_array_mut().unwrap();
                mounts.truncate(1);
                for i in 1..10_000 {
                    mounts.push(json!({"destination": format!("/m/{i}"), "type": "tmpfs", "source": "tmpfs"}));
                }
                mounts.push(
                    json!({"destination": "/m/../../etc", "type": "tmpfs", "source": "tmpfs"}),
                );
            }),
            "mounts[10000].destination: /m/../../etc leaves the container root",
        ),
        (
            "100k env entries, the last without '='",
            Box::new(|c| {
                let mut env: Vec<Value> = (0..100_000).map(|i| json!(format!("V{i}=x"))).collect();
                env.push(json!("BROKEN"));
                c["process"]["env"] = json!(env);
            }),
            "process.env[100000]: \"BROKEN\" has no '='",
        ),
        (
            "10k uid mappings",
            Box::new(|c| {
                c["linux"]["namespaces"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"type": "user"}));
                let maps: Vec<Value> = (0..10_000)
                    .map(|i| json!({"containerID": i, "hostID": 100_000 + i, "size": 1}))
                    .collect();
                c["linux"]["uidMappings"] = json!(maps);
                c["linux"]["gidMappings"] =
                    json!([{"containerID": 0, "hostID": 100_000, "size": 1}]);
            }),
            "linux.uidMappings: 10000 entries, the kernel accepts at most 340",
        ),
        (
            "hostname of 65 bytes",
            Box::new(|c| c["hostname"] = json!("h".repeat(65))),
            "hostname: 65 bytes long",
        ),
    ];
    reject_each(&t, &mut b, cases);

    // A number no integer type holds, in a field kraal does not know.
    write_raw(&b, "\"ociVersion\":", "\"x-huge\": 1e999, \"ociVersion\":");
    rejected(&t, &b, "1e999", "number out of range");
}

#[test]
fn missing_required_fields_are_named() {
    let t = TestEnv::new();
    let mut b = t.bundle(&["true"]);
    fn remove(c: &mut Value, pointer: &str, key: &str) {
        let parent = if pointer.is_empty() {
            c
        } else {
            c.pointer_mut(pointer).unwrap()
        };
        assert!(
            parent.as_object_mut().unwrap().remove(key).is_some(),
            "{key}"
        );
    }
    let cases: Vec<Case> = vec![
        (
            "root",
            Box::new(|c| remove(c, "", "root")),
            "root: missing (required on Linux)",
        ),
        (
            "root.path",
            Box::new(|c| remove(c, "/root", "path")),
            "root.path: missing",
        ),
        (
            "process.user",
            Box::new(|c| remove(c, "/process", "user")),
            "process: missing field `user`",
        ),
        (
            "process.cwd",
            Box::new(|c| remove(c, "/process", "cwd")),
            "process: missing field `cwd`",
        ),
        (
            "ociVersion",
            Box::new(|c| remove(c, "", "ociVersion")),
            "ociVersion: missing",
        ),
        (
            "mounts[].destination",
            Box::new(|c| {
                c["mounts"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"type": "tmpfs", "source": "tmpfs"}))
            }),
            "mounts[7]: missing field `destination`",
        ),
        (
            "linux.devices[].major",
            Box::new(|c| {
                c["linux"]["devices"] = json!([{"type": "c", "path": "/dev/x", "minor": 1}])
            }),
            "linux.devices[0].major: required for device type \"c\"",
        ),
    ];
    assert_eq!(b.config["mounts"].as_array().unwrap().len(), 7);
    reject_each(&t, &mut b, cases);
}

#[test]
fn absurd_paths_are_refused() {
    let t = TestEnv::new();
    let mut b = t.bundle(&["true"]);
    let long = format!("/{}", "a".repeat(5000));
    let deep = "/d".repeat(3000);
    let (l1, l2) = (long.clone(), deep.clone());
    let cases: Vec<Case> = vec![
        (
            "NUL in root.path",
            Box::new(|c| c["root"]["path"] = json!("root\u{0}fs")),
            "root.path: contains a NUL byte",
        ),
        (
            "root.path of 5000 bytes",
            Box::new(move |c| c["root"]["path"] = json!(l1)),
            "root.path: cannot stat",
        ),
        (
            "relative root.path climbing to the host's /",
            Box::new(|c| c["root"]["path"] = json!("../../../../../..")),
            "root.path: ../../../../../.. leaves the bundle",
        ),
        (
            "relative root.path into a sibling bundle",
            Box::new(|c| c["root"]["path"] = json!("rootfs/../../other/rootfs")),
            "root.path: rootfs/../../other/rootfs leaves the bundle",
        ),
        (
            "NUL in a mount destination",
            Box::new(|c| {
                c["mounts"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"destination": "/a\u{0}b", "type": "tmpfs"}))
            }),
            "mounts[7].destination: contains a NUL byte",
        ),
        (
            "'..' in a mount destination",
            Box::new(|c| {
                c["mounts"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"destination": "/../../etc", "type": "tmpfs", "source": "tmpfs"}))
            }),
            "mounts[7].destination: /../../etc leaves the container root",
        ),
        (
            "'..' in a relative mount destination",
            Box::new(|c| {
                c["mounts"].as_array_mut().unwrap().push(
                    json!({"destination": "tmp/../../../etc", "type": "tmpfs", "source": "tmpfs"}),
                )
            }),
            "mounts[7].destination: tmp/../../../etc leaves the container root",
        ),
        (
            "a mount destination 3000 levels deep",
            Box::new(move |c| {
                c["mounts"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"destination": l2, "type": "tmpfs", "source": "tmpfs"}))
            }),
            "mounts[7] (/d/d/d",
        ),
        (
            "NUL in a bind source",
            Box::new(|c| {
                c["mounts"].as_array_mut().unwrap().push(
                    json!({"destination": "/mnt", "type": "bind", "source": "/tmp\u{0}x", "options": ["rbind"]}),
                )
            }),
            "mounts[7].source: contains a NUL byte",
        ),
        (
            "NUL in process.cwd",
            Box::new(|c| c["process"]["cwd"] = json!("/tmp\u{0}")),
            "process.cwd: contains a NUL byte",
        ),
        (
            "'..' in a device path",
            Box::new(|c| {
                c["linux"]["devices"] =
                    json!([{"type": "c", "path": "/dev/../../x", "major": 1, "minor": 3}])
            }),
            "linux.devices[0].path: /dev/../../x leaves the container root",
        ),
        (
            "relative hook path",
            Box::new(|c| c["hooks"] = json!({"createRuntime": [{"path": "true"}]})),
            "hooks.createRuntime[0].path: true is not an absolute path",
        ),
    ];
    reject_each(&t, &mut b, cases);
    assert!(!Path::new(&long).exists() && !Path::new(&deep).exists());
}

/// Lists a directory tree's entries (relative paths), to see that nothing was made in it.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                todo.push(p);
            }
        }
    }
    out.sort();
    out
}

/// runc refuses a root that is a symlink, or has one in its path ("invalid rootfs: not an
/// absolute path, or a symlink"), and so does kraal: a link would be followed to wherever
/// it points when the mounts are made (the host's / included), outside the bundle.
#[test]
fn symlinked_rootfs_is_refused() {
    let t = TestEnv::new();
    let mut b = t.bundle(&["true"]);
    let outside = t.dir("outside");
    build_rootfs(&outside);
    fs::remove_dir(outside.join("dev")).unwrap();
    let before = tree(&outside);
    symlink(&outside, b.dir.join("link-out")).unwrap();
    symlink("/", b.dir.join("link-host-root")).unwrap();
    symlink("rootfs", b.dir.join("link-in")).unwrap();
    let cases: Vec<Case> = vec![
        (
            "a link to a rootfs outside the bundle",
            Box::new(|c| c["root"]["path"] = json!("link-out")),
            "link-out is a symlink or passes through one",
        ),
        (
            "a link to the host's /",
            Box::new(|c| c["root"]["path"] = json!("link-host-root")),
            "link-host-root is a symlink or passes through one (to /)",
        ),
        (
            "a link inside the bundle",
            Box::new(|c| c["root"]["path"] = json!("link-in")),
            "link-in is a symlink or passes through one",
        ),
    ];
    let abs_through_link = b.dir.join("link-out/.");
    let mut cases = cases;
    cases.push((
        "an absolute path through a link",
        Box::new(move |c| c["root"]["path"] = json!(abs_through_link)),
        "is a symlink or passes through one",
    ));
    reject_each(&t, &mut b, cases);
    // Nothing was created in the link's target (no mount points, no /dev).
    assert_eq!(tree(&outside), before);
    // The bundle's rootfs itself still works.
    t.run(&b).ok();
    t.assert_clean();
}

/// linux.devices naming a host disk (8:0, /dev/sda on most hosts) at the path of
/// /dev/null: the node is made inside the container, where masking then refuses to
/// use a /dev/null that is not the null device; the host's /dev/null is untouched.
#[test]
fn host_disk_at_dev_null_is_refused_and_host_dev_untouched() {
    let t = TestEnv::new();
    let mut b = t.bundle(&["true"]);
    let host_null = fs::metadata("/dev/null").unwrap();
    b.edit(|c| {
        c["linux"]["devices"] =
            json!([{"type": "b", "path": "/dev/null", "major": 8, "minor": 0, "fileMode": 438}])
    });
    rejected(
        &t,
        &b,
        "8:0 at /dev/null",
        "/dev/null is not the null character device",
    );
    let now = fs::metadata("/dev/null").unwrap();
    assert!(now.file_type().is_char_device());
    assert_eq!(
        (
            now.ino(),
            now.rdev(),
            now.mode(),
            now.ctime(),
            now.ctime_nsec()
        ),
        (
            host_null.ino(),
            host_null.rdev(),
            host_null.mode(),
            host_null.ctime(),
            host_null.ctime_nsec()
        ),
        "the host's /dev/null changed"
    );
}

/// A host disk's numbers at a new path: the node exists inside the container only,
/// and the device cgroup keeps the container from opening it.
#[test]
fn host_disk_node_is_made_inside_the_container_only() {
    let t = TestEnv::new();
    let name = format!("kraal-test-disk-{}-{}", std::process::id(), t.n);
    let script = format!("stat -c '%t:%T %F' /dev/{name}; head -c1 /dev/{name} >/dev/null");
    let mut b = t.bundle(&["sh", "-c", &script]);
    b.edit(|c| {
        c["linux"]["devices"] =
            json!([{"type": "b", "path": format!("/dev/{name}"), "major": 8, "minor": 0}])
    });
    let o = t.run(&b);
    assert_eq!(o.code(), Some(1), "head should fail: {o:?}");
    assert_eq!(o.stdout.trim(), "8:0 block special file", "{o:?}");
    o.stderr_has("Operation not permitted");
    assert!(
        fs::symlink_metadata(Path::new("/dev").join(&name)).is_err(),
        "the node was made on the host"
    );
    t.assert_clean();
}

/// The image's /dev is a symlink to the host's /dev: neither the /dev mount nor the
/// device nodes may follow it.
#[test]
fn dev_symlink_to_host_dev_is_not_followed() {
    let t = TestEnv::new();
    let name = format!("kraal-test-link-{}-{}", std::process::id(), t.n);
    let mut b = t.bundle(&["true"]);
    fs::remove_dir(b.rootfs.join("dev")).unwrap();
    symlink("/dev", b.rootfs.join("dev")).unwrap();
    let dev_path = format!("/dev/{name}");
    let (p1, p2) = (dev_path.clone(), dev_path.clone());
    let cases: Vec<Case> = vec![
        (
            "with a /dev tmpfs",
            Box::new(move |c| {
                c["linux"]["devices"] = json!([{"type": "b", "path": p1, "major": 8, "minor": 0}])
            }),
            "mounts[1] (/dev): create mount point",
        ),
        (
            "without a /dev mount",
            Box::new(move |c| {
                let mounts = c["mounts"].as_array_mut().unwrap();
                mounts.retain(|m| !m["destination"].as_str().unwrap().starts_with("/dev"));
                c["linux"]["devices"] = json!([{"type": "b", "path": p2, "major": 8, "minor": 0}])
            }),
            "device /dev/null",
        ),
    ];
    reject_each(&t, &mut b, cases);
    assert!(
        fs::symlink_metadata(&dev_path).is_err(),
        "{dev_path} made on the host"
    );
}

#[test]
fn cgroups_path_escapes_are_refused() {
    let t = TestEnv::new();
    let mut b = t.bundle(&["true"]);
    let escape = format!("kraal-test-escape-{}-{}", std::process::id(), t.n);
    let (e1, e2) = (escape.clone(), escape.clone());
    let cases: Vec<Case> = vec![
        (
            "../../",
            Box::new(|c| c["linux"]["cgroupsPath"] = json!("../../")),
            "linux.cgroupsPath: ../../ must not contain ..",
        ),
        (
            "relative, climbing out",
            Box::new(move |c| c["linux"]["cgroupsPath"] = json!(format!("a/../../{e1}"))),
            "linux.cgroupsPath: a/../../kraal-test-escape",
        ),
        (
            "absolute, climbing out",
            Box::new(move |c| c["linux"]["cgroupsPath"] = json!(format!("/../../{e2}"))),
            "must not contain ..",
        ),
    ];
    reject_each(&t, &mut b, cases);
    // Nothing was made above the test's cgroup either.
    for own in own_cgroup_dirs() {
        for dir in own.ancestors().take(4) {
            assert!(
                !dir.join(&escape).exists(),
                "{}",
                dir.join(&escape).display()
            );
        }
    }
}

#[test]
fn unknown_seccomp_arch_is_named() {
    let t = TestEnv::new();
    let mut b = t.bundle(&["true"]);
    let cases: Vec<Case> = vec![
        (
            "unknown architecture",
            Box::new(|c| {
                c["linux"]["seccomp"] = json!({
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_PDP11"]
                })
            }),
            "linux.seccomp.architectures[1]: unknown variant `SCMP_ARCH_PDP11`",
        ),
        (
            "unknown default action",
            Box::new(|c| c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_MAYBE"})),
            "linux.seccomp.defaultAction: unknown variant `SCMP_ACT_MAYBE`",
        ),
    ];
    reject_each(&t, &mut b, cases);
}

/// Overlapping user namespace mappings: two entries claiming the same container ids, or
/// the same host ids, in uidMappings or gidMappings.
#[test]
fn overlapping_id_mappings_are_named() {
    let t = TestEnv::new();
    let mut b = t.bundle(&["true"]);
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    });
    let cases: Vec<Case> = vec![
        (
            "uid container ranges overlap",
            Box::new(|c| {
                c["linux"]["uidMappings"] = json!([
                    {"containerID": 0, "hostID": 100000, "size": 10},
                    {"containerID": 9, "hostID": 200000, "size": 10}
                ])
            }),
            "linux.uidMappings[1]: container range overlaps linux.uidMappings[0]",
        ),
        (
            "uid host ranges overlap",
            Box::new(|c| {
                c["linux"]["uidMappings"] = json!([
                    {"containerID": 0, "hostID": 100000, "size": 10},
                    {"containerID": 100, "hostID": 200000, "size": 10},
                    {"containerID": 10, "hostID": 100005, "size": 10}
                ])
            }),
            "linux.uidMappings[2]: host range overlaps linux.uidMappings[0]",
        ),
        (
            "gid container ranges overlap",
            Box::new(|c| {
                c["linux"]["gidMappings"] = json!([
                    {"containerID": 5, "hostID": 300000, "size": 1},
                    {"containerID": 0, "hostID": 100000, "size": 10}
                ])
            }),
            "linux.gidMappings[1]: container range overlaps linux.gidMappings[0]",
        ),
        (
            "gid host ranges overlap",
            Box::new(|c| {
                c["linux"]["gidMappings"] = json!([
                    {"containerID": 0, "hostID": 100000, "size": 10},
                    {"containerID": 10, "hostID": 99999, "size": 2}
                ])
            }),
            "linux.gidMappings[1]: host range overlaps linux.gidMappings[0]",
        ),
    ];
    reject_each(&t, &mut b, cases);
}
