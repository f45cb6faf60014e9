"""Between lambda-rt's objects and the ``lambda_rt.v1`` protobuf messages (no I/O).

:func:`to_response` builds a ``QueryResponse`` from a :class:`QueryResult`
with the same values as its JSON (``QueryResult.to_dict``);
:func:`from_response` is the inverse, used by :class:`serving.grpc_api.GrpcClient`
to hand back the DataFrame (with ``attrs["coverage"]``) the other clients return.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pandas as pd

from serving.apis import AlertRecord, QueryArgs, result_columns
from serving.grpc_api.v1 import analytics_pb2 as pb
from serving.result import Coverage, QueryResult
from serving.spec import parse_time

__all__ = [
    "alert_to_pb",
    "args_from_request",
    "coverage_from_pb",
    "coverage_to_pb",
    "from_response",
    "request_from_args",
    "status_to_pb",
    "to_response",
]


def args_from_request(req: pb.QueryRequest) -> QueryArgs:
    """The request's arguments (empty strings mean "default", as proto3 cannot tell them apart)."""
    return QueryArgs.build(
        req.metric,
        list(req.by),
        req.start,
        req.end,
        req.granularity,
        req.strict,
        req.store_id if req.HasField("store_id") else None,
    )


def request_from_args(args: QueryArgs) -> pb.QueryRequest:
    req = pb.QueryRequest(
        metric=args.metric,
        by=list(args.by),
        start=args.start or "",
        end=args.end or "",
        granularity=args.granularity,
        strict=args.strict,
    )
    if args.store_id is not None:
        req.store_id = args.store_id
    return req


def coverage_to_pb(cov: dict[str, Any]) -> pb.Coverage:
    """A ``Coverage.to_dict()`` document as the message."""
    speed = cov["speed"]
    out = pb.Coverage(
        exact=cov["exact"],
        complete=cov["complete"],
        ranges=[pb.LayerRange(**r) for r in cov["ranges"]],
        approximate=[pb.TimeRange(**r) for r in cov["approximate"]],
        holes=[pb.Hole(**h) for h in cov["holes"]],
        shed_ranges=[
            pb.ShedRange(
                start=r["start"], end=r["end"], counts={str(k): int(v) for k, v in r["counts"].items()}
            )
            for r in cov.get("shed_ranges", [])
        ],
        speed=pb.SpeedFreshness(
            offsets={int(k): int(v) for k, v in speed["offsets"].items()},
            shed={str(k): int(v) for k, v in speed["shed"].items()},
        ),
        cached=cov["cached"],
    )
    if cov["batch_through"] is not None:
        out.batch_through = cov["batch_through"]
    if speed["last_applied"] is not None:
        out.speed.last_applied = speed["last_applied"]
    if speed["max_event_time"] is not None:
        out.speed.max_event_time = speed["max_event_time"]
    return out


def coverage_from_pb(msg: pb.Coverage) -> dict[str, Any]:
    """The message as the ``Coverage.to_dict()`` document."""
    sp = msg.speed
    return {
        "batch_through": msg.batch_through if msg.HasField("batch_through") else None,
        "exact": msg.exact,
        "complete": msg.complete,
        "ranges": [{"layer": r.layer, "start": r.start, "end": r.end} for r in msg.ranges],
        "approximate": [{"start": r.start, "end": r.end} for r in msg.approximate],
        "holes": [{"start": h.start, "end": h.end, "reason": h.reason} for h in msg.holes],
        "shed_ranges": [{"start": r.start, "end": r.end, "counts": dict(r.counts)} for r in msg.shed_ranges],
        "speed": {
            "offsets": {str(k): v for k, v in sorted(sp.offsets.items())},
            "last_applied": sp.last_applied if sp.HasField("last_applied") else None,
            "max_event_time": sp.max_event_time if sp.HasField("max_event_time") else None,
            "shed": dict(sp.shed),
        },
        "cached": msg.cached,
    }


def to_response(result: QueryResult) -> pb.QueryResponse:
    """The rows and coverage of ``result``: the values of the HTTP API's JSON rows.

    Rows are added from columns with one ``add`` per row (half the cost of
    building ``Row`` objects from per-row dicts).
    """
    msg = pb.QueryResponse(
        metric=result.metric,
        granularity=result.granularity,
        coverage=coverage_to_pb(result.coverage.to_dict()),
    )
    cols = result_columns(result)
    add = msg.rows.add
    buckets, values = cols.pop("bucket"), cols.pop("value")
    if not cols:
        for b, v in zip(buckets, values, strict=True):
            add(bucket=b, value=v)
    elif len(cols) == 1:
        ((k1, c1),) = cols.items()
        for b, x, v in zip(buckets, c1, values, strict=True):
            add(bucket=b, value=v, **{k1: x})
    else:
        names = list(cols)
        for b, v, *dims in zip(buckets, values, *cols.values(), strict=True):
            add(bucket=b, value=v, **dict(zip(names, dims, strict=True)))
    return msg


def from_response(msg: pb.QueryResponse, by: tuple[str, ...]) -> QueryResult:
    """Rebuild the :class:`QueryResult` (same frame dtypes as the engine's)."""
    rows = msg.rows
    labels = [r.bucket for r in rows]
    uniq = {t: int(parse_time(t, "bucket").timestamp() * 1000) for t in dict.fromkeys(labels)}
    ms = np.fromiter((uniq[t] for t in labels), dtype=np.int64, count=len(labels))
    data: dict[str, Any] = {"bucket": pd.DatetimeIndex(pd.to_datetime(ms, unit="ms", utc=True)).as_unit("ns")}
    for dim in by:
        vals = [getattr(r, dim) for r in rows]
        data[dim] = (
            np.asarray(vals, dtype=object) if dim == "event_type" else np.asarray(vals, dtype=np.int64)
        )
    data["value"] = np.fromiter((r.value for r in rows), dtype=np.int64, count=len(rows))
    coverage = Coverage.from_dict(coverage_from_pb(msg.coverage))
    return QueryResult(msg.metric, msg.granularity, by, pd.DataFrame(data), coverage)


def status_to_pb(doc: dict[str, Any]) -> pb.StatusResponse:
    """The ``GET /status`` document: the common fields typed, all of it as ``json``."""
    out = pb.StatusResponse(json=orjson.dumps(doc, default=str).decode())
    if doc.get("watermark") is not None:
        out.watermark = doc["watermark"]
    if doc.get("batch_lag_s") is not None:
        out.batch_lag_s = float(doc["batch_lag_s"])
    for name, tier in (doc.get("tiers") or {}).items():
        out.tiers[name].CopyFrom(
            pb.Tier(
                rows=int(tier.get("rows", 0)), bytes=int(tier.get("bytes", 0)), days=int(tier.get("days", 0))
            )
        )
    for job in doc.get("jobs") or []:
        msg = pb.Job(
            run_id=str(job.get("run_id", "")),
            job=str(job.get("job", "")),
            status=str(job.get("status", "")),
            rows=int(job.get("rows") or 0),
        )
        for key in ("started_at", "ended_at", "error"):
            if job.get(key) is not None:
                setattr(msg, key, str(job[key]))
        out.jobs.append(msg)
    return out


def alert_to_pb(alert: AlertRecord) -> pb.Alert:
    return pb.Alert(
        alert_id=alert.alert_id,
        rule=alert.rule,
        key=alert.key,
        window_start=alert.window_start,
        window_end=alert.window_end,
        status=alert.status,
        raised_at=alert.raised_at,
        details_json=orjson.dumps(alert.details).decode(),
    )
