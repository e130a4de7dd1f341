"""Joining takes a token: `connect(join=...)` without one is refused, with one it succeeds.

Goal: what a user meets on a first join -- no token gets the extension's error saying a
token is needed (and leaves nothing behind that would break the next attempt);
`issue_token` returns a join token (`dqvfs-join1.`...), honours its options, and the token
admits the node through the same `connect` call.
Method: two nodes in this test process through the default driver (the package's own
`connect` and `issue_token`, not SQL typed by hand). They run until the process exits: a
node has no stop call short of `ha_leave`, and nothing here kills them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import dqlite_vfs

PORTS = (17530, 17531)  # inside the Python tests' block 17500-17549


def test_join_needs_a_token_and_issue_token_makes_one(tmp_path: Path) -> None:
    first, second = (f"127.0.0.1:{p}" for p in PORTS)
    n1 = dqlite_vfs.connect(tmp_path / "n1.db", first)

    with pytest.raises(Exception, match="(?i)token") as refused:
        dqlite_vfs.connect(tmp_path / "n2.db", second, join=first)
    assert "ha_token" in str(refused.value)  # the message says where a token comes from

    learner = dqlite_vfs.issue_token(n1, role="learner", ttl_s=600, uses=3)
    assert learner.startswith("dqvfs-join1.") and "\n" not in learner
    tokens = json.loads(n1.execute("SELECT ha_status()").fetchall()[0][0])["tokens"]
    assert [(t["role"], t["uses_left"]) for t in tokens] == [("learner", 3)]

    token = dqlite_vfs.issue_token(n1)
    assert token.startswith("dqvfs-join1.")
    n2 = dqlite_vfs.connect(tmp_path / "n2.db", second, join=first, token=token)
    status = json.loads(n2.execute("SELECT ha_status()").fetchall()[0][0])
    assert (status["node_id"], status["role"]) == (2, "follower")

