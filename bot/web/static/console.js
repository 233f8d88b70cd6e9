// Draws the dashboard's charts from the JSON the page carries (no inline scripts: the CSP forbids them).
(function () {
  var source = document.getElementById("chart-data");
  if (!source || !window.echarts) return;
  var data = JSON.parse(source.textContent);
  var charts = [];
  function chart(id, option) {
    var el = document.getElementById(id);
    if (!el) return;
    var c = echarts.init(el);
    c.setOption(option);
    charts.push(c);
    el.setAttribute("data-drawn", "1");
  }
  chart("chart-rates", {
    tooltip: { trigger: "axis", valueFormatter: function (v) { return v == null ? "—" : v + "%"; } },
    legend: { top: 0 },
    grid: { left: 40, right: 16, top: 40, bottom: 30 },
    xAxis: { type: "category", data: data.months },
    yAxis: { type: "value", min: 0, max: 100, axisLabel: { formatter: "{value}%" } },
    series: Object.keys(data.rates).map(function (name) {
      return { name: name, type: "line", data: data.rates[name], connectNulls: false };
    })
  });
  chart("chart-categories", {
    tooltip: { trigger: "item" },
    series: [{ type: "pie", radius: ["35%", "65%"], data: data.categories }]
  });
  var max = Math.max.apply(null, [1].concat(data.grids.map(function (g) { return g.value; })));
  if (data.outlines) {
    echarts.registerMap("linli-grids", data.outlines);
    chart("chart-grids", {
      tooltip: { trigger: "item", formatter: function (p) { return p.name + "：" + (p.value || 0) + " 件"; } },
      visualMap: { min: 0, max: max, left: 0, bottom: 0, text: ["多", "少"], calculable: true,
                   inRange: { color: ["#e8f5e9", "#ffb74d", "#c62828"] } },
      series: [{ type: "map", map: "linli-grids", roam: true, label: { show: true }, data: data.grids }]
    });
  } else {
    chart("chart-grids", {
      tooltip: { trigger: "axis" },
      xAxis: { type: "category", data: data.grids.map(function (g) { return g.name; }) },
      yAxis: { type: "value" },
      series: [{ type: "bar", data: data.grids.map(function (g) { return g.value; }) }]
    });
  }
  window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
})();
