/* The alert rule form, shared by the chart ("alert at this price") and the rules page (new
   rule, edit). One form for every kind: it shows the keys the kind reads and sends what was
   typed as the API takes it; it checks nothing itself, so a refusal shows the API's own
   message beside the field it names. Also the marker each kind's flags and badges carry. */
"use strict";

const BCXRules = (() => {
  // kind -> [label, marker, what the threshold is (null: none), keys shown beyond the common]
  const KINDS = {
    above: ["price above", "▲", "level", ["field"]],
    below: ["price below", "▼", "level", ["field"]],
    cross_up: ["crosses up", "↗", "level", ["field"]],
    cross_down: ["crosses down", "↘", "level", ["field"]],
    change_pct: ["moves by %", "%", "% move over the window (negative: a fall)",
      ["field", "window"]],
    spread: ["spread wider than", "↔", "spread (see mode)", ["spread_mode"]],
    stale: ["no tick for", "◷", "seconds without a tick", []],
    feed_down: ["feed down", "✕", null, []],
    volume: ["volume at least", "V", "base volume over the window", ["window"]],
    trade_size: ["one trade at least", "T", "size of one trade (base)", []],
  };
  const LEVELS = ["above", "below", "cross_up", "cross_down"];
  const PATCHABLE = ["threshold", "window", "for", "cooldown", "enabled", "name", "labels"];
  const el = (...args) => BCX.el(...args);

  const marker = (kind) => (KINDS[kind] || ["", "●"])[1];

  function field(name, label, input, hint) {
    return el("label", { class: "rf-field", dataset: { key: name } },
      el("span", { class: "rf-label" }, label), input,
      hint ? el("span", { class: "hint rf-hint" }, hint) : null,
      el("span", { class: "rf-error", role: "alert", hidden: true }));
  }

  const text = (name, value, attrs = {}) => el("input", { name, type: "text",
    value: value ?? "", autocomplete: "off", ...attrs });

  function select(name, options, value) {
    const node = el("select", { name }, ...options.map(([key, label]) => el("option",
      { value: key }, label)));
    node.value = value;
    return node;
  }

  const labelsText = (labels) => Object.entries(labels || {}).map(([k, v]) => `${k}=${v}`)
    .join(", ");

  /** "team=desk, env=prod" -> {team: "desk", env: "prod"}; a part without "=" is kept as a
      key with an empty value so the API names the problem. */
  function parseLabels(value) {
    const out = {};
    for (const part of value.split(",").map((item) => item.trim()).filter(Boolean)) {
      const at = part.indexOf("=");
      if (at < 0) out[part] = "";
      else out[part.slice(0, at).trim()] = part.slice(at + 1).trim();
    }
    return out;
  }

  /** A number when the text is one, else the text as typed (the API says what is wrong). */
  function numberOrText(value) {
    const trimmed = value.trim();
    return trimmed !== "" && Number.isFinite(Number(trimmed)) ? Number(trimmed) : trimmed;
  }

  /** Builds the form into `box`. `options`: {rule (edit it), series, kind, threshold,
      seriesList, onSaved(rule), onCancel}. */
  function form(box, options = {}) {
    const rule = options.rule || null;
    const editing = Boolean(rule);
    const kind = rule ? rule.kind : (options.kind || "above");
    const series = rule ? rule.series : (options.series || "");
    const seriesInput = text("series", series, { list: "rf-series-list",
      placeholder: "exchange:BASE-QUOTE", disabled: editing || undefined });
    const inputs = {
      name: text("name", rule ? rule.name : "", { placeholder: "e.g. btc-above-70k" }),
      kind: select("kind", Object.entries(KINDS).map(([key, [label]]) => [key,
        `${KINDS[key][1]} ${key} (${label})`]), kind),
      series: seriesInput,
      field: select("field", [["price", "price"], ["bid", "bid"], ["ask", "ask"]],
        rule ? rule.field : "price"),
      threshold: text("threshold", rule ? rule.threshold : options.threshold ?? "",
        { inputmode: "decimal" }),
      spread_mode: select("spread_mode", [["pct", "% of the mid"], ["abs", "absolute"]],
        rule ? rule.spread_mode : "pct"),
      window: text("window", rule ? rule.window : "5m"),
      for: text("for", rule ? rule.for : "0"),
      cooldown: text("cooldown", rule ? rule.cooldown : "5m"),
      labels: text("labels", rule ? labelsText(rule.labels) : "",
        { placeholder: "team=desk, env=prod" }),
      enabled: el("input", { name: "enabled", type: "checkbox",
        checked: !rule || rule.enabled ? true : undefined }),
    };
    if (editing) {
      for (const key of ["kind", "field", "spread_mode"]) inputs[key].disabled = true;
    }
    const fields = {
      name: field("name", "Name", inputs.name),
      kind: field("kind", "Kind", inputs.kind),
      series: field("series", "Series", inputs.series),
      field: field("field", "Field", inputs.field),
      threshold: field("threshold", "Threshold", inputs.threshold),
      spread_mode: field("spread_mode", "Spread as", inputs.spread_mode),
      window: field("window", "Window", inputs.window, "e.g. 90s, 5m, 1h"),
      for: field("for", "For", inputs.for, "held this long first (0, 30s, 5m)"),
      cooldown: field("cooldown", "Cooldown", inputs.cooldown, "least time between firings"),
      labels: field("labels", "Labels", inputs.labels),
      enabled: field("enabled", "Enabled", inputs.enabled),
    };
    const problem = el("p", { class: "rf-error rf-form-error", role: "alert", hidden: true });
    const save = el("button", { type: "submit", class: "primary" },
      editing ? "Save changes" : "Create rule");
    const cancel = el("button", { type: "button" }, "Cancel");
    const node = el("form", { class: "rule-form", novalidate: true,
      dataset: { mode: editing ? "edit" : "new" } },
    el("h3", {}, editing ? `Edit ${rule.name}` : "New alert rule"),
    el("div", { class: "rf-grid" }, ...Object.values(fields)),
    problem, el("div", { class: "rf-actions" }, save, cancel));
    if (options.seriesList) {
      node.append(el("datalist", { id: "rf-series-list" },
        ...options.seriesList.map((name) => el("option", { value: name }))));
    }

    function showKind() {
      const chosen = KINDS[inputs.kind.value];
      const extra = new Set(chosen[3]);
      for (const key of ["field", "window", "spread_mode"]) fields[key].hidden = !extra.has(key);
      fields.threshold.hidden = chosen[2] === null;
      fields.threshold.querySelector(".rf-label").textContent = `Threshold: ${chosen[2]}`;
      inputs.series.placeholder = inputs.kind.value === "feed_down"
        ? "a series of the exchange, or empty: every exchange" : "exchange:BASE-QUOTE";
    }

    function clearErrors() {
      problem.hidden = true;
      for (const wrap of Object.values(fields)) {
        wrap.classList.remove("invalid");
        wrap.querySelector(".rf-error").hidden = true;
      }
    }

    function showError(answer) {
      const error = (answer.body && answer.body.error) || {};
      const message = error.message || `HTTP ${answer.status}`;
      const key = error.parameter;
      problem.textContent = message;
      problem.hidden = false;
      if (key && fields[key]) {
        fields[key].classList.add("invalid");
        const slot = fields[key].querySelector(".rf-error");
        slot.textContent = message.replace(new RegExp(`^${key}: `), "");
        slot.hidden = false;
        (inputs[key] || {}).focus?.();
      }
    }

    function body() {
      const chosen = KINDS[inputs.kind.value];
      const shown = new Set(["name", "for", "cooldown", ...chosen[3]]);
      if (chosen[2] !== null) shown.add("threshold");
      const out = {};
      if (!editing) {
        out.kind = inputs.kind.value;
        out.series = inputs.series.value.trim();
      }
      for (const key of shown) {
        if (editing && !PATCHABLE.includes(key)) continue;
        const value = inputs[key].value;
        if (key === "name") out.name = value.trim();
        else if (["field", "spread_mode"].includes(key)) out[key] = value;
        else if (key === "threshold") out.threshold = value.trim() === "" ? null
          : numberOrText(value);
        else if (value.trim() !== "") out[key] = numberOrText(value);
      }
      if (!editing && out.threshold === null) delete out.threshold;
      out.enabled = inputs.enabled.checked;
      const labels = parseLabels(inputs.labels.value);
      if (editing || Object.keys(labels).length) out.labels = labels;
      return out;
    }

    node.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors();
      save.disabled = true;
      try {
        const answer = editing
          ? await BCX.write("PATCH", `/rules/${encodeURIComponent(rule.id)}`, body())
          : await BCX.write("POST", "/rules", body());
        if (answer.ok) {
          node.remove();
          options.onSaved?.(answer.body);
        } else {
          showError(answer);
        }
      } catch (error) {
        showError({ status: 0, body: { error: { message: error.message } } });
      } finally {
        save.disabled = false;
      }
    });
    cancel.addEventListener("click", () => {
      node.remove();
      options.onCancel?.();
    });
    inputs.kind.addEventListener("change", showKind);
    showKind();
    box.replaceChildren(node);
    (editing ? inputs.threshold : inputs.name).focus();
    return node;
  }

  return { KINDS, LEVELS, marker, form };
})();
