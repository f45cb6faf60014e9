"""``lambda-rt demo``: the whole platform on the embedded stack, in a few minutes.

Steps, in order:

1. bring the embedded stack up (or reuse it);
2. start the platform daemon (``lambda-rt serve --no-schedule``: ingest + HTTP
   API; the demo triggers the batch jobs itself) and one speed-layer process,
   as child processes (:mod:`lambda_rt.demo.processes`);
3. produce a backlog of past days, then live traffic with a flash sale
   (:mod:`lambda_rt.demo.traffic`) while a live view refreshes twice a second
   (:mod:`lambda_rt.demo.live_view`);
4. wait until the speed layer and the ingest have caught up, then ask the
   daemon for a batch recompute and a tier move;
5. print a merged query with its coverage, write the chart
   (:mod:`lambda_rt.demo.chart`) and say how to go on.

Ctrl-C at any point stops the traffic and the children cleanly (SIGTERM, then
wait); the stack's servers stay up until ``lambda-rt down``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from lambda_rt.config import Settings, load_settings
from lambda_rt.demo.chart import layer_of, revenue_chart
from lambda_rt.demo.live_view import Poller, Snapshot, render
from lambda_rt.demo.processes import Children, free_port
from lambda_rt.demo.traffic import Traffic, TrafficPlan
from lambda_rt.stack import launcher

__all__ = ["CHART_FILE", "DemoOptions", "run_demo"]

CHART_FILE = "demo-revenue.png"
_REFRESH_S = 0.5


@dataclass(frozen=True)
class DemoOptions:
    """The demo's knobs (the CLI's options)."""

    plan: TrafficPlan = field(default_factory=TrafficPlan)
    keep_running: bool = False
    catch_up_timeout_s: float = 180.0
    stall_timeout_s: float = 30.0

    @classmethod
    def quick(cls) -> DemoOptions:
        """A small run (about a minute) for tests and slow machines."""
        return cls(plan=TrafficPlan(rate=5_000, duration_s=10, backlog_events=10_000))


class _Demo:
    def __init__(self, settings: Settings, options: DemoOptions, console: Console) -> None:
        self.settings = settings
        self.options = options
        self.console = console
        self.plan = options.plan
        # wall time, produced/s, applied/s, producer holding back
        self.samples: list[tuple[float, float, float, bool]] = []
        self.behind = 0  # messages produced but not yet consumed by the speed layer

    # -- 3: traffic and the live view ---------------------------------------------
    def watch(self, traffic: Traffic, poller: Poller, children: Children | None) -> Snapshot:
        plan = self.plan
        bar = Progress(
            TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
        )
        backlog_task = bar.add_task("backlog (past days)", total=plan.backlog_events)
        live_task = bar.add_task("live traffic (seconds)", total=int(plan.duration_s))
        prev: Snapshot | None = None
        cur = poller.read(0, "starting")
        with Live(render(cur, None), console=self.console, refresh_per_second=4) as live:
            while True:
                if children is not None:
                    children.check()
                if traffic.error is not None:
                    raise traffic.error
                bar.update(backlog_task, completed=traffic.backlog_sent)
                if traffic.live_started_at is not None:
                    end = traffic.live_ended_at or time.time()
                    bar.update(live_task, completed=int(min(plan.duration_s, end - traffic.live_started_at)))
                note = (
                    f"flash sale: offering {plan.rate * plan.burst:,.0f} events/s" if traffic.in_sale else ""
                )
                if traffic.holding_back:
                    note += (
                        f"{'; ' if note else ''}producer holding back: the speed layer is more than "
                        f"{plan.max_behind:,} messages behind"
                    )
                phase = {"live": f"live traffic at {plan.rate:,.0f} events/s"}.get(
                    traffic.phase, traffic.phase
                )
                new = poller.read(traffic.sent, phase, note)
                # rates over about two seconds, so the view does not flicker
                if prev is None or new.at - prev.at >= 2.0:
                    prev = cur
                cur = new
                self.behind = max(0, cur.produced - cur.messages)
                if prev is not None and cur.at > prev.at:
                    dt = cur.at - prev.at
                    self.samples.append(
                        (
                            time.time(),
                            (cur.produced - prev.produced) / dt,
                            (cur.events - prev.events) / dt,
                            traffic.holding_back,
                        )
                    )
                live.update(Group(bar, render(cur, prev)))
                if not traffic.is_alive():
                    return cur
                time.sleep(_REFRESH_S)

    # -- 4: catch up ---------------------------------------------------------------
    def catch_up(self, poller: Poller, produced: int, children: Children | None) -> Snapshot:
        """Wait until the speed layer consumed and the ingest inserted what was produced."""
        deadline = time.monotonic() + self.options.catch_up_timeout_s
        prev: Snapshot | None = None
        last_progress: tuple[int, int | None] = (-1, None)
        stalled_since = time.monotonic()
        with Live(console=self.console, refresh_per_second=4) as live:
            while True:
                if children is not None:
                    children.check()
                cur = poller.read(produced, "catching up: speed layer and ingest")
                live.update(render(cur, prev))
                ingest_done = cur.ingested is None or cur.ingested + cur.dlq >= produced
                if cur.messages >= produced and ingest_done:
                    return cur
                progress = (cur.messages, cur.ingested)
                if progress != last_progress:
                    last_progress, stalled_since = progress, time.monotonic()
                now = time.monotonic()
                if now > deadline or now - stalled_since > self.options.stall_timeout_s:
                    why = (
                        "timeout"
                        if now > deadline
                        else f"no progress for {self.options.stall_timeout_s:.0f} s"
                    )
                    self.console.print(
                        f"[yellow]stopped waiting ({why}): the answer below covers what the layers "
                        "have applied so far[/]"
                    )
                    return cur
                prev = prev if prev and cur.at - prev.at < 2.0 else cur
                time.sleep(_REFRESH_S)

    # -- 5: the answer ------------------------------------------------------------
    def report(self, client: Any, traffic: Traffic, tiers: dict[str, Any]) -> Path:
        live_start = datetime.fromtimestamp(traffic.live_started_at or time.time(), UTC)
        start = (live_start - timedelta(minutes=2)).replace(second=0, microsecond=0)
        end = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        minute = client.query_result("revenue", None, start, end, "minute")
        table = Table(title=f"revenue per minute, {start:%H:%M} to {end:%H:%M} UTC (merged query)")
        for col in ("bucket", "revenue", "orders", "served by"):
            table.add_column(col, justify="right" if col in ("revenue", "orders") else "left")
        orders = client.query_result("orders", None, start, end, "minute").frame
        n_orders = dict(zip(orders["bucket"], orders["value"], strict=True))
        cov = minute.coverage.to_dict()
        for b, v in zip(minute.frame["bucket"], minute.frame["value"], strict=True):
            layer = layer_of(cov, b.to_pydatetime())
            table.add_row(f"{b:%H:%M}", f"${v / 100:,.2f}", f"{n_orders.get(b, 0):,}", layer)
        self.console.print(table)
        brief = {k: cov[k] for k in ("batch_through", "exact", "complete", "ranges", "holes")}
        brief["speed"] = {k: cov["speed"][k] for k in ("last_applied", "max_event_time")}
        self.console.print("coverage:", json.dumps(brief, indent=1))

        top = client.query_result("revenue", "store_id", start, end, "hour").frame
        top = top.groupby("store_id")["value"].sum().sort_values(ascending=False).head(5)
        self.console.print(
            "top stores by revenue over the same range: "
            + ", ".join(f"store {s} ${v / 100:,.2f}" for s, v in top.items())
        )
        backlog_end = live_start.replace(minute=0, second=0, microsecond=0)
        hour = client.query_result(
            "revenue", None, backlog_end - timedelta(days=self.plan.backlog_days), backlog_end, "hour"
        )
        return revenue_chart(
            minute,
            hour,
            Path(self.settings.state_dir) / CHART_FILE,
            sale=traffic.sale_window,
            tiers=tiers,
            samples=self.samples,
        )


def _run_job(client: Any, kind: str, console: Console) -> dict[str, Any]:
    from serving import DaemonError

    for attempt in range(3):
        try:
            with console.status(f"batch {kind} running in the daemon..."):
                out: dict[str, Any] = client.run_job(kind)
            return out
        except DaemonError as exc:
            if "already running" not in str(exc) or attempt == 2:
                raise
            time.sleep(5)
    raise AssertionError("unreachable")


def run_demo(settings: Settings, options: DemoOptions, *, config_file: Path | None = None) -> None:
    """Run the demo end to end (see the module docstring)."""
    import serving

    console = Console()
    with console.status("starting the embedded stack (or reusing it)..."):
        started = launcher.up(settings)
    settings = load_settings(state_dir=settings.state_dir, config_file=config_file)
    fresh = [s.name for s in started if s.started]
    console.print(
        f"[bold]stack up[/] under {settings.state_dir} "
        f"({'started ' + ', '.join(fresh) if fresh else 'reused the running servers'})"
    )
    t0 = time.monotonic()
    children = Children(settings, config_file=config_file)
    traffic: Traffic | None = None
    try:
        with children:
            url = serving.find_daemon(settings)
            if url:
                console.print(f"reusing the daemon at {url} (its own batch settings apply)")
            else:
                port = free_port(settings.serve.port)
                children.start("serve", "serve", "--no-schedule", "--port", str(port))
            metrics_port = free_port()
            children.start("speed", "speed", "--metrics-port", str(metrics_port))
            with console.status("starting the daemon (ingest + query API) and the speed layer..."):
                url = url or children.wait_for_daemon()
            console.print(
                f"daemon at {url} (log {children.log_path('serve')}); speed layer metrics at "
                f"http://127.0.0.1:{metrics_port}/metrics (log {children.log_path('speed')})"
            )
            poller = Poller(settings, daemon_url=url, metrics_url=f"http://127.0.0.1:{metrics_port}/metrics")
            demo = _Demo(settings, options, console)
            traffic = Traffic(settings, options.plan, behind=lambda: demo.behind)
            traffic.start()
            demo.watch(traffic, poller, children)
            produced = traffic.sent
            console.print(
                f"produced {produced:,} events ({traffic.backlog_sent:,} backlog, {traffic.live_sent:,} live)"
            )
            last = demo.catch_up(poller, produced, children)
            console.print(
                f"speed layer applied {last.events:,} events, {last.dlq:,} dead letters; "
                f"ingest inserted {last.ingested or 0:,} rows"
            )
            client = serving.connect(settings, url=url)
            for kind in ("recompute", "tier"):
                out = _run_job(client, kind, console)
                for line in out.get("summaries", []):
                    console.print(line)
            tiers = client.status().get("tiers", {})
            chart = demo.report(client, traffic, tiers)
            console.print(f"[bold]chart[/] written to {chart}")
            _next_steps(console, settings, options, time.monotonic() - t0)
            if options.keep_running:
                _keep_running(console, poller, children)
            client.close()
            poller.close()
    except KeyboardInterrupt:
        console.print("\ninterrupted: stopping the traffic, the speed layer and the daemon...")
    finally:
        if traffic is not None:
            traffic.stop()
            traffic.join(10)
    console.print("children stopped; the stack's servers are still up: [bold]lambda-rt down[/] stops them")


def _keep_running(console: Console, poller: Poller, children: Children) -> None:
    console.print("[bold]--keep-running[/]: the daemon and the speed layer keep running; Ctrl-C to stop them")
    prev: Snapshot | None = None
    base = poller.read(0, "").messages
    with Live(console=console, refresh_per_second=2) as live:
        while True:
            children.check()
            cur = poller.read(0, "keep running (Ctrl-C stops the daemon and the speed layer)")
            cur = replace(cur, produced=cur.messages - base)
            live.update(render(cur, prev))
            prev = prev if prev and cur.at - prev.at < 2.0 else cur
            time.sleep(_REFRESH_S)


def _next_steps(console: Console, settings: Settings, options: DemoOptions, seconds: float) -> None:
    state = settings.state_dir
    flag = "" if state == Path(".lambda-rt").resolve() else f" --state-dir {state}"
    text = (
        f"demo finished in {seconds:.0f} s.\n"
        f"query from the CLI:   lambda-rt{flag} query revenue --by store_id --granularity hour\n"
        f"from Python:          import serving; df = serving.connect().query('revenue', by='store_id')\n"
        f"in a notebook:        jupyter lab notebooks/01_quickstart.ipynb\n"
        f"batch jobs:           lambda-rt{flag} batch run all   (with no daemon running)\n"
        f"stop the stack:       lambda-rt{flag} down"
    )
    if not options.keep_running:
        text += "\n(the daemon and speed layer stop now; run the demo with --keep-running to keep them)"
    console.print(Panel(text, title="what next"))
