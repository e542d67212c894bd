// plotly.js is 1.2 MB of script (its basic build, static/vendor/plotly): run as part of the page's own load, it held every chart page's first load past a
// second. It is fetched once the page has loaded, so the page is readable and its forms work at once, and each
// chart is drawn when plotly.js has arrived: chart scripts call whenPlotly(draw). Pages that draw nothing never
// fetch it. The performance mark "charts-drawn" says when the charts were drawn (bench/pages.py reads it).
(function () {
  if (window.whenPlotly) return;  // included by more than one part of a page
  const src = document.currentScript.dataset.plotly;
  const waiting = [];
  let requested = false;
  function fetchPlotly() {
    if (requested) return;
    requested = true;
    const script = document.createElement("script");
    script.src = src;
    script.onload = function () {
      waiting.splice(0).forEach(function (draw) { draw(); });
      performance.mark("charts-drawn");
    };
    document.head.appendChild(script);
  }
  window.whenPlotly = function (draw) {
    if (window.Plotly) { draw(); return; }
    waiting.push(draw);
    if (document.readyState === "complete") fetchPlotly();
    else window.addEventListener("load", fetchPlotly, { once: true });
  };
})();
