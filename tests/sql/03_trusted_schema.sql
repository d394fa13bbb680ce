-- tests/sql/03_trusted_schema.sql: with PRAGMA trusted_schema=OFF, writes succeed and are captured (CLI with and without the extension, python).
pragma trusted_schema = OFF;
pragma trusted_schema;
.load ./dist/peersync
select sync_init() is not null;
create table items(id text primary key, qty integer, price real, note text, data blob);
select 'track under trusted_schema=OFF:', sync_track('items');
insert into items values ('a', 1, 0.1 + 0.2, 'it''s', x'00');
insert into items values ('b', 2, 1e308, '漢字', x'');
update items set qty = qty + 10, price = 5e-324 where id = 'a';
delete from items where id = 'b';
select 'writes from this connection logged:', count(*) from sync_log;
.shell sqlite3 -cmd "pragma trusted_schema=OFF" test.db < t/helpers/trusted_writes.sql
.shell /usr/bin/python3 t/helpers/py_trusted_writes.py test.db
select 'after stock CLI and python writes:', count(*) from sync_log;
select 'sealed:', sync_seal();
select id, operation, record_id, change_data from sync_log order by id;
select id, qty, quote(price), note, quote(data) from items order by id;
select sync_verify();
