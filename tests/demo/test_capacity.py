"""The demo's base-rate choice and the probe meter (pure logic, no services)."""

from __future__ import annotations

import pytest

from lambda_rt.demo.capacity import MIN_MEASURE_S, BacklogMeter, choose_rate
from lambda_rt.demo.traffic import TrafficPlan


def test_requested_rate_kept_when_the_machine_can_carry_it() -> None:
    choice = choose_rate(50_000, 5, speed_capacity=600_000, producer_capacity=1_000_000, headroom=4)
    assert choice.rate == 50_000
    assert not choice.scaled


def test_speed_capacity_limits_the_base_rate() -> None:
    choice = choose_rate(50_000, 5, speed_capacity=90_000, producer_capacity=1_000_000, headroom=3)
    assert choice.rate == 30_000
    assert choice.scaled and "speed layer" in choice.reason


def test_producer_capacity_limits_the_base_rate_so_the_sale_is_offered() -> None:
    choice = choose_rate(
        50_000, 5, speed_capacity=1_000_000, producer_capacity=100_000, headroom=3, producer_share=0.5
    )
    assert choice.rate == 10_000
    assert choice.rate * 5 <= 100_000 * 0.5
    assert "producer" in choice.reason


def test_nothing_measured_keeps_the_requested_rate() -> None:
    choice = choose_rate(5_000, 5, speed_capacity=None, producer_capacity=None)
    assert choice.rate == 5_000
    assert "not measured" in choice.reason


def test_meter_ignores_readings_before_progress_and_short_windows() -> None:
    meter = BacklogMeter()
    meter.add(0.0, 0)  # joining the group: not counted
    meter.add(1.0, 10_000)
    assert meter.rate() is None  # a single reading
    meter.add(1.0 + MIN_MEASURE_S / 2, 20_000)
    assert meter.rate() is None  # too short to tell
    meter.add(1.0 + 2 * MIN_MEASURE_S, 10_000 + 40_000 * 2 * MIN_MEASURE_S)
    assert meter.rate() == pytest.approx(40_000)


def test_flash_sale_is_short_and_inside_the_live_phase() -> None:
    plan = TrafficPlan(duration_s=120, sale_start=0.25, sale_s=20)
    assert plan.sale_window == (30, 50)
    assert plan.in_sale(30) and plan.in_sale(49.9) and not plan.in_sale(50) and not plan.in_sale(29)
    quick = TrafficPlan(duration_s=10, sale_start=0.25, sale_s=20)
    assert quick.sale_window == (2.5, 5.0)  # at most a quarter of the live phase


def test_a_probe_consumed_too_fast_to_time_is_told_apart_from_no_progress() -> None:
    fast = BacklogMeter()
    fast.add(0.0, 50_000)
    fast.add(MIN_MEASURE_S / 2, 300_000)
    assert fast.rate() is None and fast.too_fast_to_time(300_000)
    stuck = BacklogMeter()
    stuck.add(0.0, 50_000)  # some progress, then none before the measuring timeout
    assert stuck.rate() is None and not stuck.too_fast_to_time(300_000)
    assert not BacklogMeter().too_fast_to_time(300_000)  # no progress at all
