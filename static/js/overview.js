/* The overview: one row per series with its latest values, age and a live sparkline. */
"use strict";

(() => {
  const SPARK_SPAN_MS = 3600 * 1000;
  const SPARK_MAX_POINTS = 600;
  const tbody = document.querySelector("#series-table tbody");
  const rows = new Map();  // series -> {tr, cells, state, spark}
  let started = false;

  function sparkline(container, points, places) {
    return Highcharts.chart(container, {
      chart: { backgroundColor: null, borderWidth: 0, margin: [2, 0, 2, 0], animation: false,
        style: { overflow: "visible" }, skipClone: true },
      title: { text: "" }, credits: { enabled: false }, legend: { enabled: false },
      accessibility: { enabled: false }, exporting: { enabled: false },
      xAxis: { type: "datetime", visible: false },
      yAxis: { visible: false, startOnTick: false, endOnTick: false },
      tooltip: { outside: true, hideDelay: 0, valueDecimals: places, xDateFormat: "%H:%M:%S",
        pointFormat: "<b>{point.y}</b>", headerFormat: "{point.key}<br>" },
      plotOptions: { series: { animation: false, lineWidth: 1.2, shadow: false,
        states: { hover: { lineWidth: 1.2 } }, marker: { enabled: false, radius: 2 } } },
      series: [{ type: "line", name: "price", data: points, color: "#2f6fde", step: "left",
        marker: { enabled: points.length < 2 } }],
    });
  }

  function addRow(item) {
    const cells = {
      series: BCX.el("td", {}, BCX.el("a", { href: BCX.chartUrl(item.series) }, item.series)),
      price: BCX.el("td", { class: "num price" }),
      bid: BCX.el("td", { class: "num bid" }),
      ask: BCX.el("td", { class: "num ask" }),
      spread: BCX.el("td", { class: "num spread" }),
      age: BCX.el("td", { class: "num age" }),
      spark: BCX.el("td", { class: "spark" }),
    };
    const holder = BCX.el("div", { class: "sparkline" });
    cells.spark.append(holder);
    const tr = BCX.el("tr", { dataset: { series: item.series } }, ...Object.values(cells));
    // Keep rows in series order, as the API lists them.
    const after = [...rows.keys()].sort().find((name) => name > item.series);
    tbody.insertBefore(tr, after ? rows.get(after).tr : null);
    const row = { tr, cells, holder, spark: null, state: { series: item.series } };
    rows.set(item.series, row);
    document.getElementById("empty").hidden = true;
    return row;
  }

  function render(row) {
    const s = row.state;
    const places = BCX.precision(s.price, s.bid, s.ask);
    row.places = places;
    row.cells.price.textContent = BCX.fmt(s.price, places);
    row.cells.bid.textContent = BCX.fmt(s.bid, places);
    row.cells.ask.textContent = BCX.fmt(s.ask, places);
    const spread = (s.bid !== undefined && s.ask !== undefined && s.bid !== null
      && s.ask !== null) ? Number(s.ask) - Number(s.bid) : null;
    row.cells.spread.textContent = spread === null ? "–" : BCX.fmt(spread, places);
    renderAge(row);
  }

  function renderAge(row) {
    const age = row.state.time ? (Date.now() - row.state.time) / 1000 : null;
    row.cells.age.textContent = BCX.fmtAge(age);
    row.cells.age.title = row.state.time ? BCX.fmtTime(row.state.time) : "";
    const stale = age === null || age > BCX.staleAfter;
    row.tr.classList.toggle("stale", stale);
    if (stale) row.cells.age.title += " (stale)";
  }

  async function loadSparkline(row) {
    const [exchange, symbol] = BCX.splitSeries(row.state.series);
    const end = row.state.time;
    let points = [];
    if (end) {
      const data = await BCX.api(`/series/${exchange}/${symbol}/history`, {
        field: "price", start: end - SPARK_SPAN_MS, end, limit: SPARK_MAX_POINTS,
        order: "desc" });
      points = data.points.reverse().map(([ms, value]) => [ms, Number(value)]);
    }
    row.spark = sparkline(row.holder, points, row.places || 0);
  }

  function onTick(item) {
    let row = rows.get(item.series);
    const fresh = !row;
    if (fresh) row = addRow(item);
    const s = row.state;
    for (const field of ["price", "bid", "ask"]) {
      if (item[field] !== undefined) s[field] = item[field];
    }
    s.time = Math.max(s.time || 0, item.time);
    render(row);
    if (fresh && started) loadSparkline(row).catch((error) => console.warn(error.message));
    if (row.spark && item.price !== undefined) {
      const series = row.spark.series[0];
      series.addPoint([item.time, Number(item.price)], true,
        series.points.length >= SPARK_MAX_POINTS, false);
    }
  }

  async function start() {
    BCX.live("tick", onTick);
    const items = (await BCX.api("/series")).series;
    document.getElementById("empty").hidden = items.length > 0;
    for (const item of items) {
      const row = rows.get(item.series) || addRow(item);
      for (const field of ["price", "bid", "ask", "time"]) {
        if (item[field] !== undefined && item[field] !== null
            && !(field === "time" && row.state.time > item.time)) row.state[field] = item[field];
      }
      render(row);
    }
    await Promise.all([...rows.values()].filter((row) => !row.spark).map(loadSparkline));
    started = true;
    document.body.dataset.ready = "1";
    setInterval(() => rows.forEach(renderAge), 1000);
  }

  start().catch((error) => {
    console.warn("overview:", error.message);
    document.getElementById("empty").textContent = `Could not load the series: ${error.message}`;
    document.getElementById("empty").hidden = false;
  });
})();
