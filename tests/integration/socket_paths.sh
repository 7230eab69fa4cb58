#!/usr/bin/env bash
# socket_paths -- caskd removes only a stale socket at its socket paths
# (daemon/sockpath.c): a regular file at --socket or at an --nbd unix:PATH
# makes caskd refuse to start with a message naming it, and the file is left
# as it was; a second caskd pointed at a live caskd's NBD unix socket refuses
# ("in use by another process") and the first keeps serving; a socket left
# by a kill -9'd caskd is replaced at restart; --nbd unix:PATH,mode=,group=
# sets the socket's mode and group whatever the umask, and a bad mode or an
# unknown group is a startup error. (caskd used to unlink whatever was at
# both paths, and the unix NBD socket's mode came from the umask.)
source "$(dirname "$0")/lib.sh"
need nbdinfo

# refuse N PATTERN ARGS...: a caskd with its own state dir and ARGS exits 1
# (timeout: the old code started and served instead) printing PATTERN.
n=0
refuse() {
  local pat=$1; shift
  n=$((n + 1))
  local rc=0
  timeout 20 "$CASKD" --state "$T/st$n" "$@" >"$T/refused$n.log" 2>&1 || rc=$?
  [ $rc -eq 1 ] || fail "caskd $* exited $rc, want 1: $(cat "$T/refused$n.log")"
  grep -qF -- "$pat" "$T/refused$n.log" || fail "caskd $* said '$(cat "$T/refused$n.log")', want '$pat'"
}

# 1. a regular file at --socket
mkdir -p "$T/r1"
echo "not a socket: precious data" >"$T/r1/caskd.sock"
refuse "control socket $T/r1/caskd.sock: exists and is not a socket (a regular file)" \
  --socket "$T/r1/caskd.sock" --nbd "127.0.0.1:$(free_port)"
[ "$(cat "$T/r1/caskd.sock")" = "not a socket: precious data" ] || fail "the file at --socket was changed or removed"

# 2. a regular file (and a directory, a symlink) at the NBD unix path
echo "precious too" >"$T/nbd.file"
refuse "NBD socket $T/nbd.file: exists and is not a socket (a regular file)" \
  --socket "$T/r2/caskd.sock" --nbd "unix:$T/nbd.file"
[ "$(cat "$T/nbd.file")" = "precious too" ] || fail "the file at the NBD unix path was changed or removed"
[ ! -e "$T/r2/caskd.sock" ] || fail "the refused caskd left its control socket"
mkdir "$T/nbd.dir"
refuse "NBD socket $T/nbd.dir: exists and is not a socket (a directory)" \
  --socket "$T/r3/caskd.sock" --nbd "unix:$T/nbd.dir"
[ -d "$T/nbd.dir" ] || fail "the directory at the NBD unix path was removed"
ln -s "$T/nbd.file" "$T/nbd.link"
refuse "NBD socket $T/nbd.link: exists and is not a socket (a symbolic link)" \
  --socket "$T/r4/caskd.sock" --nbd "unix:$T/nbd.link"
[ -L "$T/nbd.link" ] && [ "$(cat "$T/nbd.file")" = "precious too" ] || fail "the symlink or its target was touched"

# 3. a live caskd's NBD unix socket (and control socket) is not taken
start_caskd --nbd "unix:$T/nbd.sock"
$CASK pool create tank "$T/t.vdev" --size 64M
$CASK vol create tank/v --size 16M
ino=$(stat -c %i "$T/nbd.sock")
refuse "NBD socket $T/nbd.sock: in use by another process" \
  --socket "$T/r5/caskd.sock" --nbd "unix:$T/nbd.sock"
[ "$(stat -c %i "$T/nbd.sock")" = "$ino" ] || fail "the live NBD socket was replaced"
nbdinfo "nbd+unix:///tank/v?socket=$T/nbd.sock" | grep -q "export-size: 16777216" ||
  fail "the first caskd no longer serves on its unix socket"
refuse "control socket $SOCK: in use by another process" \
  --socket "$SOCK" --nbd "127.0.0.1:$(free_port)"
$CASK vol list -H -o name | grep -qx tank/v || fail "the first caskd's control socket stopped answering"

# 4. kill -9 leaves both sockets behind; a restart replaces them (stale: no listener)
kill -KILL "$CASKD_PID"
wait "$CASKD_PID" 2>/dev/null || true
CASKD_PID=
[ -S "$T/nbd.sock" ] && [ -S "$SOCK" ] || fail "kill -9 did not leave the sockets (the test needs them)"
if nbdinfo "nbd+unix:///tank/v?socket=$T/nbd.sock" >/dev/null 2>&1; then fail "the stale socket still answers"; fi
start_caskd --nbd "unix:$T/nbd.sock"
nbdinfo "nbd+unix:///tank/v?socket=$T/nbd.sock" | grep -q "export-size: 16777216" ||
  fail "the restarted caskd does not serve on the replaced unix socket"
stop_caskd
[ ! -e "$T/nbd.sock" ] || fail "a clean stop left the NBD unix socket"

# 5. mode and group options, applied whatever the umask
grp=disk
getent group "$grp" >/dev/null || grp=$(id -gn)
umask 000
start_caskd --nbd "unix:$T/g.sock,mode=0640,group=$grp" --nbd "unix:$T/d.sock" \
  --nbd "unix:$T/o.sock,group=$grp" --nbd "unix:$T/m.sock,mode=666"
umask 022
[ "$(stat -c '%a %G' "$T/g.sock")" = "640 $grp" ] || fail "mode=0640,group=$grp gave $(stat -c '%a %G' "$T/g.sock")"
[ "$(stat -c '%a' "$T/d.sock")" = 600 ] || fail "the default mode under umask 000 is $(stat -c %a "$T/d.sock"), want 600"
[ "$(stat -c '%a %G' "$T/o.sock")" = "660 $grp" ] || fail "group= alone gave $(stat -c '%a %G' "$T/o.sock"), want 660 $grp"
[ "$(stat -c '%a' "$T/m.sock")" = 666 ] || fail "mode=666 gave $(stat -c %a "$T/m.sock")"
nbdinfo "nbd+unix:///tank/v?socket=$T/g.sock" | grep -q "export-size: 16777216" || fail "no service on the mode/group socket"
stop_caskd

# 6. bad options are startup errors naming the socket
for bad in 0999 rw 01777 "" -1; do
  refuse "unix socket $T/b.sock: bad mode '$bad'" --socket "$T/rb/caskd.sock" --nbd "unix:$T/b.sock,mode=$bad"
done
refuse "unix socket $T/b.sock: unknown group 'no-such-group-cask'" \
  --socket "$T/rb/caskd.sock" --nbd "unix:$T/b.sock,group=no-such-group-cask"
refuse "unix socket $T/b.sock: unknown option 'owner=root'" \
  --socket "$T/rb/caskd.sock" --nbd "unix:$T/b.sock,owner=root"
# a bad second listener: the first one's socket is removed again
refuse "unix socket $T/b.sock: bad mode '9'" \
  --socket "$T/rb/caskd.sock" --nbd "unix:$T/ok.sock" --nbd "unix:$T/b.sock,mode=9"
[ ! -e "$T/b.sock" ] && [ ! -e "$T/ok.sock" ] && [ ! -e "$T/rb/caskd.sock" ] ||
  fail "a refused caskd left a socket behind"
echo ok
