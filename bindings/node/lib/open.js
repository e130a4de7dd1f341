'use strict';
// Opening a node database with better-sqlite3: load with `ha` as the default VFS, open
// the file (better-sqlite3 cannot pass ?vfs=ha), start or resume the node.
const { loadAsDefaultVfs } = require('./load');

let loadedInto = null; // the Database class we loaded through (one SQLite per process)

/**
 * Open `file` as a node of a replicated database with better-sqlite3.
 * @param {Function} Database the better-sqlite3 export (`require('better-sqlite3')`)
 * @param {string} file database file; the node keeps its Raft state in `<file>-ha/`
 * @param {{addr: string, join?: string, options?: object}} node `addr` to listen on
 *   ('host:port'); `join`: any member's 'host:port' (omit to start a new cluster).
 *   An existing node resumes either way, so the same call serves every start.
 * @returns the better-sqlite3 Database; writes succeed on the leader only.
 */
function openNode(Database, file, { addr, join, options } = {}) {
  if (typeof addr !== 'string') throw new TypeError('dqlite-vfs: openNode needs { addr: "host:port" }');
  if (loadedInto !== Database) {
    const bootstrap = new Database(':memory:');
    try {
      loadAsDefaultVfs(bootstrap);
    } finally {
      bootstrap.close();
    }
    loadedInto = Database;
  }
  const db = new Database(file, options);
  try {
    if (join === undefined || join === null) db.prepare('SELECT ha_init(?)').pluck().get(addr);
    else db.prepare('SELECT ha_join(?, ?)').pluck().get(addr, join);
  } catch (error) {
    db.close();
    throw error;
  }
  return db;
}

module.exports = { openNode };
