#!/usr/bin/env bash
# iscsi_cli -- the operator's view of the iSCSI target (docs/iscsi.md §14) against real
# initiators: `cask iscsi targets` (the same targets iscsi-ls discovers, portals, LUN, ACL,
# CHAP on/off and never a secret), `cask iscsi sessions` (a qemu-io iscsi:// session: initiator
# IQN, ISID, TSIH, address, digests, a command held in the volume IO stack counted in flight),
# `cask iscsi logout` (the initiator logs out when asked; --force drops; an unknown TSIH is
# CLIENT_NOT_FOUND), `cask iscsi pr` (registrations and the holder, kept after the sessions end),
# the iscsi_* properties in `cask vol get`, following a `cask vol rename`; all with -j.
source "$(dirname "$0")/lib.sh"
need iscsi-ls; need iscsi-inq; need qemu-io
qemu-io --help | grep -q iscsi || qemu-img --help | grep -q iscsi || skip "qemu has no iscsi driver (qemu-block-extra)"
[ -x "${CASK_ASAN_BUILD:-}/caskd" ] && CASKD="$CASK_ASAN_BUILD/caskd"
HERE=$(cd "$(dirname "$0")" && pwd)

IPORT=$(free_port)
IPORT2=$(free_port)
start_caskd --iscsi "127.0.0.1:$IPORT" --iscsi "127.0.0.1:$IPORT2" --test-ops
$CASK pool create tank "$T/tank0.vdev" --size 256M
$CASK vol create tank/v --size 32M
$CASK vol create tank/w --size 16M
$CASK snap create tank/v@s1
P=iqn.2026-12.io.cask
jq_() { "$PY" -c "import json,sys; d=json.load(sys.stdin); $1"; }

# ---- targets: the same names iscsi-ls discovers, both portals, LUN 0, sizes, defaults
iscsi-ls -s "iscsi://127.0.0.1:$IPORT" > "$T/ls"
$CASK iscsi targets -j > "$T/t.json"
jq_ "
want = {'$P:tank.v': ('tank/v', 33554432, False), '$P:tank.v.s1': ('tank/v@s1', 33554432, True),
        '$P:tank.w': ('tank/w', 16777216, False)}
got = {t['iqn']: t for t in d}
assert set(got) == set(want), sorted(got)
for iqn, (vol, size, ro) in want.items():
    t = got[iqn]
    assert (t['volume'], t['size'], t['ro'], t['lun'], t['state']) == (vol, size, 'on' if ro else 'off', 0, 'ok'), t
    assert t['acl'] == '*' and t['chap'] == 'off' and t['auth'] == 'none' and t['sessions'] == 0, t
    assert t['portals'] == '127.0.0.1:$IPORT,1,127.0.0.1:$IPORT2,1', t['portals']
" < "$T/t.json" || { cat "$T/t.json"; fail "iscsi targets -j"; }
for iqn in $("$PY" -c "import json,sys; print(' '.join(t['iqn'] for t in json.load(sys.stdin)))" < "$T/t.json"); do
  grep -q "Target:$iqn Portal:127.0.0.1:$IPORT,1" "$T/ls" || { cat "$T/ls"; fail "$iqn listed but not discovered"; }
done
[ "$(grep -c '^Target:' "$T/ls")" -eq 3 ] || { cat "$T/ls"; fail "discovery has targets the listing lacks"; }
$CASK iscsi targets tank | grep -q "^$P:tank.w  *tank/w  *ok" || { $CASK iscsi targets tank; fail "iscsi targets table"; }
expect_fail 1 "POOL_NOT_FOUND" $CASK iscsi targets nopool

