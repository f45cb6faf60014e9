"""``LiveHub`` computes once per tick per key, whatever the number of readers."""

from __future__ import annotations

import asyncio
import threading

from serving.live import LiveHub, Snapshot


def _run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_many_readers_share_one_computation_per_tick() -> None:
    calls: list[str] = []
    lock = threading.Lock()

    def compute(key: str) -> str:
        with lock:
            calls.append(key)
        return f"{key}:{len(calls)}"

    hub: LiveHub[str, str] = LiveHub(compute, interval_s=0.05)

    async def reader(key: str, n: int) -> list[Snapshot[str]]:
        got: list[Snapshot[str]] = []
        async for snap in hub.subscribe(key):
            got.append(snap)
            if len(got) == n:
                break
        return got

    async def main() -> list[list[Snapshot[str]]]:
        return await asyncio.gather(*(reader("a", 3) for _ in range(50)), reader("b", 3))

    results = _run(main())
    assert isinstance(results, list)
    ticks_seen = {s.tick for r in results for s in r}
    # 51 readers over about 3 ticks: one computation per key per tick, not one per reader
    assert hub.computations <= 2 * (len(ticks_seen) + 1)
    assert set(calls) == {"a", "b"}
    for r in results:
        assert [s.tick for s in r] == sorted({s.tick for s in r}), "ticks arrive in order, once each"
        assert all(s.error is None and s.value is not None for s in r)
    assert hub.subscribers == 0, "readers that stop iterating are detached"


def test_a_failing_computation_is_reported_and_the_hub_keeps_ticking() -> None:
    state = {"n": 0}

    def compute(_: int) -> int:
        state["n"] += 1
        if state["n"] == 1:
            raise RuntimeError("engine busy")
        return state["n"]

    hub: LiveHub[int, int] = LiveHub(compute, interval_s=0.02)

    async def main() -> list[Snapshot[int]]:
        got: list[Snapshot[int]] = []
        async for snap in hub.subscribe(0):
            got.append(snap)
            if len(got) == 2:
                break
        return got

    first, second = _run(main())  # type: ignore[misc]
    assert first.value is None and first.error == "RuntimeError: engine busy"
    assert second.value == 2 and second.error is None


def test_a_late_reader_gets_the_current_snapshot_at_once() -> None:
    hub: LiveHub[str, int] = LiveHub(lambda _: 7, interval_s=10.0)

    async def main() -> tuple[Snapshot[int], Snapshot[int]]:
        early = hub.subscribe("k")
        first = await early.__anext__()
        late = hub.subscribe("k")
        # the tick is 10 s long: only the kept snapshot can answer within the timeout
        second = await asyncio.wait_for(late.__anext__(), timeout=1.0)
        await early.aclose()
        await late.aclose()
        return first, second

    first, second = _run(main())  # type: ignore[misc]
    assert second.tick == first.tick and second.value == 7
