"""Run by test_backfill_v2.py in subprocesses sharing one chDB directory (``isolated.env``).

``seed-old END_MS N``: run with the code from *before* schema v2 on
``PYTHONPATH``: N v1 events of the day ending at END_MS into ``events_hot``,
then a tier move of that day to cold Parquet (old file layout, no v2 columns).
``seed-new END_MS N``: the current code: the startup migration, N mixed v1/v2
events of another day, that day moved to cold too, then a backfill recompute of
both days, read from cold Parquet only. Prints the campaign view as JSON.
Only APIs both versions have are used in ``seed-old``.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta

import numpy as np

from batch_layer import tables
from batch_layer.ingest import to_hot_table
from batch_layer.tiering import run_tier
from lambda_rt.clients.clickhouse import open_clickhouse
from lambda_rt.config import load_settings
from lambda_rt.events.generator import EventGenerator, GeneratorConfig
from lambda_rt.events.validate import validate_batch

DAY_MS = 86_400_000

if hasattr(tables, "ensure_tables"):  # the code from before schema v2 keeps it there
    ensure_tables = tables.ensure_tables
else:
    from batch_layer.migrations import ensure_tables


def _seed(client: object, end_ms: int, n: int, **config: object) -> list[bytes]:
    gen = EventGenerator(GeneratorConfig(seed=8, end_ms=end_ms, span_ms=DAY_MS // 2, stores=20, **config))
    values = [v for _, v in gen.batch(n)]
    vb = validate_batch(values, now_ms=end_ms)
    table = to_hot_table(vb.table, np.zeros(vb.n_valid, dtype=np.int64), vb.indices)
    if "extra" in table.column_names:
        from lambda_rt.events.extra import extra_json

        table = to_hot_table(
            vb.table,
            np.zeros(vb.n_valid, dtype=np.int64),
            vb.indices,
            extra_json(values, vb.table, vb.indices),
        )
    client.insert_arrow("events_hot", table)  # type: ignore[attr-defined]
    return values


def main() -> None:
    mode, end_ms, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    settings = load_settings()
    client = open_clickhouse(settings)
    ensure_tables(client)
    later = datetime.fromtimestamp(end_ms / 1000, tz=UTC) + timedelta(days=3)
    if mode == "seed-old":
        _seed(client, end_ms, n)
        report = run_tier(settings, client, now=later)
        import lambda_rt.events.schema as schema

        print(json.dumps({"moves": [m.state for m in report.moves], "v2_code": hasattr(schema, "SCHEMA_V2")}))
        return
    from batch_layer.recompute import run_recompute

    _seed(client, end_ms, n, schema_version="mixed")
    report = run_tier(settings, client, now=later)
    first = datetime.fromtimestamp((end_ms - 2 * DAY_MS) // DAY_MS * DAY_MS / 1000, tz=UTC)
    recompute = run_recompute(settings, client, start=first, end=later, now=later)
    from batch_layer import visibility
    from lambda_rt.clients.s3 import make_s3fs

    fs = make_s3fs(settings.s3)
    import pyarrow.parquet as pq

    cold_columns = {
        day.isoformat(): sorted(
            {c for f in files for c in pq.read_schema(f.removeprefix("s3://"), filesystem=fs).names}
        )
        for day, files in visibility.snapshot(client).cold_files.items()
    }
    rows = client.query(
        "SELECT toString(granularity), toUnixTimestamp(bucket), campaign_id, events, orders, revenue "
        "FROM batch_campaigns WHERE dims = 'campaign_id'"
    ).result_rows
    print(
        json.dumps(
            {
                "moves": [m.state for m in report.moves],
                "rows_read": recompute.rows,
                "days": [d.isoformat() for d in recompute.windows],
                "cold_columns": cold_columns,
                "view": [list(r) for r in rows],
            }
        )
    )


if __name__ == "__main__":
    main()
