#!/usr/bin/env bash
# repl_history -- the history checker over a 3-way quorum volume with a
# replica killed under load: three NBD clients (tests/tools/histrec.py) write
# tagged blocks, read and flush a small hot set through the controller on A
# while C is killed with SIGKILL; then every block is read through A and,
# directly, from B's replica (B stayed in sync, so it must hold every
# acknowledged write: a read of it older than an acknowledged write is a
# stale read). tests/tools/histcheck.py must find no lost durable write, no
# phantom and no stale read.
source "$(dirname "$0")/lib.sh"
"$PY" -c "import nbd" 2>/dev/null || skip "python3-libnbd is not installed"
head -c 48 /dev/urandom | base64 > "$T/peer.key"; chmod 600 "$T/peer.key"
RB=$(free_port); RC=$(free_port)
start_caskd --peer-key "$T/peer.key" --replica-listen "127.0.0.1:$(free_port)"
start_caskd_b --peer-key "$T/peer.key" --replica-listen "127.0.0.1:$RB"
PORT_C=$(free_port); SOCK_C="$T/run_c/caskd.sock"
"$CASKD" --state "$T/state_c" --socket "$SOCK_C" --nbd "127.0.0.1:$PORT_C" --peer-key "$T/peer.key" \
  --replica-listen "127.0.0.1:$RC" >>"$T/caskd_c.log" 2>&1 &
CASKD_C_PID=$!
wait_caskd "caskd C" "$CASKD_C_PID" "$SOCK_C" "$T/caskd_c.log"
$CASK pool create tank "$T/tank.vdev" --size 256M >/dev/null
CASK_SOCKET="$SOCK_B" $CASK pool create p2 "$T/p2.vdev" --size 256M >/dev/null
CASK_SOCKET="$SOCK_C" $CASK pool create p3 "$T/p3.vdev" --size 256M >/dev/null
$CASK vol create tank/h --size 16M --replica "127.0.0.1:$RB/p2" --replica "127.0.0.1:$RC/p3" >/dev/null
export NBD NBD_B TDIR="$T" CASKD_C_PID SEED=${CASK_SEED:-$RANDOM}
echo "seed $SEED"
"$PY" - <<'PY'
import os, sys, random, signal, threading
sys.path.insert(0, "tests/tools")
import histrec
T = os.environ["TDIR"]
rec = histrec.Recorder(T + "/hist.jsonl", bs=4096)
uri = os.environ["NBD"] + "/tank/h"
NB = 48
done = threading.Event()
def worker(n):
    rnd = random.Random(int(os.environ["SEED"]) * 10 + n)
    c = rec.client(n, uri)
    for i in range(400):
        c.random_op(rnd, NB)
        if n == 1 and i == 150:
            os.kill(int(os.environ["CASKD_C_PID"]), signal.SIGKILL)
            rec.event("replica-killed")
    c.flush()
    c.close()
ths = [threading.Thread(target=worker, args=(n,)) for n in (1, 2, 3)]
for t in ths: t.start()
for t in ths: t.join()
# everything through the controller, then B's replica directly
a = rec.client(10, uri); a.read(0, NB); a.close()
b = rec.client(11, os.environ["NBD_B"] + "/p2/h"); b.read(0, NB); b.close()
rec.close()
PY
"$PY" tests/tools/histcheck.py "$T/hist.jsonl" | tail -n 5 | tee "$T/check.txt"
CASKD_C_PID=
stop_caskd
echo ok
