-- tests/sql/09_panic.sql: a panic inside a function is a SQL error naming the function; the CLI survives and keeps working.
-- (sync_debug_panic exists only in the test build of the extension, `make ext-test`.)
.load ./test-ext/peersync
select sync_init() is not null;
create table t(id text primary key, v);
select sync_track('t');
insert into t values ('a', 1);
select sync_debug_panic();
select 'still alive after a panic:', 1 + 1;
begin;
insert into t values ('b', 2);
select sync_debug_panic();
insert into t values ('c', 3);
commit;
select sync_debug_panic();
select sync_debug_panic();
select 'rows:', count(*) from t;
select 'sealed:', sync_seal();
select operation, record_id, change_data from sync_log order by id;
select sync_verify();
select 'version still answers:', length(sync_version()) > 0;
