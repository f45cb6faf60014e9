"""The speed layer end to end on the real broker and Redis, against the oracle.

Events here are built by hand (not by the project's generator), malformed ones
included, produced straight to the topic, then ``lambda-rt speed --until-idle``
runs as a subprocess; every additive metric must equal the oracle's, bucket by
bucket, and the DLQ must hold exactly the bad messages with their reasons.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys

from lambda_rt.dlq import read_dead_letters
from lambda_rt.testing import oracle_rejects
from tests.speed_layer.fixtures import assert_metrics_equal, now_ms, oracle_view, speed_view, view_metrics

MIN = 60_000
DAY = 24 * 60 * MIN


def _event(rng: random.Random, i: int, ts: int) -> dict[str, object]:
    etype = rng.choice(
        ["page_view"] * 5 + ["add_to_cart", "order_placed", "payment", "refund", "inventory_update"]
    )
    e: dict[str, object] = {
        "event_id": f"hand-{i}",
        "event_type": etype,
        "ts": ts,
        "store_id": rng.randint(1, 25),
        "customer_id": rng.randint(0, 3000),
    }
    if rng.random() < 0.5:
        e["session_id"] = f"s{rng.randint(0, 99)}"
    if etype in ("page_view", "add_to_cart", "inventory_update"):
        e["product_id"] = rng.randint(1, 40)
    if etype == "add_to_cart":
        e["quantity"] = rng.randint(1, 4)
    if etype in ("order_placed", "payment", "refund"):
        e["order_id"] = f"o{rng.randint(0, 10**6)}"
        e["amount_cents"] = rng.randint(0, 50_000)
    if etype == "order_placed":
        e["items"] = rng.randint(1, 5)
    if etype == "payment":
        e["status"] = rng.choice(["succeeded", "succeeded", "failed"])
        e["method"] = "card"
    if etype == "inventory_update":
        e["delta"] = rng.randint(-20, 20)
    if rng.random() < 0.05:
        e["future_field"] = {"nested": [1, 2]}  # unknown fields pass through
    return e


def hand_built(n: int, now: int, seed: int = 5) -> list[bytes]:
    """``n`` valid events (some late, some early) plus every kind of malformed one."""
    rng = random.Random(seed)
    values: list[bytes] = []
    for i in range(n):
        r = rng.random()
        if r < 0.02:
            ts = now - rng.randint(1, 6) * DAY  # late but inside the 7-day window
        elif r < 0.03:
            ts = now + rng.randint(0, 2 * MIN)  # a little ahead, accepted
        else:
            ts = now - rng.randint(0, 15 * MIN)
        values.append(json.dumps(_event(rng, i, ts), separators=(",", ":")).encode())
    bad = [
        b"not json at all",
        b'{"event_id":"x","event_type":"page_view"',  # truncated
        b"[1,2,3]",
        b'"a string"',
        b"",
        b'{"event_id":"b1","event_type":"page_view","ts":%d,"store_id":3,"product_id":1}' % now,
        b'{"event_id":"b2","event_type":"teleport","ts":%d,"store_id":3,"customer_id":1}' % now,
        b'{"event_id":"b3","event_type":"order_placed","ts":%d,"store_id":3,"customer_id":1,'
        b'"order_id":"o","amount_cents":-5,"items":1}' % now,
        b'{"event_id":"b4","event_type":"page_view","ts":"yesterday","store_id":3,'
        b'"customer_id":1,"product_id":1}',
        b'{"event_id":"b5","event_type":"page_view","ts":%d,"store_id":0,"customer_id":1,'
        b'"product_id":1}' % now,
        b'{"event_id":"b6","event_type":"page_view","ts":%d,"store_id":3,"customer_id":1,'
        b'"product_id":1}' % (now - 8 * DAY),
        b'{"event_id":"b7","event_type":"page_view","ts":%d,"store_id":3,"customer_id":1,'
        b'"product_id":1}' % (now + 10 * MIN),
        b'{"event_id":"b8","event_type":"payment","ts":%d,"store_id":3,"customer_id":1,'
        b'"order_id":"o","amount_cents":5,"status":"maybe","method":"card"}' % now,
        b'{"event_id":"b9","event_type":"page_view","ts":%d.5,"store_id":3,"customer_id":1,'
        b'"product_id":1}' % now,
        b'{"event_id":"","event_type":"page_view","ts":%d,"store_id":3,"customer_id":1,"product_id":1}' % now,
        b"\xff\xfe{}",
    ]
    for j, b in enumerate(bad * 3):
        values.insert(rng.randint(0, len(values)), b if j < len(bad) else b.replace(b'"b', b'"c', 1))
    return values


def test_cli_until_idle_matches_oracle_and_dlq(isolated, produce):
    now = now_ms()
    values = hand_built(6000, now)
    produce(values)
    proc = subprocess.run(
        [sys.executable, "-m", "lambda_rt", "speed", "--until-idle", "5"],
        env=isolated.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]

    assert_metrics_equal(view_metrics(isolated.settings, "m"), oracle_view(values, now, "minute"))
    assert_metrics_equal(view_metrics(isolated.settings, "h"), oracle_view(values, now, "hour"))

    want = sorted((values[i], reason) for i, reason in oracle_rejects(values, now_ms=now))
    letters = read_dead_letters(isolated.settings.kafka, dedupe=False)
    got = sorted((d.value, d.reason) for d in letters)
    assert got == want
    assert {d.source_topic for d in letters} == {isolated.settings.kafka.topic}
    assert all(d.source_offset >= 0 and d.source_partition >= 0 and d.detail for d in letters)


def test_shedding_drops_only_configured_types_and_counts_them(isolated, produce, redis_client, keys):
    from lambda_rt.testing import oracle_frame
    from speed_layer.pipeline import run_speed

    now = now_ms()
    values = hand_built(3000, now, seed=9)
    produce(values)
    s = isolated.settings
    settings = s.model_copy(
        update={
            "speed": s.speed.model_copy(
                update={"shed_event_types": ("page_view",), "shed_lag_seconds": 0.0, "batch_size": 200}
            )
        }
    )
    report = run_speed(settings, until_idle_s=2.0, handle_signals=False)
    frame = oracle_frame(values, now_ms=now)
    n_page_views = int((frame["event_type"] == "page_view").sum())
    assert report.shed > 0
    shed = int(redis_client.hget(keys.meta, "shed:page_view") or 0)
    assert shed == report.shed
    # Shedding starts after a sustained lag (a few batches): nothing else is touched.
    got = view_metrics(settings)
    kept = frame[frame["event_type"] != "page_view"]
    want = oracle_view(values, now)
    for metric in ("orders", "revenue", "refunds", "payment_failures", "inventory_delta"):
        assert_metrics_equal({metric: got[metric]}, {metric: want[metric]})
    events = got["events"]
    page = events[events.index.get_level_values("event_type") == "page_view"].sum()
    assert page + shed == n_page_views
    other = events[events.index.get_level_values("event_type") != "page_view"].sum()
    assert other == len(kept)
    # every shed event is counted in its bucket's shed hash, at both granularities (serving
    # reads them to mark those ranges inexact)
    for gran in ("m", "h"):
        shed_hash = speed_view(settings, gran)["shed"]
        assert int(shed_hash["value"].sum()) == shed, gran


def test_unique_customers_close_to_exact_per_store_hour(isolated, produce, redis_client, keys):
    from lambda_rt.testing import oracle_frame, oracle_metrics
    from speed_layer.pipeline import run_speed

    now = now_ms()
    values = hand_built(5000, now, seed=13)
    produce(values)
    run_speed(isolated.settings, until_idle_s=2.0, handle_signals=False)
    frame = oracle_frame(values, now_ms=now)
    exact = oracle_metrics(frame, "unique_customers", by=["store_id"], granularity="hour")
    for row in exact.itertuples():
        bucket = int(row.bucket.timestamp())
        est = redis_client.pfcount(keys.hll_store(bucket, int(row.store_id)))
        assert abs(est - row.value) <= max(3, 0.05 * row.value), (row, est)  # HLL: ~0.8% std error
    by_type = oracle_metrics(frame, "unique_customers", by=["event_type"], granularity="minute")
    for row in by_type.itertuples():
        est = redis_client.pfcount(keys.hll_event_type("m", int(row.bucket.timestamp()), row.event_type))
        assert abs(est - row.value) <= max(3, 0.05 * row.value), (row, est)  # HLL: ~0.8% std error


def test_a_stop_asked_before_the_loop_starts_is_kept(isolated, produce):
    """A SIGTERM that lands between the handler's installation and the first consume() stops the run.

    The kill -9 chaos scenario SIGTERMs its last process as soon as the handler
    is in place; streamz's own ``stop()`` forgot a stop asked that early and the
    process consumed on for ever.
    """
    import threading

    from speed_layer.pipeline import SpeedPipeline

    now = now_ms()
    produce(hand_built(500, now))
    pipeline = SpeedPipeline(isolated.settings)  # no idle limit: only the stop can end it
    pipeline.stop()
    done = threading.Event()
    runner = threading.Thread(target=lambda: (pipeline.run(), done.set()), daemon=True)
    runner.start()
    assert done.wait(60), "the pipeline ignored a stop asked before it started"


def test_sigusr1_dumps_every_thread_and_the_process_runs_on(isolated):
    """``kill -USR1`` is the operator's stack dump of a stuck process; it must not stop the run."""
    import signal
    import time

    from tests.chaos.harness import handles_sigterm, speed_process, terminate_cleanly, wait_until

    proc = speed_process(isolated.env)
    try:
        wait_until(lambda: handles_sigterm(proc.pid), 60, "the speed loop to start")
        proc.send_signal(signal.SIGUSR1)
        time.sleep(1.0)
        assert proc.poll() is None, "SIGUSR1 stopped the process"
        err = terminate_cleanly(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert err.count(b"(most recent call first)") >= 2, err.decode(errors="replace")[-3000:]  # >= 2 threads
    assert b"speed_layer/pipeline.py" in err
