#!/usr/bin/env bash
# send_policy -- snapshot policies in send streams (docs/send-stream.md 3.1,
# stream version 2), end to end through cask and caskd:
#   * a volume with a policy sends a version 2 stream carrying it; without a
#     policy, or with --no-policy, the stream is version 1 as before;
#   * cask recv installs the stream's policy on the new volume (full
#     receive), recv --no-policy installs none, and export/import of the
#     receiving pool keeps the installed policy;
#   * version 1 streams written by the build before version 2
#     (tests/fixtures/stream-v1-full.xz, stream-v1-incr.xz) are received, with
#     exactly the data they were made from, and install no policy;
#   * an incremental onto a volume that has its own (other) policy keeps that
#     policy and caskd logs that the stream's was not installed; the automatic
#     snapshots its policy took after the base make the stream refused with a
#     hint, and recv -F destroys them (never a hand-made one).
# The scheduler's clock is the test's (caskd --test-ops --sched-clock).
source "$(dirname "$0")/lib.sh"
need xz
need qemu-io
need qemu-img
[ -x "${CASK_ASAN_BUILD:-}/caskd" ] && CASKD="$CASK_ASAN_BUILD/caskd"
here=$(cd "$(dirname "$0")" && pwd)
fix="$here/../fixtures"
has() { grep -qF -- "$2" <<<"$1" || fail "output lacks '$2': $1"; }

for w in "--no-policy" "snapshot policy" "version 2"; do has "$("$CASK" send --help)" "$w"; done
for w in "--no-policy" "keeps its own" "installs"; do has "$("$CASK" recv --help)" "$w"; done

clock() {
  "$PY" - "$here" "$SOCK" "$1" <<'PY' >/dev/null
import sys; sys.path.insert(0, sys.argv[1])
from viohelp import Ctl
Ctl(sys.argv[2]).call("test.sched_clock", time=int(sys.argv[3]))
PY
}
# version NAME: the sb_version of a stream file
version() { od -A n -t u4 -j 72 -N 4 "$1" | tr -d ' '; }
# policy POOL/VOL: "every keep retain" from schedule list, or "" when it has none
policy() { "$CASK" schedule list -H -o name,every,keep,retain "${1%%/*}" | awk -v n="$1" '$1 == n {print $2, $3, $4}'; }
sha() { qemu-img convert -f raw -O raw "$NBD/$1" "$T/img.raw" && sha256sum "$T/img.raw" | cut -d' ' -f1; }

T0=1767225600 # 2026-01-01T00:00Z
start_caskd --test-ops --sched-clock "$T0"
"$CASK" pool create src "$T/src.vdev" --size 128M >/dev/null
"$CASK" pool create dst "$T/dst.vdev" --size 128M >/dev/null
"$CASK" vol create src/v --size 1M >/dev/null
qemu-io -f raw -c 'write -P 0x5a 0 64k' "$NBD/src/v" >/dev/null
"$CASK" snap create src/v@one

# ---- sending: version 1 without a policy, version 2 with one ----
"$CASK" send src/v@one >"$T/nopol.stream"
[ "$(version "$T/nopol.stream")" = 1 ] || fail "a volume without a policy sent version $(version "$T/nopol.stream")"
"$CASK" schedule set src/v --every 1h --keep 3 --daily 7
"$CASK" send src/v@one >"$T/one.stream"
[ "$(version "$T/one.stream")" = 2 ] || fail "a volume with a policy sent version $(version "$T/one.stream")"
"$CASK" send --no-policy src/v@one >"$T/one-np.stream"
[ "$(version "$T/one-np.stream")" = 1 ] || fail "--no-policy sent version $(version "$T/one-np.stream")"
cmp -s "$T/nopol.stream" "$T/one-np.stream" || fail "--no-policy's stream differs from one without a policy"

