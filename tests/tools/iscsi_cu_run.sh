#!/usr/bin/env bash
# iscsi_cu_run.sh URL [TESTLIST] -- run each libiscsi iscsi-test-cu test in its own process
# (Debian's 1.19.0 leaks a queue_pdu override between tests, upstream cc3ddbf) against URL,
# the same LUN as the second (multipath) path, and print one line per test:
# "PASS|FAIL|SKIP NAME". A helper of tests/integration/iscsi_conformance.sh, not a test.
set -u
url=$1
list=${2:-}
if [ -z "$list" ]; then
  tests=$(iscsi-test-cu -l 2>/dev/null | awk -F. 'NF==3')
else
  tests=$(cat "$list")
fi
for t in $tests; do
  out=$(timeout 120 iscsi-test-cu -d -S -t "$t" "$url" "$url" 2>&1)
  line=$(echo "$out" | awk '$1=="tests"{print $3, $4, $5}')
  ran=$(echo "$line" | awk '{print $1}'); passed=$(echo "$line" | awk '{print $2}'); failed=$(echo "$line" | awk '{print $3}')
  if echo "$out" | grep -q "\[SKIPPED\]"; then
    if [ "${failed:-0}" != 0 ]; then echo "FAIL $t"; else echo "SKIP $t"; fi
  elif [ -n "$ran" ] && [ "$ran" != 0 ] && [ "$failed" = 0 ] && [ "$passed" = "$ran" ]; then
    echo "PASS $t"
  else
    echo "FAIL $t"
  fi
done
