#!/usr/bin/env bash
# Formatting and lints, as CI runs them: rustfmt (rustfmt.toml) and clippy with every warning
# an error, over every crate and target of both workspaces (the extension's, and tools/ for
# ha-host, bench and faults). The crate turns on clippy::undocumented_unsafe_blocks in
# src/lib.rs, so an unsafe block without its `// SAFETY:` comment fails here.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
for manifest in Cargo.toml tools/Cargo.toml; do
  cargo fmt --manifest-path "$manifest" --all --check
  cargo clippy --manifest-path "$manifest" --workspace --all-targets -- -D warnings
done
