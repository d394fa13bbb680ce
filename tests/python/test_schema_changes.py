# tests/python/test_schema_changes.py: ALTER TABLE ADD COLUMN then a write to the new column from Debian's python3 (no extension loaded) is not lost; a change naming a column the receiver lacks waits there and lands once the column is added.
import json

from conftest import connect, copy_via_sync, one, system_python, table_rows


def test_a_write_after_alter_from_a_plain_connection_reaches_the_peer(tmp_path):
    a_path, b_path = tmp_path / "a.db", tmp_path / "b.db"
    a, b = connect(a_path), connect(b_path)
    for c in (a, b):
        c.execute("select sync_init()")
        c.execute("create table notes(id text primary key, body text)")
        c.execute("select sync_track('notes')")
    a.execute("insert into notes values ('n1', 'one'), ('n2', 'two')")
    copy_via_sync(a, b)
    # Another process, the extension never loaded: ALTER, then write the new column at once.
    system_python(
        "import sqlite3,sys; c=sqlite3.connect(sys.argv[1], isolation_level=None);"
        "c.execute(\"alter table notes add column tag text default 'none'\");"
        "c.execute(\"update notes set tag = 'urgent' where id = 'n1'\");"
        "c.execute(\"insert into notes values ('n3', 'three', 'later')\")", a_path)
    # B lacks the column: A's changes naming it are logged there and wait, nothing fails.
    copy_via_sync(a, b)
    st = json.loads(one(b, "select sync_status()"))
    assert [(w["table"], w["reason"]) for w in st["schema_waiting"]] == [("notes", "unknown_column")], st
    assert one(b, "select sync_vector()") == one(a, "select sync_vector()")
    # B adds the column (also without the extension): the next sync applies what waited.
    system_python("import sqlite3,sys; sqlite3.connect(sys.argv[1], isolation_level=None)"
                  ".execute(\"alter table notes add column tag text default 'none'\")", b_path)
    res = json.loads(one(b, "select sync_apply(?)", (one(a, "select sync_changes(?)", (one(b, "select sync_vector()"),)),)))
    assert res["schema_applied"] == 2, res
    assert json.loads(one(b, "select sync_status()"))["schema_waiting"] == []
    assert table_rows(a, "notes") == table_rows(b, "notes")
    assert one(b, "select tag from notes where id = 'n1'") == "urgent"
    assert one(b, "select tag from notes where id = 'n2'") == "none"
    assert json.loads(one(b, "select sync_verify()"))["ok"]
