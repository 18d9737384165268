//! The user process: its pid namespace, user/groups/umask/cwd/env, namespaces joined by
//! path, and file descriptors passed with --preserve-fds.

mod common;

use common::*;
use serde_json::json;
use std::fs;

/// The user process is pid 1 of a new pid namespace, and the default config's other
/// namespaces (ipc, uts, mount, network, cgroup) are new ones too.
#[test]
fn user_process_is_pid_1() {
    let t = TestEnv::new();
    let kinds = ["pid", "ipc", "uts", "mnt", "net", "cgroup"];
    let b = t.bundle(&[
        "sh",
        "-c",
        "echo $$; for n in pid ipc uts mnt net cgroup; do readlink /proc/self/ns/$n; done",
    ]);
    let o = t.run(&b);
    o.ok();
    let lines = o.stdout_lines();
    assert_eq!(lines.len(), 1 + kinds.len(), "{o:?}");
    assert_eq!(lines[0], "1", "{o:?}");
    for (kind, inside) in kinds.iter().zip(&lines[1..]) {
        let host_ns = fs::read_link(format!("/proc/self/ns/{kind}")).unwrap();
        assert!(inside.starts_with(&format!("{kind}:[")), "{o:?}");
        assert_ne!(
            *inside,
            host_ns.to_string_lossy(),
            "container shares the host's {kind} namespace"
        );
    }
    t.assert_clean_strict();
}

/// process.user (uid, gid, additionalGids, umask), process.cwd and process.env are
/// applied exactly; nothing of kraal's own environment leaks in.
#[test]
fn user_groups_umask_cwd_and_env() {
    let t = TestEnv::new();
    let mut b = t.bundle(&[
        "sh",
        "-c",
        "id -u; id -g; grep ^Groups: /proc/self/status; umask; pwd; \
         touch f && stat -c %a f; echo ===; env",
    ]);
    b.edit(|c| {
        c["process"]["user"] =
            json!({"uid": 1000, "gid": 1000, "additionalGids": [2000], "umask": 0o027});
        c["process"]["cwd"] = json!("/home/kraaluser");
        c["process"]["env"] = json!([
            "PATH=/bin",
            "KRAAL_TEST_VAR=hello world",
            "HOME=/home/kraaluser",
        ]);
    });
    let o = t.run(&b);
    o.ok();
    let (top, env) = o.stdout.split_once("===\n").expect("separator");
    let top: Vec<&str> = top.lines().collect();
    assert_eq!(top[0], "1000", "uid: {o:?}");
    assert_eq!(top[1], "1000", "gid: {o:?}");
    let groups: Vec<&str> = top[2].split_whitespace().skip(1).collect();
    assert_eq!(groups, ["2000"], "supplementary groups: {o:?}");
    assert_eq!(top[3], "0027", "umask: {o:?}");
    assert_eq!(top[4], "/home/kraaluser", "cwd: {o:?}");
    assert_eq!(top[5], "640", "file mode under umask 027: {o:?}");
    let meta = fs::metadata(b.rootfs.join("home/kraaluser/f")).expect("file made by the user");
    use std::os::unix::fs::MetadataExt;
    assert_eq!((meta.uid(), meta.gid()), (1000, 1000));

    let mut vars: Vec<&str> = env.lines().collect();
    vars.sort();
    // busybox sh adds PWD and SHLVL itself; everything else must come from process.env.
    vars.retain(|v| !v.starts_with("PWD=") && !v.starts_with("SHLVL="));
    assert_eq!(
        vars,
        [
            "HOME=/home/kraaluser",
            "KRAAL_TEST_VAR=hello world",
            "PATH=/bin"
        ],
        "{o:?}"
    );
    t.assert_clean_strict();
}

/// runc sets HOME from the container's /etc/passwd when process.env has none.
#[test]
fn home_defaults_from_passwd() {
    let t = TestEnv::new();
    let mut b = t.bundle(&["sh", "-c", "echo HOME=$HOME"]);
    b.edit(|c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        c["process"]["env"] = json!(["PATH=/bin"]);
    });
    let o = t.run(&b);
    o.ok();
    assert_eq!(o.stdout, "HOME=/home/kraaluser\n", "{o:?}");
    t.assert_clean_strict();
}

