#!/usr/bin/python3
"""iscsi_pr.py HOST PORT TARGET INITIATOR ISID STEP... -- persistent reservation steps over one
session of cask's own initiator (iscsi_proto.py), for what libiscsi-bin has no tool for
(docs/iscsi.md §12). ISID: 12 hex digits (the same ISID and initiator name are the same
I_T nexus across sessions). Steps, run in order, each printing one line:
  register KEY [aptpl]      PROUT REGISTER (AND IGNORE EXISTING KEY) to KEY (hex), APTPL bit
  reserve KEY TYPE          PROUT RESERVE, TYPE 1/3/5/6/7/8
  clear KEY                 PROUT CLEAR
  move KEY NEWKEY TYPE PORT [unreg]
                            PROUT REGISTER AND MOVE of the reservation (type TYPE) to the
                            initiator port PORT ("NAME,i,0xISID", TransportID format 01)
  keys                      PRIN READ KEYS: "keys GEN K1 K2 ..."
  res                       PRIN READ RESERVATION: "res none" or "res KEY TYPE"
  caps                      PRIN REPORT CAPABILITIES: "caps ptpl_c=X ptpl_a=Y"
  write                     WRITE(10) of block 0: "write STATUS" (0 GOOD, 24 conflict)
A PROUT answers "STEP STATUS" (0 GOOD, 2 CHECK CONDITION with "sense KEY/ASC/ASCQ")."""
import struct
import sys

import iscsi_proto as ip

ip.HOST, ip.PORT, ip.TARGET = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = ip.Sess(initiator=sys.argv[4], isid=bytes.fromhex(sys.argv[5]))
s.login()
steps = sys.argv[6:]


def cmd(cdb, edtl, data=None, read=False):
    for _ in range(4):  # unit attentions (power on, reservations changed) are reported once each
        st, got = s.cmd(cdb, edtl, data, read)
        if st == 2 and len(got) >= 16 and (got[4] & 0x0F) == 6:
            continue
        return st, got
    return st, got


def sense_of(got):
    b = got[2:]
    return "%x/%02x/%02x" % (b[2] & 0x0F, b[12], b[13]) if len(b) >= 14 else "?"


def prout(sa, key, sakey=0, typ=0, aptpl=False):
    cdb = bytes([0x5F, sa, typ & 0x0F, 0, 0]) + struct.pack(">I", 24) + b"\0"
    par = struct.pack(">QQ", key, sakey) + b"\0" * 4 + bytes([1 if aptpl else 0]) + b"\0" * 3
    st, got = cmd(cdb, 24, par)
    return "%d%s" % (st, " sense " + sense_of(got) if st == 2 else "")


def move(key, newkey, typ, port, unreg):
    name = port.encode() + b"\0"
    name += b"\0" * ((-len(name)) % 4)
    if len(name) < 20:
        name += b"\0" * (20 - len(name))
    tid = bytes([0x40 | 0x05, 0]) + struct.pack(">H", len(name)) + name
    par = struct.pack(">QQ", key, newkey) + b"\0" + bytes([2 if unreg else 0]) + struct.pack(">H", 1) + struct.pack(">I", len(tid))
    assert len(par) == 24, len(par)
    par += tid
    cdb = bytes([0x5F, 7, typ & 0x0F, 0, 0]) + struct.pack(">I", len(par)) + b"\0"
    st, got = cmd(cdb, len(par), par)
    return "%d%s" % (st, " sense " + sense_of(got) if st == 2 else "")


def prin(sa, alloc=4096):
    cdb = bytes([0x5E, sa, 0, 0, 0, 0, 0]) + struct.pack(">H", alloc) + b"\0"
    st, got = cmd(cdb, alloc, read=True)
    assert st == 0, "PRIN %d: status %d %s" % (sa, st, sense_of(got))
    return got


i = 0
while i < len(steps):
    op = steps[i]
    if op == "register":
        key = int(steps[i + 1], 16)
        aptpl = i + 2 < len(steps) and steps[i + 2] == "aptpl"
        print("register", prout(6, 0, key, 0, aptpl))
        i += 3 if aptpl else 2
    elif op == "reserve":
        print("reserve", prout(1, int(steps[i + 1], 16), 0, int(steps[i + 2])))
        i += 3
    elif op == "move":
        unreg = i + 5 < len(steps) and steps[i + 5] == "unreg"
        print("move", move(int(steps[i + 1], 16), int(steps[i + 2], 16), int(steps[i + 3]), steps[i + 4], unreg))
        i += 6 if unreg else 5
    elif op == "clear":
        print("clear", prout(3, int(steps[i + 1], 16)))
        i += 2
    elif op == "keys":
        d = prin(0)
        gen, ln = struct.unpack(">II", d[:8])
        print("keys", gen, *["%x" % struct.unpack(">Q", d[8 + k:16 + k])[0] for k in range(0, ln, 8)])
        i += 1
    elif op == "res":
        d = prin(1)
        ln = struct.unpack(">I", d[4:8])[0]
        print("res none" if ln == 0 else "res %x %d" % (struct.unpack(">Q", d[8:16])[0], d[21] & 0x0F))
        i += 1
    elif op == "caps":
        d = prin(2)
        print("caps ptpl_c=%d ptpl_a=%d" % (d[2] & 1, d[3] & 1))
        i += 1
    elif op == "write":
        st, _ = cmd(bytes([0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0]), 512, b"\x5a" * 512)
        print("write", st)
        i += 1
    else:
        sys.exit("unknown step " + op)
s.s.close()
