"""One atomic Redis write per micro-batch, with a replay guard (exactly-once).

:class:`BatchApplier` sends a :class:`~speed_layer.aggregate.BatchDelta` to
``apply.lua`` as one msgpack argument. The script checks, for every partition
of the batch, that the batch's first offset is not below the next offset Redis
already holds; if any is, it writes nothing and returns the stored offsets
(the batch, or part of it, was applied by this or another process). Otherwise
it applies every increment, HLL add, TTL, meta counter and the new partition
offsets in one step. Redis' stored offsets are the source of truth; Kafka
commits are only a hint for where to resume.

It does not decide what to do with a rejected batch (the pipeline drops the
rows already applied and retries) and does not talk to Kafka.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import msgpack
import redis

from lambda_rt.errors import ServiceUnavailableError
from speed_layer.aggregate import BatchDelta
from speed_layer.keys import SpeedKeys

__all__ = ["ApplyResult", "BatchApplier", "load_script", "stored_offsets"]


def load_script() -> str:
    """The Lua source of the batch writer (shipped as package data)."""
    return Path(__file__).with_name("apply.lua").read_text(encoding="utf-8")


@dataclass(frozen=True)
class ApplyResult:
    """``applied`` True, or the stored next offsets of the partitions that were stale."""

    applied: bool
    stale: dict[int, int]
    seconds: float


class BatchApplier:
    """Applies batch deltas to Redis under one key prefix."""

    def __init__(self, client: redis.Redis, keys: SpeedKeys, *, retention_s: int) -> None:
        self._client = client
        self._keys = keys
        self._ttl = int(retention_s)
        self._script = client.register_script(load_script())

    def apply(self, delta: BatchDelta) -> ApplyResult:
        """Write ``delta`` atomically unless Redis already holds part of its range.

        Raises:
            ServiceUnavailableError: Redis did not answer; nothing or everything
                of the batch was written (the script is atomic), so the caller
                may retry the same batch safely.
        """
        payload = msgpack.packb(
            {
                "o": [x for triple in delta.offsets for x in triple],
                "ttl": self._ttl,
                "hk": delta.hash_keys,
                "hf": delta.hash_fields,
                "hv": delta.hash_values,
                "uk": delta.hll_keys,
                "uv": delta.hll_members,
                "mi": [x for kv in delta.meta.items() for x in kv],
                "mx": delta.max_event_ts,
                "now": int(time.time() * 1000),
            },
            use_bin_type=False,
        )
        t0 = time.perf_counter()
        try:
            reply = self._script(keys=[self._keys.offsets, self._keys.meta], args=[payload])
        except redis.RedisError as exc:
            raise ServiceUnavailableError(f"Redis batch write failed: {exc}") from exc
        seconds = time.perf_counter() - t0
        if int(reply[0]) == 1:
            return ApplyResult(applied=True, stale={}, seconds=seconds)
        pairs = reply[1:]
        stale = {int(pairs[i]): int(pairs[i + 1]) for i in range(0, len(pairs), 2)}
        return ApplyResult(applied=False, stale=stale, seconds=seconds)


def stored_offsets(client: redis.Redis, keys: SpeedKeys) -> dict[int, int]:
    """Partition -> next offset that Redis holds (where to resume after a rebalance)."""
    try:
        raw = client.hgetall(keys.offsets)
    except redis.RedisError as exc:
        raise ServiceUnavailableError(f"Redis did not answer reading offsets: {exc}") from exc
    return {int(k): int(v) for k, v in raw.items()}
