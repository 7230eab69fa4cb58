#!/usr/bin/env bash
# metrics -- caskd --metrics ADDR:PORT (docs/metrics.md) with the real tools:
# `promtool check metrics` passes on live scrapes (idle, after IO, after a
# snapshot is served); the counters move by exactly the IO the test did; a
# real prometheus server started on loopback with a temporary configuration
# scrapes caskd and answers a query, through its HTTP API, for a counter the
# test moved by a known amount; every metric family of docs/metrics.md is in
# the scrape and every family scraped is in docs/metrics.md; bad --metrics
# addresses are refused at start; 404 / 405 for other paths and methods;
# HTTP clients that hold connections or never read their answer block
# neither volume IO nor the control socket; the NBD connection gauge while
# connections are open; a running receive job's progress (done and total
# bytes) and the job counts by kind and state.
source "$(dirname "$0")/lib.sh"
need curl
need promtool
need prometheus
need qemu-io

top=$(cd "$(dirname "$0")/../.." && pwd)
PROM_PID=

stop_prom() {
  if [ -n "$PROM_PID" ] && kill -0 "$PROM_PID" 2>/dev/null; then
    kill -TERM "$PROM_PID" 2>/dev/null || true
    wait "$PROM_PID" 2>/dev/null || true
  fi
  PROM_PID=
}
FEEDER=
on_exit() {
  local r=$1
  stop_prom
  [ -z "$FEEDER" ] || kill "$FEEDER" 2>/dev/null || true
  set +e; (exit "$r"); cleanup
}
trap 'on_exit $?' EXIT

# ---- bad addresses: refused at start with one clear line ----
for bad in "nonsense" "127.0.0.1:99999" "127.0.0.1:" "[::1:80"; do
  rc=0
  "$CASKD" --state "$T/bad" --socket "$T/bad.sock" --nbd "127.0.0.1:$(free_port)" --metrics "$bad" \
    >"$T/bad.log" 2>&1 || rc=$?
  [ $rc -ne 0 ] || fail "caskd started with --metrics $bad"
  grep -q -- "--metrics" "$T/bad.log" || fail "no --metrics error for '$bad': $(cat "$T/bad.log")"
done
grep -q -- "--metrics ADDR:PORT" <<<"$("$CASKD" --help)" || fail "caskd --help lacks --metrics"

MPORT=$(free_port)
start_caskd --metrics "127.0.0.1:$MPORT"
URL="http://127.0.0.1:$MPORT/metrics"
grep -q "metrics: serving $URL" "$T/caskd.log" || fail "no 'serving' log line"

scrape() { curl -sf "$URL"; }
# value SERIES: the sample of one series (exact name and labels) in a scrape on stdin
value() { awk -v s="$1" '$1 == s { print $2; found = 1 } END { if (!found) print "absent" }'; }
check() {
  local out
  out=$(promtool check metrics <"$1" 2>&1) || fail "promtool check metrics: $out"
  [ -z "$out" ] || fail "promtool check metrics complained: $out"
}

# ---- idle daemon: valid, daemon info present ----
scrape >"$T/m0"
check "$T/m0"
grep -q '^cask_build_info{version="' "$T/m0" || fail "no cask_build_info"
[ "$(value 'cask_frontend_listeners{frontend="nbd"}' <"$T/m0")" = 1 ] || fail "nbd listeners"

[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MPORT/other")" = 404 ] || fail "not 404"
[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST -d x=1 "$URL")" = 405 ] || fail "POST not 405"
curl -sfI "$URL" | grep -qi '^content-type: text/plain; version=0.0.4' || fail "content type"

# ---- a pool and a volume; IO of known sizes ----
"$CASK" pool create tank "$T/tank0.vdev" --size 256M >/dev/null
"$CASK" vol create tank/db --size 64M >/dev/null
scrape >"$T/m1"
check "$T/m1"
[ "$(value 'cask_pool_volumes{pool="tank"}' <"$T/m1")" = 1 ] || fail "cask_pool_volumes"
[ "$(value 'cask_pool_suspended{pool="tank"}' <"$T/m1")" = 0 ] || fail "cask_pool_suspended"
txg0=$(value 'cask_pool_txg{pool="tank"}' <"$T/m1")
syncs0=$(value 'cask_pool_txg_sync_duration_seconds_count{pool="tank"}' <"$T/m1")
# never opened since start: no volume series yet (docs/metrics.md)
[ "$(value 'cask_volume_write_bytes_total{pool="tank",volume="db"}' <"$T/m1")" = absent ] ||
  fail "a volume never opened has series"

