"""Shared fixtures: a Cluster that is always torn down, and the worker command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # harness.py, worker.py

from harness import Cluster  # noqa: E402

WORKER = str(Path(__file__).parent / "worker.py")


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    c = Cluster()
    try:
        yield c
    finally:
        c.close()


def python_worker(driver: str, db: Path, addr: str, peer: str | None = None, token: str | None = None) -> list[str]:
    """The worker's command line; a joining node (`peer`) normally needs a `token` too."""
    return [sys.executable, WORKER, driver, str(db), addr, *([peer] if peer else []), *([token] if token else [])]
