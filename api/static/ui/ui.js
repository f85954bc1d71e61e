// The service's web UI: plain pages that read the /v1 API with the team's key (kept in the
// browser's session storage) and draw with Chart.js. A team sees exactly what its key sees.
"use strict";

const KEY = "tuner-api-key";
const FINAL = ["completed", "failed", "cancelled"];

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-") || k === "href" || k === "id" || k === "title") e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return e;
}

function fmt(v, digits = 4) {
  if (v === null || v === undefined) return "-";
  if (typeof v !== "number") return String(v);
  return Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(2) : v.toFixed(digits);
}

function fmtParam(v) {
  // A hyperparameter as `tuner recommend` prints it (4 significant digits, an integer whole):
  // fmt's fixed 4 decimals showed lookahead's k=10.0000 and adagrad's lr_decay=0.0010 for
  // 0.001002.
  if (typeof v !== "number") return String(v);
  if (Number.isInteger(v)) return String(v);
  const p = Number(v.toPrecision(4));  // below 1e-4 in exponent form, as %.4g writes it
  return p !== 0 && (Math.abs(p) < 1e-4 || Math.abs(p) >= 1e6) ? p.toExponential() : String(p);
}

function yAxis(scale, title) {
  // A loss (minimized, every value above 0: `scale` log) on a logarithmic axis, as the answer
  // ranks it (on the loss's logarithm): on a linear axis a house-price regression's leaders at
  // 0.023 lay flat on the floor under radam's 0.48, their intervals unreadable.
  return scale === "log" ? { type: "logarithmic", ticks: { callback: logTick }, title: { display: true, text: `${title} (log scale)` } }
                         : { title: { display: true, text: title } };
}

function logTick(value, index, ticks) {
  // A log axis's labels and grid lines, none nearer than a tenth of the axis to the one below:
  // over less than a decade Chart.js labels 0.0051, 0.0052, 0.0053 and 0.0055 into each other.
  const lo = Math.log10(ticks[0].value), hi = Math.log10(ticks[ticks.length - 1].value);
  if (index === 0) logTick.last = -Infinity;
  const at = Math.log10(value);
  if (at - logTick.last < Math.abs(hi - lo) / 10) return null;
  logTick.last = at;
  return String(Number(value.toPrecision(2)));
}

function showError(message) {
  const box = document.getElementById("error");
  box.textContent = message;
  box.hidden = !message;
}

function askKey(reason) {
  const form = document.getElementById("key-form");
  form.hidden = false;
  document.getElementById("key-reason").textContent = reason || "";
  form.onsubmit = (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(KEY, document.getElementById("api-key").value.trim());
    location.reload();
  };
}

function key() {
  return sessionStorage.getItem(KEY);
}

async function api(path, options = {}) {
  const r = await fetch(path, { ...options, headers: { Authorization: `Bearer ${key()}`, ...(options.headers || {}) } });
  if (r.status === 401) {
    sessionStorage.removeItem(KEY);
    askKey("The service refused that key; give another.");
    throw new Error("unauthorised");
  }
  if (!r.ok) {
    let detail = `${r.status} ${r.statusText}`;
    try { detail = (await r.json()).detail || detail; } catch (e) { /* not JSON */ }
    showError(detail);
    throw new Error(detail);
  }
  return r;
}

async function getJson(path) {
  return (await api(path)).json();
}

// Server-sent events over fetch (EventSource cannot send the Authorization header). A stream
// that drops before the job's "end" (the service restarting, its database unavailable: 503) is
// opened again from the last event's id (Last-Event-ID: no event repeated), every second, for up
// to FOLLOW_GIVE_UP_MS without an answer; the page says so meanwhile.
const FOLLOW_RETRY_MS = 1000;
const FOLLOW_GIVE_UP_MS = 120000;

async function follow(path, onEvent) {
  let lastId = null;
  let lostSince = null;
  for (;;) {
    let r = null;
    try {
      r = await fetch(path, { headers: { Authorization: `Bearer ${key()}`, Accept: "text/event-stream",
                                         ...(lastId ? { "Last-Event-ID": lastId } : {}) } });
    } catch (e) { /* refused or dropped: the service is restarting */ }
    if (r && !r.ok && r.status !== 503) {
      // says what is wrong (a refused key, a job not found) and throws; else it was passing
      (await api(path)).body?.cancel();
    }
    if (r && r.ok) {
      if (lostSince !== null) showError("");
      lostSince = null;
      try {
        if (await readEvents(r, (id, event, data) => {
          if (id) lastId = id;
          onEvent(event, data);
        })) return;
      } catch (e) { /* the stream dropped mid-way */ }
    }
    lostSince = lostSince ?? Date.now();
    if (Date.now() - lostSince > FOLLOW_GIVE_UP_MS) {
      showError("Lost the connection to the service; reload the page to try again.");
      throw new Error("lost the event stream");
    }
    showError("Lost the connection to the service; reconnecting…");
    await new Promise((done) => setTimeout(done, FOLLOW_RETRY_MS));
  }
}

async function readEvents(r, onEvent) {
  // Calls onEvent(id, event, data) for each event; true once the "end" event came.
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return false;
    buf += value.replace(/\r\n/g, "\n");
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const chunk = buf.slice(0, i);
      buf = buf.slice(i + 2);
      let event = "message";
      let id = null;
      const data = [];
      for (const line of chunk.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("id:")) id = line.slice(3).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) {
        onEvent(id, event, JSON.parse(data.join("\n")));
        if (event === "end") return true;
      }
    }
  }
}

function mark(canvas, chart) {
  // What the browser test reads: the chart exists and how many series it drew.
  canvas.dataset.series = String(chart.data.datasets.length);
  canvas.dataset.rendered = "true";
}

// jobs ---------------------------------------------------------------------------------------

function jobRow(job) {
  const p = job.progress;
  const bar = el("progress", { max: Math.max(p.n_trials, 1), value: p.done });
  return el("tr", { "data-job": job.id },
    el("td", {}, el("a", { href: `/ui/jobs/${job.id}` }, job.id.slice(0, 8))),
    el("td", { class: "params" }, jobTaskName(job.task)),
    el("td", { class: `status ${job.status}` }, job.status),
    el("td", {}, bar, ` ${p.done}/${p.n_trials}`),
    el("td", {}, `${p.complete} complete, ${p.pruned} pruned, ${p.diverged} diverged, ${p.failed} failed`),
    el("td", {}, fmt(p.best_value)),
    el("td", {}, el("a", { href: `/ui/tasks/${job.task.id}` }, `task ${job.task.id}`)),
    el("td", {}, (job.created_at || "").replace("T", " ").slice(0, 19)));
}

