"""``lambda-rt demo``: the platform end to end on the embedded stack.

- :mod:`lambda_rt.demo.run` - the steps, in order (:func:`run_demo`);
- :mod:`lambda_rt.demo.processes` - the daemon and speed-layer child processes;
- :mod:`lambda_rt.demo.traffic` - backlog + live traffic with a flash sale;
- :mod:`lambda_rt.demo.live_view` - the live terminal view;
- :mod:`lambda_rt.demo.chart` - the revenue chart.

The layers (``serving``, the read side of ``speed_layer`` and ``batch_layer``)
are imported when the demo runs, never when ``lambda_rt`` is imported.
"""

from __future__ import annotations

from lambda_rt.demo.run import CHART_FILE, DemoOptions, run_demo
from lambda_rt.demo.traffic import TrafficPlan

__all__ = ["CHART_FILE", "DemoOptions", "TrafficPlan", "run_demo"]
