//! Goal: the built extension links no SQLite library. Loaded into a host, it must call the
//! host's SQLite through the API table only; a libsqlite3 of its own would put a second SQLite
//! in the process (two sets of locks on one database file). `libsqlite3-sys`'s build script
//! asks the linker for the system libsqlite3 when pkg-config finds it, and only `--as-needed`
//! keeps that request out of the library, so this is checked on the artifact itself.
//! Method: `readelf -d` on target/<profile>/libdqlite_vfs.so; no NEEDED entry may name a
//! SQLite, and the dynamic section must have been read (it always needs libc).

mod common;

use std::process::Command;

/// The shared libraries the ELF file at `path` names as NEEDED.
fn needed_libraries(path: &std::path::Path) -> Vec<String> {
    let output = Command::new("readelf")
        .arg("-d")
        .arg(path)
        .output()
        .expect("readelf (binutils) runs: apt-get install binutils");
    assert!(
        output.status.success(),
        "readelf -d failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Lines look like: 0x0000000000000001 (NEEDED)  Shared library: [libc.so.6]
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.contains("(NEEDED)"))
        .filter_map(|line| Some(line.split_once('[')?.1.split_once(']')?.0.to_owned()))
        .collect()
}

#[test]
fn the_extension_needs_no_sqlite_library() {
    let library = common::extension_path();
    let needed = needed_libraries(&library);
    assert!(
        needed.iter().any(|name| name.starts_with("libc.so")),
        "the dynamic section of {} was not read: {needed:?}",
        library.display()
    );
    let sqlite: Vec<_> = needed.iter().filter(|name| name.contains("sqlite")).collect();
    assert!(sqlite.is_empty(), "{} links {sqlite:?}", library.display());
}
