// tests/node/peersync.test.mjs: the extension in Node's better-sqlite3@12 (newer SQLite): session, exact values, trusted_schema, panic, errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const Database = require('better-sqlite3');
const here = path.dirname(fileURLToPath(import.meta.url));
const EXT = path.resolve(here, '../../dist/peersync');
// The test build (`make ext-test`): the same functions plus sync_debug_panic(), which panics.
const TEST_EXT = path.resolve(here, '../../target/test-ext/peersync');

function tmpDb(name = 'test.db') {
  return path.join(mkdtempSync(path.join(tmpdir(), 'peersync-node-')), name);
}

function open(file, { init = true, ext = EXT } = {}) {
  const db = new Database(file);
  db.defaultSafeIntegers(true); // integers as BigInt: exact 64-bit values, and ints told apart from reals
  db.loadExtension(ext);
  if (init) db.prepare('select sync_init()').get();
  return db;
}

const one = (db, sql, ...params) => db.prepare(sql).pluck().get(...params);

// ---- peersync's JSON value encoding, parsed keeping number tokens exact (JSON.parse would lose int64s
// and the int/real distinction). Ints: JSON ints; reals: '.' or exponent; blobs {"$blob": hex}; {"$real": "inf"}.
function parseJson(text) {
  let i = 0;
  const ws = () => { while (/\s/.test(text[i])) i++; };
  const value = () => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++; const o = {}; ws();
      if (text[i] === '}') { i++; return o; }
      for (;;) {
        ws(); const k = value(); ws(); assert.equal(text[i++], ':'); o[k] = value(); ws();
        if (text[i] === ',') { i++; continue; }
        assert.equal(text[i++], '}'); return o;
      }
    }
    if (c === '[') {
      i++; const a = []; ws();
      if (text[i] === ']') { i++; return a; }
      for (;;) {
        a.push(value()); ws();
        if (text[i] === ',') { i++; continue; }
        assert.equal(text[i++], ']'); return a;
      }
    }
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const s = JSON.parse(text.slice(i, j + 1)); i = j + 1; return s;
    }
    for (const [lit, v] of [['null', null], ['true', true], ['false', false]]) {
      if (text.startsWith(lit, i)) { i += lit.length; return v; }
    }
    const m = /^-?\d+(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i));
    assert.ok(m, `bad JSON at ${i}: ${text.slice(i, i + 20)}`);
    i += m[0].length;
    return { num: m[0] };
  };
  const v = value(); ws();
  assert.equal(i, text.length, 'trailing characters in JSON');
  return v;
}

function decode(j) {
  if (j === null || typeof j === 'string') return j;
  if (typeof j === 'boolean') throw new Error('booleans are not SQLite values');
  if ('num' in j) return /[.eE]/.test(j.num) ? Number(j.num) : BigInt(j.num);
  if ('$blob' in j) { assert.equal(j.$blob, j.$blob.toLowerCase()); return Buffer.from(j.$blob, 'hex'); }
  if ('$real' in j) return { inf: Infinity, '-inf': -Infinity }[j.$real];
  throw new Error(`not a value encoding: ${JSON.stringify(j)}`);
}

const decodeRow = (text) => Object.fromEntries(Object.entries(parseJson(text)).map(([k, v]) => [k, decode(v)]));

function bits(x) {
  const b = Buffer.alloc(8); b.writeDoubleBE(x); return b.toString('hex');
}

function show(v) {
  if (v === null) return 'null';
  if (typeof v === 'bigint') return `integer:${v}`;
  if (typeof v === 'number') return `real:${bits(v)}`;
  if (typeof v === 'string') return `text:${JSON.stringify(v)}`;
  if (Buffer.isBuffer(v)) return `blob:${v.toString('hex')}`;
  return `?${v}`;
}

// (name, SQL expression). Written as SQL so the stored type is exactly what SQLite makes of it.
const VALUES = [
  ['null', 'NULL'], ['zero', '0'], ['minus_one', '-1'],
  ['int_max', '9223372036854775807'], ['int_min', '-9223372036854775808'],
  ['tenth', '0.1'], ['tenth_plus_fifth', '0.1 + 0.2'], ['denormal', '5e-324'], ['big', '1e308'],
  ['neg_zero', '-0.0'], ['three', '3.0'], ['nan', '0.0 / 0.0'], ['inf', '9e999'], ['neg_inf', '-9e999'],
  ['empty_text', "''"], ['unicode', "'🎉 漢字 e' || char(769) || ' שלום'"], ['quotes', `'it''s "q" \\ \\\\'`],
  ['controls', 'char(10, 9, 13, 1, 0, 65)'], ['empty_blob', "x''"], ['blob', "x'00ff0a7f80'"],
];

