# tests/reliability/hostile_http.py: raw-socket HTTP for hostile clients: signed heads for hand-made requests, dribbling (slowloris) senders, huge bodies.
import socket
import time

from sidecar_helpers import signed, signer


def signed_head(dev, url, method, body: bytes, content_length=None, chunked=False):
    """The request line and headers (bytes, ending with the blank line) of a request signed by
    `dev` over `body` (its Content-Digest), for sending by hand."""
    p = signed(method, url, signer(dev), body if body else None)
    path = url.split("/", 3)[3]
    host = url.split("/")[2]
    lines = [f"{method} /{path} HTTP/1.1", f"Host: {host}"]
    for k, v in p.headers.items():
        if k.lower() not in ("content-length", "transfer-encoding", "host"):
            lines.append(f"{k}: {v}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    else:
        lines.append(f"Content-Length: {len(body) if content_length is None else content_length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _complete(data: bytes):
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    length = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
    return bool(length) and len(rest) >= length[0]


def read_reply(sock, timeout, data=b""):
    """Reads (after `data`, already received) until the server closes or a whole reply with a
    Content-Length has arrived: (status or None, text)."""
    sock.setblocking(True)
    sock.settimeout(timeout)
    while not _complete(data):
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, ConnectionResetError):
            break
        if not chunk:
            break
        data += chunk
    text = data.decode(errors="replace")
    status = int(text.split(" ")[1]) if text.startswith("HTTP/1.1 ") else None
    return status, text


class Dribbler:
    """A slowloris client: sends `data` one byte every `every` seconds until the server cuts it
    off (or `give_up` seconds pass). `run()` returns (seconds until cut off or None, bytes sent,
    server reply text)."""

    def __init__(self, host, port, data: bytes, every=0.2, give_up=15, prefix=b""):
        self.sock = socket.create_connection((host, port))
        self.data, self.every, self.give_up, self.prefix = data, every, give_up, prefix

    def run(self):
        start = time.time()
        sent = 0
        self.sock.settimeout(self.every)
        reply = b""
        try:
            if self.prefix:
                self.sock.sendall(self.prefix)
            for i in range(len(self.data)):
                if time.time() - start > self.give_up:
                    return None, sent, reply.decode(errors="replace")
                self.sock.sendall(self.data[i:i + 1])
                sent += 1
                try:
                    chunk = self.sock.recv(65536)
                    if not chunk:
                        return time.time() - start, sent, reply.decode(errors="replace")
                    reply += chunk
                except socket.timeout:
                    pass
        except (BrokenPipeError, ConnectionResetError):
            return time.time() - start, sent, reply.decode(errors="replace")
        finally:
            self.sock.close()
        return None, sent, reply.decode(errors="replace")


def stream_body(host, port, head: bytes, total: int, chunked=False, chunk=1 << 20, timeout=30):
    """Sends `head`, then up to `total` bytes of body in `chunk`-sized pieces (chunked encoding
    if asked), stopping as soon as the server answers or closes. Returns (status, reply text,
    body bytes sent, seconds)."""
    start = time.time()
    s = socket.create_connection((host, port))
    s.sendall(head)
    sent = 0
    piece = b"x" * chunk
    first = b""
    try:
        while sent < total and time.time() - start < timeout:
            s.setblocking(False)
            try:
                first = s.recv(65536)
                break  # the server answered (or closed: b"") before the whole body was sent
            except BlockingIOError:
                pass
            n = min(chunk, total - sent)
            data = (b"%x\r\n" % n + piece[:n] + b"\r\n") if chunked else piece[:n]
            s.setblocking(True)
            s.settimeout(2)
            try:
                s.sendall(data)
            except (socket.timeout, BrokenPipeError, ConnectionResetError):
                break
            sent += n
        else:
            if chunked:
                s.sendall(b"0\r\n\r\n")
        status, text = read_reply(s, timeout, first)
    finally:
        s.close()
    return status, text, sent, time.time() - start