async function jobsPage() {
  const body = document.getElementById("jobs");
  const data = await getJson("/v1/jobs?limit=100");
  document.getElementById("count").textContent = count(data.count, "job");  // not "1 jobs"
  body.replaceChildren(...data.data.map(jobRow));
  for (const job of data.data.filter((j) => !FINAL.includes(j.status))) {
    follow(`/v1/jobs/${job.id}/events`, (event, d) => {
      const row = body.querySelector(`tr[data-job="${job.id}"]`);
      const fresh = event === "end" ? d : { ...job, status: d.status, progress: d.progress };
      if (row) row.replaceWith(jobRow(fresh));
    }).catch(() => {});
  }
}

// one job ------------------------------------------------------------------------------------

const STOP_STYLE = { pruned: "crossRot", diverged: "triangle" };

function familyLabels(chart) {
  // One legend entry per family (its first trial), not one per trial; then the stop markers.
  const ds = chart.data.datasets;
  return Chart.defaults.plugins.legend.labels.generateLabels(chart).filter((item) => {
    const d = ds[item.datasetIndex];
    return !d.family || ds.findIndex((x) => x.family === d.family) === item.datasetIndex;
  }).map((item) => (ds[item.datasetIndex].family
    // a family is a solid line in its colour; a kind of stop is its marker (× or ▲), as drawn
    ? { ...item, text: ds[item.datasetIndex].family, pointStyle: "line", lineDash: [] }
    : { ...item, fillStyle: "#fff", pointStyle: ds[item.datasetIndex].pointStyle }));
}

// A line of one point (a trial of one epoch) is drawn as a dot: with no radius it would not show.
const lone = (points) => (points.length === 1 ? 3 : 0);

// Clicking a family in the legend shows or hides every trial of that family (Chart.js's own
// click toggled its first trial alone); a kind of stop marker toggles itself.
function toggleFamily(e, item, legend) {
  const chart = legend.chart;
  const ds = chart.data.datasets;
  const family = ds[item.datasetIndex].family;
  const show = !chart.isDatasetVisible(item.datasetIndex);
  ds.forEach((d, i) => {
    if (i === item.datasetIndex || (family && d.family === family)) chart.setDatasetVisibility(i, show);
  });
  chart.update();
}

// A chart drawn again with new data (a running job's page, as its trials finish) keeps what
// the reader hid: a family (or a kind of stop) clicked off in the legend stays off.
function drawChart(canvas, config) {
  const old = Chart.getChart(canvas);
  if (old) {
    const off = new Set(old.data.datasets.filter((d, i) => !old.isDatasetVisible(i)).map((d) => d.family ?? d.label));
    for (const d of config.data.datasets) d.hidden = off.has(d.family ?? d.label);
    old.destroy();
  }
  return new Chart(canvas, config);
}

function zoomRange(fig) {
  // The learning-curve chart's y range around the trials run to the end, from their second
  // epoch on (every run's first epoch is low), padded by a tenth (on a log axis, of its
  // decades); null where that range is most of the axis anyway. On mlp/breast_cancer the
  // curves that decide the answer lay in 0.93-0.98 of an axis from 0.2, set by trials pruned
  // after one epoch.
  const log = fig.y_scale === "log";
  const to = (y) => (log ? Math.log10(y) : y), from = (v) => (log ? 10 ** v : v);
  const done = fig.curves.filter((c) => c.state === "complete")
    .flatMap((c) => c.points.filter(([x]) => x >= 2 || c.points.length === 1)).map(([, y]) => to(y));
  const all = fig.curves.flatMap((c) => c.points).map(([, y]) => to(y));
  if (done.length < 2 || !all.length) return null;
  const lo = Math.min(...done), hi = Math.max(...done), alo = Math.min(...all), ahi = Math.max(...all);
  const pad = (hi - lo) / 10 || Math.abs(hi) / 100 || 0.01;
  const min = lo - pad, max = hi + pad;
  return max - min > (ahi - alo) / 2 ? null : { min: from(min), max: from(max) };
}

// Whether the reader zoomed the learning curves in: kept while a running job's page redraws.
let curvesZoomed = false;

function zoomCurves(chart, range) {
  const y = chart.options.scales.y;
  y.min = curvesZoomed && range ? range.min : undefined;
  y.max = curvesZoomed && range ? range.max : undefined;
  y.ticks.includeBounds = !(curvesZoomed && range);  // no label at a bound beside a round one
  const button = document.getElementById("curves-zoom");
  if (button) {
    button.hidden = !range;
    button.textContent = curvesZoomed ? "Show every trial" : "Zoom to the trials run to the end";
  }
  chart.update();
}

function drawJobFigures(fig) {
  const metric = fig.metric;
  const best = document.getElementById("best-chart");
  const bestChart = drawChart(best, {
    type: "line",
    data: { datasets: [{ label: `best ${metric} so far`, data: fig.best_so_far.map(([x, y]) => ({ x, y })),
                         stepped: true, pointRadius: lone(fig.best_so_far), borderColor: "#333" }] },
    options: { animation: false, parsing: false, scales: { x: { type: "linear", ticks: { precision: 0 }, title: { display: true, text: "epochs consumed" } },
                                                           y: yAxis(fig.y_scale, metric) } },
  });
  mark(best, bestChart);

  const curves = document.getElementById("curves-chart");
  const datasets = fig.curves.map((c) => ({
    label: `#${c.number} ${c.optimizer} (${c.state})`, family: c.optimizer,
    data: c.points.map(([x, y]) => ({ x, y })), borderColor: c.color, backgroundColor: c.color,
    borderWidth: c.state === "complete" ? 1.5 : 1, borderDash: c.baseline ? [1, 3] : c.confirmation ? [4, 3] : [],
    pointRadius: lone(c.points), showLine: true, type: "line",
  }));
  const stops = fig.curves.filter((c) => c.stop && c.stop[1] !== null);
  for (const state of ["pruned", "diverged"]) {
    const pts = stops.filter((c) => c.state === state);
    if (!pts.length) continue;
    datasets.push({ label: `${state} (stopped here)`, type: "scatter", stops: true,
                    data: pts.map((c) => ({ x: c.stop[0], y: c.stop[1], trial: c.number })),
                    pointStyle: STOP_STYLE[state], pointRadius: 6, borderColor: "#000",
                    backgroundColor: pts.map((c) => c.color) });
  }
  const curvesChart = drawChart(curves, {
    type: "line", data: { datasets },
    options: { animation: false, parsing: false,
               plugins: { legend: { onClick: toggleFamily, labels: { generateLabels: familyLabels, usePointStyle: true } } },
               scales: { x: { type: "linear", ticks: { precision: 0 }, title: { display: true, text: "epoch" } },
                         y: yAxis(fig.y_scale, metric) } },
  });
  curves.dataset.trials = String(fig.curves.length);
  const capped = document.getElementById("curves-capped");
  if (capped && fig.n_trials > fig.curves.length) {
    capped.hidden = false;
    capped.textContent = `The curves of ${fig.curves.length} of the job's ${fig.n_trials} trials: each family's best, then the latest.`;
  }
  curves.dataset.stops = String(stops.length);
  mark(curves, curvesChart);
  const range = zoomRange(fig);
  zoomCurves(curvesChart, range);
  const button = document.getElementById("curves-zoom");
  if (button) button.onclick = () => { curvesZoomed = !curvesZoomed; zoomCurves(curvesChart, range); };

  const table = document.getElementById("families");
  table.replaceChildren(...fig.families.map((f) => el("tr", { "data-family": f.optimizer },
    el("td", {}, el("span", { class: "swatch", style: `background:${f.color}` }), ` ${f.optimizer}`),
    el("td", {}, f.best ? fmt(f.best.value) : "no complete trial"),
    el("td", {}, f.best ? `#${f.best.number}` + (f.best.baseline ? " (the untuned baseline)" : "") : "-"),
    el("td", {}, f.best ? f.best.schedule || "constant" : "-"),
    el("td", { class: "params" }, f.best ? Object.entries(f.best.params).map(([k, v]) => `${k}=${fmtParam(v)}`).join(", ") : ""),
    el("td", {}, `${f.n_complete}/${f.n_trials}`))));
}

