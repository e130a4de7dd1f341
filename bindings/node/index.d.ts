/** A better-sqlite3 Database (structural: this package does not depend on better-sqlite3). */
export interface BetterSqlite3Database {
  loadExtension(file: string, entryPoint?: string): unknown;
  prepare(sql: string): unknown;
  pragma(source: string, options?: unknown): unknown;
  close(): unknown;
}

/** A node-sqlite3 (`sqlite3` package) Database. */
export interface NodeSqlite3Database {
  loadExtension(file: string, callback?: (error: Error | null) => void): unknown;
  get(sql: string, params: unknown[], callback: (error: Error | null, row: any) => void): unknown;
}

/** The better-sqlite3 export: `require('better-sqlite3')`. */
export type BetterSqlite3Constructor<D extends BetterSqlite3Database = BetterSqlite3Database> = new (
  file: string,
  options?: object,
) => D;

/** Environment variable that overrides the bundled library path. */
export const LIBRARY_ENV: 'DQLITE_VFS_LIBRARY';
/** Environment variable the extension reads at load time: `1` makes `ha` the default VFS. */
export const DEFAULT_VFS_ENV: 'DQLITE_VFS_DEFAULT';

/** Absolute path of the extension ($DQLITE_VFS_LIBRARY, else the bundled copy). */
export function getLoadablePath(): string;

/**
 * Load the extension through `db`: registers the `ha` VFS and the `ha_*` functions for the
 * process. Synchronous for better-sqlite3; a Promise for node-sqlite3.
 */
export function load(db: BetterSqlite3Database): void;
export function load(db: NodeSqlite3Database): Promise<void>;

/** As `load`, with `ha` made the default VFS (for better-sqlite3, which cannot pass `?vfs=ha`). */
export function loadAsDefaultVfs(db: BetterSqlite3Database): void;
export function loadAsDefaultVfs(db: NodeSqlite3Database): Promise<void>;

export interface NodeOptions {
  /** 'host:port' this node listens on for its peers. */
  addr: string;
  /** 'host:port' of any member to join; omit to start a new cluster (node 1). */
  join?: string | null;
  /**
   * With `join`: the join token `issueToken` / `ha_token()` returned on a voter; its role is
   * the role this node gets. A node that has joined resumes without it (the used one may be
   * passed again); a first join without one throws. Without `join`: a TypeError.
   */
  token?: string | null;
  /** Options passed to the better-sqlite3 constructor. */
  options?: object;
}

/**
 * Open `file` as a node with better-sqlite3 (loads with `ha` as the default VFS on first use),
 * then `ha_init` / `ha_join`; an existing node resumes. Returns the Database.
 */
export function openNode<D extends BetterSqlite3Database>(
  Database: BetterSqlite3Constructor<D>,
  file: string,
  node: NodeOptions,
): D;

/** `ha_token`'s options: the role alone, or an object with ha_token's JSON keys. */
export type TokenOptions =
  | 'voter'
  | 'learner'
  | {
      /** The role the joining node gets (default 'voter'). */
      role?: 'voter' | 'learner';
      /** Seconds until the token expires (default 3600). */
      ttl_s?: number;
      /** How many joins it admits (default 1). */
      uses?: number;
    };

/**
 * A join token (one line starting `dqvfs-join1.`) from the voter node `db` is open on:
 * `SELECT ha_token(options)`. Synchronous for better-sqlite3; a Promise for node-sqlite3.
 */
export function issueToken(db: BetterSqlite3Database, options?: TokenOptions): string;
export function issueToken(db: NodeSqlite3Database, options?: TokenOptions): Promise<string>;

declare const dqliteVfs: {
  getLoadablePath: typeof getLoadablePath;
  load: typeof load;
  loadAsDefaultVfs: typeof loadAsDefaultVfs;
  openNode: typeof openNode;
  issueToken: typeof issueToken;
  LIBRARY_ENV: typeof LIBRARY_ENV;
  DEFAULT_VFS_ENV: typeof DEFAULT_VFS_ENV;
};
export default dqliteVfs;
