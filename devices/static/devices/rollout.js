// A rollout's stages over time (share of targeted devices against time), from the rows embedded in the page.
(function () {
  document.querySelectorAll("[data-timeline]").forEach(function (chart) {
    const data = JSON.parse(document.getElementById(chart.dataset.timeline).textContent);
    const rows = data.rows;
    const started = rows.filter((r) => r.started_at);
    const planned = rows.filter((r) => r.earliest_start);
    if (!started.length) {
      chart.textContent = "Not started yet: the chart appears once the first stage starts.";
      chart.className = "muted";
      return;
    }
    const x = started.map((r) => r.started_at), y = started.map((r) => r.percent);
    const text = started.map((r) => "stage " + r.stage);
    if (data.running) {  // the current stage holds until now
      x.push(data.now); y.push(y[y.length - 1]); text.push("now");
    }
    const traces = [{
      type: "scatter", mode: "lines+markers", line: { shape: "hv", color: "#3b6ea5" }, name: "share reached",
      x: x, y: y, text: text, hovertemplate: "%{text}: %{y}%<br>%{x}<extra></extra>",
    }];
    if (planned.length) {
      const last = started[started.length - 1];
      traces.push({
        type: "scatter", mode: "lines+markers", line: { shape: "hv", dash: "dot", color: "#9fb7d3" },
        name: "earliest next stages", x: [last.started_at].concat(planned.map((r) => r.earliest_start)),
        y: [last.percent].concat(planned.map((r) => r.percent)),
      });
    }
    whenPlotly(function () {
      Plotly.newPlot(chart, traces,
        { height: 260, margin: { l: 50, r: 10, t: 10, b: 40 }, legend: { orientation: "h" },
          yaxis: { title: { text: "% of targeted devices" }, range: [0, 105] } },
        { displayModeBar: false, responsive: true });
    });
  });
})();
