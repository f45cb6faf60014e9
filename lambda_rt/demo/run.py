"""``lambda-rt demo``: the whole platform on the embedded stack, in a few minutes.

Steps, in order:

1. bring the embedded stack up (or reuse it);
2. start the platform daemon (``lambda-rt serve --no-schedule``: ingest + HTTP
   API; the demo triggers the batch jobs itself) and one speed-layer process,
   as child processes (:mod:`lambda_rt.demo.processes`), and print the live
   dashboard's URL (``/dashboard`` on the daemon);
3. produce a backlog of past days, then a capacity probe of live-like events,
   both as fast as the producer goes; measure what the producer and the speed
   layer sustained on the probe and choose the live base rate from that
   (:mod:`lambda_rt.demo.capacity`: the requested rate unless the machine
   cannot carry it, and the demo prints why); then live traffic with a flash
   sale (:mod:`lambda_rt.demo.traffic`) while a live view refreshes twice a
   second (:mod:`lambda_rt.demo.live_view`);
4. wait until the speed layer and the ingest have caught up, then ask the
   daemon for a batch recompute and a tier move (printing the Dask dashboard
   address the daemon's cluster serves while a job runs);
5. check that nothing was lost (the merged ``events`` total grew by exactly
   the valid events produced), print a merged query with its coverage, write
   the chart (:mod:`lambda_rt.demo.chart`) and say how to go on.

Ctrl-C at any point stops the traffic and the children cleanly (SIGTERM, then
wait); the stack's servers stay up until ``lambda-rt down``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import stamina
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from lambda_rt.config import Settings, load_settings
from lambda_rt.demo.capacity import MIN_MEASURE_S, BacklogMeter, RateChoice, choose_rate
from lambda_rt.demo.chart import Sample, layer_of, revenue_chart
from lambda_rt.demo.live_view import Poller, Snapshot, render
from lambda_rt.demo.processes import Children, dask_dashboard
from lambda_rt.demo.traffic import Traffic, TrafficPlan
from lambda_rt.errors import JobRunningError, LambdaRTError
from lambda_rt.stack import launcher
from lambda_rt.stack.ports import free_port

if TYPE_CHECKING:
    from serving import ServingClient

__all__ = ["CHART_FILE", "DemoCheckError", "DemoOptions", "run_demo"]

CHART_FILE = "demo-revenue.png"
_REFRESH_S = 0.5
# How long the live phase may wait for the speed layer to finish the backlog
# (the measurement then uses what it consumed so far).
_MEASURE_TIMEOUT_S = 60.0
# The safety valve: the producer holds back beyond this many seconds of the
# speed layer's measured capacity (so the demo ends in bounded time even when
# the machine is busier during the live phase than during the probe).
_MAX_BEHIND_S = 10.0


class DemoCheckError(LambdaRTError):
    """The merged answer does not account for every event produced."""


@dataclass(frozen=True)
class DemoOptions:
    """The demo's knobs (the CLI's options)."""

    plan: TrafficPlan = field(default_factory=TrafficPlan)
    keep_running: bool = False
    catch_up_timeout_s: float = 180.0
    stall_timeout_s: float = 30.0
    # False: use the requested rate as is, even if this machine cannot sustain it.
    fit_rate: bool = True

    @classmethod
    def quick(cls) -> DemoOptions:
        """A small run (about a minute) for tests and slow machines."""
        return cls(plan=TrafficPlan(rate=5_000, duration_s=10, backlog_events=10_000, probe_events=0))


class _Demo:
    def __init__(self, settings: Settings, options: DemoOptions, console: Console) -> None:
        self.settings = settings
        self.options = options
        self.console = console
        self.plan = options.plan
        self.samples: list[Sample] = []
        self.behind = 0  # messages produced but not yet consumed by the speed layer
        self.choice: RateChoice | None = None

    # -- 3: traffic and the live view ---------------------------------------------
    def watch(self, traffic: Traffic, poller: Poller, children: Children | None) -> Snapshot:
        plan = self.plan
        bar = Progress(
            TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
        )
        backlog_task = bar.add_task("backlog (past days)", total=plan.backlog_events)
        live_task = bar.add_task("live traffic (seconds)", total=int(plan.duration_s))
        meter = BacklogMeter()
        waiting_since: float | None = None
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
                new = poller.read(traffic.sent, self._phase(traffic), self._note(traffic))
                new = replace(new, offered=traffic.offered_rate)
                if traffic.phase in ("probe", "waiting") and self.choice is None:
                    # the speed layer's pace on the probe's live-like events only
                    meter.add(new.at, new.messages - traffic.backlog_sent)
                if traffic.phase == "waiting" and self.choice is None:
                    waiting_since = waiting_since or time.monotonic()
                    done = new.messages >= traffic.backlog_sent + traffic.probe_sent
                    if done or time.monotonic() - waiting_since > _MEASURE_TIMEOUT_S:
                        self._go_live(traffic, meter, live)
                # rates over about two seconds, so the view does not flicker
                if prev is None or new.at - prev.at >= 2.0:
                    prev = cur
                cur = new
                self.behind = max(0, cur.produced - cur.messages)
                if prev is not None and cur.at > prev.at:
                    dt = cur.at - prev.at
                    self.samples.append(
                        Sample(
                            at=time.time(),
                            offered=traffic.offered_rate,
                            produced=(cur.produced - prev.produced) / dt,
                            applied=(cur.events - prev.events) / dt,
                            behind=self.behind,
                            held=traffic.holding_back,
                        )
                    )
                live.update(Group(bar, render(cur, prev)))
                if not traffic.is_alive():
                    return cur
                time.sleep(_REFRESH_S)

    def _phase(self, traffic: Traffic) -> str:
        if traffic.phase == "live":
            sale = f", flash sale at {traffic.plan.burst:g}x" if traffic.in_sale else ""
            return f"live traffic, base {traffic.rate:,.0f} events/s{sale}"
        if traffic.phase == "probe":
            return "capacity probe: live-like events as fast as the producer goes"
        if traffic.phase == "waiting":
            return "probe sent: measuring what the speed layer sustains"
        return traffic.phase

    def _note(self, traffic: Traffic) -> str:
        notes = []
        if traffic.in_sale:
            notes.append(f"flash sale: offering {traffic.offered_rate:,.0f} events/s")
        if traffic.holding_back:
            notes.append(
                f"producer holding back: the speed layer is more than "
                f"{traffic.plan.max_behind or 0:,} messages behind"
            )
        return "; ".join(notes)

    def _go_live(self, traffic: Traffic, meter: BacklogMeter, live: Live) -> None:
        """Choose the base rate from the backlog's measurements, say why, start live traffic."""
        plan = self.plan
        speed = meter.rate()
        producer = (
            traffic.probe_sent / traffic.probe_seconds
            if traffic.probe_seconds and traffic.probe_sent >= 100_000
            else None
        )
        if self.options.fit_rate:
            choice = choose_rate(plan.rate, plan.burst, speed, producer, headroom=4.0, producer_share=0.75)
        else:
            choice = RateChoice(plan.rate, plan.rate, speed, producer, "--no-fit-rate: as requested")
        self.choice = choice
        measured = ", ".join(
            f"{name} {value:,.0f} events/s"
            for name, value in (("speed layer", speed), ("producer", producer))
            if value
        )
        if not speed and meter.too_fast_to_time(traffic.probe_sent):
            measured += (
                f"; the speed layer consumed the whole probe within {MIN_MEASURE_S:g} s "
                "(too fast to time, so it sets no limit)"
            )
        live.console.print(
            f"[bold]measured on the capacity probe[/]: {measured or 'nothing (no probe)'}\n"
            f"[bold]live base rate {choice.rate:,.0f} events/s[/]"
            + (f" (requested {choice.requested:,.0f})" if choice.scaled else "")
            + f": {choice.reason}.\n"
            f"flash sale: {plan.burst:g}x = {choice.rate * plan.burst:,.0f} events/s for "
            f"{plan.sale_window[1] - plan.sale_window[0]:.0f} s, "
            f"{plan.sale_window[0]:.0f} s into {plan.duration_s:.0f} s of live traffic"
        )
        max_behind = int(speed * _MAX_BEHIND_S) if speed else None
        traffic.go_live(choice.rate, max_behind)

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
    def report(self, client: ServingClient, traffic: Traffic, tiers: dict[str, Any]) -> Path:
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

        by_store = client.query_result("revenue", "store_id", start, end, "hour").frame
        top = by_store.groupby("store_id")["value"].sum().sort_values(ascending=False).head(5)
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
            probe=traffic.probe_window,
            tiers=tiers,
            samples=self.samples,
        )