// Calls fn() when asked, never two at once, at most once per LIVE_MIN_MS and with at least
// LIVE_IDLE times its last duration between two calls (a job of thousands of trials takes a
// while to read: the page must not keep the service busy); a call asked for meanwhile runs
// after, so the last state is always drawn.
const LIVE_MIN_MS = 2000;
const LIVE_IDLE = 4;
function throttled(fn) {
  let busy = false, pending = false, timer = null, last = 0, took = 0;
  const run = async () => {
    if (busy) { pending = true; return; }
    const wait = last + Math.max(LIVE_MIN_MS, LIVE_IDLE * took) - Date.now();
    if (wait > 0) {
      timer = timer ?? setTimeout(() => { timer = null; run(); }, wait);
      return;
    }
    busy = true;
    const start = Date.now();
    try { await fn(); } catch (e) { /* the next call tries again; the stream says if the service is gone */ }
    took = Date.now() - start;
    last = Date.now();
    busy = false;
    if (pending) { pending = false; run(); }
  };
  return run;
}

// The question a job answers: its task at its training budget, on its data split (as `tuner
// submit --wait` asks it, cli.remote._asked), as the query of /v1/recommendations and of the
// task page. (The job page linked the task page at the task's default budget and split, which
// can be another job's: the other split of a `--splits 2` submission.)
const ASKED = ["epochs", "batch_size", "precision", "early_stopping_patience", "training_seed"];
function jobAsked(j) {
  const t = j.spec.training;
  return new URLSearchParams({ epochs: t.epochs, batch_size: t.batch_size, precision: t.precision,
                               early_stopping_patience: t.early_stopping_patience || 0, training_seed: t.seed });
}

async function jobPage() {
  const id = location.pathname.split("/").pop();
  let job = await getJson(`/v1/jobs/${id}`);
  const head = document.getElementById("job-head");
  let answer = null;  // the answer at the job's budget and split, read when the job has ended
  const readAnswer = async () => {
    try {
      answer = await getJson(`/v1/recommendations?task=${job.task.id}&${jobAsked(job)}`);
    } catch (e) { answer = null; }  // the rest of the page still shows (api() says why above)
  };
  const render = (j) => {
    head.replaceChildren(
      el("h1", {}, jobTaskName(j.task)),
      el("p", {}, `job ${j.id}: `, el("span", { class: `status ${j.status}` }, j.status),
         ` · ${j.progress.done}/${j.progress.n_trials} trials · best ${j.task.metric} ${fmt(j.progress.best_value)} · `,
         ...(Object.keys(j.failed_reasons || {}).length ? [el("span", { id: "failed-reasons" },
           failedText(j)), " · "] : []),
         el("a", { href: `/ui/tasks/${j.task.id}?${jobAsked(j)}`, id: "task-link" }, "which optimizer for this task?"), " · ",
         el("a", { href: `/v1/jobs/${j.id}/trials?format=csv`, id: "csv-link" }, "trials as CSV")),
      el("p", { id: "job-answer", class: `headline ${answer ? answerClass(answer) : "none"}`, hidden: !answer?.in_short },
         answer?.in_short ? `The answer at this job's budget and data split (every job of the task there): ${answer.in_short}` : ""),
      ...(j.error ? [el("p", { id: "job-error", class: "status failed" }, j.error)] : []),
      // why a queued job waits (no dispatcher running, or every one busy), until it runs
      ...(j.waiting && !FINAL.includes(j.status) ? [el("p", { id: "job-waiting", class: "waiting" }, j.waiting.note)] : []),
      el("ul", { class: "notes" }, ...(j.notes || []).map((n) => el("li", {}, n)),
         // the confirmation race's note once it has ended (its runs, the families given a
         // second look, why it stopped), as `tuner status` prints it
         ...(j.confirmation?.note ? [el("li", { id: "confirm-note" }, j.confirmation.note)] : [])));
  };
  render(job);
  // An ended job's answer is read beside its figures and trials, not before them: an answer
  // not cached yet is computed from the task's whole history, the slowest read of the page.
  const answered = FINAL.includes(job.status) ? readAnswer().then(() => render(job)) : null;
  // The figures, the trials and the failures, read again as trials finish while the job runs.
  const show = async () => {
    const fig = await getJson(`/v1/jobs/${id}/figures`);
    drawJobFigures(fig);
    // Empty axes say nothing: a job whose trials all failed before an epoch, or none ran yet.
    const empty = !fig.best_so_far.length && !fig.curves.some((c) => c.points.length);
    const charts = document.querySelector(".charts");
    charts.style.display = empty ? "none" : "";
    document.getElementById("no-epochs")?.remove();
    if (empty) {
      charts.before(el("p", { class: "hint", id: "no-epochs" }, FINAL.includes(job.status)
        ? "No trial reported an epoch: nothing to draw." : "No trial has reported an epoch yet: the charts are drawn as trials finish."));
    }
    const trials = await getJson(`/v1/jobs/${id}/trials?steps=false&limit=${TRIALS_SHOWN}`);
    showTrials(trials, job.task.direction);
    if (job.progress.failed || trials.data.some((t) => t.state === "failed")) {
      // Every trial is on hand (tracebacks included) unless the job has more than the page
      // holds: then its failed ones are read on their own.
      const own = trials.data.filter((t) => t.state === "failed");
      showFailures(trials.count <= trials.data.length ? { data: own, count: own.length }
        : await getJson(`/v1/jobs/${id}/trials?state=failed&steps=false&limit=${TRIALS_SHOWN}`), id);
    }
  };
  await show();
  await answered;
  if (!FINAL.includes(job.status)) {
    // Drawn again when the job's count of finished trials moves, and at its end (the end
    // event carries the final job: its error, its notes), without reloading the page.
    const again = throttled(show);
    follow(`/v1/jobs/${id}/events`, (event, d) => {
      const { done, failed } = job.progress;
      job = event === "end" ? d : { ...job, status: d.status, progress: d.progress, notes: d.notes ?? job.notes, waiting: d.waiting };
      render(job);
      if (event === "end") readAnswer().then(() => render(job));
      if (event === "end" || job.progress.done !== done || job.progress.failed !== failed) again();
    }).catch(() => {});
  }
  document.getElementById("csv-link")?.addEventListener("click", async (ev) => {
    ev.preventDefault();  // the link needs the key: fetch it, then save
    const blob = await (await api(`/v1/jobs/${id}/trials?format=csv`)).blob();
    const a = el("a", { href: URL.createObjectURL(blob) });
    a.download = `${id}-trials.csv`;
    a.click();
  });
}

