"""Issuing join tokens: the ``ha_token`` SQL function, from Python."""

from __future__ import annotations

import json
from typing import Any, Optional


def issue_token(conn: Any, role: str = "voter", ttl_s: Optional[int] = None, uses: Optional[int] = None) -> str:
    """Return a join token from the node that ``conn`` is open on, for :func:`connect`'s ``token``.

    Runs ``SELECT ha_token(...)``. The node must be a voter of a running cluster (a learner
    is refused); the token is recorded through the leader, so any voter will do. Pass the
    text to the joining node over a channel you trust: whoever holds it may join.

    Args:
        conn: a connection opened through ``ha`` on a started node (e.g. from :func:`connect`).
        role: ``"voter"`` or ``"learner"``: the role the joining node gets.
        ttl_s: seconds until the token expires; ``None``: the extension's default, 1 hour.
        uses: how many joins it admits; ``None``: the extension's default, one.

    Returns:
        One line of text starting with ``dqvfs-join1.``.

    Raises:
        Exception: the driver's SQL error (e.g. ``sqlite3.OperationalError``, ``apsw.SQLError``)
            with the extension's message: a bad option, a learner, no leader within the
            deadline, or no node started on this database.
    """
    options: dict[str, Any] = {"role": role}
    if ttl_s is not None:
        options["ttl_s"] = ttl_s
    if uses is not None:
        options["uses"] = uses
    # The bare role is ha_token's simplest form; the extension checks the values either way.
    argument = role if len(options) == 1 else json.dumps(options)
    row = conn.execute("SELECT ha_token(?)", (argument,)).fetchall()[0]
    return str(row[0])
