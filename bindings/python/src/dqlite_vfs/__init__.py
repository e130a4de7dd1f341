"""dqlite_vfs: a Raft-replicated SQLite database from the SQLite driver you already use.

Quick start::

    import dqlite_vfs
    conn = dqlite_vfs.connect("n1.db", "127.0.0.1:7001")             # new cluster
    token = dqlite_vfs.issue_token(conn)                              # on a voter
    # elsewhere, given that token:
    conn = dqlite_vfs.connect("n2.db", "127.0.0.1:7002", join="127.0.0.1:7001", token=token)

Lower level: :func:`loadable_path` for the library file, :func:`load` to load it into a
connection you opened yourself, then open ``file:<path>?vfs=ha`` and call ``ha_init`` /
``ha_token`` / ``ha_join`` in SQL. :func:`restore` rebuilds a database from a continuous
archive (``ha_archive``), as of a point in time.
"""

from ._connect import connect, default_driver, ha_uri
from ._drivers import DifferentSqliteLibrary, ExtensionLoadingUnavailable, load
from ._library import LIBRARY_ENV, loadable_path
from ._restore import restore
from ._token import issue_token

__all__ = [
    "DifferentSqliteLibrary",
    "ExtensionLoadingUnavailable",
    "LIBRARY_ENV",
    "connect",
    "default_driver",
    "ha_uri",
    "issue_token",
    "load",
    "loadable_path",
    "restore",
]
__version__ = "0.1.0"
