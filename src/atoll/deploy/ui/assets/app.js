/* atoll dashboard: vanilla JS, no dependencies. Every value from the server goes into the page as
   text (textContent), never as HTML. */
"use strict";

const $ = (id) => document.getElementById(id);
const state = { agents: new Map(), hosts: [], remotes: [], view: null, agent: null, tab: "overview", events: null,
  timers: [], chatSession: null, chatBusy: false };

function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function toast(text) {
  const el = $("toast");
  el.textContent = text;
  el.classList.add("show");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => el.classList.remove("show"), 4000);
}

class Unauthorized extends Error {}

async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options,
    headers: { Accept: "application/json", ...(options.headers || {}) } });
  if (response.status === 401) { showSignIn(); throw new Unauthorized("sign in first"); }
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try { const body = await response.json(); detail = body.detail || body.error || detail; } catch (e) { /* not JSON */ }
    throw new Error(detail);
  }
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : response.text();
}

const enc = encodeURIComponent;

/* ---- formatting ---------------------------------------------------------------------------- */

function uptime(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.floor(seconds), d = Math.floor(s / 86400), hh = Math.floor((s % 86400) / 3600),
    m = Math.floor((s % 3600) / 60);
  if (d) return `${d}d ${hh}h`;
  if (hh) return `${hh}h ${m}m`;
  return `${m}m ${s % 60}s`;
}

function ago(iso) {
  if (!iso) return "–";
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return seconds < 90 ? `${seconds}s ago` : `${Math.round(seconds / 60)}m ago`;
}

const num = (v) => (v === null || v === undefined ? "–" : String(v));

function stateBadge(status) {
  return h("span", { class: `state s-${status}`, "data-state": status }, h("span", { class: "dot", "aria-hidden": "true" }),
    h("span", { class: "state-text" }, status));
}

/* ---- sign-in ------------------------------------------------------------------------------- */

function show(id) {
  for (const view of ["signin-view", "agents-view", "remotes-view", "agent-view"]) $(view).hidden = view !== id;
}

function showSignIn() {
  stopLive();
  state.view = "signin";
  show("signin-view");
  $("nav").hidden = $("sign-out").hidden = $("live").hidden = true;
  $("token").focus();
}

$("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("signin-error").textContent = "";
  try {
    const response = await fetch("/ui/session", { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify({ token: $("token").value.trim() }) });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      $("signin-error").textContent = body.detail || `sign-in failed (${response.status})`;
      return;
    }
    $("token").value = "";
    start();
  } catch (err) {
    $("signin-error").textContent = String(err.message || err);
  }
});

$("sign-out").addEventListener("click", async () => {
  await fetch("/ui/session", { method: "DELETE", credentials: "same-origin" });
  state.agents.clear();
  $("agents-body").replaceChildren();
  showSignIn();
});

/* ---- live agent states (server-sent events) -------------------------------------------------- */

function startLive() {
  if (state.events) return;
  const source = new EventSource("/agents/events");
  state.events = source;
  source.addEventListener("snapshot", (event) => {
    const data = JSON.parse(event.data);
    const names = new Set(data.agents.map((a) => a.name));
    for (const name of [...state.agents.keys()]) if (!names.has(name)) state.agents.delete(name);
    for (const agent of data.agents) state.agents.set(agent.name, agent);
    state.problems = data.problems;
    state.hosts = data.model_hosts || [];
    $("live").textContent = "live";
    render();
  });
  source.addEventListener("agent", (event) => {
    const agent = JSON.parse(event.data);
    state.agents.set(agent.name, agent);
    render();
  });
  source.onerror = async () => {
    $("live").textContent = "reconnecting…";
    if (source.readyState === EventSource.CLOSED) {
      state.events = null;
      try { await api("/agents"); setTimeout(startLive, 1000); } catch (e) { /* signed out: api() showed sign-in */ }
    }
  };
}

function stopLive() {
  if (state.events) state.events.close();
  state.events = null;
  state.timers.forEach(clearInterval);
  state.timers = [];
}

/* ---- agents table ----------------------------------------------------------------------------- */

async function act(name, action) {
  try {
    if (action === "delete") {
      if (!(await confirmDialog(`Delete agent “${name}”? Its process is stopped and its folder removed.`))) return;
      await api(`/agents/${enc(name)}`, { method: "DELETE" });
      toast(`${name} deleted`);
      if (state.view === "agent") location.hash = "#/";
      return;
    }
    const wait = action === "stop" ? "" : "?wait=false";
    await api(`/agents/${enc(name)}/${action}${wait}`, { method: "POST" });
  } catch (err) {
    if (!(err instanceof Unauthorized)) toast(`${action} ${name}: ${err.message}`);
  }
}

