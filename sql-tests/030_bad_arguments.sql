-- Goal: every bad call gets an SQL error that says what is wrong and what to do.
.load ./libdqlite_vfs
SELECT ha_init('127.0.0.1:7001');
.open file:bad.db?vfs=ha
SELECT ha_init();
SELECT ha_init(42);
SELECT ha_init('127.0.0.1');
SELECT ha_init('127.0.0.1:0');
SELECT ha_join('127.0.0.1:7002');
SELECT ha_remove('two');
SELECT ha_status(1);
.open plain-vfs.db
SELECT ha_status();
