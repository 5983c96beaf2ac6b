// The dashboard's live updates: counts arrive over server-sent events once a second; tables are
// refreshed in place and the throughput chart is drawn as SVG from consecutive counts.
"use strict";

(function () {
  const WINDOW_SECONDS = 60;
  const samples = []; // {time, invocations, errors}

  function durationText(seconds) {
    if (seconds === null || seconds === undefined) return "-";
    if (seconds < 1e-3) return Math.round(seconds * 1e6) + " µs";
    if (seconds < 1) return (seconds * 1e3).toFixed(1) + " ms";
    if (seconds < 120) return seconds.toFixed(2) + " s";
    const total = Math.round(seconds);
    const minutes = Math.floor(total / 60);
    if (minutes < 120) return minutes + " min " + (total % 60) + " s";
    return Math.floor(minutes / 60) + " h " + (minutes % 60) + " min";
  }

  function fill(scope, values) {
    scope.querySelectorAll("[data-field]").forEach(function (cell) {
      const field = cell.dataset.field;
      if (!(field in values)) return;
      const value = values[field];
      const text = cell.dataset.format === "duration" ? durationText(value) : String(value ?? "-");
      if (cell.textContent !== text) cell.textContent = text;
    });
  }

  function refreshTables(snapshot) {
    document.querySelectorAll("[data-queue]").forEach(function (scope) {
      const values = snapshot.queues[scope.dataset.queue];
      if (values) fill(scope, values);
    });
    document.querySelectorAll("[data-function]").forEach(function (scope) {
      const values = snapshot.functions[scope.dataset.function];
      if (values) fill(scope, values);
    });
  }

  function rates() {
    const points = [];
    for (let i = 1; i < samples.length; i++) {
      const elapsed = samples[i].time - samples[i - 1].time;
      if (elapsed <= 0) continue;
      points.push({
        time: samples[i].time,
        invocations: Math.max(0, samples[i].invocations - samples[i - 1].invocations) / elapsed,
        errors: Math.max(0, samples[i].errors - samples[i - 1].errors) / elapsed,
      });
    }
    return points;
  }

  function drawChart() {
    const svg = document.getElementById("throughput");
    if (!svg) return;
    const points = rates();
    const width = 600, height = 160;
    const now = samples.length ? samples[samples.length - 1].time : 0;
    const top = Math.max(1, ...points.map(function (p) { return p.invocations; }));
    function line(key) {
      return points.map(function (p) {
        const x = width - ((now - p.time) / WINDOW_SECONDS) * width;
        const y = height - 1 - (p[key] / top) * (height - 20);
        return x.toFixed(1) + "," + y.toFixed(1);
      }).join(" ");
    }
    document.getElementById("line-invocations").setAttribute("points", line("invocations"));
    document.getElementById("line-errors").setAttribute("points", line("errors"));
    document.getElementById("chart-max").textContent = top.toFixed(top < 10 ? 1 : 0) + "/s";
    const last = points[points.length - 1];
    document.getElementById("rate-invocations").textContent = last ? last.invocations.toFixed(1) : "-";
    document.getElementById("rate-errors").textContent = last ? last.errors.toFixed(1) : "-";
    document.getElementById("samples").textContent = String(points.length);
  }

  function record(snapshot) {
    samples.push({ time: snapshot.time, invocations: snapshot.invocations, errors: snapshot.errors });
    while (samples.length && samples[0].time < snapshot.time - WINDOW_SECONDS - 1) samples.shift();
  }

  function connect() {
    const live = document.getElementById("live");
    const source = new EventSource(document.body.dataset.stream);
    source.addEventListener("throughput", function (event) {
      const snapshot = JSON.parse(event.data);
      record(snapshot);
      refreshTables(snapshot);
      drawChart();
      live.textContent = "live · " + new Date(snapshot.time * 1000).toLocaleTimeString();
      live.className = "live on";
      document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
    });
    source.addEventListener("unavailable", function () {
      live.textContent = "store unavailable";
      live.className = "live off";
    });
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) {
        live.textContent = "disconnected";
        live.className = "live off";
      }
    };
  }

  document.addEventListener("DOMContentLoaded", connect);
})();
