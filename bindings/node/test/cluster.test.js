'use strict';
// A 3-node cluster formed through one Node driver, one node per process.
// Goal: writes on the leader reach the followers, followers refuse writes, and after the
// leader's process is SIGKILLed a new leader takes writes; the killed node resumes.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Cluster, NodeError, joinToken, leaderAmong, waitUntil, REQUEST_TIMEOUT_MS } = require('./harness');

// Ports 17550-17599 are reserved for the Node tests; each driver gets its own block.
const DRIVERS = { 'better-sqlite3': 17550, sqlite3: 17560 };

function installed(name) {
  try {
    require.resolve(name);
    return true;
  } catch {
    return false;
  }
}

async function rows(node) {
  await node.request('SELECT ha_barrier()');
  return node.request('SELECT id, v FROM t ORDER BY id');
}

for (const [driver, basePort] of Object.entries(DRIVERS)) {
  test(`${driver}: three nodes survive the leader's SIGKILL`, { skip: !installed(driver) && `${driver} not installed`, timeout: 180_000 }, async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dqlite-vfs-node-'));
    const cluster = new Cluster();
    t.after(async () => {
      await cluster.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    const addrs = [0, 1, 2].map((i) => `127.0.0.1:${basePort + i}`);
    const argv = [[driver, path.join(dir, 'n1.db'), addrs[0]]];
    const nodes = [await cluster.add(argv[0])];
    for (const i of [1, 2]) {
      // Each joiner is admitted by a token that node 1 issues just before.
      argv.push([driver, path.join(dir, `n${i + 1}.db`), addrs[i], addrs[0], await joinToken(nodes[0])]);
      nodes.push(await cluster.add(argv[i]));
    }
    assert.deepEqual(nodes.map((n) => n.nodeId).sort(), [1, 2, 3]);

    const leader = await leaderAmong(nodes);
    assert.equal(leader, nodes[0]);
    await leader.request('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)');
    await leader.request("INSERT INTO t VALUES (1, 'one'), (2, 'two')");
    const followers = nodes.filter((n) => n !== leader);
    for (const follower of followers) {
      assert.deepEqual(await rows(follower), [[1, 'one'], [2, 'two']]);
      await assert.rejects(follower.request("INSERT INTO t VALUES (3, 'refused')"), (e) => e instanceof NodeError && /readonly/i.test(e.message));
    }

    await leader.kill();
    const newLeader = await leaderAmong(followers);
    // A just-elected leader may refuse writes until it has committed in its term.
    await waitUntil(() => newLeader.request("INSERT OR REPLACE INTO t VALUES (3, 'three')").then(() => true), REQUEST_TIMEOUT_MS, 'write on the new leader');
    const survivor = followers.find((n) => n !== newLeader);
    assert.deepEqual(await rows(survivor), [[1, 'one'], [2, 'two'], [3, 'three']]);

    const restarted = await cluster.add(argv[0]); // same startup call: resumes node 1
    assert.equal(restarted.nodeId, 1);
    // Library bug (see the report): right after the resume, ha_barrier() on the ex-leader
    // fails with "raft: has to forward request to ..." until it learns the new leader.
    const expected = JSON.stringify([[1, 'one'], [2, 'two'], [3, 'three']]);
    await waitUntil(async () => JSON.stringify(await rows(restarted)) === expected, REQUEST_TIMEOUT_MS, 'restarted node catching up');
  });
}
