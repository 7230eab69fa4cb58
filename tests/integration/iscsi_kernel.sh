#!/usr/bin/env bash
# iscsi_kernel -- the Linux kernel's iSCSI initiator (iscsi_tcp, open-iscsi's iscsid and
# iscsiadm) against caskd's target. This machine's kernel has no iscsi_tcp, so Debian's kernel
# (linux-image-amd64) boots under qemu-system-x86_64 -accel tcg with an initramfs built here
# from the installed packages (busybox-static, open-iscsi, e2fsprogs, the kernel's modules).
# In the guest: SendTargets discovery; login with CHAP (the secret set by `cask iscsi chap
# set`, SHA-256); mkfs.ext4; files written with fsync; checksums; logout; login again with
# mutual CHAP (SHA3-256) and header and data digests CRC32C; e2fsck -fn; the checksums again; fstrim. Results come
# back over the serial console; the host then reads the volume over NBD and checks the
# filesystem (e2fsck) and every file (debugfs) against the checksums the guest printed.
source "$(dirname "$0")/lib.sh"
need qemu-system-x86_64; need iscsid; need iscsiadm; need busybox; need mke2fs; need e2fsck
need debugfs; need cpio; need depmod; need qemu-img
KVER=$(ls /lib/modules 2>/dev/null | sort -V | tail -n 1)
KERNEL=/boot/vmlinuz-$KVER
[ -n "$KVER" ] && [ -r "$KERNEL" ] || skip "no Debian kernel (package linux-image-amd64) in /boot and /lib/modules"
[ -n "$(find "/lib/modules/$KVER" -name 'iscsi_tcp.ko*' 2>/dev/null)" ] || skip "kernel $KVER has no iscsi_tcp module"
BB=$(command -v busybox)
{ ldd "$BB" 2>&1 || true; } | grep -q "not a dynamic" || skip "busybox is not static (package busybox-static)"
[ -x "${CASK_ASAN_BUILD:-}/caskd" ] && CASKD="$CASK_ASAN_BUILD/caskd"

IPORT=$(free_port)
INAME=iqn.2026-12.io.cask.test:guest
start_caskd --iscsi "127.0.0.1:$IPORT" -v
$CASK pool create tank "$T/tank0.vdev" --size 512M
$CASK vol create tank/k --size 64M
$CASK vol set iscsi_acl=$INAME iscsi_auth=chap tank/k
printf 'guest-secret-0123\n' > "$T/s1"; printf 'target-secret-4567\n' > "$T/s2"
$CASK iscsi chap set --target tank/k --user guest --secret-file "$T/s1" --mutual-user tank-k --mutual-secret-file "$T/s2"
TGT=iqn.2026-12.io.cask:tank.k

# ---- the initramfs ----
R="$T/root"
mkdir -p "$R"/{bin,sbin,etc/iscsi,proc,sys,dev,tmp,mnt,run/lock/iscsi,var/lib/iscsi,var/lock,lib64}
cp "$BB" "$R/bin/busybox"
for b in /usr/sbin/iscsid /usr/sbin/iscsiadm "$(command -v mke2fs)" "$(command -v e2fsck)"; do
  cp "$b" "$R/sbin/"
  ldd "$b" | awk '$2=="=>" && $3 ~ /^\//{print $3} $1 ~ /^\//{print $1}' | while read -r lib; do
    mkdir -p "$R$(dirname "$lib")"; cp -L "$lib" "$R$lib"
  done
done
ln -s mke2fs "$R/sbin/mkfs.ext4"
# the modules, their dependencies first, and a modules.dep for them (libkmod in iscsid reads it)
MODS="e1000 crc32c_generic iscsi_tcp sd_mod ext4"
: > "$T/modlist"
for m in $MODS; do
  modprobe --show-depends -S "$KVER" "$m" | awk '$1=="insmod"{print $2}' >> "$T/modlist" ||
    skip "modprobe cannot resolve module $m of $KVER"
done
while read -r ko; do
  [ -f "$R$ko" ] && continue
  mkdir -p "$R$(dirname "$ko")"; cp "$ko" "$R$ko"
