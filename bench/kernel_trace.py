#!/usr/bin/env python3
"""Split a decode step's wall time over its kernels, from bench/kernel_trace.c's file.

Each replay of a captured graph is one step: its kernels share the graph
launch's correlation id. Within a step, kernel i is charged the time from the
later of its own start and the previous kernels' last end to its end, so the
charges add up to the step's GPU time even though programmatic launch lets a
kernel start (and wait) before the one ahead has finished. Steps whose kernel
count differs from the most common one (prefill graphs, warm-up) are left out.

Usage: kernel_trace.py TRACE [LABEL]
Prints, per kernel position of the step, the median charge and duration over
the steps, then the same summed by kernel name, then the step totals.
"""
import collections
import re
import shutil
import statistics
import subprocess
import sys


def short_names(mangled):
    """Readable kernel names: c++filt where the machine has it, else the first identifier."""
    names = {}
    if shutil.which("c++filt"):
        out = subprocess.run(["c++filt"], input="\n".join(mangled), capture_output=True, text=True).stdout.split("\n")
        for m, d in zip(mangled, out):
            d = re.sub(r"\(.*\)$", "", d)  # drop the parameter list
            names[m] = d[:70]
    for m in mangled:
        if m not in names:
            hit = re.match(r"_ZN?(\d+)", m)
            names[m] = m[hit.end():hit.end() + int(hit.group(1))] if hit else m[:60]
    return names


def main():
    label = sys.argv[2] if len(sys.argv) > 2 else sys.argv[1]
    steps = collections.defaultdict(list)  # correlation id -> [(start, end, grid, name)]
    for line in open(sys.argv[1]):
        parts = line.split(" ", 6)
        if len(parts) < 7 or parts[3] == "0":
            continue  # not a graph node
        steps[int(parts[2])].append((int(parts[0]), int(parts[1]), int(parts[4]), parts[6].strip()))
    if not steps:
        print(f"{label}: no graph kernels in the trace")
        return
    count = collections.Counter(len(v) for v in steps.values()).most_common(1)[0][0]
    chosen = [sorted(v) for k, v in sorted(steps.items()) if len(v) == count]
    names = short_names(sorted({k[3] for s in chosen for k in s}))
    charge = [[] for _ in range(count)]
    dur = [[] for _ in range(count)]
    walls, between = [], []
    prev_end = None
    for s in chosen:
        done = s[0][0]
        for i, (st, en, _, _) in enumerate(s):
            charge[i].append(max(0, en - max(st, done)) / 1e3)
            dur[i].append((en - st) / 1e3)
            done = max(done, en)
        walls.append((done - s[0][0]) / 1e3)
        if prev_end is not None:
            between.append((s[0][0] - prev_end) / 1e3)
        prev_end = done
    first = chosen[0]
    print(f"== {label}: {len(chosen)} steps of {count} kernels")
    print(f"{'#':>4} {'kernel':<60} {'grid':>6} {'charge us':>9} {'dur us':>8}")
    by_name = collections.defaultdict(lambda: [0, 0.0])
    for i in range(count):
        n = names[first[i][3]]
        c = statistics.median(charge[i])
        by_name[n][0] += 1
        by_name[n][1] += c
        if count <= 64 or i < 40 or i >= count - 12:
            print(f"{i:>4} {n:<60} {first[i][2]:>6} {c:>9.2f} {statistics.median(dur[i]):>8.2f}")
        elif i == 40:
            print("   ... (middle layers left out of this list; all are in the sums below)")
    print(f"\n{'kernel':<60} {'per step':>8} {'us per step':>11} {'us each':>8}")
    for n, (k, c) in sorted(by_name.items(), key=lambda kv: -kv[1][1]):
        print(f"{n:<60} {k:>8} {c:>11.1f} {c / k:>8.2f}")
    tot = sum(statistics.median(c) for c in charge)
    print(f"\nstep GPU time: median {statistics.median(walls):.1f} us (sum of median charges {tot:.1f}); "
          f"between steps (host): median {statistics.median(between) if between else 0:.1f} us")


if __name__ == "__main__":
    main()
