"""Backfill after the migration: cold Parquet from before schema v2 and after it, one recompute.

A day of v1 events goes to cold Parquet through the code *before* schema v2
(checked out from git into a temporary directory); then the current code
starts on the same data directory (the migration runs), stores a day of mixed
v1/v2 events and moves it to cold as well, and a backfill recomputes both days
from the cold files alone. The campaign view must equal the oracle: the old
day entirely under campaign ``""`` (its files have no ``campaign_id`` column
and read back as NULL), the new day by campaign.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from lambda_rt.events.generator import EventGenerator, GeneratorConfig
from lambda_rt.testing import oracle_frame, oracle_metrics
from tests.fixtures import code_before_schema_v2

PROBE = str(Path(__file__).with_name("backfill_probe.py"))
DAY_MS = 86_400_000
OLD_END = 1_795_636_800_000  # 2026-11-25T20:00:00Z: 12 hours of events, all in that day
NEW_END = OLD_END + DAY_MS


def _probe(env: dict[str, str], *args: str) -> Any:
    proc = subprocess.run(
        [sys.executable, PROBE, *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _values(end_ms: int, n: int, **config: Any) -> list[bytes]:
    gen = EventGenerator(GeneratorConfig(seed=8, end_ms=end_ms, span_ms=DAY_MS // 2, stores=20, **config))
    return [v for _, v in gen.batch(n)]


def test_backfill_reads_pre_and_post_migration_cold_files_in_one_query(isolated: Any, tmp_path: Path) -> None:
    env = {
        **isolated.env,
        "LAMBDA_RT_DASK__PROCESSES": "false",
        "LAMBDA_RT_DASK__N_WORKERS": "1",
        "LAMBDA_RT_BATCH__HOT_TO_WARM_AFTER_S": "0",
        "LAMBDA_RT_BATCH__WARM_TO_COLD_AFTER_S": "0",
    }
    old = code_before_schema_v2(tmp_path)
    seeded = _probe({**env, "PYTHONPATH": str(old)}, "seed-old", str(OLD_END), "3000")
    assert seeded == {"moves": ["done", "done"], "v2_code": False}  # hot -> warm -> cold, by the old code
    out = _probe(env, "seed-new", str(NEW_END), "3000")
    assert out["moves"] == ["done", "done"]
    assert out["rows_read"] == {"hot": 0, "warm": 0, "cold": 6000}
    assert len(out["days"]) == 2
    old_day, new_day = sorted(out["cold_columns"])
    assert "campaign_id" not in out["cold_columns"][old_day]  # written before the migration
    assert {"campaign_id", "stock_on_hand", "extra"} <= set(out["cold_columns"][new_day])

    values = _values(OLD_END, 3000) + _values(NEW_END, 3000, schema_version="mixed")
    frame = oracle_frame(values, now_ms=NEW_END)
    old_rows = frame["ts"].astype("int64") < (OLD_END // DAY_MS + 1) * DAY_MS
    frame.loc[old_rows, "campaign_id"] = None  # the old code stored no campaign: it counts under ""
    view = pd.DataFrame(
        out["view"], columns=["granularity", "bucket_s", "campaign_id", "events", "orders", "revenue"]
    )
    view = view[view["granularity"] == "hour"]
    for metric in ("events", "orders", "revenue"):
        exp = oracle_metrics(frame, metric, ["campaign_id"], "hour")
        exp["bucket_s"] = (exp["bucket"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
        got = view[view[metric] != 0].set_index(["bucket_s", "campaign_id"])[metric].sort_index()
        want = exp.set_index(["bucket_s", "campaign_id"])["value"].sort_index()
        assert got.to_dict() == want.to_dict(), metric
    campaigns = set(view["campaign_id"])
    assert "" in campaigns and len(campaigns) > 20