// The job's trials as a table, sortable by any column (a second click reverses it); the
// value column sorts best first for the job's direction.
const TRIALS_SHOWN = 1000;
function trialOrigin(t) {
  if (t.confirm_of !== null) return `confirms #${t.confirm_of}`;
  if (t.baseline) return "baseline";
  if (t.retry_of !== null) return `retry of #${t.retry_of}`;
  if (t.warm_start) return "warm start";
  return t.defaults_sweep ? "defaults sweep" : "sampler";
}
// The table's rows and how it is sorted, kept while a running job's page draws it again.
const trialsView = { rows: [], direction: "maximize", key: "number", reverse: false, bound: false };
function showTrials(trials, direction) {
  trialsView.direction = direction;
  trialsView.rows = trials.data.map((t) => ({
    ...t, lr: Object.entries(t.params).find(([k]) => k.endsWith(".lr"))?.[1] ?? null, origin: trialOrigin(t),
    ended: t.state === "complete" ? "complete" : `${t.stop_reason && t.stop_reason !== t.state ? t.stop_reason.replaceAll("_", " ") : t.state} `
      + (t.stop_step ? `at epoch ${t.stop_step}` : "before its first epoch"),
  }));
  if (!trialsView.bound) {
    trialsView.bound = true;
    document.querySelectorAll("#trials-table th").forEach((th) => th.addEventListener("click", () => {
      trialsView.reverse = trialsView.key === th.dataset.key ? !trialsView.reverse : false;
      trialsView.key = th.dataset.key;
      renderTrials();
    }));
  }
  renderTrials();
  document.getElementById("trials-note").textContent = trials.count > trials.data.length
    ? `The first ${trials.data.length} of ${trials.count} trials (every trial: the CSV); click a column's name to sort by it.`
    : "Every finished trial; click a column's name to sort by it.";
}

function renderTrials() {
  const { rows, direction, key: sortKey, reverse } = trialsView;
  const body = document.getElementById("trials");
  const sign = reverse ? -1 : 1;
  const better = direction === "maximize" ? -1 : 1;  // best first for the value
  const sorted = [...rows].sort((a, b) => {
    const x = a[sortKey], y = b[sortKey];
    if (x === y) return a.number - b.number;
    if (x === null || x === undefined) return 1;  // no value: last either way
    if (y === null || y === undefined) return -1;
    const c = typeof x === "number" ? x - y : String(x).localeCompare(String(y));
    return sign * (sortKey === "value" ? better * c : c);
  });
  body.replaceChildren(...sorted.map((t) => el("tr", { "data-trial": String(t.number), class: `trial ${t.state}` },
    el("td", {}, `#${t.number}`), el("td", {}, t.optimizer || "-"), el("td", {}, t.schedule || "-"),
    el("td", { title: t.detail || "" }, t.ended), el("td", {}, String(t.epochs_run)),
    el("td", {}, fmt(t.value)), el("td", {}, t.lr == null ? "-" : fmtParam(t.lr)), el("td", {}, t.seed ?? "-"), el("td", {}, t.origin))));
}

// The job's failed trials, one entry per way they failed (the same traceback, or the same
// detail where none was kept: a lost worker, a cancel), the first open.
const FAILURES_SHOWN = 20;  // ways of failing listed (a message naming each trial's lr differs each time)
function showFailures(trials, jobId) {
  const groups = new Map();
  for (const t of trials.data) {
    const k = t.traceback || `${t.stop_reason}: ${t.detail}`;
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k).push(t);
  }
  const list = document.getElementById("failure-list");
  const shown = [...groups.values()].slice(0, FAILURES_SHOWN);
  // Drawn again as a running job's trials fail: each way stays open or closed as the reader
  // left it (known by its first trial); a new one opens only when it is the first.
  const was = new Map([...list.querySelectorAll("details")].map((d) => [d.dataset.first, d.open]));
  list.replaceChildren(...shown.map((ts, i) => el("details", {
    "data-first": String(ts[0].number), open: was.get(String(ts[0].number)) ?? (i === 0 && !was.size) },
    el("summary", {}, `${count(ts.length, "trial")} (#${ts.map((t) => t.number).join(", #")})`
      + `${ts[0].epochs_run ? ` after ${count(ts[0].epochs_run, "epoch")}` : ""}: ${failureText(ts[0])}`),
    ...(ts[0].traceback ? [el("pre", {}, ts[0].traceback),
      el("p", { class: "hint" }, "Run it again on your machine, where the plugin is installed: ",
         el("code", {}, `tuner rerun ${jobId} ${ts[0].number}`), " (", el("code", {}, "--pdb"), ": in the debugger).")] : []))));
  if (groups.size > shown.length) {
    list.append(el("p", { class: "hint", id: "more-failures" }, `${groups.size - shown.length} more ways these trials failed: `,
      el("code", {}, `tuner trials ${jobId} --state failed --json`), " has every one."));
  }
  if (trials.count > trials.data.length) list.append(el("p", { class: "hint" }, `The first ${trials.data.length} of ${trials.count} failed trials.`));
  document.getElementById("failures").hidden = false;
}

// A failed trial's detail, with its stop reason in words where the detail does not say it
// (`cancelled: stopped ...`; `out of memory on cpu: ...` as it is).
function failureText(t) {
  const reason = (t.stop_reason || "failed").replaceAll("_", " ");
  return reason === "failed" || t.detail.startsWith(reason) ? t.detail : `${reason}: ${t.detail}`;
}

