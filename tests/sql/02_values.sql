-- tests/sql/02_values.sql: every kind of SQLite value written by the 3.40.1 CLI round-trips exactly through change_data and sync_apply.
.load ./dist/peersync
select sync_init() is not null;
-- untyped column: keeps every value as written
create table v(id integer primary key, x);
-- typed columns: affinity may convert (e.g. -0.0 in a REAL column); the log must hold what the table holds
create table typed(id integer primary key, i integer, r real, t text, b blob, n numeric);
-- the same values arriving through UPDATEs
create table u(id integer primary key, x);
select sync_track('v'), sync_track('typed'), sync_track('u');
insert into v values
  (1, NULL), (2, 0), (3, -1), (4, 9223372036854775807), (5, -9223372036854775808),
  (6, 0.1), (7, 0.1 + 0.2), (8, 5e-324), (9, 1e308), (10, -0.0), (11, 0.0 / 0.0),
  (12, ''), (13, '🎉 漢字 e' || char(769) || ' ñ'), (14, 'it''s "quoted" \ back\slash \\ \n'),
  (15, x''), (16, x'00ff0a7f80'), (17, 9e999), (18, -9e999), (19, 3.0), (20, -2.5e-10),
  (21, char(10, 9, 13, 1)), (22, 'null'), (23, '{"$blob":"00"}'), (24, 1.7976931348623157e308);
insert into typed values
  (1, 1, -0.0, 'x', x'01', 0.1 + 0.2),
  (2, 2.0, 1, 2, 'b', '12'),
  (3, '3', '0.5', 3.25, NULL, '1e3'),
  (4, 9223372036854775807, 5e-324, '', x'', -0.0),
  (5, 0.1, 0.1 + 0.2, '🎉', '🎉', 'x');
insert into u select id, 'placeholder' from v;
update u set x = (select x from v where v.id = u.id);
select 'sealed:', sync_seal();
select '-- table: id, typeof, exact value';
select id, typeof(x), case typeof(x) when 'real' then hex(ieee754_to_blob(x)) else quote(x) end from v order by id;
select '-- log (INSERT):';
select record_id, change_data from sync_log where table_name = 'v' order by id;
select '-- log (UPDATE):';
select record_id, operation, change_data from sync_log where table_name = 'u' and operation = 'UPDATE' order by id;
select '-- typed table:';
select id, typeof(i), quote(i), typeof(r), hex(ieee754_to_blob(r)), typeof(t), quote(t), typeof(b), quote(b), typeof(n), quote(n) from typed order by id;
select record_id, change_data from sync_log where table_name = 'typed' order by id;
.once batch.json
select sync_changes('{}');
select '-- apply to a second database';
.open second.db
.load ./dist/peersync
select length(sync_init());
create table v(id integer primary key, x);
create table typed(id integer primary key, i integer, r real, t text, b blob, n numeric);
create table u(id integer primary key, x);
select sync_track('v'), sync_track('typed'), sync_track('u');
select json_extract(r, '$.accepted'), json_extract(r, '$.duplicates'), json_array_length(r, '$.conflicts') from (select sync_apply(cast(readfile('batch.json') as text)) as r);
attach 'test.db' as a;
-- exact comparison: type and bits (ieee754_to_blob tells -0.0 from 0.0)
create temp view cmp(name, id, k) as
  select 'v', id, typeof(x) || ':' || case typeof(x) when 'real' then hex(ieee754_to_blob(x)) else quote(x) end from main.v
  union all select 'u', id, typeof(x) || ':' || case typeof(x) when 'real' then hex(ieee754_to_blob(x)) else quote(x) end from main.u
  union all select 'typed', id, quote(i) || typeof(i) || hex(ieee754_to_blob(r)) || typeof(r) || quote(t) || typeof(t) || quote(b) || typeof(b) || quote(n) || typeof(n) from main.typed;
create temp view orig(name, id, k) as
  select 'v', id, typeof(x) || ':' || case typeof(x) when 'real' then hex(ieee754_to_blob(x)) else quote(x) end from a.v
  union all select 'u', id, typeof(x) || ':' || case typeof(x) when 'real' then hex(ieee754_to_blob(x)) else quote(x) end from a.u
  union all select 'typed', id, quote(i) || typeof(i) || hex(ieee754_to_blob(r)) || typeof(r) || quote(t) || typeof(t) || quote(b) || typeof(b) || quote(n) || typeof(n) from a.typed;
select 'rows in second db:', count(*) from cmp;
select 'rows that differ (second minus first):', count(*) from (select * from cmp except select * from orig);
select 'rows that differ (first minus second):', count(*) from (select * from orig except select * from cmp);
select 'applied changes are not re-captured as local ones:', count(*) from main.sync_log where device_id = sync_init();
select 'second db verifies:', json_extract(sync_verify(), '$.ok');
