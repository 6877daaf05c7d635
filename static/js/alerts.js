/* Recent trigger events, newest first, filterable by series and state; new ones arrive live.
   The filters live in the query string so a filtered view can be linked to. */
"use strict";

(() => {
  const tbody = document.querySelector("#alerts-table tbody");
  const seriesSelect = document.getElementById("f-series");
  const stateSelect = document.getElementById("f-state");
  const events = [];
  const seen = new Set();

  function row(event) {
    const state = BCX.el("span", { class: `badge ${event.state}` }, event.state);
    return BCX.el("tr", { dataset: { series: event.series, state: event.state } },
      BCX.el("td", { class: "time" }, BCX.fmtTime(event.time)),
      BCX.el("td", {}, BCX.el("a", { href: BCX.chartUrl(event.series) }, event.series)),
      BCX.el("td", { title: event.rule }, event.name || event.rule),
      BCX.el("td", {}, state, event.silenced ? " (silenced)" : ""),
      BCX.el("td", {}, event.kind),
      BCX.el("td", { class: "num" }, event.value_text ?? event.value ?? "–"),
      BCX.el("td", { class: "num" }, event.threshold ?? "–"),
      BCX.el("td", { class: "wrap" }, event.message || ""));
  }

  function addSeriesOption(series) {
    if ([...seriesSelect.options].some((option) => option.value === series)) return;
    seriesSelect.append(BCX.el("option", { value: series }, series));
  }

  function render() {
    const series = seriesSelect.value;
    const state = stateSelect.value;
    const shown = events.filter((event) => (!series || event.series === series)
      && (!state || event.state === state));
    tbody.replaceChildren(...shown.map(row));
    document.getElementById("count").textContent = `${shown.length} of ${events.length} events`;
    document.getElementById("empty").hidden = shown.length > 0;
  }

  function add(event, live) {
    if (seen.has(event.id)) return;
    seen.add(event.id);
    events.push(event);
    events.sort((a, b) => b.time - a.time);
    addSeriesOption(event.series);
    if (live) render();
  }

  function syncQuery() {
    const query = new URLSearchParams();
    if (seriesSelect.value) query.set("series", seriesSelect.value);
    if (stateSelect.value) query.set("state", stateSelect.value);
    history.replaceState(null, "", query.toString() ? `?${query}` : location.pathname);
    render();
  }

  async function start() {
    BCX.live("alert", (event) => add(event, true));
    const wanted = new URLSearchParams(location.search);
    const [series, found] = await Promise.all([BCX.api("/series"),
      BCX.api("/alerts", { limit: 1000 })]);
    for (const item of series.series) addSeriesOption(item.series);
    for (const event of found.alerts) add(event, false);
    if (wanted.get("series")) {
      addSeriesOption(wanted.get("series"));
      seriesSelect.value = wanted.get("series");
    }
    stateSelect.value = wanted.get("state") || "";
    seriesSelect.addEventListener("change", syncQuery);
    stateSelect.addEventListener("change", syncQuery);
    render();
    document.body.dataset.ready = "1";
  }

  start().catch((error) => {
    console.warn("alerts:", error.message);
    document.getElementById("empty").textContent = `Could not load alerts: ${error.message}`;
    document.getElementById("empty").hidden = false;
  });
})();
