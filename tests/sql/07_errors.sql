-- tests/sql/07_errors.sql: bad input gives a SQL error naming the function, and nothing changes (schema, log, tables, state).
.load ./dist/peersync
create table early(id text primary key, v);
insert into early values ('e', 1);
create temp table snap0 as select type, name, tbl_name, sql from sqlite_master;
select '-- before sync_init';
select sync_track('early');
select sync_seal();
select sync_verify();
select sync_hash(1);
select sync_untrack('early');
select 'schema unchanged:', (select count(*) from (select type, name, tbl_name, sql from sqlite_master except select * from snap0)) + (select count(*) from (select * from snap0 except select type, name, tbl_name, sql from sqlite_master));
select '-- setup';
select sync_init() is not null;
create table t(id text primary key, v);
create table t2(id text primary key, v);
create table nopk(a, b);
create table rowidonly(a integer, b text unique);
create view vw as select * from t;
create virtual table ft using fts5(body);
create virtual table rt using rtree(id, x0, x1);
create table seq(id integer primary key autoincrement, v);
insert into seq(v) values (1);
create table st(id integer primary key, v); create index st_v on st(v); insert into st values (1, 1); analyze;
select sync_track('t');
insert into t values ('a', 1);
select sync_seal();
insert into t values ('b', 2);
create temp table snap_master as select type, name, tbl_name, sql from sqlite_master;
create temp table snap_log as select * from sync_log;
create temp table snap_tables as select * from sync_tables;
create temp table snap_state as select * from sync_state;
create temp table snap_devices as select * from sync_devices;
create temp table snap_t as select * from t;
create temp view changes_seen(n) as select
    (select count(*) from (select type, name, tbl_name, sql from sqlite_master except select * from snap_master))
  + (select count(*) from (select * from snap_master except select type, name, tbl_name, sql from sqlite_master))
  + (select count(*) from (select * from sync_log except select * from snap_log))
  + (select count(*) from (select * from snap_log except select * from sync_log))
  + (select count(*) from (select * from sync_tables except select * from snap_tables))
  + (select count(*) from (select * from snap_tables except select * from sync_tables))
  + (select count(*) from (select * from sync_state except select * from snap_state))
  + (select count(*) from (select * from snap_state except select * from sync_state))
  + (select count(*) from (select * from sync_devices except select * from snap_devices))
  + (select count(*) from (select * from snap_devices except select * from sync_devices))
  + (select count(*) from (select * from t except select * from snap_t))
  + (select count(*) from (select * from snap_t except select * from t));
select 'baseline, changes seen:', n from changes_seen;
select '-- sync_track: tables that cannot be tracked';
select sync_track('nope');
select sync_track('nopk');
select sync_track('rowidonly');
select sync_track('vw');
select sync_track('ft');
select sync_track('rt');
select sync_track('sync_log');
select sync_track('SYNC_LOG');
select sync_track('sync_devices');
select sync_track('sync_conflicts');
select sync_track('sync_tables');
select sync_track('sync_state');
select sync_track('sync_meta');
select sync_track('sync_vector');
select sync_track('sync_stage_1');
select sync_track('sqlite_master');
select sync_track('sqlite_schema');
select sync_track('sqlite_sequence');
select sync_track('sqlite_stat1');
select 'changes seen:', n from changes_seen;
select '-- unknown strategy';
select sync_track('t2', 'bogus');
select sync_track('t2', '');
select sync_track('t', 'newest');
select 'changes seen:', n from changes_seen;
select '-- wrong argument type';
select sync_track(1);
select sync_track(NULL);
select sync_track(x'74');
select sync_track('t2', 1);
select sync_track('t2', NULL);
select sync_untrack(5);
select sync_hash('1');
select sync_hash(NULL);
select sync_hash(1.5);
select sync_changes(5);
select sync_changes(NULL);
select sync_changes('{}', 'x');
select sync_apply(5);
select sync_apply(NULL);
select sync_resolve('x', 'local');
select sync_resolve(1, 5);
select 'changes seen:', n from changes_seen;
select '-- wrong argument count (SQLite names the function)';
select sync_init(1);
select sync_track();
select sync_track('t', 'manual', 3);
select sync_untrack();
select sync_hash();
select sync_seal(1);
select sync_verify(1);
select sync_vector(1);
select sync_changes();
select sync_changes('{}', 1, 2);
select sync_apply();
select sync_resolve(1);
select sync_status(1);
select sync_version(1);
select 'changes seen:', n from changes_seen;
select '-- bad values';
select sync_untrack('nope');
select sync_untrack('t2');
select sync_hash(999);
select sync_hash(-1);
select sync_hash((select max(id) from sync_log));
select sync_apply('not json');
select sync_apply('');
select sync_apply('{}');
select sync_apply('[]');
select sync_apply('{"format":1}');
select sync_apply('{"format":1,"device_id":"x","changes":[{"table_name":"t"}],"has_more":false,"vector":{},"signatures":[]}');
select sync_changes('not json');
select sync_changes('[1]');
select sync_changes('{"abc":"x"}');
select sync_changes('{"0123456789abcdef0123456789abcdef":-1}');
select sync_resolve(999, 'local');
select sync_resolve(999, 'bogus');
select 'changes seen:', n from changes_seen;
select '-- the connection still works and the unsealed write is still there';
select 'unsealed:', count(*) from sync_log where version is null;
select 'sealed:', sync_seal();
select sync_verify();
select '-- sync_debug_panic is only in test builds:';
select sync_debug_panic();
