#!/usr/bin/env bash
# Fails if the test suite left anything behind: container state, mounts, cgroups or
# processes made by kraal's tests and integration scripts.
set -u
leaks=0
report() { echo "leakcheck: $*" >&2; leaks=1; }
for root in /run/kraal; do
  [ -d "$root" ] && [ -n "$(ls -A "$root" 2>/dev/null)" ] && report "state left in $root: $(ls "$root" | head -5 | tr '\n' ' ')"
done
for d in /tmp/kraal-test-*; do
  [ -e "$d" ] && report "test dir left: $d"
done
m=$(grep -E 'kraal-test|kraal-cgtest|kraal-bench' /proc/self/mountinfo | head -5)
[ -n "$m" ] && report "mounts left: $m"
c=$(find /sys/fs/cgroup -maxdepth 6 -type d \( -name 'kraal-test*' -o -name 'kraal-cgtest*' -o -name 'kraal-bench*' \) 2>/dev/null | head -5)
[ -n "$c" ] && report "cgroups left: $c"
p=$(for d in /proc/[0-9]*; do readlink "$d/exe" 2>/dev/null; done | grep -c '/kraal$')
[ "${p:-0}" -gt 0 ] && report "$p kraal process(es) still running"
if [ "$leaks" -eq 0 ]; then echo "leakcheck: nothing left behind"; fi
exit "$leaks"
