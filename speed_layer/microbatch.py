"""The values that flow between the speed layer's streamz nodes.

A micro-batch keeps, for every message it consumed, its partition, offset and
produce timestamp as numpy columns, so that any later step (the replay guard,
the DLQ, latency) can address messages without per-event Python objects.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from speed_layer.aggregate import BatchDelta

__all__ = ["AppliedBatch", "CheckedBatch", "RawBatch"]

I64 = npt.NDArray[np.int64]


@dataclass
class RawBatch:
    """What the Kafka source consumed in one ``consume()`` call."""

    topic: str
    values: list[bytes]
    partitions: I64
    offsets: I64
    timestamps_ms: I64  # message (produce) timestamps, for lag and latency
    consumed_at: float  # time.monotonic() when consume() returned
    epoch: str = ""  # the speed view's epoch the offsets were positioned in (``keys.epoch_key``)
    # partition -> Redis' next offset: Kafka no longer holds [that, first offset), accept the gap
    allow_gaps: dict[int, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.values)


@dataclass
class CheckedBatch:
    """A validated batch: valid rows in Arrow, rejects by index into ``raw``.

    ``rows`` maps each row of ``table`` to its index in ``raw`` (so its
    partition and offset are ``raw.partitions[rows]``, ``raw.offsets[rows]``).
    """

    raw: RawBatch
    table: pa.Table
    rows: I64
    rejects: list[object]
    dlq_by_reason: Counter[str] = field(default_factory=Counter)
    shed_by_type: Counter[str] = field(default_factory=Counter)
    # The valid events shed from the speed path (columns of ``table``) and their
    # indices into ``raw``: counted per bucket in Redis (``speed_layer.keys.SHED``)
    # so that serving can name the ranges they are missing from.
    shed: pa.Table | None = None
    shed_rows: I64 = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    # Must run (and succeed) before the batch's Redis write: the DLQ flush when
    # it is deferred to the writer thread (see ``speed_layer.nodes.dead_letters``).
    before_write: Callable[[], None] | None = None

    def extra_meta(self) -> dict[str, int]:
        """Counters for the Redis meta hash: ``dlq:{reason}``, ``shed:{type}``."""
        meta = {f"dlq:{r}": n for r, n in self.dlq_by_reason.items()}
        meta.update({f"shed:{t}": n for t, n in self.shed_by_type.items()})
        return meta


@dataclass
class AppliedBatch:
    """A batch whose effect is in Redis: the offsets to commit to Kafka."""

    checked: CheckedBatch
    delta: BatchDelta
    applied_at: float  # time.time() when the Redis write returned
    replayed_rows: int = 0  # rows dropped because Redis already held them
    write_seconds: float = 0.0  # time spent in the Redis write(s) of this batch
