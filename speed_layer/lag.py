"""Lag of the speed source, measured from our own offsets, never from broker watermarks.

The broker's high watermark is wrong (see ARCHITECTURE.md, embedded stack),
so nothing here asks the broker how far its head is. librdkafka's statistics
say how far the consumer has fetched; the source says how far it has applied
and committed; the difference is what sits fetched but not yet in Redis.
"""

from __future__ import annotations

import json

__all__ = ["LagTracker"]


class LagTracker:
    """Lag from our own offsets, never from broker watermarks.

    * ``messages``: per partition, the next offset librdkafka will fetch
      (``next_offset`` in its statistics) minus the next offset we applied and
      committed; i.e. messages already fetched from the broker but not yet in
      Redis. It is bounded by the prefetch queue, so it says "we are behind"
      without claiming to know how far the broker's head is.
    * ``seconds``: wall clock minus the produce timestamp of the newest
      message of the last batch (0 when idle): how far behind real time the
      speed view is.

    ``committed`` (partition -> next offset applied, or where the partition
    was positioned) is also what the positioning reads as "how far this
    process got" (``speed_layer.positioning``).
    """

    def __init__(self) -> None:
        self.committed: dict[int, int] = {}
        self.fetch_next: dict[int, int] = {}
        self.seconds = 0.0

    def on_stats(self, stats_json: str, topic: str) -> None:
        """librdkafka ``stats_cb``: remember each partition's fetch position."""
        try:
            parts = json.loads(stats_json)["topics"][topic]["partitions"]
        except (KeyError, ValueError):
            return
        for p, info in parts.items():
            pid = int(p)
            if pid >= 0 and int(info.get("next_offset", -1)) >= 0:
                self.fetch_next[pid] = int(info["next_offset"])

    @property
    def messages(self) -> int:
        return sum(
            max(0, nxt - self.committed[p]) for p, nxt in self.fetch_next.items() if p in self.committed
        )

    def forget(self, partitions: list[int]) -> None:
        """Drop revoked partitions: their lag is the new owner's."""
        for p in partitions:
            self.committed.pop(p, None)
            self.fetch_next.pop(p, None)
