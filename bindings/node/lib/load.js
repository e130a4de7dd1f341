'use strict';
// Loading the extension into a better-sqlite3 or node-sqlite3 database object.
const { getLoadablePath } = require('./library');

const DEFAULT_VFS_ENV = 'DQLITE_VFS_DEFAULT';

/** better-sqlite3 has a synchronous loadExtension and prepare(); node-sqlite3 takes callbacks. */
function isBetterSqlite3(db) {
  return typeof db.loadExtension === 'function' && typeof db.prepare === 'function' && typeof db.pragma === 'function';
}

/**
 * Load dqlite-vfs through `db`. This registers the `ha` VFS and the `ha_*` SQL functions
 * for the whole process: they are on `db` and on every database the same SQLite opens later.
 * better-sqlite3: synchronous, returns undefined. node-sqlite3: returns a Promise.
 */
function load(db) {
  const file = getLoadablePath();
  if (isBetterSqlite3(db)) {
    db.loadExtension(file);
    return undefined;
  }
  if (typeof db.loadExtension === 'function') {
    return new Promise((resolve, reject) => db.loadExtension(file, (error) => (error ? reject(error) : resolve())));
  }
  throw new TypeError('dqlite-vfs: load() takes a better-sqlite3 or sqlite3 (node-sqlite3) Database');
}

/**
 * Load through `db` with `ha` made the default VFS, for drivers that cannot open
 * `file:...?vfs=ha` URIs (better-sqlite3). Every database file opened afterwards in this
 * process goes through `ha`. Must be the first load of the extension in the process.
 */
function loadAsDefaultVfs(db) {
  const previous = process.env[DEFAULT_VFS_ENV];
  // The extension reads this at load time; restore it so child processes don't inherit it.
  const restore = () => {
    if (previous === undefined) delete process.env[DEFAULT_VFS_ENV];
    else process.env[DEFAULT_VFS_ENV] = previous;
  };
  process.env[DEFAULT_VFS_ENV] = '1';
  let result;
  try {
    result = load(db);
  } catch (error) {
    restore();
    throw error;
  }
  // node-sqlite3 loads on its thread pool: keep the variable until that load is done.
  if (result && typeof result.finally === 'function') return result.finally(restore);
  restore();
  return result;
}

module.exports = { load, loadAsDefaultVfs, isBetterSqlite3, DEFAULT_VFS_ENV };
