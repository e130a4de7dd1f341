//! Helpers shared by the integration tests: where the built extension and the real
//! `sqlite3` shell are, and scratch directories.

#![allow(dead_code)]

pub mod s3;
pub mod shell;

use std::net::UdpSocket;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

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
    let path = std::env::var_os("SQLITE3")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/sqlite3"));
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

/// Where the next [`free_udp_port`] search starts, so tests running in parallel in one
/// binary never hand out the same port (each test file has its own range).
static NEXT_PORT: AtomicU32 = AtomicU32::new(u32::MAX);

/// A 127.0.0.1 UDP port in `range` that nobody is bound to now (QUIC runs over UDP).
/// The search starts at an offset derived from our pid so that a rerun, or another checkout
/// running the same test, tends to pick different ports; it then walks the range round-robin.
pub fn free_udp_port(range: Range<u16>) -> u16 {
    let len = u32::from(range.end - range.start);
    assert!(len > 0, "empty port range");
    let _ = NEXT_PORT.compare_exchange(
        u32::MAX,
        std::process::id() % len,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..len {
        let offset = NEXT_PORT.fetch_add(1, Ordering::SeqCst) % len;
        let port = range.start + u16::try_from(offset).expect("offset < range length");
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free UDP port in {range:?}");
}