test('loads in better-sqlite3 with a newer SQLite', () => {
  const db = open(tmpDb());
  const v = one(db, 'select sqlite_version()');
  const [maj, min] = v.split('.').map(Number);
  assert.ok(maj === 3 && min > 40, `better-sqlite3@12 should bundle SQLite newer than 3.40, has ${v}`);
  assert.match(one(db, 'select sync_init()'), /^[0-9a-f]{32}$/);
  assert.ok(one(db, 'select sync_version()').length > 0);
});

test("the issue's session, plus writes from the stock sqlite3 CLI, sealed and verified", () => {
  const file = tmpDb();
  const db = open(file);
  db.exec('create table loans(id text primary key, borrower text, amount integer, rate real, doc blob)');
  assert.equal(one(db, "select sync_track('loans')"), 0n);
  db.exec("insert into loans values ('L1', 'Ada', 250000, 3.5, x'00ff')");
  db.exec("update loans set amount = 300000 where id = 'L1'");
  db.exec("delete from loans where id = 'L1'");
  assert.deepEqual(
    db.prepare('select operation, record_id, version, hash is not null as h from sync_log order by id').raw().all(),
    [['INSERT', "'L1'", null, 0n], ['UPDATE', "'L1'", null, 0n], ['DELETE', "'L1'", null, 0n]],
  );
  execFileSync('sqlite3', [file], { input: "insert into loans values ('L2', 'Bob', 7, 0.1 + 0.2, x'');\n" });
  assert.equal(one(db, 'select sync_seal()'), 4n);
  const log = db.prepare('select operation, record_id, version, change_data from sync_log order by id').raw().all();
  assert.deepEqual(log.map((r) => r[2]), [1n, 2n, 3n, 4n]);
  assert.deepEqual(decodeRow(log[0][3]), { id: 'L1', borrower: 'Ada', amount: 250000n, rate: 3.5, doc: Buffer.from([0, 255]) });
  assert.deepEqual(decodeRow(log[1][3]), { amount: 300000n });
  assert.deepEqual(decodeRow(log[3][3]), { id: 'L2', borrower: 'Bob', amount: 7n, rate: 0.1 + 0.2, doc: Buffer.alloc(0) });
  const v = JSON.parse(one(db, 'select sync_verify()'));
  assert.equal(v.ok, true);
  assert.equal(v.checked, 4);
  assert.deepEqual(v.failed, []);
  for (const id of [1n, 2n, 3n, 4n]) {
    assert.equal(one(db, 'select sync_hash(?)', id), one(db, 'select hash from sync_log where id = ?', id));
  }
});

test('values round-trip exactly through change_data and sync_apply', () => {
  const a = open(tmpDb('a.db'));
  a.exec('create table v(id integer primary key, name text, x); create table u(id integer primary key, name text, x)');
  a.prepare("select sync_track('v')").get();
  a.prepare("select sync_track('u')").get();
  VALUES.forEach(([name, expr], i) => {
    a.exec(`insert into v values (${i}, '${name}', ${expr})`);
    a.exec(`insert into u values (${i}, '${name}', 'placeholder')`);
    a.exec(`update u set x = ${expr} where id = ${i}`);
  });
  // bound parameters too: BigInt binds as INTEGER, Number as REAL, Buffer as BLOB
  const bound = [2n ** 63n - 1n, -(2n ** 63n), 0.1 + 0.2, -0, 5e-324, 'τ', Buffer.from([1, 2, 3])];
  bound.forEach((x, k) => a.prepare('insert into v values (?, ?, ?)').run(BigInt(100 + k), `bound${k}`, x));
  const n = VALUES.length;
  assert.equal(one(a, 'select sync_seal()'), BigInt(3 * n + bound.length));
  const held = new Map(a.prepare('select id, x from v').raw().all().map(([id, x]) => [id, x]));
  const problems = [];
  for (const [rid, op, data] of a.prepare("select record_id, operation, change_data from sync_log where operation in ('INSERT', 'UPDATE') and (table_name = 'v' or operation = 'UPDATE') order by id").raw().all()) {
    const x = decodeRow(data).x;
    const want = held.get(BigInt(rid));
    if (show(x) !== show(want)) problems.push(`${op} ${rid}: logged ${show(x)}, table holds ${show(want)}`);
  }
  assert.deepEqual(problems, []);
  assert.equal(show(held.get(9n)), `real:${bits(-0)}`, '-0.0 in an untyped column stays -0.0');
  assert.equal(held.get(11n), null, 'NaN is stored as NULL');
  assert.equal(show(held.get(103n)), `real:${bits(-0)}`);

  const b = open(tmpDb('b.db'));
  b.exec('create table v(id integer primary key, name text, x); create table u(id integer primary key, name text, x)');
  b.prepare("select sync_track('v')").get();
  b.prepare("select sync_track('u')").get();
  const res = JSON.parse(one(b, 'select sync_apply(?)', one(a, "select sync_changes('{}')")));
  assert.equal(res.accepted, 3 * n + bound.length);
  assert.deepEqual(res.conflicts, []);
  for (const t of ['v', 'u']) {
    const rows = (db) => db.prepare(`select id, typeof(x) t, x from ${t} order by id`).raw().all().map(([id, ty, x]) => `${id}|${ty}|${show(x)}`);
    assert.deepEqual(rows(b), rows(a), `table ${t} differs after sync_apply`);
  }
  assert.equal(one(b, 'select count(*) from sync_log where device_id = sync_init()'), 0n);
});

