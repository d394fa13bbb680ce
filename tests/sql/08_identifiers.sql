-- tests/sql/08_identifiers.sql: hostile table/column names are tracked, logged and replayed to a second database.
.load ./dist/peersync
select sync_init() is not null;
create table "select"("from" text primary key, "where" int, "group" text);
create table "with space"("a column" text, "b ""quoted"" col" int, primary key("a column", "b ""quoted"" col"));
create table "it's"("o'brien" text primary key, "x'y" text);
create table "[brackets]"("[id]" integer primary key, "]odd[" text, "`tick`" text);
create table "日本語テーブル"("キー" text primary key, "値" text, "émoji 🎉" text);
create table "sync_logx"(id text primary key, "sync_log" text);
create table "a.b"("c.d" text primary key, "-- not a comment" text, ";drop table x;" text);
create table "UPPER"("Id" text primary key, "Value" text);
select sync_track('select'), sync_track('with space'), sync_track('it''s'), sync_track('[brackets]'), sync_track('日本語テーブル'), sync_track('sync_logx'), sync_track('a.b'), sync_track('UPPER');
insert into "select" values ('f1', 1, 'g1'), ('f,2', 2, 'g2');
update "select" set "where" = 10 where "from" = 'f1';
update "select" set "from" = 'f3' where "from" = 'f,2';
insert into "with space" values ('a b', 1), ('a''b', 2);
update "with space" set "b ""quoted"" col" = 3 where "a column" = 'a b';
delete from "with space" where "a column" = 'a''b';
insert into "it's" values ('O''Brien', 'x''y''z');
update "it's" set "x'y" = 'changed' where "o'brien" = 'O''Brien';
insert into "[brackets]" values (1, ']]', '``'), (2, '[', '`');
delete from "[brackets]" where "[id]" = 2;
insert into "日本語テーブル" values ('鍵', '値1', '🎉'), ('e' || char(769), 'combining', 'x');
update "日本語テーブル" set "émoji 🎉" = '🎊' where "キー" = '鍵';
insert into "sync_logx" values ('s', 'not the log');
insert into "a.b" values ('c', '--', ';');
insert into "UPPER" values ('u', 'v');
update "upper" set "value" = 'w';
select 'sealed:', sync_seal();
select table_name, operation, record_id, change_data from sync_log order by id;
select 'triggers:', count(*) from sqlite_master where type = 'trigger';
select sync_verify();
.once batch.json
select sync_changes('{}');
.open second.db
.load ./dist/peersync
select sync_init() is not null;
create table "select"("from" text primary key, "where" int, "group" text);
create table "with space"("a column" text, "b ""quoted"" col" int, primary key("a column", "b ""quoted"" col"));
create table "it's"("o'brien" text primary key, "x'y" text);
create table "[brackets]"("[id]" integer primary key, "]odd[" text, "`tick`" text);
create table "日本語テーブル"("キー" text primary key, "値" text, "émoji 🎉" text);
create table "sync_logx"(id text primary key, "sync_log" text);
create table "a.b"("c.d" text primary key, "-- not a comment" text, ";drop table x;" text);
create table "UPPER"("Id" text primary key, "Value" text);
select sync_track('select'), sync_track('with space'), sync_track('it''s'), sync_track('[brackets]'), sync_track('日本語テーブル'), sync_track('sync_logx'), sync_track('a.b'), sync_track('UPPER');
select json_extract(r, '$.accepted'), json_array_length(r, '$.conflicts') from (select sync_apply(cast(readfile('batch.json') as text)) as r);
attach 'test.db' as a;
select 'select:', (select count(*) from (select * from a."select" except select * from main."select")) + (select count(*) from (select * from main."select" except select * from a."select")), (select count(*) from main."select");
select 'with space:', (select count(*) from (select * from a."with space" except select * from main."with space")) + (select count(*) from (select * from main."with space" except select * from a."with space")), (select count(*) from main."with space");
select 'it''s:', (select count(*) from (select * from a."it's" except select * from main."it's")) + (select count(*) from (select * from main."it's" except select * from a."it's")), (select count(*) from main."it's");
select '[brackets]:', (select count(*) from (select * from a."[brackets]" except select * from main."[brackets]")) + (select count(*) from (select * from main."[brackets]" except select * from a."[brackets]")), (select count(*) from main."[brackets]");
select '日本語テーブル:', (select count(*) from (select * from a."日本語テーブル" except select * from main."日本語テーブル")) + (select count(*) from (select * from main."日本語テーブル" except select * from a."日本語テーブル")), (select count(*) from main."日本語テーブル");
select 'sync_logx:', (select count(*) from (select * from a."sync_logx" except select * from main."sync_logx")) + (select count(*) from (select * from main."sync_logx" except select * from a."sync_logx")), (select count(*) from main."sync_logx");
select 'a.b:', (select count(*) from (select * from a."a.b" except select * from main."a.b")) + (select count(*) from (select * from main."a.b" except select * from a."a.b")), (select count(*) from main."a.b");
select 'UPPER:', (select count(*) from (select * from a."UPPER" except select * from main."UPPER")) + (select count(*) from (select * from main."UPPER" except select * from a."UPPER")), (select count(*) from main."UPPER");
select 'log rows in second db:', count(*) from main.sync_log;
select 'second db verifies:', json_extract(sync_verify(), '$.ok');
