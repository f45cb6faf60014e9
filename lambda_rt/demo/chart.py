"""The demo's chart: revenue per minute with the batch and speed segments marked.

Three panels, drawn with matplotlib's Agg backend (no display needed):

1. events/s offered by the traffic plan, produced and applied by the speed
   layer during the demo (the live view's samples), with the speed layer's
   lag in messages on a second axis and the flash sale shaded;
2. revenue per minute around the live traffic (a merged query,
   ``serving.QueryResult``): each bar coloured by the layer that served its
   bucket (coverage ``ranges``), the batch watermark as a vertical line, the
   flash sale shaded;
3. revenue per hour over the backlog days (the batch views, read from the hot,
   warm and cold tiers).

It only draws; the demo runs the queries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["Sample", "layer_of", "revenue_chart"]


@dataclass(frozen=True)
class Sample:
    """One live-view reading for the throughput panel."""

    at: float  # epoch seconds
    offered: float  # events/s the plan offered
    produced: float  # events/s produced (acknowledged or queued)
    applied: float  # events/s applied by the speed layer
    behind: int  # messages produced, not yet consumed by the speed layer
    held: bool  # the producer's safety valve was holding back


LAYER_COLORS = {"batch": "#1f77b4", "speed": "#ff7f0e", "none": "#bbbbbb"}


def layer_of(coverage: dict[str, Any], bucket: datetime) -> str:
    """Which layer served the bucket starting at ``bucket`` (``none`` in a hole)."""
    for r in coverage["ranges"]:
        start = datetime.fromisoformat(r["start"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(r["end"].replace("Z", "+00:00"))
        if start <= bucket < end:
            return str(r["layer"])
    return "none"


def _when(iso: str | None) -> datetime | None:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")) if iso else None


def revenue_chart(
    minute: Any,
    hour: Any,
    path: Path,
    *,
    sale: tuple[float, float] | None = None,
    probe: tuple[float, float] | None = None,
    tiers: dict[str, Any] | None = None,
    samples: list[Sample] | None = None,
) -> Path:
    """Write the two-panel PNG to ``path`` and return it.

    Args:
        minute: a ``QueryResult`` of ``revenue`` per minute (no dimensions).
        hour: a ``QueryResult`` of ``revenue`` per hour over the backlog.
        sale: the flash sale's wall-clock window (epoch seconds), if any.
        probe: the capacity probe's wall-clock window (epoch seconds), if any.
        tiers: the daemon's ``status()["tiers"]`` for the lower panel's title.
        samples: the live view's readings (:class:`Sample`).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    fig, (ax0, ax1, ax2) = plt.subplots(3, 1, figsize=(11, 11), constrained_layout=True)
    if samples:
        when = [datetime.fromtimestamp(s.at, UTC) for s in samples]
        ax0.step(
            when, [s.offered for s in samples], where="post", linestyle="--", color="grey", label="offered"
        )
        ax0.plot(when, [s.produced for s in samples], label="produced (events/s in)")
        ax0.plot(when, [s.applied for s in samples], label="applied by the speed layer")
        lag_ax = ax0.twinx()
        lag_ax.fill_between(when, 0, [s.behind for s in samples], color="purple", alpha=0.15)
        lag_ax.set_ylabel("speed lag (messages, shaded purple)")
        # Scale the lag to the live phase: the probe's lag would flatten the sale's.
        after_probe = [s.behind for s in samples if probe is None or s.at > probe[1] + 10]
        top = max(after_probe, default=0)
        lag_ax.set_ylim(0, top * 1.5 if top else None)
        held = [s.held for s in samples]
        if any(held):
            ax0.fill_between(
                when,
                0,
                1,
                where=held,
                step="post",
                color="grey",
                alpha=0.25,
                transform=ax0.get_xaxis_transform(),
                label="producer held back (speed layer behind)",
            )
    if sale is not None:
        ax0.axvspan(
            *(datetime.fromtimestamp(x, UTC) for x in sale), color="red", alpha=0.12, label="flash sale"
        )
    if probe is not None:
        ax0.axvspan(
            *(datetime.fromtimestamp(x, UTC) for x in probe),
            color="green",
            alpha=0.12,
            label="capacity probe (as fast as possible)",
        )
    ax0.legend(loc="upper left")
    ax0.set_title("throughput during the demo (live view samples)")
    ax0.set_ylabel("events/s")
    ax0.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S", tz=UTC))
    ax0.set_xlabel("wall clock (UTC)")
    cov = minute.coverage.to_dict()
    frame = minute.frame
    buckets = [b.to_pydatetime() for b in frame["bucket"]]
    values = (frame["value"] / 100).tolist()
    colors = [LAYER_COLORS[layer_of(cov, b)] for b in buckets]
    width = 1 / 24 / 60 * 0.9
    ax1.bar(buckets, values, width=width, align="edge", color=colors)
    wm = _when(cov["batch_through"])
    if wm is not None and buckets and wm >= buckets[0]:
        ax1.axvline(wm, color="black", linestyle="--", linewidth=1)
        ax1.annotate(
            "batch watermark", (mdates.date2num(wm), ax1.get_ylim()[1] * 0.95), ha="right", fontsize=9
        )
    handles = [Patch(color=LAYER_COLORS["batch"], label="batch view (exact)")]
    handles.append(Patch(color=LAYER_COLORS["speed"], label="speed view (Redis)"))
    if sale is not None:
        s0, s1 = (datetime.fromtimestamp(x, UTC) for x in sale)
        ax1.axvspan(s0, s1, color="red", alpha=0.12)
        handles.append(Patch(color="red", alpha=0.2, label="flash sale"))
    ax1.legend(handles=handles, loc="upper left")
    ax1.set_title("revenue per minute (merged query: batch before the watermark, speed after it)")
    ax1.set_ylabel("revenue ($)")
    ax1.xaxis.set_major_locator(mdates.MinuteLocator(tz=UTC))  # one tick per bucket, no repeats
    ax1.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=UTC))
    ax1.set_xlabel("event time (UTC)")

    hframe = hour.frame
    hb = [b.to_pydatetime() for b in hframe["bucket"]]
    hcov = hour.coverage.to_dict()
    ax2.bar(
        hb,
        (hframe["value"] / 100).tolist(),
        width=1 / 24 * 0.9,
        align="edge",
        color=[LAYER_COLORS[layer_of(hcov, b)] for b in hb],
    )
    title = "revenue per hour over the backlog (batch views over the hot, warm and cold tiers)"
    if tiers:
        parts = [
            f"{name} {info.get('rows', 0):,} rows"
            for name, info in tiers.items()
            if name.startswith("events_")
        ]
        if "cold" in tiers:
            parts.append(f"cold {tiers['cold'].get('rows', 0):,} rows")
        title += "\n" + ", ".join(parts)
    ax2.set_title(title)
    ax2.set_ylabel("revenue ($)")
    ax2.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:00", tz=UTC))
    ax2.set_xlabel("event time (UTC)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
