# Checked with `mypy --strict` against the installed package (py.typed): an app's use of the helpers.
import sqlite3

import peersync

conn = sqlite3.connect(":memory:")
peersync.load(conn)
status: dict = peersync.status(conn)  # type: ignore[type-arg]
for c in peersync.conflicts(conn, None):
    cid: int = c["id"]
    columns: list[str] = c["columns"]
    new_status: str = peersync.resolve(conn, cid, {"body": "x"})
path: str = peersync.loadable_path() + peersync.binary_path() + peersync.__version__