# ---- ACL, CHAP and block size show up (never a secret), in vol get too
SECRET=cli-test-secret-0123
printf '%s\n' "$SECRET" > "$T/secret"
$CASK vol set iscsi_acl=iqn.2026-12.io.cask.test:a,iqn.1993-08.org.debian:01:* iscsi_blocksize=4096 iscsi_auth=chap tank/w
$CASK iscsi chap set --target tank/w --user alice --secret-file "$T/secret"
$CASK iscsi targets -j tank > "$T/t2.json"
jq_ "
t = [x for x in d if x['volume'] == 'tank/w'][0]
assert t['acl'] == 'iqn.2026-12.io.cask.test:a,iqn.1993-08.org.debian:01:*' and t['chap'] == 'on', t
assert t['mutual_chap'] == 'off' and t['blocksize'] == 4096 and t['auth'] == 'chap', t
" < "$T/t2.json" || { cat "$T/t2.json"; fail "ACL/CHAP not shown by iscsi targets"; }
$CASK vol get -j all tank/w > "$T/get.json"
jq_ "
p = {r['property']: (r['value'], r['source']) for r in d}
assert p['iscsi_acl'] == ('iqn.2026-12.io.cask.test:a,iqn.1993-08.org.debian:01:*', 'local'), p['iscsi_acl']
assert p['iscsi_blocksize'] == ('4096', 'local') and p['iscsi_auth'] == ('chap', 'local'), p
" < "$T/get.json" || { cat "$T/get.json"; fail "vol get all: iscsi_* properties"; }
[ "$($CASK vol get -H -o value iscsi_acl tank/v)" = "*" ] || fail "vol get iscsi_acl of an unconfigured volume"
[ "$($CASK vol get -H -o source iscsi_blocksize tank/v)" = "default" ] || fail "vol get iscsi_blocksize source"
# the ACL is what a real initiator meets: the listed initiator logs in, another does not
iscsi-inq -i iqn.2026-12.io.cask.test:zzz "iscsi://alice%$SECRET@127.0.0.1:$IPORT/$P:tank.w/0" >/dev/null 2>&1 &&
  fail "an initiator outside the listed ACL logged in"
iscsi-inq -i iqn.2026-12.io.cask.test:a "iscsi://127.0.0.1:$IPORT/$P:tank.w/0" >/dev/null 2>&1 &&
  fail "a login without CHAP was let in (iscsi_auth=chap)"
iscsi-inq -i iqn.2026-12.io.cask.test:a "iscsi://alice%$SECRET@127.0.0.1:$IPORT/$P:tank.w/0" >/dev/null ||
  fail "the initiator in the ACL could not log in with CHAP"
# the settings follow a rename (and the old name keeps none)
$CASK vol rename tank/w tank/w2
[ "$($CASK vol get -H -o value iscsi_acl tank/w2)" = "iqn.2026-12.io.cask.test:a,iqn.1993-08.org.debian:01:*" ] ||
  fail "iscsi_acl did not follow vol rename"
[ "$($CASK vol get -H -o value iscsi_blocksize tank/w2)" = 4096 ] || fail "iscsi_blocksize did not follow vol rename"
$CASK iscsi config -H -o target | grep -qx "tank/w" && fail "the old name kept iSCSI settings"
$CASK iscsi targets -H -o iqn,chap tank | grep -q "^$P:tank.w2	on$" || { $CASK iscsi targets -o iqn,chap; fail "renamed target"; }
iscsi-inq -i iqn.2026-12.io.cask.test:a "iscsi://alice%$SECRET@127.0.0.1:$IPORT/$P:tank.w2/0" >/dev/null ||
  fail "CHAP and ACL did not follow the rename to the target"
for f in "$T/t.json" "$T/t2.json" "$T/get.json" "$T/caskd.log"; do
  grep -q -- "$SECRET" "$f" && fail "the CHAP secret appears in $f"
done
$CASK iscsi targets -j | grep -q -- "$SECRET" && fail "iscsi targets printed the secret"

# ---- sessions: a qemu-io iscsi:// session held open (commands from a FIFO), with header digests
mkfifo "$T/qin"
qemu-io --image-opts "driver=iscsi,transport=tcp,portal=127.0.0.1:$IPORT2,target=$P:tank.v,lun=0,header-digest=crc32c" \
  < "$T/qin" > "$T/qio.out" 2>&1 &
