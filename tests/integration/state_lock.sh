#!/usr/bin/env bash
# state_lock -- one caskd per state directory (registry.c invariant 3):
# a second caskd on the same --state refuses to start with a clear
# message naming the owner's pid, and the first one's pool cache and
# control socket are untouched; once the first has stopped, the directory
# can be used again. (A second caskd once started, and its pool export
# rewrote pools.cache so the first daemon's pools needed a manual import.)
source "$(dirname "$0")/lib.sh"
start_caskd
$CASK pool create tank "$T/t.vdev" --size 64M
$CASK vol create tank/v --size 16M
cp "$T/state/pools.cache" "$T/cache.before"

rc=0
timeout 20 "$CASKD" --state "$T/state" --socket "$T/run2/caskd.sock" \
  --nbd "127.0.0.1:$(free_port)" >"$T/second.log" 2>&1 || rc=$?
[ $rc -eq 1 ] || fail "a second caskd on the same state directory exited $rc, want 1: $(cat "$T/second.log")"
grep -q "state directory $T/state is in use by another caskd (pid $CASKD_PID)" "$T/second.log" ||
  fail "the refusal does not say who holds the directory: $(cat "$T/second.log")"
[ ! -e "$T/run2/caskd.sock" ] || fail "the refused caskd created its control socket"
cmp -s "$T/state/pools.cache" "$T/cache.before" || fail "the refused caskd changed pools.cache"
# the first caskd is unaffected
$CASK vol list -H -o name | grep -qx tank/v || fail "the first caskd lost its volume"

stop_caskd
start_caskd
$CASK vol list -H -o name | grep -qx tank/v || fail "the pool is not imported again after a restart"
grep -qx "$CASKD_PID" "$T/state/caskd.lock" || fail "caskd.lock does not name the running caskd"
echo ok
