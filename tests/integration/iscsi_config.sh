#!/usr/bin/env bash
# iscsi_config -- the iSCSI configuration surface: `cask iscsi chap set|unset`, `cask iscsi set`,
# `cask vol set iscsi_acl=... iscsi_auth=...`, `cask iscsi config`; each change checked by a real
# initiator (iscsi-inq) logging in or being refused, secrets never printed, logged or taken from
# the command line, bad values refused with one line, a damaged iscsi.json never overwritten.
source "$(dirname "$0")/lib.sh"
need iscsi-inq; need iscsi-ls; need iscsi-readcapacity16
[ -x "${CASK_ASAN_BUILD:-}/caskd" ] && CASKD="$CASK_ASAN_BUILD/caskd"
IPORT=$(free_port)
start_caskd --iscsi "127.0.0.1:$IPORT" -v
$CASK pool create tank "$T/tank0.vdev" --size 256M
for v in c m a; do $CASK vol create tank/$v --size 16M; done
$CASK snap create tank/a@s1
B="127.0.0.1:$IPORT/iqn.2026-12.io.cask:tank"
inq() { iscsi-inq "$@" 2>&1 | grep -q "Vendor:CASK"; }

# nothing configured: everything open, one daemon-wide entry listed
inq "iscsi://$B.c/0" || fail "open target refused before any configuration"
$CASK iscsi config -H -o target,auth > "$T/c0"
[ "$(cat "$T/c0")" = "$(printf '(daemon)\tdefault')" ] || { cat "$T/c0"; fail "empty configuration listing"; }

# one-way CHAP from standard input, policy through vol set
echo "alice-secret-12" | $CASK iscsi chap set --target tank/c --user alice
$CASK vol set iscsi_auth=chap tank/c
[ "$(stat -c %a "$T/state/iscsi.json")" = 600 ] || fail "iscsi.json is not mode 0600"
iscsi-inq "iscsi://$B.c/0" >/dev/null 2>"$T/e1" && fail "CHAP target let a login without credentials in"
grep -q "Authentication failure" "$T/e1" || { cat "$T/e1"; fail "no authentication failure"; }
inq "iscsi://alice%wrong-secret-1@$B.c/0" && fail "CHAP with a wrong secret"
inq "iscsi://alice%alice-secret-12@$B.c/0" || fail "CHAP login with the secret set by cask iscsi chap set"
# a new secret applies to the next login
printf 'alice-secret-34\n' > "$T/sec"
$CASK iscsi chap set --target tank/c --user alice --secret-file "$T/sec"
inq "iscsi://alice%alice-secret-12@$B.c/0" && fail "the old secret still works"
inq "iscsi://alice%alice-secret-34@$B.c/0" || fail "the new secret does not work"

# mutual CHAP: both secrets from files; the target proves its own
printf 'bob-secret-123\n' > "$T/bs"; printf 'target-secret-9\n' > "$T/ts"
$CASK iscsi chap set --target tank/m --user bob --secret-file "$T/bs" --mutual-user tank-m --mutual-secret-file "$T/ts"
$CASK iscsi set auth=mutual tank/m
inq "iscsi://bob%bob-secret-123@$B.m/0?target_user=tank-m&target_password=target-secret-9" || fail "mutual CHAP login"
inq "iscsi://bob%bob-secret-123@$B.m/0" && fail "mutual target accepted one-way CHAP"
inq "iscsi://bob%bob-secret-123@$B.m/0?target_user=tank-m&target_password=not-the-secret" &&
  fail "the initiator accepted a wrong target secret"

# ACL through vol set: a prefix entry and an exact one; a snapshot target follows its volume
$CASK vol set iscsi_acl=iqn.2026-12.io.cask.test:*,iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-inq tank/a
inq "iscsi://$B.a/0" || fail "ACL-listed initiator refused"
inq -i iqn.2026-12.io.cask.test:node7 "iscsi://$B.a/0" || fail "ACL prefix entry refused a match"
iscsi-inq -i iqn.1999-01.com.example:other "iscsi://$B.a/0" >/dev/null 2>"$T/e4" && fail "ACL let an unlisted initiator in"
grep -q "Authorization failure" "$T/e4" || { cat "$T/e4"; fail "ACL refusal is not 0202"; }
inq -i iqn.1999-01.com.example:other "iscsi://$B.a.s1/0" && fail "the snapshot target ignored its volume's ACL"
iscsi-ls -i iqn.1999-01.com.example:other "iscsi://127.0.0.1:$IPORT" > "$T/ls1"
grep -q "tank.a " "$T/ls1" && fail "discovery listed a target the ACL excludes"
grep -q "tank.c " "$T/ls1" || { cat "$T/ls1"; fail "discovery lost an open target"; }
$CASK vol set 'iscsi_acl=*' tank/a
inq -i iqn.1999-01.com.example:other "iscsi://$B.a/0" || fail "iscsi_acl=* did not open the target again"

# the listing shows users and whether a secret is set, never a secret (table and JSON)
$CASK iscsi config > "$T/c1"; $CASK iscsi config -j > "$T/c1.json"
grep -q "^tank/c .*alice *set" "$T/c1" || { cat "$T/c1"; fail "tank/c's CHAP entry not listed"; }
grep -q "^tank/m .*mutual .*bob *set *tank-m *set" "$T/c1" || { cat "$T/c1"; fail "tank/m's mutual entry not listed"; }
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d)' "$T/c1.json" >/dev/null || fail "config -j is not JSON"
! grep -q "secret-12\|secret-34\|secret-123\|secret-9" "$T/c1" "$T/c1.json" "$T/caskd.log" ||
  fail "a secret was printed or logged"

