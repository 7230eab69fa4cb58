#!/usr/bin/env bash
# ab_bench -- two builds of cask measured alternately in one run, so that
# both see the same machine: engine_bench and snap_bench of each build in
# ABBA order (old new, new old, ...), then nbd_bench.py --ab (caskd of
# each build, alternated the same way). Prints each figure's median per
# build and new/old, with the load average before every run.
#
#   bench/ab_bench.sh OLD_BUILD NEW_BUILD [ROUNDS]
#
# A build directory holds bench/engine_bench, bench/snap_bench, caskd and
# cask (make's build/). To compare engines with the same benchmark code,
# link the newer bench/*.c against the older libcask-engine.a into
# OLD_BUILD/bench. Environment: AB_DIR (pool files, default /var/tmp),
# AB_SIZE_MB and AB_OPS (engine_bench, default 256 and 20000), AB_SNAP_MAX
# (snap_bench --max, default 10000), AB_NBD_SECONDS and AB_NBD_SIZE_MB
# (nbd_bench, default 3 and 256), AB_SKIP (any of: engine snap nbd).
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: bench/ab_bench.sh OLD_BUILD NEW_BUILD [ROUNDS]" >&2
  exit 2
fi
old=$1 new=$2 rounds=${3:-2}
dir=${AB_DIR:-/var/tmp}
skip=" ${AB_SKIP:-} "
for b in "$old" "$new"; do
  for f in bench/engine_bench bench/snap_bench caskd cask; do
    [ -x "$b/$f" ] || { echo "ab_bench: $b/$f is missing" >&2; exit 2; }
  done
done
out=$(mktemp -d "${TMPDIR:-/tmp}/cask-ab-XXXXXX")
trap 'rm -rf "$out"' EXIT

for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) -eq 1 ]; then order="old new"; else order="new old"; fi
  for tag in $order; do
    if [ "$tag" = old ]; then b=$old; else b=$new; fi
    if [[ $skip != *" engine "* ]]; then
      echo "== engine_bench $tag round $r ($(uptime | sed 's/.*load/load/'))"
      "$b/bench/engine_bench" --dir "$dir" --size-mb "${AB_SIZE_MB:-256}" --ops "${AB_OPS:-20000}" \
        --json "$out/engine-$tag-$r.json" >"$out/engine-$tag-$r.txt"
    fi
    if [[ $skip != *" snap "* ]]; then
      echo "== snap_bench $tag round $r ($(uptime | sed 's/.*load/load/'))"
      "$b/bench/snap_bench" --dir "$dir" --max "${AB_SNAP_MAX:-10000}" --seconds 1 \
        --json "$out/snap-$tag-$r.json" >"$out/snap-$tag-$r.txt"
    fi
  done
done

/usr/bin/python3 - "$out" <<'EOF'
import glob, json, os, sys
out = sys.argv[1]

def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2

def load(kind):
    runs = {"old": [], "new": []}
    for f in sorted(glob.glob(os.path.join(out, kind + "-*.json"))):
        tag = os.path.basename(f).split("-")[1]
        with open(f) as fh:
            runs[tag].append(json.load(fh))
    return runs

def row(name, olds, news, unit, higher_better=True):
    if not olds or not news:
        return
    o, n = median(olds), median(news)
    ratio = n / o if o else 0
    better = "higher is better" if higher_better else "lower is better"
    print("%-34s %12.3f %12.3f %7.2fx  %s (%s)" % (name, o, n, ratio, unit, better))

hdr = "%-34s %12s %12s %8s" % ("figure", "old", "new", "new/old")
e = load("engine")
if e["old"]:
    print("\nengine_bench (median of %d runs each)" % len(e["old"]))
    print(hdr)
    names = [w["workload"] for w in e["old"][0]["results"]]
    for i, w in enumerate(names):
        row(w, [r["results"][i]["cask_mbs"] for r in e["old"]], [r["results"][i]["cask_mbs"] for r in e["new"]],
            "MB/s")
s = load("snap")
if s["old"]:
    print("\nsnap_bench --max %d (median of %d runs each)" % (s["old"][0]["max"], len(s["old"])))
    print(hdr)
    for i, at in enumerate(("1", "100", "1000", "10000")):
        row("create median at %s" % at, [r["create_ms_median"][i] for r in s["old"]],
            [r["create_ms_median"][i] for r in s["new"]], "ms", False)
    row("destroy", [r["destroy_per_s"] for r in s["old"]], [r["destroy_per_s"] for r in s["new"]], "/s")
    row("clone median", [r["clone_ms_median"] for r in s["old"]], [r["clone_ms_median"] for r in s["new"]],
        "ms", False)
    row("randwrite-4k, 0 snapshots", [r["randwrite_iops"][0] for r in s["old"]],
        [r["randwrite_iops"][0] for r in s["new"]], "IOPS")
    row("randwrite-4k, 100 snapshots", [r["randwrite_iops"][1] for r in s["old"]],
        [r["randwrite_iops"][1] for r in s["new"]], "IOPS")
EOF

if [[ $skip != *" nbd "* ]]; then
  echo
  echo "== nbd_bench.py --ab ($(uptime | sed 's/.*load/load/'))"
  /usr/bin/python3 "$(dirname "$0")/nbd_bench.py" --ab "$old" --build "$new" --rounds "$rounds" --dir "$dir" \
    --seconds "${AB_NBD_SECONDS:-3}" --size-mb "${AB_NBD_SIZE_MB:-256}"
  echo "(load after: $(uptime | sed 's/.*load/load/'))"
fi
