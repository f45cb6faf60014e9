"""One atomic Redis write per micro-batch, guarded by the epoch and the offsets.

:class:`BatchApplier` sends a :class:`~speed_layer.aggregate.BatchDelta` to
``apply.lua`` as one msgpack argument, with the epoch the batch was consumed
in. The script writes nothing and says why when:

* the epoch key is missing (:data:`LOST`: the state was lost under a running
  process) or holds another epoch (:data:`EPOCH_CHANGED`: a rebuild started
  since the batch was consumed);
* a partition's first offset is below the next offset Redis holds
  (:data:`STALE`: a replay; this or another process applied it);
* a partition's first offset is above it (:data:`GAP`: Redis lost writes the
  process believed done, e.g. the last second of an AOF ``everysec`` on a
  Redis kill -9; applying would skip the missing messages for ever).

Otherwise it applies every increment, HLL add, TTL, meta counter and the new
partition offsets in one step (:data:`APPLIED`). Redis' stored offsets are the
source of truth; Kafka commits are only a hint for where to resume.

It does not decide what to do with a refused batch (the pipeline trims,
rewinds or rebuilds and retries) and does not talk to Kafka.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import msgpack
import redis

from lambda_rt.errors import ServiceUnavailableError
from speed_layer.aggregate import BatchDelta
from speed_layer.keys import SpeedKeys

__all__ = [
    "APPLIED",
    "EPOCH_CHANGED",
    "GAP",
    "LOST",
    "STALE",
    "ApplyResult",
    "BatchApplier",
    "load_script",
    "stored_offsets",
]

STALE = 0
"""Reply code: a replay (first offset below Redis' next offset); ``stale`` holds Redis' offsets."""
APPLIED = 1
"""Reply code: the batch was written."""
GAP = 2
"""Reply code: a gap (first offset above Redis' next offset); ``gaps`` holds Redis' offsets."""
LOST = 3
"""Reply code: the epoch key is missing: the speed view's state was lost."""
EPOCH_CHANGED = 4
"""Reply code: the epoch is not the batch's (``epoch`` holds the current one)."""


def load_script() -> str:
    """The Lua source of the batch writer (shipped as package data)."""
    return Path(__file__).with_name("apply.lua").read_text(encoding="utf-8")


@dataclass(frozen=True)
class ApplyResult:
    """The script's verdict (``code``) and what the caller needs to act on it."""

    code: int
    seconds: float
    stale: dict[int, int] = field(default_factory=dict)  # STALE: partition -> Redis' next offset
    gaps: dict[int, int] = field(default_factory=dict)  # GAP: partition -> Redis' next offset
    epoch: str | None = None  # EPOCH_CHANGED: the current epoch

    @property
    def applied(self) -> bool:
        return self.code == APPLIED


class BatchApplier:
    """Applies batch deltas to Redis under one key prefix."""

    def __init__(self, client: redis.Redis, keys: SpeedKeys, *, retention_s: int) -> None:
        self._client = client
        self._keys = keys
        self._ttl = int(retention_s)
        self._script = client.register_script(load_script())

    def apply(
        self,
        delta: BatchDelta,
        *,
        epoch: str,
        arrival_ms: int | None = None,
        allow_gaps: dict[int, int] | None = None,
    ) -> ApplyResult:
        """Write ``delta`` atomically unless the epoch or the offsets say otherwise.

        Args:
            delta: the batch's effect.
            epoch: the epoch the batch's messages were consumed in.
            arrival_ms: Kafka timestamp of the batch's newest message (capped
                at now): bucket TTLs count from it. None: now.
            allow_gaps: partition -> Redis' next offset from which a gap is
                accepted (the source found Kafka no longer holds those offsets).

        Raises:
            ServiceUnavailableError: Redis did not answer; nothing or everything
                of the batch was written (the script is atomic), so the caller
                may retry the same batch safely.
        """
        now = int(time.time() * 1000)
        arrival = now if arrival_ms is None or arrival_ms <= 0 else min(int(arrival_ms), now)
        payload = msgpack.packb(
            {
                "ep": epoch,
                "o": [x for triple in delta.offsets for x in triple],
                "ag": [x for kv in (allow_gaps or {}).items() for x in kv],
                "ttl": self._ttl,
                "arr": arrival,
                "hk": delta.hash_keys,
                "hf": delta.hash_fields,
                "hv": delta.hash_values,
                "uk": delta.hll_keys,
                "uv": delta.hll_members,
                "mi": [x for kv in delta.meta.items() for x in kv],
                "mx": delta.max_event_ts,
                "now": now,
            },
            use_bin_type=False,
        )
        keys = [self._keys.offsets, self._keys.meta, self._keys.epoch, self._keys.rebuild]
        t0 = time.perf_counter()
        try:
            reply = self._script(keys=keys, args=[payload])
        except redis.RedisError as exc:
            raise ServiceUnavailableError(f"Redis batch write failed: {exc}") from exc
        seconds = time.perf_counter() - t0
        code = int(reply[0])
        if code in (APPLIED, LOST):
            return ApplyResult(code=code, seconds=seconds)
        if code == EPOCH_CHANGED:
            cur = reply[1].decode() if isinstance(reply[1], bytes) else str(reply[1])
            return ApplyResult(code=code, seconds=seconds, epoch=cur)
        pairs = reply[1:]
        found = {int(pairs[i]): int(pairs[i + 1]) for i in range(0, len(pairs), 2)}
        if code == GAP:
            return ApplyResult(code=code, seconds=seconds, gaps=found)
        return ApplyResult(code=STALE, seconds=seconds, stale=found)


def stored_offsets(client: redis.Redis, keys: SpeedKeys) -> dict[int, int]:
    """Partition -> next offset that Redis holds (where to resume after a rebalance)."""
    try:
        raw = client.hgetall(keys.offsets)
    except redis.RedisError as exc:
        raise ServiceUnavailableError(f"Redis did not answer reading offsets: {exc}") from exc
    return {int(k): int(v) for k, v in raw.items()}
