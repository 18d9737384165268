#!/usr/bin/python3
"""Side-by-side cost of the CVE-2019-5736 protection: two kraal binaries (before/after),
alternating run by run; the "after" binary is measured twice, once with its default
protection (the read-only overlay view, as root) and once forced onto the sealed memfd
fallback. Run as root. Not part of run.sh: that one compares kraal with crun and runc.

usage: contrib/bench/exeseal-ab.py BEFORE AFTER WORKDIR [RUNS] [WARMUP]
  BEFORE, AFTER: release binaries, in a directory of their own that WORKDIR is not in
  (e.g. /tmp/ab/bin/kraal-before, /tmp/ab/bin/kraal-after, WORKDIR /tmp/ab/w).
Scenarios: `run` /bin/true (wall), `exec` /bin/true into a running container (wall),
peak RSS of `run` (/usr/bin/time %M), and what a live foreground `run` holds
(smaps_rollup of the kraal process while its container sleeps).
Each round runs both binaries, the order rotating every round; figures are the
medians over RUNS rounds after WARMUP unrecorded ones, with min-max.
"""
import json, os, shutil, statistics, subprocess, sys, time

before, after, work = sys.argv[1], sys.argv[2], sys.argv[3]
RUNS = int(sys.argv[4]) if len(sys.argv) > 4 else 30
WARM = int(sys.argv[5]) if len(sys.argv) > 5 else 3
BINS = {"before": before, "after": after, "after_memfd": after}
# after_memfd: its state root sits inside the binary's directory, which overlayfs
# refuses as overlapping layers, so kraal falls back to the sealed memfd copy.
ROOTS = {"before": os.path.join(work, "state-before"), "after": os.path.join(work, "state-after"),
         "after_memfd": os.path.join(os.path.dirname(after), "state-after_memfd")}
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TAG = f"ab{os.getpid()}"
# kraal removes a container's cgroup, not the parents it made: removed at the end.
CG_PARENT = f"kraal-ab-{os.getpid()}"


def remove_cg_parent():
    for top, dirs, _ in os.walk("/sys/fs/cgroup"):
        if os.path.basename(top) == CG_PARENT:
            try:
                os.rmdir(top)
            except OSError as e:
                print(f"leftover cgroup {top}: {e}", file=sys.stderr)
            dirs[:] = []
        elif top.count("/") > 8:
            dirs[:] = []

os.makedirs(work, exist_ok=True)
base = os.path.join(work, "base")
if not os.path.exists(os.path.join(base, "config.json")):
    subprocess.run(["bash", f"{REPO}/contrib/mkbundle.sh", base, "--", "/bin/true"],
                   env=dict(os.environ, KRAAL=before), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
cfg = json.load(open(os.path.join(base, "config.json")))


def bundle(name, args):
    d = os.path.join(work, name)
    os.makedirs(d, exist_ok=True)
    c = json.loads(json.dumps(cfg))
    c["root"]["path"] = os.path.join(base, "rootfs")
    c["process"]["args"] = args
    c["linux"]["cgroupsPath"] = f"{CG_PARENT}/{name}"
    json.dump(c, open(os.path.join(d, "config.json"), "w"))
    return d


def k(which, *args, **kw):
    return [BINS[which], "--root", ROOTS[which], *args]


def timed(cmd):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (time.perf_counter() - t) * 1000


res = {s: {w: [] for w in BINS} for s in ("run_ms", "exec_ms", "rss_kb")}
rb = {w: bundle(f"{TAG}-run-{w}", ["/bin/true"]) for w in BINS}
eb = {w: bundle(f"{TAG}-exec-{w}", ["sleep", "3600"]) for w in BINS}
for w in BINS:
    subprocess.run(k(w, "create", "--bundle", eb[w], f"{TAG}-exec-{w}"), check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    subprocess.run(k(w, "start", f"{TAG}-exec-{w}"), check=True)
try:
    order = list(BINS)
    for r in range(WARM + RUNS):
        o = order[r % 3:] + order[: r % 3]
        for w in o:
            v = timed(k(w, "run", "--bundle", rb[w], f"{TAG}-run-{w}"))
            if r >= WARM:
                res["run_ms"][w].append(v)
        for w in o:
            v = timed(k(w, "exec", f"{TAG}-exec-{w}", "/bin/true"))
            if r >= WARM:
                res["exec_ms"][w].append(v)
        for w in o:
            f = os.path.join(work, "rss.txt")
            subprocess.run(["/usr/bin/time", "-f", "%M", "-o", f,
                            *k(w, "run", "--bundle", rb[w], f"{TAG}-run-{w}")],
                           check=True, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if r >= WARM:
                res["rss_kb"][w].append(int(open(f).read().split()[-1]))
    # What a live foreground `run` holds while its container runs.
    held = {}
    for w in BINS:
        b = bundle(f"{TAG}-hold-{w}", ["sleep", "3600"])
        p = subprocess.Popen(k(w, "run", "--bundle", b, f"{TAG}-hold-{w}"),
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        for _ in range(200):
            st = subprocess.run(k(w, "state", f"{TAG}-hold-{w}"), capture_output=True)
            if st.returncode == 0 and json.loads(st.stdout)["status"] == "running":
                break
            time.sleep(0.02)
        roll = open(f"/proc/{p.pid}/smaps_rollup").read()
        vals = {l.split(":")[0]: int(l.split()[1]) for l in roll.splitlines()[1:]}
        exe = os.readlink(f"/proc/{p.pid}/exe")
        held[w] = (vals.get("Rss"), vals.get("Pss_Shmem", 0), vals.get("Pss_File", 0), exe)
        subprocess.run(k(w, "delete", "--force", f"{TAG}-hold-{w}"), check=True)
        p.wait()
finally:
    for w in BINS:
        subprocess.run(k(w, "delete", "--force", f"{TAG}-exec-{w}"))
    remove_cg_parent()

print(f"{RUNS} alternating rounds (+{WARM} warm-up), median [min-max]")
print("| figure | before (9f4dbed) | after: overlay | ratio | after: memfd fallback | ratio |")
print("|---|---|---|---|---|---|")
for s, unit in (("run_ms", "ms"), ("exec_ms", "ms"), ("rss_kb", "KiB")):
    m = {w: statistics.median(res[s][w]) for w in BINS}
    cell = {w: f"{m[w]:.1f} {unit} [{min(res[s][w]):.1f}-{max(res[s][w]):.1f}]" for w in BINS}
    print(f"| {s} | {cell['before']} | {cell['after']} | {m['after'] / m['before']:.3f} "
          f"| {cell['after_memfd']} | {m['after_memfd'] / m['before']:.3f} |")
for w in BINS:
    rss, shm, fil, exe = held[w]
    print(f"live `run` ({w}): Rss {rss} KiB, Pss_Shmem {shm} KiB, Pss_File {fil} KiB, exe {exe}")
print("binary sizes:", {w: os.path.getsize(b) for w, b in BINS.items()})
# Time of the protection alone: `exec` of a container that does not exist fails right
# after it (the state root is the same, so only the sealing differs).
nos = {w: [] for w in BINS}
for r in range(WARM + RUNS):
    for w in order[r % 3:] + order[: r % 3]:
        t = time.perf_counter()
        subprocess.run(k(w, "exec", "nosuch", "/bin/true"), stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if r >= WARM:
            nos[w].append((time.perf_counter() - t) * 1000)
print("exec of a missing container (sealing + start-up only), median ms:",
      {w: round(statistics.median(v), 2) for w, v in nos.items()})
