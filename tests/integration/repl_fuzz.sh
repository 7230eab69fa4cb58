#!/usr/bin/env bash
# repl_fuzz -- random frames against the replica service (run it against the
# sanitizer build: CASK_BUILD=build/asan): garbage before the handshake,
# HELLOs and AUTHs with random fields, and after a valid handshake and ATTACH
# frames of every type with random sizes, flags, epochs and seqs, most with
# a correct checksum so they reach the type, state, epoch and sequence
# checks. caskd must stay up, the replica's data and record must be
# unchanged (no random frame is applied), and cask-debug check is clean.
# Seed: CASK_SEED or random; frames: CASK_FUZZ_FRAMES (default 3000).
source "$(dirname "$0")/lib.sh"
"$PY" -c "import nbd" 2>/dev/null || skip "python3-libnbd is not installed"
RP=$(free_port)
head -c 48 /dev/urandom | base64 > "$T/peer.key"; chmod 600 "$T/peer.key"
start_caskd --replica-listen "127.0.0.1:$RP" --peer-key "$T/peer.key"
$CASK pool create p2 "$T/p2.vdev" --size 128M >/dev/null
export RADDR="127.0.0.1:$RP" KEYFILE="$T/peer.key" CASK_TEST_NBD="$NBD"
export CASK_SEED=${CASK_SEED:-$RANDOM$RANDOM} FRAMES=${CASK_FUZZ_FRAMES:-3000}
echo "seed $CASK_SEED"
"$PY" - <<'PY'
import os, sys, random, struct, socket, hashlib, nbd
sys.path.insert(0, "tests/integration")
from replpeer import Peer, PeerError, membership, frame, T
addr, key = os.environ["RADDR"], open(os.environ["KEYFILE"], "rb").read().rstrip(b"\n")
rnd = random.Random(int(os.environ["CASK_SEED"]))
uuid, node = os.urandom(16), 0x77
c = Peer(addr, key=key); c.handshake()
st = c.create("p2", "f", 4 << 20, (1, node), uuid)
c.start_epoch(0, membership((1, node), 1, [(st["id"], st["pool_guid"], addr, "p2")]))
for s in range(1, 33):
    c.write(s, (s - 1) * 65536, bytes([s]) * 65536)
c.flush(32)
def digest():
    h = nbd.NBD(); h.connect_uri(os.environ["CASK_TEST_NBD"] + "/p2/f")
    d = hashlib.sha256(h.pread(4 << 20, 0)).hexdigest(); h.shutdown(); return d
before = digest()
c.close()   # the session is gone; nobody may change the volume now

types = list(T.values()) + [0, 9, 0x15, 0x33, 0x60, 0x70, 0xff, 0xffff]
def rand_frame(epoch):
    t = rnd.choice(types)
    n = rnd.choice([0, 1, 15, 16, 24, 64, 128, 256, 384, 512, 1280, 1296, 2176, 4112, rnd.randrange(0, 9000)])
    pl = bytes(rnd.getrandbits(8) for _ in range(min(n, 64))) + b"\0" * max(0, n - 64)
    ep = rnd.choice([epoch, (0, 0), (1, node), (2, node), (rnd.getrandbits(64), rnd.getrandbits(64))])
    f = bytearray(frame(t, pl, rnd.choice([0, 0, 1, 2, 4, rnd.getrandbits(32)]), ep, rnd.choice([0, 1, 33, 34, rnd.getrandbits(64)]),
                        rnd.getrandbits(64)))
    r = rnd.random()
    if r < 0.1:                      # a flipped bit
        i = rnd.randrange(len(f)); f[i] ^= 1 << rnd.randrange(8)
    elif r < 0.15:                   # a wrong length
        struct.pack_into("<I", f, 12, rnd.getrandbits(32))
    elif r < 0.2:                    # a wrong magic or version
        struct.pack_into("<H", f, 4, rnd.getrandbits(16))
    return bytes(f)

sent = conns = 0
while sent < int(os.environ["FRAMES"]):
    conns += 1
    try:
        p = Peer(addr, key=key)
        stage = rnd.random()
        if stage < 0.2:              # raw garbage or a random first frame
            p.send_raw(os.urandom(rnd.randrange(1, 300)) if rnd.random() < 0.5 else rand_frame((0, 0)))
            sent += 1
        else:
            p.handshake()
            if stage > 0.4:
                p.attach("p2", "f", uuid)
            for _ in range(rnd.randrange(1, 40)):
                p.send_raw(rand_frame(p.epoch)); sent += 1
        p.s.settimeout(0.5)
        try:
            while p.s.recv(65536):
                pass
        except (socket.timeout, OSError):
            pass
        p.close()
    except (PeerError, OSError, EOFError, AssertionError):
        pass
after = digest()
assert before == after, "a random frame changed the replica's data"
# the record is as it was: epoch 1 promised, 32 applied (a random PREPARE may have promised more: allowed,
# it only fences; but nothing was applied)
p = Peer(addr, key=key); p.handshake(); st = p.attach("p2", "f", uuid)
assert st["applied"] == 32 and st["last_epoch"] == (1, node), st
print("fuzz: %d frames on %d connections; data and applied unchanged (promised %d.%x)" % (
    sent, conns, st["promised"][0], st["promised"][1]))
PY
stop_caskd
"$CASK_BUILD/cask-debug" check "$T/p2.vdev" > "$T/check.out" || { cat "$T/check.out"; fail "cask-debug check"; }
echo ok