// one task's recommendation ------------------------------------------------------------------

// A model or dataset with its parameters: `mlp {"hidden":[64]}`. Two tasks of the same names
// differ in them (or in the digests of their data, weights or code): the list shows them.
const ref = (r) => (r ? `${r.name}${Object.keys(r.params || {}).length ? " " + JSON.stringify(r.params) : ""}` : "?");
// A job's task by its names and their parameters, as /ui/tasks names it: a team's CSVs are all
// `file`, and the jobs list said "mlp / file" of each.
const jobTaskName = (t) => `${ref({ name: t.model, params: t.model_params })} / ${ref({ name: t.dataset, params: t.dataset_params })}`;

// What makes this task this task (and not another with the same names): the parameters, the
// metric, and the digests of the team's own data, model folder and plugin code (of their bytes)
// or of the fetched hub copy a reference reads (its snapshot).
function taskIdentity(task) {
  const parts = [`task ${task.id}: model ${ref(task.model)}`, `dataset ${ref(task.dataset)}`, `metric ${task.metric}`];
  if (task.data_digest) parts.push(`data ${task.data_digest}`);
  if (task.model_digest) parts.push(`weights ${task.model_digest}`);
  if (task.code_digest) parts.push(`code ${task.code_digest}`);
  return parts.join(" · ");
}

// `1 trial`, `2 trials`.
const count = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
// A learning-rate axis labels 1, 2 and 5 of each decade: all nine crowd into each other.
const lrTick = (v) => ([1, 2, 5].includes(Number((v / 10 ** Math.floor(Math.log10(v) + 1e-9)).toFixed(6)))
  ? String(Number(v.toPrecision(1))) : "");

// A job's failed trials by reason: `5 failed: 4 out of memory, 1 stalled`; one kind, plain
// `failed`, is said once ("4 failed: 4 failed" said nothing more).
function failedText(j) {
  const reasons = Object.entries(j.failed_reasons || {});
  return reasons.every(([r]) => r === "failed") ? `${j.progress.failed} failed`
    : `${j.progress.failed} failed: ${reasons.map(([r, n]) => `${n} ${r.replaceAll("_", " ")}`).join(", ")}`;
}

// How a family's trials that never completed ended: `2 pruned, 1 diverged`, `2 out of memory`,
// `1 interrupted` (as tuner.recommend.how_ended).
function howEnded(ev) {
  const oom = ev.n_out_of_memory || 0, cut = ev.n_interrupted || 0;
  return [[ev.n_pruned || 0, "pruned"], [ev.n_diverged || 0, "diverged"], [(ev.n_failed || 0) - oom - cut, "failed"],
    [oom, "out of memory"], [cut, "interrupted"]].filter(([n]) => n > 0).map(([n, what]) => `${n} ${what}`).join(", ");
}

// Where a family that never completed stood against the best leader's configuration when stopped.
function atStop(n) {
  const at = n.leader_at_stop;
  if (!at) return "";
  const there = at.low === at.high ? fmt(at.low) : `${fmt(at.low)}-${fmt(at.high)}`;
  return n.level_at_stop ? `level with or ahead of ${at.optimizer}'s best configuration at that epoch (${there}): not shown to be behind it`
    : `behind ${at.optimizer}'s best configuration at that epoch (${there})`;
}

// How an answer's grouped families stand: tied within a measured noise, or, with none measured
// (`not_separated`), level on the values seen (until 2026-12-07 both "tied").
const tieWord = (rec) => (rec.verdict === "not_separated" ? "level" : "tied");

// One family's row of the task page's ranking (`rec`: the answer it belongs to).
function rankingRow(r, rec) {
  const underTuned = (rec.under_tuned || []).includes(r.optimizer);
  const byWidth = (rec.tied_by_width || []).includes(r.optimizer);
  const atCeiling = (rec.at_ceiling || []).includes(r.optimizer);
  return el("tr", { "data-family": r.optimizer },
    el("td", {}, String(r.rank)),
    el("td", {}, el("span", { class: "swatch", style: `background:${COLORS[r.optimizer] || "#555"}` }), ` ${r.optimizer}`),
    el("td", {}, `${fmt(r.expected.value)} [${fmt(r.expected.low)}, ${fmt(r.expected.high)}]`),
    el("td", {}, r.expected.kind),
    el("td", {}, (r.tied_with || []).join(", ") || "-"),
    el("td", {}, r.evidence ? [count(r.evidence.n_trials, "trial") + (r.evidence.n_baseline_runs ? ` (${r.evidence.n_baseline_runs} of the untuned baseline)` : ""),
                               count(r.evidence.n_confirmation_runs, "confirmation run")
                               // a second look: a run to the end of a trial the pruner stopped
                               + (r.evidence.n_second_looks ? ` (${r.evidence.n_second_looks} a second look at a pruned trial)` : ""),
                               count(r.evidence.n_jobs, "job")].join(", ")
      + (underTuned ? `; barely tuned (${count(r.evidence.configurations_tried, "configuration")} tried): may do better tuned` : "")
      + (byWidth ? "; tied only by its interval reaching the best leader's: not shown to be as good (more runs would tell)" : "")
      + (atCeiling ? "; the metric's best possible value on every run: this validation set cannot order it against the others there" : "")
      + (r.evidence.baseline_only ? "; its only configuration run to the end is the untuned baseline: its place is that of its defaults, not of it tuned" : "") : "-"),
    el("td", {}, !r.robustness ? "-" : (r.robustness.n_learning_rates ?? 2) < 2
      ? "one learning rate ran to the end (no range measured)" : r.robustness.bounded === false
      ? `at least ${r.robustness.lr_decades.toFixed(2)} decades (every learning rate tried was good)`
      // one good learning rate, others tried worse: it read "0.00 decades" (the demo's adamw)
      : r.robustness.lr_decades < 0.005 ? "one learning rate (others tried did worse)"
      : `${r.robustness.lr_decades.toFixed(2)} decades`));
}

function splitsBlock(splits) {
  // The task's data splits at the answer's budget, each ranked on its own (hidden when the task
  // ran on one): which families lead on every one, and each split's verdict.
  const box = el("div", { id: "splits", hidden: !splits });
  if (!splits) return box;
  const every = splits.lead_on_every_split;
  const most = splits.lead_on_most;  // with none on every split, those on the most
  box.append(el("p", {}, "By data split (each ranked on its own, never pooled): "
                + (every.length ? `leading on every split: ${every.join(", ")}` : "no family leads on every split"
                   + (most ? ` (${most.families.join(", ")} on ${most.splits} of ${splits.per_split.length})` : ""))),
             el("ul", {}, ...splits.per_split.map((x, i) => el("li", {},
               `training.seed ${x.training_seed}${i ? "" : " (this answer)"}: ${String(x.verdict).replace("_", " ")}: `
               + `${x.leaders.join(", ")} (${x.n_complete_trials} trials)`))));
  return box;
}

