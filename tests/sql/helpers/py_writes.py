# tests/sql/helpers/py_writes.py: writes made through Debian's python3 sqlite3 module, which never loads the extension.
import sqlite3
import sys

c = sqlite3.connect(sys.argv[1])
c.execute("insert into loans values ('L4', 'Dee', 42, 0.5, x'ff')")
c.execute("update loans set amount = amount + 1 where id = 'L4'")
c.commit()
c.close()
