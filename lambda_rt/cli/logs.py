"""Logging of the ``lambda-rt`` command: set up once, by the entry point only.

Library modules only call ``logging.getLogger(__name__)``; this module decides
where the records go. One handler on the root logger writes to stderr (stdout
stays the command's output: query results, JSON, summaries), as text for a
person or as one JSON object per line for a log collector (``--log-format
json``). ``--log-level`` sets the level of lambda-rt's own packages; records
of every other library pass only from ``WARNING`` up, whatever level the
library gave its loggers, so an ``INFO`` default does not turn on their
chatter (httpx logs each request at ``INFO``; distributed sets its loggers to
``INFO`` and, finding a root handler, sends them all there).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from enum import StrEnum
from typing import TextIO

__all__ = ["OWN_PACKAGES", "JsonFormatter", "LogFormat", "LogLevel", "configure_logging"]

OWN_PACKAGES: tuple[str, ...] = ("lambda_rt", "speed_layer", "batch_layer", "serving")
"""Loggers whose level ``--log-level`` sets (the packages' ``__name__`` roots)."""


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


class LogFormat(StrEnum):
    text = "text"
    json = "json"


def _utc_iso(created: float) -> str:
    """Epoch seconds -> ``2026-11-26T10:00:00.123Z`` (event and log times are UTC)."""
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{whole}.{int(created % 1 * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``ts``, ``level``, ``logger``, ``message``, ``pid``, ``exc``."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "ts": _utc_iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


class _TextFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _utc_iso(record.created)


class _Handler(logging.StreamHandler):
    """Marks the handler this module installed, so a second call replaces it."""


def _own_or_warning(record: logging.LogRecord) -> bool:
    """Own packages' records at their logger's level; other libraries' from WARNING up."""
    return record.levelno >= logging.WARNING or record.name.partition(".")[0] in OWN_PACKAGES


def configure_logging(
    level: LogLevel | str = LogLevel.info,
    fmt: LogFormat | str = LogFormat.text,
    stream: TextIO | None = None,
) -> logging.Handler:
    """Route log records to ``stream`` (stderr) in ``fmt``; own packages at ``level``.

    Idempotent: a later call replaces the handler an earlier one installed.
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    handler = _Handler(stream if stream is not None else sys.stderr)
    handler.addFilter(_own_or_warning)
    if LogFormat(fmt) is LogFormat.json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(_TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    for name in OWN_PACKAGES:
        logging.getLogger(name).setLevel(LogLevel(str(level).lower()).value.upper())
    return handler
