-- tests/sql/helpers/trusted_writes.sql: stock CLI writes with trusted_schema=OFF (set on the command line); prints the pragma and a marker.
pragma trusted_schema;
insert into items values ('c', 3, -0.0, 'stock', x'ff');
update items set note = 'stock cli' where id = 'c';
select 'stock cli wrote with trusted_schema=OFF';
