'use strict';
// Issuing join tokens: the ha_token SQL function, from better-sqlite3 or node-sqlite3.
const { isBetterSqlite3 } = require('./load');

/** ha_token's argument: the bare role, or a JSON object when there is more than a role. */
function tokenArgument(options) {
  if (options === undefined || options === null) return 'voter';
  if (typeof options === 'string') return options;
  if (typeof options !== 'object') throw new TypeError("dqlite-vfs: issueToken options are 'voter', 'learner' or { role, ttl_s, uses }");
  // The keys are ha_token's own, so the extension checks them and names a misspelt one.
  return Object.keys(options).length === 1 && 'role' in options ? String(options.role) : JSON.stringify(options);
}

/**
 * A join token from the node `db` is open on (`SELECT ha_token(...)`), for `openNode`'s
 * `token`. The node must be a voter (a learner is refused); any voter will do. Whoever holds
 * the token may join, so hand it over a channel you trust.
 * @param db a better-sqlite3 or node-sqlite3 Database opened through `ha` on a started node
 * @param {'voter'|'learner'|{role?: string, ttl_s?: number, uses?: number}} [options]
 *   default 'voter', valid 1 hour, one join; `ttl_s` and `uses` change that.
 * @returns {string} (better-sqlite3) or {Promise<string>} (node-sqlite3): one line of text
 *   starting `dqvfs-join1.`.
 */
function issueToken(db, options) {
  const argument = tokenArgument(options);
  if (isBetterSqlite3(db)) return db.prepare('SELECT ha_token(?)').pluck().get(argument);
  if (typeof db.get === 'function') {
    return new Promise((resolve, reject) =>
      db.get('SELECT ha_token(?) AS token', [argument], (error, row) => (error ? reject(error) : resolve(row.token))),
    );
  }
  throw new TypeError('dqlite-vfs: issueToken() takes a better-sqlite3 or sqlite3 (node-sqlite3) Database');
}

module.exports = { issueToken };
