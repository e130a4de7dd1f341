//! The demo's exit status: `scripts/run_demo.sh` (what `./demo` runs after its release build)
//! exits 0 when docs/demo.sql went as README shows, and non-zero when it did not.
//!
//! Method: run the script with this build of the library, once on docs/demo.sql and once on a
//! copy in which node 3 joins without its token (a step that fails where the demo shows
//! none); the demo's fixed ports (7001-7003) are used by no other test file.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run_demo(script: &Path) -> (bool, String) {
    let output = Command::new(repo().join("scripts/run_demo.sh"))
        .arg(common::extension_path())
        .arg(script)
        .output()
        .expect("run scripts/run_demo.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn the_demo_exits_0_when_it_went_as_shown_and_1_when_not() {
    let (ok, output) = run_demo(&repo().join("docs/demo.sql"));
    assert!(ok, "the demo failed:\n{output}");
    assert!(output.contains("--- demo ok"), "{output}");

    let demo = std::fs::read_to_string(repo().join("docs/demo.sql")).expect("docs/demo.sql");
    let broken = demo.replace(", CAST(readfile('node3.token') AS TEXT)", "");
    assert_ne!(broken, demo, "the demo no longer joins node 3 with a token read from a file");
    let scratch = tempfile::tempdir().expect("temp dir");
    let script = scratch.path().join("broken_demo.sql");
    std::fs::write(&script, broken).expect("write the broken demo");
    let (ok, output) = run_demo(&script);
    assert!(!ok, "a demo with a failed join must not exit 0:\n{output}");
    assert!(output.contains("did not go as shown"), "{output}");
}