function actionButtons(agent) {
  const busy = ["starting", "stopping", "restarting"].includes(agent.status);
  const up = ["running", "unhealthy", "starting", "restarting"].includes(agent.status);
  const button = (action, label, extra) => h("button", { type: "button", class: extra, "data-action": action,
    "aria-label": `${label} ${agent.name}`, disabled: busy && action !== "delete", onclick: () => act(agent.name, action) }, label);
  return h("span", { class: "actions" },
    up ? button("stop", "Stop") : button("start", "Start"),
    button("restart", "Restart"), button("delete", "Delete", "danger"));
}

const replicas = (n) => `${n} replica${n === 1 ? "" : "s"}`;  // Ray Serve's, where there is no pid

// A running agent whose health check answers "degraded" (an MCP server down, its LLM unreachable)
// shows as degraded, as `atoll status` does; the reasons (or a failed agent's error) go under it.
const degradedReasons = (agent) => (agent.degraded_reasons?.length ? agent.degraded_reasons : null);
const shownState = (agent) => (degradedReasons(agent) ? "degraded" : agent.status);
const why = (agent) => degradedReasons(agent)?.join("; ") || agent.error_message || "";

function agentRow(agent) {
  const cell = (label, ...content) => h("td", { "data-label": label }, ...content);
  const model = agent.model ? h("span", {}, agent.model, h("span", { class: "sub" }, agent.provider || "")) : "–";
  const mcp = agent.mcp_total !== undefined ? `${agent.mcp_connected}/${agent.mcp_total}` : "–";
  return h("tr", { "data-agent": agent.name, "data-pid": agent.pid ?? "", "data-state": agent.status },
    cell("Agent", h("a", { href: `#/agent/${enc(agent.name)}` }, agent.name),
      agent.auto_start === false ? h("span", { class: "sub" }, "manual start") : null),
    cell("State", stateBadge(shownState(agent)), agent.pid ? h("span", { class: "sub" }, `pid ${agent.pid}`)
      : agent.replicas ? h("span", { class: "sub" }, replicas(agent.replicas.running)) : null,
      why(agent) ? h("span", { class: "sub why", title: why(agent) }, why(agent)) : null),
    cell("URL", h("span", { class: "sub" }, agent.url || `:${agent.port}`)),
    cell("Model", model), cell("MCP", mcp),
    h("td", { "data-label": "Uptime", class: "num" }, uptime(agent.uptime_s)),
    h("td", { "data-label": "Restarts", class: "num" }, num(agent.restarts)),
    cell("Health check", agent.last_health_check ? `${agent.last_health_ok ? "ok" : "failed"}, ${ago(agent.last_health_check)}` : "–"),
    h("td", { "data-label": "Req/min", class: "num" }, num(agent.requests_per_min)),
    h("td", { "data-label": "Tok/min", class: "num" }, num(agent.tokens_per_min)),
    h("td", {}, agent.remote ? h("span", { class: "sub" }, `on ${agent.remote}`) : actionButtons(agent)));
}

function hostRow(host) {
  const cell = (label, ...content) => h("td", { "data-label": label }, ...content);
  const file = (host.model || "").split("/").pop();
  return h("tr", { "data-host": host.name, "data-pid": host.pid ?? "", "data-state": host.status },
    cell("Host", host.name),
    cell("State", stateBadge(host.status), host.pid ? h("span", { class: "sub" }, `pid ${host.pid}`) : null),
    cell("URL", h("span", { class: "sub" }, host.url || `:${host.port}`)),
    cell("Model", h("span", { title: host.model || "" }, file || "–")),
    cell("Agents", (host.agents || []).join(", ") || "–"),
    h("td", { "data-label": "Uptime", class: "num" }, uptime(host.uptime_s)),
    h("td", { "data-label": "Restarts", class: "num" }, num(host.restarts)));
}

function remoteRows() {
  return state.remotes.flatMap((remote) => (remote.agents || []).map((a) => ({
    name: `${remote.name}/${a.name}`, status: a.status || "unknown", url: `${remote.host}:${a.port ?? "?"}`,
    pid: null, uptime_s: a.uptime_s, restarts: a.restarts, last_health_check: a.last_health_check,
    last_health_ok: a.last_health_ok, degraded_reasons: a.degraded_reasons, error_message: a.error_message,
    remote: remote.name })));
}

