-- tests/sql/01_session.sql: the issue's user session, then writes from clients that never loaded the extension, seal and verify.
.load ./dist/peersync
select 'device id is 32 lowercase hex:', length(sync_init()) = 32 and sync_init() not glob '*[^0-9a-f]*';
select 'sync_init is idempotent:', sync_init() = sync_init();
create table loans(id text primary key, borrower text, amount integer, rate real, doc blob);
select 'track:', sync_track('loans');
insert into loans values ('L1', 'Ada', 250000, 3.5, x'00ff');
update loans set amount = 300000 where id = 'L1';
delete from loans where id = 'L1';
select operation, record_id, version, hash is not null from sync_log;
select '-- stock sqlite3 CLI, no .load';
.shell sqlite3 test.db < t/helpers/stock_writes.sql
select '-- /usr/bin/python3 sqlite3 module, no extension';
.shell /usr/bin/python3 t/helpers/py_writes.py test.db
select id, operation, record_id, version, hash is not null from sync_log order by id;
select 'sealed:', sync_seal();
select 'sealing again seals nothing:', sync_seal();
select id, operation, record_id, version, hash is not null, change_data from sync_log order by id;
select 'one origin, ours:', count(distinct device_id), min(device_id) = sync_init() from sync_log;
select 'versions 1..n:', count(*), min(version), max(version), count(distinct version) from sync_log;
select 'timestamps increase:', count(*) from sync_log a join sync_log b on b.id = a.id + 1 where b.timestamp <= a.timestamp;
select 'sync_hash matches stored hash:', count(*) from sync_log where sync_hash(id) = hash;
select 'vector:', sync_vector() = json_object(sync_init(), (select max(version) from sync_log));
select sync_verify();
select 'loans now:';
select id, borrower, amount, rate, quote(doc) from loans order by id;
select '-- tampering with a sealed row is detected';
update sync_log set change_data = '{"amount":1}' where id = 2;
select json_extract(sync_verify(), '$.ok'), json_extract(sync_verify(), '$.checked'), json_extract(sync_verify(), '$.failed');
