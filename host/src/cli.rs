//! The `ha-host` command line, in the library so that another binary (the bench) can run the
//! host as a subcommand of itself: `bench host --db ...` is the same program as `ha-host --db ...`.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;

use crate::server::{run, HostConfig};
use crate::sqlite::DatabaseConfig;

/// A SQLite host process for dqlite-vfs nodes, driven by JSON lines over TCP.
#[derive(Parser)]
#[command(name = "ha-host", version)]
struct Args {
    /// The extension library (libdqlite_vfs.so); omit for a host without it.
    #[arg(long)]
    extension: Option<PathBuf>,
    /// The database file.
    #[arg(long)]
    db: PathBuf,
    /// Plain SQLite (default VFS, WAL, synchronous=FULL) instead of the `ha` VFS.
    #[arg(long)]
    plain: bool,
    /// SQL run on the main connection before serving, in order (repeatable).
    #[arg(long)]
    startup: Vec<String>,
    /// TCP port on 127.0.0.1 (0: chosen by the system, printed in the ready line).
    #[arg(long, default_value_t = 0)]
    port: u16,
}

/// Parses `args` (the first one is the program name) and runs the host; exits the process.
pub fn main_with_args(args: impl IntoIterator<Item = OsString>) -> ! {
    let args = Args::parse_from(args);
    let error = run(HostConfig {
        extension: args.extension,
        database: DatabaseConfig { path: args.db, plain: args.plain },
        startup: args.startup,
        port: args.port,
    });
    eprintln!("ha-host: {error}");
    std::process::exit(1);
}
