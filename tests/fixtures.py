"""Helpers shared by every test folder (fixtures themselves are in ``tests/conftest.py``).

Test modules import helpers from ``tests.<folder>.fixtures`` modules like
this one, never from a ``conftest.py``: pytest loads conftest files itself,
and importing one a second time under another name runs it twice.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

__all__ = ["code_before_schema_v2", "stack_env"]


def stack_env(state_dir: Path) -> dict[str, str]:
    """Environment variables that bind a subprocess to the test stack."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMBDA_RT_")}
    env["LAMBDA_RT_STATE_DIR"] = str(state_dir)
    return env


def code_before_schema_v2(dest: Path) -> Path:
    """The project as it was just before schema v2, extracted under ``dest/old`` (a git archive).

    Tests run it as an old process beside the current code: a consumer or a
    writer that never heard of the v2 fields.
    """
    root = Path(__file__).resolve().parents[1]
    first_v2 = subprocess.run(
        ["git", "log", "--format=%H", "--reverse", "-S", "SCHEMA_V2", "--", "lambda_rt/events/schema.py"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[0]
    out = dest / "old"
    out.mkdir()
    archive = subprocess.run(["git", "archive", f"{first_v2}^"], cwd=root, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive.stdout, check=True)
    return out
