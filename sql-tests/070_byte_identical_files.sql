-- Goal: nodes hold byte-identical database files once checkpointed: the initial contents
-- travel by snapshot (to a node that joins later), later transactions as page sets.
.load ./libdqlite_vfs
.open file:n1.db?vfs=ha
CREATE TABLE before_init(x);
INSERT INTO before_init VALUES (randomblob(100));
SELECT ha_init('127.0.0.1:17151');
CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, r INTEGER);
INSERT INTO t(v, r) SELECT 'row', random() FROM generate_series(1, 2000);
.once n2.token
SELECT ha_token();
.connection 1
.open file:n2.db?vfs=ha
SELECT ha_join('127.0.0.1:17152', '127.0.0.1:17151', CAST(readfile('n2.token') AS TEXT));
.connection 0
BEGIN;
DELETE FROM t WHERE id % 3 = 0;
INSERT INTO t(v, r) SELECT 'more', random() FROM generate_series(1, 500);
COMMIT;
.connection 1
SELECT ha_barrier() > 0;
PRAGMA wal_checkpoint(TRUNCATE);
.connection 0
PRAGMA wal_checkpoint(TRUNCATE);
.shell cmp n1.db n2.db && echo identical
