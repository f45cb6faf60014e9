"""The one signal-handler helper: handlers run, and the previous ones come back."""

from __future__ import annotations

import os
import signal

from lambda_rt.signals import signal_handlers, stop_event_on_signals


def test_handler_runs_in_the_block_and_the_previous_one_is_restored() -> None:
    before = signal.getsignal(signal.SIGTERM)
    got: list[int] = []
    with signal_handlers(got.append):
        os.kill(os.getpid(), signal.SIGTERM)
    assert got == [signal.SIGTERM]
    assert signal.getsignal(signal.SIGTERM) is before


def test_ignore_and_stop_event() -> None:
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        with signal_handlers(signal.SIG_IGN, (signal.SIGINT,)):
            os.kill(os.getpid(), signal.SIGINT)  # ignored: no KeyboardInterrupt
        stop = stop_event_on_signals()
        assert not stop.is_set()
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.is_set()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
