"""The dashboard's chart library: plotly.js's basic bundle, installed from npm by ``make install``.

The page draws bar and scatter charts only, so it loads ``plotly.js-basic-dist-min``
(scatter, bar and pie, 1.2 MB) rather than the full 4.7 MB bundle: compiling the
full one held a first visit's charts back by 1.2-2 s. ``make install`` runs
``npm ci`` with the committed ``package.json`` and ``package-lock.json`` into the
checkout's ``node_modules/`` (ignored by git: no third-party code is committed,
nothing is loaded from the internet when the page is viewed).

The file is served under a versioned URL with a year-long ``immutable`` cache
header, gzipped once in memory for browsers that accept it, with V8's compile
hint in front (the page's charts need nearly all of it at load). When it is missing
the URL answers 404 with what to run, the page says so in each chart panel, and
the daemon logs it once; numbers and tables still show.
"""

from __future__ import annotations

import gzip
import json
import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path

__all__ = ["CHART_LIB_PACKAGE", "MISSING_HINT", "ChartLib", "chart_lib", "node_modules"]

log = logging.getLogger(__name__)

CHART_LIB_PACKAGE = "plotly.js-basic-dist-min"
_CHART_LIB_FILE = "plotly-basic.min.js"
# V8's explicit compile hint (Chromium 136+; a comment elsewhere): compile every function while
# the file streams in, on a background thread, instead of lazily on the main thread at first
# call. Prepended when served, the npm file is untouched. Measured on the 2-core machine: plotly
# runs and the charts draw about 150 ms sooner on a first visit (docs/benchmarks.md).
_COMPILE_HINT = b"//# allFunctionsCalledOnLoad\n"
MISSING_HINT = (
    f"the dashboard's chart library ({CHART_LIB_PACKAGE}) is not installed: "
    "run `make install` (npm ci) in the lambda-rt checkout, then restart the daemon"
)


def node_modules() -> Path:
    """The checkout's ``node_modules/`` (``make install`` fills it from ``package-lock.json``)."""
    return Path(__file__).resolve().parents[2] / "node_modules"


@dataclass(frozen=True)
class ChartLib:
    """The bundle's bytes (plain and gzipped) and the versioned URL name it is served under."""

    name: str
    body: bytes
    gzipped: bytes


@cache
def chart_lib() -> ChartLib | None:
    """The installed bundle, read and gzipped once; None (logged once) when it is not installed."""
    pkg = node_modules() / CHART_LIB_PACKAGE
    try:
        version = str(json.loads((pkg / "package.json").read_text(encoding="utf-8"))["version"])
        body = (pkg / _CHART_LIB_FILE).read_bytes()
    except (OSError, ValueError, KeyError) as exc:
        log.warning("%s (%s)", MISSING_HINT, exc)
        return None
    body = _COMPILE_HINT + body
    return ChartLib(f"plotly-basic-{version}.min.js", body, gzip.compress(body, compresslevel=6, mtime=0))
