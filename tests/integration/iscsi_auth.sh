#!/usr/bin/env bash
# iscsi_auth -- CHAP (one-way and mutual, MD5) with secrets from STATE/iscsi.json, the
# per-target initiator ACL, header/data digest policy, and the hostile-PDU cases of
# iscsi_proto.py (bad lengths, unknown opcodes, oversized segments, digest errors:
# the connection is dropped and caskd keeps serving others), on the sanitizer caskd.
source "$(dirname "$0")/lib.sh"
need iscsi-inq; need qemu-img
[ -x "${CASK_ASAN_BUILD:-}/caskd" ] && CASKD="$CASK_ASAN_BUILD/caskd"
IPORT=$(free_port)
mkdir -p "$T/state"
cat > "$T/state/iscsi.json" <<'JSON'
{ "targets": {
    "tank/c": { "auth": "chap", "chap": { "user": "alice", "secret": "alice-secret-12" } },
    "tank/m": { "auth": "mutual", "chap": { "user": "bob", "secret": "bob-secret-123",
                "mutual_user": "tank-m", "mutual_secret": "target-secret-9" } },
    "tank/a": { "acl": [ "iqn.2026-12.io.cask.test:*", "iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-inq" ] }
} }
JSON
chmod 600 "$T/state/iscsi.json"
start_caskd --iscsi "127.0.0.1:$IPORT" --iscsi-header-digest require -v
$CASK pool create tank "$T/tank0.vdev" --size 512M
for v in c m a p; do $CASK vol create tank/$v --size 32M; done
B="127.0.0.1:$IPORT/iqn.2026-12.io.cask:tank"

# one-way CHAP: no credentials and a wrong secret are refused (0201), the right one works
iscsi-inq "iscsi://$B.c/0" >/dev/null 2>"$T/e1" && fail "CHAP target without credentials"
grep -q "Authentication failure" "$T/e1" || { cat "$T/e1"; fail "no authentication failure"; }
iscsi-inq "iscsi://alice%wrong-secret-1@$B.c/0" >/dev/null 2>"$T/e2" && fail "CHAP with a wrong secret"
grep -q "Authentication failure" "$T/e2" || { cat "$T/e2"; fail "wrong secret not an authentication failure"; }
iscsi-inq "iscsi://mallory%alice-secret-12@$B.c/0" >/dev/null 2>&1 && fail "CHAP with a wrong user"
iscsi-inq "iscsi://alice%alice-secret-12@$B.c/0" | grep -q "Vendor:CASK" || fail "CHAP login"
# mutual: the target proves its secret; a wrong expected target secret is caught by the initiator
iscsi-inq "iscsi://bob%bob-secret-123@$B.m/0?target_user=tank-m&target_password=target-secret-9" |
  grep -q "Vendor:CASK" || fail "mutual CHAP login"
iscsi-inq "iscsi://bob%bob-secret-123@$B.m/0?target_user=tank-m&target_password=not-the-secret" \
  >/dev/null 2>"$T/e3" && fail "mutual CHAP accepted a wrong target secret"
iscsi-inq "iscsi://bob%bob-secret-123@$B.m/0" >/dev/null 2>&1 && fail "mutual target accepted one-way CHAP"
# IO through a CHAP session with header digests (required here: qemu offers None,CRC32C and
# caskd picks CRC32C), round trip with qemu (qemu 7.2 crashes on a ?query in an iscsi:// URL)
head -c 32M /dev/urandom > "$T/r.img"
qemu-img convert -n -f raw -O raw "$T/r.img" "iscsi://alice%alice-secret-12@$B.c/0"
qemu-img compare -f raw -F raw "$T/r.img" "iscsi://alice%alice-secret-12@$B.c/0"
grep -q "tank.c (ISID [0-9a-f]*, TSIH [0-9]*), header digest" "$T/caskd.log" || fail "no header digest session logged"
# secrets never reach the log
! grep -q "alice-secret-12\|bob-secret-123\|target-secret-9" "$T/caskd.log" || fail "a secret in the log"

# ACL: listed initiators (and a prefix) log in, others get 0202 and do not see the target
iscsi-inq "iscsi://$B.a/0" | grep -q "Vendor:CASK" || fail "ACL-listed initiator refused"
iscsi-inq -i iqn.1999-01.com.example:other "iscsi://$B.a/0" >/dev/null 2>"$T/e4" && fail "ACL let an unlisted initiator in"
grep -q "Authorization failure" "$T/e4" || { cat "$T/e4"; fail "ACL refusal is not 0202"; }
iscsi-ls -i iqn.1999-01.com.example:other "iscsi://127.0.0.1:$IPORT" > "$T/ls1"
grep -q "tank.a " "$T/ls1" && fail "discovery listed a target the ACL excludes"
grep -q "tank.p " "$T/ls1" || { cat "$T/ls1"; fail "discovery lost an open target"; }

# an iscsi.json others can read is ignored (and said so): CHAP targets then refuse everyone
chmod 644 "$T/state/iscsi.json"
iscsi-inq "iscsi://$B.c/0" >/dev/null 2>&1 || true
grep -q "readable by others" "$T/caskd.log" || fail "a world-readable iscsi.json was not refused"
chmod 600 "$T/state/iscsi.json"

# with digests required, an initiator offering only None is refused (0200)
grep -q "no acceptable digest" "$T/caskd.log" && fail "early digest refusal"
"$PY" "$(dirname "$0")/iscsi_proto.py" 127.0.0.1 "$IPORT" iqn.2026-12.io.cask:tank.p >/dev/null 2>&1 &&
  fail "digest None accepted under --iscsi-header-digest require"
grep -q "refused (0x0200): no acceptable digest" "$T/caskd.log" || fail "no digest refusal logged"

# cask's own initiator (default digest policy): data digests, and hostile PDUs, each
# followed by a good session
stop_caskd
PORT= start_caskd --iscsi "127.0.0.1:$IPORT" -v
"$PY" "$(dirname "$0")/iscsi_proto.py" 127.0.0.1 "$IPORT" iqn.2026-12.io.cask:tank.p
kill -0 "$CASKD_PID" || fail "caskd died"
stop_caskd
! grep -q "AddressSanitizer\|runtime error\|LeakSanitizer" "$T/caskd.log" || fail "sanitizer report in the caskd log"
"$CASK_BUILD/cask-debug" check "$T/tank0.vdev" >"$T/check.out" 2>&1 || { cat "$T/check.out"; fail "check"; }
echo ok
