"""The dashboard's HTML: the page template with the first snapshot rendered in.

Without a token the page arrives with its headline numbers already in the
HTML (``data-value`` included) and the whole first snapshot embedded as JSON,
so it shows numbers before any script runs and the charts draw without
waiting for the live stream. With a token set the page is a shell: the script
asks for the token and fetches the data with it (the token never travels in
a URL). No I/O here beyond reading the packaged template.
"""

from __future__ import annotations

import html
from functools import cache
from importlib import resources
from typing import Any

import orjson

__all__ = ["STATIC_FILES", "headline_text", "render_page"]

STATIC_FILES = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}


@cache
def _template() -> str:
    return resources.files("serving.dashboard").joinpath("static", "index.html").read_text(encoding="utf-8")


def headline_text(name: str, value: int | float | None) -> str:
    """How a headline number reads (the JavaScript formats it the same way)."""
    if value is None:
        return "\N{EN DASH}"
    if name == "revenue":
        return f"${value / 100:,.2f}"
    if name == "failure_rate":
        return f"{value * 100:.2f}%"
    return f"{int(value):,}"


def render_page(
    snapshot: dict[str, Any] | None, *, auth_required: bool, plotly_url: str, error: str | None = None
) -> str:
    """The page; ``snapshot`` None leaves the numbers empty for the script to fill."""
    head = (snapshot or {}).get("headline", {})
    out = _template()
    for name in ("revenue", "orders", "events", "payment_failures", "failure_rate"):
        value = head.get(name)
        out = out.replace(f"{{{{{name}_value}}}}", "" if value is None else html.escape(str(value)))
        out = out.replace(
            f"{{{{{name}_text}}}}", html.escape(headline_text(name, value)) if snapshot else "…"
        )
    rng = (snapshot or {}).get("range", {})
    initial = b"null" if snapshot is None else orjson.dumps(snapshot).replace(b"</", b"<\\/")
    replacements = {
        "{{auth}}": "token" if auth_required else "none",
        "{{plotly_url}}": html.escape(plotly_url),
        "{{range_text}}": html.escape(
            f"{rng.get('start', '')} to {rng.get('end', '')}" if rng else "loading…"
        ),
        "{{complete}}": "true" if head.get("complete", True) else "false",
        "{{error}}": html.escape(error or ""),
        "{{initial}}": initial.decode(),
    }
    for marker, value in replacements.items():
        out = out.replace(marker, value)
    return out
