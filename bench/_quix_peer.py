"""The Quix Streams peer of the speed-layer benchmark (run by bench/speed.py).

Runs in its own virtualenv (``.bench-venv``, quixstreams==3.28.1), never in the
project's: ``python bench/_quix_peer.py BOOTSTRAP TOPIC N GROUP STATE_DIR``.
It computes the same per-store 1-minute count + revenue (order_placed
amount_cents) with a tumbling event-time window keyed by the message key
(store id), reading the topic from the beginning, and prints one JSON line:
``{"messages": ..., "seconds": ..., "rate": ...}`` timed from the first
message to the N-th (group join excluded). Quix runs in its normal
configuration (default commit interval and consumer settings, RocksDB state);
only the group-join timeout and ``fetch.wait.max.ms`` match the speed layer's.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import timedelta
from typing import Any


def main() -> None:
    from quixstreams import Application
    from quixstreams.dataframe.windows import Count, Sum

    bootstrap, topic_name, n_str, group, state_dir = sys.argv[1:6]
    target = int(n_str)
    seen = 0
    first: float | None = None
    last = 0.0

    def tick() -> None:
        nonlocal seen, first, last
        if first is None:
            first = time.perf_counter()
        seen += 1
        last = time.perf_counter()
        if seen >= target:
            app.stop()

    def on_consumer_error(exc: BaseException, message: Any, logger: Any) -> bool:
        tick()  # a malformed message: counted as handled, like a DLQ write
        return True

    def on_processing_error(exc: BaseException, row: Any, logger: Any) -> bool:
        return True

    def ts_of(value: Any, headers: Any, timestamp: int, timestamp_type: Any) -> int:
        if isinstance(value, dict) and isinstance(value.get("ts"), int):
            return int(value["ts"])
        return timestamp

    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        use_changelog_topics=False,
        auto_create_topics=False,
        state_dir=state_dir,
        on_consumer_error=on_consumer_error,
        on_processing_error=on_processing_error,
        loglevel="WARNING",
        consumer_extra_config={"session.timeout.ms": 6000, "fetch.wait.max.ms": 10},
        # commit_interval: Quix's default (5 s), its normal configuration
    )
    topic = app.topic(topic_name, value_deserializer="json", timestamp_extractor=ts_of)
    sdf = app.dataframe(topic)

    def count_in(value: Any) -> None:
        tick()

    sdf = sdf.update(count_in)
    sdf = sdf.filter(lambda v: isinstance(v, dict) and isinstance(v.get("event_type"), str))
    sdf = sdf.apply(
        lambda v: {
            "amount": v.get("amount_cents", 0) if v["event_type"] == "order_placed" else 0,
        }
    )
    sdf = (
        sdf.tumbling_window(timedelta(minutes=1), grace_ms=timedelta(minutes=15))
        .agg(count=Count(), revenue=Sum("amount"))
        .current()
    )
    app.run(timeout=30.0)
    seconds = (last - first) if first is not None else 0.0
    rate = seen / seconds if seconds > 0 else 0.0
    print(json.dumps({"messages": seen, "seconds": seconds, "rate": rate}))


if __name__ == "__main__":
    main()
