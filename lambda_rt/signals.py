"""Install and restore process signal handlers, the one way every entry point does it.

A long-running command (the speed layer, the daemon, a batch job, the demo)
turns SIGTERM and SIGINT into "finish what is in hand, then stop": a handler
only sets a flag or calls a ``stop()`` that is safe from a signal handler.
Handlers installed for a run are restored when it ends, so a process that
runs several things in turn (tests, the demo) is left as it was.

Python runs signal handlers in the main thread only; these functions must be
called from it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any

__all__ = [
    "STOP_SIGNALS",
    "install_signal_handlers",
    "restore_signal_handlers",
    "signal_handlers",
    "stop_event_on_signals",
]

STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)
"""The signals that ask a lambda-rt process to stop cleanly."""

Handler = Callable[[int], object] | signal.Handlers
"""A callback taking the signal number, or ``signal.SIG_IGN`` / ``signal.SIG_DFL``."""

_Target = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None
Previous = dict[signal.Signals, _Target]


def install_signal_handlers(handler: Handler, signals: Sequence[signal.Signals] = STOP_SIGNALS) -> Previous:
    """Route ``signals`` to ``handler``; returns the handlers they replace (for restoring)."""
    if isinstance(handler, signal.Handlers):
        target: _Target = handler
    else:
        callback = handler

        def target_fn(signum: int, _frame: FrameType | None) -> None:
            callback(signum)

        target = target_fn
    return {s: signal.signal(s, target) for s in signals}


def restore_signal_handlers(previous: Previous) -> None:
    """Put back what :func:`install_signal_handlers` replaced."""
    for s, h in previous.items():
        signal.signal(s, h)


@contextmanager
def signal_handlers(handler: Handler, signals: Sequence[signal.Signals] = STOP_SIGNALS) -> Iterator[None]:
    """``handler`` for ``signals`` inside the block, the previous handlers after it."""
    previous = install_signal_handlers(handler, signals)
    try:
        yield
    finally:
        restore_signal_handlers(previous)


def stop_event_on_signals(signals: Sequence[signal.Signals] = STOP_SIGNALS) -> threading.Event:
    """An event that ``signals`` set, for a command that runs until stopped and then exits."""
    stop = threading.Event()
    install_signal_handlers(lambda _signum: stop.set(), signals)
    return stop
