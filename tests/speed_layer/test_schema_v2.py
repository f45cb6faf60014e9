"""Schema v2 through the speed layer: campaigns in the view, and an old process keeps counting.

A mixed v1/v2 stream (the project's generator, plus unknown fields and
mistyped v2 fields) goes through ``lambda-rt speed --until-idle``; the store
metrics and the campaign metrics must equal the oracle's bucket by bucket.
Then a speed process of the code *before* schema v2 (checked out from git)
consumes the same v2 events and must count them exactly like v1 events.
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import orjson

from lambda_rt.events.generator import EventGenerator, GeneratorConfig
from lambda_rt.testing import oracle_rejects
from tests.fixtures import code_before_schema_v2
from tests.speed_layer.fixtures import (
    assert_metrics_equal,
    campaign_view,
    now_ms,
    oracle_campaign_view,
    oracle_view,
    view_metrics,
)


def mixed_stream(n: int, now: int, seed: int = 11) -> list[bytes]:
    """Generated v1/v2 events, some with unknown fields, a few with a mistyped v2 field."""
    rng = random.Random(seed)
    gen = EventGenerator(GeneratorConfig(seed=seed, end_ms=now, schema_version="mixed", stores=30))
    values = []
    for _, raw in gen.batch(n):
        r = rng.random()
        if r < 0.05:
            obj = orjson.loads(raw)
            obj["ab_bucket"] = rng.choice(["a", "b", {"x": 1}])
            raw = orjson.dumps(obj)
        elif r < 0.06:
            obj = orjson.loads(raw)
            obj[rng.choice(["campaign_id", "ip", "stock_on_hand"])] = rng.choice([7, [1], 1.5, "x"])
            raw = orjson.dumps(obj)
        values.append(raw)
    return values


def _speed(env: dict[str, str], cwd: Path | None = None) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "lambda_rt", "speed", "--until-idle", "5"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_mixed_stream_by_campaign_equals_the_oracle(isolated, produce):
    now = now_ms()
    values = mixed_stream(12_000, now)
    assert oracle_rejects(values, now_ms=now)  # the mistyped v2 fields
    produce(values)
    _speed(isolated.env)
    for gran, name in (("m", "minute"), ("h", "hour")):
        assert_metrics_equal(view_metrics(isolated.settings, gran), oracle_view(values, now, name))
        got = campaign_view(isolated.settings, gran)
        want = oracle_campaign_view(values, now, name)
        assert_metrics_equal(got, want)
        # totals by campaign equal the totals: events without a campaign count under ""
        assert int(got["events"].sum()) == len(values) - len(oracle_rejects(values, now_ms=now))
    campaigns = set(got["events"].index.get_level_values("campaign_id"))
    assert "" in campaigns and len(campaigns) > 20


def test_a_speed_process_from_before_v2_counts_v2_events(isolated, produce, tmp_path):
    old = code_before_schema_v2(tmp_path)
    probe = subprocess.run(
        [sys.executable, "-c", "import lambda_rt.events.schema as s; print(hasattr(s, 'SCHEMA_V2'))"],
        env={**isolated.env, "PYTHONPATH": str(old)},
        cwd=old,  # the working directory comes first on sys.path
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == "False"  # really the old registry
    now = now_ms()
    gen = EventGenerator(GeneratorConfig(seed=4, end_ms=now, schema_version="2", stores=30))
    values = [v for _, v in gen.batch(8_000)]
    produce(values)
    _speed({**isolated.env, "PYTHONPATH": str(old)}, cwd=old)
    assert_metrics_equal(view_metrics(isolated.settings, "m"), oracle_view(values, now, "minute"))
    assert campaign_view(isolated.settings, "m")["events"].empty  # it knows no campaigns
