"""Live feeds: compute a snapshot once per tick and fan it out to every subscriber.

The dashboard's Server-Sent Events, GraphQL subscriptions and gRPC watch
streams all push "the current answer" about once a second. Computing it per
connection would make 100 viewers cost 100 queries a second; a :class:`LiveHub`
computes it once per tick for each distinct key (a query's parameters) that
has at least one subscriber, and hands the same value to all of them.

Subscribers always get the newest snapshot: a slow reader skips intermediate
ones (its queue holds one value), so it never falls behind and never holds
memory. A reader that reconnects gets the current snapshot at once, which is
how a dashboard catches up without a reload. The hub runs on the asyncio loop
of the server that owns it; the compute function runs in a worker thread so a
slow query never stalls the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["LiveHub", "Snapshot"]

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True)
class Snapshot(Generic[V]):
    """One computed value with its tick number (monotonic per hub)."""

    tick: int
    value: V | None
    error: str | None = None


@dataclass
class _Subscribers(Generic[V]):
    queues: set[asyncio.Queue[Snapshot[V]]] = field(default_factory=set)
    last: Snapshot[V] | None = None


class LiveHub(Generic[K, V]):
    """Once-per-tick computation of ``compute(key)`` for every key being watched.

    Args:
        compute: builds the snapshot for a key; called in a worker thread, at
            most once per tick per key, whatever the number of subscribers.
        interval_s: the tick length.
    """

    def __init__(self, compute: Callable[[K], V], interval_s: float = 1.0) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self._compute = compute
        self._interval_s = interval_s
        self._keys: dict[K, _Subscribers[V]] = {}
        self._task: asyncio.Task[None] | None = None
        self._tick = 0
        self.computations = 0  # how many times compute() ran: the cost the hub bounds

    @property
    def subscribers(self) -> int:
        """How many readers are attached now, over all keys."""
        return sum(len(s.queues) for s in self._keys.values())

    async def subscribe(self, key: K) -> AsyncIterator[Snapshot[V]]:
        """Yield the newest snapshot for ``key`` each tick until the caller stops iterating."""
        queue: asyncio.Queue[Snapshot[V]] = asyncio.Queue(maxsize=1)
        subs = self._keys.setdefault(key, _Subscribers())
        subs.queues.add(queue)
        if subs.last is not None:
            queue.put_nowait(subs.last)
        self._ensure_running()
        try:
            while True:
                yield await queue.get()
        finally:
            subs.queues.discard(queue)
            if not subs.queues:
                self._keys.pop(key, None)

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="live-hub")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._keys:
            started = loop.time()
            self._tick += 1
            for key in list(self._keys):
                snapshot = await self._snapshot(key)
                subs = self._keys.get(key)
                if subs is None:  # every reader left while it was computed
                    continue
                subs.last = snapshot
                for queue in subs.queues:
                    with contextlib.suppress(asyncio.QueueEmpty):
                        queue.get_nowait()  # drop the unread older value: readers want the newest
                    queue.put_nowait(snapshot)
            await asyncio.sleep(max(0.0, self._interval_s - (loop.time() - started)))

    async def _snapshot(self, key: K) -> Snapshot[V]:
        self.computations += 1
        try:
            value = await asyncio.to_thread(self._compute, key)
        except Exception as exc:  # a failing query is reported to the readers, the hub keeps ticking
            log.warning("live feed for %r failed: %s", key, exc)
            return Snapshot(self._tick, None, f"{type(exc).__name__}: {exc}")
        return Snapshot(self._tick, value)
