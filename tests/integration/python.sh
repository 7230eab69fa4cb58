#!/usr/bin/env bash
# python -- the Python binding (python/cask) against a real caskd, with
# pytest (python/tests: every call, the exception classes, send/receive
# through fds and file objects, jobs, asyncio, threads).
set -euo pipefail
: "${CASK_BUILD:?run through tests/run.sh (CASK_BUILD unset)}"
top=$(cd "$(dirname "$0")/../.." && pwd)
[ -f "$CASK_BUILD/python/cask/.built" ] || { echo "FAIL: the binding was not built (make)" >&2; exit 1; }
cd "$top"
exec /usr/bin/python3 -m pytest -q -p no:cacheprovider python/tests
