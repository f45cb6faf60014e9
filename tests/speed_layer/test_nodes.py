"""The speed graph's nodes through the in-memory harness: hand-built batches, real Redis, no Kafka.

Each test feeds :class:`~speed_layer.microbatch.RawBatch` values through the
real streamz nodes (``speed_layer.testing.SpeedHarness``) and checks what came
out (applied batches, commits, dead letters, corrections for the source) and
what Redis holds, against the independent oracle.
"""

from __future__ import annotations

import json

import pytest

from lambda_rt.events.generator import EventGenerator, GeneratorConfig
from lambda_rt.testing import oracle_rejects
from speed_layer.keys import META_REBUILDING
from speed_layer.positioning import Corrections
from speed_layer.redis_apply import stored_offsets
from speed_layer.testing import SpeedHarness
from tests.speed_layer.fixtures import assert_metrics_equal, now_ms, oracle_view, view_metrics


def _values(n: int, seed: int, bad_fraction: float = 0.03) -> list[bytes]:
    gen = EventGenerator(GeneratorConfig(seed=seed, bad_fraction=bad_fraction, stores=20, customers=2000))
    return [v for _, v in gen.batch(n)]


def _page_view(i: int, ts: int) -> bytes:
    e = {
        "event_id": f"pv-{i}",
        "event_type": "page_view",
        "ts": ts,
        "store_id": 1,
        "customer_id": i,
        "product_id": 1,
    }
    return json.dumps(e).encode()


def _order(i: int, ts: int) -> bytes:
    e = {
        "event_id": f"o-{i}",
        "event_type": "order_placed",
        "ts": ts,
        "store_id": 2,
        "customer_id": i,
        "order_id": f"o{i}",
        "amount_cents": 100,
        "items": 1,
    }
    return json.dumps(e).encode()