# bad input: one error line, nothing changed
cp "$T/state/iscsi.json" "$T/before.json"
expect_fail 2 "never given on the command line" $CASK iscsi chap set --target tank/c --user alice --secret x
echo short | expect_fail 1 "12 to 255 bytes" $CASK iscsi chap set --target tank/c --user alice
printf 'same-secret-999\n' > "$T/same"
expect_fail 1 "must differ" $CASK iscsi chap set --target tank/c --user alice --secret-file "$T/same" \
  --mutual-user t --mutual-secret-file "$T/same"
printf 'bob-secret-123\n' | expect_fail 1 "must differ" $CASK iscsi chap set --target tank/m --user bob2 --secret-file "$T/ts"
expect_fail 1 "INVALID_ARGUMENT" $CASK vol set iscsi_acl=Not-An-IQN tank/a
expect_fail 1 "is not default, none, chap or mutual" $CASK vol set iscsi_auth=sometimes tank/a
expect_fail 1 "is not 512 or 4096" $CASK iscsi set blocksize=1024 tank/a
expect_fail 1 "unknown iSCSI property" $CASK iscsi set colour=blue tank/a
expect_fail 1 "snapshot target uses its volume" $CASK iscsi set acl=iqn.2000-01.x:y tank/a@s1
expect_fail 1 "VOLUME_NOT_FOUND\|does not exist\|no volume" $CASK iscsi set acl=iqn.2000-01.x:y tank/nosuch
echo "a-long-enough-secret" | expect_fail 1 "VOLUME_NOT_FOUND\|does not exist\|no volume" \
  $CASK iscsi chap set --target tank/nosuch --user u
cmp -s "$T/state/iscsi.json" "$T/before.json" || fail "a refused change altered iscsi.json"

# 4096-byte logical blocks, per volume
$CASK iscsi set blocksize=4096 tank/a
iscsi-readcapacity16 "iscsi://$B.a/0" 2>/dev/null | grep -q "RETURNED LOGICAL BLOCK ADDRESS:4095$" || fail "iscsi_blocksize=4096 not applied"
$CASK iscsi set blocksize=512 tank/a

# unset: the mutual pair only, then everything; a CHAP target without a secret refuses all (fail closed)
$CASK iscsi chap unset --target tank/m --mutual
inq "iscsi://bob%bob-secret-123@$B.m/0?target_user=tank-m&target_password=target-secret-9" &&
  fail "mutual login after the mutual secret was removed"
$CASK iscsi set auth=chap tank/m
inq "iscsi://bob%bob-secret-123@$B.m/0" || fail "one-way CHAP after the mutual secret was removed"
$CASK iscsi chap unset --target tank/c
inq "iscsi://alice%alice-secret-34@$B.c/0" && fail "CHAP target without a secret let a login in"
$CASK vol set iscsi_auth=default tank/c
inq "iscsi://$B.c/0" || fail "iscsi_auth=default did not open the target again"
$CASK iscsi config -H -o target > "$T/c2"
grep -q "^tank/c$" "$T/c2" && { cat "$T/c2"; fail "an emptied target entry stayed"; }

# daemon-wide CHAP and auth: every target without its own secret uses them
echo "daemon-secret-77" | $CASK iscsi chap set --user ops
$CASK iscsi set auth=chap
inq "iscsi://$B.a/0" && fail "daemon-wide auth=chap not applied"
inq "iscsi://ops%daemon-secret-77@$B.a/0" || fail "daemon-wide CHAP secret refused"
$CASK iscsi set auth=default
# discovery sessions: CHAP with the daemon-wide secret once discovery_auth says so
iscsi-ls "iscsi://127.0.0.1:$IPORT" | grep -q "tank.c " || fail "open discovery refused"
$CASK iscsi set discovery_auth=chap
[ "$($CASK iscsi config -H -o target,discovery_auth | head -n 1)" = "$(printf '(daemon)\tchap')" ] ||
  fail "discovery_auth not listed"
iscsi-ls "iscsi://127.0.0.1:$IPORT" > "$T/ls2" 2>&1 && fail "discovery without CHAP under discovery_auth=chap"
iscsi-ls "iscsi://ops%daemon-secret-77@127.0.0.1:$IPORT" | grep -q "tank.c " || fail "discovery with CHAP refused"
expect_fail 1 "daemon-wide" $CASK iscsi set discovery_auth=chap tank/a
$CASK iscsi set discovery_auth=default; $CASK iscsi chap unset
iscsi-ls "iscsi://127.0.0.1:$IPORT" | grep -q "tank.c " || fail "discovery_auth=default did not open discovery again"

# a damaged iscsi.json is not overwritten
echo '{ "targets": ' > "$T/state/iscsi.json"; chmod 600 "$T/state/iscsi.json"
cp "$T/state/iscsi.json" "$T/bad.json"
expect_fail 1 "not a valid JSON object" $CASK iscsi set acl=iqn.2000-01.x:y tank/a
cmp -s "$T/state/iscsi.json" "$T/bad.json" || fail "a damaged iscsi.json was rewritten"

stop_caskd
! grep -q "AddressSanitizer\|runtime error\|LeakSanitizer" "$T/caskd.log" || fail "sanitizer report in the caskd log"
echo ok
