"""Point-in-time restore from Python: `dqlite_vfs.restore` rebuilds a database from an archive.

Goal: the one-liner docs/ARCHIVE.md shows works: a node archives to a directory
(`ha_archive`), and `restore(path, url, {"at": ...})` returns the index restored and a
database holding exactly what was committed by then; a time before the archive's start is
refused with the extension's message.
Method: one node in this test process (default driver), an archive in a temp directory.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import dqlite_vfs

PORT = 17532  # inside the Python tests' block 17500-17549


def _archive(conn) -> dict:
    return json.loads(conn.execute("SELECT ha_status()").fetchall()[0][0])["archive"]


def _wait_archived(conn, index: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        status = _archive(conn)
        if (status["archived_index"] or 0) >= index and status["lag_entries"] == 0:
            return
        assert time.monotonic() < deadline, f"archive did not catch up to {index}: {status}"
        time.sleep(0.1)


def test_restore_as_of_a_time(tmp_path: Path) -> None:
    conn = dqlite_vfs.connect(tmp_path / "n1.db", f"127.0.0.1:{PORT}", isolation_level=None)
    url = f"file://{tmp_path / 'archive'}"
    conn.execute("CREATE TABLE t(k INTEGER PRIMARY KEY)")
    conn.execute("SELECT ha_archive(?, ?)", (url, json.dumps({"interval_ms": 100}))).fetchall()
    _wait_archived(conn, conn.execute("SELECT ha_barrier()").fetchall()[0][0])
    conn.execute("INSERT INTO t VALUES (1), (2)")
    time.sleep(0.05)
    moment = conn.execute("SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now')").fetchall()[0][0]
    time.sleep(0.05)
    conn.execute("INSERT INTO t VALUES (3)")
    _wait_archived(conn, conn.execute("SELECT ha_barrier()").fetchall()[0][0])

    index = dqlite_vfs.restore(tmp_path / "restored.db", url, {"at": moment})
    assert index > 0
    restored = dqlite_vfs.default_driver().connect(str(tmp_path / "restored.db"))
    assert restored.execute("SELECT k FROM t ORDER BY k").fetchall() == [(1,), (2,)]
    restored.close()

    with pytest.raises(Exception, match="archive starts later"):
        dqlite_vfs.restore(tmp_path / "early.db", url, {"at": "2000-01-01T00:00:00Z"})
