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
SELECT ha_transfer('two');
SELECT ha_last_error(1);
-- Options: a misspelt key or role is refused, not ignored; a first node cannot be a learner.
SELECT ha_init('127.0.0.1:7001', 'leader');
SELECT ha_init('127.0.0.1:7001', '{"advertize":"127.0.0.1:7101"}');
SELECT ha_init('127.0.0.1:7001', '{"advertise":"127.0.0.1"}');
SELECT ha_init('127.0.0.1:7001', 'learner');
SELECT ha_init('127.0.0.1:7001', 'dqvfs-join1.AAAA');
SELECT ha_join('127.0.0.1:7002', '127.0.0.1:7001', 7);
-- Joining needs a token: none, or text that is not one, is refused before anything is sent.
SELECT ha_join('127.0.0.1:7002', '127.0.0.1:7001');
SELECT ha_join('127.0.0.1:7002', '127.0.0.1:7001', 'dqvfs-join1.AAAA');
SELECT ha_join('127.0.0.1:7002', '127.0.0.1:7001', '{"token":"not-a-token"}');
SELECT ha_token('admin');
SELECT ha_token('{"ttl_s":0}');
SELECT ha_token(1);
.open plain-vfs.db
SELECT ha_status();
-- Joining with a database that already holds tables is refused: nothing is overwritten.
.open file:full.db?vfs=ha
CREATE TABLE mine(a);
SELECT ha_join('127.0.0.1:17121', '127.0.0.1:17122');
SELECT count(*) FROM mine;
-- An address another node already listens on.
.open file:first.db?vfs=ha
SELECT ha_init('127.0.0.1:17123');
.open file:second.db?vfs=ha
SELECT ha_init('127.0.0.1:17123');
-- A peer nobody answers at: a clear error after a bounded wait.
.open file:first.db?vfs=ha
.once lonely.token
SELECT ha_token();
.open file:lonely.db?vfs=ha
SELECT ha_join('127.0.0.1:17124', '127.0.0.1:17125', CAST(readfile('lonely.token') AS TEXT));
