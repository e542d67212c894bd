// Version page: live job status without reloading, and the operator chart.
(function () {
  const chart = document.getElementById("op-chart");
  if (chart && window.Plotly) {
    const histogram = JSON.parse(chart.dataset.histogram || "{}");
    const ops = Object.keys(histogram);
    Plotly.newPlot(chart, [{ type: "bar", orientation: "h", y: ops, x: ops.map((k) => histogram[k]),
      marker: { color: "#3b6ea5" } }],
      { margin: { l: 200, r: 20, t: 10, b: 40 }, height: Math.max(200, 22 * ops.length + 60),
        yaxis: { autorange: "reversed" }, xaxis: { title: { text: "nodes" }, dtick: 1, rangemode: "tozero" } },
      { displayModeBar: false, responsive: true });
  }

  const card = document.getElementById("job-card");
  if (!card) return;
  const bar = document.getElementById("job-bar");
  const label = document.getElementById("job-label");
  const state = document.getElementById("job-state");
  const log = document.getElementById("job-log");
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
        if (finished.includes(job.state)) {
          window.setTimeout(() => window.location.reload(), 400);
        } else {
          window.setTimeout(poll, 1000);
        }
      })
      .catch(() => window.setTimeout(poll, 3000));
  }
  poll();
})();
