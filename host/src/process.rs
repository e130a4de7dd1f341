//! One `ha-host` process seen from its parent: spawn it and wait for its ready line, send it
//! requests with a deadline, signal it (SIGKILL, SIGSTOP, SIGCONT), read its memory from
//! `/proc`. The child is SIGKILLed and reaped when the handle drops, and it exits by itself if
//! the parent dies (its stdin closes), so no test or bench leaves a node behind.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

use crate::protocol::{RepeatReport, RepeatSpec, Request, SqlError, Statement};

/// Deadline of a request that is not a timed loop (status, exec, barrier: `ha_barrier` itself
/// gives up after 15 s).
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(30);
/// How long a host may take to print its ready line (`ha_join` gives up after 60 s).
pub const READY_DEADLINE: Duration = Duration::from_secs(75);
/// Lines of a host's log quoted in an error.
const LOG_TAIL_LINES: usize = 20;

/// Errors of the harness side.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The process could not be started.
    #[error("starting {name}: {source}")]
    Spawn { name: String, source: std::io::Error },
    /// The process exited or failed before its ready line, or the line said it failed.
    #[error("{name} did not become ready: {detail}\n--- last lines of {log} ---\n{tail}")]
    NotReady { name: String, detail: String, log: String, tail: String },
    /// Talking to the process failed (it may have died or be stopped).
    #[error("{name}: {detail}")]
    Io { name: String, detail: String },
    /// No answer within the deadline.
    #[error("{name}: no answer within {deadline:?}")]
    Timeout { name: String, deadline: Duration },
    /// The answer was not what the protocol promises.
    #[error("{name}: bad answer: {detail}")]
    Protocol { name: String, detail: String },
    /// The host answered with an error (from SQLite, or a refused request).
    #[error("{name}: {error}")]
    Sql { name: String, error: SqlError },
}