function clauses(text) {
  // The answer's summary, one clause a line: it is one sentence of clauses joined by "; " (a
  // wall of bold text on the page), and a "; " inside brackets is not a clause's end.
  const out = [];
  let depth = 0, start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "(" || c === "[") depth++;
    else if ((c === ")" || c === "]") && depth > 0) depth--;
    else if (c === ";" && text[i + 1] === " " && depth === 0) {
      out.push(text.slice(start, i));
      start = i + 2;
    }
  }
  out.push(text.slice(start));
  return out.filter((c) => c);
}

function startFromText(rec) {
  // The configuration to train with (`start_from`, what tuner.recipe trains with, as `tuner
  // recommend` says `start from:`): the page showed the families' intervals, never one.
  const s = rec.start_from;
  if (!s) return "";
  const params = Object.entries(s.params || {}).filter(([k, v]) => !k.endsWith("_on") || v)
    .map(([k, v]) => `${k.split(".").slice(1).join(".") || k}=${fmtParam(v)}`).join(" ");
  return `Start from: ${s.optimizer} with ${s.schedule}, ${params}` + (s.lr_scaling ? ` (${s.lr_scaling})` : "")
    + " (tuner.recipe trains with it)";
}

function barLabel(r, rec, leaders) {
  // A family's bar on the ranking chart: `adam (tied)`; one ranked on the untuned baseline's
  // runs alone says so, `adamw (untuned, tied)`: its bar is its defaults', not it tuned.
  const marks = [r.evidence && r.evidence.baseline_only ? "untuned" : "",
                 leaders.has(r.optimizer) && leaders.size > 1 ? tieWord(rec) : ""].filter(Boolean);
  return marks.length ? `${r.optimizer} (${marks.join(", ")})` : r.optimizer;
}

function loopNotes(rec) {
  // What the team's loop never used of what keeps its runs what the budget says (`loop_notes`),
  // a line each; hidden where there are none.
  return el("ul", { id: "loop-notes", class: "notes", hidden: !(rec.loop_notes || []).length },
            ...(rec.loop_notes || []).map((n) => el("li", {}, n)));
}

async function taskPage() {
  const id = location.pathname.split("/").pop();
  // A budget and split asked in the page's query (a job page's link): the answer there.
  const asked = new URLSearchParams([...new URLSearchParams(location.search)].filter(([k]) => ASKED.includes(k)));
  const [rec, lrs] = await Promise.all([getJson(`/v1/recommendations?task=${id}${asked.size ? `&${asked}` : ""}`),
                                        getJson(`/v1/tasks/${id}/learning-rates${asked.size ? `?${asked}` : ""}`)]);
  const task = (rec.tasks || [])[0] || {};
  document.getElementById("task-head").replaceChildren(
    el("h1", {}, `Which optimizer for ${task.model ? task.model.name : "?"} / ${task.dataset ? task.dataset.name : "?"}?`),
    el("p", { id: "task-identity", class: "identity" }, taskIdentity(task)),
    el("p", { id: "in-short", class: `headline ${answerClass(rec)}`, hidden: !rec.in_short },
       rec.in_short ? `In short: ${rec.in_short}` : ""),
    el("ul", { id: "verdict", class: `verdict ${rec.verdict || "none"}` },
       ...clauses(rec.summary || rec.note || "").map((c) => el("li", {}, c))),
    el("p", { id: "baseline", class: `baseline ${rec.baseline ? rec.baseline.verdict : "none"}` },
       rec.baseline ? `Against the untuned default: ${rec.baseline.summary}` : ""),
    el("p", { id: "no-skill", class: `no-skill ${rec.no_skill ? rec.no_skill.verdict : "none"}`, hidden: !rec.no_skill },
       rec.no_skill ? `Against a model that ignores its inputs: ${rec.no_skill.summary}` : ""),
    splitsBlock(rec.splits),
    el("p", { id: "start-from", hidden: !rec.start_from }, startFromText(rec)),
    loopNotes(rec),
    el("p", {}, `${rec.method} answer (${rec.source}); ${rec.explanation || ""}`),
    el("p", {}, `noise: ${rec.noise && rec.noise.sigma != null ? fmt(rec.noise.sigma) : "unknown"}`,
       rec.noise ? ` (${rec.noise.source})` : ""));
  const ranked = (rec.ranking || []).filter((r) => r.expected);
  const leaders = new Set(rec.leaders || []);
  const bars = document.getElementById("ranking-chart");
  const colors = ranked.map((r) => COLORS[r.optimizer] || "#555");
  const rankingChart = new Chart(bars, {
    type: "bar",
    data: { labels: ranked.map((r) => barLabel(r, rec, leaders)),
            datasets: [{ label: "interval", data: ranked.map((r) => [r.expected.low, r.expected.high]),
                         backgroundColor: colors.map((c) => `${c}66`), borderColor: colors, borderWidth: 1, barPercentage: 0.5,
                         minBarLength: 3 },
                       { label: "expected value", type: "line", showLine: false, data: ranked.map((r) => r.expected.value),
                         pointRadius: 5, backgroundColor: "#000", borderColor: "#000" }] },
    options: { animation: false, plugins: { legend: { display: true } },
               scales: { x: { type: "category" },
                         y: { beginAtZero: false, grace: "5%",
                              ...yAxis(rec.noise && rec.noise.scale, rec.metric) } } },
  });
  mark(bars, rankingChart);
  document.getElementById("ranking").replaceChildren(...ranked.map((r) => rankingRow(r, rec)));
  document.getElementById("tied-head").textContent = `${tieWord(rec)} with`;

  const unranked = rec.not_ranked || [];
  document.getElementById("unranked").hidden = !unranked.length;
  document.getElementById("not-ranked").replaceChildren(...unranked.map((n) => el("tr", { "data-family": n.optimizer },
    el("td", {}, el("span", { class: "swatch", style: `background:${COLORS[n.optimizer] || "#555"}` }), ` ${n.optimizer}`),
    el("td", {}, howEnded(n.evidence) ? `${n.evidence.n_trials} (${howEnded(n.evidence)})` : String(n.evidence.n_trials)),
    el("td", {}, String(n.evidence.max_stop_epoch)),
    el("td", {}, n.evidence.best_intermediate_value != null ? fmt(n.evidence.best_intermediate_value) : "-"),
    el("td", {}, [n.may_lead ? "already within the best leader's 95% interval when stopped: a complete run would tell whether it is as good as the leaders"
      : atStop(n),
      n.evidence.n_out_of_memory ? "out of memory on the device: a smaller batch or more of a GPU may let it run" : ""]
      .filter(Boolean).join("; ")))));
  const notTried = document.getElementById("not-tried");
  notTried.hidden = !(rec.not_tried || []).length;
  notTried.textContent = (rec.method !== "transfer" ? "Not tried on this data split at this budget"
    : rec.from_splits ? "Not ranked on any of this task's other data splits"
    : "Not ranked on any of the similar tasks") + ` (nothing is known of them): ${(rec.not_tried || []).join(", ")}`;

  const scatter = document.getElementById("lr-chart");
  const fams = Object.entries(lrs.families);
  // Room around the points: on axes that end at the extreme values, the points there were cut
  // in half (proximal at lr 0.9, the best value at the top edge).
  const xs = fams.flatMap(([, pts]) => pts).concat(lrs.baseline || []).map(([x]) => x).filter((x) => x > 0);
  const xRange = xs.length ? { min: Math.min(...xs) / 1.6, max: Math.max(...xs) * 1.6 } : {};
  const lrChart = new Chart(scatter, {
    type: "scatter",
    data: { datasets: fams.map(([f, pts]) => ({ label: f, data: pts.map(([x, y]) => ({ x, y })),
                                               backgroundColor: COLORS[f] || "#555", pointRadius: 4 }))
      // the untuned baseline's runs apart, hollow: drawn as adamw's points they read as tuned
      // adamw doing worse at lr 1e-3
      .concat((lrs.baseline || []).length ? [{ label: "untuned baseline (adamw)", baseline: true,
        data: lrs.baseline.map(([x, y]) => ({ x, y })), pointStyle: "rectRot", pointRadius: 5,
        backgroundColor: "#fff", borderColor: COLORS.adamw || "#555", borderWidth: 1.5 }] : []) },
    options: { animation: false, parsing: false,
               scales: { x: { type: "logarithmic", ...xRange, ticks: { callback: lrTick }, title: { display: true, text: "learning rate" } },
                         y: { grace: "5%", ...yAxis(rec.noise && rec.noise.scale, lrs.metric) } } },
  });
  mark(scatter, lrChart);
  // adamw's count holds the baseline's runs, drawn apart
  const drawn = (f, pts) => pts.length + (f === "adamw" ? (lrs.baseline || []).length : 0);
  const capped = fams.filter(([f, pts]) => (lrs.n_trials?.[f] || 0) > drawn(f, pts));
  const cappedNote = document.getElementById("lr-capped");
  cappedNote.hidden = !capped.length;
  cappedNote.textContent = `Each family's ${lrs.per_family} most recent complete trials: `
    + capped.map(([f, pts]) => `${f} ${drawn(f, pts)} of ${lrs.n_trials[f]}`).join(", ");

  const sources = document.getElementById("sources");
  const similar = sourceItems(rec);
  sources.hidden = !similar.length;
  document.getElementById("similar").replaceChildren(...similar.map((text) => el("li", {}, text)));
}

