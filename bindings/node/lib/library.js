'use strict';
// Where the native library is: the copy bundled at install time, or an override.
const fs = require('node:fs');
const path = require('node:path');

const LIBRARY_ENV = 'DQLITE_VFS_LIBRARY';
const BUNDLED = path.resolve(__dirname, '..', 'native', 'libdqlite_vfs.so');
// In a checkout (`npm install ./bindings/node` links the folder), npm 11 may skip our install
// script unless approved, so fall back to the repository's own release build.
const CHECKOUT_BUILD = path.resolve(__dirname, '..', '..', '..', 'target', 'release', 'libdqlite_vfs.so');

/**
 * Absolute path of the dqlite-vfs SQLite extension: $DQLITE_VFS_LIBRARY, else the copy
 * bundled at install, else (in a checkout) <repo>/target/release/libdqlite_vfs.so.
 * @returns {string}
 */
function getLoadablePath() {
  const override = process.env[LIBRARY_ENV];
  const candidate = override
    ? path.resolve(override)
    : fs.existsSync(BUNDLED) || !fs.existsSync(CHECKOUT_BUILD)
      ? BUNDLED
      : CHECKOUT_BUILD;
  if (!fs.existsSync(candidate)) {
    const origin = override ? `$${LIBRARY_ENV}` : 'the bundled library';
    throw new Error(`dqlite-vfs: ${origin} ${candidate} does not exist; reinstall the package or set $${LIBRARY_ENV}`);
  }
  return candidate;
}

module.exports = { getLoadablePath, LIBRARY_ENV };
