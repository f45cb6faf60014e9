"""Helpers shared by every test folder (fixtures themselves are in ``tests/conftest.py``).

Test modules import helpers from ``tests.<folder>.fixtures`` modules like
this one, never from a ``conftest.py``: pytest loads conftest files itself,
and importing one a second time under another name runs it twice.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["stack_env"]


def stack_env(state_dir: Path) -> dict[str, str]:
    """Environment variables that bind a subprocess to the test stack."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMBDA_RT_")}
    env["LAMBDA_RT_STATE_DIR"] = str(state_dir)
    return env
