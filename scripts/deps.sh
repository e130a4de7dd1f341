#!/usr/bin/env bash
# Installs what building and testing need on a fresh Debian machine: the Rust toolchain is
# expected (rustup); the stock sqlite3 shell is the host the SQL tests drive, and libsqlite3-dev
# lets ha-host link the same system SQLite.
set -euo pipefail
missing=()
command -v sqlite3 >/dev/null || missing+=(sqlite3)
# The ha-host process (host/) links rusqlite against the system libsqlite3, the same library
# the shell uses: the extension refuses a second SQLite library in one process.
dpkg -s libsqlite3-dev >/dev/null 2>&1 || missing+=(libsqlite3-dev)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
command -v cargo >/dev/null || { echo "cargo is missing: install Rust from https://rustup.rs" >&2; exit 1; }
# A real S3-compatible server for the archive tests (tests/common/s3.rs). Building it takes
# minutes and CI time counts, so it is a debug build (fast enough for tests) and skipped when already installed: cargo puts the binary
# in ~/.cargo/bin, built once per machine (and kept by CI where ~/.cargo is cached). Pinned:
# 0.14.0 is the newest release whose rust-version (1.92) our toolchain meets; 0.15+ need 1.96.
S3S_FS_VERSION=0.14.0
if ! command -v s3s-fs >/dev/null && [ ! -x "$HOME/.cargo/bin/s3s-fs" ]; then
  cargo install s3s-fs --locked --debug --version "$S3S_FS_VERSION" --features binary
fi
