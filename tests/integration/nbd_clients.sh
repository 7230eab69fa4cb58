#!/usr/bin/env bash
# nbd_clients -- real NBD clients against a real caskd: qemu-img convert
# and compare, nbdcopy both ways, qemu-io pattern IO at odd offsets,
# nbdinfo --map showing holes after a trim, and data intact across a
# caskd restart. Also the NBD unix socket and IPv6 listeners.
source "$(dirname "$0")/lib.sh"
need qemu-img; need qemu-io; need nbdcopy; need nbdinfo

v6=()
if "$PY" -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null; then
  v6=(--nbd "[::1]:0")   # IPv6 loopback, where the machine has it
fi
start_caskd --nbd "unix:$T/nbd.sock" "${v6[@]}"
$CASK pool create tank "$T/tank0.vdev" --size 512M
$CASK vol create tank/v --size 64M
head -c 64M /dev/urandom > "$T/rand.img"

# qemu-img convert into the volume, then compare
qemu-img convert -n -f raw -O raw "$T/rand.img" "$NBD/tank/v"
qemu-img compare -f raw -F raw "$T/rand.img" "$NBD/tank/v"

# nbdcopy out and back in (to a second volume), byte for byte
nbdcopy "$NBD/tank/v" "$T/out.img"
cmp "$T/rand.img" "$T/out.img"
$CASK vol create tank/w --size 64M
nbdcopy "$T/out.img" "$NBD/tank/w"
nbdcopy "$NBD/tank/w" "$T/out2.img"
cmp "$T/rand.img" "$T/out2.img"

# qemu-io pattern writes and reads at odd offsets and lengths, and a discard
qemu-io -f raw "$NBD/tank/v" \
  -c "write -P 0x5a 1000 5000" -c "read -P 0x5a 1000 5000" \
  -c "write -P 0xa5 1048575 3" -c "read -P 0xa5 1048575 3" \
  -c "write -z 8M 4M" -c "read -P 0 8M 4M" \
  -c "discard 16M 8M" -c "read -P 0 16M 8M" -c "flush" > "$T/qemu-io.out"
if grep -qi "fail\|error" "$T/qemu-io.out"; then cat "$T/qemu-io.out"; fail "qemu-io pattern check"; fi

# the map shows the discarded range as a hole
nbdinfo --map "$NBD/tank/v" > "$T/map"
grep -Eq "^ *16777216 +8388608 +3 +hole,zero" "$T/map" || { cat "$T/map"; fail "no hole after discard"; }
grep -Eq "^ *0 +[0-9]+ +0 +data" "$T/map" || { cat "$T/map"; fail "no data extent"; }

# the unix socket and IPv6 listeners serve the same export
nbdinfo "nbd+unix:///tank/v?socket=$T/nbd.sock" | grep -q "export-size: 67108864"

# restart: everything written before SIGTERM is there
stop_caskd
start_caskd
qemu-io -f raw "$NBD/tank/v" -c "read -P 0x5a 1000 5000" -c "read -P 0xa5 1048575 3" \
  -c "read -P 0 16M 8M" > "$T/qemu-io2.out"
if grep -qi "fail\|error" "$T/qemu-io2.out"; then cat "$T/qemu-io2.out"; fail "data lost across restart"; fi
nbdcopy "$NBD/tank/w" "$T/out3.img"
cmp "$T/rand.img" "$T/out3.img"
qemu-img compare -f raw -F raw "$T/rand.img" "$NBD/tank/v" >/dev/null 2>&1 && fail "compare should see the changes"
# an unknown export is refused with a clear error
if nbdinfo "$NBD/tank/nope" 2>"$T/err"; then fail "unknown export served"; fi
grep -Eq "does not exist|No such file" "$T/err" || { cat "$T/err"; fail "unclear unknown-export error"; }
echo ok
