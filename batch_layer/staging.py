"""Replace one UTC day of a batch view atomically, through its ``*_staging`` twin.

Both recompute paths (rows aggregated by a Dask task, or SQL pushed down into
the engine) end the same way: fill the staging table's day, then swap it into
the view with ``REPLACE PARTITION``, so a reader sees the old day or the new
one, never a mix, and re-running a day gives the same rows. This module only
runs that swap; what fills the staging day is the caller's.
"""

from __future__ import annotations

from collections.abc import Callable

from lambda_rt.clients.clickhouse import Client

__all__ = ["replace_day"]


def replace_day(client: Client, table: str, day: str, fill: Callable[[str], int]) -> int:
    """Replace ``day`` (``YYYY-MM-DD``) of ``table`` with what ``fill`` writes; the rows written.

    Steps, each safe to retry:

    1. Empty the staging table's day (a crashed run may have left rows there).
    2. ``fill(staging)`` writes the new day into the staging table and returns
       how many rows it wrote.
    3. No rows: drop the view's day (the day has no valid events any more).
       Otherwise ``REPLACE PARTITION`` copies the staging day over the view's,
       atomically, and the staging day is emptied again.
    """
    staging = f"{table}_staging"
    client.command(f"ALTER TABLE {staging} DROP PARTITION '{day}'")
    written = fill(staging)
    if written == 0:
        client.command(f"ALTER TABLE {table} DROP PARTITION '{day}'")
        return 0
    client.command(f"ALTER TABLE {table} REPLACE PARTITION '{day}' FROM {staging}")
    client.command(f"ALTER TABLE {staging} DROP PARTITION '{day}'")
    return written
