'use strict';
// Install step: put the native library into native/ so the package is self-contained.
// Source, first match wins:
//   1. DQLITE_VFS_LIBRARY=/path/to/libdqlite_vfs.so (an already-built library);
//   2. already bundled (a packed tarball ships native/libdqlite_vfs.so): keep it;
//   3. `cargo build --release` in the repository root (no-op when up to date; honours
//      CARGO_TARGET_DIR), then <target>/release/libdqlite_vfs.so.
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const LIBRARY = 'libdqlite_vfs.so';
const packageDir = path.resolve(__dirname, '..');
const repoRoot = path.resolve(packageDir, '..', '..');
const destination = path.join(packageDir, 'native', LIBRARY);

function fail(message) {
  console.error(`dqlite-vfs: ${message}`);
  process.exit(1);
}

function builtLibrary() {
  if (process.env.DQLITE_VFS_LIBRARY) {
    const explicit = path.resolve(process.env.DQLITE_VFS_LIBRARY);
    if (!fs.existsSync(explicit)) fail(`DQLITE_VFS_LIBRARY=${explicit} does not exist`);
    return explicit;
  }
  if (fs.existsSync(destination)) return null;
  if (!fs.existsSync(path.join(repoRoot, 'Cargo.toml'))) {
    fail('no bundled library, no repository to build it in, and DQLITE_VFS_LIBRARY is unset');
  }
  try {
    execFileSync('cargo', ['build', '--release', '--lib'], { cwd: repoRoot, stdio: 'inherit' });
  } catch (error) {
    fail(`building the native library needs Rust's cargo (https://rustup.rs), or set DQLITE_VFS_LIBRARY (${error.message})`);
  }
  const target = path.resolve(repoRoot, process.env.CARGO_TARGET_DIR || 'target');
  return path.join(target, 'release', LIBRARY);
}

const source = builtLibrary();
if (source) {
  fs.mkdirSync(path.dirname(destination), { recursive: true });
  fs.copyFileSync(source, destination);
  // The release profile keeps debug info (63 MB); the bundled copy drops it (~12 MB) but keeps
  // the symbol table. Best effort: without `strip` the full copy is used.
  try {
    execFileSync('strip', ['--strip-debug', destination], { stdio: 'ignore' });
  } catch {
    /* no strip: keep the unstripped copy */
  }
}
