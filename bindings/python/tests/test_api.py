"""The package API without a cluster: paths, driver detection, error messages."""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path

import pytest

import dqlite_vfs
from dqlite_vfs import _drivers


def test_loadable_path_is_the_bundled_library() -> None:
    path = Path(dqlite_vfs.loadable_path())
    assert path.is_file() and path.name == "libdqlite_vfs.so"
    assert "site-packages" in str(path) or os.environ.get(dqlite_vfs.LIBRARY_ENV)


def test_override_must_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(dqlite_vfs.LIBRARY_ENV, "/nonexistent/libdqlite_vfs.so")
    with pytest.raises(FileNotFoundError, match="DQLITE_VFS_LIBRARY"):
        dqlite_vfs.loadable_path()


def test_ha_uri_is_absolute_and_escaped(tmp_path: Path) -> None:
    uri = dqlite_vfs.ha_uri(tmp_path / "a b?.db")
    assert uri == f"file:{tmp_path}/a%20b%3F.db?vfs=ha"


@pytest.mark.skipif(not hasattr(sqlite3.Connection, "enable_load_extension"), reason="no extension loading")
def test_load_into_stdlib_sqlite3_gives_ha_functions() -> None:
    conn = sqlite3.connect(":memory:")
    dqlite_vfs.load(conn)
    # In memory: the function exists but refuses, naming the reason.
    with pytest.raises(sqlite3.OperationalError, match="needs a database file"):
        conn.execute("SELECT ha_status()").fetchall()


def test_missing_extension_loading_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    class Connection:  # a stdlib-like connection without enable_load_extension
        pass

    Connection.__module__ = "sqlite3"
    with pytest.raises(dqlite_vfs.ExtensionLoadingUnavailable, match="apsw.*pysqlite3"):
        dqlite_vfs.load(Connection())


def test_unknown_connection_type_is_refused() -> None:
    with pytest.raises(TypeError, match="unsupported connection"):
        dqlite_vfs.load(object())


def test_driver_names() -> None:
    assert _drivers.driver_name(sqlite3.connect(":memory:")) == "sqlite3"
    if sys.modules.get("apsw") or __import__("importlib").util.find_spec("apsw"):
        import apsw

        assert _drivers.driver_name(apsw.Connection(":memory:")) == "apsw"


@pytest.mark.skipif(not hasattr(sqlite3.Connection, "enable_load_extension"), reason="no extension loading")
def test_second_sqlite_library_is_refused() -> None:
    # Loading into apsw's SQLite after the stdlib's would crash the process (library bug).
    apsw = pytest.importorskip("apsw")
    dqlite_vfs.load(sqlite3.connect(":memory:"))
    with pytest.raises(dqlite_vfs.DifferentSqliteLibrary, match="already loaded through sqlite3"):
        dqlite_vfs.load(apsw.Connection(":memory:"))


def test_token_without_join_is_refused(tmp_path: Path) -> None:
    # ha_init takes no token: a token means the caller meant to join, so don't start a new cluster.
    with pytest.raises(ValueError, match="join="):
        dqlite_vfs.connect(tmp_path / "n.db", "127.0.0.1:17549", token="dqvfs-join1.x")
    assert not (tmp_path / "n.db").exists()
