// Runs in the temp npm project where the tarball is installed: loads peersync into one host
// (argv[2]: better-sqlite3 or node:sqlite), makes a conflict between two databases, settles it
// through the package's helpers, and prints what it saw as JSON.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const peersync = require('peersync');

const host = process.argv[2];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'peersync-dist-'));
const out = { version: peersync.version, loadablePath: peersync.loadablePath(), warnings: [] };
process.on('warning', (w) => out.warnings.push({ name: w.name, code: w.code, message: w.message }));

function open(name) {
  const file = path.join(tmp, name + '.db');
  let db;
  if (host === 'better-sqlite3') {
    const Database = require('better-sqlite3');
    db = new Database(file);
  } else {
    const { DatabaseSync } = require('node:sqlite');
    db = new DatabaseSync(file, { allowExtension: true });
  }
  peersync.load(db);
  return db;
}
const one = (db, sql, ...p) => Object.values(db.prepare(sql).get(...p))[0];

const a = open('a');
const b = open('b');
out.sync_version = one(a, 'select sync_version()');
try {
  one(a, 'select load_extension(?)', peersync.loadablePath());
  out.load_extension_after = 'allowed';
} catch (e) {
  out.load_extension_after = e.message;
}
for (const db of [a, b]) {
  one(db, 'select sync_init()');
  db.exec('create table notes(id text primary key, body text)');
}
a.exec("insert into notes values ('n1', 'first')");
one(a, "select sync_track('notes', 'manual')");
one(b, "select sync_track('notes')");
const send = (src, dst) => one(dst, 'select sync_apply(?)', one(src, 'select sync_changes(?)', one(dst, 'select sync_vector()')));
send(a, b);
a.exec("update notes set body = 'from a' where id = 'n1'");
b.exec("update notes set body = 'from b' where id = 'n1'");
send(a, b);
const st = peersync.status(b);
out.status = { version: st.version, sqlite_version: st.sqlite_version, sqlite_warning: st.sqlite_warning, conflicts_pending: st.conflicts_pending };
const pending = peersync.conflicts(b);
out.conflicts = pending.map(({ table_name, record_id, kind, columns, local_data, remote_data, status }) => ({ table_name, record_id, kind, columns, local_data, remote_data, status }));
out.resolved = peersync.resolve(b, pending[0].id, 'remote');
out.body_after = one(b, "select body from notes where id = 'n1'");
out.pending_after = peersync.conflicts(b).length;
out.all_after = peersync.conflicts(b, null).map((c) => c.status);
// node:sqlite opened without allowExtension: the error says how to open it
if (host === 'node:sqlite') {
  const { DatabaseSync } = require('node:sqlite');
  try {
    peersync.load(new DatabaseSync(':memory:'));
    out.without_allow = 'loaded';
  } catch (e) {
    out.without_allow = e.message;
  }
}
setImmediate(() => console.log(JSON.stringify(out))); // warnings are emitted on the next tick
