"""Chaos suite form selection: ``chaos_full`` scenarios run only in the full form.

The reduced form (CI, ``make test``) keeps a representative subset (a speed
kill -9, a daemon kill -9, the Redis-lost rebuild, fuzz and security); the rest
are marked ``chaos_full`` and *deselected* (never silently skipped) unless
``LAMBDA_RT_CHAOS=full`` (``make chaos``). The deselection is reported in one
line at collection time.
"""

from __future__ import annotations

import pytest

from tests.chaos.harness import FULL

__all__ = ["pytest_collection_modifyitems"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect ``chaos_full`` items in the reduced form and say so."""
    if FULL:
        return
    full_only = [item for item in items if item.get_closest_marker("chaos_full") is not None]
    if not full_only:
        return
    full_ids = {id(item) for item in full_only}
    items[:] = [item for item in items if id(item) not in full_ids]
    config.hook.pytest_deselected(items=full_only)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    line = (
        f"chaos: {len(full_only)} full-form scenario(s) deselected in the reduced (CI) form "
        "(marker chaos_full; run them with LAMBDA_RT_CHAOS=full, i.e. `make chaos`)"
    )
    if reporter is not None:
        reporter.write_line(line)
