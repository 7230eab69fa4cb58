#!/usr/bin/env bash
# abi_check -- libcask.so.1 exports exactly the functions include/cask/client.h
# declares, each at the version node lib/client/libcask.map gives it (CASK_1.0,
# CASK_1.1), and nothing else; CASK_1.0's list is the frozen one below (a
# function is only ever added, at a new node); its soname is libcask.so.1
# (docs/client-api.md).
set -euo pipefail
: "${CASK_BUILD:?run through tests/run.sh (CASK_BUILD unset)}"
top=$(cd "$(dirname "$0")/../.." && pwd)
so="$CASK_BUILD/libcask.so.1"
map="$top/lib/client/libcask.map"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
[ -f "$so" ] || fail "$so was not built"
# CASK_1.0 as released: never edit this list
frozen_1_0="cask_capabilities cask_connect cask_default_socket cask_diff_begin cask_diff_end
cask_diff_next cask_disconnect cask_error cask_error_items cask_has_feature cask_hello
cask_job_cancel cask_job_get cask_job_list cask_job_pollfd cask_job_wait cask_lib_version
cask_pool_clear cask_pool_create cask_pool_destroy cask_pool_export cask_pool_import
cask_pool_info_clear cask_pool_info_free cask_pool_inject cask_pool_list cask_pool_status
cask_recv cask_recv_abandon cask_send cask_snap_create cask_snap_destroy cask_snap_destroy_many
cask_snap_hold cask_snap_holds cask_snap_list cask_snap_release cask_snap_rename cask_vol_clone
cask_vol_create cask_vol_destroy cask_vol_destroy_ex cask_vol_get cask_vol_inherit cask_vol_list
cask_vol_promote cask_vol_rename cask_vol_resize cask_vol_rollback cask_vol_set cask_vol_set_many"
nodes="CASK_1.0 CASK_1.1"
echo "$frozen_1_0" | tr ' ' '\n' | grep . | sort -u > "$T/frozen"
grep -o 'cask_[a-z_0-9]*(' "$top/include/cask/client.h" | tr -d '(' | sort -u > "$T/header"
# the map's nodes, in order, each with the node it inherits
grep -o '^CASK_[0-9.]* {' "$map" | tr -d ' {' > "$T/nodes"
[ "$(tr '\n' ' ' < "$T/nodes")" = "$nodes " ] || fail "libcask.map's version nodes are $(tr '\n' ' ' < "$T/nodes"), not $nodes"
grep -q '^} CASK_1.0;' "$map" || fail "CASK_1.1 does not inherit CASK_1.0"
: > "$T/map_all"; : > "$T/want_exports"
for v in $nodes; do
	sed -n "/^$v {/,/^}/p" "$map" | sed -n '/^global:/,/^\(local:\|}\)/p' | grep -o 'cask_[a-z_0-9]*' | sort -u > "$T/map.$v"
	[ -s "$T/map.$v" ] || fail "version node $v lists no function"
	cat "$T/map.$v" >> "$T/map_all"
	sed "s/\$/@@$v/" "$T/map.$v" >> "$T/want_exports"
done
diff -u "$T/frozen" "$T/map.CASK_1.0" > "$T/d0" || fail "CASK_1.0 changed (it is frozen; add functions at a new node): $(cat "$T/d0")"
sort "$T/map_all" | uniq -d > "$T/dups"
[ ! -s "$T/dups" ] || fail "listed at two version nodes: $(cat "$T/dups")"
sort -u "$T/map_all" -o "$T/map_all"
diff -u "$T/header" "$T/map_all" > "$T/d1" || fail "client.h and libcask.map disagree: $(cat "$T/d1")"
nm -D --defined-only "$so" | awk '$2 == "T" {print $3}' | sort -u > "$T/exports"
sort -u "$T/want_exports" -o "$T/want_exports"
diff -u "$T/want_exports" "$T/exports" > "$T/d2" || fail "the library's exports (function@@version) are not libcask.map's: $(cat "$T/d2")"
readelf -d "$so" | grep -q 'SONAME.*\[libcask.so.1\]' || fail "the soname is not libcask.so.1"
# nothing of the engine or of json-c leaks out (the version nodes themselves are 'A' symbols)
nm -D --defined-only "$so" | awk '$2 != "A" {print $3}' | grep -v '^cask_' && fail "non-API symbols exported"
echo "libcask.so.1: $(wc -l < "$T/map.CASK_1.0") functions at CASK_1.0 (unchanged), $(wc -l < "$T/map.CASK_1.1") at CASK_1.1, matching client.h and libcask.map"
# and tests/integration/test_libcask.c calls every one of them
for f in $(cat "$T/map_all"); do
	grep -q "\b$f(" "$top/tests/integration/test_libcask.c" || fail "test_libcask.c never calls $f"
done
echo "test_libcask.c calls all $(wc -l < "$T/map_all") of them"
