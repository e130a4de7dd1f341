"""Point-in-time restore from a continuous archive: the ``ha_restore`` SQL function, from Python."""

from __future__ import annotations

import json
import os
from types import ModuleType
from typing import Any, Optional, Union

from ._connect import _load_once, default_driver, ha_uri


def restore(
    path: Union[str, "os.PathLike[str]"],
    url: str,
    options: Optional[dict[str, Any]] = None,
    *,
    driver: Optional[ModuleType] = None,
) -> int:
    """Rebuild the empty database ``path`` from the archive at ``url``; return the log index restored.

    Runs ``SELECT ha_restore(url, options)`` on ``path`` opened through ``ha`` (not started as
    a node). See docs/ARCHIVE.md.

    Args:
        path: a database file that does not exist yet or holds no tables.
        url: ``s3://bucket/prefix`` or ``file:///dir``, as given to ``ha_archive``.
        options: ``{"at": "2026-12-04T09:31:49Z"}`` or ``{"index": 4711}`` (default: the last
            archived transaction), plus the store's options (``endpoint``, ``region``,
            ``path_style``, credentials) as for ``ha_archive``.
        driver: as for :func:`connect`.

    Raises:
        Exception: the driver's SQL error with the extension's message (a damaged object, a
            time outside the archive, a database that is not empty...).
    """
    module = driver or default_driver()
    _load_once(module)
    uri = ha_uri(path)
    if module.__name__ == "apsw":
        conn = module.Connection(uri, flags=module.SQLITE_OPEN_READWRITE | module.SQLITE_OPEN_CREATE | module.SQLITE_OPEN_URI)
    else:
        conn = module.connect(uri, uri=True)
    try:
        argument = None if options is None else json.dumps(options)
        row = conn.execute("SELECT ha_restore(?, ?)", (url, argument)).fetchall()[0]
        return int(row[0])
    finally:
        conn.close()
