"""Opening a node database: pick a driver, load the extension, open through `ha`, start the node."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import Any, Optional, Union
from urllib.parse import quote

from ._drivers import ExtensionLoadingUnavailable, _NO_LOADING_HINT, load

VFS_NAME = "ha"


def default_driver() -> ModuleType:
    """The first usable driver: stdlib sqlite3 if it can load extensions, else pysqlite3, else apsw."""
    import sqlite3

    if hasattr(sqlite3.Connection, "enable_load_extension"):
        return sqlite3
    for name in ("pysqlite3.dbapi2", "apsw"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ExtensionLoadingUnavailable(f"dqlite_vfs: {_NO_LOADING_HINT}")


def ha_uri(path: Union[str, "os.PathLike[str]"]) -> str:
    """The SQLite URI that opens ``path`` through the ``ha`` VFS (absolute, %-escaped)."""
    absolute = Path(path).resolve()
    return f"file:{quote(str(absolute), safe='/')}?vfs={VFS_NAME}"


def connect(
    path: Union[str, "os.PathLike[str]"],
    addr: str,
    join: Optional[str] = None,
    *,
    token: Optional[str] = None,
    driver: Optional[ModuleType] = None,
    **kwargs: Any,
) -> Any:
    """Open ``path`` as a node of a replicated database and return the connection.

    Args:
        path: the database file; the node keeps its Raft state in ``<path>-ha/``.
        addr: ``host:port`` this node listens on for its peers, e.g. ``127.0.0.1:7001``.
        join: ``host:port`` of any member to join that cluster; ``None`` starts a new
            cluster with this node as node 1. Either way an existing node resumes, so the
            same call is used on every start.
        token: the join token that ``ha_token()`` (or :func:`issue_token`) returned on a
            voter of that cluster; only with ``join``. Its role (voter or learner) is the
            role this node gets. A node that has joined already resumes without checking
            the token, so the used (or expired) one, or ``None``, may be passed again on
            later starts; a first join without a token fails with the extension's error
            saying that a token is needed.
        driver: ``sqlite3``, ``pysqlite3.dbapi2`` or ``apsw``; default: see
            :func:`default_driver`.
        **kwargs: passed on to the driver's ``connect`` (``apsw.Connection`` for apsw),
            e.g. ``isolation_level=None``.

    Returns:
        The driver's connection; writes succeed on the leader only (followers are read-only).

    Raises:
        ExtensionLoadingUnavailable: no driver here can load extensions.
        ValueError: ``token`` without ``join``.
    """
    if token is not None and join is None:
        # ha_init takes no token: refusing here beats silently starting a new cluster.
        raise ValueError("dqlite_vfs.connect: token is for joining a cluster; pass join='host:port' too")
    module = driver or default_driver()
    _load_once(module)
    uri = ha_uri(path)
    if module.__name__ == "apsw":
        conn = module.Connection(uri, flags=module.SQLITE_OPEN_READWRITE | module.SQLITE_OPEN_CREATE | module.SQLITE_OPEN_URI, **kwargs)
    else:
        conn = module.connect(uri, uri=True, **kwargs)
    try:
        if join is None:
            conn.execute("SELECT ha_init(?)", (addr,)).fetchall()
        else:
            # A NULL token is passed on as such: a resume needs none, and a first join
            # without one gets the extension's own error, which says how to get a token.
            conn.execute("SELECT ha_join(?, ?, ?)", (addr, join, token)).fetchall()
    except BaseException:
        conn.close()
        raise
    return conn


def _load_once(module: ModuleType) -> None:
    # The extension stays loaded for the process (it asks SQLite to keep it), so loading
    # into a throw-away in-memory connection gives all later connections the VFS.
    bootstrap = module.Connection(":memory:") if module.__name__ == "apsw" else module.connect(":memory:")
    try:
        load(bootstrap)
    finally:
        bootstrap.close()
