// Owner pages: draws every <canvas data-chart="ID"> from the JSON in <script id="ID" type="application/json">.
// The same figures are in a table next to each chart; the chart is only a picture of them.
(function () {
  function draw() {
    if (typeof Chart === "undefined") return;
    Chart.defaults.locale = document.documentElement.lang || "en";  // axis numbers as the page writes them
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var source = document.getElementById(canvas.dataset.chart);
      if (!source || canvas.dataset.drawn) return;
      var spec = JSON.parse(source.textContent);
      canvas.dataset.drawn = "1";
      new Chart(canvas, {
        type: spec.type || "bar",
        data: { labels: spec.labels, datasets: spec.datasets },
        options: {
          responsive: true,
          maintainAspectRatio: false,
          animation: false,
          interaction: { mode: "index", intersect: false },
          plugins: { legend: { position: "bottom" } },
          scales: {
            x: { stacked: !!spec.stacked, ticks: { maxRotation: 0, autoSkip: true } },
            y: { stacked: !!spec.stacked, beginAtZero: true, title: { display: !!spec.unit, text: spec.unit || "" } }
          }
        }
      });
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
