-- tests/sql/helpers/stock_writes.sql: writes made by a stock sqlite3 CLI that never loads the extension.
insert into loans values ('L2', 'Bob', 1000, 1.25, x'');
update loans set borrower = 'Bobby', rate = 0.1 + 0.2 where id = 'L2';
insert into loans values ('L3', 'Cy', 5, NULL, NULL);
delete from loans where id = 'L3';