function renderAgents() {
  const body = $("agents-body");
  const focused = document.activeElement && body.contains(document.activeElement)
    ? [document.activeElement.closest("tr")?.dataset.agent, document.activeElement.dataset.action] : null;
  const rows = [...state.agents.values(), ...remoteRows()];
  const existing = new Map([...body.children].map((tr) => [tr.dataset.agent, tr]));
  rows.forEach((agent, index) => {
    const row = agentRow(agent);
    const old = existing.get(agent.name);
    if (old) { existing.delete(agent.name); if (!old.isEqualNode(row)) old.replaceWith(row); else return; }
    else body.append(row);
    if (body.children[index] !== row) body.insertBefore(row, body.children[index]);
  });
  for (const old of existing.values()) old.remove();
  if (focused && focused[0]) {
    const button = body.querySelector(`tr[data-agent="${CSS.escape(focused[0])}"] [data-action="${focused[1]}"]`)
      || body.querySelector(`tr[data-agent="${CSS.escape(focused[0])}"] a`);
    if (button && document.activeElement !== button) button.focus();
  }
  const running = [...state.agents.values()].filter((a) => a.status === "running").length;
  $("agents-count").textContent = `${state.agents.size} local, ${running} running`;
  $("problems").replaceChildren(...(state.problems || []).map((p) =>
    h("li", {}, `${p.name || p.folder}: not started: ${p.reason}`)));
  $("hosts").hidden = !state.hosts.length;
  const hosts = state.hosts.map(hostRow), shown = [...$("hosts-body").children];
  if (hosts.length !== shown.length || hosts.some((row, i) => !row.isEqualNode(shown[i]))) $("hosts-body").replaceChildren(...hosts);
}

function render() {
  if (state.view === "agents") renderAgents();
  if (state.view === "agent") renderAgentHead();
}

/* ---- deploy ---------------------------------------------------------------------------------- */

function deploy(file) {
  const result = $("deploy-result"), bar = $("deploy-progress");
  if (!file.name.toLowerCase().endsWith(".zip")) { result.textContent = `${file.name} is not a .zip`; return; }
  const form = new FormData();
  form.append("file", file);
  form.append("force", $("force").checked ? "true" : "false");
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/agents/deploy");
  xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = Math.round(100 * e.loaded / e.total); };
  xhr.onload = () => {
    bar.hidden = true;
    let body = {};
    try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
    if (xhr.status === 401) { showSignIn(); return; }
    result.className = xhr.status < 300 ? "ok" : "error";
    result.textContent = xhr.status < 300
      ? `Deployed ${body.name || file.name}: ${body.status || "ok"}`
      : `Deploy failed: ${body.detail || xhr.status}`;
  };
  xhr.onerror = () => { bar.hidden = true; result.className = "error"; result.textContent = "Deploy failed: connection lost"; };
  bar.hidden = false; bar.value = 0;
  result.className = ""; result.textContent = `Uploading ${file.name}…`;
  xhr.send(form);
}

$("zip").addEventListener("change", (e) => { if (e.target.files[0]) deploy(e.target.files[0]); e.target.value = ""; });
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault(); drop.classList.remove("over");
  if (e.dataTransfer.files[0]) deploy(e.dataTransfer.files[0]);
});

/* ---- remotes --------------------------------------------------------------------------------- */

