#!/usr/bin/python3
"""faultproxy.py -- a TCP relay that makes network faults on command.

The kernel of the test machines has no tc netem and no iptables, so tests
make network faults by putting this relay between a client (an NBD
client, a replication controller) and a server (caskd's NBD port, a
replica's --replica-listen port). It listens on one loopback port per
*link*, connects each accepted connection to the link's target, and
forwards bytes both ways, changing what it forwards when told to over a
unix control socket. Design: docs/replication.md §13.1 ("As built" there).

Start
-----
  faultproxy.py --control SOCK [--log FILE] [--link SPEC]...
      SPEC = NAME=LISTEN_HOST:PORT,TARGET_HOST:PORT[,src=LABEL][,dst=LABEL]
      PORT 0 picks a free port. It prints one line when it listens:
          ready {"NAME": {"port": P, ...}, ...}
      and runs until `quit`, SIGTERM or SIGINT.
  faultproxy.py ctl SOCK COMMAND...
      send one command, print the answer; exit 0 on `ok`, 1 on `err`.

From Python:  FaultProxy(control, links={...}, log=...) starts it as a
subprocess; .cmd("delay v c2r 50") returns the answer's JSON (or None) and
raises ProxyError on `err`; .stats(link); .close().

Directions: `c2r` is bytes from the connecting side (client, controller)
to the target (server, replica), `r2c` the other way, `both` is both.
LINK is a link name or `all`; a command given without its LINK (the form
of docs/replication.md §13.1, `delay c2r 20`, `drop`) applies to all.

Commands (one line each; the answer is one line, `ok`, `ok JSON` or `err TEXT`)
--------
  links                          the links as JSON
  add NAME LISTEN TARGET [src=L] [dst=L]   a new link at run time; answers its port
  remove NAME                    stop listening, reset its connections
  delay LINK DIR MS              hold every chunk MS ms after it was read before it
                                 is forwarded (order kept; 0 = none)
  rate LINK DIR BYTES_PER_S      forward at most that many bytes a second (0 = no limit)
  stall LINK DIR                 stop reading from the sending side; TCP pushes back
  hold LINK DIR                  keep reading and buffering, forward nothing (past
                                 256 MiB queued in a direction it stops reading)
  blackhole LINK DIR             keep reading, throw the bytes away (the connection
                                 stays open; the sender's writes succeed, nothing arrives)
  resume LINK DIR | release LINK DIR | pass LINK DIR
                                 forward again; held bytes go first, in order
  pause LINK | unpause LINK      stall and hold both directions / undo
  freeze LINK | thaw LINK        pause only the connections open now (later ones pass:
                                 one peer partitioned while others connect through
                                 the same link) / undo
  cut LINK DIR                   half-close: FIN towards that direction's receiver,
                                 later bytes in that direction are dropped
  reset LINK  (or drop LINK)     RST on both sides of every open connection
  close LINK                     FIN on both sides of every open connection
  detach LINK                    close the connecting side of every connection but
                                 keep the target side open: held c2r bytes can still
                                 be released to the target (late frames)
  refuse LINK on|off             new connections are reset at once (a dead host)
  flip LINK DIR OFFSET BIT       flip bit BIT (0-7) of the byte at stream offset
                                 OFFSET, once in every connection (open or later)
                                 that has not yet passed it
  partition MODE GROUP GROUP...  GROUP = comma-separated endpoint labels; every link
                                 whose src and dst labels are in different groups gets
                                 MODE (stall, hold, blackhole or reset) both ways;
                                 `reset` also refuses new connections
  heal                           undo every partition (held bytes are released)
  clear LINK                     back to plain forwarding (releases held bytes)
  stats LINK                     JSON: per direction received, forwarded, dropped,
                                 queued bytes; conns_open, conns_total, resets, flips
  wait LINK KEY OP N [SECONDS]   answer when the stat KEY (e.g. `c2r.forwarded`,
                                 `conns_open`) OP (>=, <=, ==) N; err after SECONDS
                                 (default 30). Lets tests sync on bytes, not time.
  mark TEXT                      write TEXT into the log
  quit                           stop

Every command, connection, fault action (reset, flip, cut, drops) and each
connection's byte counts at its end go to the log, one line each:
  <monotonic seconds> <link> <conn id or -> <event> <details>

Endpoint labels: a link's src defaults to `client`, its dst to its name.
Without network namespaces everything is loopback: a "partition" is the
relay refusing to forward, not a link going down, so the kernel still
acknowledges bytes the relay has read (an application-level timeout, not
TCP_USER_TIMEOUT, is what notices a blackhole).
"""
import asyncio
import collections
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time

