-- tests/sql/10_upgrade.sql: a database whose sync tables an earlier build made (format 1: an index on sync_log(device_id, version), no sync_runs) is upgraded on its next use through the extension, and syncs on.
.load ./dist/peersync
select sync_init() is not null;
create table t(id integer primary key, v text);
select sync_track('t');
insert into t values (1, 'one'), (2, 'two'), (3, 'three');
select 'sealed:', sync_seal();
select '-- make it look like format 1';
drop table sync_runs;
create unique index sync_log_origin on sync_log(device_id, version) where version is not null;
update sync_state set value = 1 where key = 'format';
select '-- its next use upgrades it';
select 'changes:', json_array_length(sync_changes('{}'), '$.changes');
select 'format:', value from sync_state where key = 'format';
select 'origin index left:', count(*) from sqlite_master where name = 'sync_log_origin';
select 'runs:', version, id, count from sync_runs;
select '-- and it goes on';
insert into t values (4, 'four');
update t set v = 'ONE' where id = 1;
select 'sealed:', sync_seal();
select 'runs:', version, id, count from sync_runs;
select 'verify:', sync_verify();
select 'changes after version 3:', json_array_length(sync_changes(json_object((select value from sync_state where key = 'device_id'), 3)), '$.changes');
select '-- a database from a newer build is refused, unchanged';
update sync_state set value = 9 where key = 'format';
select sync_changes('{}');
select 'format:', value from sync_state where key = 'format';
