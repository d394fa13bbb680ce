# App-side bulk writes for the fault tests: a batch of inserts, updates and deletes in one transaction through Python's sqlite3 (no extension).
import sqlite3


def bulk_write(path, prefix, inserts, updates=0, deletes=0, body_size=60, rnd=None):
    """Inserts `inserts` rows `<prefix>-<i>`, then updates and deletes random earlier rows, in
    one transaction. Returns the number of captured changes (rows written)."""
    con = sqlite3.connect(path, timeout=60, isolation_level=None)
    try:
        con.execute("PRAGMA busy_timeout = 60000")
        con.execute("BEGIN IMMEDIATE")
        con.executemany("INSERT INTO notes(id, body, n) VALUES (?, ?, ?)",
                        ((f"{prefix}-{i}", f"{prefix}:{i}:" + "x" * body_size, i) for i in range(inserts)))
        n = inserts
        if updates or deletes:
            ids = [r[0] for r in con.execute("SELECT id FROM notes")]
            pick = (rnd.sample(ids, min(len(ids), updates + deletes)) if rnd else ids[:updates + deletes])
            for rid in pick[:updates]:
                n += con.execute("UPDATE notes SET body = body || '+', n = n + 1 WHERE id = ?", (rid,)).rowcount
            for rid in pick[updates:]:
                n += con.execute("DELETE FROM notes WHERE id = ?", (rid,)).rowcount
        con.execute("COMMIT")
        return n
    finally:
        con.close()