done < "$T/modlist"
cp /lib/modules/"$KVER"/modules.{order,builtin,builtin.modinfo} "$R/lib/modules/$KVER/" 2>/dev/null || true
depmod -b "$R" "$KVER"
awk '!seen[$0]++' "$T/modlist" | sed "s|^|insmod |" > "$R/etc/modules.sh"

echo "InitiatorName=$INAME" > "$R/etc/iscsi/initiatorname.iscsi"
cat > "$R/etc/iscsi/iscsid.conf" <<'EOF'
iscsid.startup = /bin/true
node.startup = manual
node.session.timeo.replacement_timeout = 30
node.conn[0].timeo.login_timeout = 30
node.conn[0].timeo.noop_out_interval = 5
node.conn[0].timeo.noop_out_timeout = 15
node.session.initial_login_retry_max = 2
EOF
echo 'root:x:0:0:root:/:/bin/sh' > "$R/etc/passwd"
cat > "$R/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/sbin:/bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
step() { echo "CASK-STEP \$*"; }
die() { echo "CASK-FAIL \$*"; dmesg | tail -n 30; echo o > /proc/sysrq-trigger; sleep 10; }
sh /etc/modules.sh 2>&1 | grep -v "File exists" || true
ip link set lo up; ip link set eth0 up || die "no eth0"
ip addr add 10.0.2.15/24 dev eth0; ip route add default via 10.0.2.2
iscsid -f -n 2>/tmp/iscsid.log &
sleep 1
P=10.0.2.2:$IPORT
N="iscsiadm -m node -T $TGT -p \$P"
ok=0
for i in 1 2 3 4 5; do
  iscsiadm -m discovery -t sendtargets -p \$P > /tmp/disc 2>/tmp/disc.err && { ok=1; break; }
  sleep 1
done
[ \$ok = 1 ] || die "discovery: \$(cat /tmp/disc.err /tmp/iscsid.log)"
grep -q " $TGT\\\$" /tmp/disc || die "discovery does not list $TGT: \$(cat /tmp/disc)"
step discovery \$(cat /tmp/disc)
# the target names its portal as caskd sees it (127.0.0.1, behind the user-mode NAT): the
# node record for the portal the guest reaches it by is made by hand
\$N -o new >/dev/null || die "node record"
\$N -o update -n node.session.auth.authmethod -v CHAP
\$N -o update -n node.session.auth.username -v guest
\$N -o update -n node.session.auth.password -v guest-secret-0123
\$N -o update -n node.session.auth.chap_algs -v SHA256,MD5
waitdisk() {
  for i in \$(seq 1 300); do [ -b /dev/sda ] && [ "\$(cat /sys/block/sda/size 2>/dev/null)" != 0 ] && return 0; sleep 0.1; done
  die "no /dev/sda after login"
}
\$N --login >/tmp/login 2>&1 || die "login with CHAP: \$(cat /tmp/login)"
waitdisk
step login-chap size=\$(cat /sys/block/sda/size)
mkfs.ext4 -q -F -E nodiscard /dev/sda || die "mkfs.ext4"
mount -t ext4 /dev/sda /mnt || die "mount"
for i in 1 2 3 4 5; do
  dd if=/dev/urandom of=/mnt/f\$i bs=64k count=\$((i * 8)) conv=fsync 2>/dev/null || die "write f\$i"
