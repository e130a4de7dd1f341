//! Helpers shared by the integration tests: where the built extension and the real
//! `sqlite3` shell are, and scratch directories.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The `libdqlite_vfs.so` built alongside this test binary (target/<profile>/).
pub fn extension_path() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>");
    let lib = profile_dir.join("libdqlite_vfs.so");
    assert!(lib.exists(), "{} is missing: build the library first (cargo build)", lib.display());
    lib
}

/// The system `sqlite3` shell.
pub fn sqlite3_shell() -> PathBuf {
    let path = std::env::var_os("SQLITE3").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/bin/sqlite3"));
    assert!(path.exists(), "the sqlite3 shell is needed: apt-get install sqlite3 (or set SQLITE3)");
    path
}

/// A scratch directory holding a copy of the extension as `./libdqlite_vfs.so`, so scripts
/// can say `.load ./libdqlite_vfs` exactly as a user would.
pub fn scratch_with_extension() -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("dqlite-vfs-test").tempdir().expect("temp dir");
    std::fs::copy(extension_path(), dir.path().join("libdqlite_vfs.so")).expect("copy extension");
    dir
}
