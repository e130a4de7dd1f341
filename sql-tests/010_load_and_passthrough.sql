-- Goal: the library loads into the stock shell, and a database opened through `ha` that is
-- never made a node behaves exactly like plain SQLite.
.load ./libdqlite_vfs
.open file:plain.db?vfs=ha
PRAGMA journal_mode=WAL;
CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
INSERT INTO t(v) VALUES ('a'), ('b');
BEGIN;
INSERT INTO t(v) SELECT v || v FROM t;
ROLLBACK;
SELECT id, v FROM t ORDER BY id;
PRAGMA integrity_check;
-- Not a node yet: the admin functions say so.
SELECT ha_status();
