-- Goal: `ha` is a complete shim over the default VFS: it has the wrapped VFS's version (3 on
-- unix: the system-call methods are there), and SQLITE_FCNTL_VFSNAME names the stack with `ha`
-- in front, as SQLite's own shims do. A file opened through the default VFS names that alone.
.load ./libdqlite_vfs
.open file:through_ha.db?vfs=ha
PRAGMA journal_mode=WAL;
.vfsname
.vfsinfo
.open file:plain.db
.vfsname
