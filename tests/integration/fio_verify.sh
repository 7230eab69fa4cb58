#!/usr/bin/env bash
# fio_verify -- fio with ioengine=nbd against two volumes at once, several
# jobs each, random writes with verify=crc32c (every block read back and
# checked), then a second pass verifying after a caskd restart.
source "$(dirname "$0")/lib.sh"
need fio
fio --enghelp=nbd >/dev/null 2>&1 || skip "this fio has no nbd engine"
start_caskd
$CASK pool create tank "$T/tank0.vdev" --size 1G
$CASK vol create tank/a --size 128M
$CASK vol create tank/b --size 128M -o volblocksize=16K -o compression=zstd
cat > "$T/job.fio" <<JOB
[global]
ioengine=nbd
rw=randwrite
bs=4k
iodepth=16
size=32M
verify=crc32c
verify_fatal=1
do_verify=1
randrepeat=1
[a1]
uri=$NBD/tank/a
offset=0
[a2]
uri=$NBD/tank/a
offset=64M
[b1]
uri=$NBD/tank/b
offset=0
bs=8k
[b2]
uri=$NBD/tank/b
offset=64M
JOB
fio --aux-path="$T" --output="$T/fio.out" "$T/job.fio" || { cat "$T/fio.out"; fail "fio failed"; }
grep -q "err= 0" "$T/fio.out" || { cat "$T/fio.out"; fail "fio reported errors"; }
# the same data verifies after a restart (verify_only reads and checks)
stop_caskd
start_caskd
sed -i 's/^do_verify=1/verify_only=1/' "$T/job.fio"
fio --aux-path="$T" --output="$T/fio2.out" "$T/job.fio" || { cat "$T/fio2.out"; fail "verify after restart failed"; }
echo ok
