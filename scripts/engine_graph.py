#!/usr/bin/python3
"""engine_graph -- which engine files call each other, from their object files.

    scripts/engine_graph.py OBJDIR [-v] [-e]

OBJDIR holds one .o per engine file (make's build/obj/lib/engine). A file
uses another when it has an undefined symbol (nm: U) that the other
defines (T, D, B or R); static inline functions in headers do not show.
Prints the number of files and of uses, then every pair of files that use
each other both ways (-v: with the symbols), and with -e every use.
Issue 13's closing notes count these pairs before and after.
"""
import glob
import os
import subprocess
import sys

if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
    sys.exit(__doc__)
objdir = sys.argv[1]
objs = sorted(glob.glob(os.path.join(objdir, "*.o")))
if not objs:
    sys.exit("engine_graph: no .o files in %s" % objdir)
defs, uses = {}, {}
for o in objs:
    f = os.path.basename(o)[:-2]
    out = subprocess.run(["nm", o], capture_output=True, text=True, check=True).stdout
    u = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "U":
            u.add(parts[1])
        elif len(parts) == 3 and parts[1] in "TDBR":
            defs[parts[2]] = f
    uses[f] = u
edges = {}
for f, u in uses.items():
    for s in u:
        g = defs.get(s)
        if g and g != f:
            edges.setdefault((f, g), set()).add(s)
pairs = sorted({tuple(sorted(k)) for k in edges if (k[1], k[0]) in edges})
verbose = "-v" in sys.argv
print("files %d, uses %d, pairs both ways %d" % (len(uses), len(edges), len(pairs)))
for a, b in pairs:
    ab, ba = sorted(edges[(a, b)]), sorted(edges[(b, a)])
    if verbose:
        print("  %s <-> %s   %s -> %s: %s | %s -> %s: %s" % (a, b, a, b, ",".join(ab), b, a, ",".join(ba)))
    else:
        print("  %s <-> %s   (%d | %d symbols)" % (a, b, len(ab), len(ba)))
if "-e" in sys.argv:
    for (a, b), s in sorted(edges.items()):
        print("  %s -> %s (%d): %s" % (a, b, len(s), ",".join(sorted(s))))