done
mkdir /mnt/d; echo "hello from the kernel initiator" > /mnt/d/hello; sync
(cd /mnt && sha256sum f1 f2 f3 f4 f5 d/hello) > /tmp/sums
umount /mnt || die "umount"
\$N --logout >/dev/null 2>&1 || die "logout"
for i in \$(seq 1 100); do [ -b /dev/sda ] || break; sleep 0.1; done
[ -b /dev/sda ] && die "/dev/sda still there after logout"
step logout
\$N -o update -n node.session.auth.username_in -v tank-k
\$N -o update -n node.session.auth.password_in -v target-secret-4567
\$N -o update -n node.session.auth.chap_algs -v SHA3-256,SHA256,SHA1,MD5
\$N -o update -n node.conn[0].iscsi.HeaderDigest -v CRC32C
\$N -o update -n node.conn[0].iscsi.DataDigest -v CRC32C
\$N --login >/tmp/login 2>&1 || die "login with mutual CHAP and digests: \$(cat /tmp/login)"
waitdisk
iscsiadm -m session -P 2 > /tmp/sess 2>&1
grep -q "HeaderDigest: CRC32C" /tmp/sess && grep -q "DataDigest: CRC32C" /tmp/sess || die "digests not negotiated: \$(cat /tmp/sess)"
step login-mutual-digests
e2fsck -fn /dev/sda >/tmp/fsck 2>&1 || die "e2fsck: \$(cat /tmp/fsck)"
step e2fsck
mount -t ext4 /dev/sda /mnt || die "mount again"
(cd /mnt && sha256sum -c /tmp/sums) >/tmp/check 2>&1 || die "checksums after re-login: \$(cat /tmp/check)"
step checksums
rm /mnt/f5 /mnt/f4; sync
fstrim -v /mnt >/tmp/trim 2>&1 || die "fstrim: \$(cat /tmp/trim)"
step fstrim \$(cat /tmp/trim)
umount /mnt
\$N --logout >/dev/null 2>&1 || die "second logout"
while read -r h f; do echo "CASK-SUM \$h \$f"; done < /tmp/sums
echo CASK-DONE
echo o > /proc/sysrq-trigger
sleep 10
EOF
chmod +x "$R/init"
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) > "$T/initrd.gz"

# ---- boot ----
timeout 170 qemu-system-x86_64 -accel tcg -cpu max -m 512 -smp 1 -nodefaults -no-reboot -display none \
  -kernel "$KERNEL" -initrd "$T/initrd.gz" \
  -append "console=ttyS0 panic=-1 quiet loglevel=4 sysrq_always_enabled=1 rdinit=/init" \
  -netdev user,id=n0,restrict=off -device e1000,netdev=n0 \
  -serial "file:$T/console.log" >"$T/qemu.log" 2>&1 || true
grep "CASK-" "$T/console.log" || true
if ! grep -q "^CASK-DONE" "$T/console.log"; then
  echo "--- guest console (last 60 lines) ---" >&2; tail -n 60 "$T/console.log" >&2
  cat "$T/qemu.log" >&2
  fail "the guest did not finish ($(grep -m1 "^CASK-FAIL" "$T/console.log" || echo 'no result; timeout?'))"
fi
tr -d '\r' < "$T/console.log" | grep "^CASK-SUM " > "$T/sums"
[ "$(wc -l < "$T/sums")" -eq 6 ] || fail "the guest reported $(wc -l < "$T/sums") checksums, want 6"
grep "normal session of $INAME to $TGT" "$T/caskd.log" | sed 's/.*: normal/normal/' | tee "$T/sessions"
# the first of the initiator's CHAP_A list that cask does wins: SHA256,MD5 then SHA3-256,...
sed -n 1p "$T/sessions" | grep -q ", CHAP SHA-256$" || fail "the first login did not use CHAP SHA-256"
sed -n 2p "$T/sessions" | grep -q "header digest, data digest, CHAP SHA3-256$" ||
  fail "the second login did not use digests and CHAP SHA3-256"
grep -q "$TGT (ISID [0-9a-f]*, TSIH [0-9]*), header digest" "$T/caskd.log" || fail "caskd logged no digest session"

# the host's view: one filesystem, the files the guest wrote, the trimmed space given back
qemu-img convert -f raw -O raw "$NBD/tank/k" "$T/k.img"
e2fsck -fn "$T/k.img" > "$T/fsck" 2>&1 || { cat "$T/fsck"; fail "the host finds the guest's filesystem damaged"; }
while read -r _ h f; do
  [ "$f" = f4 ] || [ "$f" = f5 ] && continue # removed before fstrim
  debugfs -R "dump /$f $T/out" "$T/k.img" >/dev/null 2>&1 || fail "debugfs cannot read /$f"
  [ "$(sha256sum < "$T/out" | cut -d' ' -f1)" = "$h" ] || fail "/$f differs between the guest and the host"
done < "$T/sums"
! grep -q "guest-secret-0123\|target-secret-4567" "$T/caskd.log" "$T/console.log" || fail "a secret in a log"
stop_caskd
! grep -q "AddressSanitizer\|runtime error\|LeakSanitizer" "$T/caskd.log" || fail "sanitizer report in the caskd log"
echo ok
