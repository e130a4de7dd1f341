#!/usr/bin/env bash
# Formatting and lints, as CI runs them: rustfmt (rustfmt.toml) and clippy with every warning
# an error, over every crate and target. The crate turns on clippy::undocumented_unsafe_blocks
# in src/lib.rs, so an unsafe block without its `// SAFETY:` comment fails here.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
