'use strict';
// dqlite-vfs for Node: a Raft-replicated SQLite database from better-sqlite3 or sqlite3.
const { getLoadablePath, LIBRARY_ENV } = require('./lib/library');
const { load, loadAsDefaultVfs, DEFAULT_VFS_ENV } = require('./lib/load');
const { openNode } = require('./lib/open');
const { issueToken } = require('./lib/token');

module.exports = { getLoadablePath, load, loadAsDefaultVfs, openNode, issueToken, LIBRARY_ENV, DEFAULT_VFS_ENV };
