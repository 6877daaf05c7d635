/* The status page: each component up/degraded/down with the reason, the tracker's per-exchange
   feed statistics and each series' staleness, polled from /api/v1.0/health (asked to answer
   200 even when unhealthy, so the browser logs no failed request every 5 s). */
"use strict";

(() => {
  const REFRESH_MS = 5000;
  // Tracker statistics shown first, in this order; any other field follows.
  const STAT_ORDER = ["connected", "feed_down", "url", "frames", "ticks", "parse_errors", "gaps",
    "reconnects", "silences", "venue_errors", "consecutive_failures", "last_frame_ms",
    "connected_since_ms", "started_ms", "last_error"];

  const badge = (ok, yes, no) => BCX.el("span", { class: `badge ${ok ? "up" : "down"}` },
    ok ? yes : no);

  function statValue(name, value) {
    if (value === null || value === undefined || value === "") return "–";
    if (name.endsWith("_ms")) return Number(value) ? BCX.fmtTime(Number(value)) : "–";
    if (name === "connected") return Number(value) ? "yes" : "no";
    if (name === "feed_down") return Number(value) ? "DOWN" : "no";
    return String(value);
  }

  // Every badge that is not green has its reason beside it.
  const reason = (text) => (text ? BCX.el("span", { class: "reason" }, ` ${text}`) : null);

  function components(data) {
    const names = Object.keys(data.components || {}).sort();
    return names.map((name) => {
      const c = data.components[name];
      const state = c.state || (c.up ? "up" : "down");
      return BCX.el("tr", { dataset: { component: name, state }, class: c.up ? "" : "stale" },
        BCX.el("td", {}, name),
        BCX.el("td", {}, BCX.el("span", { class: `badge ${state}` }, state), reason(c.reason)),
        BCX.el("td", { class: "num" }, c.age_s != null ? `${BCX.fmtAge(c.age_s)} ago` : "–"),
        BCX.el("td", {}, c.host || "–"), BCX.el("td", { class: "num" }, c.pid ?? "–"),
        BCX.el("td", { class: "wrap" }, Object.entries(c.info || {})
          .map(([key, value]) => `${key}=${value}`).join(" ")));
    });
  }

  /** Why an exchange's feed is not green, or "" when it is. */
  function feedReason(stats) {
    if (Number(stats.feed_down)) return `feed down: ${stats.last_error || "no frames"}`;
    if (!Number(stats.connected)) return `not connected${stats.last_error
      ? `: ${stats.last_error}` : ""}`;
    return "";
  }

  function exchanges(data) {
    const all = data.exchanges || {};
    return Object.keys(all).sort().map((name) => {
      const stats = { ...(all[name] || {}) };
      const down = Boolean(Number(stats.feed_down) || !Number(stats.connected));
      // An error the feed has recovered from (connected again, no failure since) is history,
      // not a problem: it is not shown.
      const resolved = !down && !Number(stats.consecutive_failures);
      if (resolved) delete stats.last_error;
      // Gaps of the subscribed series only; `*` counts frames of channels not ours.
      const perSymbol = (data.gaps || {})[name.split(":").pop()];
      let foreign = 0;
      if (perSymbol) {
        foreign = Number(perSymbol["*"] || 0);
        stats.gaps = Object.entries(perSymbol).filter(([symbol]) => symbol !== "*")
          .reduce((sum, [, count]) => sum + Number(count), 0);
      }
      const keys = [...STAT_ORDER.filter((key) => key in stats),
        ...Object.keys(stats).filter((key) => !STAT_ORDER.includes(key)).sort()];
      const list = BCX.el("dl", { class: "stats" });
      for (const key of keys) {
        let value = statValue(key, stats[key]);
        if (key === "gaps" && foreign) value += ` (+${foreign} on channels not subscribed)`;
        list.append(BCX.el("dt", {}, key.replace(/_ms$/, "").replaceAll("_", " ")),
          BCX.el("dd", { class: key === "last_error" ? "error" : "", dataset: { stat: key } },
            value));
      }
      return BCX.el("tr", { dataset: { exchange: name }, class: down ? "stale" : "" },
        BCX.el("td", {}, name, " ", keys.length ? badge(!down, "up", "down") : "no stats yet",
          down ? reason(feedReason(stats)) : null),
        BCX.el("td", { class: "stats-cell" }, list));
    });
  }

  function series(data) {
    return (data.series || []).map((item) => BCX.el("tr",
      { dataset: { series: item.series }, class: item.stale ? "stale" : "" },
      BCX.el("td", {}, BCX.el("a", { href: BCX.chartUrl(item.series) }, item.series)),
      BCX.el("td", { class: "num age" }, BCX.fmtAge(item.age_s)),
      BCX.el("td", {}, item.stale ? BCX.el("span", { class: "badge stale" }, "stale")
        : badge(true, "fresh", ""), item.stale ? reason(item.reason) : null)));
  }

  function fill(id, rows, empty) {
    const tbody = document.querySelector(`#${id} tbody`);
    const columns = document.querySelectorAll(`#${id} thead th`).length;
    tbody.replaceChildren(...(rows.length ? rows
      : [BCX.el("tr", {}, BCX.el("td", { colspan: columns, class: "hint" }, empty))]));
  }

  async function refresh() {
    const data = await BCX.api("/health", { always_200: "true" }, [503]);
    const overall = document.getElementById("overall");
    if (data.error) {
      overall.className = "badge down";
      overall.textContent = data.error.message;
      return;
    }
    overall.className = `badge ${data.healthy ? "up" : "down"}`;
    overall.textContent = data.healthy ? "healthy" : "unhealthy";
    overall.title = (data.reasons || []).join("\n");
    const why = document.getElementById("overall-reasons");
    why.replaceChildren(...(data.healthy ? [] : (data.reasons || [])
      .map((text) => BCX.el("li", {}, text))));
    why.hidden = data.healthy;
    fill("components-table", components(data), "No component has written a heartbeat.");
    fill("exchanges-table", exchanges(data), "No tracker statistics.");
    fill("series-table", series(data), "No series.");
    document.getElementById("refreshed").textContent = BCX.fmtTime(Date.now());
    document.body.dataset.ready = "1";
  }

  function loop() {
    refresh().catch((error) => {
      console.warn("status:", error.message);
      const overall = document.getElementById("overall");
      overall.className = "badge down";
      overall.textContent = "unreachable";
      const why = document.getElementById("overall-reasons");
      why.replaceChildren(BCX.el("li", {}, error.message));
      why.hidden = false;
    }).finally(() => setTimeout(loop, REFRESH_MS));
  }
  loop();
})();
