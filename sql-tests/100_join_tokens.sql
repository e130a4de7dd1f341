-- Goal: joining takes a token from a voter, and every bad token is refused with an error that
-- says which problem it is, leaving the membership unchanged: used up, expired, of another
-- cluster. ha_status() lists outstanding tokens by id, never their secret. A learner cannot
-- issue tokens or change membership. A removed node learns it and says so.
.load ./libdqlite_vfs
.open file:n1.db?vfs=ha
SELECT ha_init('127.0.0.1:17181');
SELECT json_array_length(ha_status(), '$.tokens');
.once n2.token
SELECT ha_token();
SELECT json_extract(ha_status(), '$.tokens[0].role', '$.tokens[0].uses_left'), json_array_length(ha_status(), '$.tokens');
SELECT instr(ha_status(), substr(CAST(readfile('n2.token') AS TEXT), 13, 40)) = 0 AS secret_not_shown;
SELECT substr(CAST(readfile('n2.token') AS TEXT), 1, 12) AS prefix;
.connection 1
.open file:n2.db?vfs=ha
SELECT ha_join('127.0.0.1:17182', '127.0.0.1:17181', CAST(readfile('n2.token') AS TEXT));
-- The token was single-use: it is gone from the list, and a second join with it is refused.
SELECT json_array_length(ha_status(), '$.tokens');
.connection 2
.open file:n3.db?vfs=ha
SELECT ha_join('127.0.0.1:17183', '127.0.0.1:17181', CAST(readfile('n2.token') AS TEXT));
-- Expired (one second to live).
.connection 0
.once short.token
SELECT ha_token('{"ttl_s":1}');
.shell sleep 2
.connection 2
SELECT ha_join('127.0.0.1:17183', '127.0.0.1:17181', CAST(readfile('short.token') AS TEXT));
-- A token of another cluster: the joiner pins that cluster's CA and refuses this one.
.connection 3
.open file:other.db?vfs=ha
SELECT ha_init('127.0.0.1:17189');
.once other.token
SELECT ha_token();
.connection 2
SELECT ha_join('127.0.0.1:17183', '127.0.0.1:17181', CAST(readfile('other.token') AS TEXT));
.connection 0
SELECT json_array_length(ha_status(), '$.members');
-- A learner token admits a learner, which may not issue tokens or change membership.
.once n3.token
SELECT ha_token('learner');
.connection 2
SELECT ha_join('127.0.0.1:17183', '127.0.0.1:17181', CAST(readfile('n3.token') AS TEXT));
SELECT json_extract(ha_status(), '$.role');
SELECT ha_token();
SELECT ha_remove(2);
-- Removal revokes: node 2 learns it at its next contact, reports 'removed', and refuses
-- barriers and writes.
.connection 0
SELECT ha_remove(2);
.shell sleep 3
.connection 1
SELECT json_extract(ha_status(), '$.role');
SELECT ha_barrier();
-- A removed node's ha_leave() needs no cluster: its database becomes a plain one again.
SELECT ha_leave();
SELECT ha_status();
-- A learner may leave (removing itself needs no voter).
.connection 2
SELECT ha_leave();
.connection 0
SELECT json_array_length(ha_status(), '$.members');
