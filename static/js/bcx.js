/* BCX pages: what every page shares. The JSON API client, number and time formatting to the
   series' own precision in the viewer's time zone, and the one live (SSE) connection. */
"use strict";

const BCX = (() => {
  const API = "/api/v1.0";
  const tz = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  const staleAfter = Number(document.body.dataset.staleAfter || 60);

  class ApiError extends Error {}

  /** GET an API path; resolves to its JSON. `accept` lists extra statuses whose body is still
      an answer (health says 503 when something is down). */
  async function api(path, params = {}, accept = []) {
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(params)) {
      if (value !== undefined && value !== null && value !== "") query.set(name, value);
    }
    const url = API + path + (query.toString() ? "?" + query : "");
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    if (!response.ok && !accept.includes(response.status)) {
      let message = response.statusText;
      try { message = (await response.json()).error.message; } catch (_) { /* not JSON */ }
      throw new ApiError(`${url}: ${response.status} ${message}`);
    }
    return response.json();
  }

  const TOKEN_KEY = "bcx-token";

  /** The API token for writes: asked once per tab, kept in this tab's session storage (never
      in localStorage: closing the tab forgets it). Null when the user cancels. */
  function token(again = false) {
    if (again) sessionStorage.removeItem(TOKEN_KEY);
    let found = sessionStorage.getItem(TOKEN_KEY);
    if (!found) {
      found = (window.prompt("API token for rule changes ([web] api_token):") || "").trim();
      if (found) sessionStorage.setItem(TOKEN_KEY, found);
    }
    return found || null;
  }

  /** A write (POST/PATCH/DELETE) with the tab's token; a 401 asks for the token once more.
      Resolves to {ok, status, body}; body is the API's JSON ({error: {message, parameter}}
      on a refusal) or null. */
  async function write(method, path, body) {
    for (const again of [false, true]) {
      const bearer = token(again);
      if (!bearer) return { ok: false, status: 0, body: { error: { message: "no token given" } } };
      const response = await fetch(API + path, { method, headers: {
        Accept: "application/json", "Content-Type": "application/json",
        Authorization: `Bearer ${bearer}` },
      body: body === undefined ? undefined : JSON.stringify(body) });
      if (response.status === 401 && !again) continue;
      let answer = null;
      try { answer = await response.json(); } catch (_) { /* 204 */ }
      if (response.status === 401) sessionStorage.removeItem(TOKEN_KEY);
      return { ok: response.ok, status: response.status, body: answer };
    }
    return null;
  }

  /** Decimal places in an exchange's decimal string ("14.7550" -> 4). */
  function decimals(value) {
    if (value === undefined || value === null || value === "") return 0;
    const text = String(value);
    const exp = /e-(\d+)$/i.exec(text);
    if (exp) return Math.min(12, Number(exp[1]) + decimals(text.replace(/e.*$/i, "")));
    const dot = text.indexOf(".");
    return dot < 0 ? 0 : text.length - dot - 1;
  }

  /** The precision of a series: the most decimals any of its values shows. */
  function precision(...values) {
    return Math.max(0, ...values.map(decimals));
  }

  function fmt(value, places) {
    if (value === undefined || value === null || value === "") return "–";
    const number = Number(value);
    if (!Number.isFinite(number)) return String(value);
    return number.toLocaleString("en-US", {
      minimumFractionDigits: places, maximumFractionDigits: places });
  }

  const timeParts = new Intl.DateTimeFormat("en-CA", {
    timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit",
    minute: "2-digit", second: "2-digit", hourCycle: "h23" });

  /** Epoch ms -> "2021-04-17 16:43:30.244" in the viewer's time zone. */
  function fmtTime(ms) {
    if (ms === undefined || ms === null) return "–";
    const p = Object.fromEntries(timeParts.formatToParts(new Date(ms))
      .map((part) => [part.type, part.value]));
    const millis = String(((ms % 1000) + 1000) % 1000).padStart(3, "0");
    return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}.${millis}`;
  }

  function fmtAge(seconds) {
    if (seconds === undefined || seconds === null || !Number.isFinite(seconds)) return "–";
    const s = Math.max(0, seconds);
    if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min`;
    if (s < 86400) return `${(s / 3600).toFixed(1)} h`;
    return `${Math.floor(s / 86400)} d`;
  }

  function tzLabel() {
    const offset = -new Date().getTimezoneOffset();
    const sign = offset >= 0 ? "+" : "-";
    const hh = String(Math.floor(Math.abs(offset) / 60)).padStart(2, "0");
    const mm = String(Math.abs(offset) % 60).padStart(2, "0");
    return `${tz} (UTC${sign}${hh}:${mm})`;
  }

  /** Element helper: el("td", {class: "num"}, "text", child, ...). */
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children) {
      if (child === undefined || child === null) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function chartUrl(series) {
    const [exchange, symbol] = splitSeries(series);
    return `/chart/${encodeURIComponent(exchange)}/${encodeURIComponent(symbol)}`;
  }

  function splitSeries(series) {
    const at = series.indexOf(":");
    return [series.slice(0, at), series.slice(at + 1)];
  }

  let source = null;
  let streamSeries = null;  // only these series' ticks (the stream's `series` filter), or all
  const listeners = { tick: [], trade: [], alert: [] };

  function openStream() {
    const query = streamSeries ? `?series=${encodeURIComponent(streamSeries.join(","))}` : "";
    source = new EventSource(API + "/stream" + query);
    const dot = document.getElementById("live");
    source.addEventListener("open", () => dot && dot.classList.add("on"));
    source.addEventListener("error", () => {
      if (dot) dot.classList.remove("on");
      // A refused stream (503: the server is full) is not retried by EventSource itself.
      if (source.readyState === EventSource.CLOSED) setTimeout(openStream, 5000);
    });
    for (const kind of ["tick", "trade"]) {
      source.addEventListener(kind, (event) => {
        const batch = JSON.parse(event.data);
        for (const item of Array.isArray(batch) ? batch : [batch]) {
          for (const fn of listeners[kind]) fn(item);
        }
      });
    }
    source.addEventListener("alert", (event) => {
      const alert = JSON.parse(event.data);
      for (const fn of listeners.alert) fn(alert);
    });
  }

  /** Subscribe to the live stream: "tick" and "trade" get each item, "alert" each event. */
  function live(kind, callback) {
    listeners[kind].push(callback);
    if (source) return;
    openStream();
    // Closing before unload keeps the browser from reporting the aborted stream as an error.
    window.addEventListener("pagehide", () => source.close());
  }

  /** Narrow the stream to `series` (null: every series); reconnects when already open. */
  function liveSeries(series) {
    const next = series && series.length ? [...series].sort() : null;
    if (JSON.stringify(next) === JSON.stringify(streamSeries)) return;
    streamSeries = next;
    if (source) {
      source.close();
      openStream();
    }
  }

  // Dark mode follows the system setting unless the toggle chose one (kept in the browser).
  const darkQuery = window.matchMedia("(prefers-color-scheme: dark)");
  const themeChoice = () => localStorage.getItem("bcx-theme");
  const isDark = () => (themeChoice() ? themeChoice() === "dark" : darkQuery.matches);

  function applyTheme() {
    document.documentElement.dataset.theme = isDark() ? "dark" : "light";
    const toggle = document.getElementById("theme");
    if (toggle) {
      toggle.textContent = isDark() ? "☀" : "☾";
      toggle.title = isDark() ? "Light mode" : "Dark mode";
    }
    setupHighcharts();
  }

  function toggleTheme() {
    localStorage.setItem("bcx-theme", isDark() ? "light" : "dark");
    // Charts take their colours when built: rebuild by reloading (the URL keeps the view).
    window.location.reload();
  }

  function setupHighcharts() {
    if (!window.Highcharts) return;
    const dark = isDark();
    const fg = dark ? "#d7dce5" : "#1d2330";
    const muted = dark ? "#8b93a3" : "#667085";
    const line = dark ? "#2c3340" : "#e4e7ec";
    const bg = dark ? "#151922" : "#ffffff";
    Highcharts.setOptions({
      time: { timezone: tz },
      // 24-hour clock and day-month-year dates, whatever the page's language.
      lang: { locale: "en-GB", thousandsSep: "," },
      chart: { backgroundColor: bg, style: { color: fg } },
      title: { style: { color: fg } },
      legend: { itemStyle: { color: fg }, itemHoverStyle: { color: muted } },
      xAxis: { gridLineColor: line, lineColor: line, tickColor: line,
        labels: { style: { color: muted } } },
      yAxis: { gridLineColor: line, lineColor: line, tickColor: line,
        labels: { style: { color: muted } }, title: { style: { color: muted } } },
      tooltip: { backgroundColor: dark ? "#202634" : "#ffffff", style: { color: fg } },
      loading: { style: { backgroundColor: bg } },
      navigator: { maskFill: dark ? "rgba(120,150,210,0.18)" : "rgba(102,133,194,0.3)",
        outlineColor: line, xAxis: { gridLineColor: line, labels: { style: { color: muted } } } },
      scrollbar: { barBackgroundColor: line, trackBackgroundColor: bg, trackBorderColor: line,
        buttonBackgroundColor: line, buttonArrowColor: muted, barBorderColor: line },
      rangeSelector: {
        buttonTheme: { fill: dark ? "#202634" : "#f7f7f7", style: { color: fg },
          states: { hover: { fill: line }, select: { fill: dark ? "#34405a" : "#e6ebf5",
            style: { color: fg } } } },
        inputStyle: { color: fg, backgroundColor: bg }, labelStyle: { color: muted } },
    });
  }

  applyTheme();
  darkQuery.addEventListener("change", () => {
    if (!themeChoice()) window.location.reload();
  });
  document.addEventListener("DOMContentLoaded", () => {
    applyTheme();
    document.getElementById("theme")?.addEventListener("click", toggleTheme);
    const label = document.getElementById("tz");
    if (label) label.textContent = tzLabel();
    const stale = document.getElementById("stale-after");
    if (stale) stale.textContent = fmtAge(staleAfter);
  });

  return { api, write, token, ApiError, decimals, precision, fmt, fmtTime, fmtAge, tz, tzLabel, el,
    chartUrl, splitSeries, live, liveSeries, staleAfter, isDark };
})();
