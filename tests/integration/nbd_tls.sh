#!/usr/bin/env bash
# nbd_tls -- issue 17 item 12: NBD had no authentication (any local user, any
# host reaching the port, read and wrote every volume; nbdinfo --list showed
# every export). NBD over TLS (NBD_OPT_STARTTLS) with real clients: nbdinfo,
# nbdcopy and python3-libnbd (libnbd, GnuTLS) with x509 certificates and PSK,
# qemu-img/qemu-io with tls-creds-x509 and tls-creds-psk. Right credentials
# work, wrong ones are refused; with --tls=require nothing is listed,
# described or served in the clear; --tls-ca requires client certificates;
# --tls-access limits which identity may open (and list) which exports.
source "$(dirname "$0")/lib.sh"
need nbdinfo; need openssl; need qemu-io; need nbdcopy
"$PY" -c 'import nbd' 2>/dev/null || skip "python3-libnbd is not installed"
C="$T/creds"; mkdir -p "$C" "$T/other" "$T/cli" "$T/qpsk"
mkcert() { # dir name cn ext
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$3" -keyout "$1/$2-key.pem" \
    -out "$1/$2.csr" 2>/dev/null
  printf '%s\n' "$4" > "$1/$2.ext"
  openssl x509 -req -in "$1/$2.csr" -CA "$1/ca-cert.pem" -CAkey "$1/ca-key.pem" -CAcreateserial -days 2 \
    -extfile "$1/$2.ext" -out "$1/$2-cert.pem" 2>/dev/null
}
mkca() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=$2" -keyout "$1/ca-key.pem" \
    -out "$1/ca-cert.pem" -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
}
mkca "$C" "cask test CA"
mkcert "$C" server localhost "subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth"
mkcert "$C" client "cask client" "extendedKeyUsage=clientAuth"
mkca "$T/other" "another CA"
cp "$C/ca-cert.pem" "$T/cli/"                      # a client that trusts our CA but has no certificate
printf 'alice:%s\n' "$(openssl rand -hex 32)" > "$C/keys.psk"
printf 'alice:%s\n' "$(openssl rand -hex 32)" > "$T/bad.psk"
printf 'mallory:%s\n' "$(openssl rand -hex 32)" > "$T/unknown.psk"
cp "$C/keys.psk" "$T/qpsk/keys.psk"                 # qemu's tls-creds-psk reads DIR/keys.psk

# options are checked before anything starts
expect_fail 1 "needs --tls-cert and --tls-key, or --tls-psk" "$CASKD" --state "$T/s0" --socket "$T/s0.sock" --tls=require
expect_fail 1 "need --tls=on or --tls=require" "$CASKD" --state "$T/s0" --socket "$T/s0.sock" --tls-psk "$C/keys.psk"
expect_fail 2 "wants off, on or require" "$CASKD" --tls=maybe

start_caskd --tls=require --tls-cert "$C/server-cert.pem" --tls-key "$C/server-key.pem" --tls-psk "$C/keys.psk"
$CASK pool create tank "$T/tank0.vdev" --size 256M
$CASK vol create tank/v --size 16M
U="nbds://localhost:$PORT/tank/v"
P="nbds://alice@localhost:$PORT/tank/v"
nbdinfo "$U?tls-certificates=$C" | grep -q "with TLS" || fail "nbdinfo with x509 certificates"
nbdinfo "$P?tls-psk-file=$C/keys.psk" | grep -q "export-size: 16777216" || fail "nbdinfo with PSK"
nbdinfo "nbds://alice@localhost:$PORT/tank/v?tls-psk-file=$T/bad.psk" >/dev/null 2>&1 && fail "a wrong PSK was accepted"
nbdinfo "nbds://mallory@localhost:$PORT/tank/v?tls-psk-file=$T/unknown.psk" >/dev/null 2>&1 && fail "an unknown PSK identity was accepted"
nbdinfo "$U?tls-certificates=$T/other" >/dev/null 2>&1 && fail "a client that trusts another CA accepted our certificate"
nbdinfo "nbd://localhost:$PORT/tank/v" >/dev/null 2>&1 && fail "a plain client was served while TLS is required"
nbdinfo --list "nbd://localhost:$PORT" 2>/dev/null | grep -q tank/v && fail "exports listed in the clear"
grep -q "binder does not verify" "$T/caskd.log" || fail "no log line for the wrong key"
grep -q "TLS: unknown PSK identity refused" "$T/caskd.log" || fail "no log line for the unknown identity"

# qemu: write through x509, read back through PSK (nbdcopy, libnbd), and the other way
qemu-io --object tls-creds-x509,id=t0,dir="$C",endpoint=client \
  --image-opts driver=nbd,host=localhost,port=$PORT,export=tank/v,tls-creds=t0 -c "write -P 0x5a 0 1M" >/dev/null ||
  fail "qemu-io write over TLS (x509)"
nbdcopy "$P?tls-psk-file=$C/keys.psk" "$T/copy.img" || fail "nbdcopy over TLS (PSK)"
cmp -n 1048576 "$T/copy.img" <(head -c 1048576 /dev/zero | tr '\0' 'Z') || fail "what qemu wrote over TLS reads back different"
qemu-img info --object tls-creds-psk,id=t0,dir="$T/qpsk",username=alice,endpoint=client \
  --image-opts driver=nbd,host=localhost,port=$PORT,export=tank/v,tls-creds=t0 | grep -q "16 MiB" ||
  fail "qemu-img info over TLS (PSK)"

