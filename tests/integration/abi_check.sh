#!/usr/bin/env bash
# abi_check -- libcask.so.1 exports exactly the functions include/cask/client.h
# declares, each at the version lib/client/libcask.map gives it (CASK_1.0,
# frozen, or a later node such as CASK_1.1), and nothing else; CASK_1.0 holds
# exactly the functions it was released with (tests/fixtures/libcask-1.0.syms);
# the soname is libcask.so.1 (docs/client-api.md).
set -euo pipefail
: "${CASK_BUILD:?run through tests/run.sh (CASK_BUILD unset)}"
top=$(cd "$(dirname "$0")/../.." && pwd)
so="$CASK_BUILD/libcask.so.1"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
[ -f "$so" ] || fail "$so was not built"
grep -o 'cask_[a-z_0-9]*(' "$top/include/cask/client.h" | tr -d '(' | sort -u > "$T/header"
# the map as "symbol@@NODE" lines: each global: block belongs to the node that opens it
awk '/^CASK_[0-9.]+ *[{]/ {node=$1} /^global:/ {g=1; next} /^local:/ {g=0} /^[}]/ {g=0}
     g && match($0, /cask_[a-z_0-9]+/) {print substr($0, RSTART, RLENGTH) "@@" node}' \
  "$top/lib/client/libcask.map" | sort -u > "$T/map_versioned"
sed 's/@@.*//' "$T/map_versioned" | sort -u > "$T/map"
nm -D --defined-only "$so" | awk '$2 == "T" {print $3}' | sort -u > "$T/exports"
grep -Ev '@@CASK_1[.][0-9]+$' "$T/exports" > "$T/unversioned" || true
[ ! -s "$T/unversioned" ] || fail "exported without a CASK_1.x version: $(cat "$T/unversioned")"
sed 's/@@.*$//' "$T/exports" | sort -u > "$T/exported"
diff -u "$T/header" "$T/map" > "$T/d1" || fail "client.h and libcask.map disagree: $(cat "$T/d1")"
diff -u "$T/map" "$T/exported" > "$T/d2" || fail "libcask.map and the library's exports disagree: $(cat "$T/d2")"
# each function at the version its node in the map gives it
diff -u "$T/map_versioned" "$T/exports" > "$T/d3" || fail "a function is exported at the wrong version: $(cat "$T/d3")"
# CASK_1.0 is frozen
grep '@@CASK_1[.]0$' "$T/exports" | sed 's/@@.*//' > "$T/v10" || true
diff -u "$top/tests/fixtures/libcask-1.0.syms" "$T/v10" > "$T/d4" || fail "CASK_1.0 changed: $(cat "$T/d4")"
readelf -d "$so" | grep -q 'SONAME.*\[libcask.so.1\]' || fail "the soname is not libcask.so.1"
# nothing of the engine or of json-c leaks out
nm -D --defined-only "$so" | awk '$2 != "A" {print $3}' | grep -v '^cask_' && fail "non-API symbols exported"
echo "libcask.so.1: $(wc -l < "$T/exported") functions ($(wc -l < "$T/v10") at CASK_1.0, the rest at later versions), matching client.h and libcask.map"
