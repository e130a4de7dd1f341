#!/usr/bin/env bash
# Runs the demo SQL (default docs/demo.sql) with the given build of the library in a scratch
# directory, prints its output, and exits 0 only if it went as README shows: the shell exits 1
# after any failed statement, and the demo shows one failure on purpose (a write on a
# follower), so success is that refusal being the only error and the final status showing a
# follower. Used by ./demo (release build) and by tests/t21_demo.rs (debug build).
set -euo pipefail
library=${1:?usage: scripts/run_demo.sh LIBRARY.so [SCRIPT.sql]}
script=$(realpath "${2:-$(dirname "$0")/../docs/demo.sql}")
library=$(realpath "$library")
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cp "$library" "$scratch/libdqlite_vfs.so"
cd "$scratch"
echo "--- running $script in $scratch"
set +e
sqlite3 < "$script" 2>&1 | tee demo.out
set -e
errors=$(grep -cE '^(Parse|Runtime) error' demo.out || true)
if [ "$errors" != 1 ] || ! grep -q 'attempt to write a readonly database' demo.out || ! grep -q '"role":"follower"' demo.out; then
  echo "--- the demo did not go as shown: expected exactly one error (the follower's refusal) and a final status" >&2
  exit 1
fi
echo "--- demo ok"
