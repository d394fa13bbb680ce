# tests/python/helpers/write_values.py: writes every value of values.CASES through /usr/bin/python3's sqlite3 without the extension.
import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from values import CASES  # noqa: E402

c = sqlite3.connect(sys.argv[1])
for i, (name, value, _) in enumerate(CASES):
    c.execute("insert into v(id, name, x) values (?, ?, ?)", (i, name, value))
    c.execute("insert into u(id, name, x) values (?, ?, 'placeholder')", (i, name))
    c.execute("update u set x = ? where id = ?", (value, i))
c.commit()