qemu-io -f raw -c 'write -P 7 0 3M' -c 'write -P 8 8M 512k' -c 'read 0 1M' -c 'discard 16M 2M' -c flush \
  "$NBD/tank/db" >/dev/null
scrape >"$T/m2"
check "$T/m2"
v() { value "$1" <"$T/m2"; }
L='pool="tank",volume="db"'
[ "$(v "cask_volume_write_bytes_total{$L}")" = $((3 * 1048576 + 524288)) ] || fail "write bytes: $(v "cask_volume_write_bytes_total{$L}")"
[ "$(v "cask_volume_read_bytes_total{$L}")" = 1048576 ] || fail "read bytes"
[ "$(v "cask_volume_trim_bytes_total{$L}")" = 2097152 ] || fail "trim bytes"
[ "$(v "cask_volume_request_errors_total{$L,op=\"write\"}")" = 0 ] || fail "write errors"
w=$(v "cask_volume_requests_total{$L,op=\"write\"}")
[ "$w" -ge 2 ] || fail "write requests $w"
# the histogram's +Inf bucket and count are the request count
[ "$(v "cask_volume_request_duration_seconds_bucket{$L,op=\"write\",le=\"+Inf\"}")" = "$w" ] || fail "+Inf bucket"
[ "$(v "cask_volume_request_duration_seconds_count{$L,op=\"write\"}")" = "$w" ] || fail "histogram count"
[ "$(v "cask_volume_requests_total{$L,op=\"flush\"}")" -ge 1 ] || fail "flush requests"
[ "$(v "cask_volume_requests_in_flight{$L,op=\"write\"}")" = 0 ] || fail "in flight"
[ "$(v 'cask_frontend_connections_accepted_total{frontend="nbd"}')" -ge 1 ] || fail "accepted"
[ "$(v 'cask_frontend_connections{frontend="nbd"}')" = 0 ] || fail "connections after close"
[ "$(v 'cask_pool_allocated_bytes{pool="tank"}')" -gt 3000000 ] || fail "allocated"
# cumulative buckets never decrease
awk '/^cask_volume_request_duration_seconds_bucket/ { split($1, a, ",le="); k = a[1];
     if (k == pk && $2 + 0 < pv + 0) { print "decreasing: " $0; bad = 1 } pk = k; pv = $2 }
     END { exit bad }' "$T/m2" || fail "a histogram's buckets decrease"

# a snapshot served read-only has its own series; a destroyed volume's go away
"$CASK" snap create tank/db@s1 >/dev/null
qemu-io -r -f raw -c 'read 0 64k' "$NBD/tank/db@s1" >/dev/null
"$CASK" vol create tank/tmp --size 16M >/dev/null
qemu-io -f raw -c 'write 0 4k' "$NBD/tank/tmp" >/dev/null
scrape >"$T/m3"
check "$T/m3"
[ "$(value 'cask_volume_read_bytes_total{pool="tank",volume="db@s1"}' <"$T/m3")" = 65536 ] || fail "snapshot reads"
[ "$(value 'cask_volume_write_bytes_total{pool="tank",volume="tmp"}' <"$T/m3")" = 4096 ] || fail "tmp writes"
# snap create and vol create committed txgs since m1
[ "$(value 'cask_pool_txg{pool="tank"}' <"$T/m3")" -gt "$txg0" ] || fail "txg did not move"
[ "$(value 'cask_pool_txg_sync_duration_seconds_count{pool="tank"}' <"$T/m3")" -gt "$syncs0" ] || fail "sync count"
"$CASK" vol destroy tank/tmp >/dev/null
scrape >"$T/m4"
[ "$(value 'cask_volume_write_bytes_total{pool="tank",volume="tmp"}' <"$T/m4")" = absent ] ||
  fail "a destroyed volume still has series"

# ---- the metrics server never blocks IO: stuck HTTP clients (idle ones past the connection
# limit, and scrapers that never read their answer) while a client writes and flushes ----
"$PY" - "$MPORT" "$NBD/tank/db" <<'PY' || fail "IO or the control socket waited for the metrics server"
import socket, subprocess, sys
port, uri = int(sys.argv[1]), sys.argv[2]
held = []
for i in range(12):                      # more than its 8 connections
    s = socket.create_connection(("127.0.0.1", port))
    if i % 2:                            # a request whose answer is never read
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    held.append(s)
r = subprocess.run(["qemu-io", "-f", "raw", "-c", "write -P 5 40M 1M", "-c", "flush", uri],
                   capture_output=True, timeout=60)
assert r.returncode == 0, r.stderr
for s in held:
    s.close()
PY
"$CASK" pool status tank >/dev/null || fail "the control socket after stuck metrics clients"
for _ in $(seq 1 1200); do scrape >"$T/m5" 2>/dev/null && break; sleep 0.05; done
check "$T/m5"
[ "$(value "cask_volume_write_bytes_total{$L}" <"$T/m5")" = $((4 * 1048576 + 524288)) ] ||
  fail "the write during the stuck scrapes is not counted"

# ---- read-ahead: counters that move by what a sequential reader caused ----
# a cold pool (exported and imported: the sync left written blocks in the cache) whose tree is
# then loaded by large reads in descending order (never sequential; reads that large do not
# cache data), so that a window is sent at once (a cold tree's indirect blocks would come
# first). The default window is 4 MiB. Three sequential 64 KiB reads send one window, from
# where the third ended; another connection reading exactly that window finds every block
# of it read ahead.
mkdir -p "$T/rap"
"$CASK" pool create rap "$T/rap/rap0.vdev" --size 256M >/dev/null
"$CASK" vol create rap/s --size 32M >/dev/null
qemu-io -f raw -c 'write -P 3 0 32M' -c flush "$NBD/rap/s" >/dev/null
"$CASK" pool export rap >/dev/null
"$CASK" pool import rap -d "$T/rap" >/dev/null
R='pool="rap"'
scrape >"$T/r0"
ra() { value "cask_pool_readahead_$1{$R}" <"$2"; }
[ "$(ra windows_total "$T/r0")" = 0 ] && [ "$(ra bytes_total "$T/r0")" = 0 ] || fail "read-ahead before any read"
qemu-io -r -f raw -c 'read 24M 8M' -c 'read 16M 8M' -c 'read 8M 8M' -c 'read 0 8M' "$NBD/rap/s" >/dev/null
scrape >"$T/r0d"
[ "$(ra windows_total "$T/r0d")" = 0 ] && [ "$(ra bytes_total "$T/r0d")" = 0 ] ||
  fail "descending large reads sent a read-ahead window ($(ra windows_total "$T/r0d"))"
qemu-io -r -f raw -c 'read 1M 64k' -c 'read 1088k 64k' -c 'read 1152k 64k' "$NBD/rap/s" >/dev/null
# the window lands on the completion thread; its handle closes only after it (bounded wait)
for _ in $(seq 1 600); do
  scrape >"$T/r1"
  [ "$(ra bytes_total "$T/r1")" = 4194304 ] && [ "$(value "cask_frontend_connections{frontend=\"nbd\"}" <"$T/r1")" = 0 ] && break
  sleep 0.1
done
check "$T/r1"
[ "$(ra windows_total "$T/r1")" = 1 ] || fail "read-ahead windows: $(ra windows_total "$T/r1"), want 1"
[ "$(ra bytes_total "$T/r1")" = 4194304 ] || fail "read-ahead bytes: $(ra bytes_total "$T/r1"), want 4194304"
[ "$(ra hit_blocks_total "$T/r1")" = 0 ] || fail "read-ahead hits before the window was read"
[ "$(ra failed_windows_total "$T/r1")" = 0 ] || fail "a read-ahead window failed"
qemu-io -r -f raw -c 'read -P 3 1216k 4M' "$NBD/rap/s" >/dev/null || fail "the window reads wrong"
scrape >"$T/r2"
check "$T/r2"
[ "$(ra hit_blocks_total "$T/r2")" = 1024 ] || fail "read-ahead hits: $(ra hit_blocks_total "$T/r2"), want 1024"
[ "$(ra wasted_blocks_total "$T/r2")" = 0 ] || fail "read-ahead wasted: $(ra wasted_blocks_total "$T/r2")"
# a prefetch (NBD_CMD_CACHE) of 1 MiB no read cached (the large reads did not cache data):
# every one of its 256 blocks is read into the cache through the ring
av() { value "cask_pool_async_$1{$R}" <"$2"; }
[ "$(av fill_blocks_total "$T/r2")" = 0 ] || fail "fill blocks before any prefetch: $(av fill_blocks_total "$T/r2")"
"$PY" - "$NBD/rap/s" <<'PY' || fail "NBD_CMD_CACHE of 1 MiB"
import sys, nbd
h = nbd.NBD(); h.connect_uri(sys.argv[1])
assert h.can_cache()
h.cache(1048576, 16 * 1048576)
h.shutdown()
PY
scrape >"$T/r3"
check "$T/r3"
[ "$(av fill_blocks_total "$T/r3")" = 256 ] || fail "fill blocks: $(av fill_blocks_total "$T/r3"), want 256"
[ "$(av tree_reads_total "$T/r3")" -ge "$(av tree_reads_total "$T/r2")" ] || fail "tree reads went back"
"$CASK" pool export rap >/dev/null

# ---- NBD connections: the gauge counts a connection while it is open ----
"$PY" - "$URL" "$NBD/tank/db" <<'PY' || fail "cask_frontend_connections with open NBD connections"
import sys, time, urllib.request, nbd
url, uri = sys.argv[1], sys.argv[2]
def conns():
    for line in urllib.request.urlopen(url, timeout=60).read().decode().splitlines():
        if line.startswith('cask_frontend_connections{frontend="nbd"} '):
            return int(line.split()[1])
    raise AssertionError("no cask_frontend_connections in the scrape")
hs = []
for want in (1, 2):
    h = nbd.NBD(); h.connect_uri(uri); hs.append(h)
    assert conns() == want, (conns(), want)      # served: counted once the handshake is done
for h in hs:
    h.shutdown()
for _ in range(1200):                            # a close is seen by the event loop a moment later
    if conns() == 0:
        break
    time.sleep(0.05)
assert conns() == 0, conns()
PY

# ---- jobs: progress of a running receive, then its end ----
"$CASK" send tank/db@s1 >"$T/s1.stream"
S=$(stat -c %s "$T/s1.stream")
scrape >"$T/mj0"
[ "$(value 'cask_jobs{kind="send",state="done"}' <"$T/mj0")" = 1 ] || fail "cask_jobs: the send is not done"
# half the stream, then the pipe stays open: the receive runs and waits for more
mkfifo "$T/feed"
"$PY" - "$T/s1.stream" $((S / 2)) >"$T/feed" <<'PY' &
import sys, time
d = open(sys.argv[1], "rb").read()[: int(sys.argv[2])]
sys.stdout.buffer.write(d); sys.stdout.buffer.flush()
time.sleep(300)
PY
FEEDER=$!
"$CASK" recv tank/half <"$T/feed" >/dev/null 2>&1 &
RECV=$!
# wait until the receive has taken all it can of the half (whole records) and stopped moving
id= jd= prev=
for _ in $(seq 1 1200); do
  read -r id jd < <("$CASK" job list -H -p -o id,done,kind,state 2>/dev/null |
    awk '$3 == "receive" && $4 == "running" {print $1, $2}') || true
  [ -n "$jd" ] && [ "$jd" -gt 0 ] && [ "$jd" = "$prev" ] && break
  prev=$jd
  sleep 0.2
done
[ -n "$id" ] || fail "no running receive job"
scrape >"$T/mj1"
check "$T/mj1"
J="id=\"$id\",kind=\"receive\",pool=\"tank\""
done_m=$(value "cask_job_done_bytes{$J}" <"$T/mj1")
[ "$done_m" = "$jd" ] || fail "cask_job_done_bytes is $done_m, the job says $jd"
[ "$done_m" -le $((S / 2)) ] && [ "$done_m" -gt $((S / 2 - 2 * 1048576)) ] ||
  fail "cask_job_done_bytes $done_m for a receive fed $((S / 2)) of $S bytes"
[ "$(value "cask_job_total_bytes{$J}" <"$T/mj1")" = "$S" ] || fail "cask_job_total_bytes is not the stream's $S bytes"
[ "$(value 'cask_jobs{kind="receive",state="running"}' <"$T/mj1")" = 1 ] || fail "cask_jobs running receive"
kill "$FEEDER"; wait "$FEEDER" 2>/dev/null || true
FEEDER=
rc=0; wait "$RECV" || rc=$?
[ $rc = 1 ] || fail "a truncated receive exited $rc"
scrape >"$T/mj2"
[ "$(value 'cask_jobs{kind="receive",state="failed"}' <"$T/mj2")" = 1 ] || fail "cask_jobs failed receive"
[ "$(value 'cask_jobs{kind="receive",state="running"}' <"$T/mj2")" = 0 ] || fail "cask_jobs running after the end"
[ "$(value "cask_job_done_bytes{$J}" <"$T/mj2")" = absent ] || fail "an ended job still has progress series"
"$CASK" recv -A tank/half >/dev/null

# ---- docs/metrics.md names every family, and every documented family is scraped ----
fams=$(grep '^# TYPE ' "$T/m3" | awk '{print $3}' | sort -u)
for f in $fams; do
  grep -q "\`$f\`" "$top/docs/metrics.md" || fail "docs/metrics.md does not list $f"
done
for f in $(grep -o '^| `cask_[a-z_]*`' "$top/docs/metrics.md" | tr -d '|` ' | sort -u); do
  grep -qx "$f" <<<"$fams" || fail "docs/metrics.md lists $f, the scrape lacks it"
done

# ---- a real prometheus scrapes caskd; its query API answers with our counter ----
PPORT=$(free_port)
mkdir -p "$T/prom"
cat >"$T/prom/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: caskd
    static_configs:
      - targets: ['127.0.0.1:$MPORT']
EOF
promtool check config "$T/prom/prometheus.yml" >/dev/null || fail "promtool check config"
prometheus --config.file="$T/prom/prometheus.yml" --storage.tsdb.path="$T/prom/data" \
  --web.listen-address="127.0.0.1:$PPORT" >"$T/prom/log" 2>&1 &
PROM_PID=$!
# move the counter by a known amount once prometheus runs: 5 MiB more written
qemu-io -f raw -c 'write -P 9 32M 5M' "$NBD/tank/db" >/dev/null
want=$((4 * 1048576 + 524288 + 5 * 1048576))
q='cask_volume_write_bytes_total{job="caskd",pool="tank",volume="db"}'
got=
for _ in $(seq 1 300); do
  kill -0 "$PROM_PID" 2>/dev/null || fail "prometheus exited: $(tail -n 5 "$T/prom/log")"
  got=$(curl -sf -G "http://127.0.0.1:$PPORT/api/v1/query" --data-urlencode "query=$q" 2>/dev/null |
    "$PY" -c 'import json,sys
d = json.load(sys.stdin)
r = d["data"]["result"] if d.get("status") == "success" else []
print(r[0]["value"][1] if r else "")' 2>/dev/null) || got=
  [ "$got" = "$want" ] && break
  sleep 0.2
done
[ "$got" = "$want" ] || fail "prometheus answered '$got' for $q, want $want"
# and the target is up, with nothing it could not parse
up=$(curl -sf -G "http://127.0.0.1:$PPORT/api/v1/query" --data-urlencode 'query=up{job="caskd"}' |
  "$PY" -c 'import json,sys; print(json.load(sys.stdin)["data"]["result"][0]["value"][1])')
[ "$up" = 1 ] || fail "prometheus says the caskd target is not up"
stop_prom

stop_caskd

# ---- --metrics-max-volumes: the volume bound; what it leaves out is counted ----
for bad in 0 65537 x; do
  expect_fail 2 "metrics-max-volumes" "$CASKD" --state "$T/bad" --socket "$T/bad.sock" --metrics-max-volumes "$bad"
done
grep -q -- "--metrics-max-volumes N" <<<"$("$CASKD" --help)" || fail "caskd --help lacks --metrics-max-volumes"
MPORT=$(free_port)
PORT=$(free_port)
start_caskd --metrics "127.0.0.1:$MPORT" --metrics-max-volumes 2
URL="http://127.0.0.1:$MPORT/metrics"
for v in a b c; do
  "$CASK" vol create "tank/$v" --size 4M >/dev/null
  qemu-io -f raw -c 'write 0 4k' "$NBD/tank/$v" >/dev/null
done
scrape >"$T/m-cap"
check "$T/m-cap"
shown=$(grep '^cask_volume_write_bytes_total{' "$T/m-cap" | sed 's/.*volume="\([^"]*\)".*/\1/' | sort -u | wc -l)
[ "$shown" = 2 ] || fail "--metrics-max-volumes 2 showed $shown volumes"
[ "$(value cask_metrics_omitted <"$T/m-cap")" = 1 ] || fail "cask_metrics_omitted is $(value cask_metrics_omitted <"$T/m-cap"), want 1"
stop_caskd
echo "PASS: metrics"
