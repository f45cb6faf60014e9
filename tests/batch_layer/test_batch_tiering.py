"""Tier moves against real chDB + S3: every row exactly once at every step, crashes included."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from typing import Any

import pandas as pd
import pytest

from batch_layer.recompute import run_recompute
from batch_layer.tables import EVENTS_HOT, EVENTS_HOT_OUTBOX, EVENTS_WARM, EVENTS_WARM_OUTBOX, TIER_MOVES
from batch_layer.tiering import run_tier
from lambda_rt.clients.clickhouse import Client
from tests.batch_layer.fixtures import (
    END,
    END_MS,
    REPO_ROOT,
    assert_views_equal_oracle,
    child_command,
    insert_events,
    make_events,
    run_child,
)

STEPS = ("started", "claimed", "copied", "verified", "recorded", "deleted")


def _counts(ch: Client) -> dict[str, int]:
    return {
        t: int(ch.query(f"SELECT count() FROM {t}").result_rows[0][0])
        for t in (EVENTS_HOT, EVENTS_HOT_OUTBOX, EVENTS_WARM, EVENTS_WARM_OUTBOX)
    }


def test_moves_through_every_tier_and_cold_only_backfill_equals_oracle(
    ch: Client, isolated: Any, dask_threads: Any
) -> None:
    events = make_events(30_000, seed=21)
    insert_events(ch, events)
    now = END + timedelta(days=10)
    warm_only = isolated.settings.model_copy(
        update={"batch": isolated.settings.batch.model_copy(update={"warm_to_cold_after_s": 30 * 86_400})}
    )
    first = run_tier(warm_only, ch, now=now)
    assert {m.dst for m in first.moves} == {"warm"} and sum(m.rows for m in first.moves) == len(events)
    assert _counts(ch) == {
        EVENTS_HOT: 0,
        EVENTS_HOT_OUTBOX: 0,
        EVENTS_WARM: len(events),
        EVENTS_WARM_OUTBOX: 0,
    }
    second = run_tier(isolated.settings, ch, now=now)
    assert {m.dst for m in second.moves} == {"cold"} and sum(m.rows for m in second.moves) == len(events)
    assert sum(_counts(ch).values()) == 0
    states = ch.query(f"SELECT DISTINCT state FROM {TIER_MOVES} FINAL").result_rows
    assert states == [("done",)]
    assert run_tier(isolated.settings, ch, now=now).moves == []  # nothing left to move

    # backfill over a range held only in the cold tier
    report = run_recompute(
        isolated.settings,
        ch,
        start=END - timedelta(days=3),
        end=END + timedelta(days=1),
        now=now,
        dask=dask_threads,
    )
    assert report.rows["cold"] == len(events) and report.rows["hot"] == report.rows["warm"] == 0
    assert len(report.windows) == 3
    close_ms = int(report.close.timestamp() * 1000) if report.close else 0
    assert_views_equal_oracle(ch, events, close_ms)

    # late events for a day that is already cold: ingested to hot, moved again, both files read
    late = make_events(
        300, seed=22, end_ms=int((END - timedelta(hours=2)).timestamp() * 1000), span_ms=3_600_000
    )
    late["event_id"] = "late-" + late["event_id"]
    insert_events(ch, late, first_offset=1_000_000)
    third = run_tier(isolated.settings, ch, now=now)
    assert sorted(m.dst for m in third.moves) == ["cold", "warm"]
    again = run_recompute(
        isolated.settings,
        ch,
        start=END - timedelta(days=3),
        end=END + timedelta(days=1),
        now=now,
        dask=dask_threads,
    )
    assert again.rows["cold"] == len(events) + len(late)
    assert_views_equal_oracle(ch, pd.concat([events, late], ignore_index=True), close_ms)


def _check_then_tier(env: dict[str, str], crash_after: str | None) -> tuple[int, dict[str, Any], str]:
    """One fresh process: check the tiers, then ``lambda-rt batch run tier`` (maybe crashing).

    Checking in the same process as the next run halves the interpreter starts; the
    check's JSON line is flushed before the CLI runs (and before any ``os._exit``).
    """
    run_env = dict(env)
    if crash_after:
        run_env["LAMBDA_RT_BATCH__CRASH_AFTER"] = crash_after
    proc = subprocess.run(
        child_command("tier-counts", "--then-tier"),
        env=run_env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"no check output (exit {proc.returncode}): {proc.stderr[-2000:]}"
    return proc.returncode, json.loads(lines[0]), proc.stderr


def test_crash_between_every_pair_of_steps_loses_and_duplicates_nothing(isolated: Any) -> None:

    env = dict(isolated.env)
    env["LAMBDA_RT_BATCH__HOT_TO_WARM_AFTER_S"] = "0"
    env["LAMBDA_RT_BATCH__WARM_TO_COLD_AFTER_S"] = "0"
    n = run_child(env, "seed-hot", "--end-ms", str(END_MS), "--n", "20000")["rows"]
    seen_states: list[dict[str, int]] = []
    # hot->warm crashes at each step, then warm->cold crashes at each step: every run
    # checks what the previous crash left, then resumes its unfinished move.
    crashes = [f"tier:{step}" for _ in ("hot->warm", "warm->cold") for step in STEPS]
    previous = "seed"
    for crash in [*crashes, None]:
        code, check, stderr = _check_then_tier(env, crash)
        assert check["visible"] == n and check["distinct"] == n, f"after crash {previous}: {check}"
        seen_states.append(check["states"])
        expected = 137 if crash else 0
        assert code == expected, f"run with crash {crash}: exit {code}: {stderr[-2000:]}"
        previous = crash or "none"
    final = run_child(env, "tier-counts")
    assert final["visible"] == final["distinct"] == n
    assert final["states"] == {"done": 2} and final["cold_days"] == 1
    assert sum(final["where"].values()) == 0  # every row now lives only in the cold tier
    assert any("recorded" in s for s in seen_states) and any("copied" in s for s in seen_states)


def test_a_copy_with_one_corrupted_column_is_refused_and_the_source_kept(ch: Client, isolated: Any) -> None:
    """Same rows, same ``event_id``s, one column different: the move must not delete the source.

    The corruption is a schema drift between tiers: ``events_warm.amount_cents``
    narrowed to Int8, so the copy's ``INSERT ... SELECT`` silently wraps every
    amount above 127. A checksum of row count and ``event_id`` alone passed it.
    """
    from batch_layer.errors import TierVerifyError
    from batch_layer.visibility import engine_sql, snapshot

    events = make_events(3_000, seed=23, span_ms=3_600_000)  # one day
    assert (events["amount_cents"].fillna(0) > 127).any()
    insert_events(ch, events)
    ch.command(f"ALTER TABLE {EVENTS_WARM} MODIFY COLUMN amount_cents Int8")
    warm_only = isolated.settings.model_copy(
        update={"batch": isolated.settings.batch.model_copy(update={"warm_to_cold_after_s": 30 * 86_400})}
    )
    with pytest.raises(TierVerifyError, match="source kept"):
        run_tier(warm_only, ch, now=END + timedelta(days=10))
    counts = _counts(ch)
    assert counts[EVENTS_HOT_OUTBOX] == len(events) and counts[EVENTS_WARM] == len(events)
    states = ch.query(f"SELECT state FROM {TIER_MOVES} FINAL").result_rows
    assert states == [("copied",)]  # never recorded: readers keep the source
    snap = snapshot(ch)
    seen = ch.query(f"SELECT count(), sum(amount_cents) FROM ({engine_sql(snap, 0, 2**62)})").result_rows[0]
    assert seen == (len(events), int(events["amount_cents"].fillna(0).sum()))


def test_row_checksum_is_the_same_on_parquet_and_clickhouse_and_sees_one_changed_value(
    ch: Client, isolated: Any
) -> None:
    """The verify SQL on a cold Parquet copy (types inferred by ``s3()``) equals the table's;
    one changed value, or a NULL where the table has ``''``, changes it (row count and
    ``event_id`` unchanged)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from batch_layer.tables import EVENT_COLUMNS
    from batch_layer.tiering import row_checksum_sql, write_cold_parquet
    from batch_layer.visibility import cold_http_url
    from lambda_rt.clients.s3 import make_s3fs

    insert_events(ch, make_events(2_000, seed=24, span_ms=3_600_000))
    s3 = isolated.settings.s3
    make_s3fs(s3).mkdir(s3.bucket)
    location = f"s3://{s3.bucket}/checksum/part.parquet"
    key, secret = s3.access_key.get_secret_value(), s3.secret_key.get_secret_value()  # type: ignore[union-attr]
    source = ch.query(f"SELECT {row_checksum_sql()} FROM {EVENTS_HOT}").result_rows[0]
    cols = ", ".join(f"`{c}`" for c in EVENT_COLUMNS)
    table = ch.query_arrow(f"SELECT {cols} FROM {EVENTS_HOT} ORDER BY store_id, ts", use_strings=True)

    def copy_of(t: pa.Table) -> tuple[Any, ...]:
        write_cold_parquet(isolated.settings, t, location)
        fn = f"s3('{cold_http_url(s3, location)}', '{key}', '{secret}', 'Parquet')"
        row = ch.query(f"SELECT {row_checksum_sql()}, sum(cityHash64(event_id)) FROM {fn}").result_rows[0]
        return tuple(row)

    exact = copy_of(table)
    assert exact[:2] == source
    i = table.column_names.index("session_id")
    changed = table.column(i).to_pylist()
    changed[7] = changed[7] + "x"
    one_value = copy_of(table.set_column(i, "session_id", pa.array(changed, pa.string())))
    assert one_value[0] == source[0] and one_value[2] == exact[2] and one_value[1] != source[1]
    j = table.column_names.index("order_id")
    blank = pc.equal(table.column(j), "").to_pylist().index(True)
    nulled = table.column(j).to_pylist()
    nulled[blank] = None
    with_null = copy_of(table.set_column(j, "order_id", pa.array(nulled, pa.string())))
    assert with_null[0] == source[0] and with_null[2] == exact[2] and with_null[1] != source[1]
