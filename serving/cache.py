"""An exact result cache: a key that changes whenever the answer could.

The key of a result is ``(question, batch token, speed token, holes)``:

- the question: metric, dimensions, granularity and the bucket-aligned range;
- the batch token (:class:`serving.batch_view.BatchStateReader`): changes on
  any write to the batch views or the watermark (recompute, backfill, late
  events), so cached final buckets live until the batch layer changes them;
- the speed token: the speed layer's applied partition offsets, included only
  when the plan reads the speed view; every applied micro-batch moves them;
- the holes: they depend on the clock (speed retention), so a result whose
  coverage changes with time gets a new key.

Entries are evicted least-recently-used. Thread-safe. It never decides
freshness by age: an entry is either still exact or unreachable.

When only the speed offsets moved (a micro-batch a second), a miss re-reads
Redis; the batch rows come from the in-memory batch copy
(:mod:`serving.batch_copy`), not from ClickHouse.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["ResultCache"]

V = TypeVar("V")


class ResultCache(Generic[V]):
    """LRU map from an exact key to a value (a :class:`~serving.result.QueryResult`)."""

    def __init__(self, max_entries: int = 512) -> None:
        self.max_entries = max_entries
        self._data: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            found = self._data.get(key)
            if found is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return found

    def put(self, key: Hashable, result: V) -> None:
        if self.max_entries <= 0:
            return
        with self._lock:
            self._data[key] = result
            self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)
