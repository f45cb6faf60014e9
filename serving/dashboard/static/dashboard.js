// lambda-rt dashboard: renders snapshots pushed by the daemon (Server-Sent Events read with fetch,
// so the bearer token travels in a header, never in a URL). Every event is a whole snapshot: a
// reconnect is up to date with its first event. No third-party code but plotly.js's basic bundle
// (npm, installed into node_modules/ by `make install`, served by the daemon).
// window.lambdaDashboard: renderedAt (numbers and tables first shown), chartLibAt (plotly.js ran),
// chartsAt (charts first drawn), last (the snapshot shown), connected; read by the browser tests
// and bench/dashboard.py.
(function () {
  "use strict";
  const TOKEN_KEY = "lambda-rt-token";
  // The first snapshot is in the HTML; the live stream (a request that never ends) opens once the
  // page has settled, so tools that wait for the network to go idle see a finished page.
  const SETTLE_MS = 1000;
  const COLORS = { batch: "#2563eb", speed: "#f59e0b", mixed: "#8b5cf6", hole: "#9ca3af" };
  const params = new URLSearchParams(location.search);
  const query = new URLSearchParams();
  for (const k of ["start", "end", "store_id"]) {
    const v = params.get(k);
    if (v) query.set(k, v);
    const input = document.getElementById(k === "store_id" ? "store-id" : k);
    if (input && v) input.value = v;
  }
  const needsToken = document.body.dataset.auth === "token";
  const state = { last: null, connected: false, retryMs: 1000, controller: null };
  window.lambdaDashboard = state;

  const $ = (id) => document.getElementById(id);
  const fmt = {
    revenue: (v) => "$" + (v / 100).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 }),
    failure_rate: (v) => (v * 100).toFixed(2) + "%",
    int: (v) => Number(v).toLocaleString("en-US"),
  };
  const iso = (ms) => new Date(ms).toISOString().replace(".000Z", "Z");

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c);
    return node;
  }

  function table(headers, rows, numeric) {
    const head = el("tr", {}, ...headers.map((h, i) => el("th", { class: numeric[i] ? "num" : "", text: h })));
    const body = rows.map((r) => {
      const tr = el("tr", r.attrs || {});
      r.cells.forEach((c, i) => tr.append(c instanceof Node ? el("td", {}, c) : el("td", { class: numeric[i] ? "num" : "", text: String(c) })));
      return tr;
    });
    return el("table", {}, el("thead", {}, head), el("tbody", {}, ...body));
  }

  function empty(node, text) {
    node.replaceChildren(el("div", { class: "empty", text }));
  }

  function setHeadline(h) {
    const map = { "total-revenue": "revenue", "total-orders": "orders", "total-events": "events", "payment-failures": "payment_failures", "failure-rate": "failure_rate" };
    for (const [testid, name] of Object.entries(map)) {
      const node = document.querySelector(`[data-testid="${testid}"]`);
      const v = h[name];
      // data-value: the exact integer (the four counts); the rate's exact ratio is data-ratio
      node.dataset[name === "failure_rate" ? "ratio" : "value"] = v === null || v === undefined ? "" : String(v);
      node.textContent = v === null || v === undefined ? "–" : (fmt[name] || fmt.int)(v);
    }
    $("complete-flag").dataset.complete = h.complete ? "true" : "false";
  }

  function storeLink(store) {
    const q = new URLSearchParams(query);
    if (store === null) q.delete("store_id"); else q.set("store_id", String(store));
    const s = q.toString();
    return "/dashboard" + (s ? "?" + s : "");
  }

  function shapesFor(snap) {
    const shapes = [], annotations = [];
    for (const h of snap.coverage.holes) {
      shapes.push({ type: "rect", xref: "x", yref: "paper", x0: h.start_ms, x1: h.end_ms, y0: 0, y1: 1, fillcolor: COLORS.hole, opacity: 0.35, line: { width: 0 } });
      annotations.push({ x: (h.start_ms + h.end_ms) / 2, y: 1, xref: "x", yref: "paper", text: "hole", showarrow: false, font: { color: "#b91c1c" } });
    }
    const wm = snap.coverage.batch_through_ms;
    if (wm !== null && wm >= snap.range.start_ms && wm <= snap.range.end_ms) {
      shapes.push({ type: "line", xref: "x", yref: "paper", x0: wm, x1: wm, y0: 0, y1: 1, line: { color: "#dc2626", width: 2, dash: "dash" } });
      annotations.push({ x: wm, y: 1, xref: "x", yref: "paper", text: "batch watermark", showarrow: false, xanchor: "right", font: { color: "#dc2626", size: 11 } });
    }
    return { shapes, annotations };
  }

  const baseLayout = (snap, extra) => Object.assign({
    margin: { l: 50, r: 10, t: 10, b: 30 }, barmode: "overlay", bargap: 0.1, showlegend: true,
    legend: { orientation: "h", y: -0.2 }, xaxis: { type: "date", range: [snap.range.start_ms, snap.range.end_ms] },
    uirevision: "keep",
  }, extra);
  const plotConfig = { displayModeBar: false, responsive: true };

  function layerChart(id, snap, metric, scale) {
    const s = snap.series;
    const traces = ["batch", "speed", "mixed"].map((layer) => ({
      type: "bar", name: layer + " layer", marker: { color: COLORS[layer] }, x: s.t.map((t) => t + snap.range.granularity_ms / 2),
      y: s[metric].map((v, i) => (s.layer[i] === layer && v !== null ? v / scale : null)),
      width: snap.range.granularity_ms * 0.9,
    })).filter((t) => t.y.some((v) => v !== null));
    const { shapes, annotations } = shapesFor(snap);
    Plotly.react(id, traces, baseLayout(snap, { shapes, annotations }), plotConfig);
  }

  function liveChart(snap) {
    const l = snap.live;
    const traces = [
      { type: "scatter", mode: "lines", name: "events/s applied", x: l.t, y: l.events_per_s, line: { color: COLORS.batch } },
      { type: "scatter", mode: "lines", name: "lag (s, now − newest event applied)", x: l.t, y: l.lag_s, yaxis: "y2", line: { color: COLORS.speed } },
    ];
    Plotly.react("chart-live", traces, {
      margin: { l: 60, r: 60, t: 10, b: 30 }, showlegend: true, legend: { orientation: "h", y: -0.2 }, uirevision: "keep",
      xaxis: { type: "date" }, yaxis: { title: { text: "events/s" }, rangemode: "tozero" },
      yaxis2: { title: { text: "lag (s)" }, overlaying: "y", side: "right", rangemode: "tozero" },
    }, plotConfig);
    const shed = Object.entries(l.shed || {}).map(([k, v]) => `${k}: ${v}`).join(", ");
    $("live-note").textContent = `last applied ${l.last_applied || "never"} · newest event time ${l.max_event_time || "none"}` + (shed ? ` · shed: ${shed}` : "");
  }

  function uniquesChart(snap) {
    const u = snap.uniques, node = $("chart-uniques");
    if (!u.available) { Plotly.purge(node); empty(node, u.note); return; }
    if (node.querySelector(".empty")) node.replaceChildren();
    const w = u.granularity === "minute" ? 60000 : u.granularity === "hour" ? 3600000 : 86400000;
    const trace = (exact) => ({
      type: "bar", name: exact ? "exact" : "approximate", x: u.t.map((t) => t + w / 2), width: w * 0.9,
      y: u.values.map((v, i) => (u.exact[i] === exact ? v : null)),
      marker: { color: exact ? COLORS.batch : "rgba(245, 158, 11, 0.45)" },
    });
    const { shapes, annotations } = shapesFor(snap);
    Plotly.react(node, [trace(true), trace(false)], baseLayout(snap, { shapes, annotations }), plotConfig);
  }

  function renderTables(snap) {
    const sel = snap.range.store_id;
    const stores = $("top-stores");
    if (!snap.top_stores.length) empty(stores, "no revenue in this range");
    else {
      const rows = snap.top_stores.map((r) => ({
        attrs: r.store_id === sel ? { class: "selected" } : {},
        cells: [el("a", { href: storeLink(r.store_id), text: "store " + r.store_id }), fmt.revenue(r.revenue), fmt.int(r.orders)],
      }));
      stores.replaceChildren(table(["store (filter)", "revenue", "orders"], rows, [false, true, true]));
      if (sel !== null) stores.append(el("p", { class: "note" }, el("a", { href: storeLink(null), text: "show all stores" })));
    }
    const f = snap.funnel, funnel = $("funnel");
    if (!f.available) empty(funnel, f.note);
    else {
      funnel.replaceChildren(table(["campaign", "views", "carts", "orders", "conversion"], f.rows.map((r) => ({
        cells: [r.campaign_id, fmt.int(r.views), fmt.int(r.carts), fmt.int(r.orders), r.conversion === null ? "–" : (r.conversion * 100).toFixed(1) + "%"],
      })), [false, true, true, true, true]));
      if (f.note) funnel.append(el("p", { class: "note", text: f.note }));
    }
    const a = snap.alerts, alerts = $("alerts");
    if (!a.available) empty(alerts, a.note);
    else alerts.replaceChildren(table(["detected", "rule", "store", "key", "value", "status"], a.rows.map((r) => ({
      cells: [r.detected_at || "", r.rule || "", r.store_id ?? "", r.key ?? "", r.value ?? "", r.status || ""],
    })), [false, false, true, false, true, false]));
    const c = snap.coverage, cov = $("coverage");
    const items = c.ranges.map((r) => ({ cells: [el("span", { class: "layer-" + r.layer, text: r.layer }), iso(r.start_ms), iso(r.end_ms), ""] }));
    for (const h of c.holes) items.push({ attrs: { class: "hole" }, cells: [el("span", { class: "layer-hole", text: "hole" }), iso(h.start_ms), iso(h.end_ms), h.reason] });
    items.sort((x, y) => (x.cells[1] < y.cells[1] ? -1 : 1));
    cov.replaceChildren(
      el("p", { class: "note", text: `batch watermark: ${c.batch_through || "none yet"} · ${c.exact ? "exact" : "not exact"} · ${c.complete ? "complete" : "has holes"}` }),
      table(["layer", "from", "to", "why"], items, [false, false, false, false]));
    const p = snap.platform, tiers = $("tiers"), jobs = $("jobs");
    if (!p.available) { empty(tiers, p.note); empty(jobs, p.note); return; }
    const TIER = { events_hot: "hot (ClickHouse)", events_warm: "warm (ClickHouse)", cold: "cold (S3 Parquet)" };
    const tierRows = Object.entries(p.tiers).map(([name, t]) => ({
      cells: [TIER[name] || name + " (batch view)", fmt.int(t.rows || 0), t.bytes !== undefined ? fmt.int(t.bytes) : (t.days !== undefined ? t.days + " days" : "–"),
        t.bytes && t.rows ? (t.bytes / t.rows).toFixed(1) : "–", t.compression ? t.compression.toFixed(1) + "×" : "–"],
    }));
    if (!tierRows.length) empty(tiers, "no data in any tier yet");
    else tiers.replaceChildren(table(["tier / table", "rows", "bytes on disk", "bytes/row", "compression"], tierRows, [false, true, true, true, true]));
    if (!p.jobs.length) empty(jobs, "no batch job has run yet");
    else jobs.replaceChildren(table(["job", "status", "started", "ended", "rows"], p.jobs.map((j) => ({
      cells: [j.job, j.status + (j.error ? ": " + j.error : ""), (j.started_at || "").slice(0, 19), (j.ended_at || "").slice(0, 19), fmt.int(j.rows || 0)],
    })), [false, false, false, false, true]));
  }

  function render(snap) {
    snap.range.granularity_ms = { minute: 60000, hour: 3600000, day: 86400000 }[snap.range.granularity];
    setHeadline(snap.headline);
    $("range-text").textContent = `${snap.range.start} to ${snap.range.end}` + (snap.range.rolling ? " (last hour, rolling)" : "") + ` · per ${snap.range.granularity}`;
    $("store-text").textContent = snap.range.store_id === null ? "· all stores" : `· store ${snap.range.store_id}`;
    for (const g of document.querySelectorAll(".gran")) g.textContent = snap.range.granularity;
    renderTables(snap);
    state.last = snap;
    drawCharts(snap);
    if (state.renderedAt === undefined) state.renderedAt = performance.now();
    document.body.dataset.rendered = String(snap.now_ms);
  }

  // plotly.js (its basic bundle, 1.2 MB) runs after this script: numbers and tables show first,
  // charts when it is in
  function drawCharts(snap) {
    if (!window.Plotly) return;
    layerChart("chart-revenue", snap, "revenue", 100);
    layerChart("chart-orders", snap, "orders", 1);
    liveChart(snap);
    uniquesChart(snap);
    if (state.chartsAt === undefined) state.chartsAt = performance.now();
  }
  $("plotly-js").addEventListener("load", () => {
    state.chartLibAt = performance.now(); // plotly.js compiled and run (bench/dashboard.py reads it)
    if (state.last) drawCharts(state.last);
  });
  // not installed (the daemon answers 404 and logs what to run): say so where the charts would be
  $("plotly-js").addEventListener("error", () => {
    state.chartsMissing = true;
    for (const node of document.querySelectorAll(".chart")) {
      empty(node, "charts unavailable: the chart library (plotly.js-basic-dist-min) is not installed on the daemon; run `make install`");
    }
  });

  function setLive(ok, text) {
    $("live-dot").className = "dot " + (ok ? "live" : "down");
    $("live-text").textContent = text;
  }

  function headers() {
    const h = { Accept: "text/event-stream" };
    const t = sessionStorage.getItem(TOKEN_KEY);
    if (t) h.Authorization = "Bearer " + t;
    return h;
  }

  function askToken(note) {
    const form = $("token-form");
    form.hidden = false;
    $("token-note").textContent = note || "";
    setLive(false, "waiting for the token");
  }

  async function connect() {
    if (needsToken && !sessionStorage.getItem(TOKEN_KEY)) { askToken(""); return; }
    state.controller = new AbortController();
    let resp;
    try {
      resp = await fetch("/dashboard/api/stream?" + query.toString(), { headers: headers(), cache: "no-store", signal: state.controller.signal });
    } catch (err) { return retry(); }
    if (resp.status === 401) { sessionStorage.removeItem(TOKEN_KEY); askToken("that token was refused"); return; }
    if (!resp.ok || !resp.body) {
      $("error").textContent = `the daemon answered ${resp.status}: ${await resp.text()}`;
      if (resp.status >= 400 && resp.status < 500) { setLive(false, "stopped"); return; } // a bad range: fix the URL
      return retry();
    }
    $("token-form").hidden = true;
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          onEvent(block);
        }
      }
    } catch (err) { /* the stream broke: reconnect below */ }
    retry();
  }

  function onEvent(block) {
    let event = "message", data = "";
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) event = line.slice(6).trim();
      else if (line.startsWith("data:")) data += line.slice(5).trim();
      else if (line.startsWith("retry:")) state.retryMs = parseInt(line.slice(6), 10) || 1000;
    }
    if (event === "snapshot") {
      state.connected = true;
      $("error").textContent = "";
      render(JSON.parse(data));
      setLive(true, "live · updated " + new Date().toISOString().slice(11, 19) + "Z");
    } else if (event === "problem") {
      $("error").textContent = "data unavailable right now: " + JSON.parse(data).error;
    }
  }

  function retry() {
    state.connected = false;
    setLive(false, "reconnecting…");
    setTimeout(connect, state.retryMs);
  }

  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = $("token").value.trim();
    if (!t) return;
    sessionStorage.setItem(TOKEN_KEY, t);
    $("token").value = "";
    connect();
  });
  state.reconnect = () => { if (state.controller) state.controller.abort(); }; // the tests' way to drop the stream

  const initial = JSON.parse($("initial-snapshot").textContent);
  if (initial) render(initial);
  if ($("error").textContent.trim()) setLive(false, "fix the range in the URL"); // the server refused it
  else if (document.readyState === "complete") setTimeout(connect, SETTLE_MS);
  else window.addEventListener("load", () => setTimeout(connect, SETTLE_MS));
})();
