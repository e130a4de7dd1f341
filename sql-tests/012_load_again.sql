-- Goal: loading is idempotent: through the C API (`.load`) and through SQL
-- (`SELECT load_extension`), on the first connection and on later ones, any number of times.
-- A later connection already has the ha_* functions (the auto-extension gave them), and SQL
-- loads run inside a statement, where SQLite refuses to replace a function.
SELECT load_extension('./libdqlite_vfs');
SELECT load_extension('./libdqlite_vfs');
.load ./libdqlite_vfs
.open file:later.db?vfs=ha
SELECT load_extension('./libdqlite_vfs');
.load ./libdqlite_vfs
SELECT load_extension('./libdqlite_vfs');
SELECT count(*) FROM pragma_function_list WHERE name LIKE 'ha\_%' ESCAPE '\';
-- The functions work after all of that.
SELECT quote(ha_last_error());
.open file:third.db
SELECT load_extension('./libdqlite_vfs', 'sqlite3_dqlitevfs_init');
SELECT load_extension('./libdqlite_vfs', 'sqlite3_extension_init');
.vfsname
