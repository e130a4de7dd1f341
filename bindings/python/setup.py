"""Build hooks: bundle the native library into the package and tag the wheel as platform-specific.

The library is the repository's Rust cdylib. `build_py` puts a copy of it into
`dqlite_vfs/lib/`, taken from (first match wins):

1. `DQLITE_VFS_LIBRARY=/path/to/libdqlite_vfs.so` -- an already-built library;
2. otherwise `cargo build --release` in the repository root (a no-op when up to date;
   honours `CARGO_TARGET_DIR`), then `<target>/release/libdqlite_vfs.so`.

Everything else is declared in pyproject.toml.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

LIBRARY_NAME = "libdqlite_vfs.so"
HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent


def _built_library() -> Path:
    explicit = os.environ.get("DQLITE_VFS_LIBRARY")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise SystemExit(f"DQLITE_VFS_LIBRARY={explicit} is not a file")
        return path
    if not (REPO_ROOT / "Cargo.toml").is_file():
        raise SystemExit(
            "dqlite_vfs: no Cargo.toml at the repository root and DQLITE_VFS_LIBRARY is unset; "
            "install from a checkout of dqlite-vfs or point DQLITE_VFS_LIBRARY at a built library"
        )
    cargo = shutil.which("cargo")
    if cargo is None:
        raise SystemExit(
            "dqlite_vfs: building the native library needs Rust's cargo (https://rustup.rs), "
            "or set DQLITE_VFS_LIBRARY to an already-built libdqlite_vfs.so"
        )
    # Build where the developer builds, so a second install reuses the first build.
    subprocess.run([cargo, "build", "--release", "--lib"], cwd=REPO_ROOT, check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO_ROOT / "target"))
    if not target.is_absolute():
        target = REPO_ROOT / target
    return target / "release" / LIBRARY_NAME


class BuildPyWithLibrary(build_py):
    """Copies the native library into the package before the package is assembled."""

    def run(self) -> None:
        super().run()
        destination = Path(self.build_lib) / "dqlite_vfs" / "lib"
        destination.mkdir(parents=True, exist_ok=True)
        target = destination / LIBRARY_NAME
        shutil.copy2(_built_library(), target)
        _strip_debug_info(target)


def _strip_debug_info(library: Path) -> None:
    # The release profile keeps debug info (63 MB); the bundled copy drops it (~12 MB) but
    # keeps the symbol table, so backtraces still name functions.
    strip = shutil.which("strip")
    if strip:
        subprocess.run([strip, "--strip-debug", str(library)], check=False)


class NativeDistribution(Distribution):
    """Marks the distribution as non-pure so the wheel gets a platform tag (it holds a .so)."""

    def has_ext_modules(self) -> bool:
        return True


try:
    from wheel.bdist_wheel import bdist_wheel

    class PlatformWheel(bdist_wheel):
        """Tags the wheel py3-none-<platform>: no Python ABI dependency, but a native library."""

        def get_tag(self) -> tuple[str, str, str]:
            _, _, platform = super().get_tag()
            return "py3", "none", platform

    wheel_commands = {"bdist_wheel": PlatformWheel}
except ImportError:  # building without wheel (e.g. sdist only)
    wheel_commands = {}

setup(distclass=NativeDistribution, cmdclass={"build_py": BuildPyWithLibrary, **wheel_commands})