DIRS = ("c2r", "r2c")
MODES = ("pass", "stall", "hold", "blackhole")
READ_CHUNK = 262144
STREAM_LIMIT = 1 << 20         # asyncio stream buffer per socket
MAX_QUEUE = 256 << 20          # a direction stops reading once this much is queued


# Commands whose first argument is LINK, with their number of arguments.
LINK_ARITY = {"delay": 3, "rate": 3, "stall": 2, "hold": 2, "blackhole": 2, "resume": 2,
              "release": 2, "pass": 2, "pause": 1, "unpause": 1, "freeze": 1, "thaw": 1, "cut": 2, "reset": 1,
              "drop": 1, "close": 1, "detach": 1, "refuse": 2, "flip": 4, "clear": 1,
              "stats": 1}


class ProxyError(Exception):
    pass


# ---------------------------------------------------------------- the relay

class DirState:
    """The settings of one direction of one link (shared by its connections)."""

    def __init__(self):
        self.mode = "pass"
        self.delay = 0.0           # seconds
        self.rate = 0              # bytes per second, 0 = unlimited
        self.flips = []            # [(offset, bit)]
        self.partitioned = False   # mode was set by `partition`


class Link:
    def __init__(self, proxy, name, listen, target, src, dst):
        self.proxy = proxy
        self.name = name
        self.listen = listen
        self.target = target
        self.src = src
        self.dst = dst
        self.dirs = {d: DirState() for d in DIRS}
        self.paused = False
        self.refuse = False
        self.refuse_by_partition = False
        self.conns = set()
        self.server = None
        self.port = None
        self.next_conn = 1
        self.st = {"conns_total": 0, "resets": 0, "flips": 0, "refused": 0}
        for d in DIRS:
            for k in ("received", "forwarded", "dropped"):
                self.st[d + "." + k] = 0
        self.changed = asyncio.Event()
        self.watchers = 0          # `wait` commands on this link's counters

    def notify(self):
        """Settings or connections changed: wake every waiter of the link."""
        self.wake_watchers()
        for conn in self.conns:
            for p in conn.pipes.values():
                p.bump()
        self.proxy.notify()

    def wake_watchers(self):
        self.changed.set()
        self.changed = asyncio.Event()

    async def wait_until(self, pred):
        while not pred():
            await self.changed.wait()

    def stats(self):
        s = dict(self.st)
        s["conns_open"] = len(self.conns)
        for d in DIRS:
            s[d + ".queued"] = sum(c.pipes[d].queued for c in self.conns)
            ds = self.dirs[d]
            s[d + ".mode"] = "pause" if self.paused else ds.mode
            s[d + ".delay_ms"] = int(ds.delay * 1000)
            s[d + ".rate"] = ds.rate
        return s

    def log(self, conn, what):
        self.proxy.log(self.name, conn, what)

    async def start(self):
        host, port = self.listen
        self.server = await asyncio.start_server(self.accept, host, port, limit=STREAM_LIMIT)
        self.port = self.server.sockets[0].getsockname()[1]
        self.log(None, "listen %s:%d -> %s:%d src=%s dst=%s"
                 % (host, self.port, self.target[0], self.target[1], self.src, self.dst))

    async def accept(self, reader, writer):
        cid = self.next_conn
        self.next_conn += 1
        peer = writer.get_extra_info("peername")
        if self.refuse:
            self.st["refused"] += 1
            self.log(cid, "refused %s (reset)" % (peer,))
            rst(writer)
            return
        try:
            ur, uw = await asyncio.open_connection(*self.target, limit=STREAM_LIMIT)
        except OSError as e:
            self.log(cid, "connect to target failed: %s (reset client)" % e)
            rst(writer)
            return
        for w in (writer, uw):
            s = w.get_extra_info("socket")
            if s is not None:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.st["conns_total"] += 1
        conn = Conn(self, cid, reader, writer, ur, uw)
        self.conns.add(conn)
        self.log(cid, "open from %s" % (peer,))
        self.notify()
        await conn.run()
        self.conns.discard(conn)
        self.notify()


