"""Serving test helpers: one dataset through both real layers, shared by a module.

``world`` produces generated events into its own topic, runs the speed layer
(in-process ``run_speed``) and the batch ingest into the session chDB, and
hands out the oracle frame plus ``recompute(now)`` to move the watermark.
Everything is isolated by a unique tag (topic, groups, Redis prefix, CH
database), like the ``isolated`` fixture, but module-scoped so that many
queries share one ingest.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from lambda_rt.clients.clickhouse import Client, open_clickhouse
from lambda_rt.clients.kafka import ensure_topics
from lambda_rt.config import Settings
from lambda_rt.events.generator import EventGenerator, GeneratorConfig
from lambda_rt.producing import produce_all
from lambda_rt.testing import oracle_frame


def slice_settings(stack: Settings, chdb: Settings, tag: str, **batch: Any) -> Settings:
    """``stack`` narrowed to a unique topic/groups/prefix/database (as ``isolated`` does)."""
    return stack.model_copy(
        update={
            "kafka": stack.kafka.model_copy(
                update={"topic": f"events-{tag}", "dlq_topic": f"events-{tag}.dlq"}
            ),
            "redis": stack.redis.model_copy(update={"key_prefix": tag}),
            "speed": stack.speed.model_copy(update={"group": f"speed-{tag}"}),
            "batch": stack.batch.model_copy(update={"ingest_group": f"ingest-{tag}", **batch}),
            "clickhouse": stack.clickhouse.model_copy(update={"database": tag, "dsn": chdb.clickhouse_dsn}),
            "s3": stack.s3.model_copy(update={"bucket": f"lrt-{tag}"}),
        }
    )


def generate(
    n: int, end_ms: int, span_ms: int, seed: int = 11, schema_version: str = "1"
) -> list[tuple[bytes, bytes]]:
    gen = EventGenerator(
        GeneratorConfig(
            seed=seed,
            end_ms=end_ms,
            span_ms=span_ms,
            stores=25,
            customers=3_000,
            products=50,
            schema_version=schema_version,
        )
    )
    return gen.batch(n)


def produce(settings: Settings, pairs: list[tuple[bytes, bytes]]) -> None:
    produce_all(settings.kafka, [pairs])


def run_layers(settings: Settings, client: Client) -> None:
    """Speed layer and batch ingest until idle, both in this process."""
    import threading

    from batch_layer.ingest import Ingestor
    from speed_layer.pipeline import run_speed

    # consumer groups take ~3 s to join: the idle clock starts before that
    speed = threading.Thread(
        target=run_speed, args=(settings,), kwargs={"until_idle_s": 5.0, "handle_signals": False}
    )
    speed.start()
    report = Ingestor(settings, client).run(until_idle_s=5.0)
    speed.join()
    assert report.inserted > 0, report.summary()


@dataclass(repr=False)
class World:
    settings: Settings
    client: Client
    values: list[bytes]
    now_ms: int
    dask: Any
    recompute: Callable[[int], Any]

    _frame: pd.DataFrame | None = None

    def oracle(self) -> pd.DataFrame:
        """The valid events, by the independent oracle (computed once)."""
        if self._frame is None:
            self._frame = oracle_frame(self.values, now_ms=self.now_ms)
        return self._frame


def make_world(
    stack: Settings,
    chdb: Settings,
    dask: Any,
    n: int,
    span_ms: int,
    *,
    schema_version: str = "1",
    edit: Callable[[list[tuple[bytes, bytes]]], list[tuple[bytes, bytes]]] | None = None,
    **batch: Any,
) -> World:
    """A world of ``n`` generated events (``edit`` may change them before they are produced)."""
    tag = f"s{uuid.uuid4().hex[:10]}"
    settings = slice_settings(stack, chdb, tag, allowed_lateness_s=0, **batch)
    ensure_topics(settings.kafka)
    client = open_clickhouse(settings)
    now_ms = int(time.time() * 1000)
    end_ms = now_ms - 60_000
    pairs = generate(n, end_ms, span_ms, schema_version=schema_version)
    if edit is not None:
        pairs = edit(pairs)
    produce(settings, pairs)
    run_layers(settings, client)

    def recompute(at_ms: int) -> Any:
        from batch_layer.recompute import run_recompute

        return run_recompute(settings, client, now=datetime.fromtimestamp(at_ms / 1000, tz=UTC), dask=dask)

    return World(settings, client, [v for _, v in pairs], now_ms, dask, recompute)


def wait_for_hot_rows(http: Any, n: int, timeout_s: float = 90.0) -> None:
    """Wait until the daemon's ingest holds ``n`` rows in ``events_hot`` (``http``: an httpx client)."""
    deadline = time.monotonic() + timeout_s
    hot = 0
    while time.monotonic() < deadline:
        hot = http.get("/status").json()["tiers"].get("events_hot", {}).get("rows", 0)
        if hot >= n:
            break
        time.sleep(0.5)
    assert hot == n, f"the daemon's ingest inserted {hot} of {n}"
