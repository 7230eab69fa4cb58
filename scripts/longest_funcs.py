#!/usr/bin/python3
"""longest_funcs -- the longest C functions of some files, in the tree's style.

    scripts/longest_funcs.py N FILE...

A function is a line starting with its name and '(' at column 0, a '{'
alone at column 0, and the next '}' alone at column 0 (KNF, as lib/ is
written). Its length counts from the name line to the closing brace.
Prints the N longest: lines, file, name. Issue 13's closing notes report
these before and after.
"""
import re
import sys

if len(sys.argv) < 3 or not sys.argv[1].isdigit():
    sys.exit(__doc__)
top = int(sys.argv[1])
res = []
for f in sys.argv[2:]:
    with open(f, errors="replace") as fh:
        lines = fh.read().split("\n")
    name = start = nl = None
    for i, line in enumerate(lines):
        m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\(", line)
        if m and start is None:
            name, nl = m.group(1), i
        if line == "{" and name is not None and start is None:
            start = nl
        elif line == "}" and start is not None:
            res.append((i - start + 1, f.split("/")[-1], name))
            name = start = None
res.sort(reverse=True)
for n, f, name in res[:top]:
    print("%5d  %s  %s" % (n, f, name))
