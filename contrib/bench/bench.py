#!/usr/bin/env python3
"""Measurement driver and report writer for contrib/bench/run.sh.

It owns the parts a shell does badly: timing multi-step lifecycles (create, start,
wait for exit, delete) and the many-container sequence with the runtimes alternating
call by call, the leftover check, the statistics, and the markdown table written into
docs/performance.md. Single commands (run, exec) are timed by hyperfine in run.sh and
arrive here as rows of the same results file.

Results file: tab-separated rows `scenario  runtime  value`, one per sample; times in
milliseconds, memory in KiB, sizes in bytes.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROG = "bench.py"


def die(msg):
    print(f"{PROG}: error: {msg}", file=sys.stderr)
    sys.exit(1)


def rotation(items, k):
    """The runtimes in round k's order: each runtime goes first equally often."""
    k %= len(items)
    return items[k:] + items[:k]


class Runtime:
    def __init__(self, name, spec, log):
        self.name = name
        self.cmd = spec["cmd"]
        self.state_root = spec["state_root"]
        self.log = log

    def call(self, *args):
        """Runs one runtime command and returns its wall time in ms. The container's
        stdio must not be a pipe of ours (a sleeping container would hold it open), so
        stdout goes to /dev/null and stderr to a log file read back on failure."""
        argv = self.cmd + list(args)
        with open(self.log, "ab") as err:
            err.write(("$ " + " ".join(argv) + "\n").encode())
            err.flush()
            pos = err.tell()
            t0 = time.perf_counter_ns()
            rc = subprocess.call(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
            t1 = time.perf_counter_ns()
        if rc != 0:
            with open(self.log, "rb") as f:
                f.seek(pos)
                msg = f.read().decode(errors="replace").strip()
            die(f"{self.name}: `{' '.join(argv)}` exited {rc}: {msg or '(no message)'}")
        return (t1 - t0) / 1e6

    def pid(self, cid):
        out = subprocess.run(self.cmd + ["state", cid], capture_output=True, text=True)
        if out.returncode != 0:
            die(f"{self.name}: state {cid} failed: {out.stderr.strip()}")
        try:
            return int(json.loads(out.stdout)["pid"])
        except (ValueError, KeyError) as e:
            die(f"{self.name}: state {cid} printed no usable pid ({e}): {out.stdout!r}")


def wait_exit(pid, timeout=20.0):
    """Waits until pid has exited (gone, or a zombie nobody reaped yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            return
        if stat[stat.rindex(")") + 2] in "ZX":
            return
        time.sleep(0.0005)
    die(f"process {pid} still running {timeout}s after start (expected /bin/true to exit)")


def load_runtimes(args):
    spec = json.loads(Path(args.spec).read_text())
    names = args.runtimes.split(",")
    return [Runtime(n, spec[n], args.log) for n in names], spec


def emit(out, scenario, rt, value):
    out.write(f"{scenario}\t{rt}\t{value:.6g}\n")


def cmd_csd(args):
    """Scenario 2: create, start, (wait for exit), delete as separate calls."""
    rts, spec = load_runtimes(args)
    with open(args.out, "a") as out:
        for r in range(args.warmup + args.runs):
            for rt in rotation(rts, r):
                s = spec[rt.name]
                tc = rt.call("create", "--bundle", s["bundle"], s["id"])
                pid = rt.pid(s["id"])
                ts = rt.call("start", s["id"])
                wait_exit(pid)
                td = rt.call("delete", s["id"])
                if r >= args.warmup:
                    emit(out, "csd", rt.name, tc + ts + td)
                    emit(out, "csd_create", rt.name, tc)
                    emit(out, "csd_start", rt.name, ts)
                    emit(out, "csd_delete", rt.name, td)


def memory_charged(parent):
    """Bytes charged to a cgroup v1 memory parent (in the namespace), or None."""
    p = Path("/sys/fs/cgroup/memory") / parent / "memory.usage_in_bytes"
    try:
        return int(p.read_text())
    except (OSError, ValueError):
        return None


def cmd_many(args):
    """Scenario 5: N sleeping containers per runtime, created and started one after
    another (runtimes alternating container by container), then all deleted with
    --force; repeated for `rounds`."""
    rts, spec = load_runtimes(args)
    with open(args.out, "a") as out:
        for rnd in range(args.rounds):
            costs = {rt.name: [] for rt in rts}
            # The per-runtime parent appears with the first container: charge 0 before it.
            mem0 = {rt.name: memory_charged(spec[rt.name]["cgroup_parent"]) or 0 for rt in rts}
            for i in range(args.n):
                for rt in rotation(rts, i + rnd):
                    s = spec[rt.name]
                    t = rt.call("create", "--bundle", s["bundles"][i], s["ids"][i])
                    t += rt.call("start", s["ids"][i])
                    costs[rt.name].append(t)
            for rt in rts:
                mem = memory_charged(spec[rt.name]["cgroup_parent"])
                if mem is not None:
                    emit(out, "many_mem_per_ctr", rt.name, (mem - mem0[rt.name]) / 1024 / args.n)
            dels = {rt.name: 0.0 for rt in rts}
            for i in range(args.n):
                for rt in rotation(rts, i + rnd):
                    dels[rt.name] += rt.call("delete", "--force", spec[rt.name]["ids"][i])
            for rt in rts:
                c = costs[rt.name]
                for v in c:
                    emit(out, "many_each", rt.name, v)
                k = first_k(len(c))
                first, last = statistics.mean(c[:k]), statistics.mean(c[-k:])
                emit(out, "many_total", rt.name, sum(c))
                emit(out, "many_first", rt.name, first)
                emit(out, "many_last", rt.name, last)
                emit(out, "many_growth", rt.name, last / first)
                # Means follow outliers on a loaded machine; medians show the trend.
                emit(out, "many_growth_median", rt.name, statistics.median(c[-k:]) / statistics.median(c[:k]))
                emit(out, "many_delete_all", rt.name, dels[rt.name])
            out.flush()
            problems = leftovers(spec, [rt.name for rt in rts], args.work, [], args.cgroup_parent)
            for rt in rts:
                emit(out, "many_leftovers", rt.name, len(problems.get(rt.name, [])))
            for name, items in problems.items():
                for p in items:
                    print(f"{PROG}: leftover after the {args.n}-container round {rnd + 1} ({name}): {p}", file=sys.stderr)


def leftovers(spec, names, work, ids, cgroup_parent):
    """What a finished scenario left behind, per runtime: state entries, container
    cgroups (any hierarchy, in the namespace), mounts of the bench's work directory in
    the namespace, and processes still in a container cgroup of the bench."""
    problems = {}
    owner = {}
    for n in names:
        for i in spec[n].get("ids", []) + [spec[n].get("id")]:
            if i:
                owner[i] = n
    for i in ids:
        owner.setdefault(i, "?")
    for n in names:
        root = Path(spec[n]["state_root"])
        if root.is_dir():
            for e in root.iterdir():
                problems.setdefault(n, []).append(f"state entry {e}")
    cg = Path("/sys/fs/cgroup")
    for h in sorted(cg.iterdir()):
        top = h / cgroup_parent
        if h.is_symlink() or not top.is_dir():
            continue
        for dirpath, dirnames, _ in os.walk(top):
            for d in dirnames:
                if d in owner:
                    problems.setdefault(owner[d], []).append(f"cgroup {dirpath}/{d}")
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if work in fields[4]:
                problems.setdefault("?", []).append(f"mount {fields[4]}")
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            groups = (p / "cgroup").read_text()
        except OSError:
            continue
        for line in groups.splitlines():
            path = line.split(":", 2)[2]
            leaf = path.rstrip("/").rsplit("/", 1)[-1]
            if f"/{cgroup_parent}/" in path + "/" and leaf in owner:
                try:
                    comm = (p / "comm").read_text().strip()
                except OSError:
                    comm = "?"
                problems.setdefault(owner[leaf], []).append(f"process {p.name} ({comm}) in {path}")
                break
    return problems


def cmd_leftovers(args):
    spec = json.loads(Path(args.spec).read_text())
    names = args.runtimes.split(",")
    ids = [i for n in names for i in spec[n].get("ids", []) + ([spec[n]["id"]] if spec[n].get("id") else [])]
    problems = leftovers(spec, names, args.work, ids, args.cgroup_parent)
    for name, items in problems.items():
        for p in items:
            print(f"{name}: {p}")
    sys.exit(1 if problems else 0)


# ---- report ------------------------------------------------------------------------

def load_results(path):
    res = {}
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        scen, rt, val = line.split("\t")
        res.setdefault(scen, {}).setdefault(rt, []).append(float(val))
    return res


def fmt(v, digits):
    return f"{v:.{digits}f}"


# Rows of the main table: key, label, unit divisor, digits, target (kraal / peer, or a
# kraal-only check).
ROWS = [
    ("run", "1. `run` /bin/true (create, start, wait, delete), ms", 1, 1),
    ("csd", "2. `create` + `start` + `delete`, separate calls, ms", 1, 1),
    ("exec", "3. `exec <id> /bin/true` into a running container, ms", 1, 1),
    ("rss", "4. peak RSS of the runtime during `run`, MiB", 1024, 2),
    ("many_each", "5. per container `create`+`start`, {n} containers, ms", 1, 1),
    ("many_total", "5. `create`+`start` of all {n}, s", 1000, 2),
    ("many_first", "5. mean `create`+`start` of the first {k}, ms", 1, 1),
    ("many_last", "5. mean `create`+`start` of the last {k}, ms", 1, 1),
    ("many_growth", "5. last {k} / first {k} (growth with the number of containers)", 1, 2),
    ("many_growth_median", "5. same with medians of the first and last {k}", 1, 2),
    ("many_delete_all", "5. `delete --force` of all {n}, s", 1000, 2),
    ("many_mem_per_ctr", "5. memory charged per running container, KiB", 1, 0),
    ("size", "6. binary size, MiB", 1024 * 1024, 2),
]

NO_RATIO = {"many_growth", "many_growth_median"}


def first_k(n):
    """How many containers "the first/last ten" are (fewer when BENCH_N < 20)."""
    return max(1, min(10, n // 2))


BREAKDOWN = [
    ("csd_create", "`create`"),
    ("csd_start", "`start`"),
    ("csd_delete", "`delete` (after exit)"),
]


def cell(vals, div, digits):
    if not vals:
        return "n/a"
    med = statistics.median(vals) / div
    if len(vals) == 1:
        return fmt(med, digits)
    return f"{fmt(med, digits)} ({fmt(min(vals) / div, digits)}–{fmt(max(vals) / div, digits)})"


def ratio(res, key, a, b):
    va, vb = res.get(key, {}).get(a), res.get(key, {}).get(b)
    if not va or not vb:
        return None
    mb = statistics.median(vb)
    return statistics.median(va) / mb if mb else None


def rfmt(r):
    return "n/a" if r is None else f"{r:.2f}x"


def target_lines(res, meta):
    """Each target of issue 8, measured: met or missed, and by how much."""
    out = []

    def check(label, value, limit, unit="x"):
        if value is None:
            out.append(f"- {label}: not measured")
            return
        ok = value <= limit
        if ok:
            out.append(f"- {label}: **met** ({value:.2f}{unit}, limit {limit:g}{unit})")
        else:
            out.append(f"- {label}: **missed** ({value:.2f}{unit}, limit {limit:g}{unit}; "
                       f"{(value / limit - 1) * 100:.0f}% over)")

    check("`run` median ≤ 0.9x crun", ratio(res, "run", "kraal", "crun"), 0.9)
    check("`run` median ≤ 0.4x runc", ratio(res, "run", "kraal", "runc"), 0.4)
    check("`exec` median ≤ 0.9x crun", ratio(res, "exec", "kraal", "crun"), 0.9)
    check("peak RSS ≤ crun's", ratio(res, "rss", "kraal", "crun"), 1.0)
    g = res.get("many_growth", {}).get("kraal")
    k = first_k(meta["many_n"])
    check(f"{meta['many_n']} containers: last {k} ≤ 1.2x first {k} (means)", statistics.median(g) if g else None, 1.2)
    gm = res.get("many_growth_median", {}).get("kraal")
    if gm:
        out.append(f"  (with medians instead of means: {statistics.median(gm):.2f}x)")
    left = res.get("many_leftovers", {})
    if left:
        bad = {rt: int(sum(v)) for rt, v in left.items() if sum(v)}
        out.append("- no leftover state, cgroups or mounts after the "
                   f"{meta['many_n']}-container scenario: "
                   + ("**clean** for " + ", ".join(meta["runtimes"]) if not bad
                      else "**leftovers**: " + ", ".join(f"{rt} {c}" for rt, c in bad.items())))
    return out


def render(res, meta):
    rts = meta["runtimes"]
    n = meta["many_n"]
    k = first_k(n)
    L = []
    L.append(f"Measured {meta['date']} by `contrib/bench/run.sh` "
             f"(runs per figure: {meta['runs']}, warm-up rounds: {meta['warmup']}, "
             f"{n}-container rounds: {meta['many_rounds']}).")
    L.append("")
    L.append(f"- Kernel: {meta['kernel']}; CPU: {meta['cpu']} ({meta['ncpu']} CPUs); "
             f"load average at start: {meta['load']}")
    L.append("- " + "; ".join(meta["versions"][rt] for rt in rts))
    L.append(f"- cgroup layout: {meta['layout']} (measured inside the private mount + cgroup namespace described under Method)")
    if meta.get("note"):
        L.append(f"- Note: {meta['note']}")
    L.append("")
    L.append("Each cell: median (min–max). Ratios are of medians; below 1 means kraal is faster or smaller.")
    L.append("")
    L.append("| scenario | " + " | ".join(rts) + " | kraal/crun | kraal/runc |")
    L.append("|---|" + "---:|" * (len(rts) + 2))
    for key, label, div, digits in ROWS:
        if key not in res:
            continue
        cells = [cell(res[key].get(rt, []), div, digits) for rt in rts]
        # A ratio of two growth factors says nothing: that row compares with 1.2.
        ratios = ["", ""] if key in NO_RATIO else [rfmt(ratio(res, key, "kraal", p)) for p in ("crun", "runc")]
        L.append(f"| {label.format(n=n, k=k)} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    for key, label in (("many_leftovers", f"5. leftovers after deleting the {n} (state, cgroups, mounts, processes)"),
                       ("leftovers", "leftovers after each scenario, all scenarios together")):
        left = res.get(key)
        if left:
            L.append(f"| {label} | "
                     + " | ".join(("none" if sum(left.get(rt, [0])) == 0 else f"**{int(sum(left[rt]))}**") for rt in rts)
                     + " | | |")
    if any(k in res for k, _ in BREAKDOWN):
        L.append("")
        L.append("Scenario 2 by step (ms):")
        L.append("")
        L.append("| step | " + " | ".join(rts) + " | kraal/crun | kraal/runc |")
        L.append("|---|" + "---:|" * (len(rts) + 2))
        for key, label in BREAKDOWN:
            if key in res:
                L.append(f"| {label} | " + " | ".join(cell(res[key].get(rt, []), 1, 2) for rt in rts) + " | "
                         + rfmt(ratio(res, key, "kraal", "crun")) + " | " + rfmt(ratio(res, key, "kraal", "runc")) + " |")
    L.append("")
    L.append("Targets of issue 8 (kraal):")
    L.append("")
    L.extend(target_lines(res, meta))
    return "\n".join(L) + "\n"


SKELETON = """# kraal performance

Written by `contrib/bench/run.sh` (results) and `contrib/bench/profile.sh` (profile).

"""


def replace_section(doc_path, name, body):
    """Replaces the text between the <!-- bench:NAME:begin/end --> markers of the doc,
    adding the markers (and the file) when they are missing; the rest of the doc is
    hand-written and left alone."""
    begin, end = f"<!-- bench:{name}:begin -->", f"<!-- bench:{name}:end -->"
    p = Path(doc_path)
    text = p.read_text() if p.exists() else SKELETON
    if begin not in text or end not in text:
        text = text.rstrip("\n") + f"\n\n{begin}\n{end}\n"
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(f"{head}{begin}\n{body}{end}{tail}")
    tmp.replace(p)


def cmd_report(args):
    res = load_results(args.results)
    meta = json.loads(Path(args.meta).read_text())
    body = render(res, meta)
    sys.stdout.write(body)
    if args.doc:
        replace_section(args.doc, "results", body)


# ---- strace summaries (profile.sh) --------------------------------------------------

CATEGORIES = [
    ("files (open/stat/read/write/close, dirs)", {
        "open", "openat", "openat2", "close", "close_range", "read", "write", "pread64", "pwrite64", "readv", "writev",
        "stat", "fstat", "lstat", "newfstatat", "statx", "statfs", "fstatfs", "access", "faccessat", "faccessat2",
        "readlink", "readlinkat", "getdents64", "lseek", "fcntl", "dup", "dup2", "dup3", "mkdir", "mkdirat",
        "unlink", "unlinkat", "rename", "renameat", "renameat2", "rmdir", "symlink", "symlinkat", "chmod",
        "fchmod", "fchmodat", "chown", "fchown", "fchownat", "lchown", "mknod", "mknodat", "chdir", "fchdir",
        "getcwd", "ioctl", "flock", "fsync", "fdatasync", "ftruncate", "truncate", "link", "linkat", "utimensat",
        "fgetxattr", "getxattr", "lgetxattr", "fsetxattr", "setxattr", "lsetxattr", "memfd_create", "sendfile",
        "copy_file_range", "inotify_init1", "inotify_add_watch", "name_to_handle_at", "open_by_handle_at",
        "fremovexattr", "removexattr", "listxattr", "flistxattr", "llistxattr"}),
    ("mounts and root (mount, pivot_root, chroot)", {
        "mount", "umount2", "pivot_root", "chroot", "mount_setattr", "open_tree", "move_mount", "fsopen",
        "fsconfig", "fsmount", "fspick"}),
    ("processes (clone, exec, wait, exit)", {
        "clone", "clone3", "fork", "vfork", "execve", "execveat", "wait4", "waitid", "exit", "exit_group",
        "getpid", "getppid", "gettid", "kill", "tgkill", "tkill", "pidfd_open", "pidfd_send_signal",
        "pidfd_getfd", "set_tid_address", "setsid", "setpgid", "getpgid", "getpgrp", "getsid"}),
    ("namespaces (unshare, setns)", {"unshare", "setns"}),
    ("credentials, capabilities, prctl, limits, seccomp", {
        "capget", "capset", "prctl", "setuid", "setgid", "setresuid", "setresgid", "setgroups", "getuid",
        "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups", "setrlimit", "prlimit64",
        "getrlimit", "seccomp", "personality", "setfsuid", "setfsgid", "umask", "sethostname", "setdomainname",
        "keyctl", "add_key", "arch_prctl", "landlock_create_ruleset", "landlock_add_rule",
        "landlock_restrict_self", "sched_setaffinity", "sched_getaffinity", "ioprio_set", "bpf", "uname",
        "getrandom", "sysinfo", "getrusage", "times"}),
    ("memory (mmap, brk, mprotect)", {
        "mmap", "munmap", "mprotect", "brk", "mremap", "madvise", "mlock", "munlock", "membarrier", "mincore"}),
    ("signals", {
        "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigtimedwait", "rt_sigsuspend", "sigaltstack",
        "signalfd4", "signalfd", "rt_sigpending", "rt_sigqueueinfo", "pause"}),
    ("threads, sync, polling, time", {
        "futex", "sched_yield", "nanosleep", "clock_nanosleep", "clock_gettime", "gettimeofday", "epoll_create1",
        "epoll_ctl", "epoll_pwait", "epoll_wait", "poll", "ppoll", "select", "pselect6", "set_robust_list",
        "get_robust_list", "rseq", "eventfd2", "timerfd_create", "timerfd_settime", "restart_syscall",
        "sched_getparam", "sched_getscheduler"}),
    ("pipes and sockets", {
        "pipe", "pipe2", "socket", "socketpair", "connect", "bind", "listen", "accept", "accept4", "sendmsg",
        "recvmsg", "sendto", "recvfrom", "shutdown", "getsockopt", "setsockopt", "getsockname", "getpeername"}),
]


def parse_strace_c(path):
    """Parses `strace -c -f -o` output into {syscall: (calls, errors, seconds)}."""
    rows = {}
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) < 5 or not parts[0].replace(".", "").isdigit():
            continue
        name = parts[-1]
        if name == "total":
            continue
        try:
            secs = float(parts[1])
            calls = int(parts[3])
            errors = int(parts[4]) if len(parts) == 6 else 0
        except ValueError:
            continue
        rows[name] = (calls, errors, secs)
    if not rows:
        die(f"no syscall rows in {path}: is it `strace -c` output?")
    return rows


def category_of(name):
    for label, names in CATEGORIES:
        if name in names:
            return label
    return "other"


def cmd_strace_summary(args):
    """Per-runtime totals, top 10, and counts per category side by side."""
    data = {}
    for spec in args.files:
        name, path = spec.split("=", 1)
        data[name] = parse_strace_c(path)
    names = list(data)
    L = []
    L.append(f"{args.title} (`strace -c -f`: the runtime, its helpers and the container's process):")
    L.append("")
    L.append("| | " + " | ".join(names) + " |")
    L.append("|---|" + "---:|" * len(names))
    L.append("| total syscalls | " + " | ".join(str(sum(c for c, _, _ in data[n].values())) for n in names) + " |")
    L.append("| failed syscalls | " + " | ".join(str(sum(e for _, e, _ in data[n].values())) for n in names) + " |")
    L.append("| distinct syscalls | " + " | ".join(str(len(data[n])) for n in names) + " |")
    cats = [c for c, _ in CATEGORIES] + ["other"]
    for c in cats:
        counts = [sum(v[0] for s, v in data[n].items() if category_of(s) == c) for n in names]
        if any(counts):
            L.append(f"| {c} | " + " | ".join(str(x) for x in counts) + " |")
    L.append("")
    for n in names:
        top = sorted(data[n].items(), key=lambda kv: -kv[1][0])[:10]
        L.append(f"Top 10 syscalls of {n}: " + ", ".join(f"{s} {c}" + (f" ({e} failed)" if e else "")
                                                       for s, (c, e, _) in top) + ".")
        L.append("")
    body = "\n".join(L)
    sys.stdout.write(body + "\n")
    if args.out:
        Path(args.out).write_text(body + "\n")


def cmd_strace_slow(args):
    """The slowest calls of a `strace -f -ttt -T` trace (where the lifecycle blocks),
    and the trace's wall time from first to last line."""
    calls = []
    first = last = None
    pat = re.compile(r"^(\d+)\s+(\d+\.\d+)\s+(.*?)\s+<(\d+\.\d+)>$")
    for line in Path(args.trace).read_text(errors="replace").splitlines():
        m = re.match(r"^(\d+)\s+(\d+\.\d+)\s", line)
        if m:
            ts = float(m.group(2))
            first = ts if first is None else first
            last = ts
        m = pat.match(line)
        if not m:
            continue
        text = m.group(3)
        r = re.match(r"<\.\.\. (\w+) resumed>", text)
        name = r.group(1) if r else text.split("(", 1)[0]
        calls.append((float(m.group(4)), m.group(1), name, text))
    if first is None:
        die(f"no timed lines in {args.trace}: is it `strace -f -ttt -T` output?")
    print(f"trace wall time {1000 * (last - first):.1f} ms, {len(calls)} completed calls")
    for dur, pid, name, text in sorted(calls, reverse=True)[: args.top]:
        print(f"{1000 * dur:8.2f} ms  pid {pid:>7}  {text[:110]}")


def cmd_section(args):
    """Writes a file's text into a marked section of the doc (profile.sh)."""
    replace_section(args.doc, args.name, Path(args.body).read_text())


# ---- density (density.sh) ------------------------------------------------------------
#
# One (N, runtime) run at a time: N idle containers created and started one after
# another below one common parent cgroup, measured while all of them run, deleted one
# after another, then checked for leftovers. One JSON line per run goes to the results
# file; `density-report` turns the lines into the table.

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_hierarchies():
    """Every hierarchy mounted in the namespace (v1 controllers and cgroup2), each once."""
    return [h for h in sorted(CGROUP_ROOT.iterdir()) if h.is_dir() and not h.is_symlink()]


def read_int(path):
    try:
        return int(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def proc_cgroups(pid):
    """{hierarchy id: path} of a process, paths as this cgroup namespace sees them."""
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return None
    out = {}
    for line in text.splitlines():
        hid, _, path = line.split(":", 2)
        out[hid] = path
    return out


def proc_status(pid):
    """(state letter, VmRSS in KiB, comm) of a process, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    f = dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)
    rss = int(f.get("VmRSS", "0 kB").split()[0])
    return f.get("State", "?")[:1], rss, f.get("Name", "?").strip()


def proc_exe(pid):
    try:
        return os.path.realpath(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return None


class Namespace:
    """Which processes belong to the bench. On a hybrid host the namespace's cgroup2
    root is a cgroup of the bench's own, so a process is ours when its cgroup2 path does
    not climb out of it (`/..`). Without cgroup2 (legacy host) the v1 roots are shared
    with the caller's neighbours: then ours means our mount namespace, or a container
    cgroup below the bench's top cgroup."""

    def __init__(self, top):
        self.top = top
        self.mntns = os.readlink("/proc/self/ns/mnt")
        with open("/proc/self/mountinfo") as f:
            self.v2 = any(line.split(" - ", 1)[1].startswith("cgroup2 ") for line in f if " - " in line)

    def ours(self, pid, groups):
        if self.v2 and "0" in groups:
            return not groups["0"].startswith("/..")
        if any(p.startswith(f"/{self.top}/") for p in groups.values()):
            return True
        try:
            return os.readlink(f"/proc/{pid}/ns/mnt") == self.mntns
        except OSError:
            return False

    def processes(self):
        """{pid: cgroups} of every process of the bench (this driver included)."""
        out = {}
        for p in Path("/proc").iterdir():
            if not p.name.isdigit():
                continue
            groups = proc_cgroups(p.name)
            if groups is not None and self.ours(p.name, groups):
                out[int(p.name)] = groups
        return out


def in_parent(groups, parent):
    return any(p == f"/{parent}" or p.startswith(f"/{parent}/") for p in groups.values())


def timed_call(argv, err, timeout):
    """Runs one runtime command; returns (ms, exit code or None on timeout, message).
    stdout goes to /dev/null and stderr to the log (a sleeping container inherits
    them: a pipe of ours would stay open); on timeout the runtime process, which this
    driver started, is killed."""
    err.write(("$ " + " ".join(argv) + "\n").encode())
    err.flush()
    pos = err.tell()
    t0 = time.perf_counter_ns()
    try:
        rc = subprocess.call(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, timeout=timeout)
    except subprocess.TimeoutExpired:
        rc = None
    t1 = time.perf_counter_ns()
    msg = ""
    if rc != 0:
        err.flush()
        with open(err.name, "rb") as f:
            f.seek(pos)
            msg = f.read().decode(errors="replace").strip().replace("\n", " / ")[:500]
        if rc is None:
            msg = f"timed out after {timeout}s" + (f": {msg}" if msg else "")
    return (t1 - t0) / 1e6, rc, msg


def density_bundles(base_config, rootfs, bundles, ids, parent, args):
    """One bundle per container: the base config with the container's cgroupsPath
    below the common parent, the shared rootfs by absolute path and the idle args."""
    base = json.loads(Path(base_config).read_text())
    base["root"]["path"] = rootfs
    base["process"]["args"] = args
    out = []
    for cid in ids:
        d = Path(bundles) / cid
        d.mkdir(parents=True)
        base["linux"]["cgroupsPath"] = f"{parent}/{cid}"
        (d / "config.json").write_text(json.dumps(base))
        out.append(str(d))
    return out


def density_leftovers(args, ids, binary, before, ns):
    """What the run left behind: state entries, cgroups below the common parent (any
    hierarchy), mounts naming the work directory or a container, and processes that
    appeared during the run (containers, runtime helpers, zombies nobody reaped)."""
    items = []
    root = Path(args.state_root)
    if root.is_dir():
        items += [f"state entry {e}" for e in sorted(root.iterdir())]
    for h in cgroup_hierarchies():
        top = h / args.parent
        if top.is_dir():
            for dirpath, dirnames, _ in os.walk(top):
                items += [f"cgroup {dirpath}/{d}" for d in dirnames]
    idset = set(ids)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4]
            if args.work in mp or idset.intersection(mp.split("/")):
                items.append(f"mount {mp}")
    for pid, groups in ns.processes().items():
        if pid in before:
            continue
        st = proc_status(pid)
        if st is None:
            continue
        why = "in the parent cgroup" if in_parent(groups, args.parent) else (
            "runtime binary" if proc_exe(pid) == binary else "started during the run")
        items.append(f"process {pid} ({st[2]}, state {st[0]}, {why})")
    return items


def density_cleanup(args, err, cmd, ids):
    """Clears what a run left so the next one starts clean: containers still in the
    state root are deleted, processes still in the parent's cgroups (containers this
    run started) are killed by PID, and the parent's cgroups removed."""
    root = Path(args.state_root)
    if root.is_dir():
        for e in sorted(root.iterdir()):
            timed_call(cmd + ["delete", "--force", e.name], err, args.timeout)
    for _ in range(50):
        pids = set()
        for h in cgroup_hierarchies():
            top = h / args.parent
            if top.is_dir():
                for procs in top.rglob("cgroup.procs"):
                    pids.update(int(x) for x in (procs.read_text().split() if procs.exists() else []))
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    for h in cgroup_hierarchies():
        top = h / args.parent
        if top.is_dir():
            for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):
                try:
                    os.rmdir(dirpath)
                except OSError as e:
                    print(f"{PROG}: warning: could not remove cgroup {dirpath}: {e}", file=sys.stderr)


