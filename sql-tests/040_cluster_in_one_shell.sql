-- Goal: a whole 3-node cluster in one shell (one database file per node), formed from SQL
-- alone; pages, not statements, are replicated: random(), datetime('now') and triggers give
-- identical databases on every node. Followers read locally and refuse writes.
.load ./libdqlite_vfs
.open file:n1.db?vfs=ha
SELECT ha_init('127.0.0.1:17101');
CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, r INTEGER, at TEXT);
CREATE TABLE audit(id INTEGER PRIMARY KEY, t_id INTEGER, r INTEGER);
CREATE TRIGGER t_audit AFTER INSERT ON t BEGIN INSERT INTO audit(t_id, r) VALUES (new.id, random()); END;
INSERT INTO t(v, r, at) VALUES ('a', random(), datetime('now'));
.once n2.token
SELECT ha_token();
.connection 1
.open file:n2.db?vfs=ha
SELECT ha_join('127.0.0.1:17102', '127.0.0.1:17101', CAST(readfile('n2.token') AS TEXT));
.once n3.token
SELECT ha_token();
.connection 2
.open file:n3.db?vfs=ha
SELECT ha_join('127.0.0.1:17103', '127.0.0.1:17101', CAST(readfile('n3.token') AS TEXT));
.connection 0
BEGIN;
INSERT INTO t(v, r, at) VALUES ('b', random(), datetime('now'));
INSERT INTO t(v, r, at) SELECT v || '2', random(), datetime('now', '+1 day') FROM t;
UPDATE t SET r = r / 2 WHERE id % 2 = 0;
COMMIT;
SELECT json_extract(ha_status(), '$.role', '$.node_id', '$.leader_id');
SELECT json_array_length(ha_status(), '$.members');
.connection 1
SELECT ha_barrier() > 0;
SELECT json_extract(ha_status(), '$.role', '$.node_id', '$.leader_id', '$.leader_addr');
SELECT count(*) FROM t;
-- A write on a follower is refused and changes nothing.
INSERT INTO t(v) VALUES ('from a follower');
SELECT count(*) FROM t;
.connection 2
SELECT ha_barrier() > 0;
PRAGMA integrity_check;
.connection 0
-- Every node holds the same rows, random values included.
ATTACH 'file:n2.db?vfs=ha' AS n2;
ATTACH 'file:n3.db?vfs=ha' AS n3;
-- (sha3_query hashes the SQL text too, so compare rows with EXCEPT in both directions.)
SELECT (SELECT count(*) FROM (SELECT * FROM main.t EXCEPT SELECT * FROM n2.t))
     + (SELECT count(*) FROM (SELECT * FROM n2.t EXCEPT SELECT * FROM main.t))
     + (SELECT count(*) FROM (SELECT * FROM main.audit EXCEPT SELECT * FROM n2.audit))
     + (SELECT count(*) FROM (SELECT * FROM n2.audit EXCEPT SELECT * FROM main.audit)) AS rows_differing_from_2,
       (SELECT count(*) FROM (SELECT * FROM main.t EXCEPT SELECT * FROM n3.t))
     + (SELECT count(*) FROM (SELECT * FROM n3.t EXCEPT SELECT * FROM main.t))
     + (SELECT count(*) FROM (SELECT * FROM main.audit EXCEPT SELECT * FROM n3.audit))
     + (SELECT count(*) FROM (SELECT * FROM n3.audit EXCEPT SELECT * FROM main.audit)) AS rows_differing_from_3;
SELECT count(*) FROM n3.audit;
-- Calling ha_init again with the same address is a no-op; another address is refused.
SELECT ha_init('127.0.0.1:17101');
SELECT ha_init('127.0.0.1:17109');