PYTHONPATH="$(dirname "$0")" "$PY" - "$PORT" "$SOCK" "$C/keys.psk" <<'PY'
import socket, struct, sys
import nbd
from viohelp import Ctl, check, recvn
port, sock, psk = int(sys.argv[1]), sys.argv[2], sys.argv[3]
# python3-libnbd with PSK: data moves, client.list shows the session
h = nbd.NBD()
h.set_tls(nbd.TLS_REQUIRE)
h.set_tls_psk_file(psk)
h.set_tls_username("alice")
h.set_export_name("tank/v")
h.connect_tcp("127.0.0.1", str(port))
h.pwrite(b"tls!" * 1024, 1 << 20)
h.flush()
check(h.pread(4096, 1 << 20) == b"tls!" * 1024, "libnbd over TLS: read back")
cl = Ctl(sock).call("client.list")["clients"]
check(any(c["tls"].startswith("TLSv1.3 psk:alice") and c["export"] == "tank/v" for c in cl), "client.list tls: %r" % cl)
h.shutdown()
# raw: in the clear only STARTTLS and ABORT are answered; the others get NBD_REP_ERR_TLS_REQD
def hello():
    s = socket.create_connection(("127.0.0.1", port))
    check(recvn(s, 18)[:16] == b"NBDMAGICIHAVEOPT", "greeting")
    s.sendall(struct.pack(">I", 3))
    return s
def opt(s, o, data=b""):
    s.sendall(b"IHAVEOPT" + struct.pack(">II", o, len(data)) + data)
def reply(s):
    magic, o, t, n = struct.unpack(">QIII", recvn(s, 20))
    return t, recvn(s, n) if n else b""
s = hello()
for o, data in ((3, b""), (6, struct.pack(">I", 6) + b"tank/v" + b"\0\0"), (7, struct.pack(">I", 6) + b"tank/v" + b"\0\0"),
                (8, b""), (9, struct.pack(">I", 6) + b"tank/v" + struct.pack(">I", 0))):
    opt(s, o, data)
    t, msg = reply(s)
    check(t == 0x80000005, "option %d in the clear: reply 0x%x, want ERR_TLS_REQD" % (o, t))
opt(s, 5, b"x")                                   # STARTTLS with data: invalid
check(reply(s)[0] == 0x80000003, "STARTTLS with data")
opt(s, 1, b"tank/v")                              # EXPORT_NAME in the clear: closed
s.settimeout(30)
check(s.recv(1) == b"", "EXPORT_NAME in the clear was not closed")
s = hello()                                       # bytes sent behind STARTTLS before the ACK: cut off
s.sendall(b"IHAVEOPT" + struct.pack(">II", 5, 0) + b"not a TLS hello")
check(reply(s)[0] == 1, "STARTTLS ACK")
s.settimeout(30)
try:
    check(s.recv(1) == b"", "data before the TLS handshake was not cut off")
except ConnectionResetError:
    pass
print("tls: libnbd PSK, client.list, the clear refused option by option")
PY
grep -q "sent data before the TLS handshake; cut off" "$T/caskd.log" || fail "no log line for data before the handshake"
stop_caskd

# --tls=on with client certificates required (--tls-ca): plain still served, x509 with a client cert too
start_caskd --tls=on --tls-cert "$C/server-cert.pem" --tls-key "$C/server-key.pem" --tls-ca "$C/ca-cert.pem"
nbdinfo "nbd://localhost:$PORT/tank/v" | grep -q "without TLS" || fail "--tls=on refused a plain client"
nbdinfo "$U?tls-certificates=$C" | grep -q "with TLS" || fail "x509 with a client certificate"
nbdinfo "$U?tls-certificates=$T/cli" >/dev/null 2>&1 && fail "a client without a certificate passed --tls-ca"
grep -q "TLS TLSv1.3 x509:/CN=cask client" "$T/caskd.log" || fail "the client certificate's subject is not logged"
stop_caskd

# per-export access (--tls-access): alice one volume, bob the pool, clients without an identity one other
printf 'bob:%s\n' "$(openssl rand -hex 32)" > "$T/bob.psk"
cat "$C/keys.psk" "$T/bob.psk" > "$T/both.psk"
printf '# identity exports\nalice tank/v\nbob tank/*\n- tank/pub\n' > "$T/access"
start_caskd --tls=on --tls-psk "$T/both.psk" --tls-access "$T/access"
$CASK vol create tank/pub --size 1M
$CASK vol create tank/w --size 1M
B="nbds://bob@localhost:$PORT"
nbdinfo "$P?tls-psk-file=$C/keys.psk" >/dev/null || fail "alice cannot open tank/v"
nbdinfo "nbds://alice@localhost:$PORT/tank/w?tls-psk-file=$C/keys.psk" >/dev/null 2>&1 && fail "alice opened tank/w"
list=$(nbdinfo --list --json "nbds://alice@localhost:$PORT?tls-psk-file=$C/keys.psk" |
  "$PY" -c 'import json,sys; print(" ".join(sorted(e["export-name"] for e in json.load(sys.stdin)["exports"])))')
[ "$list" = "tank/v" ] || fail "alice's list: '$list'"
nbdinfo "$B/tank/w?tls-psk-file=$T/bob.psk" >/dev/null || fail "bob cannot open tank/w"
nbdinfo "$B/tank/v?tls-psk-file=$T/bob.psk" >/dev/null || fail "bob cannot open tank/v"
nbdinfo "nbd://localhost:$PORT/tank/pub" >/dev/null || fail "a plain client cannot open tank/pub"
nbdinfo "nbd://localhost:$PORT/tank/v" >/dev/null 2>&1 && fail "a plain client opened tank/v"
expect_fail 1 "need --tls=on or --tls=require" "$CASKD" --state "$T/s1" --socket "$T/s1.sock" --tls-access "$T/access"
stop_caskd
echo ok
