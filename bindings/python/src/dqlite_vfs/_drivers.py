"""Loading the extension into a connection, for each Python SQLite driver.

Drivers are recognised by the module their connection class comes from, so none of
them has to be installed for the others to work.
"""

from __future__ import annotations

from typing import Any, Optional

from ._library import loadable_path


class ExtensionLoadingUnavailable(RuntimeError):
    """The driver's SQLite was built without loadable-extension support."""


_NO_LOADING_HINT = (
    "this Python's sqlite3 module was built without extension loading "
    "(Connection.enable_load_extension is missing; pyenv, python.org and some other builds "
    "are like that). Use apsw (`pip install apsw`) or pysqlite3 (`pip install pysqlite3-binary`), "
    "e.g. dqlite_vfs.connect(..., driver=apsw), or a Python built with "
    "--enable-loadable-sqlite-extensions (such as Debian's /usr/bin/python3)"
)


class DifferentSqliteLibrary(RuntimeError):
    """The extension is already loaded through another driver's SQLite in this process."""


# The driver the extension was first loaded through. The extension binds to the first SQLite
# library that loads it; loading it into a second one in the same process (e.g. stdlib
# sqlite3, then apsw's bundled SQLite) crashes the process, so we refuse that up front.
_loaded_with: Optional[str] = None


def driver_name(conn: Any) -> str:
    """Return 'apsw', 'pysqlite3' or 'sqlite3' for a connection object, or raise TypeError."""
    module = type(conn).__module__ or ""
    root = module.split(".")[0].lstrip("_")  # the stdlib class lives in `sqlite3` / `_sqlite3`
    if root in ("apsw", "pysqlite3", "sqlite3"):
        return root
    raise TypeError(f"dqlite_vfs.load: unsupported connection type {type(conn).__module__}.{type(conn).__qualname__}")


def load(conn: Any) -> None:
    """Load the dqlite-vfs extension through ``conn`` (stdlib sqlite3, pysqlite3 or apsw).

    Loading registers the ``ha`` VFS and the ``ha_*`` SQL functions process-wide: they
    are on ``conn`` and on every connection the same SQLite library opens afterwards.
    Loading again is harmless.

    Raises:
        ExtensionLoadingUnavailable: the stdlib sqlite3 cannot load extensions here.
        TypeError: ``conn`` is not a connection of a supported driver.
        DifferentSqliteLibrary: already loaded through another driver in this process.
    """
    global _loaded_with
    path = loadable_path()
    name = driver_name(conn)
    if _loaded_with is not None and _loaded_with != name:
        raise DifferentSqliteLibrary(
            f"dqlite_vfs: already loaded through {_loaded_with} in this process; each driver has "
            f"its own SQLite library and the extension can serve only one: use {_loaded_with} here too"
        )
    if name == "apsw":
        _load_apsw(conn, path)
    else:
        _load_dbapi(conn, path)
    _loaded_with = name


def _load_dbapi(conn: Any, path: str) -> None:
    # The stdlib and pysqlite3 share one API; only the stdlib may lack it.
    if not hasattr(conn, "enable_load_extension"):
        raise ExtensionLoadingUnavailable(f"dqlite_vfs: {_NO_LOADING_HINT}")
    conn.enable_load_extension(True)
    try:
        conn.load_extension(path)
    finally:
        # Leave SQL-level load_extension() off, as it was: it is a code-injection risk.
        conn.enable_load_extension(False)


def _load_apsw(conn: Any, path: str) -> None:
    # apsw renamed enableloadextension/loadextension in 3.46; support both spellings.
    enable = getattr(conn, "enable_load_extension", None) or conn.enableloadextension
    load_ = getattr(conn, "load_extension", None) or conn.loadextension
    enable(True)
    try:
        load_(path)
    finally:
        enable(False)
