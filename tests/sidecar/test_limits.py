# Slow and greedy clients: header read timeout (slowloris), body read timeout (408), the
# connection limit (silent connections give way), and graceful shutdown on SIGTERM.
import json
import signal
import socket
import time

import requests

from conftest import db_hash, free_port, pair, signed, signer
from test_auth import batch_of


def serve_b(devices):
    a, b = devices("a"), devices("b")
    pair(a, b)
    a.track()
    b.track()
    a.sql("INSERT INTO notes VALUES ('x', 'y', 1)")
    b.serve("127.0.0.2", free_port(), (), "--header-timeout", "1", "--body-timeout", "1", "--max-connections", "2")
    return a, b


def closed_within(sock, seconds):
    """Seconds until the server closed `sock` (reads until EOF), or None if it stayed open."""
    sock.settimeout(seconds)
    start = time.time()
    try:
        while sock.recv(4096):
            pass
        return time.time() - start
    except socket.timeout:
        return None


def test_slow_headers_are_cut_off(devices):
    a, b = serve_b(devices)
    s = socket.create_connection((b.host, b.port))
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # and never finish the headers
    took = closed_within(s, 5)
    assert took is not None and took < 4, "a client that never finished its headers kept its connection"
    # the server still serves others
    assert requests.get(f"{b.url}/health", timeout=5).status_code == 200


def test_slow_body_gets_408_and_changes_nothing(devices):
    a, b = serve_b(devices)
    p = signed("POST", f"{b.url}/sync/push", signer(a), batch_of(a))
    before = db_hash(b.db)
    s = socket.create_connection((b.host, b.port))
    headers = {k: v for k, v in p.headers.items() if k.lower() != "content-length"}
    head = f"POST /sync/push HTTP/1.1\r\nHost: {b.host}:{b.port}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += f"Content-Length: {len(p.body)}\r\n\r\n"
    s.sendall(head.encode() + p.body[:10])  # then stall
    s.settimeout(5)
    start = time.time()
    reply = s.recv(4096).decode()
    assert reply.startswith("HTTP/1.1 408"), reply
    assert "did not arrive" in reply and time.time() - start < 4
    assert db_hash(b.db) == before


def test_connection_limit_and_idle_connections(devices):
    """With every slot taken by connections that send nothing, a new request is served at once:
    the oldest silent connection gives way (and the others are cut by the header timeout)."""
    a, b = serve_b(devices)
    idle = [socket.create_connection((b.host, b.port)) for _ in range(2)]  # take both slots, send nothing
    time.sleep(0.1)
    start = time.time()
    r = requests.get(f"{b.url}/health", timeout=10)
    assert r.status_code == 200
    assert time.time() - start < 0.5, "a new connection waited for a silent one to time out"
    assert closed_within(idle[0], 1) is not None, "the oldest silent connection was not closed to make room"
    assert closed_within(idle[1], 5) is not None, "a silent connection outlived the header timeout"
    for s in idle:
        s.close()


def test_sigterm_stops_cleanly(devices):
    a, b = serve_b(devices)
    assert b.stop(signal.SIGTERM, timeout=10) == 0
    assert "stopped" in b.log.read_text()
