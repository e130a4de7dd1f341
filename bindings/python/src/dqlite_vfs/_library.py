"""Where the native library is: the copy bundled in this package, or an override."""

from __future__ import annotations

import os
from pathlib import Path

LIBRARY_ENV = "DQLITE_VFS_LIBRARY"
"""Point this at a libdqlite_vfs.so to use it instead of the bundled one (e.g. a dev build)."""

_BUNDLED = Path(__file__).resolve().parent / "lib" / "libdqlite_vfs.so"


def loadable_path() -> str:
    """Return the absolute path of the dqlite-vfs SQLite extension to load.

    ``$DQLITE_VFS_LIBRARY`` wins over the library bundled at install time, so a
    freshly built library can be tried without reinstalling.

    Raises:
        FileNotFoundError: neither the override nor the bundled library exists.
    """
    override = os.environ.get(LIBRARY_ENV)
    path = Path(override) if override else _BUNDLED
    if not path.is_file():
        origin = f"${LIBRARY_ENV}" if override else "the bundled library"
        raise FileNotFoundError(f"dqlite_vfs: {origin} {path} does not exist; reinstall the package or set ${LIBRARY_ENV}")
    return str(path.resolve())