/// A UTS namespace joined by path: B sees A's hostname and shares A's namespace.
#[test]
fn joins_uts_namespace_by_path() {
    let t = TestEnv::new();
    let k = t.k();
    let host_name = format!("kraal-a-{}", t.n);
    let mut a = t.bundle(&["sleep", "1000"]);
    a.edit(|c| c["hostname"] = json!(host_name));
    t.create_start(&a);
    let pid_a = k.pid(&a.id);
    let ns_path = format!("/proc/{pid_a}/ns/uts");
    let ns_a = fs::read_link(&ns_path).unwrap();

    let mut b = t.bundle(&["sh", "-c", "hostname; readlink /proc/self/ns/uts"]);
    b.edit(|c| {
        for ns in c["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "uts" {
                ns["path"] = json!(ns_path);
            }
        }
        // A joined UTS namespace is not the container's to rename (runc refuses it).
        c.as_object_mut().unwrap().remove("hostname");
    });
    let o = t.run(&b);
    o.ok();
    assert_eq!(
        o.stdout_lines(),
        [host_name.clone(), ns_a.to_string_lossy().into_owned()],
        "{o:?}"
    );
    k.run(&["delete", "--force", &a.id]).ok();
    t.assert_clean_strict();
}

/// A network namespace joined by path (pinned on a file, prepared with a veth pair
/// and loopback up) is the one the container sees.
#[test]
fn joins_network_namespace_by_path() {
    let t = TestEnv::new();
    let ns = make_netns(&t, "netns");
    in_netns(&t, &ns, &["ip", "link", "set", "lo", "up"]);
    in_netns(
        &t,
        &ns,
        &[
            "ip", "link", "add", "kraalv0", "type", "veth", "peer", "name", "kraalp0",
        ],
    );
    let script = "cat /proc/net/dev | cut -d: -f1 | tr -d ' ' | tail -n +3 | sort; \
                  echo ===; ip link show lo";
    let mut b = t.bundle(&["sh", "-c", script]);
    b.edit(|c| {
        for n in c["linux"]["namespaces"].as_array_mut().unwrap() {
            if n["type"] == "network" {
                n["path"] = json!(ns);
            }
        }
    });
    let o = t.run(&b);
    o.ok();
    let (devs, lo) = o.stdout.split_once("===\n").expect("separator");
    assert_eq!(
        devs.lines().collect::<Vec<_>>(),
        ["kraalp0", "kraalv0", "lo"],
        "{o:?}"
    );
    assert!(lo.contains("UP"), "lo is up in the joined namespace: {lo}");

    // Control: a new network namespace has only a loopback, and it is down.
    let b2 = t.bundle(&["sh", "-c", script]);
    let o = t.run(&b2);
    o.ok();
    let (devs, lo) = o.stdout.split_once("===\n").expect("separator");
    assert_eq!(devs.lines().collect::<Vec<_>>(), ["lo"], "{o:?}");
    assert!(!lo.contains(",UP"), "{lo}");
    release_netns(&ns);
    t.assert_clean_strict();
}

/// --preserve-fds 1 passes fd 3 (and only fd 3) to the user process.
#[test]
fn preserve_fds_passes_fd_3() {
    let t = TestEnv::new();
    let content = format!("fd3-content-{}", t.n);
    let f3p = t.tmp.join("fd3.txt");
    fs::write(&f3p, &content).unwrap();
    let f4p = t.tmp.join("fd4.txt");
    fs::write(&f4p, "fd4").unwrap();
    let f3 = fs::File::open(&f3p).unwrap();
    let f4 = fs::File::open(&f4p).unwrap();
    let b = t.bundle(&[
        "sh",
        "-c",
        "cat <&3; echo; test -e /proc/self/fd/4 && echo fd4-leaked || echo fd4-closed",
    ]);
    let mut c = t.kraal.command(&[
        "run",
        "--preserve-fds",
        "1",
        "--bundle",
        b.dir.to_str().unwrap(),
        &b.id,
    ]);
    pass_fd(&mut c, &f3, 3);
    pass_fd(&mut c, &f4, 4);
    let o = t.kraal.exec(c);
    drop((f3, f4));
    o.ok();
    assert_eq!(o.stdout_lines(), [content.as_str(), "fd4-closed"], "{o:?}");

    // Without --preserve-fds, fd 3 does not reach the container.
    let b2 = t.bundle(&[
        "sh",
        "-c",
        "test -e /proc/self/fd/3 && echo fd3-leaked || echo fd3-closed",
    ]);
    let f3 = fs::File::open(&f3p).unwrap();
    let mut c = t
        .kraal
        .command(&["run", "--bundle", b2.dir.to_str().unwrap(), &b2.id]);
    pass_fd(&mut c, &f3, 3);
    let o = t.kraal.exec(c);
    drop(f3);
    o.ok();
    assert_eq!(o.stdout_lines(), ["fd3-closed"], "{o:?}");
    t.assert_clean_strict();
}

/// runc creates process.cwd (mode 0755) inside the rootfs when it does not exist.
#[test]
fn missing_cwd_is_created() {
    let t = TestEnv::new();
    let mut b = t.bundle(&["pwd"]);
    b.edit(|c| c["process"]["cwd"] = json!("/made/by/kraal"));
    let o = t.run(&b);
    o.ok();
    assert_eq!(o.stdout, "/made/by/kraal\n", "{o:?}");
    assert!(b.rootfs.join("made/by/kraal").is_dir());
    t.assert_clean_strict();
}

