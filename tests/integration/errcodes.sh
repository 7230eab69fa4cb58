#!/usr/bin/env bash
# errcodes -- the stable error codes are declared once (include/cask/errcodes.h)
# and everything else agrees with that table:
#   1. docs/control-protocol.md's code table lists exactly the table's wire
#      names, each with the table's errno;
#   2. the Python binding's code table (python/cask/__init__.py, _BY_CODE)
#      names exactly the same codes;
#   3. no C source of the product (daemon, libraries, CLI, tools) and no
#      Python of the binding decides anything by comparing an error
#      message's text (ce_errmsg(), err_get(), cask_error()->message): the
#      code is what callers branch on. (The tests themselves may check that
#      a message says something useful.)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
: "${CASK_BUILD:?run through tests/run.sh (CASK_BUILD unset)}"
dump="$CASK_BUILD/tests/test_errcodes"
[ -x "$dump" ] || dump="${CASK_ASAN_BUILD:-}/tests/test_errcodes"
[ -x "$dump" ] || { echo "FAIL: no test_errcodes binary in $CASK_BUILD/tests"; exit 1; }
table=$(mktemp)
trap 'rm -f "$table"' EXIT
"$dump" --dump >"$table"
TOP="$top" TABLE="$table" /usr/bin/python3 - <<'PY'
import ast, os, re, sys
top, table = os.environ["TOP"], os.environ["TABLE"]
bad = []
# the C table: wire name -> errno names of the codes that use it
wire = {}
for line in open(table):
    w, e, sym = line.rstrip("\n").split("\t")
    if w != "-":
        wire.setdefault(w, set()).add(e)
assert len(wire) > 30, wire

# 1. the protocol document's table
doc = open(os.path.join(top, "docs/control-protocol.md")).read()
rows = {}
for m in re.finditer(r"^\| `([A-Z_]+)` \| ([^|]*) \|", doc, re.M):
    if m.group(1) in rows:
        bad.append("docs: %s is listed twice" % m.group(1))
    rows[m.group(1)] = m.group(2)
for w in sorted(set(wire) - set(rows)):
    bad.append("docs/control-protocol.md does not list %s" % w)
for w in sorted(set(rows) - set(wire)):
    bad.append("docs/control-protocol.md lists %s, which include/cask/errcodes.h does not declare" % w)
for w in sorted(set(wire) & set(rows)):
    for e in wire[w]:
        want = "other" if e == "-" else e
        if not re.search(r"\b%s\b" % want, rows[w]):
            bad.append("docs: %s's errno is '%s', the table says %s" % (w, rows[w].strip(), want))
# the codes the paragraph on a job's errors names must exist too
jobs = re.search(r"A job's own error[^\n]*\n(.*?)\n\n", doc, re.S)
if jobs is None:
    bad.append("docs: the paragraph on a job's own errors is gone")
else:
    for m in re.finditer(r"`([A-Z][A-Z_]{3,})`", jobs.group(1)):
        if m.group(1) not in wire:
            bad.append("docs: `%s` (a job's error) is not a code of include/cask/errcodes.h" % m.group(1))

# 2. the Python binding's table
src = open(os.path.join(top, "python/cask/__init__.py")).read()
tree = ast.parse(src)
py = None
for node in ast.walk(tree):
    if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_BY_CODE" for t in node.targets):
        py = [k.value for k in node.value.keys]
if py is None:
    bad.append("python/cask/__init__.py has no _BY_CODE table")
else:
    if len(py) != len(set(py)):
        bad.append("python: a code is mapped twice")
    for w in sorted(set(wire) - set(py)):
        bad.append("python/cask: _BY_CODE does not map %s" % w)
    for w in sorted(set(py) - set(wire)):
        bad.append("python/cask: _BY_CODE maps %s, which include/cask/errcodes.h does not declare" % w)

# 3. nothing compares message text
cmp_fn = r"\b(strstr|strcasestr|strcmp|strncmp|strcasecmp|strncasecmp|memcmp|memmem|fnmatch|regexec)\s*\("
msg = re.compile(r"\b(ce_errmsg|err_get)\s*\(\s*\)|cask_error\s*\(\s*\)\s*->\s*message")
def calls(text, start):
    """the text of the call whose '(' is at start (balanced parentheses)"""
    depth, i = 0, start
    while i < len(text):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return text[start:i + 1]
        i += 1
    return text[start:]
for d in ("daemon", "lib", "cli", "tools", "bench", "python/cask"):
    for root, _, files in os.walk(os.path.join(top, d)):
        for f in files:
            p = os.path.join(root, f)
            if f.endswith((".c", ".h")):
                text = open(p, errors="replace").read()
                for m in re.finditer(cmp_fn, text):
                    call = calls(text, m.end() - 1)
                    if msg.search(call):
                        line = text.count("\n", 0, m.start()) + 1
                        bad.append("%s:%d compares an error message: %s" % (os.path.relpath(p, top), line,
                                                                             " ".join(call.split())[:100]))
            elif f.endswith(".py"):
                for n, line in enumerate(open(p), 1):
                    if re.search(r"(\bin\s+\S*message\b|message\S*\s*[=!]=|message\S*\.(startswith|find)\()", line):
                        bad.append("%s:%d compares an error message: %s" % (os.path.relpath(p, top), n, line.strip()))
for b in bad:
    print("FAIL:", b)
if bad:
    sys.exit(1)
print("ok: %d codes agree in include/cask/errcodes.h, docs/control-protocol.md and python/cask" % len(wire))
PY
