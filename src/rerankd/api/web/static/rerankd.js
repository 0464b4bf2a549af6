// The page at `/`: rank candidates with one or more models side by side, watch the server, manage models.
//
// It only calls the public API (GET /v1/models, POST /v1/score/{model}, GET /metrics, the admin
// PUT/DELETE /v1/models/..., GET /ui/samples), with the keys typed into it as bearer tokens; the
// keys stay in this tab's memory, never in storage or a URL. Every text the server or a user gives
// (documents above all: they are untrusted) is rendered with textContent, never as HTML; the page's
// Content-Security-Policy also forbids inline script and, through Trusted Types, every HTML sink.
"use strict";

const POLL_MS = 2000;
const SCORING_ROUTES = new Set(["/v1/score/{model}", "/v1/rerank", "/v2/rerank", "/rerank"]);
const DEFAULT_COLUMNS = 3; // models checked on first load
const THROUGHPUT_WINDOW_MS = 30000; // throughput is averaged over this much of the recent past

const state = {
  models: [], // the registered models of the last GET /v1/models
  pickerSignature: "",
  samplesLoaded: false,
  grades: new Map(), // candidate text -> relevance grade, from the last sample loaded
  scrapes: [], // {time, requests, pairs} of the scrapes of the last THROUGHPUT_WINDOW_MS
  queues: new Map(), // model label -> queued sequences, from the last scrape
  running: false,
  confirming: new Map(), // admin button key -> timer: the first click of "Unload" asks, the second acts
  tableSignature: "",
};

const $ = (id) => document.getElementById(id);

// ------------------------------------------------------------------ DOM without HTML strings

/** An element whose texts are always text nodes: `el("li", {className, text, dataset, onclick}, children)`. */
function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = String(value);
    else if (key === "className") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of [].concat(children)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function say(id, text, kind = "") {
  const node = $(id);
  node.textContent = text;
  node.className = `message ${kind}`;
}

