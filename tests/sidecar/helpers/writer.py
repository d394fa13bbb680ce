# An app writing to its database while sidecars sync it: random inserts, updates, deletes through
# Python's sqlite3 (no extension loaded). Exits 1 if any write failed (they must never fail).
# usage: /usr/bin/python3 writer.py DB SEED COUNT [SLEEP_MS]
import random
import sqlite3
import sys
import time

db, seed, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
pause = int(sys.argv[4]) / 1000 if len(sys.argv) > 4 else 0.005
rnd = random.Random(seed)
con = sqlite3.connect(db, timeout=30, isolation_level=None)
failures = 0
for i in range(count):
    key = f"k{rnd.randrange(40)}" if rnd.random() < 0.5 else f"s{seed}-{i}"
    op = rnd.random()
    try:
        if op < 0.55:
            con.execute("INSERT OR REPLACE INTO notes(id, body, n) VALUES (?, ?, ?)", (key, f"w{seed}-{i}", i))
        elif op < 0.85:
            con.execute("UPDATE notes SET body = ?, n = n + 1 WHERE id = ?", (f"u{seed}-{i}", key))
        else:
            con.execute("DELETE FROM notes WHERE id = ?", (key,))
    except sqlite3.Error as e:
        failures += 1
        print(f"write {i} failed: {e}", file=sys.stderr)
    time.sleep(pause * rnd.random() * 2)
con.close()
print(f"{count - failures} writes, {failures} failed")
sys.exit(1 if failures else 0)
