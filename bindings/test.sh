#!/usr/bin/env bash
# Builds the library, installs the Python and Node packages the way a user would, and runs
# their tests: per-language API tests, a 3-node cluster per driver (leader SIGKILLed), and
# one mixed cluster (sqlite3 shell + Python + Node). Installs what it needs (Debian python3
# with venv, sqlite3 shell; PyPI pytest/apsw/pysqlite3-binary; npm better-sqlite3/sqlite3).
#
#   bindings/test.sh                 # everything
#   SKIP_BUILD=1 bindings/test.sh    # reuse $DQLITE_VFS_LIBRARY or the last build
#
# Work files go to a temp dir removed on exit; tests kill every process they start.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
work="$(mktemp -d /tmp/dqlite-vfs-bindings.XXXXXX)"
trap 'rm -rf "$work"' EXIT
started=$SECONDS

step() { printf '\n=== %s\n' "$*"; }

step "system packages"
missing=()
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3 python3-venv python3-pip)
command -v sqlite3 >/dev/null || missing+=(sqlite3)
command -v stdbuf >/dev/null || missing+=(coreutils)
command -v node >/dev/null || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${missing[@]}"
fi

step "library"
if [ -z "${SKIP_BUILD:-}" ]; then
  (cd "$repo" && cargo build --release --lib)
fi
export DQLITE_VFS_LIBRARY="${DQLITE_VFS_LIBRARY:-$target/release/libdqlite_vfs.so}"
[ -f "$DQLITE_VFS_LIBRARY" ] || { echo "no library at $DQLITE_VFS_LIBRARY" >&2; exit 1; }

step "python: install into a venv of Debian's python3 (its sqlite3 can load extensions)"
/usr/bin/python3 -m venv "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip install -q pytest apsw pysqlite3-binary
"$py" -m pip install -q "$here/python"
# Installed, the package must use its bundled copy: drop the override for the tests.
bundled="$("$py" -c 'import os; os.environ.pop("DQLITE_VFS_LIBRARY", None); import dqlite_vfs; print(dqlite_vfs.loadable_path())')"
echo "bundled library: $bundled"

step "node: npm install (better-sqlite3 and sqlite3 build from source against /usr headers)"
rm -rf "$here/node/native"  # node_modules is kept: rebuilding the drivers takes minutes
# The drivers are devDependencies; a root `npm install` also runs our install script (bundling).
(cd "$here/node" && npm_config_nodedir=/usr npm install --no-audit --no-fund >/dev/null)
# A user's install: `npm install ./bindings/node` from an application directory.
# --install-links copies the package (as from a tarball) instead of linking the folder, which
# would also prune the drivers installed above from bindings/node/node_modules.
mkdir "$work/app" && (cd "$work/app" && npm init -y >/dev/null && npm install --no-audit --no-fund --install-links "$here/node" >/dev/null \
  && env -u DQLITE_VFS_LIBRARY node -e "console.log('installed package library:', require('dqlite-vfs').getLoadablePath())")
node_worker="$here/node/test/worker.js"

status=0
step "python tests"
(cd "$here/python/tests" && env -u DQLITE_VFS_LIBRARY DQLITE_VFS_NODE_WORKER="$node_worker" \
  "$py" -m pytest -q -p no:cacheprovider --basetemp="$work/pytest" .) || status=1

step "node tests"
(cd "$here/node" && env -u DQLITE_VFS_LIBRARY node --test test/*.test.js) || status=1

step "done in $((SECONDS - started)) s (status $status)"
exit $status