function sourceItems(rec) {
  // What a transferred answer was drawn from: similar tasks, or this task's other data splits
  // (`from_splits`: the same task three times over, "similarity 1.00", said what it is).
  return (rec.similar_tasks || []).map((n) => rec.from_splits
    ? `this task on training.seed ${n.budget.training_seed} (another data split at this budget), ranked on its own`
    : `${n.corpus_task ? `reference corpus: ${n.corpus_task}` : `your task ${n.task_id}`} (${n.model} / ${n.dataset}), similarity ${fmt(n.similarity, 2)}`);
}

// tasks ---------------------------------------------------------------------------------------

function answerText(rec) {
  // The verdict in a few words, and which families lead on every data split when the task was
  // searched on several, and a best family not clear of a model that ignores its inputs (as
  // tuner.recommend.brief).
  const blind = blindText(rec);
  // a family stopped early while already within the best leader's interval may be as good
  const close = rec.method === "direct" ? (rec.not_ranked || []).filter((n) => n.may_lead).map((n) => n.optimizer) : [];
  const maybe = close.length ? `; stopped early yet possibly as good: ${close.join(", ")}` : "";
  return verdictText(rec) + maybe + (blind ? `; ${blind}` : "") + (rec.splits ? `; ${rec.splits.brief}` : "");
}

function blindText(rec) {
  // The best family against a model that ignores its inputs (tuner.recommend.no_skill_words).
  const ns = rec.no_skill || {};
  const short = (ns.predicts || "").replace("the training set's ", "the ");
  if (ns.verdict === "no_better") return `no better than predicting ${short} (${fmtParam(ns.value)})`;
  if (ns.verdict === "not_shown") return `not shown to beat predicting ${short} (${fmtParam(ns.value)})`;
  return "";
}

function verdictText(rec) {
  // The verdict in a few words (the task page and the API say it whole). A transferred answer
  // has no verdict: it predicts an order, nothing measured on the task; a prior one predicts
  // nothing (literature defaults in the catalogue's order).
  if (rec.method === "prior") return "nothing measured on this task or a similar one yet";
  if (rec.method !== "direct") {
    const top = (rec.ranking || []).slice(0, 3).map((r) => r.optimizer);
    const blind = (rec.learned_nothing_on || []).length, of = (rec.similar_tasks || []).length;
    const nothing = blind ? `; on ${blind} of its ${of} similar tasks no family beat a model that ignores its inputs` : "";
    return top.length ? `not measured here; predicted order: ${top.join(", ")}, …${nothing}` : "no answer yet";
  }
  const leaders = rec.leaders || [];
  const ranked = (rec.ranking || []).filter((r) => r.expected).length;
  if (rec.verdict === "winner") {  // scoped as the summary is: unranked families may be better
    const where = rec.splits ? "" : " on one data split";  // another split may find another best
    return (rec.not_ranked || []).length || (rec.not_tried || []).length
      ? `${leaders[0]} is best of ${ranked} ranked${where}: clear of the others` : `${leaders[0]} is best${where}: clear of every other family`;
  }
  const wide = (rec.tied_by_width || []).length, ceiling = (rec.at_ceiling || []).length;
  const unranked = (rec.not_ranked || []).length;  // tried, never completed a trial
  if (rec.verdict === "tied") return `tied within the noise: ${leaders.join(", ")} (${leaders.length} of ${ranked} ranked`
    + (wide ? `; ${wide} only by interval overlap` : "")
    + (ceiling ? `; ${ceiling} at the metric's best possible value` : "")
    + (unranked ? `; ${unranked} more never completed a trial` : "") + ")";
  if (rec.verdict === "one_family") return `only ${leaders[0] || (rec.ranking || [])[0]?.optimizer} completed a trial`;
  if (rec.verdict === "not_separated") return `not separated (no noise estimate): ${leaders.join(", ")}`
    + (ceiling ? ` (${ceiling} at the metric's best possible value)` : "");
  return "no complete trial yet";
}