async function loadRemotes() {
  try {
    const data = await api("/remote");
    state.remotes = data.remote_servers || [];
  } catch (err) { return; }
  if (state.view === "agents") renderAgents();
  const box = $("remotes");
  if (!state.remotes.length) {
    box.replaceChildren(h("p", { class: "muted" }, "No remote servers configured (remote_servers in deployment_servers.json)."));
    return;
  }
  box.replaceChildren(h("div", { class: "table-wrap" }, h("table", { class: "plain" },
    h("thead", {}, h("tr", {}, ["Server", "Address", "Reachability", "Agents"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, state.remotes.map((r) => h("tr", { "data-remote": r.name },
      h("td", {}, r.name, r.description ? h("span", { class: "sub" }, r.description) : null),
      h("td", {}, `${r.host}:${r.port}`),
      h("td", {}, stateBadge(r.state), r.error ? h("span", { class: "sub" }, r.error) : null),
      h("td", {}, (r.agents || []).map((a) => h("div", {}, `${a.name} `, stateBadge(a.status || "unknown"))))))))));
}

/* ---- agent page ------------------------------------------------------------------------------ */

const TABS = ["overview", "tools", "sessions", "logs", "metrics", "chat", "approvals"];

function selectTab(tab, focus) {
  state.tab = tab;
  for (const name of TABS) {
    const button = $(`tab-${name}`), panel = $(`panel-${name}`);
    button.setAttribute("aria-selected", String(name === tab));
    button.tabIndex = name === tab ? 0 : -1;
    panel.hidden = name !== tab;
  }
  if (focus) $(`tab-${tab}`).focus();
  state.timers.forEach(clearInterval);
  state.timers = [];
  loadTab();
}

for (const name of TABS) $(`tab-${name}`).addEventListener("click", () => selectTab(name));
$("tabs").addEventListener("keydown", (e) => {
  const index = TABS.indexOf(state.tab);
  const next = { ArrowRight: index + 1, ArrowLeft: index - 1, Home: 0, End: TABS.length - 1 }[e.key];
  if (next === undefined) return;
  e.preventDefault();
  selectTab(TABS[(next + TABS.length) % TABS.length], true);
});

function renderAgentHead() {
  const agent = state.agents.get(state.agent);
  $("agent-title").textContent = state.agent;
  if (!agent) { $("agent-state").replaceChildren(stateBadge("deleted")); $("agent-actions").replaceChildren(); return; }
  const badge = $("agent-state").firstChild;
  if (!badge || badge.dataset.state !== agent.status) $("agent-state").replaceChildren(stateBadge(agent.status));
  const actions = actionButtons(agent);
  if (!$("agent-actions").firstChild || !$("agent-actions").firstChild.isEqualNode(actions)) {
    const had = document.activeElement?.dataset?.action;
    $("agent-actions").replaceChildren(actions);
    if (had) actions.querySelector(`[data-action="${had}"]`)?.focus();
  }
  if (state.tab === "overview") renderFacts(agent);
}

function renderFacts(agent) {
  const facts = [["State", shownState(agent)], ...(degradedReasons(agent) ? [["Degraded because", why(agent)]] : []),
    ["PID", num(agent.pid)], ["URL", agent.url], ["Folder", agent.folder],
    ["Uptime", uptime(agent.uptime_s)], ["Restarts", num(agent.restarts)], ["Last exit code", num(agent.last_exit_code)],
    ["Model", agent.model ? `${agent.model} (${agent.provider})` : "–"],
    ["MCP servers", agent.mcp_total !== undefined ? `${agent.mcp_connected}/${agent.mcp_total} connected` : "–"],
    ["Checksum", agent.checksum || "–"], ["Error", agent.error_message || "–"]];
  $("facts").replaceChildren(...facts.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function every(ms, fn) { fn(); state.timers.push(setInterval(fn, ms)); }

async function loadTab() {
  const name = state.agent, tab = state.tab;
  const base = `/agents/${enc(name)}`;
  try {
    if (tab === "overview") {
      const agent = state.agents.get(name);
      if (agent) renderFacts(agent);
      const data = await api(`${base}/config`);
      $("config").textContent = JSON.stringify(data.config, null, 2);
    } else if (tab === "tools") {
      const data = await api(`${base}/tools`);
      $("tools").replaceChildren(...data.tools.map((t) => h("tr", {}, h("td", {}, h("code", {}, t.name)),
        h("td", {}, t.source || "–"), h("td", {}, t.description || ""))));
      if (!data.tools.length) $("tools").replaceChildren(h("tr", {}, h("td", { colspan: 3 }, "This agent has no tools.")));
    } else if (tab === "sessions") {
      await loadSessions();
    } else if (tab === "logs") {
      every(1000, loadLogs);
    } else if (tab === "metrics") {
      every(5000, loadMetrics);
    } else if (tab === "chat") {
      $("chat-input").focus();
    } else if (tab === "approvals") {
      every(2000, loadApprovals);
    }
  } catch (err) {
    if (!(err instanceof Unauthorized)) toast(err.message);
  }
}

async function loadSessions() {
  const base = `/agents/${enc(state.agent)}`;
  const data = await api(`${base}/sessions`);
  $("sessions-note").textContent = `${data.active_sessions ?? data.sessions.length} active session(s); ` +
    `sessions expire after ${data.timeout_minutes ?? "?"} minutes without use.`;
  $("sessions").replaceChildren(...data.sessions.map((s) => h("li", { "data-session": s.id },
    h("code", {}, s.id),
    s.updated_at ? h("span", { class: "muted" }, `updated ${ago(s.updated_at)}`) : null,
    s.turns !== undefined ? h("span", { class: "muted" }, `${s.turns} turn(s)`) : null,
    h("button", { type: "button", onclick: () => openSession(s.id) }, "Open"),
    h("button", { type: "button", class: "danger", onclick: async () => {
      if (!(await confirmDialog(`Delete session ${s.id}?`))) return;
      try { await api(`${base}/sessions/${enc(s.id)}`, { method: "DELETE" }); $("transcript").replaceChildren(); loadSessions(); }
      catch (err) { toast(err.message); }
    } }, "Delete"))));
  if (!data.sessions.length) $("sessions").replaceChildren(h("li", { class: "muted" }, "No sessions to show yet: chat in the playground."));
}

async function openSession(id) {
  try {
    const data = await api(`/agents/${enc(state.agent)}/sessions/${enc(id)}`);
    $("transcript").replaceChildren(h("h2", {}, `Session ${id}`), ...data.messages.flatMap(renderMessage));
  } catch (err) { toast(err.message); }
}

function renderMessage(m) {
  if (m.role === "tool") {
    return h("div", { class: `tool${m.is_error ? " error" : ""}` }, `⚙ result of ${m.tool_name || "tool"}`,
      h("span", { class: "res" }, m.content));
  }
  const nodes = [];
  if (m.content || !m.tool_calls) nodes.push(h("div", { class: `msg ${m.role}` }, m.content));
  for (const call of m.tool_calls || []) {
    const fn = call.function || call;
    nodes.push(h("div", { class: "tool" }, `⚙ ${fn.name}(${JSON.stringify(fn.arguments ?? {})})`));
  }
  return nodes;
}

async function loadApprovals() {
  const base = `/agents/${enc(state.agent)}/approvals`;
  const data = await api(base).catch(() => null);
  if (!data) return;
  const decide = async (id, approve) => {
    try {
      await api(`${base}/${enc(id)}`, { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ approve }) });
      toast(`${approve ? "Approved" : "Denied"}: it takes effect with the conversation's next message`);
      loadApprovals();
    } catch (err) { toast(err.message); }
  };
  $("approvals").replaceChildren(...data.approvals.map((a) => h("li", { "data-approval": a.id },
    h("code", {}, `${a.tool}(${JSON.stringify(a.arguments)})`), h("span", { class: "muted" }, `id ${a.id}`),
    h("button", { type: "button", class: "primary", onclick: () => decide(a.id, true) }, "Approve"),
    h("button", { type: "button", class: "danger", onclick: () => decide(a.id, false) }, "Deny"))));
  if (!data.approvals.length) $("approvals").replaceChildren(h("li", { class: "muted" }, "Nothing is waiting."));
}

async function loadLogs() {
  if ($("log-pause").getAttribute("aria-pressed") === "true") return;
  const stream = $("log-stream").value;
  const data = await api(`/agents/${enc(state.agent)}/logs?lines=500`).catch(() => null);
  if (!data) return;
  const lines = data[stream] || [];
  const needle = $("log-search").value.toLowerCase();
  const log = $("log");
  const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 20;
  const shown = needle ? lines.filter((l) => l.toLowerCase().includes(needle)) : lines;
  log.replaceChildren(...shown.map((line) => {
    if (!needle) return line + "\n";
    const at = line.toLowerCase().indexOf(needle);
    return h("span", {}, line.slice(0, at), h("mark", {}, line.slice(at, at + needle.length)), line.slice(at + needle.length) + "\n");
  }));
  if (atBottom) log.scrollTop = log.scrollHeight;
}

$("log-pause").addEventListener("click", () => {
  const button = $("log-pause");
  const paused = button.getAttribute("aria-pressed") !== "true";
  button.setAttribute("aria-pressed", String(paused));
  button.textContent = paused ? "Resume" : "Pause";
  if (!paused) loadLogs();
});
$("log-stream").addEventListener("change", loadLogs);
$("log-search").addEventListener("input", loadLogs);

async function loadMetrics() {
  const data = await api(`/agents/${enc(state.agent)}/samples`).catch(() => null);
  if (!data || !window.lineChart) return;
  $("metrics-note").textContent = data.note || `${data.t.length} samples, one every ${data.interval_s}s, last hour kept in the deployment server.`;
  lineChart($("chart-rps"), data.t, [{ name: "req/s", values: data.requests_per_s }], "");
  lineChart($("chart-latency"), data.t, [{ name: "p50", values: data.p50_ms }, { name: "p95", values: data.p95_ms }], "");
  lineChart($("chart-tps"), data.t, [{ name: "tok/s", values: data.tokens_per_s }], "");
}

/* ---- chat playground ------------------------------------------------------------------------- */

function newChat() {
  state.chatSession = "ui-" + crypto.getRandomValues(new Uint32Array(2)).join("");
  $("chat").replaceChildren(h("div", { class: "msg system" }, `New conversation (session ${state.chatSession})`));
}

$("chat-new").addEventListener("click", newChat);
$("chat-input").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("chat-form").requestSubmit(); }
});
$("chat-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const text = $("chat-input").value.trim();
  if (!text || state.chatBusy) return;
  if (!state.chatSession) newChat();
  const chat = $("chat");
  $("chat-input").value = "";
  chat.append(h("div", { class: "msg user" }, text));
  let answer = null;
  const tools = new Map();
  const scroll = () => { chat.scrollTop = chat.scrollHeight; };
  state.chatBusy = true; $("chat-send").disabled = true;
  try {
    const response = await fetch(`/agents/${enc(state.agent)}/chat`, { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify({ message: text, session_id: state.chatSession }) });
    if (response.status === 401) { showSignIn(); return; }
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new Error(body.detail || body.error || response.statusText);
    }
    const reader = response.body.getReader(), decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, cut).trim();
        buffer = buffer.slice(cut + 1);
        if (!line) continue;
        const chunk = JSON.parse(line);
        if (chunk.error) { chat.append(h("div", { class: "msg assistant err" }, chunk.error)); continue; }
        const progress = chunk.atoll;
        if (progress && progress.event === "tool_call") {
          const block = h("div", { class: "tool", "data-tool": progress.name },
            `⚙ ${progress.name}(${JSON.stringify(progress.arguments)})`, h("span", { class: "sub" }, ` via ${progress.source}`));
          tools.set(progress.id, block); chat.append(block); answer = null;
        } else if (progress && progress.event === "tool_result") {
          const block = tools.get(progress.id) || chat.appendChild(h("div", { class: "tool" }, `⚙ ${progress.name}`));
          if (progress.is_error) block.classList.add("error");
          block.append(h("span", { class: "res", "data-result": progress.name }, `→ ${progress.content} (${progress.duration_ms} ms)`));
        }
        const content = chunk.message && chunk.message.content;
        if (content) {
          if (!answer) { answer = h("div", { class: "msg assistant" }); chat.append(answer); }
          answer.textContent += content;
        }
        scroll();
      }
    }
  } catch (err) {
    chat.append(h("div", { class: "msg assistant err" }, String(err.message || err)));
  } finally {
    state.chatBusy = false; $("chat-send").disabled = false; scroll();
  }
});

