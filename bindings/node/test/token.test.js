'use strict';
// Joining takes a token: openNode with `join` and no token is refused, with one it succeeds.
// Goal: what a user meets on a first join -- no token gets the extension's error saying a
// token is needed (and leaves nothing behind that would break the next attempt); issueToken
// returns a join token (`dqvfs-join1.`...), honours its options, and the token admits the node
// through the same openNode call.
// Method: two better-sqlite3 nodes in this test file's process (node --test gives each file its
// own), through the package's openNode and issueToken. They run until the process exits: a
// node has no stop call short of ha_leave.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const dqlite = require('..');

const PORTS = [17570, 17571]; // inside the Node tests' block 17550-17599

function installed(name) {
  try {
    require.resolve(name);
    return true;
  } catch {
    return false;
  }
}

test('a join needs a token, and issueToken makes one', { skip: !installed('better-sqlite3') && 'better-sqlite3 not installed', timeout: 120_000 }, (t) => {
  const Database = require('better-sqlite3');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dqlite-vfs-token-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const [first, second] = PORTS.map((port) => `127.0.0.1:${port}`);
  const n1 = dqlite.openNode(Database, path.join(dir, 'n1.db'), { addr: first });

  assert.throws(
    () => dqlite.openNode(Database, path.join(dir, 'n2.db'), { addr: second, join: first }),
    (error) => /token/i.test(error.message) && /ha_token/.test(error.message), // says where one comes from
  );

  const learner = dqlite.issueToken(n1, { role: 'learner', ttl_s: 600, uses: 3 });
  assert.ok(learner.startsWith('dqvfs-join1.') && !learner.includes('\n'), learner);
  const { tokens } = JSON.parse(n1.prepare('SELECT ha_status()').pluck().get());
  assert.deepEqual(tokens.map((token) => [token.role, token.uses_left]), [['learner', 3]]);

  const token = dqlite.issueToken(n1);
  assert.ok(token.startsWith('dqvfs-join1.'), token);
  const n2 = dqlite.openNode(Database, path.join(dir, 'n2.db'), { addr: second, join: first, token });
  const status = JSON.parse(n2.prepare('SELECT ha_status()').pluck().get());
  assert.deepEqual([status.node_id, status.role], [2, 'follower']);
});
