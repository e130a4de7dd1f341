"""One cluster, three hosts: a node in the sqlite3 shell, one in Python, one in Node.

Goal: the hosts interoperate -- each joins through another host's node with a token that
node issued, sees the others' writes, and the cluster goes on when the shell node (the
leader) is SIGKILLed.
Needs $DQLITE_VFS_NODE_WORKER (bindings/node/test/worker.js with better-sqlite3 installed).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import python_worker
from harness import Cluster, ShellNode, WorkerNode, join_token, leader_among, write_with_retry

import dqlite_vfs

PORTS = (17540, 17541, 17542)  # inside the Python tests' block 17500-17549
NODE_WORKER = os.environ.get("DQLITE_VFS_NODE_WORKER")


@pytest.mark.skipif(not NODE_WORKER or not shutil.which("node"), reason="DQLITE_VFS_NODE_WORKER not set")
@pytest.mark.skipif(not shutil.which("sqlite3") or not shutil.which("stdbuf"), reason="no sqlite3 shell")
def test_shell_python_node_cluster(cluster: Cluster, tmp_path: Path) -> None:
    shell_addr, py_addr, node_addr = (f"127.0.0.1:{p}" for p in PORTS)
    shell = cluster.add(ShellNode(dqlite_vfs.loadable_path(), tmp_path / "shell.db", shell_addr))
    python = cluster.add(WorkerNode(python_worker("sqlite3", tmp_path / "py.db", py_addr, shell_addr, join_token(shell))))
    # Node joins through the Python node, with a token the Python node issued: any voter will do.
    node_argv = ["node", str(NODE_WORKER), "better-sqlite3", str(tmp_path / "node.db"), node_addr, py_addr, join_token(python)]
    node = cluster.add(WorkerNode(node_argv))
    assert [shell.node_id, python.node_id, node.node_id] == [1, 2, 3]

    assert leader_among([shell, python, node]) is shell
    shell.request("CREATE TABLE t(id INTEGER PRIMARY KEY, host TEXT)")
    shell.request("INSERT INTO t VALUES (1, 'shell')")
    for follower in (python, node):
        follower.request("SELECT ha_barrier()")
        assert follower.request("SELECT id, host FROM t") == [[1, "shell"]]

    shell.kill()
    new_leader = leader_among([python, node])
    other = node if new_leader is python else python
    write_with_retry(new_leader, "INSERT OR REPLACE INTO t VALUES (2, 'after kill')")
    other.request("SELECT ha_barrier()")
    assert other.request("SELECT id, host FROM t ORDER BY id") == [[1, "shell"], [2, "after kill"]]
