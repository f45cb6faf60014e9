"""The speed view's epoch: detect lost Redis state and track the rebuild (see ``keys``).

Redis is the source of truth for what the speed view holds. The epoch key
(``P:epoch``) says the view was built from the start of the topic at that
epoch; without it nothing in Redis can be trusted. :meth:`EpochStore.claim`
starts a rebuild atomically: unless another process already did, it wipes
what is left of the view (bucket keys, offsets, meta counters: replaying onto
them would double count), creates the epoch, sets ``meta.rebuilding = 1`` and
records, per partition, how far the replay must get before the lost view is
back (``P:rebuild``). The batch writer (``apply.lua``) and
:meth:`EpochStore.caught_up` clear those entries; the last one sets
``rebuilding = 0``.

It does not seek Kafka partitions (the source does) and does not write
buckets (``redis_apply`` does).
"""

from __future__ import annotations

import re
import time

import redis

from lambda_rt.errors import ServiceUnavailableError
from speed_layer.keys import SpeedKeys

__all__ = ["UNKNOWN_TARGET", "EpochStore"]

UNKNOWN_TARGET = -1
"""Replay target of a partition whose pre-loss position is unknown (no Kafka commit)."""

# KEYS: epoch, offsets, meta, rebuild. ARGV: now_ms, previous epoch (or ""),
# scan patterns "P:agg:*" and "P:hll:*", then partition, target pairs.
_CLAIM = """
local cur = redis.call('GET', KEYS[1])
if cur then return {0, cur} end
for _, pattern in ipairs({ARGV[3], ARGV[4]}) do
  local cursor = '0'
  repeat
    local r = redis.call('SCAN', cursor, 'MATCH', pattern, 'COUNT', 1000)
    cursor = r[1]
    for i = 1, #r[2], 1000 do
      redis.call('UNLINK', unpack(r[2], i, math.min(i + 999, #r[2])))
    end
  until cursor == '0'
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
local epoch = ARGV[1]
if epoch == ARGV[2] then epoch = tostring(tonumber(epoch) + 1) end
redis.call('SET', KEYS[1], epoch)
redis.call('HSET', KEYS[3], 'rebuilding', '1', 'epoch_started_ms', epoch)
for i = 5, #ARGV, 2 do
  redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 1])
end
if redis.call('EXISTS', KEYS[4]) == 0 then
  redis.call('HSET', KEYS[3], 'rebuilding', '0', 'rebuilt_ms', ARGV[1])
end
return {1, epoch}
"""

# KEYS: epoch, rebuild, meta, offsets. ARGV: epoch, now_ms, force (0/1), partitions...
# Clears the partitions whose target is unknown or reached (or all with force).
_CAUGHT_UP = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
for i = 4, #ARGV do
  local t = redis.call('HGET', KEYS[2], ARGV[i])
  if t then
    local target = tonumber(t)
    local stored = tonumber(redis.call('HGET', KEYS[4], ARGV[i]) or '-1')
    if target < 0 or stored >= target or ARGV[3] == '1' then
      redis.call('HDEL', KEYS[2], ARGV[i])
    end
  end
end
local left = redis.call('HLEN', KEYS[2])
if left == 0 then
  redis.call('HSET', KEYS[3], 'rebuilding', '0', 'rebuilt_ms', ARGV[2])
end
return left
"""

_GLOB = re.compile(r"([*?\[\]\\])")


class EpochStore:
    """The speed view's epoch, rebuild targets and stored offsets in Redis, under one key prefix.

    It reads the epoch and the offsets, starts a rebuild (:meth:`claim`) and
    marks partitions replayed (:meth:`caught_up`). Where a Kafka partition
    resumes is decided by ``speed_layer.positioning`` from what this returns.
    """

    def __init__(self, client: redis.Redis, keys: SpeedKeys) -> None:
        self._client = client
        self._keys = keys
        self._claim = client.register_script(_CLAIM)
        self._caught_up = client.register_script(_CAUGHT_UP)

    def epoch(self) -> str | None:
        """The current epoch, or None when the view's state is gone."""
        try:
            raw = self._client.get(self._keys.epoch)
        except redis.RedisError as exc:
            raise ServiceUnavailableError(f"Redis did not answer reading the epoch: {exc}") from exc
        return None if raw is None else raw.decode()

    def offsets(self) -> dict[int, int]:
        """Partition -> next offset that Redis holds (where to resume)."""
        try:
            raw = self._client.hgetall(self._keys.offsets)
        except redis.RedisError as exc:
            raise ServiceUnavailableError(f"Redis did not answer reading offsets: {exc}") from exc
        return {int(k): int(v) for k, v in raw.items()}

    def claim(self, targets: dict[int, int], previous: str | None = None) -> tuple[str, bool]:
        """Start a rebuild unless one exists; returns (epoch, True if this call started it).

        ``targets``: every partition of the topic -> the next offset the lost
        view had reached (the Kafka commit), or :data:`UNKNOWN_TARGET`. Zero
        targets (nothing was there) are left out.
        """
        prefix = _GLOB.sub(r"\\\1", self._keys.prefix)
        args: list[str | int] = [
            int(time.time() * 1000),
            previous or "",
            f"{prefix}:agg:*",
            f"{prefix}:hll:*",
        ]
        for p, t in sorted(targets.items()):
            if t != 0:
                args += [p, t if t > 0 else UNKNOWN_TARGET]
        keys = [self._keys.epoch, self._keys.offsets, self._keys.meta, self._keys.rebuild]
        try:
            reply = self._claim(keys=keys, args=args)
        except redis.RedisError as exc:
            raise ServiceUnavailableError(f"Redis did not answer starting a rebuild: {exc}") from exc
        epoch = reply[1].decode() if isinstance(reply[1], bytes) else str(reply[1])
        return epoch, int(reply[0]) == 1

    def caught_up(self, epoch: str, partitions: list[int], *, force: bool = False) -> int:
        """Mark ``partitions`` replayed (unknown or reached targets; all with ``force``).

        Returns the partitions the rebuild still waits for (0: done, and
        ``rebuilding`` is ``"0"``), or -1 when ``epoch`` is no longer current.
        """
        keys = [self._keys.epoch, self._keys.rebuild, self._keys.meta, self._keys.offsets]
        args: list[str | int] = [epoch, int(time.time() * 1000), int(force), *partitions]
        try:
            return int(self._caught_up(keys=keys, args=args))
        except redis.RedisError as exc:
            raise ServiceUnavailableError(f"Redis did not answer marking a rebuild: {exc}") from exc