@pytest.mark.parametrize("overlap", [False, True])
def test_batches_on_two_partitions_match_the_oracle_and_commit_after_the_write(
    isolated, redis_client, keys, overlap
):
    now = now_ms()
    values = _values(3000, seed=41)
    with SpeedHarness(redis_client, keys, overlap=overlap) as h:
        h.start_epoch()
        batches = [
            h.batch(values[i : i + 500], partition=(i // 500) % 2, first_offset=(i // 1000) * 500)
            for i in range(0, len(values), 500)
        ]
        applied = h.feed(*batches)
    assert len(applied) == len(batches)
    assert [a.delta.offsets for a in applied] == h.commits
    assert h.commits == [
        [(p, o, o + 500)] for p, o in ((0, 0), (1, 0), (0, 500), (1, 500), (0, 1000), (1, 1000))
    ]
    assert stored_offsets(redis_client, keys) == {0: 1500, 1: 1500}
    assert h.corrections == []
    assert_metrics_equal(view_metrics(isolated.settings), oracle_view(values, now))
    # every reject went to the dead letters, with the oracle's reason, before its batch's write
    want = sorted((values[i], reason) for i, reason in oracle_rejects(values, now_ms=now))
    assert sorted((d.value, d.reason) for d in h.dead_letters.letters) == want
    assert h.dead_letters.flushes == sum(1 for a in applied if a.checked.rejects)
    assert sum(len(a.checked.rejects) for a in applied) == len(want)


def test_a_replayed_batch_is_trimmed_and_the_source_told_to_skip_ahead(isolated, redis_client, keys):
    now = now_ms()
    values = [_page_view(i, now) for i in range(150)]
    with SpeedHarness(redis_client, keys) as h:
        h.start_epoch()
        h.feed(h.batch(values[:100]))
        # offsets 50..149: 50..99 are already in Redis (another member, or a restart)
        again = h.feed(h.batch(values[50:], first_offset=50))
    assert len(again) == 1
    assert again[0].replayed_rows == 50
    assert again[0].delta.offsets == [(0, 100, 150)]
    assert h.corrections == [Corrections(stale=({0: 100},))]
    assert h.commits[-1] == [(0, 100, 150)]
    assert_metrics_equal(view_metrics(isolated.settings), oracle_view(values, now))


def test_a_fully_replayed_batch_writes_and_commits_nothing(redis_client, keys):
    now = now_ms()
    values = [_page_view(i, now) for i in range(40)]
    with SpeedHarness(redis_client, keys) as h:
        h.start_epoch()
        h.feed(h.batch(values))
        assert h.feed(h.batch(values)) == []
    assert len(h.commits) == 1
    assert h.corrections == [Corrections(stale=({0: 40},))]


def test_a_gap_drops_only_that_partition_and_asks_for_a_rewind(isolated, redis_client, keys):
    now = now_ms()
    p0 = [_page_view(i, now) for i in range(100)]
    p1 = [_order(i, now) for i in range(30)]
    with SpeedHarness(redis_client, keys) as h:
        h.start_epoch()
        h.feed(h.batch(p0[:50]))
        # partition 0 resumes at 60 although Redis holds 50 (Redis lost 50..59): a gap
        mixed = h.batch(p0[60:] + p1, partitions=[0] * 40 + [1] * 30, offsets=[*range(60, 100), *range(30)])
        applied = h.feed(mixed)
    assert h.corrections == [Corrections(gaps=({0: 50},))]
    assert [a.delta.offsets for a in applied] == [[(1, 0, 30)]]
    assert stored_offsets(redis_client, keys) == {0: 50, 1: 30}
    assert_metrics_equal(view_metrics(isolated.settings), oracle_view(p0[:50] + p1, now))


def test_an_accepted_gap_is_written(redis_client, keys):
    now = now_ms()
    values = [_page_view(i, now) for i in range(20)]
    with SpeedHarness(redis_client, keys) as h:
        h.start_epoch()
        # Kafka's log starts at 7 (retention): the source says so with allow_gaps
        applied = h.feed(h.batch(values, first_offset=7, allow_gaps={0: 0}))
    assert [a.delta.offsets for a in applied] == [[(0, 7, 27)]]
    assert h.corrections == []


@pytest.mark.parametrize("how", ["lost", "changed"])
def test_a_lost_or_foreign_epoch_writes_nothing_and_asks_for_a_resync(redis_client, keys, how):
    now = now_ms()
    values = [_page_view(i, now) for i in range(30)]
    with SpeedHarness(redis_client, keys) as h:
        h.start_epoch()
        h.feed(h.batch(values[:10]))
        if how == "lost":
            redis_client.delete(keys.epoch)
        else:
            redis_client.set(keys.epoch, "another-epoch")
        assert h.feed(h.batch(values[10:], first_offset=10)) == []
    assert h.corrections == [Corrections(resync=True)]
    assert h.commits == [[(0, 0, 10)]]
    assert stored_offsets(redis_client, keys) == {0: 10}


def test_shedding_drops_the_configured_type_after_sustained_lag_and_counts_it(isolated, redis_client, keys):
    now = now_ms()
    late = now - 60_000  # produced a minute ago: the speed view is 60 s behind
    batches_values = [
        [_page_view(10 * b + i, late) for i in range(6)] + [_order(10 * b, late)] for b in range(5)
    ]
    with SpeedHarness(
        redis_client, keys, shed_event_types=("page_view",), shed_lag_seconds=30.0, shed_sustain=2
    ) as h:
        h.start_epoch()
        applied = h.feed(
            *(h.batch(v, first_offset=7 * b, timestamps_ms=[late] * 7) for b, v in enumerate(batches_values))
        )
    shed = [sum(a.checked.shed_by_type.values()) for a in applied]
    assert shed == [0, 6, 6, 6, 6]  # the second batch over the threshold starts it
    assert int(redis_client.hget(keys.meta, "shed:page_view")) == 24
    got = view_metrics(isolated.settings)
    assert int(got["orders"].sum()) == 5
    assert int(got["events"].sum()) == 5 + 6
    assert stored_offsets(redis_client, keys) == {0: 35}  # shed messages are consumed all the same


def test_a_rebuild_is_finished_by_the_write_that_reaches_its_target(redis_client, keys):
    now = now_ms()
    values = [_page_view(i, now) for i in range(60)]
    with SpeedHarness(redis_client, keys) as h:
        h.start_epoch({0: 60})
        assert redis_client.hget(keys.meta, META_REBUILDING) == b"1"
        h.feed(h.batch(values[:30]))
        assert redis_client.hget(keys.meta, META_REBUILDING) == b"1"
        h.feed(h.batch(values[30:], first_offset=30))
    assert redis_client.hget(keys.meta, META_REBUILDING) == b"0"
