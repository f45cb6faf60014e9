from __future__ import annotations

import orjson

from speed_layer.pipeline import run_speed
from tests.speed_layer.conftest import now_ms, speed_view


def test_smoke(isolated, produce, redis_client, keys):
    t = now_ms()
    vals = [
        orjson.dumps({"event_id": f"e{i}", "event_type": "order_placed", "ts": t, "store_id": 1 + i % 3,
                      "customer_id": i, "order_id": f"o{i}", "amount_cents": 100, "items": 1})
        for i in range(1000)
    ] + [b"not json", b"{}"]
    produce(vals)
    rep = run_speed(isolated.settings, until_idle_s=2, handle_signals=False)
    print(rep)
    view = speed_view(isolated.settings)
    print({k: v["value"].sum() for k, v in view.items()})
    print(redis_client.hgetall(keys.offsets), redis_client.hgetall(keys.meta))
    assert rep.events == 1000
