"""Tier moves: hot -> warm (ClickHouse, recompressed) -> cold (S3 Parquet, zstd).

A move takes one UTC day of one tier to the next. It is a small state machine
whose state is the manifest row (``tier_moves``, ReplacingMergeTree by
``move_id``); every step is safe to redo, and readers
(:mod:`batch_layer.visibility`) see each row exactly once at every step:

1. **start** - write the manifest row, state ``started``.
2. **claim** - ``ALTER TABLE <src> MOVE PARTITION <day> TO TABLE <src>_outbox``
   (atomic). Rows arriving later for that day stay in the source for a later
   move, so nothing uncopied is ever deleted. State ``claimed``.
3. **copy** - clear any partial copy of this move, then copy the outbox day:
   into ``events_warm`` tagged with ``move_id`` (heavier codecs), or to
   ``s3://<bucket>/<cold_prefix>/date=YYYY-MM-DD/part-<move_id>.parquet``
   (zstd 9, sorted, delta encodings, 1M-row row groups; overwritten on retry). State ``copied``;
   the copy is still invisible to readers.
4. **verify** - row count and an order-independent checksum of whole rows
   (:func:`row_checksum_sql`: the sum mod 2^64 of a hash of every column) of
   source and copy must match; otherwise :class:`TierVerifyError` and the
   source is kept.
5. **record** - state ``recorded`` with rows and checksum: from now on readers
   use the copy and ignore the outbox day.
6. **delete** - drop the outbox day; state ``done``.

A crash between any two steps (``batch.crash_after`` = ``tier:<step>`` tests
each) leaves the move in its last recorded state; the next run resumes every
unfinished move before starting new ones. Recompute and tier runs never overlap
in one process (:func:`batch_layer.runtime.dataset_lock`).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from batch_layer.errors import TierVerifyError
from batch_layer.migrations import ensure_tables
from batch_layer.runtime import crash_point, dataset_lock, job_lock
from batch_layer.tables import (
    EVENT_COLUMN_TYPES,
    EVENT_COLUMNS,
    EVENTS_HOT,
    EVENTS_HOT_OUTBOX,
    EVENTS_WARM,
    EVENTS_WARM_OUTBOX,
    TIER_MOVES,
)
from batch_layer.visibility import COMMITTED, cold_http_url
from lambda_rt.clients.clickhouse import Client
from lambda_rt.config import Settings

__all__ = ["Move", "TierReport", "row_checksum_sql", "run_tier", "write_cold_parquet"]

_TABLES = {"hot": (EVENTS_HOT, EVENTS_HOT_OUTBOX), "warm": (EVENTS_WARM, EVENTS_WARM_OUTBOX)}


def _canonical(column: str) -> str:
    """``column`` cast to one type on every tier: its table type, without LowCardinality, Nullable.

    The cold copy is Parquet read through ``s3()``, whose inferred types differ
    from the tables' (Nullable strings, no LowCardinality, a time zone taken
    from the file). A hash sees the type, so both sides hash the same cast:
    Nullable, so that a NULL in a copy hashes apart from ``''`` or 0 instead
    of failing the cast; DateTime64 hashes its instant, whatever its zone.
    """
    base = EVENT_COLUMN_TYPES[column]
    for wrapper in ("LowCardinality(", "Nullable("):
        if base.startswith(wrapper):
            base = base.removeprefix(wrapper).removesuffix(")")
    return f"CAST(`{column}` AS Nullable({base}))"


def row_checksum_sql() -> str:
    """``count(), checksum``: an order-free hash of whole rows, the same SQL on every tier.

    ``sum`` of a per-row ``cityHash64`` over every raw event column (UInt64,
    wrapping): rows may come back in any order, and a change in any column of
    any row changes it.
    """
    cols = ", ".join(_canonical(c) for c in EVENT_COLUMNS)
    return f"count(), sum(cityHash64(tuple({cols})))"


@dataclass
class Move:
    """One manifest row."""

    move_id: str
    day: date
    src: str
    dst: str
    state: str
    rows: int = 0
    checksum: int = 0
    location: str = ""
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class TierReport:
    """What a tier run did."""

    moves: list[Move] = field(default_factory=list)
    resumed: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        done = ", ".join(f"{m.day.isoformat()} {m.src}->{m.dst} ({m.rows:,} rows)" for m in self.moves)
        return (
            f"tier: {len(self.moves)} moves ({self.resumed} resumed): "
            f"{done or 'nothing to move'}; {self.seconds:.1f} s"
        )


def run_tier(
    settings: Settings, client: Client, *, now: datetime | None = None, progress: bool = False
) -> TierReport:
    """Resume unfinished moves, then move every day old enough to the next tier."""
    with job_lock("tier"), dataset_lock():
        t0 = time.monotonic()
        ensure_tables(client)
        now = now or datetime.now(UTC)
        mover = _Mover(settings, client)
        report = TierReport()
        pending = mover.unfinished()
        report.resumed = len(pending)
        with _progress(progress) as bar:
            for move in pending:
                report.moves.append(mover.advance(move))
                bar()
            for src, dst, age in (
                ("hot", "warm", settings.batch.hot_to_warm_after_s),
                ("warm", "cold", settings.batch.warm_to_cold_after_s),
            ):
                for day in mover.days_due(src, now - timedelta(seconds=age)):
                    move = Move(
                        f"{src}2{dst}-{day.isoformat()}-{uuid.uuid4().hex[:8]}", day, src, dst, "started"
                    )
                    report.moves.append(mover.advance(move))
                    bar()
        report.seconds = time.monotonic() - t0
        return report


class _Mover:
    def __init__(self, settings: Settings, client: Client) -> None:
        self.settings = settings
        self.client = client

    # -- manifest ----------------------------------------------------------------
    def unfinished(self) -> list[Move]:
        rows = self.client.query(
            f"SELECT move_id, day, src, dst, state, rows, checksum, location, created_at "
            f"FROM {TIER_MOVES} FINAL WHERE state != 'done' ORDER BY created_at, move_id"
        ).result_rows
        return [Move(*r) for r in rows]

    def _write(self, move: Move, state: str) -> None:
        move.state = state
        self.client.insert(
            TIER_MOVES,
            [
                [
                    move.move_id,
                    move.day,
                    move.src,
                    move.dst,
                    state,
                    move.rows,
                    move.checksum,
                    move.location,
                    move.created_at,
                    datetime.now(UTC),
                    time.time_ns(),
                ]
            ],
            column_names=[
                "move_id",
                "day",
                "src",
                "dst",
                "state",
                "rows",
                "checksum",
                "location",
                "created_at",
                "updated_at",
                "version",
            ],
        )

    def days_due(self, src: str, before: datetime) -> list[date]:
        table = _TABLES[src][0]
        rows = self.client.query(
            f"SELECT DISTINCT toDate(ts) AS d FROM {table} WHERE ts < %(b)s ORDER BY d",
            parameters={"b": before},
        ).result_rows
        return [
            r[0]
            for r in rows
            if datetime(r[0].year, r[0].month, r[0].day, tzinfo=UTC) + timedelta(days=1) <= before
        ]

    # -- the state machine -------------------------------------------------------
    def advance(self, move: Move) -> Move:
        """Drive ``move`` from its recorded state to ``done`` (see the module docstring)."""
        src_table, outbox = _TABLES[move.src]
        day = move.day.isoformat()
        if move.dst == "cold" and not move.location:
            prefix = self.settings.batch.cold_prefix.strip("/")
            move.location = f"s3://{self.settings.s3.bucket}/{prefix}/date={day}/part-{move.move_id}.parquet"
        if move.state == "started":
            self._write(move, "started")
            crash_point(self.settings, "tier:started")
            self.client.command(f"ALTER TABLE {src_table} MOVE PARTITION '{day}' TO TABLE {outbox}")
            self._write(move, "claimed")
            crash_point(self.settings, "tier:claimed")
        if move.state in ("claimed", "copied"):
            src_rows, src_sum = self._source_checksum(outbox, move)
            ok = move.state == "copied" and self._dest_checksum(move) == (src_rows, src_sum)
            if not ok:
                self._copy(outbox, move)
                self._write(move, "copied")
                crash_point(self.settings, "tier:copied")
                got = self._dest_checksum(move)
                if got != (src_rows, src_sum):
                    raise TierVerifyError(
                        f"tier move {move.move_id}: copy has {got[0]} rows / checksum {got[1]}, source "
                        f"{src_rows} / {src_sum}; source kept, the next run retries"
                    )
            crash_point(self.settings, "tier:verified")
            move.rows, move.checksum = src_rows, src_sum
            self._write(move, "recorded")
            crash_point(self.settings, "tier:recorded")
        if move.state == "recorded":
            self.client.command(f"ALTER TABLE {outbox} DROP PARTITION '{day}'")
            crash_point(self.settings, "tier:deleted")
            self._write(move, "done")
        return move

    def _committed_filter(self, move: Move) -> str:
        if move.src != "warm":
            return ""
        ids = self.client.query(
            f"SELECT move_id FROM {TIER_MOVES} FINAL WHERE state IN {COMMITTED!r}"
        ).result_rows
        listed = ", ".join(f"'{r[0]}'" for r in ids) or "''"
        return f" AND move_id IN ({listed})"

    def _source_checksum(self, outbox: str, move: Move) -> tuple[int, int]:
        row = self.client.query(
            f"SELECT {row_checksum_sql()} FROM {outbox} "
            f"WHERE toDate(ts) = %(d)s{self._committed_filter(move)}",
            parameters={"d": move.day},
        ).result_rows[0]
        return int(row[0]), int(row[1] or 0)

    def _s3_fn(self, move: Move) -> str:
        s3 = self.settings.s3
        key = s3.access_key.get_secret_value() if s3.access_key else ""
        secret = s3.secret_key.get_secret_value() if s3.secret_key else ""
        return f"s3('{cold_http_url(s3, move.location)}', '{key}', '{secret}', 'Parquet')"

    def _dest_checksum(self, move: Move) -> tuple[int, int]:
        if move.dst == "warm":
            sql = f"SELECT {row_checksum_sql()} FROM {EVENTS_WARM} WHERE move_id = %(m)s"
            row = self.client.query(sql, parameters={"m": move.move_id}).result_rows[0]
            return int(row[0]), int(row[1] or 0)
        if not self._cold_exists(move):
            return (-1, -1)
        row = self.client.query(f"SELECT {row_checksum_sql()} FROM {self._s3_fn(move)}").result_rows[0]
        return int(row[0]), int(row[1] or 0)

    def _cold_exists(self, move: Move) -> bool:
        from lambda_rt.clients.s3 import make_s3fs

        return bool(make_s3fs(self.settings.s3).exists(move.location.removeprefix("s3://")))

    def _copy(self, outbox: str, move: Move) -> None:
        cols = ", ".join(f"`{c}`" for c in EVENT_COLUMNS)
        where = f"toDate(ts) = toDate('{move.day.isoformat()}'){self._committed_filter(move)}"
        if move.dst == "warm":
            partial = self.client.query(
                f"SELECT count() FROM {EVENTS_WARM} WHERE move_id = %(m)s", parameters={"m": move.move_id}
            ).result_rows[0][0]
            if partial:
                self.client.command(
                    f"ALTER TABLE {EVENTS_WARM} DELETE WHERE move_id = '{move.move_id}' "
                    "SETTINGS mutations_sync = 2"
                )
            self.client.command(
                f"INSERT INTO {EVENTS_WARM} ({cols}, move_id) SELECT {cols}, '{move.move_id}' "
                f"FROM {outbox} WHERE {where}"
            )
            return
        self._ensure_bucket()
        table = self.client.query_arrow(
            f"SELECT {cols} FROM {outbox} WHERE {where} ORDER BY store_id, event_type, ts", use_strings=True
        )
        write_cold_parquet(self.settings, table, move.location)

    def _ensure_bucket(self) -> None:
        from lambda_rt.clients.s3 import make_s3fs

        fs = make_s3fs(self.settings.s3)
        if not fs.exists(self.settings.s3.bucket):
            fs.mkdir(self.settings.s3.bucket)


class _progress:
    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._p: Any = None

    def __enter__(self) -> Any:
        if not self._enabled:
            return lambda: None
        from rich.progress import Progress, SpinnerColumn, TextColumn

        self._p = Progress(SpinnerColumn(), TextColumn("tier moves: {task.completed}"))
        self._p.start()
        task = self._p.add_task("tier", total=None)
        return lambda: self._p.advance(task)

    def __exit__(self, *exc: object) -> None:
        if self._p is not None:
            self._p.stop()


# Parquet layout of the cold tier, chosen by measurement (bench/batch.py): rows sorted by
# (store_id, event_type, ts); zstd level 9; delta encodings where values are sorted or
# share prefixes; dictionaries only for low-cardinality columns.
_DELTA_STRINGS = ("event_id", "session_id", "order_id")
_DELTA_INTS = ("ts", "kafka_offset")
_DICTIONARY = (
    "event_type",
    "status",
    "method",
    "store_id",
    "schema_version",
    "kafka_partition",
    "campaign_id",
    "extra",
)


def write_cold_parquet(settings: Settings, table: Any, location: str) -> None:
    """Write one cold file (overwrites: a retried copy replaces a partial one)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lambda_rt.clients.s3 import make_s3fs

    for i, f in enumerate(table.schema):
        if pa.types.is_dictionary(f.type):
            table = table.set_column(i, f.name, table.column(i).cast(f.type.value_type))
    encodings = {c: "DELTA_BYTE_ARRAY" for c in _DELTA_STRINGS if c in table.column_names}
    encodings.update({c: "DELTA_BINARY_PACKED" for c in _DELTA_INTS if c in table.column_names})
    fs = make_s3fs(settings.s3)
    with fs.open(location.removeprefix("s3://"), "wb") as fh:
        pq.write_table(
            table,
            fh,
            compression="zstd",
            compression_level=9,
            row_group_size=settings.batch.cold_row_group_rows,
            use_dictionary=[c for c in _DICTIONARY if c in table.column_names],
            column_encoding=encodings,
        )
