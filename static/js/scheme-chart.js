/* Draws the scheme dashboard's monthly chart (B1) from its canvas's data-scheme-chart JSON.
   The same figures are in the table under the chart; this only draws them. */
(function () {
  "use strict";
  var COLOURS = ["#0b6e4f", "#3a7bd5", "#c0392b", "#e67e22"];
  function draw(root) {
    if (typeof Chart === "undefined" || !root.querySelectorAll) return;
    Chart.defaults.locale = document.documentElement.lang || "en";  // axis numbers as the page writes them
    root.querySelectorAll("canvas[data-scheme-chart]").forEach(function (canvas) {
      if (Chart.getChart(canvas)) return;
      var data = JSON.parse(canvas.dataset.schemeChart);
      new Chart(canvas, {
        type: "bar",
        data: {labels: data.labels, datasets: data.series.map(function (s, i) {
          return {label: s.label, data: s.values.map(Number), backgroundColor: COLOURS[i % COLOURS.length], borderRadius: 2};
        })},
        options: {responsive: true, maintainAspectRatio: false, animation: false,
                  scales: {x: {ticks: {autoSkip: true, maxRotation: 0}},
                           y: {beginAtZero: true, title: {display: true, text: data.unit}}}}
      });
    });
  }
  document.addEventListener("DOMContentLoaded", function () { draw(document); });
  document.addEventListener("htmx:load", function (event) { draw(event.target); });
})();
