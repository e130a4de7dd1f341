'use strict';
// Opening a node database with better-sqlite3: load with `ha` as the default VFS, open
// the file (better-sqlite3 cannot pass ?vfs=ha), start or resume the node.
const { loadAsDefaultVfs } = require('./load');

let loadedInto = null; // the Database class we loaded through (one SQLite per process)

/**
 * Open `file` as a node of a replicated database with better-sqlite3.
 * @param {Function} Database the better-sqlite3 export (`require('better-sqlite3')`)
 * @param {string} file database file; the node keeps its Raft state in `<file>-ha/`
 * @param {{addr: string, join?: string, token?: string, options?: object}} node `addr` to
 *   listen on ('host:port'); `join`: any member's 'host:port' (omit to start a new cluster);
 *   `token`: with `join`, what `issueToken` / `ha_token()` returned on a voter (its role is
 *   the role this node gets). An existing node resumes either way, without checking the
 *   token (the used one, or none, may be passed again), so the same call serves every
 *   start; a first join without a token throws the extension's error asking for one.
 * @returns the better-sqlite3 Database; writes succeed on the leader only.
 */
function openNode(Database, file, { addr, join, token, options } = {}) {
  if (typeof addr !== 'string') throw new TypeError('dqlite-vfs: openNode needs { addr: "host:port" }');
  const joining = join !== undefined && join !== null;
  // ha_init takes no token: refusing here beats silently starting a new cluster.
  if (!joining && token !== undefined && token !== null) {
    throw new TypeError('dqlite-vfs: openNode: token is for joining a cluster; pass join: "host:port" too');
  }
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
    if (!joining) db.prepare('SELECT ha_init(?)').pluck().get(addr);
    // A missing token goes as NULL: a resume needs none, and a first join gets the
    // extension's own error, which says how to get a token.
    else db.prepare('SELECT ha_join(?, ?, ?)').pluck().get(addr, join, token ?? null);
  } catch (error) {
    db.close();
    throw error;
  }
  return db;
}

module.exports = { openNode };
