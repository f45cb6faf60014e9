"""The command ``make demo`` prints at its end works in the project's own venv.

``make install`` installs the ``notebooks`` extra (JupyterLab); without it
``jupyter lab notebooks/01_quickstart.ipynb`` fails with "Jupyter command
`jupyter-lab` not found". The check runs the ``jupyter`` next to the test's
interpreter, the venv's, not whatever ``jupyter`` is first on PATH.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_jupyter_lab_runs_from_the_venv() -> None:
    jupyter = Path(sys.executable).parent / "jupyter"
    assert jupyter.exists(), f"{jupyter} is missing: run `make install` (it installs '.[dev,notebooks]')"
    proc = subprocess.run(
        [str(jupyter), "lab", "--version"], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    major = int(proc.stdout.strip().split(".")[0])
    assert major >= 4, proc.stdout