def _events_total(client: ServingClient, days: int) -> int:
    """Every valid event the merged query counts, over a range wider than the demo's traffic."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start, end = today - timedelta(days=days + 2), today + timedelta(days=2)
    frame = client.query_result("events", None, start, end, "day").frame
    return int(frame["value"].sum()) if len(frame) else 0


def _check_exact(console: Console, before: int, after: int, produced: int, last: Snapshot) -> None:
    """Nothing lost, nothing counted twice: the merged total grew by the valid events produced.

    Raises:
        DemoCheckError: it did not (the numbers are in the message).
    """
    if last.messages < produced:
        console.print(
            f"[yellow]exactness not checked: the speed layer consumed {last.messages:,} of the "
            f"{produced:,} messages produced before the demo stopped waiting[/]"
        )
        return
    valid = produced - last.dlq
    grew = after - before
    line = (
        f"produced {produced:,} = {valid:,} valid + {last.dlq:,} dead letters; the speed layer "
        f"consumed {last.messages:,}; the merged 'events' total grew by {grew:,}"
    )
    if grew == valid:
        console.print(f"[bold green]exact[/]: {line}")
        return
    raise DemoCheckError(f"the merged answer is not exact: {line}")


def _run_job(client: ServingClient, kind: str, console: Console, dashboard: str) -> dict[str, Any]:
    """Run ``kind`` in the daemon; retried only while the daemon runs the same job.

    A scheduled or earlier run holding the job's lock is refused with
    :class:`JobRunningError` (HTTP 409, raised again by the client); any other
    error ends the demo at once. Three attempts about 5 s apart, no overall
    timeout: a job itself may take minutes.
    """
    console.print(f"batch {kind}: {dashboard}")
    for attempt in stamina.retry_context(
        on=JobRunningError, attempts=3, timeout=None, wait_initial=5.0, wait_max=5.0, wait_jitter=0.0
    ):
        with attempt, console.status(f"batch {kind} running in the daemon..."):
            out: dict[str, Any] = client.run_job(kind)
    return out


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
    # The daemon's Dask LocalCluster serves its dashboard on a known local port.
    dashboard_address = f"127.0.0.1:{free_port(8787)}"
    children = Children(
        settings,
        config_file=config_file,
        extra_env={"LAMBDA_RT_DASK__DASHBOARD_ADDRESS": dashboard_address},
    )
    traffic: Traffic | None = None
    try:
        with children:
            url = serving.find_daemon(settings)
            if url:
                console.print(f"reusing the daemon at {url} (its own batch settings apply)")
                dashboard_address = settings.dask.dashboard_address
            else:
                dashboard_address = children.env["LAMBDA_RT_DASK__DASHBOARD_ADDRESS"]
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
            # before any traffic: the page shows the backlog land and the flash sale live
            console.print(f"[bold]live dashboard: {url}/dashboard[/bold] (open it in a browser now)")
            poller = Poller(settings, daemon_url=url, metrics_url=f"http://127.0.0.1:{metrics_port}/metrics")
            client = serving.connect(settings, url=url)
            before = _events_total(client, options.plan.backlog_days)
            demo = _Demo(settings, options, console)
            traffic = Traffic(settings, options.plan, behind=lambda: demo.behind)
            traffic.start()
            demo.watch(traffic, poller, children)
            produced = traffic.sent
            console.print(
                f"produced {produced:,} events ({traffic.backlog_sent:,} backlog, "
                f"{traffic.probe_sent:,} capacity probe, {traffic.live_sent:,} live)"
            )
            last = demo.catch_up(poller, produced, children)
            console.print(
                f"speed layer applied {last.events:,} events, {last.dlq:,} dead letters; "
                f"ingest inserted {last.ingested or 0:,} rows"
            )
            dashboard = dask_dashboard(settings, dashboard_address)
            for kind in ("recompute", "tier"):
                out = _run_job(client, kind, console, dashboard)
                for line in out.get("summaries", []):
                    console.print(line)
            tiers = client.status().get("tiers", {})
            chart = demo.report(client, traffic, tiers)
            console.print(f"[bold]chart[/] written to {chart}")
            _check_exact(console, before, _events_total(client, options.plan.backlog_days), produced, last)
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
