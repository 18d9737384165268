#!/usr/bin/env python3
"""Turns the addresses steptrace printed into an lld symbol ordering file.

    symbolize.py LINKMAP TRACE... > kraal.order
    symbolize.py --starts LINKMAP > starts      (every function's address, for steptrace)

LINKMAP is lld's map (-Map) of the kraal binary the traces were taken from: with
function sections, each input section `.text.NAME` is the function NAME, at the
address and size the map gives (the binary itself is stripped). Each TRACE holds one hex
address a line (relative to the load base), in first-executed order. The output
lists each function that ran once, in the order it first ran across the traces
given (earlier traces first), by its mangled name, as `--symbol-ordering-file`
wants it.
"""
import bisect
import subprocess
import sys


def functions(linkmap):
    starts, ends, names = [], [], []
    with open(linkmap) as f:
        for line in f:
            parts = line.split(None, 4)
            if len(parts) != 5 or ":(.text." not in parts[4]:
                continue
            name = parts[4].rsplit(":(.text.", 1)[1].rstrip().rstrip(")")
            # LLVM puts functions it deems cold or hot in .text.unlikely.NAME or
            # .text.hot.NAME; the symbol is NAME all the same.
            for prefix in ("unlikely.", "hot.", "startup.", "exit.", "split."):
                if name.startswith(prefix):
                    name = name[len(prefix):]
                    break
            addr, size = int(parts[0], 16), int(parts[2], 16)
            if size == 0:
                continue
            starts.append(addr)
            ends.append(addr + size)
            names.append(name)
    order = sorted(range(len(starts)), key=lambda i: starts[i])
    return [starts[i] for i in order], [ends[i] for i in order], [names[i] for i in order]


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--starts":
        for a in functions(sys.argv[2])[0]:
            print(f"{a:x}")
        return
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    starts, ends, names = functions(sys.argv[1])
    if not starts:
        sys.exit(f"{sys.argv[1]}: no .text.NAME input sections (not an lld -Map of a function-sections build?)")
    done = set()
    hits = misses = 0
    for trace in sys.argv[2:]:
        with open(trace) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                a = int(line, 16)
                i = bisect.bisect_right(starts, a) - 1
                if i < 0 or a >= ends[i]:
                    misses += 1
                    continue
                hits += 1
                if names[i] not in done:
                    done.add(names[i])
                    print(names[i])
    size = sum(ends[i] - starts[i] for i in range(len(names)) if names[i] in done)
    print(
        f"symbolize: {len(done)} functions ({size // 1024} KiB) from {hits} addresses; "
        f"{misses} addresses outside any function symbol",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
