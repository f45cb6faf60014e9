"""Open the embedded ClickHouse of a state dir in a process of its own (chDB: one per process).

``python -m tests.lambda_rt.chdb_child STATE_DIR write|read``: ``write``
creates and fills table ``kept``; both print ``(count, sum)`` of it.
"""

from __future__ import annotations

import sys

import pyarrow as pa

from lambda_rt.clients.clickhouse import open_clickhouse
from lambda_rt.config import load_settings

__all__ = ["main"]


def main(state_dir: str, mode: str) -> None:
    c = open_clickhouse(load_settings(state_dir=state_dir))
    if mode == "write":
        c.command("CREATE TABLE IF NOT EXISTS kept (x Int64) ENGINE = MergeTree ORDER BY x")
        c.insert_arrow("kept", pa.table({"x": list(range(123))}))
    print(c.query("SELECT count(), sum(x) FROM kept").result_rows[0])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
