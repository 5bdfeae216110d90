/* Tiny SVG line charts for the dashboard's metrics tab: no library, a few dozen lines. */
"use strict";
window.lineChart = function lineChart(svg, times, series, unit) {
  const NS = "http://www.w3.org/2000/svg";
  const w = svg.clientWidth || 320, h = svg.clientHeight || 160, left = 40, bottom = 18, top = 8, right = 8;
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const el = (tag, attrs, text) => {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    svg.appendChild(node);
    return node;
  };
  const values = series.flatMap((s) => s.values).filter((v) => v !== null && isFinite(v));
  const max = Math.max(1e-9, ...values) * 1.1;
  const t1 = times.length ? times[times.length - 1] : Date.now() / 1000;
  const t0 = Math.min(times.length ? times[0] : t1, t1 - 60);
  const x = (t) => left + (w - left - right) * (t - t0) / Math.max(1, t1 - t0);
  const y = (v) => h - bottom - (h - bottom - top) * v / max;
  el("line", { class: "axis", x1: left, y1: h - bottom, x2: w - right, y2: h - bottom });
  el("line", { class: "axis", x1: left, y1: top, x2: left, y2: h - bottom });
  const fmt = (v) => (v >= 100 ? v.toFixed(0) : v >= 1 ? v.toFixed(1) : v.toFixed(2));
  el("text", { x: left - 4, y: top + 8, "text-anchor": "end" }, fmt(max / 1.1) + (unit || ""));
  el("text", { x: left - 4, y: h - bottom, "text-anchor": "end" }, "0");
  const minutes = Math.round((t1 - t0) / 60);
  el("text", { x: left, y: h - 4 }, `-${minutes} min`);
  el("text", { x: w - right, y: h - 4, "text-anchor": "end" }, "now");
  series.forEach((s, i) => {
    let d = "", pen = "M";
    s.values.forEach((v, k) => {
      if (v === null || !isFinite(v)) { pen = "M"; return; }
      d += `${pen}${x(times[k]).toFixed(1)},${y(v).toFixed(1)} `;
      pen = "L";
    });
    if (d) el("path", { d, class: `l${i}` });
    if (series.length > 1) el("text", { x: w - right - 70 * (series.length - i), y: top + 8 }, "— " + s.name).setAttribute("class", `t${i}`);
  });
  if (!values.length) el("text", { x: w / 2, y: h / 2, "text-anchor": "middle" }, "no samples yet");
};
