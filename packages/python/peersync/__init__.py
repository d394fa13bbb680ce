"""peersync: peer-to-peer sync for SQLite, as a loadable extension and a sidecar.

``load(conn)`` loads the bundled extension into a connection (stdlib ``sqlite3``, ``apsw``, or
a ``sqlite_utils.Database``); ``status``, ``conflicts`` and ``resolve`` wrap its SQL functions.
The bundled sidecar runs as ``peersync`` or ``python -m peersync``.
"""
from __future__ import annotations

import json
import os
import sys
import warnings
from typing import Any, Dict, List, Optional, Tuple, TypedDict, Union, cast

from ._version import __version__

__all__ = [
    "__version__",
    "PeersyncError",
    "PeersyncWarning",
    "Conflict",
    "load",
    "loadable_path",
    "binary_path",
    "status",
    "conflicts",
    "resolve",
]

_LIB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib")
_SUFFIX = {"darwin": ".dylib", "win32": ".dll"}.get(sys.platform, ".so")

#: A conflict's choice: "local", "remote", "ignore", or a row (column -> value).
Choice = Union[str, Dict[str, Any]]


class Conflict(TypedDict):
    """A row of ``sync_conflicts`` (README, "Tables"), its JSON columns parsed."""

    id: int
    table_name: str
    record_id: str
    kind: str  # "update", "delete" or "constraint"
    columns: List[str]
    open_columns: List[str]
    local_data: Optional[Dict[str, Any]]
    remote_data: Optional[Dict[str, Any]]
    local_version: Optional[int]
    remote_version: Optional[int]
    local_device_id: Optional[str]
    remote_device_id: Optional[str]
    status: str  # "pending", "resolved" or "ignored"
    resolution: Any
    created_at: str
    resolved_at: Optional[str]


class PeersyncError(Exception):
    """The extension could not be loaded into this connection (the message says why and what to do)."""


class PeersyncWarning(UserWarning):
    """The SQLite library this connection uses has a bug that matters to peersync (the message says what to do)."""


def loadable_path() -> str:
    """The bundled extension's file (``.../peersync/lib/peersync.so``), for any ``load_extension``."""
    return os.path.join(_LIB, "peersync" + _SUFFIX)


def binary_path() -> str:
    """The bundled sidecar binary (``peersync serve``, ``init``, ``pair``, ...)."""
    return os.path.join(_LIB, "peersync.exe" if sys.platform == "win32" else "peersync")


_NO_EXTENSIONS = (
    "this Python's sqlite3 module cannot load extensions (it was built without "
    "--enable-loadable-sqlite-extensions, as pyenv's and some macOS Pythons are). Fix: use a Python "
    "built with it (Debian/Ubuntu's /usr/bin/python3, Homebrew's python, or pyenv with "
    "PYTHON_CONFIGURE_OPTS=--enable-loadable-sqlite-extensions pyenv install <version>), "
    "or `pip install apsw` and pass an apsw.Connection to peersync.load"
)


def _raw(conn: Any) -> Any:
    """The DB-API or apsw connection behind ``conn`` (a sqlite-utils Database holds one as ``.conn``)."""
    inner = getattr(conn, "conn", None)
    if inner is not None and type(conn).__module__.startswith("sqlite_utils"):
        return inner
    return conn


def _one(conn: Any, sql: str, params: Tuple[Any, ...] = ()) -> Any:
    row = _raw(conn).execute(sql, params).fetchone()
    return None if row is None else row[0]


def load(conn: Any) -> None:
    """Loads the bundled extension into ``conn`` (``sqlite3.Connection``, ``apsw.Connection`` or
    ``sqlite_utils.Database``): the ``sync_*`` SQL functions. Extension loading is enabled only
    for the call (and disabled again after it). Warns (``PeersyncWarning``) when the SQLite library
    this connection uses has the WAL-reset bug. Raises ``PeersyncError`` when the host cannot load
    extensions, naming the fix."""
    raw = _raw(conn)
    path = loadable_path()
    if not os.path.exists(path):
        raise PeersyncError(f"peersync: the bundled extension is missing: {path}")
    enable = getattr(raw, "enable_load_extension", None)
    if enable is None:
        raise PeersyncError("peersync: " + _NO_EXTENSIONS)
    try:
        enable(True)
    except Exception as e:  # compiled in, but switched off (SQLITE_OMIT_LOAD_EXTENSION at runtime)
        raise PeersyncError(f"peersync: {e}; " + _NO_EXTENSIONS) from e
    try:
        raw.load_extension(path)
    except Exception as e:
        raise PeersyncError(f"peersync: loading {path} failed: {e}") from e
    finally:
        enable(False)
    warning = _one(raw, "select sync_sqlite_warning()")
    if warning:
        warnings.warn("peersync: " + warning, PeersyncWarning, stacklevel=2)


def status(conn: Any) -> Dict[str, Any]:
    """``sync_status()`` as a dict (README, SQL reference): device_id, version, sqlite_version,
    sqlite_warning, tables, log, vector, conflicts_pending, peers, links, ..."""
    return cast(Dict[str, Any], json.loads(_one(conn, "select sync_status()")))


_CONFLICT_COLUMNS = (
    "id", "table_name", "record_id", "kind", "columns", "open_columns", "local_data", "remote_data",
    "local_version", "remote_version", "local_device_id", "remote_device_id", "status",
    "resolution", "created_at", "resolved_at",
)
_JSON_COLUMNS = {"columns", "open_columns", "local_data", "remote_data", "resolution"}


def conflicts(conn: Any, status: Optional[str] = "pending") -> List[Conflict]:
    """The rows of ``sync_conflicts`` in ``status`` (``"pending"``, ``"resolved"``, ``"ignored"``,
    or ``None`` for all), oldest first, with their JSON columns parsed."""
    sql = f"select {', '.join(_CONFLICT_COLUMNS)} from sync_conflicts"
    params: Tuple[Any, ...] = ()
    if status is not None:
        sql += " where status = ?"
        params = (status,)
    out = []
    for row in _raw(conn).execute(sql + " order by id", params).fetchall():
        c = dict(zip(_CONFLICT_COLUMNS, row))
        for k in _JSON_COLUMNS:
            if isinstance(c[k], str):
                c[k] = json.loads(c[k])
        out.append(Conflict(**c))  # type: ignore[typeddict-item]
    return out


def resolve(conn: Any, conflict_id: int, choice: Choice) -> str:
    """``sync_resolve``: settles a pending conflict with ``"local"``, ``"remote"``, ``"ignore"``
    or a row (a dict of column values). Returns the conflict's new status (``"resolved"`` or
    ``"ignored"``)."""
    arg = choice if isinstance(choice, str) else json.dumps(choice)
    return cast(str, _one(conn, "select sync_resolve(?, ?)", (int(conflict_id), arg)))
