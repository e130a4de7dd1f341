"""One cluster node in its own process, driven over stdin/stdout by the tests.

Protocol (one JSON object per line): the worker first prints {"ready": node_id} or
{"error": message}; then for each {"sql": ..., "params": [...]} it reads, it prints
{"rows": [[...], ...]} or {"error": message}. A node must live in its own process so a
test can SIGKILL it like a crashed machine.

    python worker.py DRIVER DB ADDR [PEER [TOKEN]]      DRIVER: sqlite3 | apsw | pysqlite3

With PEER the node joins through that member, admitted by TOKEN (from ha_token() on a voter);
without TOKEN only an existing node can resume, and a fresh join reports the refusal.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any, Optional

import dqlite_vfs

DRIVER_MODULES = {"sqlite3": "sqlite3", "apsw": "apsw", "pysqlite3": "pysqlite3.dbapi2"}


def reply(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def open_node(driver: str, db: str, addr: str, peer: Optional[str], token: Optional[str]) -> Any:
    module = importlib.import_module(DRIVER_MODULES[driver])
    # Autocommit: each request is its own transaction, like the sqlite3 shell.
    kwargs = {} if driver == "apsw" else {"isolation_level": None}
    return dqlite_vfs.connect(db, addr, join=peer, token=token, driver=module, **kwargs)


def main(argv: list[str]) -> int:
    driver, db, addr = argv[1:4]
    peer = argv[4] if len(argv) > 4 else None
    token = argv[5] if len(argv) > 5 else None
    try:
        conn = open_node(driver, db, addr, peer, token)
        node_id = conn.execute("SELECT json_extract(ha_status(), '$.node_id')").fetchall()[0][0]
    except Exception as error:  # report, don't trace: the harness shows the message
        reply({"error": f"{type(error).__name__}: {error}"})
        return 1
    reply({"ready": node_id})
    for line in sys.stdin:
        request = json.loads(line)
        try:
            rows = conn.execute(request["sql"], request.get("params", [])).fetchall()
            reply({"rows": [list(row) for row in rows]})
        except Exception as error:
            reply({"error": f"{type(error).__name__}: {error}"})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
