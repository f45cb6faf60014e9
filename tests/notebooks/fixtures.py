"""Types shared by the notebook fixture (``conftest.py``) and the notebook tests."""

from __future__ import annotations

from dataclasses import dataclass

from lambda_rt.config import Settings

__all__ = ["NotebookWorld"]


@dataclass(frozen=True)
class NotebookWorld:
    """What the notebook tests need: the kernels' env and the daemon's URL."""

    env: dict[str, str]
    settings: Settings
    url: str
    produced: int
