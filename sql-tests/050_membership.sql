-- Goal: membership changes from SQL: a member is removed from another member, a member leaves,
-- and the remaining cluster keeps accepting writes.
.load ./libdqlite_vfs
.open file:n1.db?vfs=ha
SELECT ha_init('127.0.0.1:17111');
CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
.once n2.token
SELECT ha_token();
.connection 1
.open file:n2.db?vfs=ha
SELECT ha_join('127.0.0.1:17112', '127.0.0.1:17111', CAST(readfile('n2.token') AS TEXT));
.once n3.token
SELECT ha_token();
.connection 2
.open file:n3.db?vfs=ha
SELECT ha_join('127.0.0.1:17113', '127.0.0.1:17111', CAST(readfile('n3.token') AS TEXT));
-- Remove node 3 from node 2 (a follower: the request goes to the leader).
.connection 1
SELECT ha_remove(3);
SELECT ha_barrier() > 0;
SELECT json_array_length(ha_status(), '$.members');
SELECT ha_remove(3);
SELECT ha_remove(2);
-- Node 2 leaves; its database stays, as a plain one.
SELECT ha_leave();
SELECT ha_status();
.connection 0
INSERT INTO t(v) VALUES ('after the changes');
SELECT json_extract(ha_status(), '$.role'), json_array_length(ha_status(), '$.members');
SELECT v FROM t;
