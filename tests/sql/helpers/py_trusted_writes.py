# tests/sql/helpers/py_trusted_writes.py: python sqlite3 (no extension) writes with trusted_schema=OFF; prints a marker.
import sqlite3
import sys

c = sqlite3.connect(sys.argv[1])
c.execute("pragma trusted_schema=OFF")
assert c.execute("pragma trusted_schema").fetchone()[0] == 0
c.execute("insert into items values ('d', 4, 0.1, 'python', x'0102')")
c.execute("delete from items where id = 'c'")
c.commit()
print("python wrote with trusted_schema=OFF")
