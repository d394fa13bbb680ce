-- A runnable tour of the extension in the sqlite3 CLI:
--   sqlite3 /tmp/example.db < sql/example.sql      (from the repository root, after `make ext`)
.load ./dist/peersync
.headers on
select length(sync_init()) as device_id_length;
create table if not exists notes(id text primary key, title text, body text, stars integer);
select sync_track('notes', 'timestamp_wins') as rows_logged;
insert or replace into notes values ('n1', 'Groceries', 'milk, eggs', 3);
update notes set stars = 5 where id = 'n1';
select operation, record_id, version is not null as sealed from sync_log order by id;
select sync_seal() as sealed_now;
select id, operation, record_id, change_data, version from sync_log order by id;
select sync_verify() as verify;
select sync_status() as status;