impl HostError {
    /// The SQLite error, if the host answered with one.
    pub fn sql(&self) -> Option<&SqlError> {
        match self {
            HostError::Sql { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Which program runs a host: the `ha-host` binary, or another binary with a subcommand that
/// runs [`crate::cli::main_with_args`].
#[derive(Debug, Clone)]
pub struct HostCommand {
    pub program: PathBuf,
    pub prefix_args: Vec<OsString>,
}

impl HostCommand {
    /// The `ha-host` binary at `path`.
    pub fn binary(path: impl Into<PathBuf>) -> HostCommand {
        HostCommand { program: path.into(), prefix_args: Vec::new() }
    }

    /// The running executable itself, with `subcommand` first.
    pub fn self_exec(subcommand: &str) -> std::io::Result<HostCommand> {
        Ok(HostCommand { program: std::env::current_exe()?, prefix_args: vec![subcommand.into()] })
    }

    /// `$HA_HOST_BIN`, else `ha-host` next to the running executable or one directory up
    /// (tests run from `target/<profile>/deps/`).
    pub fn locate() -> Option<HostCommand> {
        if let Some(path) = std::env::var_os("HA_HOST_BIN") {
            return Some(HostCommand::binary(path));
        }
        let exe = std::env::current_exe().ok()?;
        let dir = exe.parent()?;
        [dir.join("ha-host"), dir.parent()?.join("ha-host")]
            .into_iter()
            .find(|p| p.exists())
            .map(HostCommand::binary)
    }
}

/// How to start one host.
#[derive(Debug, Clone)]
pub struct HostSpec {
    /// Label in errors.
    pub name: String,
    pub command: HostCommand,
    /// None: a host without the extension.
    pub extension: Option<PathBuf>,
    pub db: PathBuf,
    /// Plain SQLite (WAL, synchronous=FULL) instead of the `ha` VFS.
    pub plain: bool,
    /// SQL that makes or resumes the node, run before serving.
    pub startup: Vec<String>,
    /// Extra environment (e.g. `DQLITE_VFS_LOG`).
    pub env: Vec<(OsString, OsString)>,
    /// The host's stderr is appended here.
    pub log: PathBuf,
}

impl HostSpec {
    /// A host of `db` with the extension loaded and the given startup SQL; logs to `DB.log`.
    pub fn new(
        name: &str,
        command: &HostCommand,
        extension: Option<&Path>,
        db: &Path,
        startup: Vec<String>,
    ) -> HostSpec {
        let mut log = db.as_os_str().to_owned();
        log.push(".log");
        HostSpec {
            name: name.to_owned(),
            command: command.clone(),
            extension: extension.map(Path::to_path_buf),
            db: db.to_path_buf(),
            plain: false,
            startup,
            env: Vec::new(),
            log: PathBuf::from(log),
        }
    }
}

/// A running host process.
pub struct HostProcess {
    spec: HostSpec,
    child: Child,
    /// Held open: the host exits when it closes.
    _stdin: ChildStdin,
    addr: SocketAddr,
    startup: Value,
}

impl HostProcess {
    /// Starts the host and waits (at most [`READY_DEADLINE`]) for its ready line.
    pub fn spawn(spec: &HostSpec) -> Result<HostProcess, HostError> {
        let name = spec.name.clone();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log)
            .map_err(|source| HostError::Spawn { name: name.clone(), source })?;
        let mut command = Command::new(&spec.command.program);
        command.args(&spec.command.prefix_args).arg("--db").arg(&spec.db);
        if let Some(extension) = &spec.extension {
            command.arg("--extension").arg(extension);
        }
        if spec.plain {
            command.arg("--plain");
        }
        for sql in &spec.startup {
            command.arg("--startup").arg(sql);
        }
        command.envs(spec.env.iter().map(|(k, v)| (k, v)));
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(log);
        let mut child =
            command.spawn().map_err(|source| HostError::Spawn { name: name.clone(), source })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return Err(HostError::Spawn {
                name,
                source: std::io::Error::other("pipes were not set up"),
            });
        };
        let (sender, ready) = mpsc::channel();
        std::thread::spawn(move || {
            // The first line is the ready line; later output is drained so the pipe never fills.
            let mut lines = BufReader::new(stdout).lines();
            let _ = sender.send(lines.next());
            for _ in lines {}
        });
        let mut process = HostProcess {
            spec: spec.clone(),
            child,
            _stdin: stdin,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            startup: Value::Null,
        };
        let line = match ready.recv_timeout(READY_DEADLINE) {
            Ok(Some(Ok(line))) => line,
            Ok(_) => return Err(process.not_ready("exited before its ready line")),
            Err(_) => {
                return Err(process.not_ready(&format!("no ready line within {READY_DEADLINE:?}")))
            }
        };
        let ready: Value = serde_json::from_str(&line)
            .map_err(|e| process.not_ready(&format!("ready line {line:?}: {e}")))?;
        if ready["ready"] != json!(true) {
            return Err(process.not_ready(&format!("{}", ready["error"])));
        }
        let port = ready["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| process.not_ready(&format!("no port in {line}")))?;
        process.addr = SocketAddr::from(([127, 0, 0, 1], port));
        process.startup = ready["startup"].clone();
        Ok(process)
    }

    fn not_ready(&mut self, detail: &str) -> HostError {
        self.kill();
        let text = std::fs::read_to_string(&self.spec.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
        HostError::NotReady {
            name: self.spec.name.clone(),
            detail: detail.to_owned(),
            log: self.spec.log.display().to_string(),
            tail,
        }
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn spec(&self) -> &HostSpec {
        &self.spec
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the startup SQL returned (the node id for `ha_init`/`ha_join`).
    pub fn startup_result(&self) -> &Value {
        &self.startup
    }

    /// The TCP address the host serves on.
    pub fn control_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A persistent connection to the host, for many requests in a row.
    pub fn client(&self) -> Result<Client, HostError> {
        Client::connect(&self.spec.name, self.addr)
    }

    /// One request on a fresh connection; the answer's fields, or the host's error.
    pub fn request(&self, request: &Request, deadline: Duration) -> Result<Value, HostError> {
        self.client()?.request(request, deadline)
    }

    /// `exec` on a named connection: each statement's `{columns, rows, changes}`.
    pub fn exec(
        &self,
        conn: &str,
        statements: Vec<Statement>,
        tx: bool,
    ) -> Result<Vec<Value>, HostError> {
        let answer = self
            .request(&Request::Exec { conn: conn.to_owned(), statements, tx }, REQUEST_DEADLINE)?;
        match answer.get("results") {
            Some(Value::Array(results)) => Ok(results.clone()),
            _ => Err(self.protocol(&format!("exec answered {answer}"))),
        }
    }

    /// The rows of one statement on the main connection.
    pub fn query(&self, sql: &str) -> Result<Vec<Value>, HostError> {
        let results =
            self.exec(crate::protocol::MAIN_CONNECTION, vec![Statement::new(sql)], false)?;
        match results.first().and_then(|r| r.get("rows")) {
            Some(Value::Array(rows)) => Ok(rows.clone()),
            _ => Err(self.protocol("exec without rows")),
        }
    }

    /// `ha_status()`, parsed.
    pub fn status(&self) -> Result<Value, HostError> {
        let answer = self.request(&Request::Status, REQUEST_DEADLINE)?;
        Ok(answer["status"].clone())
    }

    /// A join token from this node (`ha_token(role)`, `role` 'voter' or 'learner'): what a
    /// new node's `ha_join` needs.
    pub fn token(&self, role: &str) -> Result<String, HostError> {
        let rows = self.query(&format!("SELECT ha_token('{role}')"))?;
        rows.first()
            .and_then(|row| row.get(0))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| self.protocol(&format!("ha_token answered {rows:?}")))
    }

    /// `ha_barrier()`: the applied index once this node caught up with the cluster.
    pub fn barrier(&self) -> Result<i64, HostError> {
        let answer = self.request(&Request::Barrier, REQUEST_DEADLINE)?;
        answer["index"].as_i64().ok_or_else(|| self.protocol(&format!("barrier answered {answer}")))
    }

    /// A timed loop in the host; `deadline` bounds the wait for its answer.
    pub fn repeat(&self, spec: RepeatSpec, deadline: Duration) -> Result<RepeatReport, HostError> {
        let answer = self.request(&Request::Repeat(spec), deadline)?;
        serde_json::from_value(answer).map_err(|e| self.protocol(&format!("repeat answer: {e}")))
    }

    fn protocol(&self, detail: &str) -> HostError {
        HostError::Protocol { name: self.spec.name.clone(), detail: detail.to_owned() }
    }

    fn signal(&self, signal: Signal) -> Result<(), HostError> {
        let pid = i32::try_from(self.child.id()).map_err(|_| self.protocol("pid out of range"))?;
        kill(Pid::from_raw(pid), signal).map_err(|e| HostError::Io {
            name: self.spec.name.clone(),
            detail: format!("{signal}: {e}"),
        })
    }

    /// SIGKILL and reap: the process gets no chance to shut down cleanly.
    pub fn kill(&mut self) {
        // Fails only if it already exited; reaping below covers that case.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGSTOP: the process freezes (its sockets stay open, nothing answers).
    pub fn stop(&self) -> Result<(), HostError> {
        self.signal(Signal::SIGSTOP)
    }

    /// SIGCONT after [`HostProcess::stop`].
    pub fn cont(&self) -> Result<(), HostError> {
        self.signal(Signal::SIGCONT)
    }

    /// Waits for the process to exit, at most `deadline`; None if it still runs.
    pub fn wait(&mut self, deadline: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + deadline;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Peak resident memory (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> Result<u64, HostError> {
        self.proc_status_kib("VmHWM:")
    }

    /// Current resident memory (VmRSS), in KiB.
    pub fn rss_kib(&self) -> Result<u64, HostError> {
        self.proc_status_kib("VmRSS:")
    }

    /// CPU time (user plus system, all threads) the process has used so far.
    pub fn cpu_time(&self) -> Result<Duration, HostError> {
        let path = format!("/proc/{}/stat", self.child.id());
        let text = std::fs::read_to_string(&path).map_err(|e| HostError::Io {
            name: self.spec.name.clone(),
            detail: format!("{path}: {e}"),
        })?;
        // Fields after the command name (which may hold spaces, so split after its ')'):
        // state is field 3, utime and stime are fields 14 and 15 (proc(5)).
        let rest = text.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
        let (Some(user), Some(system)) = (ticks(11), ticks(12)) else {
            return Err(self.protocol(&format!("no utime/stime in {path}")));
        };
        let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .and_then(|t| u64::try_from(t).ok())
            .unwrap_or(100);
        Ok(Duration::from_micros((user + system) * 1_000_000 / per_second.max(1)))
    }

    /// Context switches (voluntary and not) of every thread the process has run so far,
    /// summed: each is a hand-off between threads or a wait for a core, which is what a
    /// replicated commit spends most of its time on (docs/PERFORMANCE.md). Asked of the host
    /// itself: /proc lists only live threads, and a host serves each request on a thread
    /// that ends with it.
    pub fn context_switches(&self) -> Result<u64, HostError> {
        let answer = self.request(&Request::Usage, REQUEST_DEADLINE)?;
        answer["context_switches"]
            .as_u64()
            .ok_or_else(|| self.protocol(&format!("usage answered {answer}")))
    }

    fn proc_status_kib(&self, field: &str) -> Result<u64, HostError> {
        let path = format!("/proc/{}/status", self.child.id());
        let text = std::fs::read_to_string(&path).map_err(|e| HostError::Io {
            name: self.spec.name.clone(),
            detail: format!("{path}: {e}"),
        })?;
        text.lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| self.protocol(&format!("no {field} in {path}")))
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A persistent TCP connection to one host.
pub struct Client {
    name: String,
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    /// How long connecting may take on loopback (a stopped host still accepts: the kernel does).
    const CONNECT_DEADLINE: Duration = Duration::from_secs(5);

    pub fn connect(name: &str, addr: SocketAddr) -> Result<Client, HostError> {
        let io = |e: std::io::Error| HostError::Io {
            name: name.to_owned(),
            detail: format!("{addr}: {e}"),
        };
        let writer = TcpStream::connect_timeout(&addr, Self::CONNECT_DEADLINE).map_err(io)?;
        writer.set_nodelay(true).map_err(io)?;
        let reader = BufReader::new(writer.try_clone().map_err(io)?);
        Ok(Client { name: name.to_owned(), writer, reader })
    }

    /// Sends one request and waits at most `deadline` for its answer. After a timeout the
    /// connection is out of step (a late answer may still come): drop it.
    pub fn request(&mut self, request: &Request, deadline: Duration) -> Result<Value, HostError> {
        let name = self.name.clone();
        let io = |e: std::io::Error| HostError::Io { name: name.clone(), detail: e.to_string() };
        let line = serde_json::to_string(request)
            .map_err(|e| HostError::Protocol { name: self.name.clone(), detail: e.to_string() })?;
        self.writer.set_write_timeout(Some(deadline)).map_err(io)?;
        writeln!(self.writer, "{line}").and_then(|()| self.writer.flush()).map_err(io)?;
        let until = Instant::now() + deadline;
        let mut answer = String::new();
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(HostError::Timeout { name: self.name.clone(), deadline });
            }
            self.reader.get_ref().set_read_timeout(Some(left)).map_err(io)?;
            match self.reader.read_line(&mut answer) {
                Ok(0) => return Err(io(std::io::Error::other("connection closed (host exited?)"))),
                Ok(_) if answer.ends_with('\n') => break,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(HostError::Timeout { name: self.name.clone(), deadline });
                }
                Err(e) => return Err(io(e)),
            }
        }
        let answer: Value = serde_json::from_str(&answer).map_err(|e| HostError::Protocol {
            name: self.name.clone(),
            detail: format!("{e}: {answer}"),
        })?;
        if answer["ok"] == json!(true) {
            return Ok(answer);
        }
        let error: SqlError = serde_json::from_value(answer["error"].clone()).map_err(|e| {
            HostError::Protocol { name: self.name.clone(), detail: format!("{e}: {answer}") }
        })?;
        Err(HostError::Sql { name: self.name.clone(), error })
    }
}
