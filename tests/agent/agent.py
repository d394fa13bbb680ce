# peersync-agent through ctypes: the C ABI of target/release/libpeersync_agent.so as a small Python class.
import ctypes
import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The build linked to the system SQLite: the one Python's sqlite3 module uses, so the test
# process holds one SQLite (two copies in one process do not see each other's locks).
LIB_PATH = Path(os.environ.get("PEERSYNC_AGENT_LIB", ROOT / "target" / "agent-system" / "release" / "libpeersync_agent.so"))

# The codes of peersync.h.
OK, INVALID_ARGUMENT, KEY, DATABASE, UNREACHABLE, PEER, FORBIDDEN, CANCELLED, CLOSED, PAIRING, INTEGRITY = range(11)
INTERNAL = 99

_lib = None


def lib():
    global _lib
    if _lib is None:
        if not LIB_PATH.exists():
            raise RuntimeError(f"{LIB_PATH} is missing: run `make agent` first")
        l = ctypes.CDLL(str(LIB_PATH))  # CDLL releases the GIL during calls: cancel from another thread works
        p, c = ctypes.c_void_p, ctypes.c_char_p
        out = ctypes.POINTER(ctypes.c_void_p)
        l.peersync_agent_open.argtypes = [c, c, ctypes.c_size_t, out]
        for name in ("status", "conflicts"):
            getattr(l, f"peersync_agent_{name}").argtypes = [p, out]
        l.peersync_agent_sync_once.argtypes = [p, c, out]
        l.peersync_agent_resolve.argtypes = [p, ctypes.c_int64, c, out]
        l.peersync_agent_pair.argtypes = [p, c, out]
        l.peersync_agent_cancel.argtypes = [p]
        l.peersync_agent_close.argtypes = [p]
        l.peersync_string_free.argtypes = [p]
        l.peersync_string_free.restype = None
        l.peersync_last_error.restype = c
        l.peersync_version.restype = c
        _lib = l
    return _lib


class AgentError(Exception):
    def __init__(self, code, message):
        super().__init__(f"peersync code {code}: {message}")
        self.code, self.message = code, message


def _check(code):
    if code != OK:
        raise AgentError(code, lib().peersync_last_error().decode())


def _take(ptr):
    """The JSON string a call returned, decoded, and freed."""
    try:
        return json.loads(ctypes.string_at(ptr.value).decode())
    finally:
        lib().peersync_string_free(ptr)


class Agent:
    def __init__(self, db, key: bytes):
        h = ctypes.c_void_p()
        path = db if isinstance(db, bytes) else str(db).encode()
        _check(lib().peersync_agent_open(path, key, len(key), ctypes.byref(h)))
        self.handle = h.value

    def _json_call(self, fn, *args):
        out = ctypes.c_void_p()
        _check(fn(self.handle, *args, ctypes.byref(out)))
        return _take(out)

    def sync_once(self, url):
        return self._json_call(lib().peersync_agent_sync_once, url if isinstance(url, bytes) else url.encode())

    def status(self):
        return self._json_call(lib().peersync_agent_status)

    def conflicts(self):
        return self._json_call(lib().peersync_agent_conflicts)

    def resolve(self, conflict_id, choice):
        choice = choice if isinstance(choice, str) else json.dumps(choice)
        return self._json_call(lib().peersync_agent_resolve, conflict_id, choice.encode())

    def pair(self, code):
        return self._json_call(lib().peersync_agent_pair, code.encode())

    def cancel(self):
        _check(lib().peersync_agent_cancel(self.handle))

    def close(self):
        _check(lib().peersync_agent_close(self.handle))