/* ---- confirmation dialog --------------------------------------------------------------------- */

function confirmDialog(text) {
  const dialog = $("confirm");
  $("confirm-text").textContent = text;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "cancel";
    dialog.showModal();
    dialog.querySelector("button[value=cancel]").focus();
  });
}

/* ---- routing --------------------------------------------------------------------------------- */

function route() {
  if (state.view === "signin") return;
  const hash = location.hash || "#/";
  state.timers.forEach(clearInterval);
  state.timers = [];
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.getAttribute("href") === hash) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  if (hash.startsWith("#/agent/")) {
    const name = decodeURIComponent(hash.slice("#/agent/".length));
    if (state.agent !== name) { state.chatSession = null; $("chat").replaceChildren(); $("transcript").replaceChildren(); $("log").replaceChildren(); }
    state.agent = name; state.view = "agent";
    show("agent-view");
    renderAgentHead();
    selectTab(state.tab);
  } else if (hash === "#/remotes") {
    state.view = "remotes"; show("remotes-view"); loadRemotes();
  } else {
    state.view = "agents"; show("agents-view"); renderAgents();
    every(15000, loadRemotes);
  }
  $("main").focus({ preventScroll: true });
}
window.addEventListener("hashchange", route);

async function start() {
  try {
    const data = await api("/agents");
    for (const agent of data.agents) state.agents.set(agent.name, agent);
    state.problems = data.problems;
    state.hosts = data.model_hosts || [];
  } catch (err) {
    if (!(err instanceof Unauthorized)) toast(err.message);
    return;
  }
  $("nav").hidden = $("sign-out").hidden = $("live").hidden = false;
  state.view = null;
  startLive();
  route();
}

start();