QPID=$!
exec 3>"$T/qin"
trap 'rc=$?; exec 3>&- 2>/dev/null || true; kill $QPID 2>/dev/null || true; (exit $rc); cleanup' EXIT
wait_sessions() { # N [TARGET]: until N sessions are listed (generous bound, polled)
  for _ in $(seq 1 400); do
    [ "$($CASK iscsi sessions -H -o tsih ${2:-} | wc -l)" -eq "$1" ] && return 0
    sleep 0.05
  done
  $CASK iscsi sessions; fail "want $1 sessions"
}
wait_sessions 1
$CASK iscsi sessions -j > "$T/s.json"
jq_ "
s = d[0]
assert s['initiator'].startswith('iqn.2008-11.org.linux-kvm'), s
assert s['target'] == '$P:tank.v' and s['volume'] == 'tank/v' and s['state'] == 'logged-in', s
assert len(s['isid']) == 14 and s['isid'].startswith('0x') and s['tsih'] > 0, s
assert s['address'].startswith('127.0.0.1:') and s['portal'] == '127.0.0.1:$IPORT2', s
assert s['header_digest'] == 'CRC32C' and s['data_digest'] == 'None' and s['chap'] == 'none', s
" < "$T/s.json" || { cat "$T/s.json"; fail "iscsi sessions -j"; }
TSIH=$("$PY" -c "import json,sys; print(json.load(sys.stdin)[0]['tsih'])" < "$T/s.json")
[ "$($CASK iscsi sessions -H -o tsih "$P:tank.v")" = "$TSIH" ] || fail "sessions of a target (by name)"
[ "$($CASK iscsi sessions -H -o tsih tank/v)" = "$TSIH" ] || fail "sessions of a target (by volume)"
[ -z "$($CASK iscsi sessions -H tank/v@s1)" ] || fail "a session listed under another target"
$CASK iscsi targets -H -o volume,sessions | grep -q "^tank/v	1$" || fail "targets does not count the session"
# a write held in the volume IO stack is a command in flight
cat > "$T/fault.py" <<'PY'
import sys, time
from viohelp import Ctl
c = Ctl(sys.argv[1])
if sys.argv[2] == "stall":
    c.call("test.vio_fault", name="tank/v", action="stall", ops=["write"])
elif sys.argv[2] == "held":
    for _ in range(400):
        if c.call("test.vio_fault", name="tank/v", action="status")["held"] > 0:
            sys.exit(0)
        time.sleep(0.05)
    sys.exit("no write was held")
else:
    c.call("test.vio_fault", name="tank/v", action="release")
    c.call("test.vio_fault", name="tank/v", action="clear")
PY
fault() { PYTHONPATH="$HERE" "$PY" "$T/fault.py" "$SOCK" "$1"; }
fault stall
echo "aio_write -P 0x6b 1M 64k" >&3
fault held
[ "$($CASK iscsi sessions -H -o commands)" -ge 1 ] || { $CASK iscsi sessions -o tsih,commands; fail "no command in flight"; }
fault release
for _ in $(seq 1 400); do [ "$($CASK iscsi sessions -H -o commands)" = 0 ] && break; sleep 0.05; done
[ "$($CASK iscsi sessions -H -o commands)" = 0 ] || fail "the released command is still counted"
echo "aio_flush" >&3
echo "read -P 0x6b 1M 64k" >&3

# ---- logout: libiscsi logs out when asked (and logs in again by itself: a new session)
out=$($CASK iscsi logout "$TSIH")
[ "$out" = "session $TSIH logged out" ] || fail "logout said '$out'"
grep -q "the operator asked iqn.2008-11.org.linux-kvm.* to log out (TSIH $TSIH)" "$T/caskd.log" || fail "no log line"
$CASK iscsi sessions -H -o tsih | grep -qx "$TSIH" && fail "the session is still listed after its logout"
expect_fail 1 "CLIENT_NOT_FOUND" $CASK iscsi logout "$TSIH"
expect_fail 2 "TSIH" $CASK iscsi logout 0
expect_fail 2 "TSIH" $CASK iscsi logout abc
# an initiator that does not log out when asked is dropped after Parameter3 (2 s) + 1 s
cat > "$T/deaf.py" <<'PY'
import struct, sys, time
import iscsi_proto as ip
ip.HOST, ip.PORT, ip.TARGET = "127.0.0.1", int(sys.argv[1]), sys.argv[2]
s = ip.Sess(isid=bytes.fromhex(sys.argv[3]))
s.login()
mode = sys.argv[4]
s.s.settimeout(30)
r, _ = s.recv_pdu()  # the Async Message: AsyncEvent 1, Parameter3 = seconds to log out in
assert r[0] & 0x3F == 0x32 and r[36] == 1 and struct.unpack(">H", r[42:44])[0] == 2, r.hex()
if mode == "obey":
    o = bytearray(48); o[0] = 0x46; o[1] = 0x80
    struct.pack_into(">I", o, 16, 0x99); struct.pack_into(">I", o, 24, s.cmdsn)
    s.send_pdu(o)
    r, _ = s.recv_pdu()
    assert r[0] & 0x3F == 0x26 and r[2] == 0, r.hex()
    print("logged out")
