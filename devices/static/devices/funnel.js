// Download/install funnel per version, drawn from the daily rollups embedded in the page (no CDN).
(function () {
  document.querySelectorAll("[data-funnel]").forEach(function (chart) {
    const rows = JSON.parse(document.getElementById(chart.dataset.funnel).textContent);
    if (!rows.length) return;
    const steps = [
      ["download_started", "download started", "#9fb7d3"],
      ["download_completed", "download completed", "#3b6ea5"],
      ["install_succeeded", "install succeeded", "#1f7a4d"],
      ["download_failed", "download failed", "#e0a040"],
      ["install_failed", "install failed", "#b3261e"],
      ["rollback", "rollback", "#6b2f8a"],
    ];
    const labels = rows.map((r) => r.label);
    const traces = steps.map(([key, name, color]) => ({
      type: "bar", name: name, x: labels, y: rows.map((r) => r[key] || 0), marker: { color: color },
    }));
    whenPlotly(function () {
      Plotly.newPlot(chart, traces,
        { barmode: "group", height: 280, margin: { l: 50, r: 10, t: 10, b: 60 }, legend: { orientation: "h" },
          yaxis: { title: { text: "events" }, rangemode: "tozero" } },
        { displayModeBar: false, responsive: true });
    });
  });
})();
