//! What the host tests share: the host binary, the extension under test, and clusters of
//! them on this file's ports (cargo runs test binaries one at a time, so each binary may use
//! all of 17690-17699).

use std::path::PathBuf;
use std::time::Duration;

use ha_host::cluster::{free_udp_ports, Cluster, ClusterConfig};
use ha_host::process::{HostCommand, HostError, HostProcess};
use ha_host::protocol::Statement;

/// The host tests' Raft ports.
pub const PORTS: std::ops::Range<u16> = 17690..17700;

pub fn host_command() -> HostCommand {
    HostCommand::binary(env!("CARGO_BIN_EXE_ha-host"))
}

/// `$DQLITE_VFS_LIBRARY`, else the library built next to the test (target/<profile>/).
pub fn extension() -> PathBuf {
    if let Some(path) = std::env::var_os("DQLITE_VFS_LIBRARY") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test binary path");
    let lib = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps")
        .join("libdqlite_vfs.so");
    assert!(
        lib.exists(),
        "{} is missing: run `cargo build` (the root package) first",
        lib.display()
    );
    lib
}

/// Starts `nodes` hosts as a cluster on free ports of [`PORTS`], looking from `port_hint`
/// (tests of one binary that run at once use different hints).
#[allow(dead_code)] // not every test binary starts a cluster
pub fn start_cluster(nodes: usize, port_hint: u16) -> Cluster {
    let ports = free_udp_ports(PORTS, nodes, port_hint).expect("free ports in 17690-17699");
    let config = ClusterConfig {
        command: host_command(),
        extension: extension(),
        ports,
        env: Vec::new(),
        parent_dir: None,
        keep_dir: false,
    };
    Cluster::start(&config).expect("start the cluster")
}

/// Retries a write until it succeeds or `deadline` passes: right after an election the new
/// leader refuses writes (SQLITE_READONLY, SQLITE_IOERR_WRITE) until it applied its first entry.
#[allow(dead_code)] // not every test binary writes through a failover
pub fn write_until(
    host: &HostProcess,
    statements: Vec<Statement>,
    deadline: Duration,
) -> Result<(), HostError> {
    let until = std::time::Instant::now() + deadline;
    loop {
        match host.exec("main", statements.clone(), true) {
            Ok(_) => return Ok(()),
            Err(error)
                if std::time::Instant::now() < until
                    && error.sql().is_some_and(|e| matches!(e.extended, Some(8 | 778))) =>
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(error) => return Err(error),
        }
    }
}