// The answer against the untuned default in a few words (as tuner.recommend.against_default).
const AGAINST_DEFAULT = {
  beaten: "beats it", within_noise: "within the noise", ahead: "behind it",
  not_separated: "no noise estimate", is_leader: "its leader is it", not_run: "not run (search.baseline)",
};

function againstText(rec) {
  const b = rec.baseline;
  if (rec.method !== "direct" || !b) return "-";
  const sp = b.splits;
  return (AGAINST_DEFAULT[b.verdict] || b.verdict) + (sp && sp.run_on.length
    ? ` on this split; ${sp.optimizer} beats it on ${sp.beaten_on.length} of ${sp.run_on.length} split${sp.run_on.length > 1 ? "s" : ""}` : "");
}

function answerClass(rec) {
  // The verdict's style; a winner on its split that another split shows elsewhere is not
  // shown green (a winner of one split that leads on every split is).
  const every = rec.splits ? rec.splits.lead_on_every_split : null;
  return rec.verdict === "winner" && every && !every.includes((rec.leaders || [])[0])
    ? "split-dependent" : rec.verdict || "none";
}

function showAnswer(row, rec) {
  const first = (rec.ranking || []).find((r) => r.expected);
  const answer = row.querySelector(".answer");
  answer.textContent = answerText(rec);
  answer.title = rec.summary || "";
  answer.className = `answer ${answerClass(rec)}`;
  const against = row.querySelector(".against");
  against.textContent = againstText(rec);
  against.title = rec.baseline ? rec.baseline.summary : "";
  // A range of trials without repeated seeds is not an interval: said so (a family's one run
  // read as `0.9722 [0.9722, 0.9722]`, a certainty).
  const x = first?.expected;
  row.querySelector(".first").textContent = !first ? (rec.ranking || [])[0]?.optimizer || "-"
    : x.kind !== "spread" ? `${first.optimizer} ${fmt(x.value)} [${fmt(x.low)}, ${fmt(x.high)}]`
    : `${first.optimizer} ${fmt(x.value)} (${x.low === x.high ? "one value" : `range ${fmt(x.low)}–${fmt(x.high)}`}, no repeats)`;
  row.querySelector(".source").textContent = rec.method === "direct" ? "this task's trials"
    : rec.method === "transfer" ? (rec.from_splits ? "this task's other data splits" : `similar tasks (${rec.source})`)
    : rec.method === "prior" ? `the prior (${rec.source})` : rec.method || "-";
}

// The digests a listed task differs in from another listed task of the same names, parameters
// and metric (its plugin's code changed, say): without them the two rows read the same.
const DIGESTS = [["data_digest", "data"], ["model_digest", "weights"], ["code_digest", "code"]];
function digestsApart(task, tasks) {
  const names = (t) => `${ref(t.model)} / ${ref(t.dataset)} / ${t.metric}`;
  const twins = tasks.filter((t) => t.id !== task.id && names(t) === names(task));
  return DIGESTS.filter(([k]) => k !== "data_digest" && twins.some((t) => (t[k] ?? null) !== (task[k] ?? null)))
    .map(([k, label]) => `${label} ${(task[k] || "none").slice(0, 8)}`);
}

function taskRow(task, tasks) {
  const shown = [task.data_digest ? `data ${task.data_digest.slice(0, 8)}` : "", ...digestsApart(task, tasks)]
    .filter(Boolean);
  return el("tr", { "data-task": String(task.id) },
    el("td", {}, el("a", { href: `/ui/tasks/${task.id}` }, `task ${task.id}`)),
    el("td", { class: "params", title: taskIdentity(task) }, `${ref(task.model)} / ${ref(task.dataset)}`
      + (shown.length ? ` (${shown.join(", ")})` : "")),
    el("td", {}, task.metric),
    el("td", {}, String(task.n_jobs)),
    el("td", {}, String(task.n_trials)),
    el("td", { class: "answer pending" }, "…"), el("td", { class: "against" }), el("td", { class: "first" }), el("td", { class: "source" }),
    el("td", {}, (task.latest_job_at || "").replace("T", " ").slice(0, 19)));
}

const TASKS_PAGE = 100;

async function showAnswers(body, tasks) {
  // Each task's answer (cached by the service until its history changes), a few at a time.
  const queue = [...tasks];
  const worker = async () => {
    for (let task; (task = queue.shift());) {
      const row = body.querySelector(`tr[data-task="${task.id}"]`);
      try {
        showAnswer(row, await getJson(`/v1/recommendations?task=${task.id}`));
      } catch (e) {
        row.querySelector(".answer").textContent = `no answer: ${e.message}`;
      }
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
}

async function tasksPage() {
  const body = document.getElementById("tasks");
  const more = document.getElementById("more");
  const size = Number(new URLSearchParams(location.search).get("limit")) || TASKS_PAGE;
  let shown = 0;
  const load = async () => {  // the next page, the latest job's task first
    const data = await getJson(`/v1/tasks?limit=${size}&offset=${shown}`);
    body.append(...data.data.map((t) => taskRow(t, data.data)));
    shown += data.data.length;
    document.getElementById("count").textContent = shown < data.count
      ? `the ${shown} with the latest jobs, of ${data.count} tasks` : count(data.count, "task");
    more.hidden = shown >= data.count;
    more.textContent = `Show ${Math.min(size, data.count - shown)} more`;
    await showAnswers(body, data.data);
  };
  more.onclick = () => {
    more.disabled = true;
    load().catch((e) => showError(e.message)).finally(() => { more.disabled = false; });
  };
  await load();
}

let COLORS = {};

async function main() {
  if (window.TUNER_FIGURES) {  // a page written by `tuner plot --out x.html`: the data is inline
    drawJobFigures(window.TUNER_FIGURES);
    document.body.dataset.ready = "true";
    return;
  }
  if (!key()) {
    askKey("");
    return;
  }
  document.getElementById("forget").onclick = () => { sessionStorage.removeItem(KEY); location.href = "/ui"; };
  COLORS = (await getJson("/ui/colors.json"));
  const page = document.body.dataset.page;
  try {
    if (page === "jobs") await jobsPage();
    else if (page === "job") await jobPage();
    else if (page === "task") await taskPage();
    else if (page === "tasks") await tasksPage();
  } catch (e) {
    if (e.message !== "unauthorised") showError(e.message);
  }
  document.body.dataset.ready = "true";
}

main();
