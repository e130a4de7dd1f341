'use strict';
// Where the native library is: the copy bundled at install time, or an override.
const fs = require('node:fs');
const path = require('node:path');

const LIBRARY_ENV = 'DQLITE_VFS_LIBRARY';
const BUNDLED = path.resolve(__dirname, '..', 'native', 'libdqlite_vfs.so');

/**
 * Absolute path of the dqlite-vfs SQLite extension. $DQLITE_VFS_LIBRARY wins over the
 * bundled copy, so a fresh build can be tried without reinstalling.
 * @returns {string}
 */
function getLoadablePath() {
  const override = process.env[LIBRARY_ENV];
  const candidate = override ? path.resolve(override) : BUNDLED;
  if (!fs.existsSync(candidate)) {
    const origin = override ? `$${LIBRARY_ENV}` : 'the bundled library';
    throw new Error(`dqlite-vfs: ${origin} ${candidate} does not exist; reinstall the package or set $${LIBRARY_ENV}`);
  }
  return candidate;
}

module.exports = { getLoadablePath, LIBRARY_ENV };
