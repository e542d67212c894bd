// Draws the figures the server built (devices/experiments/charts.py), embedded in the page (no CDN).
(function () {
  document.querySelectorAll("[data-figure]").forEach(function (chart) {
    const figure = JSON.parse(document.getElementById(chart.dataset.figure).textContent);
    whenPlotly(function () {
      Plotly.newPlot(chart, figure.data, figure.layout, { displayModeBar: false, responsive: true });
    });
  });
})();
