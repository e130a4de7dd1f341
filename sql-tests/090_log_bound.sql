-- Goal: the Raft log's size on disk stays under its bound (here the 16 MiB minimum): past
-- it the node snapshots and drops the log the snapshot covers; a node joining afterwards
-- gets the data from the snapshot.
.load ./libdqlite_vfs
.open file:n1.db?vfs=ha
SELECT ha_init('127.0.0.1:17171', '{"log_bytes_max":16777216}');
CREATE TABLE blobs(id INTEGER PRIMARY KEY, b BLOB);
INSERT INTO blobs(b) SELECT randomblob(4096) FROM generate_series(1, 1536);
INSERT INTO blobs(b) SELECT randomblob(4096) FROM generate_series(1, 1536);
INSERT INTO blobs(b) SELECT randomblob(4096) FROM generate_series(1, 1536);
INSERT INTO blobs(b) SELECT randomblob(4096) FROM generate_series(1, 1536);
-- 24 MiB went through the log; the check runs every second (snapshot, then drop).
.shell sleep 5
SELECT json_extract(ha_status(), '$.log_bytes') <= 16777216, json_extract(ha_status(), '$.log_bytes_max');
SELECT json_extract(ha_status(), '$.snapshot_index') > 1;
.once n2.token
SELECT ha_token();
.connection 1
.open file:n2.db?vfs=ha
SELECT ha_join('127.0.0.1:17172', '127.0.0.1:17171', CAST(readfile('n2.token') AS TEXT));
SELECT count(*), sum(length(b)) FROM blobs;
PRAGMA integrity_check;
