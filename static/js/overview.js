/* The overview: one row per series with its latest values, 24 h change, age and a live
   sparkline; columns sort on a click, a search box filters, starred series (kept in the
   browser) come first. Live ticks update the rows in batches, a few times a second. */
"use strict";

(() => {
  const SPARK_SPAN_MS = 3600 * 1000;
  const SPARK_MAX_POINTS = 600;
  const DAY_MS = 86400 * 1000;
  const FLUSH_MS = 500;
  const FAVOURITES = "bcx-favourites";
  const tbody = document.querySelector("#series-table tbody");
  const search = document.getElementById("search");
  const rows = new Map();  // series -> {tr, cells, state, spark}
  const favourites = new Set(JSON.parse(localStorage.getItem(FAVOURITES) || "[]"));
  const params = new URLSearchParams(window.location.search);
  const sort = { key: params.get("sort") || "series", dir: params.get("dir") === "desc" ? -1 : 1 };
  let started = false;
  let queue = [];
  let flushTimer = null;

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

  function saveFavourites() {
    localStorage.setItem(FAVOURITES, JSON.stringify([...favourites].sort()));
  }

  function addRow(item) {
    const star = BCX.el("button", { type: "button", class: "fav", title: "Star: list first",
      "aria-label": `star ${item.series}` }, "☆");
    const cells = {
      series: BCX.el("td", { class: "series" }, star, " ",
        BCX.el("a", { href: BCX.chartUrl(item.series) }, item.series)),
      price: BCX.el("td", { class: "num price" }),
      change: BCX.el("td", { class: "num change" }),
      bid: BCX.el("td", { class: "num bid" }),
      ask: BCX.el("td", { class: "num ask" }),
      spread: BCX.el("td", { class: "num spread" }),
      age: BCX.el("td", { class: "num age" }),
      spark: BCX.el("td", { class: "spark" }),
    };
    const holder = BCX.el("div", { class: "sparkline" });
    cells.spark.append(holder);
    const tr = BCX.el("tr", { dataset: { series: item.series } }, ...Object.values(cells));
    const row = { tr, cells, holder, star, spark: null, state: { series: item.series },
      dayOpen: null };
    star.addEventListener("click", () => {
      if (favourites.has(item.series)) favourites.delete(item.series);
      else favourites.add(item.series);
      saveFavourites();
      renderStar(row);
      order();
    });
    renderStar(row);
    rows.set(item.series, row);
    tbody.append(tr);
    document.getElementById("empty").hidden = true;
    return row;
  }

  function renderStar(row) {
    const on = favourites.has(row.state.series);
    row.star.textContent = on ? "★" : "☆";
    row.star.classList.toggle("on", on);
    row.tr.classList.toggle("favourite", on);
  }

  const change = (row) => (row.dayOpen && row.state.price !== undefined
    && row.state.price !== null ? (Number(row.state.price) / row.dayOpen - 1) * 100 : null);

  function value(row, key) {
    const s = row.state;
    if (key === "series") return s.series;
    if (key === "change") return change(row);
    if (key === "age") return s.time ? -s.time : null;
    if (key === "spread") {
      return s.bid != null && s.ask != null ? Number(s.ask) - Number(s.bid) : null;
    }
    return s[key] != null ? Number(s[key]) : null;
  }

  /** Starred rows first, then by the chosen column; empty values last either way. */
  function order() {
    const sorted = [...rows.values()].sort((a, b) => {
      const fav = favourites.has(b.state.series) - favourites.has(a.state.series);
      if (fav) return fav;
      const x = value(a, sort.key);
      const y = value(b, sort.key);
      if (x === y) return a.state.series < b.state.series ? -1 : 1;
      if (x === null) return 1;
      if (y === null) return -1;
      return (x < y ? -1 : 1) * sort.dir;
    });
    sorted.forEach((row, i) => {
      if (tbody.children[i] !== row.tr) tbody.insertBefore(row.tr, tbody.children[i] || null);
    });
    for (const th of document.querySelectorAll("#series-table th[data-sort]")) {
      th.setAttribute("aria-sort", th.dataset.sort !== sort.key ? "none"
        : sort.dir > 0 ? "ascending" : "descending");
    }
  }

  function filter() {
    const words = search.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    for (const row of rows.values()) {
      const hit = words.every((word) => row.state.series.toLowerCase().includes(word));
      row.tr.hidden = !hit;
      shown += hit;
    }
    document.getElementById("no-match").hidden = shown > 0 || rows.size === 0;
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
    const pct = change(row);
    row.cells.change.textContent = pct === null ? "–"
      : `${pct > 0 ? "+" : ""}${pct.toFixed(2)} %`;
    row.cells.change.classList.toggle("pos", pct !== null && pct > 0);
    row.cells.change.classList.toggle("neg", pct !== null && pct < 0);
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
      const base = `/series/${exchange}/${symbol}/history`;
      // The last hour for the sparkline; the first price of the last 24 h for the change.
      const [hour, day] = await Promise.all([
        BCX.api(base, { field: "price", start: end - SPARK_SPAN_MS, end,
          limit: SPARK_MAX_POINTS, order: "desc" }),
        BCX.api(base, { field: "price", start: end - DAY_MS, end, limit: 1 })]);
      points = hour.points.reverse().map(([ms, price]) => [ms, Number(price)]);
      row.dayOpen = day.points.length ? Number(day.points[0][1]) || null : null;
      render(row);
    }
    row.spark = sparkline(row.holder, points, row.places || 0);
  }

  function onTick(item) {
    queue.push(item);
    if (flushTimer === null) flushTimer = setTimeout(flush, FLUSH_MS);
  }

  function flush() {
    flushTimer = null;
    const items = queue;
    queue = [];
    const touched = new Map();  // row -> newest price point of the batch
    for (const item of items) {
      let row = rows.get(item.series);
      const fresh = !row;
      if (fresh) row = addRow(item);
      const s = row.state;
      for (const field of ["price", "bid", "ask"]) {
        if (item[field] !== undefined) s[field] = item[field];
      }
      s.time = Math.max(s.time || 0, item.time);
      if (fresh && started) {
        loadSparkline(row).catch((error) => console.warn(error.message));
        filter();
      }
      if (!touched.has(row)) touched.set(row, null);
      if (item.price !== undefined) touched.set(row, [item.time, Number(item.price)]);
    }
    for (const [row, point] of touched) {
      render(row);
      if (row.spark && point) {
        const series = row.spark.series[0];
        series.addPoint(point, true, series.points.length >= SPARK_MAX_POINTS, false);
      }
    }
    if (sort.key !== "series" || touched.size) order();
  }

  function controls() {
    for (const th of document.querySelectorAll("#series-table th[data-sort]")) {
      th.classList.add("sortable");
      th.tabIndex = 0;
      const pick = () => {
        sort.dir = sort.key === th.dataset.sort ? -sort.dir : 1;
        sort.key = th.dataset.sort;
        const next = new URL(window.location.href);
        next.searchParams.set("sort", sort.key);
        next.searchParams.set("dir", sort.dir > 0 ? "asc" : "desc");
        window.history.replaceState(null, "", next);
        order();
      };
      th.addEventListener("click", pick);
      th.addEventListener("keydown", (event) => event.key === "Enter" && pick());
    }
    search.value = params.get("q") || "";
    search.addEventListener("input", () => {
      const next = new URL(window.location.href);
      if (search.value) next.searchParams.set("q", search.value);
      else next.searchParams.delete("q");
      window.history.replaceState(null, "", next);
      filter();
    });
  }

  async function start() {
    controls();
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
    order();
    filter();
    await Promise.all([...rows.values()].filter((row) => !row.spark).map(loadSparkline));
    order();
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
