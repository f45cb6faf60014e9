"""Run by test_migrations.py in a subprocess (own chDB directory): seed or inspect the dataset.

``python tests/batch_layer/migration_probe.py seed N``: the tables in their
first (v1) shape, with N rows written the way ingest of that version wrote them.
``python tests/batch_layer/migration_probe.py check``: write one more row the
v1 way (a writer that does not know the migration), then print one JSON line:
row counts, the columns of each event table, the recorded migrations.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

from batch_layer.migrations import SCHEMA_MIGRATIONS, applied
from batch_layer.tables import EVENT_TABLES, EVENTS_HOT, create_tables
from lambda_rt.clients.clickhouse import open_clickhouse
from lambda_rt.config import load_settings

V1_COLUMNS = ["event_id", "event_type", "ts", "store_id", "customer_id", "kafka_partition", "kafka_offset"]


def _rows(first: int, n: int) -> list[list[object]]:
    ts = datetime(2026, 11, 20, 12, tzinfo=UTC)
    return [[f"e-{i}", "page_view", ts, 1 + i % 7, i, 0, i] for i in range(first, first + n)]


def main() -> None:
    client = open_clickhouse(load_settings())
    if sys.argv[1] == "seed":
        create_tables(client)
        client.insert(EVENTS_HOT, _rows(0, int(sys.argv[2])), column_names=V1_COLUMNS)
        print(json.dumps({"seeded": int(sys.argv[2])}))
        return
    count = int(client.query(f"SELECT count() FROM {EVENTS_HOT}").result_rows[0][0])
    client.insert(EVENTS_HOT, _rows(10**6 + count, 1), column_names=V1_COLUMNS)
    columns = {
        table: [
            r[0]
            for r in client.query(
                f"SELECT name FROM system.columns WHERE database = "
                f"currentDatabase() AND table = '{table}' ORDER BY position"
            ).result_rows
        ]
        for table, _ in EVENT_TABLES
    }
    distinct = int(client.query(f"SELECT uniqExact(event_id) FROM {EVENTS_HOT}").result_rows[0][0])
    tables = [r[0] for r in client.query("SHOW TABLES").result_rows]
    print(
        json.dumps(
            {
                "rows_before": count,
                "distinct_after": distinct,
                "columns": columns,
                "applied": applied(client) if SCHEMA_MIGRATIONS in tables else {},
            }
        )
    )


if __name__ == "__main__":
    main()
