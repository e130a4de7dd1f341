'use strict';
// One cluster node in its own process, driven over stdin/stdout by the tests (the same
// JSON-lines protocol as bindings/python/tests/worker.py, so either harness can drive it):
// first {"ready": nodeId} or {"error": message}; then, per {"sql", "params"} line read,
// {"rows": [[...]]} or {"error": message}.
//
//   node worker.js DRIVER DB ADDR [PEER [TOKEN]]      DRIVER: better-sqlite3 | sqlite3
//
// With PEER the node joins through that member, admitted by TOKEN (from ha_token() on a
// voter); without TOKEN only an existing node can resume, and a fresh join reports the refusal.
const readline = require('node:readline');
const path = require('node:path');
const dqlite = require('..');

const reply = (message) => process.stdout.write(`${JSON.stringify(message)}\n`);

/** A node opened with better-sqlite3 (default-VFS way); run() answers rows. */
function openBetter(db, addr, peer, token) {
  const Database = require('better-sqlite3');
  const conn = dqlite.openNode(Database, db, { addr, join: peer, token });
  return async (sql, params) => {
    const statement = conn.prepare(sql);
    if (!statement.reader) {
      statement.run(...params);
      return [];
    }
    return statement.raw().all(...params);
  };
}

/** A node opened with node-sqlite3, which can pass ?vfs=ha in a URI. */
async function openNodeSqlite3(db, addr, peer, token) {
  const sqlite3 = require('sqlite3');
  const open = (file, mode) =>
    new Promise((resolve, reject) => {
      const conn = new sqlite3.Database(file, mode, (error) => (error ? reject(error) : resolve(conn)));
    });
  const bootstrap = await open(':memory:', sqlite3.OPEN_READWRITE | sqlite3.OPEN_CREATE);
  await dqlite.load(bootstrap);
  const uri = `file:${encodeURI(path.resolve(db)).replace(/\?/g, '%3F').replace(/#/g, '%23')}?vfs=ha`;
  const conn = await open(uri, sqlite3.OPEN_READWRITE | sqlite3.OPEN_CREATE | sqlite3.OPEN_URI);
  const all = (sql, params) =>
    new Promise((resolve, reject) =>
      conn.all(sql, params, (error, rows) => (error ? reject(error) : resolve(rows.map((r) => Object.values(r))))),
    );
  await (peer ? all('SELECT ha_join(?, ?, ?)', [addr, peer, token ?? null]) : all('SELECT ha_init(?)', [addr]));
  return all;
}

async function main() {
  const [driver, db, addr, peer, token] = process.argv.slice(2);
  let run;
  try {
    run = driver === 'sqlite3' ? await openNodeSqlite3(db, addr, peer, token) : openBetter(db, addr, peer, token);
    const [[status]] = await run('SELECT ha_status()', []);
    reply({ ready: JSON.parse(status).node_id });
  } catch (error) {
    reply({ error: String(error && error.message) });
    process.exit(1);
  }
  // Requests are answered strictly in order: the harness waits for each answer.
  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    const { sql, params = [] } = JSON.parse(line);
    try {
      reply({ rows: await run(sql, params) });
    } catch (error) {
      reply({ error: `${error.code || 'Error'}: ${error.message}` });
    }
  }
}

main();
