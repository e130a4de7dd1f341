"""Loading is idempotent in every Python driver: through the C API (`load_extension()`) and
through SQL (`SELECT load_extension(...)`), on connections opened before and after the first
load, any number of times. Each driver runs in a process of its own, since the extension
serves one SQLite library per process."""

from __future__ import annotations

import importlib.util
import sqlite3
import subprocess
import sys

import pytest

import dqlite_vfs

# Run in a fresh interpreter: argv = [driver, library]. Prints "done" once every load went through
# and every connection has the functions.
SCRIPT = r"""
import sys
driver, lib = sys.argv[1], sys.argv[2]
if driver == "apsw":
    import apsw
    def connect():
        conn = apsw.Connection(":memory:")
        (getattr(conn, "enable_load_extension", None) or conn.enableloadextension)(True)
        return conn
    def load(conn):
        (getattr(conn, "load_extension", None) or conn.loadextension)(lib)
    def query(conn, sql):
        return list(conn.execute(sql))
else:
    module = __import__("pysqlite3.dbapi2" if driver == "pysqlite3" else "sqlite3", fromlist=["_"])
    def connect():
        conn = module.connect(":memory:")
        conn.enable_load_extension(True)
        return conn
    def load(conn):
        conn.load_extension(lib)
    def query(conn, sql):
        return conn.execute(sql).fetchall()
def sql_load(conn):
    query(conn, "SELECT load_extension('" + lib.replace("'", "''") + "')")

before = connect()  # opened before the first load: it has no ha_* functions yet
first = connect()
load(first); load(first); sql_load(first); sql_load(first)
later = connect()  # opened after: the auto-extension gave it the functions already
sql_load(later); load(later); sql_load(later)
sql_load(before); load(before); sql_load(before)
for conn in (before, first, later):
    assert query(conn, "SELECT quote(ha_last_error())") == [("NULL",)]
print("done")
"""


def available(driver: str) -> bool:
    if driver == "sqlite3":
        return hasattr(sqlite3.Connection, "enable_load_extension")
    return importlib.util.find_spec(driver) is not None


@pytest.mark.parametrize("driver", ["sqlite3", "pysqlite3", "apsw"])
def test_loading_again_through_the_c_api_and_sql(driver: str) -> None:
    if not available(driver):
        pytest.skip(f"{driver} cannot load extensions here")
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, driver, dqlite_vfs.loadable_path()],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "done"
