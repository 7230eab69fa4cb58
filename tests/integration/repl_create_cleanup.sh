#!/usr/bin/env bash
# repl_create_cleanup -- `vol create --replica` that fails part-way leaves
# nothing behind (replica-protocol.md 5.4 RETIRE, as built): A creates tank/v
# with replicas on B (pool p2, exists) and B again (pool nope, does not): the
# second CREATE fails with POOL_NOT_FOUND, so A destroys the replica it had
# already created on B (RETIRE, flag destroy) and its local volume; B lists
# no p2/v, the error names the cause and nothing left behind, and the same
# create with good replicas then succeeds (the name is free everywhere).
# caskd: the sanitizer build when CASK_ASAN_BUILD is set; any sanitizer report fails.
source "$(dirname "$0")/lib.sh"
export TDIR="$T" BUILD="$CASK_BUILD" DAEMON_BUILD="${CASK_ASAN_BUILD:-$CASK_BUILD}"
"$PY" - <<'PY'
import json, os, sys
sys.path.insert(0, "tests/integration"); sys.path.insert(0, "tests/tools")
from replnodes import Cluster
T = os.environ["TDIR"]
cl = Cluster(T, os.environ["BUILD"], ["a", "b"], os.environ["DAEMON_BUILD"])
try:
    a, b = cl["a"], cl["b"]
    for n, pool in (("a", "tank"), ("b", "p2")):
        cl[n].start()
        cl[n].cask("pool", "create", pool, T + "/%s.vdev" % pool, "--size", "128M")
    def vols(node):
        return [v["name"] for v in json.loads(node.cask("vol", "list", "-j").stdout)]
    r = a.cask("vol", "create", "tank/v", "--size", "8M", "--replica", b.raddr + "/p2",
               "--replica", b.raddr + "/nope", check=False)
    assert r.returncode != 0, r.stdout
    print("create failed as it must: " + r.stderr.strip())
    assert "nope" in r.stderr and "left behind" not in r.stderr, r.stderr
    assert "p2/v" not in vols(b), vols(b)
    assert "tank/v" not in vols(a), vols(a)
    assert "destroyed by its controller" in open(b.log).read()
    a.cask("vol", "create", "tank/v", "--size", "8M", "--replica", b.raddr + "/p2")
    assert "p2/v" in vols(b) and a.status("tank/v")["state"] == "serving"
    reps = cl.sanitizer_reports()
    assert not reps, reps
    print("ok: nothing left behind; the same create then succeeds")
except BaseException:
    print(cl.logs(), file=sys.stderr)
    raise
finally:
    cl.close()
PY
