# A fault-injecting TCP proxy for loopback links between sidecars: forward, refuse, reset, stall, cut mid-stream.
"""One `Proxy` forwards one direction of a link (a sidecar's --peer URL points at it) to another
sidecar's listen address. All proxies run on one asyncio loop in a background thread (`ProxyHub`);
the test thread changes their mode with `set_mode`:

- ``up``: forward bytes both ways (stalled connections resume where they were).
- ``refuse``: stop listening (new connections get ECONNREFUSED); open connections are reset.
- ``reset``: accept, then reset at once (RST); open connections are reset.
- ``stall``: stop moving bytes (open and new connections hang until ``up``, like a partition
  that heals; TCP back-pressure holds the senders).
- ``cut``: every connection is reset after a random number of bytes (0..cut_max), so requests
  and replies are torn mid-stream; open connections are reset.

Only 127.0.0.0/8 addresses are accepted.
"""
import asyncio
import ipaddress
import random
import socket
import struct
import threading

MODES = ("up", "refuse", "reset", "stall", "cut")


def _loopback(host):
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"{host} is not a loopback address; the proxy only uses 127.0.0.0/8")
    return host


def quiet_port(host="127.0.0.1", rnd=random):
    """A TCP port free on `host` below the kernel's ephemeral range (32768+), so that no outgoing
    connection can take it while its server is down (a killed sidecar, a refusing proxy) and the
    server can always bind it again when it comes back."""
    lo, _ = (int(x) for x in open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
    for _ in range(1000):
        port = rnd.randrange(20000, min(lo, 32768))
        with socket.socket() as s:
            try:
                s.bind((_loopback(host), port))
                return port
            except OSError:
                continue
    raise RuntimeError(f"no free port below {lo} on {host}")


def _rst(writer):
    """Close with a TCP reset (SO_LINGER 0), not a graceful FIN."""
    sock = writer.get_extra_info("socket")
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    writer.transport.abort()


class _Conn:
    def __init__(self, client, upstream, budget):
        self.client = client          # (reader, writer) of the sidecar that connected
        self.upstream = upstream      # (reader, writer) towards the target sidecar
        self.budget = budget          # bytes left before a cut (None: unlimited)
        self.dead = False

    def kill(self):
        if self.dead:
            return
        self.dead = True
        for _, w in (self.client, self.upstream):
            if w is not None:
                _rst(w)


class Proxy:
    def __init__(self, hub, listen_host, target, source_host=None, name=""):
        self.hub = hub
        self.listen_host = _loopback(listen_host)
        self.target = (_loopback(target[0]), target[1])
        self.source_host = _loopback(source_host) if source_host else None
        self.name = name or f"{listen_host}->{target[0]}:{target[1]}"
        self.port = quiet_port(listen_host, hub.rnd)
        self.mode = "up"
        self.server = None
        self.conns = set()
        self.flowing = None           # asyncio.Event, set while bytes may move
        self.rnd = random.Random(hub.rnd.random())
        self.cut_max = 4096
        self.stats = {"connections": 0, "bytes": 0, "resets": 0}

    @property
    def url(self):
        return f"http://{self.listen_host}:{self.port}"

    # -- on the hub's loop --
    async def _listen(self):
        for attempt in range(50):
            try:
                self.server = await asyncio.start_server(self._handle, self.listen_host, self.port,
                                                         reuse_address=True)
                break
            except OSError:
                if attempt == 49:
                    raise
                await asyncio.sleep(0.1)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _start(self):
        self.flowing = asyncio.Event()
        self.flowing.set()
        await self._listen()

    async def _set_mode(self, mode):
        if mode not in MODES:
            raise ValueError(f"unknown proxy mode {mode!r}")
        old, self.mode = self.mode, mode
        if mode == "stall":
            self.flowing.clear()
        else:
            self.flowing.set()
        if mode in ("refuse", "reset", "cut"):
            for c in list(self.conns):
                self.stats["resets"] += 1
                c.kill()
        if mode == "refuse" and self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        if mode != "refuse" and self.server is None:
            await self._listen()
        return old

    async def _close(self):
        if self.server is not None:
            self.server.close()
            self.server = None
        for c in list(self.conns):
            c.kill()

    async def _handle(self, reader, writer):
        self.stats["connections"] += 1
        if self.mode in ("reset", "refuse"):
            self.stats["resets"] += 1
            _rst(writer)
            return
        await self.flowing.wait()
        try:
            local = (self.source_host, 0) if self.source_host else None
            up_r, up_w = await asyncio.wait_for(
                asyncio.open_connection(*self.target, local_addr=local), timeout=5)
        except (OSError, asyncio.TimeoutError):
            self.stats["resets"] += 1
            _rst(writer)
            return
        budget = self.rnd.randint(0, self.cut_max) if self.mode == "cut" else None
        conn = _Conn((reader, writer), (up_r, up_w), budget)
        if self.mode in ("reset", "refuse"):  # the mode changed while connecting
            conn.kill()
            return
        self.conns.add(conn)
        try:
            await asyncio.gather(self._pump(conn, reader, up_w), self._pump(conn, up_r, writer))
        finally:
            self.conns.discard(conn)
            if not conn.dead:
                for w in (writer, up_w):
                    w.close()

    async def _pump(self, conn, reader, writer):
        try:
            while not conn.dead:
                await self.flowing.wait()
                data = await reader.read(65536)
                await self.flowing.wait()
                if conn.dead:
                    return
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                if conn.budget is not None:
                    if len(data) >= conn.budget:
                        writer.write(data[:conn.budget])
                        self.stats["resets"] += 1
                        conn.kill()
                        return
                    conn.budget -= len(data)
                writer.write(data)
                self.stats["bytes"] += len(data)
                await writer.drain()
        except Exception:  # reset by a peer, a killed sidecar, a closed transport: end both sides
            conn.kill()

    # -- from the test thread --
    def set_mode(self, mode):
        """Switches the fault mode; returns the previous one."""
        return self.hub.call(self._set_mode(mode))


class ProxyHub:
    """Owns the asyncio loop (in a daemon thread) that runs every proxy of a test."""

    def __init__(self, seed=0):
        self.rnd = random.Random(seed)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="faults-proxy", daemon=True)
        self.thread.start()
        self.proxies = []

    def call(self, coro, timeout=30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def proxy(self, listen_host, target, source_host=None, name=""):
        p = Proxy(self, listen_host, target, source_host, name)
        self.call(p._start())
        self.proxies.append(p)
        return p

    def restore_all(self):
        for p in self.proxies:
            p.set_mode("up")

    def close(self):
        async def close_all():
            for p in self.proxies:
                await p._close()
        try:
            self.call(close_all(), timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