/// Socket activation: when kraal is started with LISTEN_PID = its own pid and
/// LISTEN_FDS = n, fds 3..3+n pass through before the --preserve-fds ones, and the
/// container gets LISTEN_FDS=n and LISTEN_PID=1. With a LISTEN_PID naming another
/// process nothing is passed for it.
#[test]
fn listen_fds_pass_through_before_preserved_fds() {
    let t = TestEnv::new();
    let mut files = Vec::new();
    for n in 3..=5 {
        let p = t.tmp.join(format!("fd{n}.txt"));
        fs::write(&p, format!("content-of-fd{n}-{}", t.n)).unwrap();
        files.push(fs::File::open(&p).unwrap());
    }
    let script = "echo \"${LISTEN_FDS-unset} ${LISTEN_PID-unset}\"; \
                  for n in 3 4 5; do \
                  if test -e /proc/self/fd/$n; then cat /proc/self/fd/$n; echo; \
                  else echo fd$n-closed; fi; done";
    let run = |listen_pid: &str| {
        let b = t.bundle(&["sh", "-c", script]);
        let mut c = std::process::Command::new("/bin/sh");
        c.arg("-c")
            .arg(format!(
                "LISTEN_PID={listen_pid} LISTEN_FDS=1 exec \"$0\" --root \"$1\" run \
                 --preserve-fds 1 --bundle \"$2\" \"$3\""
            ))
            .arg(&t.kraal.bin)
            .arg(&t.kraal.root)
            .arg(&b.dir)
            .arg(&b.id);
        for (i, f) in files.iter().enumerate() {
            pass_fd(&mut c, f, 3 + i as i32);
        }
        let o = t.kraal.exec(c);
        o.ok();
        o.stdout_lines()
    };
    let n = t.n;
    // $$ of `sh -c` is the pid kraal runs as after `exec`.
    assert_eq!(
        run("$$"),
        [
            "1 1".to_string(),
            format!("content-of-fd3-{n}"),
            format!("content-of-fd4-{n}"),
            "fd5-closed".to_string(),
        ]
    );
    // LISTEN_PID of another process: no LISTEN_* in the container, and only the one
    // preserved fd (3) reaches it.
    assert_eq!(
        run("1"),
        [
            "unset unset".to_string(),
            format!("content-of-fd3-{n}"),
            "fd4-closed".to_string(),
            "fd5-closed".to_string(),
        ]
    );
    drop(files);
    t.assert_clean_strict();
}

/// process.oomScoreAdj is written for the container's process: raised, lowered (from
/// what kraal inherited) and, when unset, inherited. A negative value needs
/// CAP_SYS_RESOURCE: without it (this sandbox lacks it) create fails naming the field
/// and leaves nothing behind.
#[test]
fn oom_score_adj_is_applied() {
    let t = TestEnv::new();
    let own = fs::read_to_string("/proc/self/oom_score_adj").unwrap();
    assert_eq!(
        own.trim(),
        "0",
        "the test runs with the default oom_score_adj"
    );
    // kraal started with oom_score_adj `start_at`, config value `adj`.
    let run = |start_at: i32, adj: Option<i32>| {
        let mut b = t.bundle(&["cat", "/proc/self/oom_score_adj"]);
        if let Some(a) = adj {
            b.edit(|c| c["process"]["oomScoreAdj"] = json!(a));
        }
        let mut c = std::process::Command::new("/bin/sh");
        c.arg("-c")
            .arg(format!(
                "echo {start_at} > /proc/self/oom_score_adj && \
                 exec \"$0\" --root \"$1\" run --bundle \"$2\" \"$3\""
            ))
            .arg(&t.kraal.bin)
            .arg(&t.kraal.root)
            .arg(&b.dir)
            .arg(&b.id);
        t.kraal.exec(c)
    };
    for (start_at, adj, want) in [
        (0, Some(123), "123"),
        (500, Some(7), "7"),
        (500, None, "500"),
        (0, None, "0"),
    ] {
        let o = run(start_at, adj);
        o.ok();
        assert_eq!(o.stdout.trim(), want, "start at {start_at}, {adj:?}: {o:?}");
    }
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .expect("CapEff");
    let o = run(0, Some(-17));
    const CAP_SYS_RESOURCE: u32 = 24;
    if cap_eff & (1 << CAP_SYS_RESOURCE) != 0 {
        o.ok();
        assert_eq!(o.stdout.trim(), "-17", "{o:?}");
    } else {
        o.fails().stderr_has("process.oomScoreAdj");
        assert_eq!(o.stdout, "", "the process never ran: {o:?}");
    }
    t.assert_clean_strict();
}
