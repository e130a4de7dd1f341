'use strict';
// The package API without a cluster: entry points, library path, driver detection.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const dqlite = require('..');

test('CommonJS and ESM entries export the same functions', async () => {
  const esm = await import('dqlite-vfs').catch(() => import('../index.mjs'));
  for (const name of ['getLoadablePath', 'load', 'loadAsDefaultVfs', 'openNode', 'issueToken']) {
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

test('openNode refuses a token without join', () => {
  // ha_init takes no token: a token means the caller meant to join, so no new cluster starts.
  const Database = function Database() {
    throw new Error('must not open');
  };
  assert.throws(() => dqlite.openNode(Database, 'x.db', { addr: '127.0.0.1:1', token: 'dqvfs-join1.x' }), /join/);
});

test("issueToken passes ha_token's options: the bare role, or JSON beyond it", async () => {
  // A stand-in node-sqlite3 Database: records the argument, answers like ha_token.
  const seen = [];
  const db = {
    loadExtension() {},
    get(sql, params, callback) {
      seen.push([sql, ...params]);
      callback(null, { token: 'dqvfs-join1.stand-in' });
    },
  };
  assert.equal(await dqlite.issueToken(db), 'dqvfs-join1.stand-in');
  await dqlite.issueToken(db, 'learner');
  await dqlite.issueToken(db, { role: 'learner' });
  await dqlite.issueToken(db, { role: 'learner', ttl_s: 600, uses: 3 });
  assert.deepEqual(
    seen.map(([, argument]) => argument),
    ['voter', 'learner', 'learner', '{"role":"learner","ttl_s":600,"uses":3}'],
  );
  assert.ok(seen.every(([sql]) => /ha_token\(\?\)/.test(sql)));
  assert.throws(() => dqlite.issueToken({}), /better-sqlite3 or sqlite3/);
});
