/* The chart page: Highcharts Stock with the price line or candles at a chosen interval, the
   bid/ask band (and the spread in its own pane, so it shows at any price level), volume under
   the candles once trades exist, a navigator over the whole history, percentage comparison
   with other series, alert flags and live ticks.

   Live ticks are queued and drawn in one batch at most every FLUSH_MS, so a busy feed costs a
   few redraws a second whatever its rate; the live part of each series is bounded (LIVE_MAX)
   and a tick only appends to the band, never recomputes it. The page keeps every raw point
   (Layer.rows) but hands Highcharts one point per PIXELS of width (the newest of each bucket;
   lowest bid / highest ask for the band), so a redraw costs the pixels on show and a live
   batch changes a point or two: Highcharts' own data grouping regrouped every point of every
   series (and the navigator's) on each redraw, 100-300 ms a redraw at 1,000 ticks/s. The range, line/candles, interval
   and compared series are kept in the page's URL. */
"use strict";

(() => {
  const HOUR = 3600 * 1000;
  const DAY = 24 * HOUR;
  const RAW_MAX_SPAN = DAY;          // longer ranges are drawn from candles (auto interval)
  const RAW_LIMIT = 5000;            // points of one field fetched for one range
  const LIVE_MAX = 2000;             // live points kept beyond a fetched range
  const FLUSH_MS = 250;              // live ticks are drawn at most this often
  const PIXELS = 2;                  // width of the bucket drawn as one point
  const NAVIGATOR_MS = 5000;         // the navigator's line follows live ticks this often
  const HEADROOM = 0.05;             // live scrolling leaves this part of the range ahead
  const TARGET_CANDLES = 500;
  const AUTO_INTERVALS = [60, 300, 900, 3600, 4 * 3600, 86400, 7 * 86400];  // seconds
  const PICKS = { "1m": 60, "5m": 300, "15m": 900, "1h": 3600, "4h": 14400, "1d": 86400 };
  const RANGES = { "1h": HOUR, "1d": DAY, "1w": 7 * DAY, "1mo": 30 * DAY };
  const COLORS = ["#e07b00", "#8e44ad", "#16a085", "#c0392b", "#2c3e50"];
  const box = document.getElementById("chart");
  const exchange = box.dataset.exchange;
  const symbol = box.dataset.symbol;
  const seriesId = `${exchange}:${symbol}`;
  const latest = { price: null, bid: null, ask: null, time: null };
  const url = new URL(window.location.href);
  const view = {
    type: url.searchParams.get("type") === "candles" ? "candles" : "line",
    interval: PICKS[url.searchParams.get("interval")] ? url.searchParams.get("interval") : "auto",
    range: url.searchParams.get("range") || "1h",
    compare: (url.searchParams.get("compare") || "").split(",").filter(Boolean),
  };
  let places = 2;
  let chart = null;
  let first = null;        // time of the series' first stored tick
  let shown = null;        // {mode, interval} of the range on show
  let loading = 0;         // drops answers that a newer range request has superseded
  let lastCandle = null;   // [start, open, high, low, close, volume] of the newest candle
  let lastBandTime = null;
  let hasVolume = false;
  let queue = [];          // live items not drawn yet
  let flushTimer = null;
  let navPending = null;   // the newest live price the navigator has not drawn yet
  let navDrawn = 0;        // when the navigator last took one (performance.now())
  let drawnTicks = 0;      // live ticks drawn so far (the tests and the bench read it)
  const layers = new Map();  // chart series id -> Layer
  let levelLines = [];     // plot line ids of the series' level rules
  let draft = null;        // the open "alert at this price" form

  /** One chart series fed with raw rows [time, value] ("line") or [time, bid, ask]
      ("band"), drawn as one point per bucket of `step` ms. */
  class Layer {
    constructor(id, kind, cap) {
      this.id = id;
      this.kind = kind;
      this.cap = cap;
      this.rows = [];
      this.step = 1;
      this.lastKey = null;
    }

    merge(prev, row) {
      return this.kind === "band"
        ? [row[0], Math.min(prev[1], row[1]), Math.max(prev[2], row[2])] : row;
    }

    decimate(rows) {
      const out = [];
      let key = null;
      for (const row of rows) {
        const k = Math.floor(row[0] / this.step);
        if (k === key) out[out.length - 1] = this.merge(out[out.length - 1], row);
        else out.push(row);
        key = k;
      }
      return out;
    }

    /** Replaces the rows; `span` ms over the plot's width sets the bucket. */
    set(rows, span, width) {
      this.rows = rows.slice(-this.cap);
      this.step = Math.max(1, Math.floor(span / Math.max(1, width) * PIXELS));
      const points = this.decimate(this.rows);
      this.lastKey = points.length ? Math.floor(points[points.length - 1][0] / this.step) : null;
      chart.get(this.id)?.setData(points, false, false, false);
    }

    /** Appends newer rows: the newest drawn point is merged with those of its bucket. */
    append(rows) {
      const series = chart.get(this.id);
      if (!rows.length || !series) return;
      for (const row of rows) this.rows.push(row);
      if (this.rows.length > this.cap * 1.25) this.rows.splice(0, this.rows.length - this.cap);
      const tail = this.decimate(rows);
      const data = series.options.data;
      if (data.length && Math.floor(tail[0][0] / this.step) === this.lastKey) {
        tail[0] = this.merge(data[data.length - 1], tail[0]);
        series.removePoint(data.length - 1, false, false);
      }
      const shift = data.length + tail.length > this.cap;
      for (const row of tail) series.addPoint(row, false, shift, false);
      this.lastKey = Math.floor(tail[tail.length - 1][0] / this.step);
    }
  }

  function layer(id, kind = "line") {
    if (!layers.has(id)) layers.set(id, new Layer(id, kind, RAW_LIMIT + LIVE_MAX));
    return layers.get(id);
  }

  const path = (series) => {
    const [ex, sym] = BCX.splitSeries(series);
    return `/series/${encodeURIComponent(ex)}/${encodeURIComponent(sym)}`;
  };
  const numeric = (points) => points.map(([ms, value]) => [ms, Number(value)]);

  /** Bid and ask arrive separately; the band holds, at each change of either, both latest. */
  function band(bids, asks) {
    const out = [];
    let i = 0; let j = 0; let bid = null; let ask = null;
    while (i < bids.length || j < asks.length) {
      const nextBid = i < bids.length ? bids[i][0] : Infinity;
      const nextAsk = j < asks.length ? asks[j][0] : Infinity;
      const time = Math.min(nextBid, nextAsk);
      if (nextBid === time) bid = Number(bids[i++][1]);
      if (nextAsk === time) ask = Number(asks[j++][1]);
      if (bid !== null && ask !== null) {
        if (out.length && out[out.length - 1][0] === time) out.pop();
        out.push([time, bid, ask]);
      }
    }
    return out;
  }

  /** Spread in basis points of the mid: readable whether the price is 0.0001 or 60,000. */
  const spreadBps = ([time, bid, ask]) =>
    [time, bid + ask > 0 ? Number(((ask - bid) / ((ask + bid) / 2) * 1e4).toFixed(3)) : null];

  function intervalLabel(seconds) {
    const units = [[7 * 86400, "w"], [86400, "d"], [3600, "h"], [60, "min"], [1, "s"]];
    const [size, name] = units.find(([unit]) => seconds % unit === 0);
    return `${seconds / size} ${name}`;
  }

  function intervalFor(span) {
    if (view.interval !== "auto") return PICKS[view.interval];
    return AUTO_INTERVALS.find((s) => span / (s * 1000) <= TARGET_CANDLES)
      || AUTO_INTERVALS[AUTO_INTERVALS.length - 1];
  }

  /** The newest points of a range (at most RAW_LIMIT), oldest first. */
  async function raw(series, field, min, max) {
    const data = await BCX.api(`${path(series)}/history`, { field, start: min, end: max,
      limit: RAW_LIMIT, order: "desc" });
    return { truncated: data.truncated, points: numeric(data.points.reverse()) };
  }

  /** One range of one series: raw points for a short line, else candles of an interval. */
  async function fetchRange(series, min, max, withBand) {
    const span = max - min;
    if (view.type === "line" && view.interval === "auto" && span <= RAW_MAX_SPAN) {
      const none = { points: [] };
      const [price, bid, ask] = await Promise.all([raw(series, "price", min, max),
        withBand ? raw(series, "bid", min, max) : none,
        withBand ? raw(series, "ask", min, max) : none]);
      return { mode: "raw", price: price.points, truncated: price.truncated,
        band: band(bid.points, ask.points), candles: [] };
    }
    // Never more candles than the API gives for one request: a short interval over a long
    // range shows its newest TARGET_CANDLES * 4.
    const interval = intervalFor(span);
    const start = Math.max(min, max - interval * 1000 * TARGET_CANDLES * 4);
    const get = (field) => BCX.api(`${path(series)}/ohlc`, { field, interval, start, end: max })
      .then((data) => data.candles);
    const [price, bid, ask] = await Promise.all([get("price"),
      withBand ? get("bid") : [], withBand ? get("ask") : []]);
    const closes = (candles) => candles.map((c) => [c[0], c[4]]);
    const candles = price.map((c) => [c[0], ...c.slice(1, 5).map(Number),
      c.length > 5 && c[5] !== null ? Number(c[5]) : null]);
    return { mode: "candles", interval, price: numeric(closes(price)),
      band: band(closes(bid), closes(ask)), candles, clipped: start > min };
  }

  function layout() {
    // Price on top; volume (once any) and the spread in panes below.
    const volume = hasVolume && shown && shown.mode === "candles";
    const spread = !view.compare.length;
    const lower = (volume ? 16 : 0) + (spread ? 14 : 0);
    chart.yAxis[0].update({ height: `${100 - lower - (lower ? 2 : 0)}%` }, false);
    chart.get("volume-axis").update({ visible: volume, top: `${100 - lower}%`,
      height: volume ? "16%" : 0 }, false);
    chart.get("spread-axis").update({ visible: spread, top: `${100 - (spread ? 14 : 0)}%`,
      height: spread ? "14%" : 0 }, false);
    chart.get("volume").setVisible(volume, false);
    chart.get("spread").setVisible(spread, false);
  }

  function showRange(range, span) {
    const width = chart.plotWidth;
    const candles = view.type === "candles" && range.mode === "candles";
    shown = { mode: range.mode, interval: range.interval };
    lastCandle = range.candles.length ? [...range.candles[range.candles.length - 1]] : null;
    lastBandTime = range.band.length ? range.band[range.band.length - 1][0] : null;
    hasVolume = range.candles.some((c) => c[5]);
    layer("price").set(candles ? [] : range.price, range.mode === "raw" ? span : 0, width);
    chart.get("candles").setData(candles ? range.candles.map((c) => c.slice(0, 5)) : [],
      false, false, false);
    chart.get("volume").setData(range.candles.map((c) => [c[0], c[5] || 0]), false, false,
      false);
    layer("band", "band").set(view.compare.length ? [] : range.band,
      range.mode === "raw" ? span : 0, width);
    layer("spread").set(range.band.map(spreadBps), range.mode === "raw" ? span : 0, width);
    layout();
    const what = range.mode === "raw"
      ? `Raw ticks: ${range.price.length} price${range.price.length === 1 ? "" : "s"}${
        range.truncated ? ", the latest of the range (zoom in for the rest)" : ""}.`
      : `${candles ? "Candles" : "Closes"} of ${intervalLabel(range.interval)}${
        range.clipped ? " (the newest of the range: zoom in or pick a longer interval)" : ""};`
        + " band = bid/ask closes.";
    document.getElementById("mode").textContent = what
      + (view.compare.length ? " Compared in % from the first point on show." : "");
  }

  async function loadExtremes(min, max) {
    const token = ++loading;
    chart.showLoading("Loading…");
    try {
      const [own, ...others] = await Promise.all([fetchRange(seriesId, min, max, true),
        ...view.compare.map((other) => fetchRange(other, min, max, false))]);
      if (token !== loading) return;
      showRange(own, max - min);
      view.compare.forEach((other, i) => layer(`compare-${other}`)
        .set(others[i].price, others[i].mode === "raw" ? max - min : 0, chart.plotWidth));
      chart.redraw();
    } finally {
      if (token === loading) chart.hideLoading();
    }
  }

  function reload() {
    const { min, max } = chart.xAxis[0].getExtremes();
    return loadExtremes(Math.round(min), Math.round(max));
  }

  function afterSetExtremes(event) {
    // Only ranges the user picked are fetched; programmatic moves (live scrolling) are not.
    if (!event.trigger || event.min === undefined) return;
    const button = event.rangeSelectorButton;
    view.range = button ? button.text : `${Math.round(event.min)}~${Math.round(event.max)}`;
    saveUrl();
    loadExtremes(Math.round(event.min), Math.round(event.max))
      .catch((error) => console.warn("chart:", error.message));
  }

  function saveUrl() {
    const next = new URL(window.location.href);
    const set = (name, value, fallback) => (value && value !== fallback
      ? next.searchParams.set(name, value) : next.searchParams.delete(name));
    set("range", view.range, "1h");
    set("type", view.type, "line");
    set("interval", view.interval, "auto");
    set("compare", view.compare.join(","), "");
    window.history.replaceState(null, "", next);
  }

  /** The initial [min, max] for the URL's range: "1h", "1d", "1w", "1mo", "all" or "A~B". */
  function rangeExtremes(end) {
    const fixed = /^(\d+)~(\d+)$/.exec(view.range);
    if (fixed) return [Math.max(first, Number(fixed[1])), Math.min(end, Number(fixed[2]))];
    if (view.range === "all") return [first, end];
    return [Math.max(first, end - (RANGES[view.range] || HOUR)), end];
  }

  /** When the series' first stored tick was (the axis and navigator start there). */
  async function firstTime() {
    for (const field of ["price", "bid", "ask"]) {
      const data = await BCX.api(`${path(seriesId)}/history`, { field, limit: 1 });
      if (data.points.length) return data.points[0][0];
    }
    return latest.time;
  }

  /** A flag per event: the kind's marker and the rule's name; red firing, green resolved. */
  function flag(event) {
    const firing = event.state === "firing";
    const name = event.name || event.rule;
    return { x: event.time, title: `${BCXRules.marker(event.kind)} ${name}`, id: event.id,
      text: `<b>${name}</b> (${event.kind}) ${event.state}${event.silenced ? ", silenced" : ""}`
        + `<br>${event.message || ""}`,
      color: firing ? "#c0362c" : "#12805c", fillColor: firing ? "#fde8e6" : "#dcfae6" };
  }

  /** The series' level rules (above, below, crossings) as lines across the price pane. */
  async function thresholdLines() {
    const found = (await BCX.api("/rules")).rules.filter((rule) => rule.series === seriesId
      && BCXRules.LEVELS.includes(rule.kind) && rule.enabled && rule.threshold !== null);
    if (!chart) return;
    const axis = chart.get("price-axis");
    for (const id of levelLines) axis.removePlotLine(id);
    levelLines = found.map((rule) => `rule-${rule.id}`);
    const percent = view.compare.length > 0;
    for (const rule of percent ? [] : found) {
      const state = rule.status ? rule.status.state : "normal";
      const hot = state === "firing" ? "#c0362c" : "#d9822b";
      axis.addPlotLine({ id: `rule-${rule.id}`, value: rule.threshold, color: hot, width: 1.5,
        dashStyle: state === "silenced" ? "Dot" : "ShortDash", zIndex: 5,
        label: { text: `${BCXRules.marker(rule.kind)} ${rule.name} ${rule.field !== "price"
          ? rule.field + " " : ""}${BCX.fmt(rule.threshold, places)} (${state})`,
        align: "left", x: 4, y: -4, style: { color: hot, fontSize: "11px" } } });
    }
    // The axis stretches to show every line (a soft limit: the data still sets it when wider).
    const values = percent ? [] : found.map((rule) => rule.threshold);
    axis.update({ softMin: values.length ? Math.min(...values) : undefined,
      softMax: values.length ? Math.max(...values) : undefined }, false);
    chart.redraw(false);
    document.body.dataset.lines = String(levelLines.length);
  }

  /** "Alert at this price": the form opens at the last price; while it is open a click on
      the chart picks the price (above or below the last one), drawn as a dashed line. */
  function alertForm(price) {
    const box = document.getElementById("rule-form-box");
    const last = Number(latest.price ?? ((Number(latest.bid) + Number(latest.ask)) / 2));
    const level = price ?? last;
    const kind = Number.isFinite(last) && level < last ? "below" : "above";
    draft = BCXRules.form(box, { series: seriesId, threshold: round(level), kind,
      onSaved: () => {
        draft = null;
        setDraftLine(null);
        thresholdLines().catch((error) => console.warn("chart:", error.message));
      },
      onCancel: () => {
        draft = null;
        setDraftLine(null);
      } });
    draft.querySelector("h3").after(BCX.el("p", { class: "hint" },
      "Click the chart to pick the price."));
    setDraftLine(level);
  }

  const round = (value) => (Number.isFinite(value) ? Number(value.toFixed(places)) : "");

  function pickPrice(event) {
    const axis = (event.yAxis || []).find((item) => item.axis.options.id === "price-axis");
    if (!axis || view.compare.length) return;
    if (!draft) {
      alertForm(axis.value);
      return;
    }
    const last = Number(latest.price ?? ((Number(latest.bid) + Number(latest.ask)) / 2));
    draft.elements.threshold.value = round(axis.value);
    if (["above", "below"].includes(draft.elements.kind.value) && Number.isFinite(last)) {
      draft.elements.kind.value = axis.value < last ? "below" : "above";
    }
    setDraftLine(axis.value);
  }

  function setDraftLine(value) {
    if (!chart) return;
    const axis = chart.get("price-axis");
    axis.removePlotLine("rule-draft");
    if (value === null || !Number.isFinite(value)) return;
    axis.addPlotLine({ id: "rule-draft", value, color: "#2f6fde", width: 1, dashStyle: "Dash",
      zIndex: 6, label: { text: `new alert at ${BCX.fmt(value, places)}`, align: "right",
        x: -4, y: -4, style: { color: "#2f6fde", fontSize: "11px" } } });
  }

  function build(overview, initial, flags, min, max) {
    const css = getComputedStyle(document.documentElement);
    const color = (name) => css.getPropertyValue(name).trim();
    chart = Highcharts.stockChart(box, {
      chart: { animation: false, zooming: { type: "x" }, events: { click: pickPrice } },
      loading: { hideDuration: 0, showDuration: 0 },
      title: { text: "" },
      accessibility: { description: `Price, bid and ask of ${seriesId}` },
      legend: { enabled: true },
      rangeSelector: {
        buttons: [
          { type: "hour", count: 1, text: "1h" }, { type: "day", count: 1, text: "1d" },
          { type: "week", count: 1, text: "1w" }, { type: "month", count: 1, text: "1mo" },
          { type: "all", text: "all" }],
        buttonTheme: { width: 32 },
        inputEnabled: window.innerWidth > 640, selected: null,
      },
      navigator: { adaptToUpdatedData: false,
        series: { id: "navigator-series", data: [], type: "line",
          dataGrouping: { enabled: false } } },
      scrollbar: { liveRedraw: false },
      xAxis: { ordinal: false, minRange: 1000, events: { afterSetExtremes }, min, max },
      yAxis: [
        { id: "price-axis", labels: { align: "left" }, title: { text: symbol.split("-")[1] || "" },
          height: "84%", opposite: true, resize: { enabled: true } },
        { id: "volume-axis", labels: { align: "left" }, title: { text: "Volume" },
          top: "84%", height: 0, offset: 0, opposite: true, visible: false },
        { id: "spread-axis", labels: { align: "left", format: "{value} bp" },
          title: { text: "Spread" }, top: "86%", height: "14%", offset: 0, opposite: true,
          min: 0 }],
      tooltip: { split: false, shared: true, valueDecimals: places,
        xDateFormat: "%Y-%m-%d %H:%M:%S.%L" },
      // The page draws one point per bucket of PIXELS itself (Layer): no data grouping.
      plotOptions: { series: { animation: false, dataGrouping: { enabled: false },
        states: { inactive: { opacity: 1 }, hover: { enabled: false } },
        compare: view.compare.length ? "percent" : undefined, compareBase: 0 } },
      series: [
        // The band's edges are drawn too: at 60,000 a 0.01 spread fills no pixel, but its
        // bid and ask lines still show where the book is; the spread pane shows its width.
        { id: "band", type: "arearange", name: "Bid / ask", data: [],
          color: color("--band") || "#8fb3ef", fillOpacity: 0.35, lineWidth: 1, step: "left",
          compare: undefined,
          tooltip: { pointFormatter() {
            return `<span style="color:${this.color}">●</span> Bid <b>${BCX.fmt(this.low,
              places)}</b> Ask <b>${BCX.fmt(this.high, places)}</b><br>`;
          } } },
        { id: "price", type: "line", name: "Price", data: [],
          color: color("--fg") || "#1d2330", step: "left", lineWidth: 1.5,
          marker: { enabled: initial.price.length < 3, radius: 3 } },
        { id: "candles", type: "candlestick", name: "Candles", data: [],
          color: "#c0362c", upColor: "#12805c", lineColor: "#888", upLineColor: "#888" },
        { id: "volume", type: "column", name: "Volume", data: [], yAxis: "volume-axis",
          color: "#7f8ea3", visible: false, showInLegend: false, compare: undefined },
        { id: "spread", type: "area", name: "Spread (bp)", data: [], yAxis: "spread-axis",
          step: "left", color: "#9a5b00", fillOpacity: 0.25, lineWidth: 1, compare: undefined,
          showInLegend: false, tooltip: { valueDecimals: 2, valueSuffix: " bp" } },
        { id: "alerts", type: "flags", name: "Alerts", data: flags, onSeries: "price",
          shape: "squarepin", y: -40, allowOverlapX: true, style: { fontSize: "11px" } },
        ...view.compare.map((other, i) => ({ id: `compare-${other}`, type: "line",
          name: other, step: "left", data: [], color: COLORS[i % COLORS.length],
          lineWidth: 1.2 })),
      ],
      responsive: { rules: [{ condition: { maxWidth: 640 }, chartOptions: {
        rangeSelector: { inputEnabled: false }, legend: { enabled: false } } }] },
    });
    const navigator = chart.navigator?.xAxis;
    const whole = overview.length ? overview[overview.length - 1][0] - overview[0][0] : 0;
    layer("navigator-series").set(overview, whole, navigator?.len || chart.plotWidth);
    showRange(initial, (max ?? 0) - (min ?? 0));
    chart.redraw();
  }

  /** Whether the newest tick drawn so far (`newest`) is on show: live ticks then scroll the
      axis. Not the axis' dataMax, which a flag of a live alert can move ahead of the ticks. */
  function atRightEdge(newest) {
    const { max, dataMax } = chart.xAxis[0].getExtremes();
    const edge = newest ?? dataMax;
    return max === undefined || edge === undefined || max >= edge - 1;
  }

  function onTick(item) {
    if (item.series !== seriesId && !view.compare.includes(item.series)) return;
    queue.push(item);
    if (flushTimer === null) flushTimer = setTimeout(flush, FLUSH_MS);
  }

  function onTrade(item) {
    if (item.series !== seriesId) return;
    queue.push({ ...item, trade: true });
    if (flushTimer === null) flushTimer = setTimeout(flush, FLUSH_MS);
  }

  /** Draws the queued live items: one batch, one redraw. */
  function flush() {
    flushTimer = null;
    const items = queue;
    queue = [];
    if (!items.length) return;
    let newest = latest.time;
    const before = latest.time;
    const own = { price: [], band: [], nav: null };
    const others = new Map();
    for (const item of items) {
      if (item.series !== seriesId) {
        if (item.price !== undefined && shown && shown.mode === "raw") {
          if (!others.has(item.series)) others.set(item.series, []);
          others.get(item.series).push([item.time, Number(item.price)]);
        }
        continue;
      }
      if (item.trade) {
        foldTrade(item);
        continue;
      }
      for (const field of ["price", "bid", "ask"]) {
        if (item[field] !== undefined) latest[field] = item[field];
      }
      newest = Math.max(newest || 0, item.time);
      if (item.price !== undefined) {
        own.price.push([item.time, Number(item.price)]);
        own.nav = [item.time, Number(item.price)];
      }
      if ((item.bid !== undefined || item.ask !== undefined) && latest.bid !== null
          && latest.ask !== null) own.band.push([item.time, Number(latest.bid),
        Number(latest.ask)]);
      drawnTicks += 1;
    }
    latest.time = newest;
    showLast();
    if (!chart) return;
    const wasLive = atRightEdge(before);
    // The navigator spans the whole history: a few seconds behind costs it no pixel, and
    // redrawing it (and its axis) with every batch would.
    if (own.nav) navPending = own.nav;
    if (navPending && performance.now() - navDrawn >= NAVIGATOR_MS) {
      layer("navigator-series").append([navPending]);
      navPending = null;
      navDrawn = performance.now();
    }
    if (shown.mode === "raw") {
      layer("price").append(own.price);
      if (!view.compare.length) layer("band", "band").append(own.band);
      layer("spread").append(own.band.map(spreadBps));
      for (const [other, rows] of others) layer(`compare-${other}`).append(rows);
    } else {
      for (const row of own.price) foldPrice(row);
      if (own.band.length) foldBand(own.band[own.band.length - 1]);
    }
    if (wasLive && newest !== null) {
      const { min, max } = chart.xAxis[0].getExtremes();
      // Scrolled in steps with room ahead: most batches then leave the axis (and every
      // series drawn on it) alone and redraw only what changed.
      if (max !== undefined && newest > max) {
        const shift = newest - max + Math.round((max - min) * HEADROOM);
        chart.xAxis[0].setExtremes(min + shift, max + shift, false);
      }
    }
    chart.redraw(false);
    document.body.dataset.drawn = String(drawnTicks);
  }

  const bucketOf = (time) => Math.floor(time / (shown.interval * 1000)) * shown.interval * 1000;

  /** Candle mode: a live price moves the newest candle of its bucket or opens the next one;
      one older than the newest candle is left to the next fetch. */
  function foldPrice([time, p]) {
    const start = bucketOf(time);
    if (lastCandle !== null && start < lastCandle[0]) return;
    const same = lastCandle !== null && lastCandle[0] === start;
    lastCandle = same ? [start, lastCandle[1], Math.max(lastCandle[2], p),
      Math.min(lastCandle[3], p), p, lastCandle[5]] : [start, p, p, p, p, null];
    if (view.type === "candles") {
      putNewest(chart.get("candles"), lastCandle.slice(0, 5), same);
    } else {
      putNewest(chart.get("price"), [start, p], same);
    }
  }

  function foldBand([time, bid, ask]) {
    const start = bucketOf(time);
    if (lastBandTime !== null && start < lastBandTime) return;
    const same = lastBandTime === start;
    if (!view.compare.length) putNewest(chart.get("band"), [start, bid, ask], same);
    putNewest(chart.get("spread"), spreadBps([start, bid, ask]), same);
    lastBandTime = start;
  }

  /** A live trade adds its size to the volume of its candle. */
  function foldTrade(item) {
    const size = Number(item.size ?? item.amount);
    if (!shown || shown.mode !== "candles" || !Number.isFinite(size)) return;
    const start = bucketOf(item.time);
    const volume = chart.get("volume");
    const data = volume.options.data;
    const last = data.length ? data[data.length - 1] : null;
    if (last && last[0] > start) return;
    const same = last !== null && last[0] === start;
    putNewest(volume, [start, (same ? last[1] : 0) + size], same);
    if (!hasVolume) {
      hasVolume = true;
      layout();
    }
  }

  /** Appends `row`, first removing the series' newest point when `replace` (same bucket). */
  function putNewest(series, row, replace) {
    if (replace && series.options.data.length) {
      series.removePoint(series.options.data.length - 1, false, false);
    }
    series.addPoint(row, false, false, false);
  }

  function showLast() {
    places = Math.max(places, BCX.precision(latest.price, latest.bid, latest.ask));
    const head = document.getElementById("last");
    if (latest.price !== null) {
      head.textContent = `${BCX.fmt(latest.price, places)}  (bid ${BCX.fmt(latest.bid,
        places)} / ask ${BCX.fmt(latest.ask, places)})`;
    } else if (latest.bid !== null || latest.ask !== null) {
      // Quotes but no trades: the mid stands in for a price, and says so.
      const mid = latest.bid !== null && latest.ask !== null
        ? (Number(latest.bid) + Number(latest.ask)) / 2 : null;
      head.textContent = `mid ${BCX.fmt(mid, places + 1)}  (bid ${BCX.fmt(latest.bid,
        places)} / ask ${BCX.fmt(latest.ask, places)}; no trades yet)`;
    } else {
      head.textContent = "";
    }
  }

  function controls() {
    const type = document.getElementById("type");
    const interval = document.getElementById("interval");
    type.value = view.type;
    interval.value = view.interval;
    type.addEventListener("change", () => {
      view.type = type.value;
      changed();
    });
    interval.addEventListener("change", () => {
      view.interval = interval.value;
      changed();
    });
  }

  function changed() {
    saveUrl();
    if (chart) reload().catch((error) => console.warn("chart:", error.message));
  }

  async function fillCompare() {
    const select = document.getElementById("compare");
    const items = (await BCX.api("/series")).series;
    for (const item of items) {
      if (item.series !== seriesId) select.append(BCX.el("option", { value: item.series },
        item.series));
    }
    select.addEventListener("change", () => {
      if (select.value && !view.compare.includes(select.value)) {
        setCompare([...view.compare, select.value]);
      }
      select.value = "";
    });
    showCompared();
  }

  function showCompared() {
    const list = document.getElementById("compared");
    list.replaceChildren(...view.compare.map((other) => BCX.el("span", { class: "chip" },
      other, " ", (() => {
        const button = BCX.el("button", { type: "button", title: `stop comparing ${other}`,
          "aria-label": `remove ${other}` }, "×");
        button.addEventListener("click", () => setCompare(view.compare
          .filter((name) => name !== other)));
        return button;
      })())));
  }

  /** Compares the series with `others` in percent (none: the absolute price again). */
  function setCompare(others) {
    for (const old of view.compare) {
      chart.get(`compare-${old}`)?.remove(false);
      layers.delete(`compare-${old}`);
    }
    view.compare = others;
    chart.update({ plotOptions: { series: { compare: others.length ? "percent" : null } } },
      false);
    for (const id of ["band", "spread", "volume"]) {
      chart.get(id).update({ compare: null }, false);
    }
    others.forEach((other, i) => chart.addSeries({ id: `compare-${other}`, type: "line",
      name: other, step: "left", data: [], color: COLORS[i % COLORS.length],
      lineWidth: 1.2 }, false));
    chart.get("price-axis").update({ labels: { format: others.length ? "{value}%" : undefined },
      title: { text: others.length ? "%" : symbol.split("-")[1] || "" } }, false);
    showCompared();
    BCX.liveSeries([seriesId, ...others]);
    changed();
  }

  async function start() {
    controls();
    BCX.liveSeries([seriesId, ...view.compare]);
    BCX.live("tick", onTick);
    BCX.live("trade", onTrade);
    BCX.live("alert", (event) => {
      if (event.series !== seriesId || !chart) return;
      chart.get("alerts").addPoint(flag(event));
      thresholdLines().catch((error) => console.warn("chart:", error.message));
    });
    let found = null;
    try {
      found = await BCX.api(`${path(seriesId)}/latest`);
    } catch (error) {
      if (!(error instanceof BCX.ApiError)) throw error;
    }
    if (found) {
      for (const field of ["price", "bid", "ask", "time"]) {
        if (found[field] !== undefined && latest[field] === null) latest[field] = found[field];
      }
    }
    showLast();
    document.getElementById("empty").hidden = latest.time !== null;
    const alerts = (await BCX.api("/alerts", { limit: 500 })).alerts
      .filter((event) => event.series === seriesId)
      .sort((a, b) => a.time - b.time).map(flag);
    let overview = [];
    let initial = { mode: "raw", price: [], band: [], candles: [] };
    let min;
    let max;
    if (latest.time !== null) {
      first = await firstTime();
      const end = latest.time;
      [min, max] = rangeExtremes(end);
      const whole = { ...view };
      [overview, initial] = await Promise.all([
        navigatorLine(first, end, whole),
        fetchRange(seriesId, min, max, true)]);
    }
    build(overview, initial, alerts, min, max);
    if (view.compare.length) setCompare(view.compare);
    await fillCompare();
    await thresholdLines();
    document.getElementById("alert-here").addEventListener("click", () => alertForm(null));
    // The raw rows each series holds (drawn one per bucket): the tests read them.
    window.BCXChart = { rows: (id) => (layers.get(id)?.rows || []) };
    document.body.dataset.ready = "1";
  }

  /** The navigator's line over the whole history: raw when short, else hourly-ish closes. */
  async function navigatorLine(from, end) {
    if (end - from <= RAW_MAX_SPAN) return (await raw(seriesId, "price", from, end)).points;
    const interval = AUTO_INTERVALS.find((s) => (end - from) / (s * 1000) <= 1000) || 86400;
    const data = await BCX.api(`${path(seriesId)}/ohlc`, { field: "price", interval,
      start: from, end });
    return data.candles.map((c) => [c[0], Number(c[4])]);
  }

  start().catch((error) => {
    console.warn("chart:", error.message);
    const empty = document.getElementById("empty");
    empty.textContent = `Could not load the chart: ${error.message}`;
    empty.hidden = false;
  });
})();
