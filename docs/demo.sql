.load ./libdqlite_vfs
.open file:app.db?vfs=ha
.print '-- node 1 starts a new cluster'
SELECT ha_init('127.0.0.1:7001');
CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, r INTEGER);
INSERT INTO t(v, r) VALUES ('a', random());
.print '-- node 1 issues a join token (single use, valid 1 hour) for node 2'
.once node2.token
SELECT ha_token();
.connection 1
.open file:app2.db?vfs=ha
.print '-- node 2 joins through node 1 with that token'
SELECT ha_join('127.0.0.1:7002', '127.0.0.1:7001', CAST(readfile('node2.token') AS TEXT));
SELECT * FROM t;
.print '-- node 2, a voter, can issue a token too (the leader records it)'
.once node3.token
SELECT ha_token();
.connection 2
.open file:app3.db?vfs=ha
.print '-- node 3 joins'
SELECT ha_join('127.0.0.1:7003', '127.0.0.1:7001', CAST(readfile('node3.token') AS TEXT));
.connection 0
INSERT INTO t(v, r) VALUES ('b', random());
.connection 2
SELECT ha_barrier() > 0 AS caught_up;
SELECT * FROM t;
.print '-- a follower refuses writes'
INSERT INTO t(v) VALUES ('c');
SELECT ha_status();
