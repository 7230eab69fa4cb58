#!/usr/bin/env bash
# install -- `make install` into a scratch root (DESTDIR) gives a working
# system: the installed caskd starts, a C program built with the installed
# header and `pkg-config cask` links the installed libcask.so.1 and talks
# to it, and the installed Python package loads the installed library.
source "$(dirname "$0")/lib.sh"
top=$(cd "$(dirname "$0")/../.." && pwd)
root="$T/root"
# the build is up to date (make check built it), so this only copies
make -s -C "$top" install BUILD="$CASK_BUILD" DESTDIR="$root" PREFIX=/usr >"$T/install.log" 2>&1 ||
  { cat "$T/install.log"; fail "make install failed"; }
for f in usr/sbin/caskd usr/bin/cask usr/bin/cask-debug usr/lib/libcask.so.1.0.0 usr/lib/libcask.so.1 \
    usr/lib/libcask.so usr/include/cask/client.h usr/lib/pkgconfig/cask.pc \
    usr/lib/python3/dist-packages/cask/__init__.py usr/share/doc/cask/man/libcask.3.md; do
  [ -e "$root/$f" ] || fail "make install did not install $f"
done
readelf -d "$root/usr/lib/libcask.so.1.0.0" | grep -q 'SONAME.*\[libcask.so.1\]' || fail "installed soname"

CASKD="$root/usr/sbin/caskd" CASK="$root/usr/bin/cask"
start_caskd
"$CASK" pool create tank "$T/tank.vdev" --size 64M
"$CASK" vol create tank/v --size 8M

export PKG_CONFIG_LIBDIR="$root/usr/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$root"
flags=$(pkg-config --cflags --libs cask)
[ "$(pkg-config --modversion cask)" = 1.0.0 ] || fail "pkg-config version"
cat > "$T/prog.c" <<'C'
#include <stdio.h>
#include <string.h>
#include <cask/client.h>
int main(void)
{
	cask_client *c;
	cask_vol_info vi;
	if (cask_connect(NULL, &c) != 0 || cask_vol_get(c, "tank/v", &vi) != 0) {
		fprintf(stderr, "prog: %s: %s\n", cask_error()->code, cask_error()->message);
		return 1;
	}
	printf("%s %llu %s\n", vi.name, (unsigned long long)vi.size, cask_lib_version());
	cask_disconnect(c);
	return 0;
}
C
# shellcheck disable=SC2086
cc -Wall -Werror "$T/prog.c" -o "$T/prog" $flags || fail "a program does not build with pkg-config cask"
readelf -d "$T/prog" | grep -q 'NEEDED.*\[libcask.so.1\]' || fail "the program does not need libcask.so.1"
out=$(LD_LIBRARY_PATH="$root/usr/lib" "$T/prog")
[ "$out" = "tank/v 8388608 1.0.0" ] || fail "the program said '$out'"
# and it really loaded the installed copy
# (into a file: grep -q in a pipe could stop reading early, and pipefail would count that)
LD_LIBRARY_PATH="$root/usr/lib" LD_DEBUG=libs "$T/prog" >"$T/ld.out" 2>&1
grep -q "$root/usr/lib/libcask.so.1" "$T/ld.out" || fail "the program did not load the installed libcask"

# the installed Python package, with the installed library (not the build tree's)
LD_LIBRARY_PATH="$root/usr/lib" PYTHONPATH="$root/usr/lib/python3/dist-packages" "$PY" - "$root" <<'PY'
import sys
import cask
root = sys.argv[1]
assert cask.__file__.startswith(root), cask.__file__
with cask.Client() as c:
    assert c.vol_get("tank/v")["size"] == 8 << 20
    c.snapshot("tank/v@a")
    assert [s["name"] for s in c.snapshots("tank/v")] == ["tank/v@a"]
maps = open("/proc/self/maps").read()
assert root + "/usr/lib/libcask.so.1.0.0" in maps, [l for l in maps.splitlines() if "libcask" in l]
print("python: the installed binding and library work")
PY
echo "install: ok"
