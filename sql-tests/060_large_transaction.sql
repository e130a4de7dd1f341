-- Goal: a transaction far larger than the page cache (50 MiB of blobs, spilled to the WAL
-- before its commit) is replicated whole and identical to every node.
.load ./libdqlite_vfs
.open file:n1.db?vfs=ha
SELECT ha_init('127.0.0.1:17131');
.once n2.token
SELECT ha_token();
.connection 1
.open file:n2.db?vfs=ha
SELECT ha_join('127.0.0.1:17132', '127.0.0.1:17131', CAST(readfile('n2.token') AS TEXT));
.once n3.token
SELECT ha_token();
.connection 2
.open file:n3.db?vfs=ha
SELECT ha_join('127.0.0.1:17133', '127.0.0.1:17131', CAST(readfile('n3.token') AS TEXT));
.connection 0
PRAGMA cache_size = 100;
CREATE TABLE b(id INTEGER PRIMARY KEY, data BLOB);
CREATE TABLE log(id INTEGER PRIMARY KEY, b_id INTEGER, r INTEGER);
CREATE TRIGGER b_log AFTER INSERT ON b BEGIN INSERT INTO log(b_id, r) VALUES (new.id, random()); END;
BEGIN;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50)
INSERT INTO b(data) SELECT randomblob(1024 * 1024) FROM c;
UPDATE b SET data = randomblob(1024 * 1024) WHERE id % 10 = 0;
COMMIT;
SELECT count(*), sum(length(data)) FROM b;
.connection 1
SELECT ha_barrier() > 0;
PRAGMA integrity_check;
.connection 2
SELECT ha_barrier() > 0;
PRAGMA integrity_check;
.connection 0
ATTACH 'file:n2.db?vfs=ha' AS n2;
ATTACH 'file:n3.db?vfs=ha' AS n3;
SELECT (SELECT count(*) FROM (SELECT * FROM main.b EXCEPT SELECT * FROM n2.b))
     + (SELECT count(*) FROM (SELECT * FROM main.log EXCEPT SELECT * FROM n2.log)) AS differing_2,
       (SELECT count(*) FROM (SELECT * FROM main.b EXCEPT SELECT * FROM n3.b))
     + (SELECT count(*) FROM (SELECT * FROM main.log EXCEPT SELECT * FROM n3.log)) AS differing_3,
       (SELECT count(*) FROM n3.b) AS rows_3;
