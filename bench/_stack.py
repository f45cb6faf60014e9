"""The throw-away embedded stack every benchmark runs on (broker in memory, free ports)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from lambda_rt.config import Settings
from lambda_rt.stack import free_stack_ports, running_stack

__all__ = ["bench_stack"]


@contextmanager
def bench_stack(prefix: str = "lrt-bench-") -> Iterator[Settings]:
    """Start S3, a memory-mode broker and Redis in a temp dir; stop and delete them after."""
    with (
        tempfile.TemporaryDirectory(prefix=prefix) as tmp,
        running_stack(tmp, **free_stack_ports(), broker_storage="memory") as settings,
    ):
        yield settings
