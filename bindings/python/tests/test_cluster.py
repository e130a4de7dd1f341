"""A 3-node cluster formed through one Python driver, one node per process.

Goal: what a user of that driver relies on -- writes on the leader reach the followers,
followers refuse writes, and after the leader's process dies (SIGKILL) a new leader takes
writes and the killed node catches up when restarted with the same call.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from conftest import python_worker
from harness import REQUEST_TIMEOUT, Cluster, NodeError, WorkerNode, join_token, leader_among, wait_until, write_with_retry

# Ports 17500-17549 are reserved for the Python tests; each driver gets its own block.
DRIVERS = {"sqlite3": 17500, "apsw": 17510, "pysqlite3": 17520}


def driver_available(name: str) -> bool:
    if name == "sqlite3":
        import sqlite3

        return hasattr(sqlite3.Connection, "enable_load_extension")
    return importlib.util.find_spec(name) is not None


def rows(node: WorkerNode) -> list[list[object]]:
    node.request("SELECT ha_barrier()")
    return node.request("SELECT id, v FROM t ORDER BY id")


@pytest.mark.parametrize("driver", list(DRIVERS))
def test_three_nodes_survive_leader_kill(driver: str, cluster: Cluster, tmp_path: Path) -> None:
    if not driver_available(driver):
        pytest.skip(f"{driver} cannot load extensions in this Python")
    addrs = [f"127.0.0.1:{DRIVERS[driver] + i}" for i in range(3)]
    argv = [python_worker(driver, tmp_path / "n1.db", addrs[0])]
    nodes = [cluster.add(WorkerNode(argv[0]))]
    for i in (1, 2):  # each joiner is admitted by a token that node 1 issues just before
        argv.append(python_worker(driver, tmp_path / f"n{i + 1}.db", addrs[i], addrs[0], join_token(nodes[0])))
        nodes.append(cluster.add(WorkerNode(argv[i])))
    assert sorted(n.node_id for n in nodes) == [1, 2, 3]

    leader = leader_among(nodes)
    assert leader is nodes[0]
    leader.request("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    leader.request("INSERT INTO t VALUES (1, 'one'), (2, 'two')")
    followers = [n for n in nodes if n is not leader]
    for follower in followers:
        assert rows(follower) == [[1, "one"], [2, "two"]]
        with pytest.raises(NodeError, match="(?i)readonly"):
            follower.request("INSERT INTO t VALUES (3, 'refused')")

    leader.kill()
    new_leader = leader_among(followers)
    write_with_retry(new_leader, "INSERT OR REPLACE INTO t VALUES (3, 'three')")
    survivor = next(n for n in followers if n is not new_leader)
    assert rows(survivor) == [[1, "one"], [2, "two"], [3, "three"]]

    # The same startup call resumes the killed node; it catches up as a follower.
    restarted = cluster.add(WorkerNode(argv[0]))
    assert restarted.node_id == 1
    # Library bug (see bindings/README or the report): right after the resume, ha_barrier()
    # on the ex-leader fails with "raft: has to forward request to ..." until it learns the
    # new leader, so retry it within a deadline.
    wait_until(lambda: rows(restarted) == [[1, "one"], [2, "two"], [3, "three"]], REQUEST_TIMEOUT, "restarted node catching up")
