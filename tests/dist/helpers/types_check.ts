// Compiled with `tsc --noEmit --strict` against the installed package's index.d.ts.
import Database from 'better-sqlite3';
import * as peersync from 'peersync';

const db = new Database(':memory:');
peersync.load(db);
const s: peersync.Status = peersync.status(db);
const w: string | null = s.sqlite_warning;
const c: peersync.Conflict[] = peersync.conflicts(db, 'pending');
const all: peersync.Conflict[] = peersync.conflicts(db, null);
const r: 'resolved' | 'ignored' = peersync.resolve(db, 1, { body: 'x' });
const p: string = peersync.loadablePath() + peersync.binaryPath() + peersync.version;
console.log(w, c, all, r, p);
