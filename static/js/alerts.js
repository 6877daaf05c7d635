/* "Firing now" on top (the rules whose state is firing, with acknowledge and silence), then
   recent trigger events, newest first, filterable by series and state; new ones arrive live.
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
      BCX.el("td", {}, `${BCXRules.marker(event.kind)} ${event.kind}`),
      BCX.el("td", { class: "num" }, event.value_text ?? event.value ?? "–"),
      BCX.el("td", { class: "num" }, event.threshold ?? "–"),
      BCX.el("td", { class: "wrap" }, event.message || ""));
  }

  const REFRESH_MS = 5000;
  const el = (...args) => BCX.el(...args);

  /** The newest firing event of a rule on a series (what acknowledge refers to). */
  const newestFiring = (rule) => events.find((event) => event.rule === rule.id
    && event.state === "firing");

  async function act(method, path, body) {
    const problem = document.getElementById("action-error");
    problem.hidden = true;
    const answer = await BCX.write(method, path, body);
    if (!answer.ok) {
      problem.textContent = (answer.body && answer.body.error && answer.body.error.message)
        || `HTTP ${answer.status}`;
      problem.hidden = false;
    }
    await firingNow();
  }

  function firingItem(rule) {
    const status = rule.status;
    const event = newestFiring(rule);
    const ack = el("button", { type: "button", dataset: { action: "ack" },
      disabled: event ? undefined : true,
      title: event ? "no repeat until it resolves" : "no delivered alert to acknowledge yet" },
    "Acknowledge");
    ack.addEventListener("click", () => act("POST", `/alerts/${encodeURIComponent(event.id)}/ack`));
    const silence = el("button", { type: "button", dataset: { action: "silence" } },
      "Silence 1 h");
    silence.addEventListener("click", () => act("POST",
      `/rules/${encodeURIComponent(rule.id)}/silence`, { for: "1h", comment: "from alerts page" }));
    return el("li", { dataset: { rule: rule.id } },
      el("b", {}, `${BCXRules.marker(rule.kind)} ${rule.name}`),
      rule.series ? el("a", { href: BCX.chartUrl(rule.series) }, rule.series) : "every exchange",
      el("span", {}, `since ${BCX.fmtTime(status.since)}`),
      el("span", { class: "num" }, `value ${status.value ?? "–"}`,
        rule.threshold !== null ? ` (threshold ${rule.threshold})` : ""),
      event && event.message ? el("span", { class: "hint" }, event.message) : null,
      ack, silence);
  }

  async function firingNow() {
    const firing = (await BCX.api("/rules")).rules
      .filter((rule) => rule.status && rule.status.state === "firing")
      .sort((a, b) => (b.status.since || 0) - (a.status.since || 0));
    const section = document.getElementById("firing-now");
    section.querySelector("ul").replaceChildren(...firing.map(firingItem));
    document.getElementById("firing-count").textContent = String(firing.length);
    section.hidden = firing.length === 0;
    document.getElementById("none-firing").hidden = firing.length > 0;
  }

  const refreshFiring = () => firingNow().catch((error) => console.warn("alerts:",
    error.message));

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
    BCX.live("alert", (event) => {
      add(event, true);
      refreshFiring();
    });
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
    await firingNow();
    setInterval(refreshFiring, REFRESH_MS);
    document.body.dataset.ready = "1";
  }

  start().catch((error) => {
    console.warn("alerts:", error.message);
    document.getElementById("empty").textContent = `Could not load alerts: ${error.message}`;
    document.getElementById("empty").hidden = false;
  });
})();
