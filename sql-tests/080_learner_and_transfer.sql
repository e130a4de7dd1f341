-- Goal: a learner (joined with a learner token) replicates but neither votes nor leads; ha_transfer hands leadership to
-- the voter named, and the old leader then refuses writes with a message saying who leads;
-- a node can listen on one address and be reached at another (advertise).
.load ./libdqlite_vfs
.open file:n1.db?vfs=ha
SELECT ha_init('127.0.0.1:17161');
CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
INSERT INTO t(v) VALUES ('before');
.once n2.token
SELECT ha_token();
.connection 1
.open file:n2.db?vfs=ha
SELECT ha_join('127.0.0.1:17162', '127.0.0.1:17161', json_set('{"advertise":"localhost:17162"}', '$.token', CAST(readfile('n2.token') AS TEXT)));
.once n3.token
SELECT ha_token('learner');
.connection 2
.open file:n3.db?vfs=ha
SELECT ha_join('127.0.0.1:17163', '127.0.0.1:17161', CAST(readfile('n3.token') AS TEXT));
SELECT json_extract(ha_status(), '$.role');
-- It started from the leader's snapshot, streamed in chunks: ha_status() reports the transfer.
SELECT json_extract(ha_status(), '$.last_snapshot_transfer.direction', '$.last_snapshot_transfer.completed', '$.snapshot_transfers');
SELECT ha_barrier() > 0;
SELECT v FROM t;
SELECT json_extract(value, '$.id'), json_extract(value, '$.addr'), json_extract(value, '$.voter')
  FROM json_each(ha_status(), '$.members');
-- A learner cannot be made leader.
SELECT ha_transfer(3);
-- A learner may not move leadership (nor change membership, nor issue tokens).
SELECT ha_transfer(2);
-- Hand leadership to node 2, asked from node 2, a follower (the request goes to the leader).
.connection 1
SELECT ha_transfer(2);
SELECT json_extract(ha_status(), '$.role');
SELECT json_extract(ha_status(), '$.listen_addr'), json_extract(ha_status(), '$.addr');
INSERT INTO t(v) VALUES ('after the transfer');
.connection 0
SELECT json_extract(ha_status(), '$.role');
SELECT ha_last_error() IS NULL;
INSERT INTO t(v) VALUES ('refused');
SELECT ha_last_error();
SELECT ha_barrier() > 0;
SELECT v FROM t ORDER BY id;
