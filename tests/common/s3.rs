//! A real S3-compatible server for tests: the `s3s-fs` binary (installed by scripts/deps.sh)
//! serving a temporary directory on 127.0.0.1, with fixed test credentials and one bucket.
//! The process is killed when the [`S3Server`] is dropped; `stop` / `restart` take it down
//! and bring it back on the same port and data, to test an archive store that goes away.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The bucket every server holds (a directory under its root).
pub const BUCKET: &str = "dqlite-test";
/// Test credentials; nothing else knows them.
pub const ACCESS_KEY: &str = "dqlite-test-access";
pub const SECRET_KEY: &str = "dqlite-test-secret-3c9d1f0a";

/// Bound on the wait for the server to accept connections after a start.
const READY_DEADLINE: Duration = Duration::from_secs(10);

/// A running `s3s-fs` on 127.0.0.1.
pub struct S3Server {
    /// Holds the data (`<root>/<bucket>/...`) and the server's log; removed on drop.
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

/// The `s3s-fs` binary: `$S3S_FS`, else on PATH, else in ~/.cargo/bin.
pub fn s3s_fs_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("S3S_FS") {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths).map(|dir| dir.join("s3s-fs")).find(|p| p.is_file())
    });
    let in_cargo = std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".cargo/bin/s3s-fs"))
        .filter(|p| p.is_file());
    on_path.or(in_cargo).expect("s3s-fs is needed for the S3 tests: run scripts/deps.sh")
}

impl S3Server {
    /// Starts a server on a free port with an empty bucket, and waits until it answers.
    pub fn start() -> S3Server {
        let dir = tempfile::Builder::new().prefix("dqlite-vfs-s3").tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("root").join(BUCKET)).expect("bucket dir");
        // The OS hands out a free port; it stays ours in practice until the server binds it.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free TCP port")
            .port();
        let mut server = S3Server { dir, port, child: None };
        server.restart();
        server
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn bucket(&self) -> &'static str {
        BUCKET
    }

    pub fn access_key(&self) -> &'static str {
        ACCESS_KEY
    }

    pub fn secret_key(&self) -> &'static str {
        SECRET_KEY
    }

    /// The directory the server stores objects in (`<root>/<bucket>/<key>`).
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// The `ha_archive` options JSON for this server (path-style, its credentials).
    pub fn options_json(&self) -> String {
        serde_json::json!({
            "endpoint": self.endpoint(),
            "region": "us-east-1",
            "path_style": true,
            "access_key_id": ACCESS_KEY,
            "secret_access_key": SECRET_KEY,
        })
        .to_string()
    }

    /// The `ha_archive` URL for objects under `prefix` in this server's bucket.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{BUCKET}/{prefix}")
    }

    /// Kills the server (its data stays); calls fail until [`S3Server::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// (Re)starts the server on the same port and data, and waits until it accepts
    /// connections.
    pub fn restart(&mut self) {
        self.stop();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("s3s-fs.log"))
            .expect("server log");
        let child = Command::new(s3s_fs_binary())
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(self.root())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("start s3s-fs");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let started = Instant::now();
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            let child = self.child.as_mut().expect("started");
            if let Ok(Some(status)) = child.try_wait() {
                panic!("s3s-fs exited with {status} at start; log:\n{}", self.log());
            }
            assert!(
                started.elapsed() < READY_DEADLINE,
                "s3s-fs did not accept connections on {addr} within {READY_DEADLINE:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's output so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("s3s-fs.log")).unwrap_or_default()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}