def rst(writer):
    """Close a stream's socket with an RST (SO_LINGER 0)."""
    s = writer.get_extra_info("socket")
    try:
        if s is not None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    writer.transport.abort()


class Pipe:
    """One direction of one connection: a reader task and a writer task with a
    queue of (deliver_at, bytes) between them (None = end of stream)."""

    def __init__(self, conn, d, src, dst):
        self.conn = conn
        self.d = d
        self.src = src
        self.dst = dst
        self.q = collections.deque()
        self.queued = 0
        self.offset = 0            # stream bytes received so far
        self.forwarded = 0
        self.flipped = set()
        self.changed = asyncio.Event()
        self.cut = False
        self.dst_gone = False      # receiver closed by detach: discard
        self.src_gone = False      # sender closed by detach: its EOF is not forwarded
        self.done = False

    @property
    def ds(self):
        return self.conn.link.dirs[self.d]

    def reading_allowed(self):
        link = self.conn.link
        return self.conn.dead or (not (link.paused or self.conn.frozen) and self.ds.mode != "stall"
                                  and self.queued < MAX_QUEUE)

    def unstalled(self):
        link = self.conn.link
        return self.conn.dead or (not (link.paused or self.conn.frozen) and self.ds.mode != "stall")

    def unheld(self):
        link = self.conn.link
        return self.conn.dead or (not (link.paused or self.conn.frozen) and self.ds.mode != "hold")

    def sending_allowed(self):
        link = self.conn.link
        return self.conn.dead or (len(self.q) > 0 and not link.paused
                                  and self.ds.mode != "hold")

    def bump(self):
        self.changed.set()
        self.changed = asyncio.Event()

    def activity(self):
        """Bytes moved: wake this pipe's tasks and any `wait` on the link."""
        self.bump()
        if self.conn.link.watchers:
            self.conn.link.wake_watchers()

    async def wait_until(self, pred):
        while not pred():
            await self.changed.wait()

    def push(self, item, n):
        self.q.append(item)
        self.queued += n
        self.activity()

    async def read_loop(self):
        link = self.conn.link
        st = link.st
        while True:
            await self.wait_until(self.reading_allowed)
            if self.conn.dead:
                return
            data = await self.src.read(READ_CHUNK)
            # A stall or pause that began while the read was pending holds
            # this chunk too: nothing read after the command is forwarded.
            await self.wait_until(self.unstalled)
            if self.conn.dead:
                return
            if not data or self.src_gone:
                if not self.src_gone:
                    self.push((0.0, None), 0)
                return
            n = len(data)
            st[self.d + ".received"] += n
            start = self.offset
            self.offset += n
            if self.ds.mode == "blackhole" or self.cut or self.dst_gone:
                st[self.d + ".dropped"] += n
                self.activity()
                continue
            for off, bit in self.ds.flips:
                if start <= off < start + n and off not in self.flipped:
                    b = bytearray(data)
                    b[off - start] ^= 1 << bit
                    data = bytes(b)
                    self.flipped.add(off)
                    st["flips"] += 1
                    link.log(self.conn.cid, "flip %s offset %d bit %d" % (self.d, off, bit))
            self.push((time.monotonic() + self.ds.delay, data), n)

    async def write_loop(self):
        link = self.conn.link
        st = link.st
        tokens_t = time.monotonic()
        while True:
            await self.wait_until(self.sending_allowed)
            if self.conn.dead:
                return
            at, data = self.q[0]
            now = time.monotonic()
            if data is not None and at > now:
                await asyncio.sleep(at - now)
                continue            # settings may have changed meanwhile
            self.q.popleft()
            if data is None:
                if not self.cut and not self.dst_gone:
                    self.half_close()
                self.done = True
                return
            self.queued -= len(data)
            self.bump()            # room in the queue for the reader
            if self.cut or self.dst_gone:
                st[self.d + ".dropped"] += len(data)
                self.activity()
                continue
            pos = 0
            while pos < len(data):
                if pos:
                    await self.wait_until(self.unheld)
                    if self.conn.dead:
                        return
                rate = self.ds.rate
                if rate:
                    piece = max(1, min(len(data) - pos, rate // 50 or 1))
                    now = time.monotonic()
                    tokens_t = max(tokens_t, now)
                    if tokens_t > now:
                        await asyncio.sleep(tokens_t - now)
                    tokens_t += piece / rate
                else:
                    piece = len(data) - pos
                self.dst.write(data[pos:pos + piece])
                await self.dst.drain()
                pos += piece
                self.forwarded += piece
                st[self.d + ".forwarded"] += piece
                self.activity()

    def half_close(self):
        try:
            if self.dst.can_write_eof():
                self.dst.write_eof()
        except OSError:
            pass


class Conn:
    def __init__(self, link, cid, cr, cw, ur, uw):
        self.link = link
        self.cid = cid
        self.cw = cw
        self.uw = uw
        self.dead = False
        self.frozen = False        # `freeze`: paused, whatever the link does
        self.pipes = {"c2r": Pipe(self, "c2r", cr, uw), "r2c": Pipe(self, "r2c", ur, cw)}
        self.tasks = []
        self.end = "eof"

    async def run(self):
        self.tasks = [asyncio.ensure_future(f()) for p in self.pipes.values()
                      for f in (p.read_loop, p.write_loop)]
        try:
            while True:
                done, pending = await asyncio.wait(self.tasks, return_when=asyncio.FIRST_COMPLETED)
                err = None
                for t in done:
                    if not t.cancelled() and t.exception() is not None:
                        err = t.exception()
                if err is not None and not self.dead:
                    self.log("error %s: %s (reset both sides)" % (type(err).__name__, err))
                    self.reset()
                if not pending or self.dead:
                    break
                self.tasks = list(pending)
        finally:
            for t in self.tasks:
                t.cancel()
            for w in (self.cw, self.uw):
                try:
                    w.close()
                except Exception:
                    pass
            c, r = self.pipes["c2r"], self.pipes["r2c"]
            self.log("end (%s) c2r %d/%d forwarded/received, r2c %d/%d"
                     % (self.end, c.forwarded, c.offset, r.forwarded, r.offset))

    def log(self, what):
        self.link.log(self.cid, what)

    def kill(self):
        self.dead = True
        self.link.notify()

    def reset(self):
        if self.dead:
            return
        self.end = "reset"
        self.link.st["resets"] += 1
        for w in (self.cw, self.uw):
            rst(w)
        self.kill()

    def close(self):
        if self.dead:
            return
        self.end = "closed"
        for w in (self.cw, self.uw):
            try:
                w.close()
            except Exception:
                pass
        self.kill()

    def detach(self):
        self.pipes["r2c"].dst_gone = True
        self.pipes["c2r"].src_gone = True
        try:
            self.cw.close()
        except Exception:
            pass
        # the c2r reader now reads from a closed stream: make it stop reading
        self.log("detach: client side closed, target side kept")
        self.link.notify()

    def cut(self, d):
        p = self.pipes[d]
        if p.cut:
            return
        p.cut = True
        p.half_close()
        self.log("cut %s (half-close)" % d)
        self.link.notify()


class Proxy:
    def __init__(self, control, logf):
        self.control = control
        self.logf = logf
        self.links = {}
        self.stop = asyncio.Event()
        self.changed = asyncio.Event()

    def notify(self):
        self.changed.set()
        self.changed = asyncio.Event()

    def log(self, link, conn, what):
        self.logf.write("%.6f %s %s %s\n" % (time.monotonic(), link or "-",
                                             "-" if conn is None else conn, what))
        self.logf.flush()

    async def add(self, spec_name, listen, target, src=None, dst=None):
        if spec_name in self.links or spec_name == "all":
            raise ProxyError("link %s exists" % spec_name)
        link = Link(self, spec_name, listen, target, src or "client", dst or spec_name)
        await link.start()
        self.links[spec_name] = link
        return link

    def pick(self, name):
        if name == "all":
            return list(self.links.values())
        if name not in self.links:
            raise ProxyError("no link %s" % name)
        return [self.links[name]]

    @staticmethod
    def dirs(d):
        if d == "both":
            return DIRS
        if d not in DIRS:
            raise ProxyError("direction must be c2r, r2c or both, not %s" % d)
        return (d,)

    async def command(self, line):
        w = line.split()
        if not w:
            raise ProxyError("empty command")
        c, a = w[0], w[1:]
        self.log(None, None, "command: " + line.strip())
        if len(a) == LINK_ARITY.get(c, -1) - 1:
            a = ["all"] + a        # the design's form without a link: every link

        def need(n, usage):
            if len(a) != n:
                raise ProxyError("usage: " + usage)

        if c == "links":
            return {n: {"port": l.port, "listen": list(l.listen), "target": list(l.target),
                        "src": l.src, "dst": l.dst} for n, l in self.links.items()}
        if c == "add":
            if len(a) < 3:
                raise ProxyError("usage: add NAME LISTEN TARGET [src=L] [dst=L]")
            kw = dict(x.split("=", 1) for x in a[3:])
            link = await self.add(a[0], hostport(a[1]), hostport(a[2]), kw.get("src"), kw.get("dst"))
            return {"port": link.port}
        if c == "remove":
            need(1, "remove NAME")
            for link in self.pick(a[0]):
                link.server.close()
                for conn in list(link.conns):
                    conn.reset()
                del self.links[link.name]
            return None
        if c in ("delay", "rate"):
            need(3, c + " LINK DIR N")
            v = float(a[2]) if c == "delay" else int(a[2])
            if v < 0:
                raise ProxyError("negative value")
            for link in self.pick(a[0]):
                for d in self.dirs(a[1]):
                    if c == "delay":
                        link.dirs[d].delay = v / 1000.0
                    else:
                        link.dirs[d].rate = v
                link.notify()
            return None
        if c in ("stall", "hold", "blackhole", "resume", "release", "pass"):
            need(2, c + " LINK DIR")
            mode = c if c in MODES else "pass"
            for link in self.pick(a[0]):
                for d in self.dirs(a[1]):
                    link.dirs[d].mode = mode
                    link.dirs[d].partitioned = False
                link.notify()
            return None
        if c in ("pause", "unpause"):
            need(1, c + " LINK")
            for link in self.pick(a[0]):
                link.paused = c == "pause"
                link.notify()
            return None
        if c in ("freeze", "thaw"):
            need(1, c + " LINK")
            n = 0
            for link in self.pick(a[0]):
                for conn in list(link.conns):
                    conn.frozen = c == "freeze"
                    n += 1
                link.notify()
            return {"connections": n}
        if c == "cut":
            need(2, "cut LINK DIR")
            for link in self.pick(a[0]):
                for conn in list(link.conns):
                    for d in self.dirs(a[1]):
                        conn.cut(d)
            return None
        if c in ("reset", "drop", "close", "detach"):
            need(1, c + " LINK")
            n = 0
            for link in self.pick(a[0]):
                for conn in list(link.conns):
                    n += 1
                    if c == "close":
                        conn.close()
                    elif c == "detach":
                        conn.detach()
                    else:
                        conn.reset()
                if c != "detach":
                    await link.wait_until(lambda: not link.conns)
            return {"connections": n}
        if c == "refuse":
            need(2, "refuse LINK on|off")
            for link in self.pick(a[0]):
                link.refuse = a[1] == "on"
            return None
        if c == "flip":
            need(4, "flip LINK DIR OFFSET BIT")
            off, bit = int(a[2]), int(a[3])
            if off < 0 or not 0 <= bit <= 7:
                raise ProxyError("offset >= 0, bit 0..7")
            for link in self.pick(a[0]):
                for d in self.dirs(a[1]):
                    link.dirs[d].flips.append((off, bit))
            return None
        if c == "partition":
            if len(a) < 3:
                raise ProxyError("usage: partition MODE GROUP GROUP...")
            mode = a[0]
            if mode not in ("stall", "hold", "blackhole", "reset"):
                raise ProxyError("partition mode must be stall, hold, blackhole or reset")
            side = {}
            for i, g in enumerate(a[1:]):
                for label in g.split(","):
                    side[label] = i
            hit = []
            for link in self.links.values():
                if link.src in side and link.dst in side and side[link.src] != side[link.dst]:
                    hit.append(link.name)
                    if mode == "reset":
                        link.refuse = True
                        link.refuse_by_partition = True
                        for conn in list(link.conns):
                            conn.reset()
                    else:
                        for d in DIRS:
                            link.dirs[d].mode = mode
                            link.dirs[d].partitioned = True
                    link.notify()
            return {"links": hit}
        if c == "heal":
            healed = []
            for link in self.links.values():
                h = False
                for d in DIRS:
                    if link.dirs[d].partitioned:
                        link.dirs[d].mode = "pass"
                        link.dirs[d].partitioned = False
                        h = True
                if link.refuse_by_partition:
                    link.refuse = link.refuse_by_partition = False
                    h = True
                if h:
                    healed.append(link.name)
                    link.notify()
            return {"links": healed}
        if c == "clear":
            need(1, "clear LINK")
            for link in self.pick(a[0]):
                link.dirs = {d: DirState() for d in DIRS}
                link.paused = link.refuse = link.refuse_by_partition = False
                link.notify()
            return None
        if c == "stats":
            need(1, "stats LINK")
            links = self.pick(a[0])
            if len(links) == 1 and a[0] != "all":
                return links[0].stats()
            return {l.name: l.stats() for l in links}
        if c == "wait":
            if len(a) not in (4, 5):
                raise ProxyError("usage: wait LINK KEY OP N [SECONDS]")
            link = self.pick(a[0])[0]
            key, op, n = a[1], a[2], int(a[3])
            limit = float(a[4]) if len(a) == 5 else 30.0
            ops = {">=": lambda x: x >= n, "<=": lambda x: x <= n, "==": lambda x: x == n}
            if op not in ops:
                raise ProxyError("OP must be >=, <= or ==")
            if key not in link.stats():
                raise ProxyError("no stat %s" % key)
            link.watchers += 1
            try:
                await asyncio.wait_for(link.wait_until(lambda: ops[op](link.stats()[key])), limit)
            except asyncio.TimeoutError:
                raise ProxyError("timeout: %s is %s" % (key, link.stats()[key]))
            finally:
                link.watchers -= 1
            return {key: link.stats()[key]}
        if c == "mark":
            return None
        if c == "quit":
            self.stop.set()
            return None
        raise ProxyError("unknown command %s" % c)

    async def control_client(self, reader, writer):
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    r = await self.command(line.decode("utf-8", "replace"))
                    ans = "ok" if r is None else "ok " + json.dumps(r, sort_keys=True)
                except (ProxyError, ValueError, TypeError, OSError) as e:
                    ans = "err %s" % e
                    self.log(None, None, "answer: " + ans)
                writer.write((ans + "\n").encode())
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def main(self, specs):
        for name, listen, target, src, dst in specs:
            await self.add(name, listen, target, src, dst)
        srv = await asyncio.start_unix_server(self.control_client, self.control)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        print("ready " + json.dumps({n: {"port": l.port, "target": list(l.target)}
                                     for n, l in self.links.items()}), flush=True)
        self.log(None, None, "ready (loopback relay; no network namespaces)")
        await self.stop.wait()
        srv.close()
        for link in self.links.values():
            link.server.close()
            for conn in list(link.conns):
                conn.close()
        try:
            os.unlink(self.control)
        except OSError:
            pass
        self.log(None, None, "stopped")


def hostport(s):
    host, _, port = s.rpartition(":")
    if not host or not port.isdigit():
        raise ProxyError("want HOST:PORT, not %s" % s)
    return (host.strip("[]"), int(port))


def parse_link(spec):
    name, _, rest = spec.partition("=")
    parts = rest.split(",")
    if not name or len(parts) < 2:
        raise ProxyError("bad --link %s (NAME=LISTEN,TARGET[,src=L][,dst=L])" % spec)
    kw = dict(p.split("=", 1) for p in parts[2:])
    return (name, hostport(parts[0]), hostport(parts[1]), kw.get("src"), kw.get("dst"))


# ---------------------------------------------------------------- clients

def ctl(control, line, timeout=120):
    """Send one command line, return (ok, rest)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(control)
    try:
        s.sendall(line.encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            b = s.recv(65536)
            if not b:
                raise ProxyError("proxy closed the control connection")
            buf += b
    finally:
        s.close()
    ans = buf.decode().strip()
    word, _, rest = ans.partition(" ")
    return word == "ok", rest


class FaultProxy:
    """Start faultproxy.py as a subprocess and drive it.

        p = FaultProxy("/tmp/x/proxy.sock", {"nbd": ("127.0.0.1:0", "127.0.0.1:10809")},
                       log="/tmp/x/proxy.log")
        port = p.port("nbd")
        p.cmd("delay nbd r2c 20")
        p.stats("nbd")["r2c.forwarded"]
        p.close()
    """

    def __init__(self, control, links, log=None):
        self.control = control
        args = [sys.executable, os.path.abspath(__file__), "--control", control]
        if log:
            args += ["--log", log]
        for name, v in links.items():
            listen, target = v[0], v[1]
            extra = "".join(",%s=%s" % kv for kv in (v[2].items() if len(v) > 2 else []))
            args += ["--link", "%s=%s,%s%s" % (name, listen, target, extra)]
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        line = self.p.stdout.readline()
        if not line.startswith("ready "):
            self.p.kill()
            self.p.wait()
            raise ProxyError("faultproxy did not start: %r" % line)
        self.info = json.loads(line[6:])

    def port(self, name):
        return self.info[name]["port"]

    def cmd(self, line):
        ok, rest = ctl(self.control, line)
        if not ok:
            raise ProxyError("%s: %s" % (line, rest))
        return json.loads(rest) if rest else None

    def stats(self, link):
        return self.cmd("stats " + link)

    def close(self):
        if self.p.poll() is None:
            try:
                self.cmd("quit")
            except (OSError, ProxyError):
                self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        if self.p.stdout:
            self.p.stdout.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def main(argv):
    if len(argv) >= 3 and argv[0] == "ctl":
        ok, rest = ctl(argv[1], " ".join(argv[2:]))
        print(("ok" if ok else "err") + (" " + rest if rest else ""))
        return 0 if ok else 1
    import argparse
    ap = argparse.ArgumentParser(description="fault-injecting TCP relay (see the file's docstring)")
    ap.add_argument("--control", required=True, help="unix socket for commands")
    ap.add_argument("--log", help="log file (default stderr)")
    ap.add_argument("--link", action="append", default=[],
                    help="NAME=LISTEN_HOST:PORT,TARGET_HOST:PORT[,src=L][,dst=L]")
    o = ap.parse_args(argv)
    specs = [parse_link(s) for s in o.link]
    logf = open(o.log, "a") if o.log else sys.stderr
    asyncio.run(Proxy(o.control, logf).main(specs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
