// peersync for Node: load(db) loads the bundled extension into a better-sqlite3 or node:sqlite
// database; status, conflicts and resolve wrap its SQL functions. The sidecar is `npx peersync`.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const LIB = path.join(__dirname, 'lib');
const SUFFIX = { darwin: '.dylib', win32: '.dll' }[process.platform] || '.so';
const version = require('./package.json').version;

/** The bundled extension's file (…/peersync/lib/peersync.so). */
function loadablePath() {
  return path.join(LIB, 'peersync' + SUFFIX);
}

/** The bundled sidecar binary. */
function binaryPath() {
  return path.join(LIB, process.platform === 'win32' ? 'peersync.exe' : 'peersync');
}

/** The first column of the first row of `sql`, on better-sqlite3 or node:sqlite. */
function one(db, sql, ...params) {
  const row = db.prepare(sql).get(...params);
  return row === undefined ? undefined : Object.values(row)[0];
}

function isNodeSqlite(db) {
  return db && db.constructor && db.constructor.name === 'DatabaseSync';
}

/**
 * Loads the bundled extension into `db` (better-sqlite3 `Database`, or node:sqlite `DatabaseSync`
 * opened with `{ allowExtension: true }`). Emits a process warning (PeersyncWarning) when the SQLite
 * library that db uses has the WAL-reset bug.
 */
function load(db) {
  const file = loadablePath();
  if (!fs.existsSync(file)) throw new Error(`peersync: the bundled extension is missing: ${file}`);
  if (!db || typeof db.loadExtension !== 'function') {
    throw new Error(
      'peersync: this database object cannot load extensions: pass a better-sqlite3 Database, or a ' +
        'node:sqlite DatabaseSync (Node 22.13 or newer) opened with { allowExtension: true }'
    );
  }
  if (isNodeSqlite(db)) {
    try {
      db.enableLoadExtension(true);
    } catch (e) {
      throw new Error(
        `peersync: ${e.message}: open the database with new DatabaseSync(file, { allowExtension: true })`
      );
    }
    try {
      db.loadExtension(file);
    } finally {
      db.enableLoadExtension(false); // enabled only for this call, as the Python load() does
    }
  } else {
    db.loadExtension(file);
  }
  const warning = one(db, 'select sync_sqlite_warning()');
  if (warning) process.emitWarning('peersync: ' + warning, { type: 'PeersyncWarning', code: 'PEERSYNC_WAL_RESET' });
}

/** sync_status() parsed (README, SQL reference). */
function status(db) {
  return JSON.parse(one(db, 'select sync_status()'));
}

const CONFLICT_COLUMNS = [
  'id', 'table_name', 'record_id', 'kind', 'columns', 'open_columns', 'local_data', 'remote_data',
  'local_version', 'remote_version', 'local_device_id', 'remote_device_id', 'status', 'resolution',
  'created_at', 'resolved_at',
];
const JSON_COLUMNS = new Set(['columns', 'open_columns', 'local_data', 'remote_data', 'resolution']);

/** The rows of sync_conflicts in `state` ('pending' by default; null for all), oldest first, JSON columns parsed. */
function conflicts(db, state = 'pending') {
  let sql = `select ${CONFLICT_COLUMNS.join(', ')} from sync_conflicts`;
  const params = [];
  if (state !== null && state !== undefined) {
    sql += ' where status = ?';
    params.push(state);
  }
  return db
    .prepare(sql + ' order by id')
    .all(...params)
    .map((row) => {
      const c = { ...row };
      for (const k of JSON_COLUMNS) if (typeof c[k] === 'string') c[k] = JSON.parse(c[k]);
      return c;
    });
}

/** sync_resolve: settles a pending conflict with 'local', 'remote', 'ignore' or a row; returns its new status. */
function resolve(db, id, choice) {
  const arg = typeof choice === 'string' ? choice : JSON.stringify(choice);
  // a JS number binds as a REAL in both drivers: the id must arrive as an INTEGER
  return one(db, 'select sync_resolve(?, ?)', BigInt(id), arg);
}

module.exports = { version, load, loadablePath, binaryPath, status, conflicts, resolve };
