"""Batch-layer benchmark: exact Dask recompute vs one native chDB GROUP BY, and storage per tier.

``python -m bench.batch [--events N] [--days D]`` starts a throw-away embedded
stack (SeaweedFS S3 for the cold tier; tansu and Redis come with it) on free
ports and a chDB engine in a temp dir, then:

1. generates N events (default 10M) spread over D days (default 7), validates
   them and inserts them into ``events_hot`` as ingest does (Kafka is skipped:
   ingest is not what is measured here);
2. runs the tier job with hot->warm after 2 days and warm->cold after 4 days,
   so the data spans all three tiers;
3. measures bytes per tier (ClickHouse active parts on disk; S3 object sizes)
   against the same events as JSON lines (the raw Kafka values);
4. times ``run_recompute`` over every day (pushdown with in-process Dask
   workers, the default; then export with 2 worker processes; both clusters
   already started - the schedule keeps one) against the native baseline: one
   chDB ``GROUP BY GROUPING SETS`` query over all tiers at once (hot + warm
   tables and cold Parquet through ``s3()``) computing the same rows (every
   metric x granularity x dimension set, plus inventory per product) and
   writing nothing. Also timed: the recompute's own per-day queries into a
   ``Null`` table (the same reads and aggregation, no view writes), which
   splits the recompute's cost into computing and writing.

The last lines are the ratios (targets: recompute <= 1.5x native; >= 8x smaller
than JSON lines).
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from bench._stack import bench_stack
from lambda_rt.config import Settings
from lambda_rt.vocabulary import DAY_MS, HOUR_MS


def _load(
    settings: Settings, client: object, n: int, days: int, end_ms: int, schema_version: str = "2"
) -> dict[int, int]:
    """Generate (schema ``1``, ``2`` or ``mixed``), validate and insert; return JSON-lines bytes per day."""
    from batch_layer.ingest import to_hot_table
    from batch_layer.tables import EVENTS_HOT
    from lambda_rt.events.extra import extra_json
    from lambda_rt.events.generator import EventGenerator, GeneratorConfig
    from lambda_rt.events.validate import validate_batch

    gen = EventGenerator(
        GeneratorConfig(
            seed=42, end_ms=end_ms, span_ms=days * DAY_MS - HOUR_MS, schema_version=schema_version
        )
    )
    json_bytes: dict[int, int] = {}
    offset = 0
    t0 = time.monotonic()
    for batch in gen.iter_batches(n, 500_000):
        values = [v for _, v in batch]
        vb = validate_batch(values, now_ms=end_ms)
        lengths = np.fromiter((len(values[i]) + 1 for i in vb.indices), dtype=np.int64, count=vb.n_valid)
        day = vb.table.column("ts").to_numpy() // DAY_MS
        for d in np.unique(day):
            json_bytes[int(d)] = json_bytes.get(int(d), 0) + int(lengths[day == d].sum())
        offsets = np.arange(offset, offset + vb.n_valid, dtype=np.int64)
        offset += vb.n_valid
        extra = extra_json(values, vb.table, vb.indices)
        client.insert_arrow(  # type: ignore[attr-defined]
            EVENTS_HOT, to_hot_table(vb.table, np.zeros(vb.n_valid, dtype=np.int64), offsets, extra)
        )
        print(f"  loaded {offset:,} events ({time.monotonic() - t0:.0f} s)", flush=True)
    return json_bytes


def _table_bytes(client: object, table: str) -> tuple[int, int]:
    rows = client.query(  # type: ignore[attr-defined]
        "SELECT sum(rows), sum(bytes_on_disk) FROM system.parts "
        "WHERE active AND database = currentDatabase() "
        "AND table = %(t)s",
        parameters={"t": table},
    ).result_rows[0]
    return int(rows[0] or 0), int(rows[1] or 0)


def _column_sizes(client: object, table: str) -> dict[str, int]:
    rows = client.query(  # type: ignore[attr-defined]
        "SELECT name, data_compressed_bytes FROM system.columns WHERE database = currentDatabase() "
        "AND table = %(t)s",
        parameters={"t": table},
    ).result_rows
    return {r[0]: int(r[1]) for r in rows}


def _compute_only(settings: Settings, client: object, close_ms: int) -> float:
    """The pushdown recompute's per-day queries into ``Null`` tables: its cost minus view writes."""
    from batch_layer import pushdown, visibility
    from batch_layer.aggregate import campaign_sql, inventory_sql, metrics_sql

    snap = visibility.snapshot(client)  # type: ignore[arg-type]
    days = sorted(set(visibility.engine_days(client, snap, 0, close_ms)) | set(snap.cold_days()))  # type: ignore[arg-type]
    for table in ("batch_metrics", "batch_inventory", "batch_campaigns"):
        client.command(f"CREATE TABLE IF NOT EXISTS bench_null_{table} AS {table} ENGINE = Null")  # type: ignore[attr-defined]
    t = time.monotonic()
    for day in days:
        s, e = visibility.day_window(day, close_ms)
        if s >= close_ms:
            continue
        src = pushdown.source_sql(settings, snap, day, s, e)
        for table, cols, sql in (
            ("batch_metrics", pushdown.METRIC_COLS, metrics_sql(src, s, e, close_ms)),
            ("batch_inventory", pushdown.INVENTORY_COLS, inventory_sql(src, s, e, close_ms)),
            ("batch_campaigns", pushdown.CAMPAIGN_COLS, campaign_sql(src, s, e, close_ms)),
        ):
            client.command(f"INSERT INTO bench_null_{table} ({cols}) {sql}")  # type: ignore[attr-defined]
    return time.monotonic() - t