function formatBytes(bytes) {
  if (bytes === null || bytes === undefined || Number.isNaN(bytes)) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

function plural(count, noun) {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

function formatRate(value) {
  if (value === null || Number.isNaN(value)) return "–";
  return value >= 100 ? value.toFixed(0) : value.toFixed(1);
}

// ------------------------------------------------------------------ the API

/** The bearer token for a call: data calls take the API key (or the admin key, which passes too), admin writes the admin key. */
function token(admin) {
  const apiKey = $("api-key").value.trim();
  const adminKey = $("admin-key").value.trim();
  return admin ? adminKey || apiKey : apiKey || adminKey;
}

/** `{ok, status, data, text, error, ms}`; `error` is one line made from the server's error envelope. */
async function call(method, path, body, { admin = false } = {}) {
  const headers = { Accept: "application/json" };
  const key = token(admin);
  if (key) headers.Authorization = `Bearer ${key}`;
  const init = { method, headers, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const started = performance.now();
  let response;
  let text;
  try {
    response = await fetch(path, init);
    text = await response.text();
  } catch (error) {
    return {
      ok: false,
      status: 0,
      error: `cannot reach the server: ${error.message}`,
      ms: performance.now() - started,
    };
  }
  const ms = performance.now() - started;
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (response.ok) return { ok: true, status: response.status, data, text, ms };
  return { ok: false, status: response.status, data, text, ms, error: describeError(response.status, data, text) };
}

function describeError(status, data, text) {
  const error = data && data.error;
  if (error && error.code) return `${status} ${error.code}: ${error.message}${error.param ? ` (${error.param})` : ""}`;
  return `${status}: ${(text || "").slice(0, 200)}`;
}

/** A model id as a URL path: names may hold '/' (Hugging Face ids), each segment is escaped. */
function modelPath(id) {
  return id.split("/").map(encodeURIComponent).join("/");
}

// ------------------------------------------------------------------ samples

async function loadSamples() {
  const select = $("sample");
  const result = await call("GET", "/ui/samples");
  if (!result.ok) {
    select.replaceChildren(
      el("option", {
        value: "",
        text: result.status === 401 ? "enter the API key to list samples" : "samples unavailable",
      }),
    );
    return;
  }
  const groups = new Map();
  for (const sample of result.data.samples) {
    const label =
      sample.source === "trec-dl-2019" ? "TREC DL 2019 (BM25's first passages, TREC grades)" : "Written for rerankd";
    if (!groups.has(label)) groups.set(label, el("optgroup", { label }));
    groups.get(label).append(el("option", { value: sample.id, text: `${sample.query} (${sample.documents})` }));
  }
  const options = [el("option", { value: "", text: "choose a sample set…" }), ...groups.values()];
  if (!result.data.trec_dl_2019) {
    options.push(
      el("option", { value: "", disabled: true, text: "TREC DL 2019: not on this server (RERANKD_SHARED_DATA)" }),
    );
  }
  select.replaceChildren(...options);
  state.samplesLoaded = true;
}

async function pickSample() {
  const id = $("sample").value;
  if (!id) return;
  const result = await call("GET", `/ui/samples/${encodeURIComponent(id)}`);
  if (!result.ok) {
    say("form-message", result.error, "error");
    return;
  }
  const sample = result.data;
  $("query").value = sample.query;
  $("candidates").value = sample.documents.join("\n");
  state.grades = new Map(sample.documents.map((text, i) => [text, sample.grades[i]]));
  say(
    "form-message",
    `${sample.documents.length} candidates loaded${sample.grades.some((g) => g !== null) ? " with relevance grades" : ""}.`,
  );
}

// ------------------------------------------------------------------ models to pick

/** What can be scored: every registered model and its adapters (`model:adapter`). */
function pickable(models) {
  const entries = [];
  for (const model of models) {
    const failed = model.state === "failed";
    entries.push({
      id: model.id,
      state: model.state,
      disabled: failed,
      title:
        failed && model.last_error ? model.last_error.message : `${model.family || ""} ${model.source || ""}`.trim(),
    });
    for (const adapter of model.adapters || []) {
      entries.push({
        id: adapter.id,
        state: adapter.state,
        disabled: adapter.state === "failed",
        title: adapter.source,
      });
    }
  }
  return entries;
}

function renderPicker(models) {
  const entries = pickable(models);
  const signature = JSON.stringify(entries.map((e) => [e.id, e.state]));
  if (signature === state.pickerSignature) return;
  const first = state.pickerSignature === "";
  state.pickerSignature = signature;
  const checked = new Set([...document.querySelectorAll("#model-picker input:checked")].map((input) => input.value));
  if (first) {
    entries
      .filter((e) => !e.disabled)
      .slice(0, DEFAULT_COLUMNS)
      .forEach((e) => checked.add(e.id));
  }
  const picker = $("model-picker");
  if (entries.length === 0) {
    picker.replaceChildren(el("p", { className: "muted", text: "no model is served" }));
    return;
  }
  picker.replaceChildren(
    ...entries.map((entry) =>
      el("label", { className: "check", title: entry.title }, [
        el("input", {
          type: "checkbox",
          value: entry.id,
          checked: checked.has(entry.id) && !entry.disabled,
          disabled: entry.disabled,
        }),
        el("span", { className: "model-id", text: entry.id }),
        el("span", { className: `pill ${entry.state}`, text: entry.state }),
      ]),
    ),
  );
}

// ------------------------------------------------------------------ ranking

function candidates() {
  return $("candidates")
    .value.split("\n")
    .map((line) => line.trim())
    .filter((line) => line.length > 0);
}

/** nDCG@10 of a ranking with TREC's gain (2^grade - 1); null when nothing is judged. */
function ndcg10(rankedGrades, allGrades) {
  if (!allGrades.some((g) => g !== null && g !== undefined)) return null;
  const gain = (g) => (g ? 2 ** g - 1 : 0);
  const dcg = (grades) => grades.slice(0, 10).reduce((sum, g, i) => sum + gain(g) / Math.log2(i + 2), 0);
  const ideal = dcg([...allGrades].sort((a, b) => (b || 0) - (a || 0)));
  return ideal > 0 ? dcg(rankedGrades) / ideal : 0;
}

function linkHits(index, on) {
  for (const hit of document.querySelectorAll(`.hit[data-index="${index}"]`)) hit.classList.toggle("linked", on);
}

function renderHits(column, result, documents) {
  const scores = result.data.scores;
  const values = scores.map((s) => s.score);
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  // Probabilities fill the bar on their own scale; logits and similarities from the column's lowest to its highest.
  const absolute = lo >= 0 && hi <= 1;
  const grades = documents.map((text) => state.grades.get(text));
  const list = el("ol", { className: "ranking" });
  for (const scored of scores) {
    const text = documents[scored.index];
    const grade = grades[scored.index];
    const fraction = absolute ? scored.score : hi > lo ? (scored.score - lo) / (hi - lo) : 1;
    const fill = el("span", { className: "fill" });
    fill.style.width = `${Math.max(1.5, fraction * 100).toFixed(1)}%`;
    const hit = el(
      "li",
      {
        className: "hit",
        dataset: { index: scored.index, score: String(scored.score) },
        onmouseenter: () => linkHits(scored.index, true),
        onmouseleave: () => linkHits(scored.index, false),
        onclick: () => hit.classList.toggle("open"),
      },
      [
        el("div", { className: "hit-head" }, [
          el("span", { className: "rank", text: scored.rank + 1 }),
          el("span", { className: "score", text: scored.score.toFixed(4), title: String(scored.score) }),
          el("span", { className: "bar" }, [fill]),
          grade !== undefined && grade !== null
            ? el("span", { className: `grade g${grade}`, text: `rel ${grade}`, title: "relevance grade of the sample" })
            : null,
          el("span", {
            className: "index",
            text: `#${scored.index + 1}`,
            title: `line ${scored.index + 1} of the candidates`,
          }),
          scored.truncated ? el("span", { className: "flag", text: "cut", title: "truncated to fit the model" }) : null,
        ]),
        el("p", { className: "text", text }),
      ],
    );
    list.append(hit);
  }
  const usage = result.data.usage;
  const quality = ndcg10(
    scores.map((s) => grades[s.index]),
    grades,
  );
  const meta = [plural(usage.pairs, "pair"), plural(usage.input_tokens, "token")];
  if (usage.truncated_items) meta.push(`${usage.truncated_items} cut to fit`);
  if (quality !== null) meta.push(`nDCG@10 ${quality.toFixed(3)}`);
  column.querySelector(".meta").textContent = meta.join(" · ");
  column.querySelector(".latency").textContent = `${Math.round(result.ms)} ms`;
  column.classList.remove("pending");
  column.classList.add("done");
  column.append(list);
}

async function rank(event) {
  event.preventDefault();
  if (state.running) return;
  const query = $("query").value.trim();
  const documents = candidates();
  const models = [...document.querySelectorAll("#model-picker input:checked")].map((input) => input.value);
  if (!query) return say("form-message", "Enter a query.", "error");
  if (documents.length === 0) return say("form-message", "Enter at least one candidate, one per line.", "error");
  if (models.length === 0) return say("form-message", "Choose at least one model.", "error");
  const body = { query: { text: query }, items: documents.map((text, i) => ({ id: String(i), text })) };
  if ($("raw-scores").checked) body.options = { raw_scores: true };

  state.running = true;
  $("rank").disabled = true;
  say("form-message", `Ranking ${plural(documents.length, "candidate")} with ${plural(models.length, "model")}…`);
  const results = $("results");
  const columns = models.map((model) =>
    el("article", { className: "column pending", dataset: { model } }, [
      el("header", {}, [el("h3", { text: model }), el("span", { className: "latency", text: "…" })]),
      el("p", { className: "meta muted", text: "ranking…" }),
    ]),
  );
  results.replaceChildren(...columns);
  results.setAttribute("aria-busy", "true");
  // One after another: on a shared CPU, concurrent requests would inflate each other's latency.
  for (const [i, model] of models.entries()) {
    const column = columns[i];
    const result = await call("POST", `/v1/score/${modelPath(model)}`, body);
    if (result.ok) {
      renderHits(column, result, documents);
    } else {
      column.classList.remove("pending");
      column.classList.add("failed");
      column.querySelector(".latency").textContent = `${Math.round(result.ms)} ms`;
      column.querySelector(".meta").textContent = "";
      column.append(el("p", { className: "message error", text: result.error }));
    }
  }
  results.removeAttribute("aria-busy");
  state.running = false;
  $("rank").disabled = false;
  say("form-message", "Hover a passage to find it in the other columns; click it to read it whole.");
  refreshStatus();
}

// ------------------------------------------------------------------ status: /v1/models and /metrics

/** Samples of the Prometheus text format (kept hand-written: a dozen lines, for four numbers). */
function parseMetrics(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels = {};
    for (const label of (match[2] || "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[label[1]] = label[2].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    }
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

function sum(samples, name, keep = () => true) {
  return samples.filter((s) => s.name === name && keep(s.labels)).reduce((total, s) => total + s.value, 0);
}

function card(label, value, detail, id) {
  return el("div", { className: "card", id }, [
    el("span", { className: "card-label", text: label }),
    el("span", { className: "card-value", text: value }),
    el("span", { className: "card-detail", text: detail }),
  ]);
}

function renderCards(listing, samples) {
  const memory = listing ? listing.memory : null;
  const loaded = state.models.filter((m) => m.state === "loaded");
  const cards = [];
  cards.push(
    card(
      "Loaded models",
      memory ? `${memory.loaded_models}${memory.max_loaded_models ? ` / ${memory.max_loaded_models}` : ""}` : "–",
      loaded.map((m) => m.id).join(", ") || "none",
      "card-loaded",
    ),
  );
  const rss = samples ? sum(samples, "process_resident_memory_bytes") : null;
  cards.push(
    card(
      "Model memory",
      memory ? formatBytes(memory.used_bytes) : "–",
      `${memory && memory.budget_bytes ? `budget ${formatBytes(memory.budget_bytes)} · ` : ""}process ${formatBytes(rss)}`,
      "card-memory",
    ),
  );
  if (samples) {
    const units = sum(samples, "rerankd_queue_units");
    const tokens = sum(samples, "rerankd_queue_tokens");
    const active = sum(samples, "rerankd_queue_active_requests");
    cards.push(
      card(
        "Queue",
        `${units}`,
        `sequences waiting · ${tokens} tokens · ${plural(active, "request")} active`,
        "card-queue",
      ),
    );
    const now = performance.now();
    const requests = sum(samples, "rerankd_http_requests_total", (labels) => SCORING_ROUTES.has(labels.route));
    const pairs = sum(samples, "rerankd_batch_size_sum");
    state.scrapes = state.scrapes.filter((scrape) => now - scrape.time <= THROUGHPUT_WINDOW_MS);
    const oldest = state.scrapes[0];
    state.scrapes.push({ time: now, requests, pairs });
    const seconds = oldest ? (now - oldest.time) / 1000 : 0;
    const rate = (count) => (seconds > 0 ? formatRate(count / seconds) : "–");
    cards.push(
      card(
        "Throughput",
        `${oldest ? rate(pairs - oldest.pairs) : "–"} pairs/s`,
        `${oldest ? rate(requests - oldest.requests) : "–"} requests/s over ${Math.round(seconds)} s · ${requests} served`,
        "card-throughput",
      ),
    );
    state.queues = new Map();
    for (const s of samples.filter((s) => s.name === "rerankd_queue_units")) state.queues.set(s.labels.model, s.value);
  } else {
    cards.push(
      card("Queue", "–", "/metrics unavailable", "card-queue"),
      card("Throughput", "–", "", "card-throughput"),
    );
  }
  $("status-cards").replaceChildren(...cards);
}

/** A button for an admin write; with `confirm`, the first click only asks (for 5 s) and the second acts. */
function adminButton(label, action, { confirm = null, key = null } = {}) {
  const asking = confirm && state.confirming.has(key);
  const button = el("button", {
    type: "button",
    className: asking ? "small confirm" : "small",
    text: asking ? confirm : label,
  });
  button.addEventListener("click", async () => {
    if (confirm && !state.confirming.has(key)) {
      const timer = setTimeout(() => {
        state.confirming.delete(key);
        renderTable();
      }, 5000);
      state.confirming.set(key, timer);
      renderTable();
      return;
    }
    if (confirm) {
      clearTimeout(state.confirming.get(key));
      state.confirming.delete(key);
    }
    button.disabled = true;
    await action();
    button.disabled = false;
  });
  return button;
}

async function adminCall(method, path, body, doing) {
  say("admin-message", `${doing}…`);
  const result = await call(method, path, body, { admin: true });
  say(
    "admin-message",
    result.ok ? `${doing}: done in ${(result.ms / 1000).toFixed(1)} s` : `${doing}: ${result.error}`,
    result.ok ? "ok" : "error",
  );
  await refreshStatus();
  return result;
}

function modelRow(model) {
  const actions = el("td", { className: "admin-only actions" }, [
    adminButton("Swap…", () => {
      $("load-name").value = model.id;
      $("load-source").value = model.source || "";
      $("load-source").focus();
    }),
    model.source
      ? adminButton("Reload", () =>
          adminCall(
            "PUT",
            `/v1/models/${modelPath(model.id)}`,
            sourceBody(model.source, model.revision),
            `reload ${model.id}`,
          ),
        )
      : null,
    adminButton(
      "Unload",
      () => adminCall("DELETE", `/v1/models/${modelPath(model.id)}`, undefined, `unload ${model.id}`),
      {
        confirm: "Confirm unload",
        key: model.id,
      },
    ),
  ]);
  const error = model.state === "failed" && model.last_error ? model.last_error.message : null;
  const rows = [
    el("tr", { dataset: { model: model.id } }, [
      el("td", {}, [
        el("span", { className: "model-id", text: model.id }),
        error ? el("div", { className: "error small-text", text: error }) : null,
      ]),
      el("td", {}, [el("span", { className: `pill ${model.state}`, text: model.state })]),
      el("td", { text: model.family || "–" }),
      el("td", { text: model.memory_bytes ? formatBytes(model.memory_bytes) : "–" }),
      el("td", { text: model.requests_served ?? "–" }),
      el("td", { text: state.queues.get(model.id) ?? "–" }),
      actions,
    ]),
  ];
  for (const adapter of model.adapters || []) {
    rows.push(
      el("tr", { className: "adapter", dataset: { model: adapter.id } }, [
        el("td", {}, [el("span", { className: "model-id", text: `↳ ${adapter.id}` })]),
        el("td", {}, [el("span", { className: `pill ${adapter.state}`, text: adapter.state })]),
        el("td", { text: "LoRA adapter" }),
        el("td", { text: adapter.memory_bytes ? formatBytes(adapter.memory_bytes) : "–" }),
        el("td", { text: adapter.requests_served ?? "–" }),
        el("td", { text: state.queues.get(adapter.id) ?? "–" }),
        el("td", { className: "admin-only actions" }, [
          adminButton(
            "Unload",
            () =>
              adminCall(
                "DELETE",
                `/v1/models/${modelPath(adapter.model)}/adapters/${encodeURIComponent(adapter.name)}`,
                undefined,
                `unload ${adapter.id}`,
              ),
            { confirm: "Confirm unload", key: adapter.id },
          ),
        ]),
      ]),
    );
  }
  return rows;
}

function sourceBody(source, revision) {
  const body = { source };
  if (revision) body.revision = revision;
  return body;
}

/** Redraws the models table when what it shows changed (a redraw would reset a button being clicked). */
function renderTable() {
  const shown = (m) => [m.id, m.state, m.family, m.source, m.revision, m.memory_bytes, m.requests_served, m.last_error];
  const rows = state.models.map((m) => [shown(m), (m.adapters || []).map((a) => [shown(a), a.model, a.name])]);
  const signature = JSON.stringify([rows, [...state.queues], [...state.confirming.keys()]]);
  if (signature === state.tableSignature) return;
  state.tableSignature = signature;
  $("models-table").replaceChildren(...state.models.flatMap(modelRow));
}

let refreshing = null; // the refresh running now
let queued = null; // one more after it: it read the server (and the keys) before the latest change

/** Reads /v1/models and /metrics and redraws the status panel and the model picker. */
function refreshStatus() {
  if (!refreshing) {
    refreshing = readStatus().finally(() => {
      refreshing = null;
    });
    return refreshing;
  }
  if (!queued) {
    const next = () => {
      queued = null;
      return refreshStatus();
    };
    queued = refreshing.then(next, next);
  }
  return queued;
}

async function readStatus() {
  const [listing, metrics] = await Promise.all([call("GET", "/v1/models"), call("GET", "/metrics")]);
  const samples = metrics.ok ? parseMetrics(metrics.text) : null;
  if (listing.ok) {
    state.models = listing.data.data.filter((m) => m.registered);
    say("status-message", "");
    renderPicker(state.models);
    if (!state.samplesLoaded) loadSamples();
  } else {
    say(
      "status-message",
      listing.status === 401 ? `${listing.error} — enter the server's API key above.` : listing.error,
      "error",
    );
    if (listing.status === 401) {
      $("model-picker").replaceChildren(el("p", { className: "muted", text: "enter the API key to list the models" }));
      state.pickerSignature = "";
    }
  }
  if (!listing.ok) state.models = [];
  renderCards(listing.ok ? listing.data : null, samples);
  $("models-count").textContent = listing.ok ? `(${state.models.length})` : "";
  renderTable();
  document.body.dataset.updated = String(Date.now());
}

// ------------------------------------------------------------------ wiring

function keysChanged() {
  document.body.classList.toggle("admin", $("admin-key").value.trim() !== "");
  state.samplesLoaded = false;
  refreshStatus();
}

function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

document.addEventListener("DOMContentLoaded", () => {
  $("rank-form").addEventListener("submit", rank);
  $("keys").addEventListener("submit", (event) => event.preventDefault());
  const onKeys = debounce(keysChanged, 300);
  $("api-key").addEventListener("input", onKeys);
  $("admin-key").addEventListener("input", onKeys);
  $("sample").addEventListener("change", pickSample);
  $("load-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = $("load-name").value.trim();
    const body = sourceBody($("load-source").value.trim(), $("load-revision").value.trim());
    adminCall("PUT", `/v1/models/${modelPath(name)}`, body, `load ${name}`);
  });
  $("adapter-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const model = $("adapter-model").value.trim();
    const adapter = $("adapter-name").value.trim();
    const body = { source: $("adapter-source").value.trim() };
    adminCall(
      "PUT",
      `/v1/models/${modelPath(model)}/adapters/${encodeURIComponent(adapter)}`,
      body,
      `load ${model}:${adapter}`,
    );
  });
  $("models-details").open = true;
  refreshStatus();
  setInterval(() => {
    if (!document.hidden) refreshStatus();
  }, POLL_MS);
});