test('writes keep working and are captured with trusted_schema=OFF', () => {
  const file = tmpDb();
  const db = open(file);
  db.pragma('trusted_schema = OFF');
  assert.equal(db.pragma('trusted_schema', { simple: true }), 0n);
  db.exec('create table t(id text primary key, r real, u text unique)');
  db.prepare("select sync_track('t')").get();
  db.exec("insert into t values ('a', 0.1 + 0.2, 'x')");
  db.exec("update t set r = 1e308 where id = 'a'");
  db.exec("insert or replace into t values ('b', 1.5, 'x')");
  const plain = new Database(file); // a connection of this process that never loaded the extension
  plain.pragma('trusted_schema = OFF');
  plain.exec("insert into t values ('c', 5e-324, 'y')");
  plain.close();
  assert.equal(one(db, 'select sync_seal()'), 5n);
  const ops = db.prepare('select operation, record_id from sync_log order by id').raw().all();
  assert.deepEqual(ops, [['INSERT', "'a'"], ['UPDATE', "'a'"], ['DELETE', "'a'"], ['INSERT', "'b'"], ['INSERT', "'c'"]]);
  assert.deepEqual(decodeRow(one(db, 'select change_data from sync_log where id = 2')), { r: 1e308 });
});

test('a panic is an SQL error and the host keeps working', () => {
  assert.throws(() => open(tmpDb()).prepare('select sync_debug_panic()').get(), /no such function: sync_debug_panic/);
  const db = open(tmpDb(), { ext: TEST_EXT });
  for (let k = 0; k < 3; k++) {
    assert.throws(() => db.prepare('select sync_debug_panic()').get(), (e) => {
      assert.match(e.message, /^sync_debug_panic/);
      assert.match(e.message, /panic/);
      return true;
    });
  }
  assert.equal(one(db, 'select 40 + 2'), 42n);
  db.exec('create table t(id text primary key)');
  db.prepare("select sync_track('t')").get();
  db.exec("insert into t values ('a')");
  assert.equal(one(db, 'select sync_seal()'), 1n);
});

test('bad input: errors name the function, nothing changes', () => {
  const db = open(tmpDb());
  db.exec('create table nopk(a, b); create view vw as select 1; create virtual table ft using fts5(x)');
  const snap = () => JSON.stringify(db.prepare('select type, name, sql from sqlite_master order by name').raw().all())
    + one(db, 'select count(*) from sync_log') + one(db, 'select count(*) from sync_tables');
  const before = snap();
  for (const [fn, sql, word] of [
    ['sync_track', "select sync_track('nope')", 'nope'],
    ['sync_track', "select sync_track('nopk')", 'primary key'],
    ['sync_track', "select sync_track('vw')", 'view'],
    ['sync_track', "select sync_track('ft')", 'virtual'],
    ['sync_track', "select sync_track('sync_log')", 'sync_log'],
    ['sync_track', "select sync_track('nopk', 'bogus')", 'strategy'],
    ['sync_track', 'select sync_track(1)', 'text'],
    ['sync_hash', 'select sync_hash(12345)', '12345'],
    ['sync_apply', "select sync_apply('{not json')", ''],
    ['sync_resolve', "select sync_resolve(777, 'local')", '777'],
    ['sync_track', 'select sync_track()', 'argument'],
  ]) {
    assert.throws(() => db.prepare(sql).get(), (e) => {
      assert.ok(e.message.includes(fn), `${sql}: ${e.message}`);
      assert.ok(e.message.toLowerCase().includes(word), `${sql}: ${e.message}`);
      return true;
    });
  }
  assert.equal(snap(), before);
});
