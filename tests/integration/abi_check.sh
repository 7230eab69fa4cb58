#!/usr/bin/env bash
# abi_check -- libcask.so.1 exports exactly the functions include/cask/client.h
# declares, each at the version lib/client/libcask.map gives it (CASK_1.0),
# and nothing else; its soname is libcask.so.1 (docs/client-api.md).
set -euo pipefail
: "${CASK_BUILD:?run through tests/run.sh (CASK_BUILD unset)}"
top=$(cd "$(dirname "$0")/../.." && pwd)
so="$CASK_BUILD/libcask.so.1"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
[ -f "$so" ] || fail "$so was not built"
grep -o 'cask_[a-z_0-9]*(' "$top/include/cask/client.h" | tr -d '(' | sort -u > "$T/header"
sed -n '/^global:/,/^local:/p' "$top/lib/client/libcask.map" | grep -o 'cask_[a-z_0-9]*' | sort -u > "$T/map"
nm -D --defined-only "$so" | awk '$2 == "T" {print $3}' | sort -u > "$T/exports"
grep -v '@@CASK_1.0$' "$T/exports" > "$T/unversioned" || true
[ ! -s "$T/unversioned" ] || fail "exported without the CASK_1.0 version: $(cat "$T/unversioned")"
sed 's/@@CASK_1.0$//' "$T/exports" > "$T/exported"
diff -u "$T/header" "$T/map" > "$T/d1" || fail "client.h and libcask.map disagree: $(cat "$T/d1")"
diff -u "$T/map" "$T/exported" > "$T/d2" || fail "libcask.map and the library's exports disagree: $(cat "$T/d2")"
readelf -d "$so" | grep -q 'SONAME.*\[libcask.so.1\]' || fail "the soname is not libcask.so.1"
# nothing of the engine or of json-c leaks out
nm -D --defined-only "$so" | awk '$2 != "A" {print $3}' | grep -v '^cask_' && fail "non-API symbols exported"
echo "libcask.so.1: $(wc -l < "$T/exported") functions at CASK_1.0, matching client.h and libcask.map"
