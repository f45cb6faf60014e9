"""validate_batch: every reject reason, the rule order, the window, fast path == slow path."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambda_rt.events._fastread import fast_parse
from lambda_rt.events.generator import EventGenerator, GeneratorConfig
from lambda_rt.events.schema import EVENT_SCHEMA, Reason
from lambda_rt.events.validate import (
    Reject,
    TimeWindow,
    ValidatedBatch,
    validate_batch,
    validate_batch_slow,
)
from lambda_rt.testing import oracle_frame, oracle_rejects

NOW = 1_795_687_200_000  # 2026-11-26T10:00:00Z
MIN = 60_000
DAY = 24 * 60 * MIN

BASE: dict[str, dict[str, Any]] = {
    "page_view": {"product_id": 5},
    "add_to_cart": {"product_id": 5, "quantity": 2},
    "order_placed": {"order_id": "o-7", "amount_cents": 2599, "items": 2},
    "payment": {"order_id": "o-7", "amount_cents": 2599, "status": "failed", "method": "card"},
    "refund": {"order_id": "o-7", "amount_cents": 100},
    "inventory_update": {"product_id": 5, "delta": -3},
}


def event(event_type: str = "order_placed", **fields: Any) -> dict[str, Any]:
    """A valid event of ``event_type``; ``fields`` override (``None`` = drop the key)."""
    out = {
        "event_id": "e-42",
        "event_type": event_type,
        "ts": NOW - MIN,
        "store_id": 17,
        "customer_id": 981,
        "session_id": "s-9",
        **BASE.get(event_type, {}),
    }
    out.update(fields)
    return {k: v for k, v in out.items() if v is not None}


def raw(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def check(values: list[bytes], **kwargs: Any) -> ValidatedBatch:
    """validate_batch, asserting the slow path agrees and the result is well formed."""
    fast = validate_batch(values, now_ms=NOW, **kwargs)
    assert_same(fast, validate_batch_slow(values, now_ms=NOW, **kwargs))
    assert fast.table.schema == EVENT_SCHEMA
    assert fast.n_valid + fast.n_rejected == len(values)
    assert sorted([*fast.indices.tolist(), *(r.index for r in fast.rejects)]) == list(range(len(values)))
    return fast


def assert_same(a: ValidatedBatch, b: ValidatedBatch) -> None:
    assert a.rejects == b.rejects
    assert a.indices.dtype == np.int64 and a.indices.tolist() == b.indices.tolist()
    assert a.table.equals(b.table), (a.table.to_pylist(), b.table.to_pylist())


def only_reject(value: bytes) -> Reject:
    """The reject of ``value`` alone and next to good events (so the fast path runs)."""
    good = raw(event())
    for values, index in (([value], 0), ([good, value, good], 1)):
        result = check(values)
        assert [r.index for r in result.rejects] == [index], result.rejects
    return check([value]).rejects[0]


BAD: list[tuple[str, bytes, Reason, str]] = [
    ("garbage", b"not json", Reason.NOT_JSON, ""),
    ("non-utf8", b'{"event_id":"\xff"}', Reason.NOT_JSON, ""),
    ("non-utf8 in unknown key", raw(event())[:-1] + b',"\xfe":1}', Reason.NOT_JSON, ""),
    ("truncated", raw(event())[:40], Reason.NOT_JSON, ""),
    ("empty", b"", Reason.NOT_JSON, ""),
    ("NaN in unknown field", raw(event())[:-1] + b',"x":NaN}', Reason.NOT_JSON, ""),
    ("-Infinity", raw(event())[:-1] + b',"x":-Infinity}', Reason.NOT_JSON, ""),
    ("lone surrogate", raw(event())[:-1] + b',"x":"\\ud800"}', Reason.NOT_JSON, ""),
    ("BOM", b"\xef\xbb\xbf" + raw(event()), Reason.NOT_JSON, ""),
    ("two objects", raw(event()) + raw(event()), Reason.NOT_JSON, ""),
    ("too deep", raw(event())[:-1] + b',"x":' + b"[" * 1100 + b"]" * 1100 + b"}", Reason.NOT_JSON, ""),
    ("array", raw([event()]), Reason.NOT_OBJECT, "JSON value is an array, not an object"),
    ("number", b"17", Reason.NOT_OBJECT, "JSON value is a number, not an object"),
    ("string", b'"x"', Reason.NOT_OBJECT, "JSON value is a string, not an object"),
    ("null", b"null", Reason.NOT_OBJECT, "JSON value is null, not an object"),
    ("no event_id", raw(event(event_id=None)), Reason.MISSING_FIELD, "missing required field event_id"),
    ("null ts", raw({**event(), "ts": None}), Reason.MISSING_FIELD, "missing required field ts"),
    ("no customer", raw(event(customer_id=None)), Reason.MISSING_FIELD, "missing required field customer_id"),
    (
        "no order_id",
        raw(event("payment", order_id=None)),
        Reason.MISSING_FIELD,
        "missing required field order_id for event_type payment",
    ),
    (
        "no delta",
        raw(event("inventory_update", delta=None)),
        Reason.MISSING_FIELD,
        "missing required field delta for event_type inventory_update",
    ),
    ("bool int", raw(event(store_id=True)), Reason.WRONG_TYPE, "field store_id must be a 64-bit int"),
    ("float int", raw(event(items=2.0)), Reason.WRONG_TYPE, "field items must be a 64-bit int"),
    (
        "exp int",
        raw(event(items=None))[:-1] + b',"items":1e3}',
        Reason.WRONG_TYPE,
        "field items must be a 64-bit int",
    ),
    ("dup key", raw(event())[:-1] + b',"items":2.5}', Reason.WRONG_TYPE, "field items must be a 64-bit int"),
    ("string int", raw(event(ts=str(NOW))), Reason.WRONG_TYPE, "field ts must be a 64-bit int"),
    ("int string", raw(event(event_id=42)), Reason.WRONG_TYPE, "field event_id must be a string"),
    ("object", raw(event(order_id={"a": 1})), Reason.WRONG_TYPE, "field order_id must be a string"),
    ("2**63", raw(event(amount_cents=2**63)), Reason.WRONG_TYPE, "field amount_cents must be a 64-bit int"),
    ("-2**63-1", raw(event(ts=-(2**63) - 1)), Reason.WRONG_TYPE, "field ts must be a 64-bit int"),
    ("2**70", raw(event(customer_id=2**70)), Reason.WRONG_TYPE, "field customer_id must be a 64-bit int"),
    ("10**400", raw(event(store_id=10**400)), Reason.WRONG_TYPE, "field store_id must be a 64-bit int"),
    (
        "foreign field mistyped",
        raw(event("page_view", amount_cents="x")),
        Reason.WRONG_TYPE,
        "field amount_cents must be a 64-bit int",
    ),
    ("unknown type", raw(event("click")), Reason.UNKNOWN_EVENT_TYPE, "unknown event_type 'click'"),
    ("empty type", raw(event("")), Reason.UNKNOWN_EVENT_TYPE, "unknown event_type ''"),
    (
        "negative amount",
        raw(event("refund", amount_cents=-1)),
        Reason.INVALID_VALUE,
        "field amount_cents must be an int >= 0",
    ),
    ("store 0", raw(event(store_id=0)), Reason.INVALID_VALUE, "field store_id must be an int >= 1"),
    (
        "customer -1",
        raw(event(customer_id=-1)),
        Reason.INVALID_VALUE,
        "field customer_id must be an int >= 0",
    ),
    (
        "empty event_id",
        raw(event(event_id="")),
        Reason.INVALID_VALUE,
        "field event_id must be a non-empty string of at most 64 chars",
    ),
    (
        "65-char event_id",
        raw(event(event_id="e" * 65)),
        Reason.INVALID_VALUE,
        "field event_id must be a non-empty string of at most 64 chars",
    ),
    (
        "bad status",
        raw(event("payment", status="pending")),
        Reason.INVALID_VALUE,
        "field status must be one of failed, succeeded",
    ),
    (
        "quantity 0",
        raw(event("add_to_cart", quantity=0)),
        Reason.INVALID_VALUE,
        "field quantity must be an int >= 1",
    ),
    ("items 0", raw(event(items=0)), Reason.INVALID_VALUE, "field items must be an int >= 1"),
    (
        "version 0",
        raw(event(schema_version=0)),
        Reason.INVALID_VALUE,
        "field schema_version must be an int >= 1",
    ),
    (
        "30 days old",
        raw(event(ts=NOW - 30 * DAY)),
        Reason.TS_TOO_OLD,
        f"ts {NOW - 30 * DAY} is more than {7 * DAY} ms before now {NOW}",
    ),
    (
        "1 hour ahead",
        raw(event(ts=NOW + 60 * MIN)),
        Reason.TS_IN_FUTURE,
        f"ts {NOW + 60 * MIN} is more than {5 * MIN} ms after now {NOW}",
    ),
]


@pytest.mark.parametrize(("value", "reason", "detail"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_every_bad_kind_is_rejected_with_its_reason(value: bytes, reason: Reason, detail: str) -> None:
    reject = only_reject(value)
    assert reject.reason is reason
    if detail:
        assert reject.detail == detail
    else:
        assert reject.detail == "value is not UTF-8 JSON"
    assert oracle_rejects([value], now_ms=NOW) == [(0, str(reason))]


@pytest.mark.parametrize("event_type", list(BASE))
def test_valid_events_of_every_type_pass_with_their_fields(event_type: str) -> None:
    result = check([raw(event(event_type))])
    assert not result.rejects and result.indices.tolist() == [0]
    row = result.table.to_pylist()[0]
    assert {k: v for k, v in row.items() if v is not None} == {**event(event_type), "schema_version": 1}


def test_unknown_extra_fields_pass_and_are_dropped() -> None:
    extra: dict[str, Any] = {
        "referrer": "https://x.example/a.b?c=1.5",
        "ctx": {"ts": "not an int", "deep": [[{}], None]},
    }
    values = [
        raw(event(**extra)),
        raw(event("page_view", big=10**30, ratio=1.5e300, flag=True, nothing=None)),
        raw(event())[:-1] + b',"huge":1e400,"long":' + b"9" * 400 + b"}",  # RFC 8259 numbers
        raw(event("refund", **{"\u00e9v\u00e8nement": "\U0001f600", "": ""})),
        b'{ "event_id" : "e-1", "event_type":"page_view", "ts":'
        + str(NOW).encode()
        + b',\n"store_id":1,"customer_id":0,\t"product_id":7 }',
    ]
    result = check(values)
    assert result.n_valid == 5 and not result.rejects
    assert result.table.column_names == EVENT_SCHEMA.names


def test_fields_of_other_event_types_are_ignored_and_nulled() -> None:
    value = raw(event("page_view", amount_cents=-5, status="weird", delta=3, order_id="o-1"))
    row = check([value]).table.to_pylist()[0]
    assert row["product_id"] == 5
    assert row["amount_cents"] is row["status"] is row["delta"] is row["order_id"] is None


def test_newer_schema_versions_pass_and_the_version_defaults_to_1() -> None:
    values = [raw(event(schema_version=7, coupon="NEW10")), raw(event()), raw(event(schema_version=1))]
    result = check(values)
    assert result.table.column("schema_version").to_pylist() == [7, 1, 1]


def test_event_id_length_counts_characters_not_bytes() -> None:
    values = [
        raw(event(event_id="\u00e9" * 64)),
        raw(event(event_id="\U0001f600" * 65)),
        raw(event(event_id="e" * 64)),
    ]
    result = check(values)
    assert result.indices.tolist() == [0, 2]
    assert [r.reason for r in result.rejects] == [Reason.INVALID_VALUE]


@pytest.mark.parametrize(
    ("ts", "reason"),
    [
        (NOW - 7 * DAY, None),
        (NOW - 7 * DAY - 1, Reason.TS_TOO_OLD),
        (NOW + 5 * MIN, None),
        (NOW + 5 * MIN + 1, Reason.TS_IN_FUTURE),
        (NOW, None),
        (0, Reason.TS_TOO_OLD),
        (-1, Reason.TS_TOO_OLD),
    ],
)
def test_ts_window_edges(ts: int, reason: Reason | None) -> None:
    result = check([raw(event(ts=ts))])
    assert [r.reason for r in result.rejects] == ([reason] if reason else [])


def test_custom_window() -> None:
    window = TimeWindow(max_age_ms=MIN, max_future_ms=0)
    values = [
        raw(event(ts=NOW - MIN)),
        raw(event(ts=NOW - MIN - 1)),
        raw(event(ts=NOW)),
        raw(event(ts=NOW + 1)),
    ]
    result = check(values, window=window)
    assert result.indices.tolist() == [0, 2]
    assert [r.reason for r in result.rejects] == [Reason.TS_TOO_OLD, Reason.TS_IN_FUTURE]
    with pytest.raises(ValueError):
        TimeWindow(max_age_ms=-1)


@pytest.mark.parametrize(
    ("obj", "reason", "field"),
    [
        ({**event(store_id="x"), "event_id": None}, Reason.WRONG_TYPE, "store_id"),  # type beats missing
        (event("click", ts=None), Reason.MISSING_FIELD, "ts"),  # missing common beats unknown type
        (event("click", store_id=0), Reason.UNKNOWN_EVENT_TYPE, ""),  # unknown type beats values
        (event("refund", order_id=None, amount_cents=-1), Reason.MISSING_FIELD, "order_id"),
        (event(store_id=0, amount_cents=-1, ts=0), Reason.INVALID_VALUE, "store_id"),  # column order
        (event(items=0, amount_cents=-1), Reason.INVALID_VALUE, "amount_cents"),
        (event(ts=0, items=0), Reason.INVALID_VALUE, "items"),  # values beat the window
        (event(event_id=1, store_id="1"), Reason.WRONG_TYPE, "event_id"),  # first column wins
    ],
)
def test_rule_order(obj: dict[str, Any], reason: Reason, field: str) -> None:
    reject = only_reject(raw(obj))
    assert reject.reason is reason
    assert field in reject.detail
    assert oracle_rejects([raw(obj)], now_ms=NOW) == [(0, str(reason))]


def test_empty_and_odd_inputs() -> None:
    empty = check([])
    assert empty.n_valid == empty.n_rejected == 0 and empty.table.schema == EVENT_SCHEMA
    odd = validate_batch([None, bytearray(raw(event())), memoryview(raw(event()))], now_ms=NOW)  # type: ignore[list-item]
    assert odd.indices.tolist() == [1, 2] and odd.rejects[0].reason is Reason.NOT_JSON


def test_fast_path_really_reads_clean_and_dirty_batches_with_pyarrow() -> None:
    gen = EventGenerator(GeneratorConfig(seed=3, end_ms=NOW, bad_fraction=0.02))
    values = [v for _, v in gen.batch(3000)]
    table, slow = fast_parse(values)
    assert table is not None and table.num_rows == len(values)
    assert len(slow) < 0.05 * len(values)  # only suspects were decoded one by one
    clean = [v for _, v in EventGenerator(GeneratorConfig(seed=3, end_ms=NOW)).batch(3000)]
    table, slow = fast_parse(clean)
    assert table is not None and len(slow) == 0


def good_events(n: int, seed: int = 5) -> list[bytes]:
    return [v for _, v in EventGenerator(GeneratorConfig(seed=seed, end_ms=NOW)).batch(n)]


def check_fast(values: list[bytes], slow_at_most: int) -> ValidatedBatch:
    """``check`` plus: the fast path read the batch and sent few lines slow."""
    table, slow = fast_parse(values)
    assert table is not None and table.num_rows == len(values)
    assert len(slow) <= slow_at_most, slow
    result = check(values)
    assert [(r.index, str(r.reason)) for r in result.rejects] == oracle_rejects(values, now_ms=NOW)
    return result


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("string int", raw(event(store_id="17"))),
        ("bool int", raw(event(customer_id=False))),
        ("float int", raw(event(ts=NOW + 0.5))),
        ("int string", raw(event(event_id=7))),
        ("object string", raw(event(order_id={"a": 1}))),
        ("array int", raw(event(items=[1]))),
        ("spaced separators", json.dumps(event(ts=str(NOW))).encode()),
        ("short key", raw(event(items=1.5))),
        ("5-char key", raw(event("inventory_update", delta="3"))),
    ],
)
def test_wrong_types_in_a_clean_batch_cost_one_retry_not_the_slow_path(name: str, bad: bytes) -> None:
    values = good_events(300)
    values[150] = bad
    result = check_fast(values, slow_at_most=1)
    assert [(r.index, r.reason) for r in result.rejects] == [(150, Reason.WRONG_TYPE)]


def test_spaced_json_with_negative_ints_is_not_suspected() -> None:
    values = [json.dumps(event("inventory_update", delta=-3 - i)).encode() for i in range(100)]
    values[7] = json.dumps(event("inventory_update", delta="-3")).encode()
    result = check_fast(values, slow_at_most=1)
    assert [(r.index, r.reason) for r in result.rejects] == [(7, Reason.WRONG_TYPE)]


def test_the_first_key_of_the_batch_is_type_checked() -> None:
    values = [b'{"ts":"1","event_id":"e"}', b"garbage", *good_events(50)]
    result = check_fast(values, slow_at_most=2)
    assert [r.reason for r in result.rejects] == [Reason.WRONG_TYPE, Reason.NOT_JSON]


def test_many_bad_lines_take_the_slow_path_one_by_one() -> None:
    values = good_events(400)
    bad = [b"", b"{", b"x", b"[1]", b"{}{}", raw(event())[:-1] + b',"x":NaN}', raw(event(ts="1"))]
    bad += [raw(event(event_id="\u00e9"))[:-1] + b',"z":"\xff"}', raw(event(ts=NOW + 0.25))]
    for k, value in enumerate(bad):
        values[10 + 37 * k] = value
    check_fast(values, slow_at_most=len(bad))


def test_two_objects_on_one_line_are_found_after_a_failed_read() -> None:
    values = good_events(200)
    values[99] = raw(event()) + raw(event())
    values[100] = raw(event()) + b" " + raw(event())
    result = check_fast(values, slow_at_most=2)
    assert [(r.index, r.reason) for r in result.rejects] == [(99, Reason.NOT_JSON), (100, Reason.NOT_JSON)]


def test_non_ascii_batches_screen_utf8_line_by_line_only_when_needed() -> None:
    accented = [
        json.dumps(event(event_id=f"\u00e9-{i}", session_id="caf\u00e9"), ensure_ascii=False).encode()
        for i in range(100)
    ]
    assert not accented[0].isascii()
    assert check_fast(accented, slow_at_most=0).n_valid == 100
    accented[42] = accented[42][:-1] + b',"x":"\xc0\xaf"}'
    result = check_fast(accented, slow_at_most=1)
    assert [(r.index, r.reason) for r in result.rejects] == [(42, Reason.NOT_JSON)]


def test_long_lines_are_checked_for_nesting_depth() -> None:
    values = good_events(20)
    values[3] = raw(event())[:-1] + b',"x":' + b"[" * 600 + b"]" * 600 + b"}"  # fine: 601 levels
    values[4] = raw(event())[:-1] + b',"x":"' + b"{" * 2000 + b'"}'  # brackets inside a string
    values[5] = raw(event())[:-1] + b',"x":' + b"[" * 1100 + b"]" * 1100 + b"}"  # too deep
    result = check_fast(values, slow_at_most=3)
    assert [(r.index, r.reason) for r in result.rejects] == [(5, Reason.NOT_JSON)]


def test_generated_stream_agrees_with_the_independent_oracle() -> None:
    gen = EventGenerator(GeneratorConfig(seed=11, end_ms=NOW, bad_fraction=0.05))
    values = [v for _, v in gen.batch(6000)]
    result = validate_batch(values, now_ms=NOW)
    assert [(r.index, str(r.reason)) for r in result.rejects] == oracle_rejects(values, now_ms=NOW)
    expected = oracle_frame(values, now_ms=NOW)
    assert result.indices.tolist() == expected.index.tolist()
    got = result.table.to_pandas()
    for name in EVENT_SCHEMA.names:
        assert got[name].astype(object).where(got[name].notna(), None).tolist() == (
            expected[name].astype(object).where(expected[name].notna(), None).tolist()
        ), name
    assert {str(r.reason) for r in result.rejects} == {str(r) for r in Reason}


# --- property tests: fast path == slow path == concatenation of singles ------------------

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 17]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=70),
    st.sampled_from(["", "e" * 64, "e" * 65, "succeeded", "failed", "page_view", "refund", "click"]),
)
json_value = st.recursive(
    json_leaf,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=5), kids, max_size=3),
    max_leaves=6,
)
FIELDS = EVENT_SCHEMA.names


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    """Valid events, single-field mutations, extra fields, odd encodings and raw junk."""
    kind = draw(st.sampled_from(["valid", "mutated", "mutated", "junk", "corrupted"]))
    if kind == "junk":
        return draw(st.binary(max_size=40) | st.sampled_from([b"[]", b"{}", b"{} {}", b"null", b"{\n}"]))
    obj: Any = event(draw(st.sampled_from([*BASE, "click"])), ts=NOW - draw(st.integers(-10 * MIN, 8 * DAY)))
    if kind == "mutated":
        for _ in range(draw(st.integers(1, 2))):
            name = draw(st.sampled_from([*FIELDS, "extra"]))
            if draw(st.booleans()):
                obj.pop(name, None)
            else:
                obj[name] = draw(json_value)
    if draw(st.booleans()):
        obj[draw(st.text(max_size=4))] = draw(json_value)
    if draw(st.integers(0, 9)) == 0:
        obj = [obj]
    separators = draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,", " :")]))
    text = json.dumps(obj, separators=separators, ensure_ascii=draw(st.booleans()))
    data = text.encode("utf-8", "surrogatepass")
    if kind == "corrupted":
        cut = draw(st.integers(0, len(data)))
        data = data[:cut] + draw(st.binary(max_size=3)) + data[cut + draw(st.integers(0, 3)) :]
    return data


PROPERTY = settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY
@given(messages())
def test_fast_path_equals_slow_path_and_the_oracle_on_single_messages(value: bytes) -> None:
    fast = validate_batch([value], now_ms=NOW)
    assert_same(fast, validate_batch_slow([value], now_ms=NOW))
    assert [(r.index, str(r.reason)) for r in fast.rejects] == oracle_rejects([value], now_ms=NOW)


@settings(PROPERTY, max_examples=40)
@given(st.lists(messages(), min_size=1, max_size=8))
def test_a_batch_equals_the_concatenation_of_its_single_messages(values: list[bytes]) -> None:
    batch = validate_batch(values, now_ms=NOW)
    singles = [validate_batch([v], now_ms=NOW) for v in values]
    rejects = [
        Reject(i, s.rejects[0].reason, s.rejects[0].detail) for i, s in enumerate(singles) if s.rejects
    ]
    assert batch.rejects == rejects
    assert batch.indices.tolist() == [i for i, s in enumerate(singles) if s.n_valid]
    assert batch.table.equals(pa.concat_tables([s.table for s in singles]))


def test_orjson_and_the_stdlib_agree_with_the_rules_on_huge_numbers() -> None:
    # orjson turns 2**64+ into floats and rejects 1e400; both must still be wrong_type / JSON
    assert isinstance(orjson.loads(b"18446744073709551616"), float)
    assert only_reject(raw(event(ts=2**64))).reason is Reason.WRONG_TYPE


@settings(PROPERTY, max_examples=25)
@given(st.lists(st.tuples(st.integers(0, 199), messages()), min_size=1, max_size=12))
def test_bad_messages_inside_a_large_batch_agree_with_the_slow_path(bad: list[tuple[int, bytes]]) -> None:
    values = good_events(200, seed=9)
    for at, value in bad:
        values[at] = value
    fast = validate_batch(values, now_ms=NOW)
    assert_same(fast, validate_batch_slow(values, now_ms=NOW))
    assert [(r.index, str(r.reason)) for r in fast.rejects] == oracle_rejects(values, now_ms=NOW)
