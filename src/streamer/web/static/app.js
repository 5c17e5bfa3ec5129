// Status page: reads /api/streams*, refreshes on /api/events change notices.
// Every value comes from the platform under test and is hostile: text goes into the
// DOM only through textContent / createTextNode, never as markup.
"use strict";

(function () {
  const STATES = new Set(["idle", "publishing", "waiting", "playing", "grace", "failed"]);
  const OUTCOMES = new Set(["success", "failure", "aborted", "running"]);
  const COLORS = ["#1f6feb", "#cf222e", "#1a7f37", "#8250df", "#bc4c00", "#0a7c8c", "#6e5b2e", "#bf3989"];
  const CHART_HEIGHT = 260;
  const FALLBACK_REFRESH_MS = 30000;
  // The chart spans from its first point to now: at least this much, at most the window.
  const MIN_CHART_SPAN_SECONDS = 300;
  // The feed answered 503 (too many clients): try again after about its Retry-After.
  const FEED_RETRY_MS = 30000;

  const view = {
    streams: [],
    serverNow: 0,
    fetchedAt: 0, // performance.now() when the list arrived
    selected: null,
    detail: null,
    detailFetchedAt: 0,
    chart: null,
    chartKey: "",
    chartRange: [0, 1],
    listTickers: [],
    detailTickers: [],
  };
  // For tests and debugging: the live uPlot instances and a refresh counter.
  window.__charts = {};
  window.__status = { refreshes: 0 };

  const byId = (id) => document.getElementById(id);

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function cell(row, text, className) {
    const td = el("td", text, className);
    row.appendChild(td);
    return td;
  }

  function badge(prefix, value, known) {
    const kind = known.has(value) ? value : "unknown";
    return el("span", value, `badge ${prefix}-${kind}`);
  }

  // -- formatting -------------------------------------------------------------------------

  function fmtDuration(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
    const s = Math.max(0, Math.floor(seconds));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const r = s % 60;
    if (h) return `${h}h ${String(m).padStart(2, "0")}m`;
    if (m) return `${m}m ${String(r).padStart(2, "0")}s`;
    return `${r}s`;
  }

  function fmtSeconds(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
    return `${seconds.toFixed(2)} s`;
  }

  function fmtLatency(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
    return seconds < 1 ? `${Math.round(seconds * 1000)} ms` : fmtSeconds(seconds);
  }

  function fmtTime(epoch) {
    if (epoch === null || epoch === undefined) return "—";
    const date = new Date(epoch * 1000);
    const time = date.toLocaleTimeString([], { hour12: false });
    if (date.toDateString() === new Date().toDateString()) return time;
    return `${date.toLocaleDateString()} ${time}`;
  }

  // Seconds since a list/detail response arrived: keeps clocks ticking between refreshes.
  const sinceList = () => (performance.now() - view.fetchedAt) / 1000;
  const sinceDetail = () => (performance.now() - view.detailFetchedAt) / 1000;

  function sessionText(stream) {
    if (stream.running) return `running ${fmtDuration(stream.elapsed_seconds + sinceList())}`;
    if (stream.session_ended_at !== null) {
      return `ended ${fmtDuration(view.serverNow - stream.session_ended_at + sinceList())} ago`;
    }
    return "—";
  }

  function renditionNames(renditions) {
    const names = renditions.map((r) => r.name);
    if (names.length === 0) return "—";
    const shown = names.slice(0, 4).join(", ");
    return names.length > 4 ? `${shown} +${names.length - 4}` : shown;
  }

  // -- streams table -----------------------------------------------------------------------

  function renderStreams() {
    view.listTickers = [];
    const rows = view.streams.map((stream) => {
      const row = el("tr");
      row.dataset.stream = stream.name;
      row.dataset.state = stream.state;
      if (stream.name === view.selected) {
        row.className = "selected";
        row.setAttribute("aria-current", "true");
      }
      const link = el("a", stream.name);
      link.href = `#${encodeURIComponent(stream.name)}`;
      cell(row).appendChild(link);
      cell(row).appendChild(badge("state", stream.state, STATES));
      cell(row, stream.ingest_region);
      cell(row, stream.playback_region);
      const session = cell(row, sessionText(stream), "num");
      view.listTickers.push(() => { session.textContent = sessionText(stream); });
      const outcome = cell(row);
      if (stream.last_outcome) outcome.appendChild(badge("outcome", stream.last_outcome, OUTCOMES));
      else outcome.textContent = "—";
      cell(row, renditionNames(stream.renditions), "wrap");
      row.addEventListener("click", (event) => {
        if (event.target !== link) window.location.hash = link.hash;
      });
      return row;
    });
    byId("streams").tBodies[0].replaceChildren(...rows);
    byId("streams-empty").hidden = rows.length > 0;
  }

  // -- detail ------------------------------------------------------------------------------

  function renderMeta(detail) {
    const meta = byId("detail-meta");
    const items = [
      ["Regions", `${detail.ingest_region} → ${detail.playback_region}`],
      ["Session", detail.session_id ?? "—"],
      ["Started", fmtTime(detail.session_started_at)],
      ["Planned duration", fmtDuration(detail.duration_seconds)],
      ["Ingest", detail.ingest ?? "—"],
      ["Playback", detail.playback ?? "—"],
    ];
    meta.replaceChildren();
    for (const [label, value] of items) {
      const group = el("div");
      group.append(el("dt", label), el("dd", value));
      meta.appendChild(group);
    }
  }

  function renderRenditions(renditions) {
    const rows = renditions.map((r) => {
      const row = el("tr");
      row.dataset.rendition = r.name;
      cell(row, r.name, "wrap");
      cell(row, r.resolution ?? "—");
      const advertised = r.codecs && r.codecs.split(",").join(", ");
      const codecs = [advertised, r.video_codec && `(${r.video_codec})`].filter(Boolean).join(" ");
      cell(row, codecs || "—", "wrap");
      const age = cell(row, "", "num");
      const showAge = () => {
        age.textContent = r.last_segment_age_seconds === null
          ? "—" : `${fmtDuration(r.last_segment_age_seconds + sinceDetail())} ago`;
      };
      showAge();
      view.detailTickers.push(showAge);
      cell(row, fmtSeconds(r.last_segment_latency_seconds), "num");
      // LL-HLS: parts are what a player at the live edge plays; a part-level stall shows
      // as a last part growing old (and part_late in the errors) while segments look fine.
      const partAge = cell(row, "", "num");
      const showPartAge = () => {
        partAge.textContent = r.last_part_age_seconds == null
          ? "—" : `${fmtDuration(r.last_part_age_seconds + sinceDetail())} ago`;
      };
      showPartAge();
      view.detailTickers.push(showPartAge);
      cell(row, fmtSeconds(r.last_part_latency_seconds), "num");
      return row;
    });
    byId("renditions").tBodies[0].replaceChildren(...rows);
    byId("renditions-empty").hidden = rows.length > 0;
  }

  function renderProtocols(protocols) {
    const rows = (protocols || []).map((p) => {
      const row = el("tr");
      row.dataset.protocol = p.protocol;
      cell(row, p.protocol, "wrap");
      cell(row, fmtSeconds(p.startup_latency_seconds), "num");
      const kind = p.latency_kind === "frame" ? " per frame" : " per segment";
      const p50 = fmtLatency(p.latency_p50_seconds);
      cell(row, p.latency_p50_seconds === null ? p50 : p50 + kind, "num");
      cell(row, fmtLatency(p.latency_p95_seconds), "num");
      cell(row, String(p.freezes), "num");
      cell(row, fmtSeconds(p.freeze_seconds), "num");
      cell(row, fmtSeconds(p.connect_seconds), "num");
      return row;
    });
    byId("protocols").tBodies[0].replaceChildren(...rows);
    byId("protocols-empty").hidden = rows.length > 0;
  }

  function renderSessions(sessions) {
    const rows = sessions.map((s) => {
      const row = el("tr");
      row.dataset.session = s.session_id;
      const outcome = s.outcome ?? "running";
      row.dataset.outcome = outcome;
      cell(row, fmtTime(s.started_at));
      cell(row, s.session_id, "mono");
      cell(row).appendChild(badge("outcome", outcome, OUTCOMES));
      cell(row, fmtDuration(s.duration_seconds), "num");
      cell(row, fmtSeconds(s.startup_latency_seconds), "num");
      cell(row, s.failed_kinds.length ? s.failed_kinds.join(", ") : "—", "wrap");
      return row;
    });
    byId("sessions").tBodies[0].replaceChildren(...rows);
    byId("sessions-empty").hidden = rows.length > 0;
  }

  function renderErrors(errors) {
    const rows = errors.map((e) => {
      const row = el("tr");
      cell(row, fmtTime(e.at));
      cell(row, e.kind, "mono wrap");
      cell(row, e.rendition ?? "—", "wrap");
      cell(row, e.detail, "detail-text");
      return row;
    });
    byId("errors").tBodies[0].replaceChildren(...rows);
    byId("errors-empty").hidden = rows.length > 0;
  }

  // -- chart -------------------------------------------------------------------------------

  function destroyChart() {
    if (view.chart) view.chart.destroy();
    view.chart = null;
    view.chartKey = "";
    delete window.__charts.latency;
  }

  const chartWidth = () => Math.max(320, byId("chart").clientWidth || 640);
  // Tick steps in seconds: uPlot's own jump from 1 to 5 minutes leaves a 12-minute chart
  // with two labels.
  const TIME_TICK_STEPS = [15, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600];
  const legendValue = (u, v) => (v === null || v === undefined ? "—" : `${v.toFixed(2)} s`);
  const clock = (epoch, seconds) => new Date(epoch * 1000).toLocaleTimeString([], {
    hour12: false, hour: "2-digit", minute: "2-digit", second: seconds ? "2-digit" : undefined,
  });
  // 24-hour clock times like the rest of the page; seconds only when ticks are that close.
  const timeTicks = (u, ticks) => {
    const seconds = ticks.length > 1 && ticks[1] - ticks[0] < 60;
    return ticks.map((t) => clock(t, seconds));
  };

  // uPlot's aligned data: [t, mean0, max0, mean1, max1, ...], with a null row wherever
  // buckets are missing so that lines break across gaps (e.g. between sessions).
  function chartData(latency) {
    const step = latency.bucket_seconds;
    const columns = [[]];
    for (const _ of latency.series) columns.push([], []);
    latency.t.forEach((t, i) => {
      if (i > 0 && t - latency.t[i - 1] > step) {
        columns[0].push(latency.t[i - 1] + step);
        for (let c = 1; c < columns.length; c++) columns[c].push(null);
      }
      columns[0].push(t);
      latency.series.forEach((s, k) => {
        columns[1 + 2 * k].push(s.mean[i]);
        columns[2 + 2 * k].push(s.max[i]);
      });
    });
    return columns;
  }

  // From the first bucket to now, so that a few minutes of data fill the chart rather than
  // its right edge; at least MIN_CHART_SPAN_SECONDS wide, at most the window (an hour).
  function chartRange(latency, now) {
    const end = Math.max(now, latency.t[latency.t.length - 1] + latency.bucket_seconds);
    const wanted = end - latency.t[0] + latency.bucket_seconds / 2;
    const span = Math.min(latency.window_seconds, Math.max(MIN_CHART_SPAN_SECONDS, wanted));
    return [end - span, end];
  }

  function renderChart(name, latency, now) {
    const empty = !latency || latency.t.length === 0;
    byId("chart-empty").hidden = !empty;
    byId("chart").hidden = empty;
    if (empty || typeof window.uPlot !== "function") {
      byId("chart-span").textContent = "hour";
      destroyChart();
      return;
    }
    const renditions = latency.series.map((s) => s.rendition);
    const data = chartData(latency);
    view.chartRange = chartRange(latency, now);
    const span = view.chartRange[1] - view.chartRange[0];
    byId("chart-span").textContent =
      span >= latency.window_seconds ? "hour" : `${Math.round(span / 60)} min`;
    const key = JSON.stringify([name, renditions]);
    if (view.chart && view.chartKey === key) {
      view.chart.setData(data);
      return;
    }
    destroyChart();
    const series = [{ label: "time" }];
    renditions.forEach((rendition, i) => {
      const stroke = COLORS[i % COLORS.length];
      series.push({ label: `${rendition} mean`, stroke, width: 2, value: legendValue,
                    points: { size: 5 } });
      series.push({ label: `${rendition} max`, stroke, width: 1, dash: [5, 4],
                    value: legendValue, points: { show: false } });
    });
    view.chart = new window.uPlot({
      width: chartWidth(),
      height: CHART_HEIGHT,
      series,
      scales: { x: { time: true, range: () => view.chartRange }, y: { range: (u, min, max) => [0, Math.max(1, (max || 0) * 1.15)] } },
      axes: [{ space: 70, incrs: TIME_TICK_STEPS, values: timeTicks }, { label: "seconds", size: 56, values: (u, ticks) => ticks.map((t) => t.toFixed(1)) }],
    }, data, byId("chart"));
    view.chartKey = key;
    window.__charts.latency = view.chart;
  }

  function renderDetail(detail) {
    view.detailTickers = [];
    byId("detail").hidden = false;
    byId("detail-name").textContent = detail.name;
    const state = byId("detail-state");
    state.textContent = detail.state;
    state.className = `badge state-${STATES.has(detail.state) ? detail.state : "unknown"}`;
    renderMeta(detail);
    renderChart(detail.name, detail.latency, detail.now);
    renderRenditions(detail.renditions);
    renderProtocols(detail.protocols);
    renderSessions(detail.sessions);
    renderErrors(detail.errors);
  }

  // -- loading -----------------------------------------------------------------------------

  async function getJSON(url) {
    const response = await fetch(url, { cache: "no-store", headers: { Accept: "application/json" } });
    if (response.status === 404) return null;
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
    return response.json();
  }

  function showError(message) {
    const notice = byId("load-error");
    notice.hidden = !message;
    notice.textContent = message || "";
  }

  function selectedFromHash() {
    try {
      return decodeURIComponent(window.location.hash.slice(1)) || null;
    } catch (_) {
      return null;
    }
  }

  async function refresh(withDetail) {
    const list = await getJSON("/api/streams");
    view.streams = list.streams;
    view.serverNow = list.now;
    view.fetchedAt = performance.now();
    const names = view.streams.map((s) => s.name);
    const wanted = selectedFromHash();
    const selected = names.includes(wanted) ? wanted : names[0] ?? null;
    const changed = selected !== view.selected;
    view.selected = selected;
    renderStreams();
    if (selected === null) {
      byId("detail").hidden = true;
      destroyChart();
    } else if (withDetail || changed) {
      const detail = await getJSON(`/api/streams/${encodeURIComponent(selected)}`);
      view.detailFetchedAt = performance.now();
      if (detail) renderDetail(detail);
    }
  }

  // Serialises refreshes; asks made meanwhile coalesce into one more run.
  let running = false;
  let pending = null; // null: nothing; false: list only; true: list and detail
  async function requestRefresh(withDetail) {
    pending = pending === null ? withDetail : pending || withDetail;
    if (running) return;
    running = true;
    try {
      while (pending !== null) {
        const detail = pending;
        pending = null;
        try {
          await refresh(detail);
          showError(null);
        } catch (err) {
          showError(`Could not load the status: ${err.message}`);
        }
        window.__status.refreshes += 1;
      }
    } finally {
      running = false;
    }
  }

  function connectFeed() {
    const feed = byId("feed");
    const source = new EventSource("/api/events");
    source.addEventListener("open", () => {
      feed.dataset.state = "live";
      feed.textContent = "live";
      feed.title = "";
      requestRefresh(true); // catch up on anything missed while disconnected
    });
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        // Refused (503: the monitor serves enough live pages): no automatic reconnect.
        // Poll meanwhile (FALLBACK_REFRESH_MS) and try the feed again later, with jitter.
        feed.dataset.state = "polling";
        feed.textContent = "refreshing every 30 s";
        feed.title = "The monitor has as many live pages open as it serves; retrying later.";
        setTimeout(connectFeed, FEED_RETRY_MS * (0.8 + 0.4 * Math.random()));
        return;
      }
      feed.dataset.state = "reconnecting";
      feed.textContent = "reconnecting…";
    });
    source.addEventListener("changed", (event) => {
      let streams = [];
      try {
        streams = JSON.parse(event.data).streams || [];
      } catch (_) {
        return;
      }
      requestRefresh(streams.includes(view.selected));
    });
  }

  window.addEventListener("hashchange", () => requestRefresh(true));
  window.addEventListener("resize", () => {
    if (view.chart) view.chart.setSize({ width: chartWidth(), height: CHART_HEIGHT });
  });
  setInterval(() => {
    for (const tick of view.listTickers) tick();
    for (const tick of view.detailTickers) tick();
  }, 1000);
  setInterval(() => requestRefresh(true), FALLBACK_REFRESH_MS);

  requestRefresh(true);
  connectFeed();
})();
