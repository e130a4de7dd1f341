'use strict';
// Driving node processes from tests: spawn, request with a deadline, SIGKILL, clean up.
// Every wait is bounded; every process spawned is killed by Cluster.close().
const { spawn } = require('node:child_process');
const path = require('node:path');
const readline = require('node:readline');

const REQUEST_TIMEOUT_MS = 30_000; // ha_join / ha_barrier may wait for the cluster
const ELECTION_TIMEOUT_MS = 30_000;
const WORKER = path.join(__dirname, 'worker.js');

class NodeError extends Error {}

class WorkerNode {
  constructor(argv) {
    this.argv = argv;
    this.proc = spawn(process.execPath, [WORKER, ...argv], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.pending = []; // answer waiters, in request order
    this.exited = new Promise((resolve) => this.proc.on('exit', resolve));
    readline.createInterface({ input: this.proc.stdout }).on('line', (line) => {
      const waiter = this.pending.shift();
      if (waiter) waiter.resolve(JSON.parse(line));
    });
    this.proc.on('exit', (code, signal) => {
      for (const waiter of this.pending.splice(0)) waiter.reject(new Error(`worker exited (${code ?? signal})`));
    });
  }

  /** The next answer line, or a rejection after `ms`. */
  next(ms) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms from worker ${this.argv}`)), ms);
      const settle = (fn) => (value) => {
        clearTimeout(timer);
        fn(value);
      };
      this.pending.push({ resolve: settle(resolve), reject: settle(reject) });
    });
  }

  async start() {
    const first = await this.next(REQUEST_TIMEOUT_MS);
    if (first.error) throw new NodeError(first.error);
    this.nodeId = first.ready;
    return this;
  }

  async request(sql, params = [], ms = REQUEST_TIMEOUT_MS) {
    const answer = this.next(ms);
    this.proc.stdin.write(`${JSON.stringify({ sql, params })}\n`);
    const { rows, error } = await answer;
    if (error) throw new NodeError(error);
    return rows;
  }

  /** SIGKILL, like a machine losing power; resolves once the process is gone. */
  async kill() {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
    await this.exited;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Poll until `condition` gives a truthy value; errors count as "not yet". Bounded. */
async function waitUntil(condition, ms, what) {
  const deadline = Date.now() + ms;
  let lastError;
  while (Date.now() < deadline) {
    try {
      const result = await condition();
      if (result) return result;
    } catch (error) {
      lastError = error;
    }
    await sleep(200);
  }
  throw new Error(`${what} not within ${ms} ms (last error: ${lastError && lastError.message})`);
}

async function status(node) {
  const [[text]] = await node.request('SELECT ha_status()');
  return JSON.parse(text);
}

/** A single-use voter token from `node`, which must be a running voter (joining needs one). */
async function joinToken(node) {
  const [[token]] = await node.request('SELECT ha_token()');
  return token;
}

async function leaderAmong(nodes) {
  return waitUntil(
    async () => {
      for (const node of nodes) if ((await status(node)).role.toLowerCase() === 'leader') return node;
      return null;
    },
    ELECTION_TIMEOUT_MS,
    'a leader',
  );
}

class Cluster {
  constructor() {
    this.nodes = [];
  }

  async add(argv) {
    const node = new WorkerNode(argv);
    this.nodes.push(node);
    return node.start();
  }

  async close() {
    await Promise.all(this.nodes.map((node) => node.kill()));
  }
}

module.exports = { Cluster, NodeError, WorkerNode, joinToken, leaderAmong, waitUntil, REQUEST_TIMEOUT_MS };
