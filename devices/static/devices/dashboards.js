// Dashboards: draw each figure the server built (embedded as JSON beside it); plotly.js comes from our own static
// files, deferred, so the page and its tables show before the charts are drawn.
(function () {
  document.querySelectorAll("[data-figure]").forEach(function (chart) {
    const figure = JSON.parse(document.getElementById(chart.dataset.figure).textContent);
    if (!figure || !window.Plotly) return;
    Plotly.newPlot(chart, figure.data, figure.layout, { displayModeBar: false, responsive: true });
  });
})();