# ---- receiving: installed, or not with --no-policy ----
"$CASK" recv dst/a <"$T/one.stream"
[ "$(policy dst/a)" = "1h 3 daily=7" ] || fail "the received policy of dst/a is '$(policy dst/a)'"
grep -q "dst/a: the stream's snapshot policy (every 60m, keep 3, hourly 0, daily 7, weekly 0, monthly 0) installed" \
  "$T/caskd.log" || fail "caskd did not log the installed policy"
"$CASK" recv --no-policy dst/b <"$T/one.stream"
[ -z "$(policy dst/b)" ] || fail "recv --no-policy installed '$(policy dst/b)'"
"$CASK" recv dst/n <"$T/nopol.stream"
[ -z "$(policy dst/n)" ] || fail "a version 1 stream installed '$(policy dst/n)'"
[ "$(sha src/v@one)" = "$(sha dst/a@one)" ] || fail "dst/a@one differs from src/v@one"

# ---- version 1 streams of the build before version 2 ----
xz -dc "$fix/stream-v1-full.xz" | "$CASK" recv dst/old
xz -dc "$fix/stream-v1-incr.xz" | "$CASK" recv dst/old
[ "$(sha dst/old@one)" = a4ea51235b105c05f880b30d82ff422765df29115129639d0dd8b1e084357c7a ] || fail "dst/old@one has other data"
[ "$(sha dst/old@two)" = 54535cf33138e610a42cabd265cbdd84cb93a876ab07ecee303ccaa74ef37bf6 ] || fail "dst/old@two has other data"
[ -z "$(policy dst/old)" ] || fail "a version 1 fixture installed '$(policy dst/old)'"

# ---- an incremental onto a volume with its own policy ----
"$CASK" schedule set dst/a --every 15m --keep 8
clock $((T0 + 3600)) # dst/a's policy takes an automatic snapshot after the base
autos=$("$CASK" snap list -H -o name dst/a | grep -c '@auto-' || true)
[ "$autos" -ge 1 ] || fail "dst/a's policy took no automatic snapshot"
qemu-io -f raw -c 'write -P 0x77 128k 8k' "$NBD/src/v" >/dev/null
"$CASK" snap create src/v@two
"$CASK" send -i @one src/v@two >"$T/two.stream"
expect_fail 1 "automatic snapshot" "$CASK" recv dst/a <"$T/two.stream"
"$CASK" recv -F dst/a <"$T/two.stream"
[ "$("$CASK" snap list -H -o name dst/a | grep -c '@auto-' || true)" = 0 ] || fail "recv -F left automatic snapshots"
[ "$(policy dst/a)" = "15m 8 -" ] || fail "dst/a's own policy was replaced: '$(policy dst/a)'"
grep -q "dst/a: the stream's snapshot policy (every 60m, keep 3.*not installed: the volume keeps its own policy" \
  "$T/caskd.log" || fail "caskd did not log the kept policy"
[ "$(sha src/v@two)" = "$(sha dst/a@two)" ] || fail "dst/a@two differs from src/v@two"
# a hand-made snapshot after the base is never destroyed by -F
"$CASK" snap create dst/b@mine
"$CASK" send -i @one src/v@two >"$T/two.stream"
expect_fail 1 "wrong base" "$CASK" recv -F dst/b <"$T/two.stream"
"$CASK" snap list -H -o name dst/b | grep -q '^dst/b@mine$' || fail "recv -F destroyed a hand-made snapshot"

# ---- the installed policy travels with the pool ----
"$CASK" recv dst/c <"$T/one.stream"
# the pass the install kicked may be running: export waits for it (registry.c invariant 1)
"$CASK" pool export dst
"$CASK" pool import --path "$T/dst.vdev" >/dev/null
[ "$(policy dst/c)" = "1h 3 daily=7" ] || fail "after export/import dst/c's policy is '$(policy dst/c)'"
[ "$(policy dst/a)" = "15m 8 -" ] || fail "after export/import dst/a's policy is '$(policy dst/a)'"
stop_caskd
"$CASK_BUILD/cask-debug" check "$T/dst.vdev" >/dev/null || fail "cask-debug check of dst"
echo "ok: policies travel in version 2 streams; version 1 fixtures received"