def cmd_density(args):
    """One (N, runtime) run; appends one JSON line to --out."""
    cmd = json.loads(args.command)
    binary = os.path.realpath(args.binary)
    ns = Namespace(args.parent.split("/", 1)[0])
    n = args.n
    ids = [f"{args.id_prefix}-{i:04d}" for i in range(1, n + 1)]
    bundles = density_bundles(args.base_config, args.rootfs, args.bundles, ids, args.parent, args.args.split())
    mem = CGROUP_ROOT / "memory"
    # The common parent exists (empty) before the first container, so its charge
    # before is a real reading; only the memory hierarchy is made here: the runtimes
    # make the parent in the others (cpuset needs its cpus and mems copied down).
    (mem / args.parent).mkdir(parents=True, exist_ok=True)
    rec = {"n": n, "runtime": args.name, "create_ms": [], "start_ms": [], "failed": None}
    rec["mem_parent0"] = read_int(mem / args.parent / "memory.usage_in_bytes")
    rec["kmem_parent0"] = read_int(mem / args.parent / "memory.kmem.usage_in_bytes")
    rec["mem_ns0"] = read_int(mem / "memory.usage_in_bytes")
    before = set(ns.processes())
    created = []
    step = max(1, n // 10)
    t_run = time.monotonic()
    with open(args.log, "ab") as err:
        for i, (cid, b) in enumerate(zip(ids, bundles)):
            tc, rc, msg = timed_call(cmd + ["create", "--bundle", b, cid], err, args.timeout)
            if rc != 0:
                rec["failed"] = {"at": i + 1, "step": "create", "msg": msg}
                # A failed create that still left a state entry is deleted with the others.
                if (Path(args.state_root) / cid).exists():
                    created.append(cid)
                break
            created.append(cid)
            ts, rc, msg = timed_call(cmd + ["start", cid], err, args.timeout)
            if rc != 0:
                rec["failed"] = {"at": i + 1, "step": "start", "msg": msg}
                break
            rec["create_ms"].append(tc)
            rec["start_ms"].append(ts)
            if (i + 1) % step == 0 or i + 1 == n:
                print(f"{PROG}: {args.name} N={n}: {i + 1}/{n} running ({time.monotonic() - t_run:.1f} s)",
                      file=sys.stderr, flush=True)
        if rec["failed"]:
            f = rec["failed"]
            print(f"{PROG}: {args.name} N={n}: {f['step']} of container {f['at']} failed: {f['msg']}",
                  file=sys.stderr, flush=True)
        rec["started"] = len(rec["start_ms"])
        rec["create_start_wall_s"] = time.monotonic() - t_run
        # While all of them run.
        rec["mem_parent"] = read_int(mem / args.parent / "memory.usage_in_bytes")
        rec["kmem_parent"] = read_int(mem / args.parent / "memory.kmem.usage_in_bytes")
        rec["mem_ns"] = read_int(mem / "memory.usage_in_bytes")
        procs = ns.processes()
        ctr, rt, other = 0, [], []
        for pid, groups in procs.items():
            if pid in before:
                continue
            st = proc_status(pid)
            if st is None:
                continue
            # The runtime's binary first: a helper (or an init that never exec'd) may
            # sit in a container's cgroup and is the runtime's memory, not the container.
            if proc_exe(pid) == binary:
                rt.append(st[1])
            elif in_parent(groups, args.parent):
                ctr += 1
            else:
                other.append(f"{pid} {st[2]} (state {st[0]}, {st[1]} KiB)")
        rec["ctr_procs"] = ctr
        rec["rt_procs"] = len(rt)
        rec["rt_rss_kib"] = sum(rt)
        rec["other_procs"] = other
        print(f"{PROG}: {args.name} N={n}: {ctr} container processes, {len(rt)} {args.name} processes "
              f"({sum(rt)} KiB), parent charged {((rec['mem_parent'] or 0) - (rec['mem_parent0'] or 0)) / 1024:.0f} KiB; "
              f"deleting", file=sys.stderr, flush=True)
        t_del = time.monotonic()
        rec["delete_ms"], rec["delete_failures"] = [], []
        for i, cid in enumerate(created):
            td, rc, msg = timed_call(cmd + ["delete", "--force", cid], err, args.timeout)
            rec["delete_ms"].append(td)
            if rc != 0:
                rec["delete_failures"].append(f"{cid}: {msg}")
            if (i + 1) % step == 0 and i + 1 < len(created):
                print(f"{PROG}: {args.name} N={n}: {i + 1}/{len(created)} deleted ({time.monotonic() - t_del:.1f} s)",
                      file=sys.stderr, flush=True)
        rec["delete_wall_s"] = time.monotonic() - t_del
        # Exiting containers take a moment to be reaped (their parent is PID 1):
        # give stragglers a few seconds before anything counts as left over.
        deadline = time.monotonic() + args.settle
        while True:
            left = density_leftovers(args, ids, binary, before, ns)
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        rec["leftovers"] = left
        for item in left:
            print(f"{PROG}: {args.name} N={n}: leftover: {item}", file=sys.stderr)
        density_cleanup(args, err, cmd, ids)
    shutil.rmtree(args.bundles, ignore_errors=True)
    rec["wall_s"] = time.monotonic() - t_run
    print(f"{PROG}: {args.name} N={n}: deleted in {rec['delete_wall_s']:.1f} s, leftovers: {len(left)}",
          file=sys.stderr, flush=True)
    with open(args.out, "a") as out:
        out.write(json.dumps(rec) + "\n")


def tenth(n):
    """How many containers "the first/last 10%" are."""
    return max(1, n // 10)


def density_figures(rec):
    """The table's figures of one run (None where the run gave none)."""
    c = [a + b for a, b in zip(rec["create_ms"], rec["start_ms"])]
    f = {"started": rec["started"], "n": rec["n"], "failed": rec["failed"]}
    k = tenth(rec["n"])
    full = len(c) == rec["n"]
    f["total_s"] = sum(c) / 1000 if c else None
    f["median_ms"] = statistics.median(c) if c else None
    f["first_ms"] = statistics.mean(c[:k]) if full else None
    f["last_ms"] = statistics.mean(c[-k:]) if full else None
    f["growth"] = f["last_ms"] / f["first_ms"] if full else None
    f["growth_med"] = statistics.median(c[-k:]) / statistics.median(c[:k]) if full else None
    s = rec["started"]
    if s and rec.get("mem_parent") is not None and rec.get("mem_parent0") is not None:
        f["mem_kib"] = (rec["mem_parent"] - rec["mem_parent0"]) / 1024 / s
    else:
        f["mem_kib"] = None
    if s and rec.get("kmem_parent") is not None and rec.get("kmem_parent0") is not None:
        f["kmem_kib"] = (rec["kmem_parent"] - rec["kmem_parent0"]) / 1024 / s
    else:
        f["kmem_kib"] = None
    if s and rec.get("mem_ns") is not None and rec.get("mem_ns0") is not None:
        f["mem_ns_kib"] = (rec["mem_ns"] - rec["mem_ns0"]) / 1024 / s
    else:
        f["mem_ns_kib"] = None
    f["ctr_procs"] = rec.get("ctr_procs")
    f["rt_procs"] = rec.get("rt_procs")
    f["rt_rss_kib"] = rec.get("rt_rss_kib")
    f["other_procs"] = rec.get("other_procs", [])
    f["delete_s"] = sum(rec["delete_ms"]) / 1000 if rec.get("delete_ms") else None
    f["delete_failures"] = rec.get("delete_failures", [])
    f["leftovers"] = rec.get("leftovers", [])
    return f


def dfmt(v, digits, suffix=""):
    return "n/a" if v is None else f"{v:.{digits}f}{suffix}"


def dratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def density_render(recs, meta):
    rts = meta["runtimes"]
    runs = {(r["n"], r["runtime"]): density_figures(r) for r in recs}
    ns = sorted({r["n"] for r in recs})
    L = []
    L.append(f"Measured {meta['date']} by `contrib/bench/density.sh {' '.join(str(n) for n in meta['ns'])}` "
             f"(idle `{meta['args']}` containers; one runtime at a time, the order rotating with N).")
    L.append("")
    L.append(f"- Kernel: {meta['kernel']}; CPU: {meta['cpu']} ({meta['ncpu']} CPUs, {meta['mem_gib']} GiB); "
             f"load average at start: {meta['load']}, at the end: {meta.get('load_end', 'n/a')}")
    L.append("- " + "; ".join(meta["versions"][rt] for rt in rts))
    L.append(f"- cgroup layout: {meta['layout']} (in the private mount + cgroup namespace described under Method); "
             f"pid_max {meta['pid_max']}, RLIMIT_NOFILE {meta['nofile']}")
    L.append("")
    L.append("Times are of the runtime invocations alone (create and start are separate calls). "
             "Memory is the growth of the common parent cgroup's `memory.usage_in_bytes` "
             "(v1) while all containers run, divided by their number.")
    L.append("")
    L.append("| N | runtime | running | `create`+`start` of all, s | per container, median ms | "
             "first 10%, mean ms | last 10%, mean ms | last/first (means) | last/first (medians) | "
             "memory charged per container, KiB (kernel part) | runtime processes while running (RSS) | "
             "`delete --force` of all, s | leftovers |")
    L.append("|---:|---|" + "---:|" * 11)
    notes = []
    for n in ns:
        for rt in rts:
            f = runs.get((n, rt))
            if f is None:
                continue
            running = f"{f['ctr_procs']}/{n}" if f["ctr_procs"] is not None else "n/a"
            if f["failed"]:
                running = f"**{running}**"
                notes.append(f"{rt}, N={n}: `{f['failed']['step']}` of container {f['failed']['at']} failed: "
                             f"{f['failed']['msg']}")
            rtp = "n/a" if f["rt_procs"] is None else (
                "0" if f["rt_procs"] == 0 else f"**{f['rt_procs']}** ({f['rt_rss_kib'] / 1024:.1f} MiB)")
            if f["other_procs"]:
                notes.append(f"{rt}, N={n}: {len(f['other_procs'])} other processes appeared while the containers "
                             f"ran: " + "; ".join(f["other_procs"][:5]))
            kinds = {}
            for item in f["leftovers"]:
                kind = item.split()[0]
                kinds[kind] = kinds.get(kind, 0) + 1
            left = "none" if not f["leftovers"] else (
                f"**{len(f['leftovers'])}** (" + ", ".join(f"{c} {k}" for k, c in kinds.items()) + ")")
            if f["leftovers"]:
                notes.append(f"{rt}, N={n}: left behind: " + "; ".join(f["leftovers"][:5])
                             + (" ..." if len(f["leftovers"]) > 5 else ""))
            if f["delete_failures"]:
                notes.append(f"{rt}, N={n}: {len(f['delete_failures'])} `delete --force` calls failed, first: "
                             f"{f['delete_failures'][0]}")
            mem = dfmt(f["mem_kib"], 0)
            if f["kmem_kib"] is not None:
                mem += f" ({f['kmem_kib']:.0f})"
            L.append(f"| {n} | {rt} | {running} | {dfmt(f['total_s'], 2)} | {dfmt(f['median_ms'], 1)} | "
                     f"{dfmt(f['first_ms'], 1)} | {dfmt(f['last_ms'], 1)} | {dfmt(f['growth'], 2)} | "
                     f"{dfmt(f['growth_med'], 2)} | {mem} | {rtp} | {dfmt(f['delete_s'], 2)} | {left} |")
    peers = [p for p in ("crun", "runc") if p in rts]
    if "kraal" in rts and peers:
        L.append("")
        L.append("kraal against the others (ratios of the figures above; below 1 means kraal is faster or smaller):")
        L.append("")
        L.append("| N | " + " | ".join(f"kraal/{p} {what}" for p in peers
                                       for what in ("`create`+`start` all", "memory/container", "`delete` all")) + " |")
        L.append("|---:|" + "---:|" * (3 * len(peers)))
        for n in ns:
            k = runs.get((n, "kraal"))
            if k is None:
                continue
            cells = []
            for p in peers:
                o = runs.get((n, p))
                for key in ("total_s", "mem_kib", "delete_s"):
                    ok = o is not None and not k["failed"] and not o["failed"]
                    cells.append(rfmt(dratio(k[key], o[key]) if ok else None))
            L.append(f"| {n} | " + " | ".join(cells) + " |")
    outside = []
    for n in ns:
        cells = [f"{rt} {f['mem_ns_kib'] - f['mem_kib']:.0f}" for rt in rts
                 if (f := runs.get((n, rt))) and f["mem_ns_kib"] is not None and f["mem_kib"] is not None]
        if cells:
            outside.append(f"N={n}: " + ", ".join(cells))
    if outside:
        notes.append("memory charged outside the parent, per container, KiB (the growth of the namespace's root "
                     "memory cgroup minus the parent's: what a runtime allocated for a container before the "
                     "container's process joined its cgroup, state files, and anything else running in the "
                     "caller's cgroup): " + "; ".join(outside))
    if notes:
        L.append("")
        L.extend(f"- {x}" for x in notes)
    L.append("")
    L.append("Targets of issue 12 (kraal):")
    L.append("")
    L.extend(density_targets(runs, ns, rts))
    return "\n".join(L) + "\n"


def density_targets(runs, ns, rts):
    out = []
    if "kraal" not in rts:
        return ["- kraal was not measured"]
    top = max(ns)
    k = runs.get((top, "kraal"))
    if k is None:
        return [f"- kraal was not measured at N={top}"]
    ok = not k["failed"] and k["ctr_procs"] == top
    out.append(f"- {top} idle containers running at once: " + (
        "**met**" if ok else f"**missed** ({k['ctr_procs']} running"
        + (f"; {k['failed']['step']} of container {k['failed']['at']} failed" if k["failed"] else "") + ")"))
    for n in ns:
        f = runs.get((n, "kraal"))
        if f is None or f["growth"] is None:
            out.append(f"- N={n}: last 10% ≤ 1.2x first 10%: not measured (the run did not complete)")
            continue
        verdict = "**met**" if f["growth"] <= 1.2 else "**missed**"
        out.append(f"- N={n}: last 10% ≤ 1.2x first 10% (means): {verdict} ({f['growth']:.2f}x; "
                   f"medians {f['growth_med']:.2f}x)")
    c = runs.get((top, "crun"))
    if c is not None and not c["failed"] and not k["failed"] and k["mem_kib"] is not None and c["mem_kib"]:
        r = k["mem_kib"] / c["mem_kib"]
        out.append(f"- N={top}: memory charged per container ≤ crun's: " + ("**met**" if r <= 1 else "**missed**")
                   + f" ({k['mem_kib']:.0f} KiB against {c['mem_kib']:.0f}, {r:.2f}x)")
        r = k["delete_s"] / c["delete_s"]
        out.append(f"- N={top}: `delete --force` of all faster than crun's: " + ("**met**" if r < 1 else "**missed**")
                   + f" ({k['delete_s']:.2f} s against {c['delete_s']:.2f} s, {r:.2f}x)")
    else:
        out.append(f"- N={top}: comparison with crun: not measured (crun missing or a run failed)")
    daemons = [n for n in ns if runs.get((n, "kraal")) and runs[(n, "kraal")]["rt_procs"]]
    out.append("- no kraal process left per container while they run: "
               + ("**met** (none at any N)" if not daemons else "**missed** (at N=" + ", ".join(map(str, daemons)) + ")"))
    dirty = [f"{rt} N={n}" for (n, rt), f in sorted(runs.items()) if f["leftovers"]]
    out.append("- nothing left after deleting them (state, cgroups, mounts, processes): "
               + ("**clean** for every runtime and N" if not dirty else "**leftovers**: " + ", ".join(dirty)))
    return out


def cmd_density_report(args):
    recs = [json.loads(x) for x in Path(args.results).read_text().splitlines() if x.strip()]
    if not recs:
        die(f"no runs in {args.results}")
    meta = json.loads(Path(args.meta).read_text())
    body = density_render(recs, meta)
    sys.stdout.write(body)
    if args.doc:
        replace_section(args.doc, "density", body)



def main():
    ap = argparse.ArgumentParser(prog=PROG)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("csd", "many", "leftovers"):
        p = sub.add_parser(name)
        p.add_argument("--spec", required=True, help="JSON: runtime -> command, state root, bundles, ids")
        p.add_argument("--runtimes", required=True, help="comma-separated runtime names")
        p.add_argument("--log", default="/dev/null", help="where the runtimes' stderr goes")
        p.add_argument("--out", help="results file (appended)")
        p.add_argument("--work", default="/nonexistent", help="the bench's work directory")
        p.add_argument("--cgroup-parent", default="kraal-bench", help="first component of the cgroupsPaths")
        p.add_argument("--runs", type=int, default=30)
        p.add_argument("--warmup", type=int, default=3)
        p.add_argument("--n", type=int, default=100)
        p.add_argument("--rounds", type=int, default=1)
    p = sub.add_parser("report")
    p.add_argument("--results", required=True)
    p.add_argument("--meta", required=True)
    p.add_argument("--doc")
    p = sub.add_parser("strace-summary")
    p.add_argument("--out")
    p.add_argument("--title", default="Syscalls")
    p.add_argument("files", nargs="+", help="NAME=strace-c-output")
    p = sub.add_parser("strace-slow")
    p.add_argument("--top", type=int, default=10)
    p.add_argument("trace")
    p = sub.add_parser("section")
    p.add_argument("--doc", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--body", required=True)
    p = sub.add_parser("density", help="one (N, runtime) run of density.sh")
    p.add_argument("--name", required=True, help="the runtime's name")
    p.add_argument("--command", required=True, help="JSON list: the runtime's command line with its --root")
    p.add_argument("--binary", required=True, help="the runtime's executable (its processes are counted)")
    p.add_argument("--state-root", required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--parent", required=True, help="the common parent cgroup, relative (TOP/RUN)")
    p.add_argument("--id-prefix", required=True)
    p.add_argument("--base-config", required=True)
    p.add_argument("--rootfs", required=True)
    p.add_argument("--bundles", required=True, help="directory for this run's bundles (removed after)")
    p.add_argument("--args", default="sleep 100000", help="the idle process, split on spaces")
    p.add_argument("--work", required=True, help="the bench's work directory (no mount may name it after)")
    p.add_argument("--log", required=True, help="where the runtimes' stderr goes")
    p.add_argument("--out", required=True, help="results file (one JSON line per run, appended)")
    p.add_argument("--timeout", type=float, default=120, help="seconds one runtime call may take")
    p.add_argument("--settle", type=float, default=5, help="seconds for exiting processes to be reaped")
    p = sub.add_parser("density-report")
    p.add_argument("--results", required=True)
    p.add_argument("--meta", required=True)
    p.add_argument("--doc")
    args = ap.parse_args()
    {"csd": cmd_csd, "many": cmd_many, "leftovers": cmd_leftovers, "report": cmd_report,
     "strace-summary": cmd_strace_summary, "strace-slow": cmd_strace_slow, "section": cmd_section,
     "density": cmd_density, "density-report": cmd_density_report}[args.cmd](args)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        # run.sh's cleanup deletes whatever was left; no traceback for Ctrl-C.
        print(f"{PROG}: interrupted", file=sys.stderr)
        sys.exit(130)
