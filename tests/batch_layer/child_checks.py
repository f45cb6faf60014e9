"""Checks and seeding that batch tests run in a fresh interpreter bound to a test env.

A crash test needs a process of its own (chDB allows one engine per data
directory and a crash ends the process), so these run as
``python -m tests.batch_layer.child_checks <command>`` with the test's
``LAMBDA_RT_*`` environment (see :func:`tests.batch_layer.fixtures.run_child`).
Each command prints one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["ingest_counts", "main", "seed_hot", "tier_counts"]


def seed_hot(end_ms: int, n: int) -> dict[str, Any]:
    """One day of generated events straight into ``events_hot`` (this env's chDB directory)."""
    import numpy as np

    from batch_layer.ingest import to_hot_table
    from batch_layer.migrations import ensure_tables
    from lambda_rt.clients.clickhouse import open_clickhouse
    from lambda_rt.config import load_settings
    from lambda_rt.events.generator import EventGenerator, GeneratorConfig
    from lambda_rt.events.validate import validate_batch

    gen = EventGenerator(GeneratorConfig(seed=5, end_ms=end_ms, span_ms=6 * 3600 * 1000, stores=20))
    vb = validate_batch([v for _, v in gen.batch(n)], now_ms=end_ms)
    c = open_clickhouse(load_settings())
    ensure_tables(c)
    c.insert_arrow("events_hot", to_hot_table(vb.table, np.zeros(vb.n_valid, dtype=np.int64), vb.indices))
    return {"rows": vb.n_valid}


def tier_counts() -> dict[str, Any]:
    """What a reader sees (every tier, through the manifest) and where rows physically are."""
    from batch_layer import visibility
    from batch_layer.migrations import ensure_tables
    from lambda_rt.clients.clickhouse import open_clickhouse
    from lambda_rt.config import load_settings

    s = load_settings()
    c = open_clickhouse(s)
    ensure_tables(c)
    snap = visibility.snapshot(c)
    parts = ["SELECT event_id FROM (" + visibility.engine_sql(snap, 0, 2**62, ("event_id",)) + ")"]
    assert s.s3.access_key is not None and s.s3.secret_key is not None
    key, sec = s.s3.access_key.get_secret_value(), s.s3.secret_key.get_secret_value()
    for files in snap.cold_files.values():
        for f in files:
            url = visibility.cold_http_url(s.s3, f)
            parts.append(f"SELECT event_id FROM s3('{url}', '{key}', '{sec}', 'Parquet')")
    sql = "SELECT count(), uniqExact(event_id) FROM (" + " UNION ALL ".join(parts) + ")"
    n, distinct = c.query(sql).result_rows[0]
    rows = c.query("SELECT state, count() FROM tier_moves FINAL GROUP BY state").result_rows
    states = {str(state): int(count) for state, count in rows}
    where = {
        t: c.query(f"SELECT count() FROM {t}").result_rows[0][0]
        for t in ("events_hot", "events_hot_outbox", "events_warm", "events_warm_outbox")
    }
    return {
        "visible": n,
        "distinct": distinct,
        "states": states,
        "where": where,
        "cold_days": len(snap.cold_files),
    }


def ingest_counts() -> dict[str, Any]:
    """Rows, distinct source messages and distinct event ids in ``events_hot``."""
    from lambda_rt.clients.clickhouse import open_clickhouse
    from lambda_rt.config import load_settings

    c = open_clickhouse(load_settings())
    n, msgs, ids = c.query(
        "SELECT count(), uniqExact(kafka_partition, kafka_offset), uniqExact(event_id) FROM events_hot"
    ).result_rows[0]
    return {"rows": n, "messages": msgs, "ids": ids}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.batch_layer.child_checks")
    sub = parser.add_subparsers(dest="command", required=True)
    seed = sub.add_parser("seed-hot")
    seed.add_argument("--end-ms", type=int, required=True)
    seed.add_argument("--n", type=int, required=True)
    tier = sub.add_parser("tier-counts")
    tier.add_argument("--then-tier", action="store_true", help="then run `lambda-rt batch run tier` here")
    sub.add_parser("ingest-counts")
    args = parser.parse_args(argv)
    if args.command == "seed-hot":
        out = seed_hot(args.end_ms, args.n)
    elif args.command == "tier-counts":
        out = tier_counts()
    else:
        out = ingest_counts()
    # flushed before the tier run, which may end the process with os._exit
    print(json.dumps(out), flush=True)
    if getattr(args, "then_tier", False):
        from lambda_rt.cli import main as cli_main

        cli_main(["batch", "run", "tier"])


if __name__ == "__main__":
    main(sys.argv[1:])
