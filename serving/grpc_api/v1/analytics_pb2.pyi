from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class QueryRequest(_message.Message):
    __slots__ = ("metric", "by", "start", "end", "granularity", "strict", "store_id")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    GRANULARITY_FIELD_NUMBER: _ClassVar[int]
    STRICT_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    metric: str
    by: _containers.RepeatedScalarFieldContainer[str]
    start: str
    end: str
    granularity: str
    strict: bool
    store_id: int
    def __init__(self, metric: _Optional[str] = ..., by: _Optional[_Iterable[str]] = ..., start: _Optional[str] = ..., end: _Optional[str] = ..., granularity: _Optional[str] = ..., strict: _Optional[bool] = ..., store_id: _Optional[int] = ...) -> None: ...

class Row(_message.Message):
    __slots__ = ("bucket", "store_id", "event_type", "product_id", "value")
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    bucket: str
    store_id: int
    event_type: str
    product_id: int
    value: int
    def __init__(self, bucket: _Optional[str] = ..., store_id: _Optional[int] = ..., event_type: _Optional[str] = ..., product_id: _Optional[int] = ..., value: _Optional[int] = ...) -> None: ...

class LayerRange(_message.Message):
    __slots__ = ("layer", "start", "end")
    LAYER_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    layer: str
    start: str
    end: str
    def __init__(self, layer: _Optional[str] = ..., start: _Optional[str] = ..., end: _Optional[str] = ...) -> None: ...

class TimeRange(_message.Message):
    __slots__ = ("start", "end")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    start: str
    end: str
    def __init__(self, start: _Optional[str] = ..., end: _Optional[str] = ...) -> None: ...

