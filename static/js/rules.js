/* The rules page: every rule with what it is doing now (GET /rules' status), and the changes a
   person makes to one: edit, enable/disable, silence (or lift it) and delete. Refreshed every
   REFRESH_MS and at each live alert. Rules of bcx.conf are read-only: only silenced. */
"use strict";

(() => {
  const REFRESH_MS = 5000;
  const SILENCES = [["15m", "15 min"], ["1h", "1 hour"], ["4h", "4 hours"], ["1d", "1 day"],
    ["1w", "1 week"]];
  const tbody = document.querySelector("#rules-table tbody");
  const box = document.getElementById("rule-form-box");
  const actionError = document.getElementById("action-error");
  const el = (...args) => BCX.el(...args);
  let rules = [];
  let seriesList = [];

  function describe(rule) {
    if (rule.threshold === null || rule.threshold === undefined) return "–";
    const unit = { change_pct: " %", stale: " s", spread: rule.spread_mode === "pct" ? " %" : "" };
    return `${rule.threshold}${unit[rule.kind] || ""}`;
  }

  function stateCell(rule) {
    const status = rule.status || { state: "no_data" };
    const cell = el("td", { class: "state" }, el("span", { class: `badge ${status.state}` },
      status.state.replace("_", " ")));
    if (!rule.enabled) cell.append(" ", el("span", { class: "badge" }, "disabled"));
    if (status.state === "silenced") {
      cell.append(el("div", { class: "hint" }, `until ${BCX.fmtTime(status.silenced_until)}`,
        status.silence_comment ? `: ${status.silence_comment}` : ""));
    }
    return cell;
  }

  function button(label, action, rule, attrs = {}) {
    const node = el("button", { type: "button", dataset: { action }, ...attrs }, label);
    node.addEventListener("click", () => act(action, rule));
    return node;
  }

  function row(rule) {
    const readOnly = rule.source === "config";
    const status = rule.status || {};
    const buttons = el("div", { class: "buttons" });
    const actions = el("td", { class: "actions" }, buttons);
    if (!readOnly) {
      buttons.append(button("Edit", "edit", rule),
        button(rule.enabled ? "Disable" : "Enable", rule.enabled ? "disable" : "enable", rule));
    }
    buttons.append(status.state === "silenced" ? button("Unsilence", "unsilence", rule)
      : button("Silence…", "silence", rule));
    if (!readOnly) buttons.append(button("Delete", "delete", rule, { class: "danger" }));
    const series = rule.series ? el("a", { href: BCX.chartUrl(rule.series) }, rule.series)
      : "every exchange";
    return el("tr", { dataset: { rule: rule.id, name: rule.name, state: status.state },
      class: rule.enabled ? "" : "disabled" },
    el("td", { title: rule.id }, rule.name,
      readOnly ? el("span", { class: "badge", title: "defined in bcx.conf" }, "bcx.conf")
        : null),
    el("td", {}, series),
    el("td", {}, `${BCXRules.marker(rule.kind)} ${rule.kind}`),
    el("td", { class: "num" }, describe(rule)),
    stateCell(rule),
    el("td", { class: "time" }, status.since ? BCX.fmtTime(status.since) : "–"),
    el("td", { class: "num" }, status.value ?? "–"),
    actions);
  }

  function render() {
    tbody.replaceChildren(...rules.map(row));
    document.getElementById("empty").hidden = rules.length > 0;
  }

  async function refresh() {
    rules = (await BCX.api("/rules")).rules;
    render();
  }

  function fail(answer) {
    const error = (answer && answer.body && answer.body.error) || {};
    actionError.textContent = error.message || `HTTP ${answer ? answer.status : "?"}`;
    actionError.hidden = false;
  }

  async function send(method, path, body) {
    actionError.hidden = true;
    const answer = await BCX.write(method, path, body);
    if (!answer.ok) fail(answer);
    await refresh();
    return answer;
  }

  function silenceForm(rule) {
    const duration = el("select", { name: "for" }, ...SILENCES.map(([value, label]) =>
      el("option", { value }, label)));
    duration.value = "1h";
    const comment = el("input", { name: "comment", type: "text", placeholder: "why (optional)",
      autocomplete: "off" });
    const cancel = el("button", { type: "button" }, "Cancel");
    const node = el("form", { class: "rule-form silence-form" },
      el("h3", {}, `Silence ${rule.name}`),
      el("p", { class: "hint" }, "Its events are still recorded, not delivered."),
      el("div", { class: "rf-grid" },
        el("label", { class: "rf-field" }, el("span", { class: "rf-label" }, "For"), duration),
        el("label", { class: "rf-field" }, el("span", { class: "rf-label" }, "Comment"),
          comment)),
      el("div", { class: "rf-actions" }, el("button", { type: "submit", class: "primary" },
        "Silence"), cancel));
    node.addEventListener("submit", async (event) => {
      event.preventDefault();
      const answer = await send("POST", `/rules/${encodeURIComponent(rule.id)}/silence`,
        { for: duration.value, comment: comment.value });
      if (answer.ok) node.remove();
    });
    cancel.addEventListener("click", () => node.remove());
    box.replaceChildren(node);
    duration.focus();
  }

  async function act(action, rule) {
    const path = `/rules/${encodeURIComponent(rule.id)}`;
    if (action === "edit") {
      BCXRules.form(box, { rule, seriesList, onSaved: refresh });
    } else if (action === "enable" || action === "disable") {
      await send("PATCH", path, { enabled: action === "enable" });
    } else if (action === "silence") {
      silenceForm(rule);
    } else if (action === "unsilence") {
      await send("DELETE", `${path}/silence`);
    } else if (action === "delete") {
      if (window.confirm(`Delete the rule ${rule.name}? Its firing alerts resolve.`)) {
        await send("DELETE", path);
      }
    }
  }

  async function start() {
    const [found, series] = await Promise.all([BCX.api("/rules"), BCX.api("/series")]);
    rules = found.rules;
    seriesList = series.series.map((item) => item.series);
    render();
    document.getElementById("new-rule").addEventListener("click", () => BCXRules.form(box,
      { seriesList, series: new URLSearchParams(location.search).get("series") || "",
        onSaved: refresh }));
    BCX.live("alert", () => refresh().catch((error) => console.warn("rules:", error.message)));
    setInterval(() => refresh().catch((error) => console.warn("rules:", error.message)),
      REFRESH_MS);
    document.body.dataset.ready = "1";
  }

  start().catch((error) => {
    console.warn("rules:", error.message);
    document.getElementById("empty").textContent = `Could not load the rules: ${error.message}`;
    document.getElementById("empty").hidden = false;
  });
})();
