#!/usr/bin/env bash
# ops_bench -- figures for operating cask (issue 19), on a private caskd:
#   * cask apply of a manifest with N volumes: create from nothing, the same
#     file again (no changes), a dry run, cask get manifest, and that
#     manifest applied with --prune (no changes);
#   * a /metrics scrape with N volumes open since start: lines, bytes,
#     median and max of 20 scrapes (curl's time_total);
#   * the simulated year of tests/integration/schedules.py (every 1h, keep
#     4, retain daily 7 weekly 4 monthly 6 on two volumes, compared with the
#     model after every step), driven by the test-only scheduler clock.
# usage: CASK_BUILD=$PWD/build bash bench/ops_bench.sh [N]   (N default 100)
# Wall-clock figures: quote them with the machine's load (printed).
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../tests/integration/lib.sh"
need curl
N=${1:-100}
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs, N=$N"

MPORT=$(free_port)
T0=1767225600   # 2026-01-01T00:00Z
start_caskd --metrics "127.0.0.1:$MPORT" --test-ops --sched-clock "$T0"

# ---- apply ----
{
  printf 'apiVersion: cask/v1\npools:\n  - name: tank\n    vdevs: [%s]\n    size: 2G\n' "$T/tank0.vdev"
  printf 'volumes:\n'
  for i in $(seq 1 "$N"); do
    printf '  - name: tank/v%d\n    size: 16M\n    properties: {compression: zstd}\n' "$i"
  done
} >"$T/m.yaml"
t=$(date +%s%N); "$CASK" apply -f "$T/m.yaml" >"$T/a1.out"; a1=$(ms "$t")
grep -q "Applied: $((N + 1)) changes." "$T/a1.out" || fail "create: $(tail -n 2 "$T/a1.out")"
t=$(date +%s%N); "$CASK" apply -f "$T/m.yaml" >"$T/a2.out"; a2=$(ms "$t")
grep -q "No changes" "$T/a2.out" || fail "again: $(tail -n 2 "$T/a2.out")"
sed 's/compression: zstd/compression: lz4/' "$T/m.yaml" >"$T/m2.yaml"
t=$(date +%s%N); "$CASK" apply -f "$T/m2.yaml" --dry-run >"$T/a3.out"; a3=$(ms "$t")
grep -q "0 to create, $N to change" "$T/a3.out" || fail "dry run: $(tail -n 2 "$T/a3.out")"
t=$(date +%s%N); "$CASK" get manifest >"$T/got.yaml"; g=$(ms "$t")
t=$(date +%s%N); "$CASK" apply -f "$T/got.yaml" --prune >"$T/a4.out"; a4=$(ms "$t")
grep -q "No changes" "$T/a4.out" || fail "round trip: $(tail -n 2 "$T/a4.out")"
echo "apply, $N volumes + 1 pool: create ${a1} ms, again (no changes) ${a2} ms, dry run of $N property changes ${a3} ms," \
  "get manifest ${g} ms ($(wc -c <"$T/got.yaml") bytes), its apply --prune (no changes) ${a4} ms"

# ---- a scrape with N volumes open (held open: the statistics layer keeps only 256 closed volumes' counters) ----
"$PY" - "$NBD" "$N" "$T/opened" <<'PY' &
import resource, sys, time, nbd
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
hs = []
for i in range(1, int(sys.argv[2]) + 1):
    h = nbd.NBD(); h.connect_uri("%s/tank/v%d" % (sys.argv[1], i))
    h.pwrite(b"x" * 4096, 0); h.flush(); hs.append(h)
open(sys.argv[3], "w").close()
time.sleep(600)
PY
HOLDER=$!
on_exit() { local r=$1; [ -z "${HOLDER:-}" ] || kill "$HOLDER" 2>/dev/null || true; set +e; (exit "$r"); cleanup; }
trap 'on_exit $?' EXIT
for _ in $(seq 1 6000); do [ -e "$T/opened" ] && break; kill -0 "$HOLDER" || fail "opening the volumes"; sleep 0.1; done
[ -e "$T/opened" ] || fail "the volumes were not opened in 600 s"
URL="http://127.0.0.1:$MPORT/metrics"
curl -sf "$URL" >"$T/scrape"
lines=$(wc -l <"$T/scrape"); bytes=$(wc -c <"$T/scrape")
vols=$(grep '^cask_volume_write_bytes_total{' "$T/scrape" | wc -l)
[ "$vols" = "$N" ] || fail "the scrape shows $vols volumes, want $N"
for _ in $(seq 1 20); do curl -sf -o /dev/null -w '%{time_total}\n' "$URL"; done | sort -n >"$T/times"
med=$(awk '{a[NR] = $1} END {printf "%.1f", 1000 * (a[10] + a[11]) / 2}' "$T/times")
max=$(awk 'END {printf "%.1f", 1000 * $1}' "$T/times")
echo "scrape, $N volumes open: $lines lines, $bytes bytes; 20 scrapes: median $med ms, max $max ms"
kill "$HOLDER"; wait "$HOLDER" 2>/dev/null || true; HOLDER=

# ---- the simulated year (the volumes and snapshots schedules.py expects, as schedules.sh makes them) ----
for v in a b; do "$CASK" vol create "tank/$v" --size 16M >/dev/null; done
"$CASK" snap create tank/a@manual "tank/a@auto-2025-12-31T00:00Z"
for v in a b; do "$CASK" schedule set "tank/$v" --every 1h --keep 4 --daily 7 --weekly 4 --monthly 6; done
t=$(date +%s%N)
"$PY" "$here/../tests/integration/schedules.py" "$SOCK" tank "$T0" "$T/year.json" >"$T/year.out" 2>&1 ||
  fail "the simulated year: $(tail -n 3 "$T/year.out")"
y=$(ms "$t")
echo "simulated year (schedules.py, compared with the model after every step, $N other volumes in the pool" \
  "without a policy): ${y} ms; $(head -n 1 "$T/year.out")"
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
stop_caskd
