// Dashboards: draw each figure the server built (embedded as JSON beside it); plotly.js comes from our own static
// files after the page has loaded (static/js/charts.js), so the page and its tables show before the charts.
(function () {
  document.querySelectorAll("[data-figure]").forEach(function (chart) {
    const figure = JSON.parse(document.getElementById(chart.dataset.figure).textContent);
    if (!figure) return;
    whenPlotly(function () {
      Plotly.newPlot(chart, figure.data, figure.layout, { displayModeBar: false, responsive: true });
    });
  });
})();
