-- tests/sql/11_compact.sql: sync_compact from the sqlite3 CLI: a device no other trusted device has acknowledged compacts nothing; bad arguments are refused.
.load ./dist/peersync
select length(sync_init());
create table notes(id text primary key, body text);
select sync_track('notes');
insert into notes values ('n1', 'a');
update notes set body = 'b' where id = 'n1';
update notes set body = 'c' where id = 'n1';
select 'compact:', sync_compact();
select 'one step:', json_extract(sync_compact(1), '$.removed'), json_extract(sync_compact(1), '$.done');
select 'log kept:', count(*) from sync_log;
select 'status:', json_extract(sync_status(), '$.log.compacted'), json_extract(sync_status(), '$.log.anchors');
select sync_compact(-1);
select sync_compact('two');
select 'log still:', count(*) from sync_log;
select json_extract(sync_verify(), '$.ok');
