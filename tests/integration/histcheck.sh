#!/usr/bin/env bash
# histcheck -- the history checker (tests/tools/histcheck.py) on hand-built
# histories (each clean one passes, each violation kind is reported), on a
# generated history of 40000 operations with crashes from a model that keeps
# the durability contract (passes), and on the same with a stale read or a
# lost FUA write spliced in and from two broken models (must fail).
# The cases are in histcheck_cases.py.
set -euo pipefail
exec /usr/bin/python3 "$(dirname "$0")/histcheck_cases.py"
