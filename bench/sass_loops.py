#!/usr/bin/env python3
"""Static SASS instructions in a CUDA kernel's loops that hold mma instructions.

The mat-vec and attention kernels of this project are bound by the chain of
instructions per chunk of work, so their loop bodies' instruction counts are
a number to compare before measuring on a card. This disassembles one kernel
of an object or binary with cuobjdump (on PATH, or named by CUOBJDUMP) and,
for every backward branch whose body holds HMMA instructions, prints the
body's instruction count, its HMMA count, and the count per 8 HMMA (one
16-row tile's chunk in the one-row mat-vec), then the op histogram of the
first such loop (the innermost one: loops are listed by their branch's
address, and an inner loop's branch comes first).

Usage: sass_loops.py OBJECT MANGLED_KERNEL_NAME
  cuobjdump -sass OBJECT | grep Function   lists the names, e.g.
  sass_loops.py build/CMakeFiles/mlxn_obj.dir/src/backend/cuda/cu_qmv_mma.cu.o \\
      _Z14qmv_mma_kernelILi2ELi10ELi8ELi3ELi0ELi1ELi2EEv8qmv_args
The count is static: instructions behind a branch not taken (a runtime
switch) are counted too.
"""
import collections
import os
import re
import subprocess
import sys


def instructions(obj, name):
    tool = os.environ.get("CUOBJDUMP", "cuobjdump")
    out = subprocess.run([tool, "-sass", "-fun", name, obj], capture_output=True, text=True, check=True).stdout
    ins = []
    for line in out.splitlines():
        m = re.match(r"\s+/\*([0-9a-f]{4,})\*/\s+(.*?);", line)
        if m:
            ins.append((int(m.group(1), 16), m.group(2)))
    return ins


def opcode(text):
    m = re.match(r"(@!?U?P\w+\s+)?([A-Z0-9_]+)", text)
    return m.group(2) if m else "?"


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    ins = instructions(sys.argv[1], sys.argv[2])
    if not ins:
        sys.exit("no instructions for %s in %s" % (sys.argv[2], sys.argv[1]))
    loops = []
    for addr, text in ins:
        m = re.search(r"\bBRA (0x[0-9a-f]+)", text)
        if not m or "BRA.DIV" in text:
            continue
        target = int(m.group(1), 16)
        if target >= addr:
            continue
        body = [(a, t) for a, t in ins if target <= a <= addr]
        hmma = sum(opcode(t) == "HMMA" for _, t in body)
        if hmma:
            loops.append((target, addr, body, hmma))
    print("%s: %d instructions" % (sys.argv[2], len(ins)))
    for target, addr, body, hmma in loops:
        print("loop %#x..%#x: %d instructions, %d HMMA, %.1f per 8 HMMA" % (target, addr, len(body), hmma,
                                                                           8.0 * len(body) / hmma))
    if loops:
        hist = collections.Counter(opcode(t) for _, t in loops[0][2])
        print("first loop: " + " ".join("%s:%d" % kv for kv in hist.most_common()))


if __name__ == "__main__":
    main()
