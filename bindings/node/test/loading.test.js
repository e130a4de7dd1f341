'use strict';
// Loading is idempotent in both Node drivers: `loadExtension` (their only way: neither lets SQL
// call load_extension()) on databases opened before and after the first load, any number of
// times, directly and through the package's load(). Each driver runs in a process of its own,
// since the extension serves one SQLite library per process.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const dqlite = require('..');

// argv: [driver, library, package directory]. Prints "done" once every load went through and
// every database has the functions.
const SCRIPT = String.raw`
const [driver, lib, pkg] = process.argv.slice(1);
const dqlite = require(pkg);
const { promisify } = require('node:util');
async function main() {
  if (driver === 'better-sqlite3') {
    const Database = require('better-sqlite3');
    const before = new Database(':memory:');
    const first = new Database(':memory:');
    first.loadExtension(lib); first.loadExtension(lib); dqlite.load(first);
    const later = new Database(':memory:');
    later.loadExtension(lib); dqlite.load(later);
    before.loadExtension(lib); dqlite.load(before);
    for (const db of [before, first, later]) {
      if (db.prepare('SELECT quote(ha_last_error()) AS e').get().e !== 'NULL') throw new Error('no ha_*');
    }
  } else {
    const sqlite3 = require('sqlite3');
    const open = () => new sqlite3.Database(':memory:');
    const loadDirect = (db) => promisify(db.loadExtension.bind(db))(lib);
    const before = open();
    const first = open();
    await loadDirect(first); await loadDirect(first); await dqlite.load(first);
    const later = open();
    await loadDirect(later); await dqlite.load(later);
    await loadDirect(before); await dqlite.load(before);
    for (const db of [before, first, later]) {
      const row = await promisify(db.get.bind(db))('SELECT quote(ha_last_error()) AS e');
      if (row.e !== 'NULL') throw new Error('no ha_*');
    }
  }
  console.log('done');
}
main().catch((error) => { console.error(error); process.exit(1); });
`;

for (const driver of ['better-sqlite3', 'sqlite3']) {
  test(`${driver}: loading again, on every database`, () => {
    const pkg = path.join(__dirname, '..');
    const run = spawnSync(process.execPath, ['-e', SCRIPT, driver, dqlite.getLoadablePath(), pkg], {
      cwd: pkg, // the drivers are the package's devDependencies
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout.trim(), 'done');
  });
}
