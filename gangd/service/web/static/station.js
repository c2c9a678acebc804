// gangd station page: renders /api/events (Server-Sent Events) into one tile per port, a header and
// the last records. No other host is ever contacted; every text is set with textContent.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const STATE_TEXT = {
    idle: "Empty", queued: "Queued (USB bandwidth)", programming: "Programming", recovering: "Recovering", "waiting-replug": "Reconnecting",
    success: "Programmed", failed: "Failed", removed: "Removed", stopped: "Stopped", suspect: "Suspect port",
    disabled: "Disabled",
  };
  const STATE_ICON = {
    idle: "○", queued: "⧗", programming: "▶", recovering: "↻", "waiting-replug": "⇅", success: "✔", failed: "✘",
    removed: "⇡", stopped: "■", suspect: "⚠", disabled: "⊘",
  };
  const tiles = new Map(); // port path -> {el, parts}
  const announced = new Map(); // port path -> last state announced
  let model = null;
  let records = [];
  let receivedAt = performance.now();
  let token = sessionStorage.getItem("gangd-control-token") || "";
  let layoutKey = "";

  function make(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function setText(node, text) {
    const value = text == null ? "" : String(text);
    if (node.textContent !== value) node.textContent = value;
    node.hidden = value === "";
  }
  // A tile's time to 0.1 s under a minute (a board takes about 0.7 s: "0 s" would be false);
  // the uptime and longer times in whole units.
  function duration(seconds, tenths) {
    if (seconds == null) return "";
    if (tenths && seconds < 59.95) return `${Math.max(0, seconds).toFixed(1)} s`;
    const s = Math.max(0, Math.floor(seconds));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    return d ? `${d} d ${h} h` : `${h} h ${String(m).padStart(2, "0")} min`;
  }
  function clock(unix) {
    return unix ? new Date(unix * 1000).toLocaleTimeString([], {hour12: false}) : "";
  }

  // --- header ---------------------------------------------------------------------------------
  function renderHeader(h) {
    setText($("family"), h.recipe.family);
    setText($("stat-programmed"), h.programmed);
    setText($("stat-failed"), h.failed);
    setText($("stat-yield"), h.yield == null ? "–" : `${(h.yield * 100).toFixed(1)} %`);
    setText($("stat-rate"), Math.round(h.boards_per_hour));
    setText($("stat-recovered"), h.recovered);
    const list = $("recipe-images");
    const key = JSON.stringify(h.recipe.images);
    if (list.dataset.key !== key) {
      list.dataset.key = key;
      list.replaceChildren(...h.recipe.images.map((image) => {
        const item = make("li", null, `Image ${image.address}, ${image.size.toLocaleString("en")} bytes, sha256 `);
        item.append(make("code", null, image.sha256));
        return item;
      }));
    }
    const domains = $("root-ports");
    const domainsKey = JSON.stringify(h.root_ports);
    if (domains.dataset.key !== domainsKey) {
      domains.dataset.key = domainsKey;
      domains.replaceChildren(...h.root_ports.map((d) => {
        const text = `USB root port ${d.root_port}: ${d.in_use} of ${d.budget ?? "∞"} flashloaders` +
          (d.queued ? `, ${d.queued} queued` : "");
        const item = make("li", d.budget != null && d.in_use >= d.budget ? "full" : null, text);
        item.dataset.rootPort = d.root_port;
        return item;
      }));
    }
    $("control").hidden = !h.control;
    renderControl();
  }

  function renderControl() {
    const unlocked = token !== "";
    $("unlock-open").hidden = unlocked || !$("unlock-form").hidden;
    $("lock").hidden = !unlocked;
  }

  // --- tiles ----------------------------------------------------------------------------------
  function buildTile(port) {
    const el = make("article", "tile");
    el.setAttribute("role", "listitem");
    el.dataset.port = port.port;
    el.dataset.label = port.label;
    const id = `tile-${port.port.replace(/[^A-Za-z0-9_-]/g, "_")}`;
    el.setAttribute("aria-labelledby", `${id}-label`);
    el.setAttribute("aria-describedby", `${id}-state`);
    const head = make("div", "tile-head");
    const label = make("h3", "label", port.label);
    label.id = `${id}-label`;
    const path = make("p", "path", port.label !== port.port ? `USB ${port.port}` : "");
    head.append(label, path);
    const state = make("p", "state");
    state.id = `${id}-state`;
    const progress = make("progress");
    progress.max = 100;
    progress.setAttribute("aria-label", `${port.label} progress`);
    const line = make("div", "line");
    const parts = {
      state, progress,
      step: make("p", "step"), elapsed: make("p", "elapsed"), board: make("p", "board"),
      reason: make("p", "reason"), explanation: make("p", "explanation"), note: make("p", "note"),
      instruction: make("p", "instruction"), counts: make("p", "counts"), actions: make("div", "actions"),
    };
    line.append(parts.step, parts.elapsed);
    const foot = make("div", "foot");
    foot.append(parts.counts, parts.actions);
    el.append(head, state, progress, line, parts.board, parts.reason, parts.explanation, parts.note,
      parts.instruction, foot);
    return {el, parts, actionsKey: ""};
  }

  function renderGrid(m) {
    const grid = $("grid");
    const key = JSON.stringify(m.layout);
    if (key === layoutKey) return;
    layoutKey = key;
    const columns = Math.max(1, ...m.layout.map((row) => row.length));
    grid.style.gridTemplateColumns = `repeat(${columns}, minmax(14rem, 1fr))`;
    const cells = [];
    for (const row of m.layout) {
      for (let i = 0; i < columns; i++) {
        const path = row[i];
        const port = path && m.ports.find((p) => p.port === path);
        if (!port) {
          const gap = make("div", "gap");
          gap.setAttribute("aria-hidden", "true");
          cells.push(gap);
          continue;
        }
        if (!tiles.has(path)) tiles.set(path, buildTile(port));
        cells.push(tiles.get(path).el);
      }
    }
    grid.replaceChildren(...cells);
  }

  function renderTile(port, elapsedExtra) {
    const tile = tiles.get(port.port);
    if (!tile) return;
    const {el, parts} = tile;
    if (el.dataset.state !== port.state) el.dataset.state = port.state;
    setText(parts.state, `${STATE_ICON[port.state] || ""}\u00a0${STATE_TEXT[port.state] || port.state}`);
    const percent = Math.round(port.progress * 100);
    if (parts.progress.value !== percent) parts.progress.value = percent;
    parts.progress.setAttribute("aria-valuetext", `${percent} %`);
    let step = port.step || "";
    if (step && port.attempt > 1) step += ` · try ${port.attempt}`;
    setText(parts.step, step);
    setText(parts.board, port.board ? `${port.board}${port.uid ? ` · ${port.uid}` : ""}` : "");
    parts.board.title = port.board ? `USB serial ${port.board}${port.uid ? `, unique id ${port.uid}` : ""}` : "";
    const running = ["queued", "programming", "recovering", "waiting-replug"].includes(port.state);
    const elapsed = port.elapsed_s == null ? null : port.elapsed_s + (running ? elapsedExtra : 0);
    setText(parts.elapsed, elapsed == null ? "" : `${running ? "" : "took "}${duration(elapsed, true)}`);
    const failedHere = ["failed", "removed", "stopped"].includes(port.state);
    setText(parts.reason, failedHere && port.reason ? port.reason : "");
    setText(parts.explanation, failedHere && port.explanation ? port.explanation : "");
    parts.reason.title = parts.reason.textContent;
    parts.explanation.title = parts.explanation.textContent;
    setText(parts.note, port.note || "");
    el.classList.toggle("closed", !!port.closed);  // HAB closed: only signed images run now
    setText(parts.instruction, port.instruction);
    const ok = port.counts.success || 0, bad = port.counts.failed || 0;
    setText(parts.counts, `✔ ${ok} · ✘ ${bad}`);
    parts.counts.setAttribute("aria-label", `${ok} programmed, ${bad} failed on ${port.label}`);
    renderActions(tile, port);
    announce(port);
  }

  function renderActions(tile, port) {
    const enabled = model && model.header.control && token !== "";
    const key = `${enabled}|${port.disabled}|${port.suspect}`;
    if (tile.actionsKey === key) return;
    tile.actionsKey = key;
    const buttons = [];
    if (enabled) {
      const toggle = make("button", "button", port.disabled ? `Enable ${port.label}` : `Disable ${port.label}`);
      toggle.type = "button";
      toggle.addEventListener("click", () => control(port.port, port.label, port.disabled ? "enable" : "disable"));
      buttons.push(toggle);
      if (port.suspect) {
        const ack = make("button", "button", `Acknowledge`);
        ack.type = "button";
        ack.setAttribute("aria-label", `Acknowledge the suspect flag of ${port.label}`);
        ack.addEventListener("click", () => control(port.port, port.label, "acknowledge"));
        buttons.push(ack);
      }
    }
    tile.parts.actions.replaceChildren(...buttons);
    tile.parts.actions.hidden = buttons.length === 0;
  }

  function announce(port) {
    const before = announced.get(port.port);
    announced.set(port.port, port.state);
    if (before === undefined || before === port.state) return;
    if (port.state === "failed" || port.state === "suspect") {
      const reason = port.state === "failed" && port.reason ? ` ${port.reason}.` : "";
      setText($("announcer"), `${port.label} ${STATE_TEXT[port.state]}.${reason} ${port.instruction}`);
    }
  }

  // --- records --------------------------------------------------------------------------------
  function renderRecords() {
    const portFilter = $("filter-port").value, resultFilter = $("filter-result").value;
    const select = $("filter-port");
    if (model) {
      const labels = model.ports.map((p) => p.label);
      const key = labels.join("|");
      if (select.dataset.key !== key) {
        select.dataset.key = key;
        const chosen = select.value;
        select.replaceChildren(make("option", null, "all"), ...labels.map((label) => make("option", null, label)));
        select.firstChild.value = "";
        select.value = labels.includes(chosen) ? chosen : "";
      }
    }
    const shown = records.filter((r) => (!portFilter || r.label === portFilter || r.port === portFilter)
      && (!resultFilter || r.result === resultFilter));
    const rows = shown.map((r) => {
      const tr = make("tr");
      tr.dataset.result = r.result;
      tr.dataset.label = r.label;
      const result = make("td");
      result.append(make("span", `pill ${r.result}`, r.result));
      const reason = make("td");
      if (r.result === "success") {
        const parts = [];
        if (r.marginal) parts.push(`marginal flash, programmed at ${r.flash_mhz} MHz`);
        if (r.recoveries.length) parts.push(`recovered: ${[...new Set(r.recoveries)].join(", ")}`);
        reason.textContent = parts.join("; ");
      } else {
        reason.textContent = [r.step, r.reason].filter(Boolean).join(": ");
        if (r.explanation) reason.append(make("span", "why", r.explanation));
      }
      tr.append(make("td", "num", clock(r.finished)), make("td", null, r.label), make("td", "mono", r.board || ""),
        result, make("td", "num", r.duration_s == null ? "" : `${r.duration_s.toFixed(1)} s`),
        make("td", "num", r.flash_mhz ? `${r.flash_mhz} MHz` : ""), reason);
      return tr;
    });
    $("records-body").replaceChildren(...rows);
    $("records-empty").hidden = rows.length > 0;
  }

  // --- live updates ---------------------------------------------------------------------------
  function render() {
    if (!model) return;
    renderHeader(model.header);
    renderGrid(model);
    const extra = (performance.now() - receivedAt) / 1000;
    for (const port of model.ports) renderTile(port, extra);
    setText($("stat-uptime"), duration(model.header.uptime_s + extra));
  }

  function tick() {
    if (!model) return;
    const extra = (performance.now() - receivedAt) / 1000;
    setText($("stat-uptime"), duration(model.header.uptime_s + extra));
    for (const port of model.ports) {
      const tile = tiles.get(port.port);
      if (!tile || port.elapsed_s == null || !["queued", "programming", "recovering", "waiting-replug"].includes(port.state)) continue;
      setText(tile.parts.elapsed, duration(port.elapsed_s + extra, true));
    }
  }

  function setConnection(text, live) {
    const node = $("connection");
    setText(node, text);
    node.classList.toggle("live", live);
    node.classList.toggle("lost", !live);
  }

  function connect() {
    const source = new EventSource("/api/events");
    source.addEventListener("station", (event) => {
      model = JSON.parse(event.data);
      receivedAt = performance.now();
      document.body.dataset.ready = "1";
      render();
    });
    source.addEventListener("records", (event) => {
      records = JSON.parse(event.data);
      renderRecords();
    });
    source.addEventListener("open", () => setConnection("live", true));
    source.addEventListener("error", () => setConnection("connection to gangd lost: reconnecting…", false));
  }

  // --- port control ---------------------------------------------------------------------------
  async function control(path, label, action) {
    const message = $("control-message");
    try {
      const response = await fetch(`/api/ports/${encodeURIComponent(path)}/${action}`, {
        method: "POST", headers: {"X-Gangd-Token": token}, cache: "no-store",
      });
      const body = await response.json();
      if (!response.ok) {
        if (response.status === 403) {
          token = "";
          sessionStorage.removeItem("gangd-control-token");
          for (const tile of tiles.values()) tile.actionsKey = "";
          render();
        }
        setText(message, `${label}: ${body.error || response.statusText}`);
        return;
      }
      setText(message, `${label}: ${action === "acknowledge" ? "suspect flag acknowledged" : action + "d"}`);
    } catch (error) {
      setText(message, `${label}: gangd did not answer`);
    }
  }

  function setupControl() {
    $("unlock-open").addEventListener("click", () => {
      $("unlock-form").hidden = false;
      $("unlock-open").hidden = true;
      $("token").focus();
    });
    $("unlock-form").addEventListener("submit", (event) => {
      event.preventDefault();
      token = $("token").value.trim();
      $("token").value = "";
      $("unlock-form").hidden = true;
      if (token) sessionStorage.setItem("gangd-control-token", token);
      setText($("control-message"), token ? "Port control unlocked" : "");
      for (const tile of tiles.values()) tile.actionsKey = "";
      render();
    });
    $("lock").addEventListener("click", () => {
      token = "";
      sessionStorage.removeItem("gangd-control-token");
      setText($("control-message"), "Port control locked");
      for (const tile of tiles.values()) tile.actionsKey = "";
      render();
    });
  }

  $("filter-port").addEventListener("change", renderRecords);
  $("filter-result").addEventListener("change", renderRecords);
  setupControl();
  connect();
  setInterval(tick, 1000);
})();
