"""Every notebook runs top to bottom against the test stack; none is committed with outputs.

The kernels get the ``notebook_world`` environment (``LAMBDA_RT_STATE_DIR`` of
a private state dir whose daemon serves data that went through both layers),
so each notebook's first cell is just ``serving.connect()``.
"""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.notebooks.fixtures import NotebookWorld

NOTEBOOKS = (
    "01_quickstart.ipynb",
    "02_speed_vs_batch.ipynb",
    "03_tiers_and_backfill.ipynb",
    "04_fraud_signals.ipynb",
    "05_campaigns.ipynb",
)
NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"


def test_the_notebooks_exist() -> None:
    assert sorted(p.name for p in NOTEBOOKS_DIR.glob("*.ipynb")) == sorted(NOTEBOOKS)


@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS_DIR.glob("*.ipynb")))
def test_committed_without_outputs(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS_DIR / name, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{name}: cells {dirty} have outputs; strip them (jupyter nbconvert --clear-output)"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name: str, notebook_world: NotebookWorld, tmp_path: Path) -> None:
    nb = nbformat.read(NOTEBOOKS_DIR / name, as_version=4)
    client = NotebookClient(
        nb,
        timeout=180,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS_DIR)}},
    )
    t0 = time.monotonic()
    client.execute(env=notebook_world.env)  # raises CellExecutionError with the cell and traceback
    seconds = time.monotonic() - t0
    nbformat.write(nb, tmp_path / name)  # executed copy, for a look after a failure
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    images = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})
    ]
    if name == "05_campaigns.ipynb":
        assert len(images) >= 3, "the funnel, the side-by-side and the hourly plots must render"
    print(f"{name}: {seconds:.1f} s")
