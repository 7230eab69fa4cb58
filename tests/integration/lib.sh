# lib.sh -- helpers for integration tests: start a real caskd in a private
# directory on a free loopback port, stop it, and clean up on any exit.
# Source it; it sets: T (scratch dir), SOCK, CASK, CASKD, PORT, NBD (the
# nbd://127.0.0.1:PORT base URI), CASKD_PID.
set -euo pipefail
: "${CASK_BUILD:?run through tests/run.sh (CASK_BUILD unset)}"
CASKD="$CASK_BUILD/caskd"
CASK="$CASK_BUILD/cask"
PY=/usr/bin/python3
T=$(mktemp -d "${TMPDIR:-/tmp}/cask-it-XXXXXX")
SOCK="$T/run/caskd.sock"
export CASK_SOCKET="$SOCK"
CASKD_PID=
CASKD_B_PID=
CASKD_C_PID=

cleanup() {
  local rc=$?
  for pid in $CASKD_PID $CASKD_B_PID $CASKD_C_PID; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  if [ $rc -ne 0 ] && [ -f "$T/caskd.log" ]; then
    echo "--- caskd log (last 40 lines) ---" >&2
    tail -n 40 "$T/caskd.log" >&2
  fi
  rm -rf "$T"
  exit $rc
}
trap cleanup EXIT

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || skip "$1 is not installed"; }

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_until SECS CMD...: run CMD every 0.05 s until it succeeds (0) or SECS
# seconds have passed (1). A bound on waiting for a state, never a time
# assertion: pick SECS far above what the slowest (loaded, sanitizer) machine needs.
wait_until() {
  local end=$((SECONDS + $1)); shift
  while :; do
    "$@" && return 0
    [ $SECONDS -lt $end ] || return 1
    sleep 0.05
  done
}

# caskd_up PID SOCK: caskd PID answers on SOCK (its control socket).
caskd_up() {
  kill -0 "$1" 2>/dev/null || return 2
  [ -S "$2" ] && CASK_SOCKET="$2" "$CASK" version >/dev/null 2>&1
}

# wait_caskd NAME PID SOCK LOG: until caskd answers (60 s: a sanitizer caskd on
# a loaded machine); fails when it exits first or never answers.
wait_caskd() {
  local rc end=$((SECONDS + 60))
  while :; do
    rc=0; caskd_up "$2" "$3" || rc=$?
    [ $rc -eq 0 ] && return 0
    [ $rc -eq 2 ] && fail "$1 exited at start: $(tail -n 5 "$4")"
    [ $SECONDS -lt $end ] || fail "$1 did not come up in 60 s: $(tail -n 5 "$4")"
    sleep 0.05
  done
}

# start_caskd [ARGS...]: start caskd and wait until both sockets answer.
start_caskd() {
  PORT=${PORT:-$(free_port)}
  NBD="nbd://127.0.0.1:$PORT"
  "$CASKD" --state "$T/state" --socket "$SOCK" --nbd "127.0.0.1:$PORT" "$@" >>"$T/caskd.log" 2>&1 &
  CASKD_PID=$!
  wait_caskd caskd "$CASKD_PID" "$SOCK" "$T/caskd.log"
}

# start_caskd_b [ARGS...]: a second caskd (its own state dir, socket and NBD
# port: SOCK_B, NBD_B, CASKD_B_PID) for tests between two hosts.
start_caskd_b() {
  PORT_B=${PORT_B:-$(free_port)}
  SOCK_B="$T/run_b/caskd.sock"
  NBD_B="nbd://127.0.0.1:$PORT_B"
  "$CASKD" --state "$T/state_b" --socket "$SOCK_B" --nbd "127.0.0.1:$PORT_B" "$@" >>"$T/caskd_b.log" 2>&1 &
  CASKD_B_PID=$!
  wait_caskd "caskd B" "$CASKD_B_PID" "$SOCK_B" "$T/caskd_b.log"
}

# start_caskd_c [ARGS...]: a third caskd (SOCK_C, NBD_C, CASKD_C_PID), as start_caskd_b.
start_caskd_c() {
  PORT_C=${PORT_C:-$(free_port)}
  SOCK_C="$T/run_c/caskd.sock"
  NBD_C="nbd://127.0.0.1:$PORT_C"
  "$CASKD" --state "$T/state_c" --socket "$SOCK_C" --nbd "127.0.0.1:$PORT_C" "$@" >>"$T/caskd_c.log" 2>&1 &
  CASKD_C_PID=$!
  wait_caskd "caskd C" "$CASKD_C_PID" "$SOCK_C" "$T/caskd_c.log"
}

# stop_caskd: SIGTERM, and it must exit 0.
stop_caskd() {
  kill -TERM "$CASKD_PID"
  local rc=0
  wait "$CASKD_PID" || rc=$?
  CASKD_PID=
  [ $rc -eq 0 ] || fail "caskd exited with $rc on SIGTERM"
}

# expect_fail CODE PATTERN CMD...: CMD must exit CODE and print PATTERN on stderr.
expect_fail() {
  local want=$1 pat=$2; shift 2
  local out rc=0
  out=$("$@" 2>&1 >/dev/null) || rc=$?
  [ "$rc" -eq "$want" ] || fail "'$*' exited $rc, want $want ($out)"
  echo "$out" | grep -q -- "$pat" || fail "'$*' said '$out', want '$pat'"
  [ "$(echo "$out" | wc -l)" -eq 1 ] || fail "'$*' printed more than one error line: $out"
}