def _external_recompute(settings: Settings, client: object, now: datetime) -> tuple[float, Any]:
    """Export-mode recompute on ``dask scheduler`` + 2 ``dask worker`` processes (started first)."""
    import os
    import tempfile
    from pathlib import Path

    from batch_layer.recompute import run_recompute
    from lambda_rt.dask_processes import start_external_dask

    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAMBDA_RT_", "AWS_"))}
    env["LAMBDA_RT_STATE_DIR"] = str(settings.state_dir)  # the workers' own S3 credentials
    run_settings = settings.model_copy(
        update={"batch": settings.batch.model_copy(update={"recompute_mode": "export"})}
    )
    with tempfile.TemporaryDirectory(prefix="lrt-bench-dask-") as tmp:
        cluster = start_external_dask(Path(tmp), env, n_workers=2)
        try:
            client.command("TRUNCATE TABLE batch_state")  # type: ignore[attr-defined]
            cluster.client.submit(sum, [1, 2]).result()
            t = time.monotonic()
            report = run_recompute(run_settings, client, now=now, dask=cluster.client)  # type: ignore[arg-type]
            return time.monotonic() - t, report
        finally:
            cluster.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--no-export", action="store_true", help="skip the export-mode recompute run")
    parser.add_argument(
        "--schema-version",
        choices=("1", "2", "mixed"),
        default="2",
        help="events to store (default 2: every v2 field filled where its type has it)",
    )
    args = parser.parse_args()

    from batch_layer.aggregate import AGG_COLUMNS, campaign_sql, inventory_sql, metrics_sql
    from batch_layer.migrations import ensure_tables
    from batch_layer.recompute import RecomputeReport, run_recompute
    from batch_layer.runtime import dask_client
    from batch_layer.tables import EVENTS_HOT, EVENTS_WARM
    from batch_layer.tiering import run_tier
    from lambda_rt.clients.clickhouse import open_clickhouse
    from lambda_rt.clients.s3 import make_s3fs

    with bench_stack("lrt-bench-batch-") as base:
        settings = base.model_copy(
            update={
                "clickhouse": base.clickhouse.model_copy(update={"database": "bench"}),
                "s3": base.s3.model_copy(update={"bucket": "bench-batch"}),
                "batch": base.batch.model_copy(
                    update={"hot_to_warm_after_s": 2 * 86_400, "warm_to_cold_after_s": 4 * 86_400}
                ),
                "dask": base.dask.model_copy(update={"n_workers": 2, "processes": True}),
            }
        )
        client = open_clickhouse(settings)
        ensure_tables(client)
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        end_ms = int((now - timedelta(minutes=30)).timestamp() * 1000)
        print(
            f"generating {args.events:,} schema-{args.schema_version} events over {args.days} days ...",
            flush=True,
        )
        json_per_day = _load(settings, client, args.events, args.days, end_ms, args.schema_version)
        hot_only = _column_sizes(client, EVENTS_HOT)

        t = time.monotonic()
        tier = run_tier(settings, client, now=now)
        print(f"tiering: {len(tier.moves)} moves in {time.monotonic() - t:.1f} s", flush=True)

        fs = make_s3fs(settings.s3)
        cold_files = fs.find(f"{settings.s3.bucket}/{settings.batch.cold_prefix}")
        cold_bytes = sum(int(fs.info(f)["size"]) for f in cold_files)
        hot_rows, hot_bytes = _table_bytes(client, EVENTS_HOT)
        warm_rows, warm_bytes = _table_bytes(client, EVENTS_WARM)
        days_of = {m.day: m.dst for m in tier.moves}
        json_tier = {"hot": 0, "warm": 0, "cold": 0}
        for d, b in json_per_day.items():
            day = datetime.fromtimestamp(d * 86_400, tz=UTC).date()
            dst = days_of.get(day, "hot")
            # a day moved hot->warm->cold appears twice in moves: the last one wins
            for m in tier.moves:
                if m.day == day:
                    dst = m.dst
            json_tier[dst] += b
        cold_rows = sum(m.rows for m in tier.moves if m.dst == "cold")
        json_total = sum(json_per_day.values())

        timings: dict[str, tuple[float, RecomputeReport]] = {}
        modes = (("pushdown", False),) if args.no_export else (("pushdown", False), ("export", True))
        for mode, processes in modes:
            run_settings = settings.model_copy(
                update={
                    "dask": settings.dask.model_copy(update={"processes": processes}),
                    "batch": settings.batch.model_copy(update={"recompute_mode": mode}),
                }
            )
            client.command("TRUNCATE TABLE batch_state")
            with dask_client(run_settings) as dc:
                dc.submit(sum, [1, 2]).result()  # type: ignore[attr-defined]  # workers up
                t = time.monotonic()
                report = run_recompute(run_settings, client, now=now, dask=dc)
                timings[mode] = (time.monotonic() - t, report)
        if not args.no_export:
            timings["external"] = _external_recompute(settings, client, now)
        recompute_s, report = timings["pushdown"]
        export_s = timings["export"][0] if "export" in timings else float("nan")
        external_s = timings["external"][0] if "external" in timings else float("nan")
        s3 = settings.s3
        key = s3.access_key.get_secret_value() if s3.access_key else ""
        secret = s3.secret_key.get_secret_value() if s3.secret_key else ""
        cols = ", ".join(AGG_COLUMNS)
        cold_glob = f"{s3.endpoint}/{s3.bucket}/{settings.batch.cold_prefix}/**/*.parquet"
        source = (
            f"(SELECT {cols} FROM {EVENTS_HOT} UNION ALL SELECT {cols} FROM {EVENTS_WARM} "
            f"UNION ALL SELECT {cols} FROM s3('{cold_glob}', '{key}', '{secret}', 'Parquet'))"
        )
        close_ms = int(report.close.timestamp() * 1000) if report.close else 0
        t = time.monotonic()
        native = client.query_arrow(metrics_sql(source, 0, close_ms, close_ms))
        client.query_arrow(inventory_sql(source, 0, close_ms, close_ms))
        client.query_arrow(campaign_sql(source, 0, close_ms, close_ms))
        native_s = time.monotonic() - t
        compute_s = _compute_only(settings, client, close_ms)

        warm_cols = _column_sizes(client, EVENTS_WARM)
        print()
        print(
            f"events: {args.events:,} (schema {args.schema_version}) over {args.days} days; "
            f"JSON lines {json_total / 1e6:,.1f} MB"
        )
        print(f"{'tier':<6}{'rows':>12}{'bytes':>14}{'JSON bytes':>14}{'x smaller':>11}")
        for name, rows, size in (
            ("hot", hot_rows, hot_bytes),
            ("warm", warm_rows, warm_bytes),
            ("cold", cold_rows, cold_bytes),
        ):
            ratio = json_tier[name] / size if size else float("nan")
            print(f"{name:<6}{rows:>12,}{size:>14,}{json_tier[name]:>14,}{ratio:>11.1f}")
        # compact parts (small ones) report no per-column sizes: 0.00 then means "not reported"
        print("bytes/row per column, hot (ZSTD(1)) -> warm (ZSTD(3)), measured on the loaded data:")
        hot_n = max(1, args.events)
        warm_n = max(1, warm_rows)
        for c in (
            "event_id",
            "ts",
            "store_id",
            "customer_id",
            "event_type",
            "session_id",
            "kafka_offset",
            "campaign_id",
            "card_fingerprint",
            "ip",
            "device_id",
            "stock_on_hand",
            "extra",
        ):
            print(f"  {c:<14}{hot_only.get(c, 0) / hot_n:>7.2f} -> {warm_cols.get(c, 0) / warm_n:>6.2f}")
        print(report.summary())
        if "export" in timings:
            print(
                "export-mode owner phases (s): "
                + ", ".join(f"{k} {v:.2f}" for k, v in timings["export"][1].timings.items())
            )
        print(
            f"recompute, pushdown (default: 2 in-process Dask workers): {recompute_s:.2f} s; "
            f"export (2 Dask worker processes, Arrow): {export_s:.2f} s; "
            f"native chDB GROUP BY GROUPING SETS over all tiers: {native_s:.2f} s "
            f"({native.num_rows:,} rows); "
            f"the recompute's per-day queries without writes: {compute_s:.2f} s"
        )
        total_bytes = hot_bytes + warm_bytes + cold_bytes
        print(f"warm vs JSON lines: {json_tier['warm'] / max(1, warm_bytes):.1f}x smaller (target >= 8x)")
        print(f"cold vs JSON lines: {json_tier['cold'] / max(1, cold_bytes):.1f}x smaller (target >= 8x)")
        print(f"all tiers vs JSON lines: {json_total / max(1, total_bytes):.1f}x smaller (target >= 8x)")
        if "external" in timings:
            print(
                "external-cluster owner phases (s): "
                + ", ".join(f"{k} {v:.2f}" for k, v in timings["external"][1].timings.items())
            )
        print(
            f"recompute, export on an external cluster (dask scheduler + 2 dask worker "
            f"processes, scheduler file): {external_s:.2f} s"
        )
        print(f"recompute (export mode) / native GROUP BY: {export_s / native_s:.2f}x")
        ratio = external_s / native_s
        print(f"recompute (external 2-worker cluster) / native GROUP BY: {ratio:.2f}x (target <= 1.2x)")
        print(f"recompute per-day queries without writes / native GROUP BY: {compute_s / native_s:.2f}x")
        print(f"recompute / native GROUP BY: {recompute_s / native_s:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
