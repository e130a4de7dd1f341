"""Driving node processes from tests: spawn, request with a deadline, kill, clean up.

Every wait here is bounded; every process started is killed by `Cluster.close()`.
Worker processes (Python, Node) speak the JSON-lines protocol of worker.py; the sqlite3
shell is adapted to the same `request()` interface by `ShellNode`.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

REQUEST_TIMEOUT = 30.0
"""Seconds one SQL request may take (ha_join / ha_barrier can wait for the cluster)."""

ELECTION_TIMEOUT = 30.0
"""Seconds a new leader may take to appear after the old one is killed."""


class NodeError(Exception):
    """The node answered a request with an SQL error."""


def _pump(stream: Any, lines: "queue.Queue[Optional[str]]") -> None:
    # A thread per pipe so reads can have deadlines; None marks end of stream.
    for line in iter(stream.readline, ""):
        lines.put(line)
    lines.put(None)


class _Process:
    """A child process whose stdout lines are read with a deadline."""

    def __init__(self, argv: list[str], env: Optional[dict[str, str]] = None, merge_stderr: bool = False) -> None:
        self.argv = argv
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge_stderr else None,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self._lines: "queue.Queue[Optional[str]]" = queue.Queue()
        threading.Thread(target=_pump, args=(self.proc.stdout, self._lines), daemon=True).start()

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text)
        self.proc.stdin.flush()

    def read_line(self, timeout: float) -> str:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no answer within {timeout}s from {self.argv}") from None
        if line is None:
            raise EOFError(f"{self.argv} exited with {self.proc.wait(5)}")
        return line.rstrip("\n")

    def kill(self) -> None:
        """SIGKILL, like a machine losing power; then reap."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


class WorkerNode(_Process):
    """A node in a worker process (worker.py or the Node worker)."""

    def __init__(self, argv: list[str], env: Optional[dict[str, str]] = None) -> None:
        super().__init__(argv, env)
        first = json.loads(self.read_line(REQUEST_TIMEOUT))
        if "error" in first:
            self.kill()
            raise NodeError(first["error"])
        self.node_id: int = first["ready"]

    def request(self, sql: str, params: tuple[Any, ...] = (), timeout: float = REQUEST_TIMEOUT) -> list[list[Any]]:
        self.send(json.dumps({"sql": sql, "params": list(params)}) + "\n")
        answer = json.loads(self.read_line(timeout))
        if "error" in answer:
            raise NodeError(answer["error"])
        return answer["rows"]


class ShellNode(_Process):
    """A node in the sqlite3 command-line shell, fed statements on stdin.

    Output is JSON (`.mode json`) with stderr merged into stdout; `stdbuf -oL` keeps the
    two in order. Each request ends with a marker line so we know where its output stops.
    """

    MARKER = "__dqlite_vfs_request_done__"

    def __init__(self, library: str, db: Path, addr: str, peer: Optional[str] = None, token: Optional[str] = None) -> None:
        super().__init__(["stdbuf", "-oL", "-eL", "sqlite3", "-batch"], merge_stderr=True)
        self.send(f".load {library}\n.mode json\n.open file:{db}?vfs=ha\n")
        if peer is None:
            start = f"SELECT ha_init('{addr}') AS id"
        else:
            start = f"SELECT ha_join('{addr}', '{peer}', {sql_text(token)}) AS id"
        self.node_id = int(self.request(start)[0][0])

    def request(self, sql: str, params: tuple[Any, ...] = (), timeout: float = REQUEST_TIMEOUT) -> list[list[Any]]:
        if params:
            raise ValueError("ShellNode takes literal SQL only")
        self.send(f"{sql.rstrip(';')};\n.print {self.MARKER}\n")
        output: list[str] = []
        deadline = time.monotonic() + timeout
        while (line := self.read_line(max(0.1, deadline - time.monotonic()))) != self.MARKER:
            output.append(line)
        text = "\n".join(output).strip()
        if text.startswith(("Error", "Parse error", "Runtime error")):
            raise NodeError(text)
        return [list(row.values()) for row in json.loads(text)] if text else []


def sql_text(value: Optional[str]) -> str:
    """`value` as an SQL literal, for the shell, which takes no parameters."""
    return "NULL" if value is None else "'" + value.replace("'", "''") + "'"


Node = Any  # WorkerNode | ShellNode: anything with request() and kill()


def status(node: Node) -> dict[str, Any]:
    return json.loads(node.request("SELECT ha_status()")[0][0])


def join_token(node: Node) -> str:
    """A single-use voter token from `node`, which must be a running voter (joining needs one)."""
    return node.request("SELECT ha_token()")[0][0]


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `condition` until it returns a truthy value; errors count as 'not yet'."""
    deadline = time.monotonic() + timeout
    last_error: Optional[BaseException] = None
    while time.monotonic() < deadline:
        try:
            result = condition()
            if result:
                return result
        except (NodeError, TimeoutError) as error:
            last_error = error
        time.sleep(0.2)
    raise TimeoutError(f"{what} not within {timeout}s (last error: {last_error})")


def leader_among(nodes: list[Node], timeout: float = ELECTION_TIMEOUT) -> Node:
    """The node of `nodes` that reports itself leader (waiting for an election if needed)."""

    def find() -> Optional[Node]:
        for node in nodes:
            if status(node)["role"].lower() == "leader":
                return node
        return None

    return wait_until(find, timeout, "a leader")


def write_with_retry(node: Node, sql: str, params: tuple[Any, ...] = (), timeout: float = REQUEST_TIMEOUT) -> None:
    """A write on a just-elected leader may be refused until it commits its first entry."""
    wait_until(lambda: node.request(sql, params) is not None, timeout, f"write {sql!r}")


class Cluster:
    """The nodes of one test; `close()` kills whatever is still running."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []

    def add(self, node: Node) -> Node:
        self.nodes.append(node)
        return node

    def close(self) -> None:
        for node in self.nodes:
            node.kill()
