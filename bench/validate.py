"""Validation benchmark: ``validate_batch`` vs a bare ``pyarrow.json`` read, same run.

``python -m bench.validate [--reps N] [--sizes 5000,20000,50000]`` generates
batches with :class:`EventGenerator` (fixed seed and clock), clean and with 1%
malformed messages (the realistic mix), and times, interleaved rep by rep:

- baseline: ``pyarrow.json.read_json`` of the same *clean* batch joined with
  newlines, with the validator's explicit schema (1 MiB blocks, one thread):
  what one read costs on this machine right now, and the floor of the design;
- ``validate_batch`` on the clean batch and on the 1%-malformed batch.

It prints µs/event and events/s (median wall time), CPU µs/event (median
``process_time``, steadier than wall time on a shared machine) and the load
average with every line; the last lines are the ratios to the baseline (CPU
medians), the figure that stays meaningful when the machine is busy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import pyarrow as pa
import pyarrow.json as pj

from lambda_rt.events._fastread import _PARSE_OPTIONS
from lambda_rt.events.generator import EventGenerator, GeneratorConfig
from lambda_rt.events.validate import validate_batch

NOW = 1_795_687_200_000  # fixed clock: same bytes every run
MALFORMED = 0.01


def _values(n: int, bad_fraction: float) -> list[bytes]:
    gen = EventGenerator(GeneratorConfig(seed=7, end_ms=NOW, bad_fraction=bad_fraction))
    return [value for _, value in gen.batch(n)]


def _time(cases: dict[str, Callable[[], object]], reps: int) -> dict[str, tuple[float, float]]:
    """Median (wall s, CPU s) per case, cases interleaved so load hits them alike."""
    wall: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    for fn in cases.values():
        fn()  # warm-up
    for _ in range(reps):
        for name, fn in cases.items():
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            cpu[name].append(time.process_time() - c0)
            wall[name].append(time.perf_counter() - w0)
    return {name: (statistics.median(wall[name]), statistics.median(cpu[name])) for name in cases}


def run(sizes: list[int], reps: int) -> list[str]:
    """Measure every size; returns the ratio lines (printed last)."""
    ratios = []
    read_options = pj.ReadOptions(block_size=1 << 20, use_threads=False)
    for n in sizes:
        clean, dirty = _values(n, 0.0), _values(n, MALFORMED)
        joined = b"\n".join(clean)

        def baseline(data: bytes = joined) -> object:
            return pj.read_json(
                pa.BufferReader(data), read_options=read_options, parse_options=_PARSE_OPTIONS
            )

        cases: dict[str, Callable[[], object]] = {
            "pyarrow.json read (clean)": baseline,
            "validate_batch clean": lambda v=clean: validate_batch(v, now_ms=NOW),  # type: ignore[misc]
            "validate_batch 1% malformed": lambda v=dirty: validate_batch(v, now_ms=NOW),  # type: ignore[misc]
        }
        result = _time(cases, reps)
        load = os.getloadavg()[0]
        base_cpu = result["pyarrow.json read (clean)"][1]
        for name, (wall, cpu) in result.items():
            print(
                f"n={n:>6} {name:<28} {wall / n * 1e6:6.2f} µs/event {n / wall:>10,.0f} events/s"
                f"  cpu {cpu / n * 1e6:5.2f} µs/event  (load {load:.1f})",
                flush=True,
            )
        for name, (_, cpu) in result.items():
            if name.startswith("validate_batch"):
                ratios.append(f"ratio n={n:>6} {name:<28} {cpu / base_cpu:5.2f}x the pyarrow.json read")
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--sizes", default="5000,20000,50000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"validate_batch vs pyarrow.json.read_json, {args.reps} reps, {os.cpu_count()} CPUs")
    for line in run(sizes, args.reps):
        print(line)


if __name__ == "__main__":
    main()
