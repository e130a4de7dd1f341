#!/usr/bin/env bash
# Installs what building and testing need on a fresh Debian machine: the Rust toolchain is
# expected (rustup); the stock sqlite3 shell is the host the SQL tests drive.
set -euo pipefail
missing=()
command -v sqlite3 >/dev/null || missing+=(sqlite3)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
command -v cargo >/dev/null || { echo "cargo is missing: install Rust from https://rustup.rs" >&2; exit 1; }
