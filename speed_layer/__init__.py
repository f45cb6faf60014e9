"""The speed layer: Kafka -> validate -> vectorised micro-batch aggregates -> Redis.

A streamz pipeline (``speed_layer.source`` -> ``speed_layer.graph``) that turns
each consumed micro-batch into one atomic, replay-guarded Redis write
(``speed_layer.redis_apply`` + ``apply.lua``) and then commits Kafka offsets.
The Redis key layout that serving reads lives in ``speed_layer.keys``, which
imports nothing of the runtime; import the runtime from
``speed_layer.pipeline`` (``run_speed``).
"""

from __future__ import annotations

__all__: list[str] = []
