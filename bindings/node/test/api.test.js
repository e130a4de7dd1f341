'use strict';
// The package API without a cluster: entry points, library path, driver detection.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const dqlite = require('..');

test('CommonJS and ESM entries export the same functions', async () => {
  const esm = await import('dqlite-vfs').catch(() => import('../index.mjs'));
  for (const name of ['getLoadablePath', 'load', 'loadAsDefaultVfs', 'openNode']) {
    assert.equal(typeof dqlite[name], 'function', name);
    assert.equal(esm[name], dqlite[name], name);
  }
});

test('getLoadablePath names an existing library', () => {
  const file = dqlite.getLoadablePath();
  assert.match(file, /libdqlite_vfs\.so$/);
  assert.ok(fs.statSync(file).isFile());
});

test('a missing override is reported', () => {
  const saved = process.env.DQLITE_VFS_LIBRARY;
  process.env.DQLITE_VFS_LIBRARY = '/nonexistent/libdqlite_vfs.so';
  try {
    assert.throws(() => dqlite.getLoadablePath(), /DQLITE_VFS_LIBRARY/);
  } finally {
    if (saved === undefined) delete process.env.DQLITE_VFS_LIBRARY;
    else process.env.DQLITE_VFS_LIBRARY = saved;
  }
});

test('load refuses objects that are not databases', () => {
  assert.throws(() => dqlite.load({}), /better-sqlite3 or sqlite3/);
});

test('openNode needs an address', () => {
  assert.throws(() => dqlite.openNode(function Database() {}, 'x.db', {}), /addr/);
});
