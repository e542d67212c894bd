// Version page: live job status without reloading, and the operator chart.
document.addEventListener("DOMContentLoaded", function () {  // charts when plotly.js arrives (static/js/charts.js)
  const chart = document.getElementById("op-chart");
  if (chart) {
    const histogram = JSON.parse(chart.dataset.histogram || "{}");
    const ops = Object.keys(histogram);
    whenPlotly(function () {
      Plotly.newPlot(chart, [{ type: "bar", orientation: "h", y: ops, x: ops.map((k) => histogram[k]),
        marker: { color: "#3b6ea5" } }],
        { margin: { l: 200, r: 20, t: 10, b: 40 }, height: Math.max(200, 22 * ops.length + 60),
          yaxis: { autorange: "reversed" }, xaxis: { title: { text: "nodes" }, dtick: 1, rangemode: "tozero" } },
        { displayModeBar: false, responsive: true });
    });
  }

  const card = document.getElementById("job-card");
  if (!card) return;
  const bar = document.getElementById("job-bar");
  const label = document.getElementById("job-label");
  const state = document.getElementById("job-state");
  const log = document.getElementById("job-log");
  const outlook = document.getElementById("job-outlook");
  const finished = ["succeeded", "failed", "cancelled"];

  function poll() {
    fetch(card.dataset.jobUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then((r) => r.json())
      .then((job) => {
        bar.style.width = job.progress + "%";
        label.textContent = job.progress + "%";
        state.textContent = job.state;
        state.className = "state " + job.state;
        log.textContent = job.log;
        if (outlook) {
          outlook.hidden = !job.outlook;
          outlook.textContent = job.outlook ? job.outlook.sentence : "";
        }
        if (finished.includes(job.state)) {
          window.setTimeout(() => window.location.reload(), 400);
        } else {
          window.setTimeout(poll, 1000);
        }
      })
      .catch(() => window.setTimeout(poll, 3000));
  }
  poll();
});

// Size-versus-latency chart of the variants, coloured by accuracy, the chosen one marked.
document.addEventListener("DOMContentLoaded", function () {
  const chart = document.getElementById("variants-chart");
  if (!chart) return;
  const data = JSON.parse(chart.dataset.variants || "{}");
  const points = data.points || [];
  if (!points.length) { chart.hidden = true; return; }
  function labelSides(points) {  // by size order, so neighbours on the x axis get different sides
    const sides = ["top center", "bottom center", "middle right", "middle left"];
    const bySize = points.map((p, i) => i).sort((a, b) => points[a].size - points[b].size);
    const out = [];
    bySize.forEach((index, rank) => { out[index] = sides[rank % sides.length]; });
    return out;
  }
  const symbols = { parent: "diamond", version: "circle", candidate: "circle-open", chosen: "star", "not runnable": "x" };
  const withAccuracy = points.filter((p) => p.accuracy !== null && p.accuracy !== undefined);
  const trace = {
    type: "scatter", mode: "markers+text", x: points.map((p) => p.size / 1024), y: points.map((p) => p.latency),
    // Neighbouring variants often sit close together: alternate the label's side so labels do not overlap.
    text: points.map((p) => p.label), cliponaxis: false, textfont: { size: 11 },
    textposition: labelSides(points), hovertemplate: "%{text}<br>%{x:.1f} KB, %{y:.3f} ms<extra></extra>",
    marker: { size: points.map((p) => (p.kind === "chosen" ? 18 : 11)), symbol: points.map((p) => symbols[p.kind] || "circle"),
      color: withAccuracy.length ? points.map((p) => (p.accuracy === null || p.accuracy === undefined ? 0 : 100 * p.accuracy)) : "#3b6ea5",
      colorscale: "Viridis", showscale: withAccuracy.length > 0, colorbar: { title: { text: "accuracy %" } } },
  };
  whenPlotly(function () {
    Plotly.newPlot(chart, [trace], { height: 380, margin: { l: 60, r: 20, t: 10, b: 50 },
      xaxis: { title: { text: "file size (KB)" } }, yaxis: { title: { text: "median latency, 1 thread (ms)" } } },
      { displayModeBar: false, responsive: true });
  });
});

// The choices last queued from each form on this page stay selected across the reloads that follow the job,
// and the first reload says what was queued.
function choicesKey(form) { return "choices:" + window.location.pathname + "#" + form.id; }
document.querySelectorAll("form.job-form").forEach(function (form) {
  const choices = JSON.parse(window.sessionStorage.getItem(choicesKey(form)) || "{}");
  Object.entries(choices).forEach(function ([key, value]) {
    const field = form.elements.namedItem(key);
    if (!field) return;
    if (field.type === "checkbox") field.checked = true;
    else field.value = value;
  });
});
(function () {
  const saved = window.sessionStorage.getItem("queued");
  if (!saved) return;
  window.sessionStorage.removeItem("queued");
  const queued = JSON.parse(saved);
  const form = document.getElementById(queued.form);
  if (!form) return;
  const message = form.querySelector(".message");
  message.textContent = queued.message + " ";
  const link = document.createElement("a");
  link.href = form.getAttribute("data-jobs-url");  // not form.dataset: a control named "dataset" shadows it
  link.textContent = "All jobs";
  message.appendChild(link);
  message.className = "message queued";
})();

// Queue optimization jobs through the API, then reload to follow the job live.
// (getAttribute, not form.dataset: a form's control named "dataset" shadows that property.)
document.querySelectorAll("form.job-form").forEach(function (form) {
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    const message = form.querySelector(".message");
    const body = {};
    new FormData(form).forEach(function (value, key) {
      if (key === "csrfmiddlewaretoken" || value === "") return;
      body[key] = value;
    });
    try {
      if (body.params) body.params = JSON.parse(body.params);
    } catch (e) {
      message.textContent = "Parameters must be JSON, e.g. {\"per_channel\": true}.";
      message.className = "message error";
      return;
    }
    if (body.dataset) body.dataset = parseInt(body.dataset, 10);
    if (body.accuracy_budget) body.accuracy_budget = parseFloat(body.accuracy_budget);
    if (body.accept_unverified) body.accept_unverified = true;
    fetch(form.getAttribute("data-url"), { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json",
        "X-CSRFToken": form.querySelector("[name=csrfmiddlewaretoken]").value },
      body: JSON.stringify(body) })
      .then((r) => r.json().then((json) => ({ status: r.status, json })))
      .then(({ status, json }) => {
        if (status === 202) {
          // The page reloads to follow the job live: say what was queued there, and keep the choices made.
          const choices = {};
          new FormData(form).forEach(function (value, key) { if (key !== "csrfmiddlewaretoken") choices[key] = value; });
          const what = json.params && json.params.transform ? " (" + json.params.transform + ")" : "";
          window.sessionStorage.setItem(choicesKey(form), JSON.stringify(choices));
          window.sessionStorage.setItem("queued", JSON.stringify({ form: form.id,
            message: "Queued " + json.kind + " job #" + json.id + what + "." }));
          window.location.reload();
          return;
        }
        const problems = Object.entries(json).map(([k, v]) => (k === "detail" ? v : k + ": " + v)).join(" ");
        message.textContent = problems || "Could not queue the job.";
        message.className = "message error";
      });
  });
});