class Hole(_message.Message):
    __slots__ = ("start", "end", "reason")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    start: str
    end: str
    reason: str
    def __init__(self, start: _Optional[str] = ..., end: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class SpeedFreshness(_message.Message):
    __slots__ = ("offsets", "last_applied", "max_event_time", "shed")
    class OffsetsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: int
        def __init__(self, key: _Optional[int] = ..., value: _Optional[int] = ...) -> None: ...
    class ShedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    OFFSETS_FIELD_NUMBER: _ClassVar[int]
    LAST_APPLIED_FIELD_NUMBER: _ClassVar[int]
    MAX_EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    SHED_FIELD_NUMBER: _ClassVar[int]
    offsets: _containers.ScalarMap[int, int]
    last_applied: str
    max_event_time: str
    shed: _containers.ScalarMap[str, int]
    def __init__(self, offsets: _Optional[_Mapping[int, int]] = ..., last_applied: _Optional[str] = ..., max_event_time: _Optional[str] = ..., shed: _Optional[_Mapping[str, int]] = ...) -> None: ...

class ShedRange(_message.Message):
    __slots__ = ("start", "end", "counts")
    class CountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    start: str
    end: str
    counts: _containers.ScalarMap[str, int]
    def __init__(self, start: _Optional[str] = ..., end: _Optional[str] = ..., counts: _Optional[_Mapping[str, int]] = ...) -> None: ...

class Coverage(_message.Message):
    __slots__ = ("batch_through", "exact", "complete", "ranges", "approximate", "holes", "speed", "cached", "shed_ranges")
    BATCH_THROUGH_FIELD_NUMBER: _ClassVar[int]
    EXACT_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    RANGES_FIELD_NUMBER: _ClassVar[int]
    APPROXIMATE_FIELD_NUMBER: _ClassVar[int]
    HOLES_FIELD_NUMBER: _ClassVar[int]
    SPEED_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    SHED_RANGES_FIELD_NUMBER: _ClassVar[int]
    batch_through: str
    exact: bool
    complete: bool
    ranges: _containers.RepeatedCompositeFieldContainer[LayerRange]
    approximate: _containers.RepeatedCompositeFieldContainer[TimeRange]
    holes: _containers.RepeatedCompositeFieldContainer[Hole]
    speed: SpeedFreshness
    cached: bool
    shed_ranges: _containers.RepeatedCompositeFieldContainer[ShedRange]
    def __init__(self, batch_through: _Optional[str] = ..., exact: _Optional[bool] = ..., complete: _Optional[bool] = ..., ranges: _Optional[_Iterable[_Union[LayerRange, _Mapping]]] = ..., approximate: _Optional[_Iterable[_Union[TimeRange, _Mapping]]] = ..., holes: _Optional[_Iterable[_Union[Hole, _Mapping]]] = ..., speed: _Optional[_Union[SpeedFreshness, _Mapping]] = ..., cached: _Optional[bool] = ..., shed_ranges: _Optional[_Iterable[_Union[ShedRange, _Mapping]]] = ...) -> None: ...

class QueryResponse(_message.Message):
    __slots__ = ("metric", "granularity", "rows", "coverage")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    GRANULARITY_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    COVERAGE_FIELD_NUMBER: _ClassVar[int]
    metric: str
    granularity: str
    rows: _containers.RepeatedCompositeFieldContainer[Row]
    coverage: Coverage
    def __init__(self, metric: _Optional[str] = ..., granularity: _Optional[str] = ..., rows: _Optional[_Iterable[_Union[Row, _Mapping]]] = ..., coverage: _Optional[_Union[Coverage, _Mapping]] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Tier(_message.Message):
    __slots__ = ("rows", "bytes", "days")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    DAYS_FIELD_NUMBER: _ClassVar[int]
    rows: int
    bytes: int
    days: int
    def __init__(self, rows: _Optional[int] = ..., bytes: _Optional[int] = ..., days: _Optional[int] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("run_id", "job", "status", "started_at", "ended_at", "rows", "error")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    job: str
    status: str
    started_at: str
    ended_at: str
    rows: int
    error: str
    def __init__(self, run_id: _Optional[str] = ..., job: _Optional[str] = ..., status: _Optional[str] = ..., started_at: _Optional[str] = ..., ended_at: _Optional[str] = ..., rows: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("watermark", "batch_lag_s", "tiers", "jobs", "json")
    class TiersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Tier
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Tier, _Mapping]] = ...) -> None: ...
    WATERMARK_FIELD_NUMBER: _ClassVar[int]
    BATCH_LAG_S_FIELD_NUMBER: _ClassVar[int]
    TIERS_FIELD_NUMBER: _ClassVar[int]
    JOBS_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    watermark: str
    batch_lag_s: float
    tiers: _containers.MessageMap[str, Tier]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    json: str
    def __init__(self, watermark: _Optional[str] = ..., batch_lag_s: _Optional[float] = ..., tiers: _Optional[_Mapping[str, Tier]] = ..., jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., json: _Optional[str] = ...) -> None: ...

class WatchMetricRequest(_message.Message):
    __slots__ = ("query",)
    QUERY_FIELD_NUMBER: _ClassVar[int]
    query: QueryRequest
    def __init__(self, query: _Optional[_Union[QueryRequest, _Mapping]] = ...) -> None: ...

class StreamAlertsRequest(_message.Message):
    __slots__ = ("since", "rule", "status")
    SINCE_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    since: str
    rule: str
    status: str
    def __init__(self, since: _Optional[str] = ..., rule: _Optional[str] = ..., status: _Optional[str] = ...) -> None: ...

class Alert(_message.Message):
    __slots__ = ("alert_id", "rule", "key", "window_start", "window_end", "status", "raised_at", "details_json")
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_FIELD_NUMBER: _ClassVar[int]
    WINDOW_END_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RAISED_AT_FIELD_NUMBER: _ClassVar[int]
    DETAILS_JSON_FIELD_NUMBER: _ClassVar[int]
    alert_id: str
    rule: str
    key: str
    window_start: str
    window_end: str
    status: str
    raised_at: str
    details_json: str
    def __init__(self, alert_id: _Optional[str] = ..., rule: _Optional[str] = ..., key: _Optional[str] = ..., window_start: _Optional[str] = ..., window_end: _Optional[str] = ..., status: _Optional[str] = ..., raised_at: _Optional[str] = ..., details_json: _Optional[str] = ...) -> None: ...
