/* The chart page: Highcharts Stock with the price line, the bid/ask band, candles for long
   ranges, a navigator over the whole history, live ticks, a compared series and alert flags.
   Each range is fetched from the API when the user selects it (afterSetExtremes). */
"use strict";

(() => {
  const HOUR = 3600 * 1000;
  const DAY = 24 * HOUR;
  const RAW_MAX_SPAN = DAY;          // longer ranges are drawn from candles
  const RAW_LIMIT = 5000;            // points of one field fetched for one range
  const TARGET_CANDLES = 500;
  const INTERVALS = [60, 300, 900, 3600, 4 * 3600, 86400, 7 * 86400];  // seconds
  const box = document.getElementById("chart");
  const exchange = box.dataset.exchange;
  const symbol = box.dataset.symbol;
  const seriesId = `${exchange}:${symbol}`;
  const latest = { price: null, bid: null, ask: null, time: null };
  let places = 2;
  let chart = null;
  let mode = "raw";
  let compared = null;   // series id shown on the second axis
  let loading = 0;       // drops answers that a newer range request has superseded
  let candleWidth = null;  // ms, while candles are shown: live ticks fold into their bucket
  let lastCandle = null;   // [start, open, high, low, close] of the newest candle drawn
  let lastBandTime = null; // time of the newest band point drawn

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

  function intervalLabel(seconds) {
    const units = [[7 * 86400, "w"], [86400, "d"], [3600, "h"], [60, "min"], [1, "s"]];
    const [size, name] = units.find(([unit]) => seconds % unit === 0);
    return `${seconds / size} ${name}`;
  }

  function intervalFor(span) {
    return INTERVALS.find((s) => span / (s * 1000) <= TARGET_CANDLES)
      || INTERVALS[INTERVALS.length - 1];
  }

  /** One range of one series: raw points for short spans, candles for long ones. */
  async function fetchRange(series, min, max, withBand) {
    const span = max - min;
    const base = path(series);
    if (span <= RAW_MAX_SPAN) {
      // The newest points of the range when it holds more; drawn oldest first.
      const get = (field) => BCX.api(`${base}/history`, { field, start: min, end: max,
        limit: RAW_LIMIT, order: "desc" }).then((data) => ({ ...data,
        points: data.points.reverse() }));
      const none = { points: [] };
      const [price, bid, ask] = await Promise.all([get("price"),
        withBand ? get("bid") : none, withBand ? get("ask") : none]);
      return { mode: "raw", price: numeric(price.points), truncated: price.truncated,
        band: band(bid.points, ask.points), candles: [] };
    }
    const interval = intervalFor(span);
    const get = (field) => BCX.api(`${base}/ohlc`, { field, interval, start: min, end: max })
      .then((data) => data.candles);
    const [price, bid, ask] = await Promise.all([get("price"),
      withBand ? get("bid") : [], withBand ? get("ask") : []]);
    const closes = (candles) => candles.map((c) => [c[0], c[4]]);
    return { mode: "candles", interval, price: numeric(closes(price)),
      band: band(closes(bid), closes(ask)),
      candles: price.map((c) => [c[0], ...c.slice(1, 5).map(Number)]) };
  }

  function showRange(range) {
    mode = range.mode;
    candleWidth = range.mode === "candles" ? range.interval * 1000 : null;
    lastCandle = range.candles.length ? [...range.candles[range.candles.length - 1]] : null;
    lastBandTime = range.band.length ? range.band[range.band.length - 1][0] : null;
    chart.get("price").setData(range.mode === "raw" ? range.price : [], false, false, false);
    chart.get("candles").setData(range.candles, false, false, false);
    chart.get("band").setData(range.band, false, false, false);
    document.getElementById("mode").textContent = range.mode === "raw"
      ? `Raw ticks: ${range.price.length} price${range.price.length === 1 ? "" : "s"}${
        range.truncated
        ? ", the latest of the range (zoom in for the rest)" : ""}.`
      : `Candles of ${intervalLabel(range.interval)} (long range); band = bid/ask closes.`;
  }

  async function loadExtremes(min, max) {
    const token = ++loading;
    chart.showLoading("Loading…");
    try {
      const [own, other] = await Promise.all([fetchRange(seriesId, min, max, true),
        compared ? fetchRange(compared, min, max, false) : null]);
      if (token !== loading) return;
      showRange(own);
      if (other && chart.get("compare")) chart.get("compare").setData(other.price, false);
      chart.redraw();
    } finally {
      if (token === loading) chart.hideLoading();
    }
  }

  function afterSetExtremes(event) {
    // Only ranges the user picked are fetched; programmatic moves (live scrolling) are not.
    if (!event.trigger || event.min === undefined) return;
    loadExtremes(Math.round(event.min), Math.round(event.max))
      .catch((error) => console.warn("chart:", error.message));
  }

  /** When the series' stored history begins (the navigator spans from there). */
  async function firstTime() {
    const stats = await BCX.api(`${path(seriesId)}/stats`,
      { field: "price", start: 0, end: latest.time });
    return stats.first_time ?? latest.time;
  }

  function flag(event) {
    const firing = event.state === "firing";
    return { x: event.time, title: firing ? "▲" : "✓", id: event.id,
      text: `<b>${event.rule}</b> ${event.state}<br>${event.message || ""}`,
      color: firing ? "#c0362c" : "#12805c", fillColor: firing ? "#fde8e6" : "#dcfae6" };
  }

  function build(overview, initial, flags, min) {
    chart = Highcharts.stockChart(box, {
      chart: { animation: false, zooming: { type: "x" } },
      loading: { hideDuration: 0, showDuration: 0 },
      title: { text: "" },
      accessibility: { description: `Price, bid and ask of ${seriesId}` },
      legend: { enabled: true },
      rangeSelector: {
        buttons: [
          { type: "hour", count: 1, text: "1h" }, { type: "day", count: 1, text: "1d" },
          { type: "week", count: 1, text: "1w" }, { type: "month", count: 1, text: "1m" },
          { type: "all", text: "All" }],
        inputEnabled: window.innerWidth > 640, selected: null,
      },
      navigator: { adaptToUpdatedData: false,
        series: { id: "navigator-series", data: overview, type: "line",
          dataGrouping: { enabled: true } } },
      scrollbar: { liveRedraw: false },
      xAxis: { ordinal: false, minRange: 1000, events: { afterSetExtremes },
        min, max: latest.time || undefined },
      yAxis: [
        { labels: { align: "left" }, title: { text: symbol.split("-")[1] || "" },
          height: "100%", opposite: true },
        { labels: { align: "right", x: -4 }, title: { text: "" }, opposite: false,
          visible: false }],
      tooltip: { split: false, shared: true, valueDecimals: places,
        xDateFormat: "%Y-%m-%d %H:%M:%S.%L" },
      plotOptions: { series: { animation: false, dataGrouping: { enabled: false },
        states: { inactive: { opacity: 1 } } } },
      series: [
        { id: "band", type: "arearange", name: "Bid / ask", data: initial.band,
          color: "#8fb3ef", fillOpacity: 0.3, lineWidth: 0, step: "left",
          tooltip: { pointFormatter() {
            return `<span style="color:${this.color}">●</span> Bid <b>${BCX.fmt(this.low,
              places)}</b> Ask <b>${BCX.fmt(this.high, places)}</b><br>`;
          } } },
        { id: "price", type: "line", name: "Price", data: initial.price, color: "#1d2330",
          step: "left", lineWidth: 1.5,
          marker: { enabled: initial.price.length < 3, radius: 3 } },
        { id: "candles", type: "candlestick", name: "Candles", data: initial.candles,
          color: "#c0362c", upColor: "#12805c", lineColor: "#555", upLineColor: "#555",
          showInLegend: false },
        { id: "alerts", type: "flags", name: "Alerts", data: flags, onSeries: "price",
          shape: "squarepin", width: 16, y: -40, allowOverlapX: true },
      ],
      responsive: { rules: [{ condition: { maxWidth: 640 }, chartOptions: {
        rangeSelector: { inputEnabled: false }, legend: { enabled: false } } }] },
    });
    showRange(initial);
    chart.redraw();
  }

  function atRightEdge() {
    const axis = chart.xAxis[0];
    const { max, dataMax } = axis.getExtremes();
    return max === undefined || dataMax === undefined || max >= dataMax - 1;
  }

  function onTick(item) {
    if (item.series === compared && chart && chart.get("compare") && mode === "raw"
        && item.price !== undefined) {
      chart.get("compare").addPoint([item.time, Number(item.price)], false);
      chart.redraw();
    }
    if (item.series !== seriesId) return;
    const wasLive = !chart || atRightEdge();
    for (const field of ["price", "bid", "ask"]) {
      if (item[field] !== undefined) latest[field] = item[field];
    }
    latest.time = Math.max(latest.time || 0, item.time);
    showLast();
    if (!chart) return;
    if (item.price !== undefined) {
      chart.get("navigator-series")?.addPoint([item.time, Number(item.price)], false);
      if (mode === "raw") chart.get("price").addPoint([item.time, Number(item.price)], false);
    }
    if (mode === "raw" && (item.bid !== undefined || item.ask !== undefined)
        && latest.bid !== null && latest.ask !== null) {
      chart.get("band").addPoint([item.time, Number(latest.bid), Number(latest.ask)], false);
    }
    if (mode === "candles") foldIntoCandles(item);
    if (wasLive) {
      const { min, max } = chart.xAxis[0].getExtremes();
      if (max !== undefined && item.time > max) {
        chart.xAxis[0].setExtremes(min + (item.time - max), item.time, false);
      }
    }
    chart.redraw();
  }

  /** Candle mode: a live tick moves the newest candle (and band point) of its bucket, or
      opens the next one; a tick older than the newest candle is left to the next fetch. */
  function foldIntoCandles(item) {
    const start = Math.floor(item.time / candleWidth) * candleWidth;
    if (item.price !== undefined && (lastCandle === null || start >= lastCandle[0])) {
      const p = Number(item.price);
      const same = lastCandle !== null && lastCandle[0] === start;
      lastCandle = same ? [start, lastCandle[1], Math.max(lastCandle[2], p),
        Math.min(lastCandle[3], p), p] : [start, p, p, p, p];
      putNewest(chart.get("candles"), [...lastCandle], same);
    }
    if ((item.bid !== undefined || item.ask !== undefined) && latest.bid !== null
        && latest.ask !== null && (lastBandTime === null || start >= lastBandTime)) {
      putNewest(chart.get("band"), [start, Number(latest.bid), Number(latest.ask)],
        lastBandTime === start);
      lastBandTime = start;
    }
  }

  /** Appends `row`, first removing the series' newest point when `replace` (same bucket). */
  function putNewest(series, row, replace) {
    if (replace) series.removePoint(series.options.data.length - 1, false);
    series.addPoint(row, false);
  }

  function showLast() {
    places = Math.max(places, BCX.precision(latest.price, latest.bid, latest.ask));
    document.getElementById("last").textContent = latest.price === null ? ""
      : `${BCX.fmt(latest.price, places)}  (bid ${BCX.fmt(latest.bid, places)} / ask ${
        BCX.fmt(latest.ask, places)})`;
  }

  async function fillCompare() {
    const select = document.getElementById("compare");
    const items = (await BCX.api("/series")).series;
    for (const item of items) {
      if (item.series !== seriesId) select.append(BCX.el("option", { value: item.series },
        item.series));
    }
    select.addEventListener("change", () => compare(select.value)
      .catch((error) => console.warn("compare:", error.message)));
  }

  async function compare(other) {
    chart.get("compare")?.remove(false);
    compared = other || null;
    chart.yAxis[1].update({ visible: Boolean(compared), title: { text: compared || "" } }, false);
    if (compared) {
      const { min, max } = chart.xAxis[0].getExtremes();
      const range = await fetchRange(compared, Math.round(min), Math.round(max), false);
      chart.addSeries({ id: "compare", type: "line", name: compared, yAxis: 1, step: "left",
        data: range.price, color: "#e07b00", lineWidth: 1.2 }, false);
    }
    chart.redraw();
  }

  async function start() {
    BCX.live("tick", onTick);
    BCX.live("alert", (event) => {
      if (event.series !== seriesId || !chart) return;
      chart.get("alerts").addPoint(flag(event));
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
    if (latest.time !== null) {
      const first = await firstTime();
      const end = latest.time;
      min = Math.max(first, end - HOUR);
      [overview, initial] = await Promise.all([
        fetchRange(seriesId, first, end, false).then((range) => range.price),
        fetchRange(seriesId, min, end, true)]);
    }
    build(overview, initial, alerts, min);
    await fillCompare();
    document.body.dataset.ready = "1";
  }

  start().catch((error) => {
    console.warn("chart:", error.message);
    const empty = document.getElementById("empty");
    empty.textContent = `Could not load the chart: ${error.message}`;
    empty.hidden = false;
  });
})();