else:
    print("dropped" if s.expect_drop() else "still there")
PY
deaf() { PYTHONPATH="$HERE" "$PY" "$T/deaf.py" "$IPORT" "$P:tank.v" "$@"; }
deaf 400000000009 ignore > "$T/deaf.out" &
DPID=$!
for _ in $(seq 1 400); do
  D=$($CASK iscsi sessions -j | jq_ "print(' '.join(str(s['tsih']) for s in d if s['isid'] == '0x400000000009'))")
  [ -n "$D" ] && break; sleep 0.05
done
[ -n "$D" ] || fail "the deaf session never logged in"
out=$($CASK iscsi logout "$D")
[ "$out" = "session $D dropped" ] || fail "logout of a deaf initiator said '$out'"
wait $DPID
[ "$(cat "$T/deaf.out")" = dropped ] || fail "the deaf initiator: $(cat "$T/deaf.out")"
deaf 40000000000a obey > "$T/obey.out" &
DPID=$!
for _ in $(seq 1 400); do
  D=$($CASK iscsi sessions -j | jq_ "print(' '.join(str(s['tsih']) for s in d if s['isid'] == '0x40000000000a'))")
  [ -n "$D" ] && break; sleep 0.05
done
[ "$($CASK iscsi logout "$D")" = "session $D logged out" ] || fail "logout of an obeying initiator"
wait $DPID
[ "$(cat "$T/obey.out")" = "logged out" ] || fail "the obeying initiator: $(cat "$T/obey.out")"
# --force drops at once; the qemu-io session that logged in again goes
for _ in $(seq 1 400); do
  Q=$($CASK iscsi sessions -H -o tsih,initiator | awk '$2 ~ /linux-kvm/ {print $1}')
  [ -n "$Q" ] && break; sleep 0.05
done
[ -n "$Q" ] || fail "qemu-io did not log in again after the logout"
[ "$($CASK iscsi logout --force "$Q")" = "session $Q dropped" ] || fail "logout --force"
exec 3>&-
wait $QPID || true
grep -q "Pattern verification failed" "$T/qio.out" && { cat "$T/qio.out"; fail "the write held in flight was lost"; }

# ---- persistent reservations: two registrants, one holds (cask's initiator: libiscsi-bin has no PR tool)
pr() { PYTHONPATH="$HERE" "$PY" "$HERE/iscsi_pr.py" 127.0.0.1 "$IPORT" "$P:tank.v" "$@"; }
pr iqn.2026-12.io.cask.test:a 400000000001 register abc reserve abc 5 > "$T/pr.out"
pr iqn.2026-12.io.cask.test:b 400000000002 register def >> "$T/pr.out"
[ "$(cat "$T/pr.out")" = "register 0
reserve 0
register 0" ] || { cat "$T/pr.out"; fail "PR set-up"; }
$CASK iscsi pr -j "$P:tank.v" > "$T/pr.json"
jq_ "
assert d['volume'] == 'tank/v' and d['type'] == 'write-exclusive-registrants-only' and d['generation'] == 2, d
assert not d['aptpl'], d
regs = {r['initiator_port']: (r['key'], r['holder']) for r in d['registrations']}
assert regs == {'iqn.2026-12.io.cask.test:a,i,0x400000000001': ('0x0000000000000abc', True),
                'iqn.2026-12.io.cask.test:b,i,0x400000000002': ('0x0000000000000def', False)}, regs
" < "$T/pr.json" || { cat "$T/pr.json"; fail "iscsi pr -j"; }
$CASK iscsi pr tank/v | grep -q "reservation write-exclusive-registrants-only" || fail "iscsi pr summary line"
$CASK iscsi pr -H tank/v | grep -q "^0x0000000000000abc	iqn.2026-12.io.cask.test:a,i,0x400000000001	yes$" ||
  { $CASK iscsi pr -H tank/v; fail "iscsi pr rows"; }
[ -z "$($CASK iscsi pr -H tank/v@s1)" ] || fail "the snapshot target has registrations"
expect_fail 1 "VOLUME_NOT_FOUND" $CASK iscsi pr tank/nope
expect_fail 1 "no such iSCSI target" $CASK iscsi pr "$P:tank.nope"
expect_fail 2 "TARGET" $CASK iscsi pr

stop_caskd
! grep -q "AddressSanitizer\|runtime error\|LeakSanitizer" "$T/caskd.log" || fail "sanitizer report in the caskd log"
echo ok
