"""EventGenerator: determinism, the configured mix, sessions, bad messages, JSONL files."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from lambda_rt.events.generator import BAD_KINDS, EventGenerator, GeneratorConfig, write_jsonl
from lambda_rt.events.schema import EVENT_TYPES, Reason
from lambda_rt.events.validate import validate_batch
from lambda_rt.testing import read_jsonl

END = 1_795_687_200_000  # 2026-11-26T10:00:00Z
SPAN = 10 * 60_000


def generate(n: int, **config: object) -> list[tuple[bytes, bytes]]:
    return EventGenerator(GeneratorConfig(end_ms=END, **config)).batch(n)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def events() -> list[dict[str, object]]:
    return [json.loads(v) for _, v in generate(40_000)]


def test_same_config_same_bytes_whatever_the_batch_sizes() -> None:
    one = generate(20_000, seed=5, bad_fraction=0.1)
    gen = EventGenerator(GeneratorConfig(seed=5, end_ms=END, bad_fraction=0.1))
    pieces = (
        gen.batch(3) + gen.batch(9000) + gen.batch(0) + [p for b in gen.iter_batches(10_997, 4096) for p in b]
    )
    assert pieces == one
    assert gen.emitted == 20_000


def test_another_seed_gives_other_events() -> None:
    a, b = generate(1000, seed=1), generate(1000, seed=2)
    assert len({v for _, v in a} & {v for _, v in b}) == 0
    assert [json.loads(v)["event_id"] for _, v in b[:2]] == ["e-2-0", "e-2-1"]


def test_iter_batches_sizes() -> None:
    gen = EventGenerator(GeneratorConfig(end_ms=END))
    assert [len(b) for b in gen.iter_batches(25_001, 10_000)] == [10_000, 10_000, 5001]
    with pytest.raises(ValueError):
        list(gen.iter_batches(10, 0))


def test_all_good_events_validate_and_ids_are_unique(events: list[dict[str, object]]) -> None:
    values = [v for _, v in generate(len(events))]
    assert validate_batch(values, now_ms=END).n_valid == len(values)
    assert len({e["event_id"] for e in events}) == len(events)
    assert all(b"\n" not in v for v in values)


def test_event_mix_is_roughly_as_configured(events: list[dict[str, object]]) -> None:
    share = Counter(e["event_type"] for e in events)
    expected = dict(zip(EVENT_TYPES, (0.70, 0.12, 0.06, 0.06, 0.01, 0.05), strict=True))
    for event_type, p in expected.items():
        assert abs(share[event_type] / len(events) - p) < 0.01 + p * 0.1, (event_type, share)
    payments = [e for e in events if e["event_type"] == "payment"]
    failed = sum(e["status"] == "failed" for e in payments) / len(payments)
    assert 0.03 < failed < 0.07
    assert {e["method"] for e in payments} == {"card", "paypal", "apple_pay", "gift_card"}


def test_stores_are_skewed_and_keys_are_store_ids(events: list[dict[str, object]]) -> None:
    pairs = generate(len(events))
    assert all(k == str(e["store_id"]).encode() for (k, _), e in zip(pairs, events, strict=True))
    stores = Counter(e["store_id"] for e in events)
    assert set(stores) <= set(range(1, 1001))
    top = stores.most_common(1)[0][1] / len(events)
    assert top > 20 / 1000  # the busiest store gets far more than a uniform 1/1000


def test_times_sessions_and_system_events(events: list[dict[str, object]]) -> None:
    assert all(END - SPAN <= e["ts"] < END for e in events)  # type: ignore[operator]
    minutes = Counter((e["ts"] - (END - SPAN)) // 60_000 for e in events)  # type: ignore[operator]
    assert sorted(minutes) == list(range(10)) and min(minutes.values()) > 0.08 * len(events)
    sessions: dict[object, set[object]] = {}
    previous = None
    for e in events:
        if e["event_type"] == "inventory_update":
            assert e["customer_id"] == 0 and "session_id" not in e
            continue
        sid = e["session_id"]
        sessions.setdefault(sid, set()).add((e["customer_id"], e["store_id"]))
        if previous is not None and sid != previous:
            assert sid not in sessions or len(sessions[sid]) == 1
        previous = sid
    assert all(len(who) == 1 for who in sessions.values())  # one customer and store per session
    assert 3 < sum(1 for e in events if "session_id" in e) / len(sessions) < 10


def test_bad_fraction_covers_every_kind_deterministically() -> None:
    values = [v for _, v in generate(20_000, seed=9, bad_fraction=0.05)]
    assert values == [v for _, v in generate(20_000, seed=9, bad_fraction=0.05)]
    result = validate_batch(values, now_ms=END)
    assert 0.04 < result.n_rejected / len(values) < 0.06
    reasons = Counter(r.reason for r in result.rejects)
    assert set(reasons) == set(Reason) == set(BAD_KINDS.values())
    # kinds are drawn uniformly, so each reason gets its share of the 13 kinds
    kinds = Counter(BAD_KINDS.values())
    for reason, count in reasons.items():
        assert abs(count / result.n_rejected - kinds[reason] / len(BAD_KINDS)) < 0.04, reason
    assert all(b"\n" not in v for v in values)
    good = [v for v in values if v.startswith(b'{"event_id":"e-9-')]
    assert len(good) > 0.9 * len(values)  # the rest of the stream is untouched


def test_config_is_checked() -> None:
    with pytest.raises(ValueError):
        GeneratorConfig(bad_fraction=1.5)
    with pytest.raises(ValueError):
        GeneratorConfig(stores=0)
    with pytest.raises(ValueError):
        EventGenerator().batch(-1)


def test_jsonl_round_trip(tmp_path: Path) -> None:
    values = [v for _, v in generate(500, bad_fraction=0.3)]
    path = tmp_path / "events.jsonl"
    assert write_jsonl(path, values) == 500
    assert read_jsonl(path) == values
    assert write_jsonl(path, []) == 0 and read_jsonl(path) == []
    with pytest.raises(ValueError, match="newline"):
        write_jsonl(path, [b"{}", b'{"a":\n1}'])


def test_schema_versions_campaign_funnels_and_stock_levels() -> None:
    import collections

    import orjson

    from lambda_rt.events.validate import validate_batch

    end = 1_795_687_200_000
    v1 = EventGenerator(GeneratorConfig(seed=9, end_ms=end)).batch(3_000)
    mixed = EventGenerator(GeneratorConfig(seed=9, end_ms=end, schema_version="mixed")).batch(30_000)
    assert all(b"schema_version" not in v and b"campaign_id" not in v for _, v in v1)
    events = [orjson.loads(v) for _, v in mixed]
    assert validate_batch([v for _, v in mixed], now_ms=end).n_valid == len(mixed)
    versions = collections.Counter(e.get("schema_version", 1) for e in events)
    assert 0.4 < versions[2] / len(events) < 0.6
    by_campaign = collections.Counter(e["campaign_id"] for e in events if "campaign_id" in e)
    assert 24 <= len(by_campaign) <= 40
    assert max(by_campaign.values()) > 5 * min(by_campaign.values())  # shares differ
    # funnels differ: orders per view is not the same for every campaign
    funnel: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for e in events:
        if "campaign_id" in e:
            funnel[e["campaign_id"]][e["event_type"]] += 1
    rates = [f["order_placed"] / f["page_view"] for f in funnel.values() if f["page_view"] > 300]
    assert max(rates) > 1.5 * min(rates)
    for e in events:
        if e["event_type"] in ("order_placed", "payment") and e.get("schema_version") == 2:
            assert e["card_fingerprint"] and e["ip"].count(".") == 3 and e["device_id"]
        if e["event_type"] in ("payment", "refund", "inventory_update"):
            assert "campaign_id" not in e
    # stock: the level after each update is the previous level plus the delta, never below 0
    stock: dict[tuple[int, int], int] = {}
    restocks = 0
    for e in events:
        if e["event_type"] != "inventory_update":
            continue
        key = (e["store_id"], e["product_id"])
        if "stock_on_hand" in e:
            assert e["stock_on_hand"] >= 0
            if key in stock:
                assert e["stock_on_hand"] == stock[key] + e["delta"]
            stock[key] = e["stock_on_hand"]
        else:
            stock.pop(key, None)  # a v1 event: the level is not known here
        restocks += e["delta"] > 0
    assert restocks > 10
