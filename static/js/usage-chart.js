/* Draws the usage bar charts (T2) from each canvas's data-chart JSON, on load and after htmx swaps.
   The figures are also in a table next to each chart; this only draws them. */
(function () {
  "use strict";
  function draw(root) {
    if (typeof Chart === "undefined" || !root.querySelectorAll) return;
    Chart.defaults.locale = document.documentElement.lang || "en";  // axis numbers as the page writes them
    root.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      if (Chart.getChart(canvas)) return;
      var data = JSON.parse(canvas.dataset.chart);
      new Chart(canvas, {
        type: "bar",
        data: {labels: data.labels, datasets: [{label: data.unit, data: data.values.map(Number),
                                                backgroundColor: "#0b6e4f", borderRadius: 3}]},
        options: {responsive: true, maintainAspectRatio: false, animation: false,
                  plugins: {legend: {display: false}},
                  scales: {x: {ticks: {autoSkip: true, maxRotation: 0}},
                           y: {beginAtZero: true, title: {display: true, text: data.unit}}}}
      });
    });
  }
  function destroy(root) {
    if (typeof Chart === "undefined" || !root.querySelectorAll) return;
    root.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var chart = Chart.getChart(canvas);
      if (chart) chart.destroy();
    });
  }
  document.addEventListener("DOMContentLoaded", function () { draw(document); });
  document.addEventListener("htmx:beforeSwap", function (event) { destroy(event.detail.target); });
  document.addEventListener("htmx:load", function (event) { draw(event.target); });
})();
